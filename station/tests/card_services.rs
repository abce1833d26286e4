//! Card services on an issued (LOCKED) card end to end through the real parts: the `idstation`
//! binary, pcscd + vpcd with `vchip` cards, SoftHSM2, the registry file; OpenSC, openssl,
//! yubico-piv-tool and poppler as independent oracles. Run under
//! `flock /tmp/idstation-pcsc.lock` (docs/station.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const HSM_PIN: &str = "hsm-pin-services-5e1a07";
const ADMIN_PASSWORD: &str = "admin-password-services-1";
const CLERK_PASSWORD: &str = "clerk-password-services-2";
// Eight digits (a six-digit PIN turns up by chance in log timestamps; see issuance_e2e.rs).
const PIN: &str = "48291637";
const NEW_PIN: &str = "61730294";
const WRONG_PIN: &str = "00000000";
#[path = "common/holder_pin.rs"]
mod holder_pin;

const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

struct Station {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    data: PathBuf,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/holders")
        .join(name)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    o
}

/// The line `idstation: …` of a failed run.
fn error_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .find(|l| l.starts_with("idstation: "))
        .unwrap_or_default()
        .to_string()
}

impl Station {
    fn new() -> Self {
        testrig::ensure_pcscd().expect("pcscd with vpcd readers");
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let s = Station {
            data: dir.join("data"),
            dir,
            _tmp: tmp,
        };
        let pin_file = s.dir.join("hsm-pin");
        std::fs::write(&pin_file, format!("{HSM_PIN}\n")).expect("pin file");
        std::fs::set_permissions(
            &pin_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
        s.ok(
            &[
                "init",
                "--admin",
                "admin",
                "--station",
                "services",
                "--hsm-pin-file",
                pin_file.to_str().expect("utf-8 path"),
            ],
            &[ADMIN_PASSWORD],
        );
        s.ok(
            &[
                "operator",
                "add",
                "--name",
                "clerk",
                "--role",
                "clerk",
                "--operator",
                "admin",
            ],
            &[ADMIN_PASSWORD, CLERK_PASSWORD],
        );
        s
    }

    /// `idstation ARGS` with `secrets` on standard input, one per line; no secret may appear
    /// in the output.
    fn run(&self, args: &[&str], secrets: &[&str]) -> Output {
        self.run_env(args, secrets, &[])
    }

    fn run_env(&self, args: &[&str], secrets: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
        c.arg("--data-dir").arg(&self.data).args(args);
        c.env("IDSTATION_LOG", "debug");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = holder_pin::output(c, args, &self.dir, secrets, PIN);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        for s in [HSM_PIN, ADMIN_PASSWORD, CLERK_PASSWORD, PIN, NEW_PIN] {
            assert!(!all.contains(s), "secret {s:?} appeared in output:\n{all}");
        }
        o
    }

    fn ok(&self, args: &[&str], secrets: &[&str]) -> Output {
        let o = self.run(args, secrets);
        assert!(
            o.status.success(),
            "idstation {args:?} failed:\n{}",
            text(&o)
        );
        o
    }

    fn json(&self, args: &[&str], secrets: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let o = self.ok(&full, secrets);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{}", text(&o)))
    }

    fn blank_card(&self, serial: u32) -> PathBuf {
        let img = self.dir.join(format!("card-{serial:08X}.img"));
        run(Command::new(testrig::vchip_bin().expect("vchip"))
            .args(["create", "--out"])
            .arg(&img)
            .args(["--serial", &serial.to_string()]));
        img
    }

    /// Issue holder-01 on the card in `reader`; the document number.
    fn issue(&self, reader: &str) -> String {
        let r = self.json(
            &[
                "issue",
                "--holder",
                fixture("holder-01.json").to_str().unwrap(),
                "--reader",
                reader,
                "--operator",
                "clerk",
            ],
            &[CLERK_PASSWORD],
        );
        r["document"].as_str().expect("document").to_string()
    }

    /// `idstation --json renew` with the holder's `pin` on `--pin-fd 0`.
    fn renew(&self, document: &str, reader: &str, pin: &str) -> Output {
        self.renew_env(document, reader, pin, &[])
    }

    /// [`Station::renew`] with `env` (test switches such as a failpoint, never a secret).
    fn renew_env(&self, document: &str, reader: &str, pin: &str, env: &[(&str, &str)]) -> Output {
        self.run_env(
            &[
                "--json",
                "renew",
                "--document",
                document,
                "--reader",
                reader,
                "--pin-fd",
                "0",
                "--operator",
                "clerk",
            ],
            &[CLERK_PASSWORD, pin],
            env,
        )
    }

    /// Serials (lower-case hex, no leading zeros) of document `doc`'s certificates by status.
    fn certificates(&self, doc: &str, status: &str) -> Vec<String> {
        let show = self.json(
            &["show", "--document", doc, "--operator", "clerk"],
            &[CLERK_PASSWORD],
        );
        show["document"]["certificates"]
            .as_array()
            .expect("certificates")
            .iter()
            .filter(|c| c["status"] == status)
            .map(|c| norm(c["serial"].as_str().unwrap_or("")))
            .collect()
    }

    /// The current CRL of the active e-Signature CA key, as `openssl crl -text`.
    fn crl_text(&self) -> String {
        let out = self.dir.join("current.crl.pem");
        let _ = std::fs::remove_file(&out);
        self.ok(
            &[
                "ca",
                "crl",
                "--key",
                "esign-ca-1",
                "--out",
                out.to_str().unwrap(),
                "--operator",
                "admin",
            ],
            &[ADMIN_PASSWORD],
        );
        let o = run(Command::new("openssl")
            .args(["crl", "-noout", "-text", "-in"])
            .arg(&out));
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    fn registry(&self) -> registry::Registry {
        registry::Registry::open_read_only(self.data.join("registry.sqlite")).expect("registry")
    }

    /// Old or new certificates, never neither: the document has exactly one active
    /// certificate per slot profile, and no service job is left but a resumable renewal.
    fn check_agreement(&self) {
        let reg = self.registry();
        let conn = reg.connection();
        let active: Vec<(String, i64)> = conn
            .prepare(
                "SELECT purpose, count(*) FROM certificates WHERE status = 'active' AND holder_id IS NOT NULL GROUP BY purpose",
            )
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            active.len(),
            2,
            "active certificates by purpose: {active:?}"
        );
        assert!(active.iter().all(|(_, n)| *n == 1), "{active:?}");
    }
}

fn norm(serial: &str) -> String {
    serial
        .to_ascii_lowercase()
        .trim_start_matches('0')
        .to_string()
}

/// pkcs11-tool with OpenSC configured for all six test readers.
fn pkcs11_tool() -> Command {
    let mut c = Command::new("pkcs11-tool");
    c.env(
        "OPENSC_CONF",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../chip/tests/opensc.conf"),
    );
    c
}

fn p11_slot(reader: &str) -> String {
    let out = run(pkcs11_tool().args(["--module", OPENSC, "-L"]));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.starts_with("Slot ") && l.contains(reader))
        .find_map(|l| l.split(['(', ')']).nth(1).map(str::to_string))
        .unwrap_or_else(|| panic!("no PKCS#11 slot for {reader:?} in:\n{text}"))
}

/// OpenSC signs with the card's 9C key and `pin`; openssl verifies the signature with the 9C
/// certificate read from the card and its chain to the root. Returns that certificate's serial.
fn opensc_signs_and_openssl_verifies(st: &Station, reader: &str, pin: &str, tag: &str) -> String {
    let dir = st.dir.join(format!("sign-{tag}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let data = dir.join("data.txt");
    std::fs::write(&data, format!("signed by {tag} through OpenSC")).expect("write");
    let digest = dir.join("digest.bin");
    run(Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-out"])
        .arg(&digest)
        .arg(&data));
    let slot = p11_slot(reader);
    let cert_der = dir.join("9c.der");
    run(pkcs11_tool()
        .args([
            "--module",
            OPENSC,
            "--slot",
            &slot,
            "--read-object",
            "--type",
            "cert",
        ])
        .args(["--id", "02", "--output-file"])
        .arg(&cert_der));
    let sig = dir.join("sig.der");
    run(pkcs11_tool()
        .args(["--module", OPENSC, "--slot", &slot, "--login", "--pin", pin])
        .args(["--sign", "--mechanism", "ECDSA", "--id", "02"])
        .args(["--signature-format", "openssl", "--input-file"])
        .arg(&digest)
        .arg("--output-file")
        .arg(&sig));
    let cert_pem = dir.join("9c.pem");
    run(Command::new("openssl")
        .args(["x509", "-inform", "DER", "-in"])
        .arg(&cert_der)
        .arg("-out")
        .arg(&cert_pem));
    let pubkey = dir.join("9c-pub.pem");
    let o = run(Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(&cert_pem));
    std::fs::write(&pubkey, &o.stdout).expect("write");
    let o = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&pubkey)
        .arg("-signature")
        .arg(&sig)
        .arg(&data));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Verified OK"),
        "{}",
        text(&o)
    );
    let o = run(Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(st.data.join("ca/root-ca-1.pem"))
        .arg("-untrusted")
        .arg(st.data.join("ca/esign-ca-1.pem"))
        .arg(&cert_pem));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": OK"),
        "{}",
        text(&o)
    );
    let o = run(Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&cert_pem));
    let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
    norm(line.trim_start_matches("serial="))
}

/// yubico-piv-tool on `reader` with `args`.
fn yubico(reader: &str, args: &[&str]) -> Output {
    Command::new("yubico-piv-tool")
        .args(["-r", reader])
        .args(args)
        .output()
        .expect("run yubico-piv-tool")
}

/// The public keys a card image records (`vchip show`).
fn image_keys(img: &Path) -> String {
    let o = run(Command::new(testrig::vchip_bin().expect("vchip"))
        .arg("show")
        .arg(img));
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn renewal_on_a_locked_card_signs_through_opensc_and_the_old_certificates_are_revoked() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = st.blank_card(0x5E00_0001);
    let card = slot.insert(&img, &[]);
    let r = &slot.reader_name;
    let doc = st.issue(r);
    let old_9c = opensc_signs_and_openssl_verifies(&st, r, PIN, "issued");
    let old = st.certificates(&doc, "active");
    assert_eq!(old.len(), 2);
    assert!(old.contains(&old_9c));

    let o = st.renew(&doc, r, PIN);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(report["resumed"], false, "{report}");
    let new: Vec<String> = report["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .map(|c| norm(c["serial"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(new.len(), 2, "{report}");
    let mut superseded: Vec<String> = report["superseded"]
        .as_array()
        .expect("superseded")
        .iter()
        .map(|s| norm(s.as_str().unwrap_or("")))
        .collect();
    superseded.sort();
    let mut old_sorted = old.clone();
    old_sorted.sort();
    assert_eq!(superseded, old_sorted);
    // Validity capped at the document's expiry.
    let show = st.json(
        &["show", "--document", &doc, "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    let expiry = show["document"]["date_of_expiry"].as_str().expect("expiry");
    for c in report["certificates"].as_array().expect("certificates") {
        let not_after = c["not_after"].as_str().expect("not_after");
        assert!(&not_after[..10] <= expiry, "{not_after} after {expiry}");
    }

    // OpenSC signs with the new 9C key, openssl verifies with the new certificate.
    let now_9c = opensc_signs_and_openssl_verifies(&st, r, PIN, "renewed");
    assert!(
        new.contains(&now_9c),
        "card's 9C {now_9c} is not a renewed one {new:?}"
    );
    assert_ne!(now_9c, old_9c);
    // pyHanko signs a PDF with the renewed 9C key (PKCS#11 through OpenSC, the PIN again for
    // the signature) and validates it to the station's root.
    let slot_id = p11_slot(r);
    let mut py = Command::new("python3");
    py.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/pyhanko_sign.py"))
        .arg(OPENSC)
        .arg(&slot_id)
        .arg(st.dir.join("signed.pdf"))
        .arg(st.data.join("ca/root-ca-1.pem"))
        .arg(st.data.join("ca/esign-ca-1.pem"))
        .env(
            "OPENSC_CONF",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../chip/tests/opensc.conf"),
        );
    let o = holder_pin::with_stdin(py, &[PIN]);
    assert!(o.status.success(), "pyHanko:\n{}", text(&o));
    assert_eq!(norm(String::from_utf8_lossy(&o.stdout).trim()), now_9c);
    // yubico-piv-tool sees the renewed certificates too.
    let o = yubico(r, &["-a", "status"]);
    assert!(o.status.success(), "{}", text(&o));
    let fp = run(Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(st.dir.join("sign-renewed/9c.pem")));
    let hex = |t: &str| {
        t.chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let fp = String::from_utf8_lossy(&fp.stdout);
    let fp = hex(fp.rsplit('=').next().unwrap_or(""));
    assert_eq!(fp.len(), 64, "{fp}");
    assert!(
        hex(&String::from_utf8_lossy(&o.stdout)).contains(&fp),
        "yubico-piv-tool status does not show the renewed 9C certificate {fp}:\n{}",
        text(&o)
    );
    // The card stays LOCKED; the registry: the new ones active, the old revoked.
    assert!(image_keys(&img).contains("lifecycle:  locked"));
    let mut active = st.certificates(&doc, "active");
    active.sort();
    let mut new_sorted = new.clone();
    new_sorted.sort();
    assert_eq!(active, new_sorted);
    let mut revoked = st.certificates(&doc, "revoked");
    revoked.sort();
    assert_eq!(revoked, old_sorted);
    // The old certificates are on the next CRL, as superseded.
    let crl = st.crl_text();
    for s in &old {
        assert!(
            crl.to_ascii_lowercase()
                .contains(&format!("serial number: {s}")),
            "{s} not on the CRL:\n{crl}"
        );
    }
    assert!(crl.contains("Superseded"), "{crl}");
    for s in &new {
        assert!(!crl
            .to_ascii_lowercase()
            .contains(&format!("serial number: {s}")));
    }
    st.check_agreement();

    // With holder certificate profiles longer than the document (20 years), a renewal's
    // certificates end with the document (or with the e-Signature CA, whichever is first).
    let dir = st.data.join("long-profiles/cert");
    std::fs::create_dir_all(&dir).expect("profile dir");
    for name in ["holder-sign.toml", "holder-auth.toml"] {
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../profiles/cert")
                .join(name),
        )
        .expect("shipped profile");
        assert!(shipped.contains("validity = { days = 1826 }"), "{shipped}");
        std::fs::write(
            dir.join(name),
            shipped.replace("validity = { days = 1826 }", "validity = { days = 7305 }"),
        )
        .expect("write profile");
    }
    let cfg_path = st.data.join("station.toml");
    let cfg = std::fs::read_to_string(&cfg_path).expect("station.toml");
    assert!(cfg.contains("[profiles]\n"), "{cfg}");
    std::fs::write(
        &cfg_path,
        cfg.replace("[profiles]\n", "[profiles]\ndir = \"long-profiles\"\n"),
    )
    .expect("station.toml");
    let o = st.renew(&doc, r, PIN);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    for c in report["certificates"].as_array().expect("certificates") {
        let not_after = c["not_after"].as_str().expect("not_after");
        assert!(&not_after[..10] <= expiry, "{not_after} after {expiry}");
        assert_eq!(
            &not_after[..4],
            &expiry[..4],
            "capped at the document's year: {c}"
        );
    }
    std::fs::write(&cfg_path, cfg).expect("station.toml");
    // Another card in the reader is refused before anything is done to it (exit 5).
    card.pull();
    let other = st.blank_card(0x5E00_0002);
    let other_card = slot.insert(&other, &[]);
    let o = st.renew(&doc, r, PIN);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(error_line(&o).contains("card serial"), "{}", text(&o));
    other_card.pull();
    let events = st.registry().audit_events(1, u64::MAX).expect("events");
    assert!(events.iter().any(|e| e.action == "renewal.completed"));
    assert!(events.iter().any(|e| e.action == "renewal.refused"));
}

#[test]
fn without_the_card_key_yubico_piv_tool_cannot_generate_or_import_on_a_locked_card() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = st.blank_card(0x5E00_0010);
    let _card = slot.insert(&img, &[]);
    let r = &slot.reader_name;
    st.issue(r);
    let before = image_keys(&img);
    // The default (transport) key, and a wrong AES-128 key.
    for key in [None, Some("00112233445566778899aabbccddeeff")] {
        let mut args = vec!["-a", "generate", "-s", "9c", "-A", "ECCP256"];
        let k;
        if let Some(key) = key {
            k = format!("--key={key}");
            args.push(&k);
        }
        let o = yubico(r, &args);
        assert!(!o.status.success(), "generate with {key:?}:\n{}", text(&o));
    }
    let cert = st.dir.join("any.pem");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-subj", "/CN=forged", "-days", "1", "-keyout"])
        .arg(st.dir.join("any.key"))
        .arg("-out")
        .arg(&cert));
    let o = yubico(
        r,
        &[
            "-a",
            "import-certificate",
            "-s",
            "9c",
            "-i",
            cert.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success(), "import-certificate:\n{}", text(&o));
    assert_eq!(image_keys(&img), before, "the card changed");
    // The holder still signs with the issued key.
    opensc_signs_and_openssl_verifies(&st, r, PIN, "untouched");
}

#[test]
fn three_wrong_pins_block_the_card_and_after_unblock_the_new_pin_signs() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = st.blank_card(0x5E00_0020);
    let _card = slot.insert(&img, &[]);
    let r = &slot.reader_name;
    let doc = st.issue(r);
    for _ in 0..3 {
        let o = yubico(r, &["-a", "verify-pin", "-P", WRONG_PIN]);
        assert!(!o.status.success(), "{}", text(&o));
    }
    let o = yubico(r, &["-a", "verify-pin", "-P", PIN]);
    assert!(
        !o.status.success(),
        "the PIN must be blocked:\n{}",
        text(&o)
    );
    // A blocked PIN cannot test-sign a renewal: refused before anything changes.
    let o = st.renew(&doc, r, PIN);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(error_line(&o).contains("blocked"), "{}", text(&o));

    let unblock = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "unblock",
            "--document",
            &doc,
            "--reader",
            r,
            "--pin-fd",
            "0",
            "--operator",
            "clerk",
        ];
        args.extend_from_slice(extra);
        st.run(&args, &[CLERK_PASSWORD, NEW_PIN])
    };
    // Without the clerk's confirmation of the holder's identity: refused (exit 2).
    let o = unblock(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        error_line(&o).contains("identity_confirmed"),
        "{}",
        text(&o)
    );
    let letter = holder_pin::letter_path(&st.dir);
    let o = unblock(&[
        "--identity-confirmed",
        "--new-puk",
        "--pin-letter",
        letter.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // The new PIN signs through OpenSC; the old one no longer works.
    opensc_signs_and_openssl_verifies(&st, r, NEW_PIN, "unblocked");
    // The new PUK from the new letter unblocks (RESET RETRY COUNTER with the PUK).
    let puk = holder_pin::puk_in_letter(&letter);
    let o = yubico(r, &["-a", "unblock-pin", "-P", &puk, "-N", PIN]);
    assert!(o.status.success(), "{}", text(&o));
    let o = yubico(r, &["-a", "verify-pin", "-P", PIN]);
    assert!(o.status.success(), "{}", text(&o));
    let events = st.registry().audit_events(1, u64::MAX).expect("events");
    let unblocked = events
        .iter()
        .find(|e| e.action == "card.unblocked")
        .expect("card.unblocked audited");
    assert!(
        unblocked.details.contains("identity_confirmed_by"),
        "{unblocked:?}"
    );
    assert!(events.iter().any(|e| e.action == "unblock.refused"));
    assert!(image_keys(&img).contains("lifecycle:  locked"));
}

/// One round of a tear test: the card in with `--tear-after k`, `run` (a service on it), the
/// card out. `None` when the service finished before the tear; else it must have exited 3
/// naming where it stopped, the card and the registry must agree, and its error line comes back.
fn torn_round(
    st: &Station,
    slot: &testrig::Slot,
    img: &Path,
    k: u64,
    run: impl Fn() -> Output,
) -> Option<String> {
    let card = slot.insert(img, &["--tear-after", &k.to_string()]);
    let o = run();
    let _ = card.wait_removed(Duration::from_secs(10));
    if o.status.success() {
        return None;
    }
    assert_eq!(o.status.code(), Some(3), "tear after {k}:\n{}", text(&o));
    let line = error_line(&o);
    assert!(
        line.contains("card: ") && (line.contains(" during '") || line.contains("job step")),
        "tear after {k}: the error names the step: {line}"
    );
    st.check_agreement();
    Some(line)
}

/// Service jobs still marked running (none once every service ended or was finished).
fn running_service_jobs(st: &Station) -> i64 {
    st.registry()
        .connection()
        .query_row(
            "SELECT count(*) FROM service_jobs WHERE state = 'running'",
            [],
            |r| r.get(0),
        )
        .expect("query")
}

/// A card issued from a blank image with `serial`, out of the reader; its image and document.
fn issued_card(st: &Station, slot: &testrig::Slot, serial: u32) -> (PathBuf, String) {
    let img = st.blank_card(serial);
    let card = slot.insert(&img, &[]);
    let doc = st.issue(&slot.reader_name);
    card.pull();
    (img, doc)
}

#[test]
fn a_renewal_pulled_at_every_apdu_exits_3_naming_the_step_and_a_retry_succeeds() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let (img, doc) = issued_card(&st, &slot, 0x5E00_0030);
    let mut torn = 0;
    let mut resumed = 0;
    let mut steps = std::collections::BTreeSet::new();
    let mut unnamed = Vec::new();
    let mut k = 0u64;
    loop {
        assert!(
            k < 400,
            "no renewal completed with the card pulled after {k} APDUs"
        );
        let Some(line) = torn_round(&st, &slot, &img, k, || {
            st.renew(&doc, &slot.reader_name, PIN)
        }) else {
            break;
        };
        torn += 1;
        let step = [
            "connect to the card",
            "card.generate",
            "card.install",
            "match the card",
            "read the card",
            "verify the holder's PIN",
        ]
        .into_iter()
        .find(|s| line.contains(s));
        if step.is_none() {
            unnamed.push(format!("tear after {k}: {line}"));
        }
        steps.insert(step.unwrap_or("other"));
        // The card back in: the renewal (a new one, or the interrupted one resumed) succeeds.
        let card = slot.insert(&img, &[]);
        let o = st.renew(&doc, &slot.reader_name, PIN);
        assert!(o.status.success(), "retry after tear {k}:\n{}", text(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        if r["resumed"] == true {
            resumed += 1;
        }
        opensc_signs_and_openssl_verifies(&st, &slot.reader_name, PIN, &format!("tear-{k}"));
        card.pull();
        st.check_agreement();
        k += 1;
    }
    assert!(torn > 20, "only {torn} APDUs in a renewal?");
    // Every tear names a step, and tears hit every card step of some length (a two-APDU step
    // such as the PIN check may fall between two tear points when a certificate's length moves
    // the APDU count by a GET RESPONSE), and those after the certificates were issued were
    // resumed.
    assert!(unnamed.is_empty(), "a tear named no step: {unnamed:#?}");
    for step in [
        "card.generate",
        "card.install",
        "match the card",
        "read the card",
    ] {
        assert!(steps.contains(step), "no tear in {step}: {steps:?}");
    }
    assert!(resumed > 5, "only {resumed} renewals resumed");
    assert_eq!(running_service_jobs(&st), 0);
}

#[test]
fn an_unblock_pulled_at_every_apdu_exits_3_naming_the_step_and_a_retry_succeeds() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let (img, doc) = issued_card(&st, &slot, 0x5E00_0031);
    let unblock = |pin: &str| {
        st.run(
            &[
                "--json",
                "unblock",
                "--document",
                &doc,
                "--reader",
                &slot.reader_name,
                "--identity-confirmed",
                "--pin-fd",
                "0",
                "--operator",
                "clerk",
            ],
            &[CLERK_PASSWORD, pin],
        )
    };
    let mut torn = 0;
    let mut k = 0u64;
    loop {
        assert!(
            k < 200,
            "no unblock completed with the card pulled after {k} APDUs"
        );
        // Each round sets the other PIN, so that the retry's PIN is seen to be the card's.
        let pin = if k.is_multiple_of(2) { NEW_PIN } else { PIN };
        if torn_round(&st, &slot, &img, k, || unblock(pin)).is_none() {
            break;
        }
        torn += 1;
        // The card back in: the unblock succeeds and the card takes the PIN it set.
        let card = slot.insert(&img, &[]);
        let o = unblock(pin);
        assert!(o.status.success(), "retry after tear {k}:\n{}", text(&o));
        let o = yubico(&slot.reader_name, &["-a", "verify-pin", "-P", pin]);
        assert!(
            o.status.success(),
            "the PIN set after tear {k}:\n{}",
            text(&o)
        );
        card.pull();
        st.check_agreement();
        k += 1;
    }
    assert!(torn > 3, "only {torn} APDUs in an unblock?");
    assert_eq!(running_service_jobs(&st), 0);
    assert!(image_keys(&img).contains("lifecycle:  locked"));
}

#[test]
fn a_renewal_or_unblock_killed_after_each_journaled_step_is_finished_by_the_next_one() {
    use std::os::unix::process::ExitStatusExt;
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = st.blank_card(0x5E00_0040);
    let _card = slot.insert(&img, &[]);
    let r = &slot.reader_name;
    let doc = st.issue(r);
    for (point, resumes) in [
        ("renew.card.generate", false),
        ("renew.ca.issue", false),
        ("renew.card.install", true),
        ("renew.registry.complete", true),
    ] {
        let o = st.renew_env(&doc, r, PIN, &[("IDSTATION_FAILPOINT", point)]);
        assert_eq!(o.status.signal(), Some(9), "{point}: killed:\n{}", text(&o));
        st.check_agreement();
        let o = st.renew(&doc, r, PIN);
        assert!(o.status.success(), "{point}: renew again:\n{}", text(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(report["resumed"], resumes, "{point}: {report}");
        let on_card = opensc_signs_and_openssl_verifies(&st, r, PIN, point);
        let active = st.certificates(&doc, "active");
        assert!(
            active.contains(&on_card),
            "{point}: {on_card} not in {active:?}"
        );
        st.check_agreement();
    }
    // Every certificate of an undone renewal is revoked, none is active.
    let reg = st.registry();
    let events = reg.audit_events(1, u64::MAX).expect("events");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "renewal.rolled-back")
            .count(),
        2
    );
    let unblock = |env: &[(&str, &str)]| {
        st.run_env(
            &[
                "--json",
                "unblock",
                "--document",
                &doc,
                "--reader",
                r,
                "--identity-confirmed",
                "--pin-fd",
                "0",
                "--operator",
                "clerk",
            ],
            &[CLERK_PASSWORD, NEW_PIN],
            env,
        )
    };
    let o = unblock(&[("IDSTATION_FAILPOINT", "unblock.card.unblock")]);
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
    let o = unblock(&[]);
    assert!(o.status.success(), "{}", text(&o));
    opensc_signs_and_openssl_verifies(&st, r, NEW_PIN, "unblock-after-kill");
    assert_eq!(running_service_jobs(&st), 0);
}

#[test]
fn recover_rolls_back_a_renewal_before_ca_issue_waits_for_the_card_after_and_closes_an_unblock() {
    use std::os::unix::process::ExitStatusExt;
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = st.blank_card(0x5E00_0050);
    let _card = slot.insert(&img, &[]);
    let r = &slot.reader_name;
    let doc = st.issue(r);
    let recover = || -> Vec<serde_json::Value> {
        st.json(&["recover", "--operator", "clerk"], &[CLERK_PASSWORD])
            .as_array()
            .expect("array")
            .iter()
            .filter(|x| x["kind"].is_string())
            .cloned()
            .collect()
    };
    let running = || running_service_jobs(&st);
    // Killed in ca.issue (before the certificates were recorded): recover rolls it back; the
    // old certificates stay the document's, and the next renewal starts afresh.
    let before = st.certificates(&doc, "active");
    let o = st.renew_env(&doc, r, PIN, &[("IDSTATION_FAILPOINT", "renew.ca.issue")]);
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
    let rec = recover();
    assert_eq!(rec.len(), 1, "{rec:?}");
    assert_eq!(
        (rec[0]["kind"].as_str(), rec[0]["outcome"].as_str()),
        (Some("renew"), Some("rolled-back")),
        "{rec:?}"
    );
    assert_eq!(running(), 0);
    assert_eq!(st.certificates(&doc, "active"), before);
    assert!(recover().is_empty(), "a second recover finds nothing");
    // Killed in card.install (certificates issued): recover leaves it for the card and says so;
    // the next renewal with the card resumes it.
    let o = st.renew_env(
        &doc,
        r,
        PIN,
        &[("IDSTATION_FAILPOINT", "renew.card.install")],
    );
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
    let rec = recover();
    assert_eq!(rec.len(), 1, "{rec:?}");
    assert_eq!(rec[0]["outcome"], "waiting-for-card", "{rec:?}");
    assert!(
        rec[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("idstation renew --document {doc}"))),
        "{rec:?}"
    );
    assert_eq!(running(), 1);
    let o = st.renew(&doc, r, PIN);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(report["resumed"], true, "{report}");
    assert_eq!(running(), 0);
    opensc_signs_and_openssl_verifies(&st, r, PIN, "recovered-renewal");
    st.check_agreement();
    // An unblock killed mid-way: recover closes it as failed.
    let o = st.run_env(
        &[
            "--json",
            "unblock",
            "--document",
            &doc,
            "--reader",
            r,
            "--identity-confirmed",
            "--pin-fd",
            "0",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD, NEW_PIN],
        &[("IDSTATION_FAILPOINT", "unblock.card.unblock")],
    );
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
    let rec = recover();
    assert_eq!(
        (
            rec.len(),
            rec[0]["kind"].as_str(),
            rec[0]["outcome"].as_str()
        ),
        (1, Some("unblock"), Some("failed")),
        "{rec:?}"
    );
    assert_eq!(running(), 0);
}
