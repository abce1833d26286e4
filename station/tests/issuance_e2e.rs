//! Issuance end to end through the real parts: the `idstation` binary, pcscd + vpcd with
//! `vchip` cards, SoftHSM2, the registry file; OpenSC and openssl as independent oracles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const HSM_PIN: &str = "hsm-pin-e2e-93c1d0";
const ADMIN_PASSWORD: &str = "admin-password-e2e-1";
const CLERK_PASSWORD: &str = "clerk-password-e2e-2";
const AUDITOR_PASSWORD: &str = "auditor-password-e2e-3";
// Eight digits: a six-digit PIN also turns up by chance as the microseconds of a log timestamp
// (seen once in CI: "22:41:51.482916Z"), which the secret scans would report.
const PIN: &str = "48291637";
const PUK: &str = "73015528";
#[path = "common/holder_pin.rs"]
mod holder_pin;

const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

struct Station {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    data: PathBuf,
    /// Everything every `idstation` run printed (stdout + stderr, logs at debug level).
    log: std::cell::RefCell<Vec<u8>>,
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

fn assert_no_secret(o: &Output) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for s in [
        HSM_PIN,
        ADMIN_PASSWORD,
        CLERK_PASSWORD,
        AUDITOR_PASSWORD,
        PIN,
        PUK,
    ] {
        assert!(!all.contains(s), "secret {s:?} appeared in output:\n{all}");
    }
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    o
}

impl Station {
    fn new() -> Self {
        testrig::ensure_pcscd().expect("pcscd with vpcd readers");
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let data = dir.join("data");
        let s = Station {
            _tmp: tmp,
            dir,
            data,
            log: Default::default(),
        };
        // The HSM PIN in a 0600 file of the test's own, so the leak checks know it.
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
                "e2e",
                "--hsm-pin-file",
                pin_file.to_str().expect("utf-8 path"),
            ],
            ADMIN_PASSWORD,
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
            ADMIN_PASSWORD,
        );
        s.run(
            &[
                "operator",
                "add",
                "--name",
                "auditor",
                "--role",
                "auditor",
                "--operator",
                "admin",
            ],
            &[ADMIN_PASSWORD, AUDITOR_PASSWORD],
            &[],
        );
        s
    }

    /// `idstation ARGS` with `password` and then CLERK_PASSWORD (the new password of
    /// `operator add`) on standard input, and `env` (test switches, never a secret).
    fn cmd_env(&self, args: &[&str], password: &str, env: &[(&str, &str)]) -> Output {
        self.run(args, &[password, CLERK_PASSWORD], env)
    }

    fn run(&self, args: &[&str], secrets: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
        c.arg("--data-dir").arg(&self.data).args(args);
        c.env("IDSTATION_LOG", "debug");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = holder_pin::output(c, args, &self.dir, secrets, PIN);
        assert_no_secret(&o);
        self.log.borrow_mut().extend_from_slice(&o.stdout);
        self.log.borrow_mut().extend_from_slice(&o.stderr);
        o
    }

    fn cmd(&self, args: &[&str], password: &str) -> Output {
        self.cmd_env(args, password, &[])
    }

    fn ok(&self, args: &[&str], password: &str) -> Output {
        let o = self.cmd(args, password);
        assert!(
            o.status.success(),
            "idstation {args:?} failed:\n{}",
            text(&o)
        );
        o
    }

    /// Take an issued document out of use (reason damaged), so its holder can be issued again.
    fn retire(&self, document: &str) {
        self.ok(
            &[
                "revoke",
                "--document",
                document,
                "--reason",
                "damaged",
                "--operator",
                "clerk",
            ],
            CLERK_PASSWORD,
        );
    }

    fn json(&self, args: &[&str], password: &str) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let o = self.ok(&full, password);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{}", text(&o)))
    }

    fn issue(&self, holder: &Path, reader: &str, env: &[(&str, &str)]) -> Output {
        self.cmd_env(
            &[
                "--json",
                "issue",
                "--holder",
                holder.to_str().unwrap(),
                "--reader",
                reader,
                "--operator",
                "clerk",
            ],
            CLERK_PASSWORD,
            env,
        )
    }

    fn blank_card(&self, serial: u32) -> PathBuf {
        let img = self.dir.join(format!("card-{serial:08X}.img"));
        run(Command::new(testrig::vchip_bin().expect("vchip"))
            .args(["create", "--out"])
            .arg(&img)
            .args(["--serial", &serial.to_string()]));
        img
    }

    fn registry(&self) -> registry::Registry {
        registry::Registry::open_read_only(self.data.join("registry.sqlite")).expect("registry")
    }

    /// The invariants of a failed or recovered issuance: no certificate ACTIVE without a
    /// LOCKED card recorded for it; every certificate of a rolled-back job revoked; no job left
    /// running unless `allow_running`.
    fn check_invariants(&self, allow_running: bool) {
        let reg = self.registry();
        let conn = reg.connection();
        let active_without_locked: i64 = conn
            .query_row(
                "SELECT count(*) FROM certificates c LEFT JOIN cards k ON k.id = c.card_id
                 WHERE c.status = 'active' AND (k.id IS NULL OR k.lifecycle != 'locked')",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(
            active_without_locked, 0,
            "a certificate is ACTIVE without a LOCKED card"
        );
        let unrevoked_of_failed: i64 = conn
            .query_row(
                "SELECT count(*) FROM certificates c JOIN issuance_jobs j ON j.id = c.job_id
                 WHERE j.state IN ('rolled-back', 'failed') AND c.status != 'revoked'",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(
            unrevoked_of_failed, 0,
            "a certificate of a failed job is not revoked"
        );
        if !allow_running {
            let running: i64 = conn
                .query_row(
                    "SELECT count(*) FROM issuance_jobs WHERE state = 'running'",
                    [],
                    |r| r.get(0),
                )
                .expect("query");
            assert_eq!(running, 0, "a job is still running");
        }
    }

    /// Serials (lower-case hex) on the current CRL of the active e-Signature CA key.
    fn crl_serials(&self) -> Vec<String> {
        let out = self.dir.join("current.crl.pem");
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
            ADMIN_PASSWORD,
        );
        let o = run(Command::new("openssl")
            .args(["crl", "-noout", "-text", "-in"])
            .arg(&out));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
            .map(|s| {
                s.trim()
                    .to_ascii_lowercase()
                    .trim_start_matches('0')
                    .to_string()
            })
            .collect()
    }
}

/// The lifecycle a card image records (`vchip show`), read from the file: asking the reader
/// (`idstation readers`) would send APDUs to every card in every reader, including other tests'
/// cards in the middle of their own work.
fn image_lifecycle(img: &Path) -> String {
    let o = run(Command::new(testrig::vchip_bin().expect("vchip"))
        .arg("show")
        .arg(img));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("lifecycle:").map(|s| s.trim().to_string()))
        .unwrap_or_default()
}

/// pkcs11-tool with OpenSC configured for all six test readers (its default is four).
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

/// OpenSC signs with the card's 9C key (PIN, context-specific login); openssl verifies the
/// signature with the 9C certificate read from the card, and the certificate chain to the root.
fn opensc_signs_and_openssl_verifies(st: &Station, reader: &str, tag: &str) {
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
            "--id",
            "02",
            "--output-file",
        ])
        .arg(&cert_der));
    let sig = dir.join("sig.der");
    run(pkcs11_tool()
        .args(["--module", OPENSC, "--slot", &slot, "--login", "--pin", PIN])
        .args([
            "--sign",
            "--mechanism",
            "ECDSA",
            "--id",
            "02",
            "--signature-format",
            "openssl",
            "--input-file",
        ])
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
}

#[test]
fn three_fixture_holders_are_issued_and_their_cards_sign_through_opensc() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    for (i, name) in ["holder-01.json", "holder-02.json", "holder-03.json"]
        .iter()
        .enumerate()
    {
        let img = st.blank_card(0x1D00_0001 + i as u32);
        let card = slot.insert(&img, &[]);
        let o = st.issue(&fixture(name), &slot.reader_name, &[]);
        assert!(o.status.success(), "{name}:\n{}", text(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        let doc = r["document"].as_str().expect("document").to_string();
        assert_eq!(r["certificates"].as_array().map(Vec::len), Some(2), "{r}");
        opensc_signs_and_openssl_verifies(&st, &slot.reader_name, name);
        card.pull();

        let show = st.json(
            &["show", "--document", &doc, "--operator", "clerk"],
            CLERK_PASSWORD,
        );
        assert_eq!(show["document"]["status"], "active", "{show}");
        let certs = show["document"]["certificates"].as_array().expect("certs");
        assert_eq!(certs.len(), 2);
        assert!(certs.iter().all(|c| c["status"] == "active"), "{show}");
    }
    // One active card per holder: issuing holder-01 again is a conflict (exit 5).
    let img = st.blank_card(0x1D00_00FF);
    let card = slot.insert(&img, &[]);
    let o = st.issue(&fixture("holder-01.json"), &slot.reader_name, &[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already has an active card"),
        "{}",
        text(&o)
    );
    // ... until the old card is declared lost: then the same blank card is issued.
    let holder = st.json(
        &["show", "--pinfl", "41505852610128", "--operator", "clerk"],
        CLERK_PASSWORD,
    );
    let old = holder["holder"]["documents"][0]["document"]
        .as_str()
        .expect("doc")
        .to_string();
    st.ok(
        &[
            "revoke",
            "--document",
            &old,
            "--reason",
            "lost",
            "--operator",
            "clerk",
        ],
        CLERK_PASSWORD,
    );
    let o = st.issue(&fixture("holder-01.json"), &slot.reader_name, &[]);
    assert!(o.status.success(), "{}", text(&o));
    card.pull();
    let revoked: Vec<String> = st.json(
        &["show", "--document", &old, "--operator", "clerk"],
        CLERK_PASSWORD,
    )["document"]["certificates"]
        .as_array()
        .expect("certs")
        .iter()
        .map(|c| {
            c["serial"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('0')
                .to_string()
        })
        .collect();
    let crl = st.crl_serials();
    for s in &revoked {
        assert!(
            crl.contains(s),
            "revoked certificate {s} is not on the CRL {crl:?}"
        );
    }
    st.check_invariants(false);

    // Roles: an auditor may not issue; a clerk may not add operators. Both refusals are audited.
    let o = st.cmd(
        &[
            "issue",
            "--holder",
            fixture("holder-02.json").to_str().unwrap(),
            "--operator",
            "auditor",
        ],
        AUDITOR_PASSWORD,
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let o = st.cmd(
        &[
            "operator",
            "add",
            "--name",
            "x",
            "--role",
            "clerk",
            "--operator",
            "clerk",
        ],
        CLERK_PASSWORD,
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let events = st.registry().audit_events(1, u64::MAX).expect("events");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "operator.refused")
            .count(),
        2
    );

    // The audit export of the run verifies offline (no database), with only the root certificate.
    let export = st.dir.join("audit-export");
    st.ok(
        &[
            "audit",
            "export",
            "--out",
            export.to_str().unwrap(),
            "--operator",
            "auditor",
        ],
        AUDITOR_PASSWORD,
    );
    let root = st.dir.join("root.pem");
    std::fs::copy(st.data.join("ca/root-ca-1.pem"), &root).expect("copy root");
    let o = Command::new(env!("CARGO_BIN_EXE_idstation"))
        .args(["audit", "verify"])
        .arg(&export)
        .arg("--root")
        .arg(&root)
        .current_dir(&st.dir)
        .env_remove("IDSTATION_PASSWORD")
        .output()
        .expect("audit verify");
    assert!(o.status.success(), "audit verify:\n{}", text(&o));
    let events = std::fs::read_to_string(export.join("events.jsonl")).expect("events");
    assert_eq!(
        events.matches("\"issuance.completed\"").count(),
        4,
        "three holders + the re-issue"
    );

    // No PIN, PUK, password or HSM PIN in any file of the data dir (registry, WAL, config...),
    // nor in anything the station printed or logged. The PUKs are the station's own random
    // ones, read back from the PIN letters.
    let puks: Vec<String> = std::fs::read_dir(&st.dir)
        .expect("test dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pdf"))
        .map(|p| holder_pin::puk_in_letter(&p))
        .collect();
    assert_eq!(puks.len(), 4, "one PIN letter per issued card");
    let mut secrets: Vec<&str> = vec![
        HSM_PIN,
        ADMIN_PASSWORD,
        CLERK_PASSWORD,
        AUDITOR_PASSWORD,
        PIN,
    ];
    secrets.extend(puks.iter().map(String::as_str));
    for entry in walk(&st.data) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        for s in &secrets {
            assert!(
                !contains(&bytes, s.as_bytes()),
                "secret {s:?} found in {}",
                entry.display()
            );
        }
    }
    for puk in &puks {
        assert!(
            !contains(&st.log.borrow(), puk.as_bytes()),
            "a PUK appeared in the station's output or logs"
        );
    }

    // Nor any card's management key (derived in the HSM by a separate process, as the station
    // does) in those files or in anything the station printed or logged.
    let serials: Vec<String> = [0x1D00_0001u32, 0x1D00_0002, 0x1D00_0003, 0x1D00_00FF]
        .iter()
        .map(u32::to_string)
        .collect();
    let child = Command::new(std::env::current_exe().expect("test exe"))
        .args([
            "--exact",
            "child_prints_management_keys",
            "--ignored",
            "--nocapture",
        ])
        .env("IDSTATION_TEST_DATA", &st.data)
        .env("IDSTATION_TEST_SERIALS", serials.join(","))
        // The child opens the station in its own process: start it with the data dir's HSM
        // environment, as the idstation binary restarts itself with it.
        .envs(station::hsm_env::for_data_dir(&st.data).expect("HSM environment"))
        .output()
        .expect("child");
    let keys: Vec<Vec<u8>> = String::from_utf8_lossy(&child.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("MGMT-KEY "))
        .map(|h| hex::decode(h.trim()).expect("hex"))
        .collect();
    assert_eq!(keys.len(), serials.len(), "child output:\n{}", text(&child));
    let log = st.log.borrow();
    let files: Vec<Vec<u8>> = walk(&st.data)
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect();
    for key in &keys {
        for form in [
            key.clone(),
            hex::encode(key).into_bytes(),
            hex::encode_upper(key).into_bytes(),
        ] {
            assert!(
                !contains(&log, &form),
                "a management key appeared in the station's output"
            );
            assert!(
                !files.iter().any(|f| contains(f, &form)),
                "a management key was found in the data dir"
            );
        }
    }
}

/// Not a test on its own: run by the test above in a separate process (SoftHSM2 reads its
/// configuration once per process) to derive the per-card management keys the way the station
/// does, so the parent can look for them.
#[test]
#[ignore = "child process of three_fixture_holders_are_issued_and_their_cards_sign_through_opensc"]
fn child_prints_management_keys() {
    let data = PathBuf::from(std::env::var("IDSTATION_TEST_DATA").expect("IDSTATION_TEST_DATA"));
    let st = station::Station::open(&data).expect("open station");
    let profile = st.card_profile().expect("card profile");
    let len = profile.management_key.algorithm.key_len();
    for serial in std::env::var("IDSTATION_TEST_SERIALS")
        .expect("serials")
        .split(',')
    {
        let serial: u32 = serial.parse().expect("serial");
        let secret = hsm::derive_card_secret(
            st.keys.as_ref(),
            &st.config.ca.card_master_key,
            station::card::MGMT_KEY_PURPOSE,
            &serial.to_be_bytes(),
        )
        .expect("derive");
        println!("MGMT-KEY {}", hex::encode(&secret[..len]));
    }
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// How many APDUs a clean issuance sends (from its report).
fn apdus_of_one_issuance(st: &Station, slot: &testrig::Slot) -> u64 {
    let img = st.blank_card(0x7E00_0000);
    let card = slot.insert(&img, &[]);
    let o = st.issue(&fixture("holder-02.json"), &slot.reader_name, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    card.pull();
    let doc = r["document"].as_str().expect("doc").to_string();
    st.retire(&doc);
    r["apdus"].as_u64().expect("apdus")
}

/// The tear points are shared out over this many stations working at once, each with its own
/// data dir, SoftHSM2 token, registry and leased vpcd slot. An iteration mostly waits (pcscd
/// polls, process starts, fsync), so stations in parallel shorten the test even on 2 cores.
const TEAR_STATIONS: u64 = 4;

#[test]
fn a_card_pulled_at_every_apdu_leaves_a_recoverable_state_and_issuing_again_succeeds() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let total = apdus_of_one_issuance(&st, &slot);
    assert!(total > 20, "an issuance sends {total} APDUs");
    // Tear after k = 1, 2, 3, ... APDUs until an issuance completes (k beyond the last APDU the
    // card sees), so every APDU of an issuance is torn once, whatever the station's own count
    // (`total`, which leaves out a few exchanges) says. The points are dealt out to
    // TEAR_STATIONS stations working at once, each taking the next k in turn; this station is
    // number 0.
    let next = AtomicU64::new(1);
    let first_success = AtomicU64::new(u64::MAX);
    let outcomes = Mutex::new(BTreeMap::new());
    let limit = 2 * total + 50;
    let run = |st: &Station, slot: &testrig::Slot| {
        tear_until_complete(st, slot, &next, &first_success, &outcomes, limit)
    };
    std::thread::scope(|s| {
        let others: Vec<_> = (1..TEAR_STATIONS)
            .map(|w| {
                std::thread::Builder::new()
                    .name(format!("tear-station-{w}"))
                    .spawn_scoped(s, || {
                        let st = Station::new();
                        let slot = testrig::Slot::lease();
                        run(&st, &slot);
                    })
                    .expect("spawn")
            })
            .collect();
        run(&st, &slot);
        // Join all before reporting, so a failure shows its own panic message (printed by the
        // failing thread) and no station is left half-way.
        let results: Vec<_> = others.into_iter().map(|h| h.join()).collect();
        for r in results {
            if let Err(panic) = r {
                std::panic::resume_unwind(panic);
            }
        }
    });
    let complete_at = first_success.load(Ordering::SeqCst);
    let outcomes = outcomes.into_inner().expect("outcomes");
    for k in 1..complete_at {
        assert_eq!(
            outcomes.get(&k),
            Some(&false),
            "tear after {k}: expected a torn (failed) issuance"
        );
    }
    assert_eq!(outcomes.get(&complete_at), Some(&true));
    assert!(
        complete_at > total,
        "the first untorn issuance came at k = {complete_at}, within the {total} APDUs the station counts"
    );
    eprintln!(
        "tear test: the card was pulled after each of {} APDUs (the station counts {total})",
        complete_at - 1
    );
}

/// For every k in `ks`: a blank card torn out after its k-th APDU during an issuance leaves a
/// state the invariants accept, and issuing again on the re-inserted card succeeds (or recovery
/// completes the torn issuance). Then every certificate of a rolled-back job of this station is
/// on its CRL.
/// Take tear points `k` from `next` until one beyond the first completed issuance; record
/// whether each issuance completed (true) or was torn (false).
fn tear_until_complete(
    st: &Station,
    slot: &testrig::Slot,
    next: &AtomicU64,
    first_success: &AtomicU64,
    outcomes: &Mutex<BTreeMap<u64, bool>>,
    limit: u64,
) {
    let holder = fixture("holder-02.json");
    loop {
        let k = next.fetch_add(1, Ordering::SeqCst);
        if k > first_success.load(Ordering::SeqCst) {
            break;
        }
        assert!(
            k <= limit,
            "no issuance completed with the card pulled after up to {limit} APDUs"
        );
        let img = st.blank_card(0x7E00_0000 + k as u32);
        let torn = slot.insert(&img, &["--tear-after", &k.to_string()]);
        let o = st.issue(&holder, &slot.reader_name, &[]);
        let _ = torn.wait_removed(Duration::from_secs(10));
        outcomes
            .lock()
            .expect("outcomes")
            .insert(k, o.status.success());
        if o.status.success() {
            // The card was not pulled before the end of the issuance (k beyond its APDUs).
            first_success.fetch_min(k, Ordering::SeqCst);
            let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
            let doc = r["document"].as_str().expect("doc").to_string();
            st.retire(&doc);
            continue;
        }
        assert_eq!(
            o.status.code(),
            Some(3),
            "tear after {k}: exit 3 expected:\n{}",
            text(&o)
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        let error_line = stderr
            .lines()
            .find(|l| l.starts_with("idstation: "))
            .unwrap_or_default()
            .to_string();
        // e.g. "idstation: card: card removed during 'write certificate 9C' (job step card.complete)"
        assert!(
            error_line.contains("card: ") && error_line.contains(" during '"),
            "tear after {k}: the error names the card step:\n{stderr}"
        );
        st.check_invariants(true);

        // Re-insert the card: issuing again succeeds, or recovery finds the card LOCKED with
        // the torn job's certificates and completes that issuance instead.
        let card = slot.insert(&img, &[]);
        let o = st.issue(&holder, &slot.reader_name, &[]);
        card.pull();
        let doc = if o.status.success() {
            let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
            r["document"].as_str().expect("doc").to_string()
        } else {
            assert_eq!(
                o.status.code(),
                Some(5),
                "tear after {k}: re-issue:\n{}",
                text(&o)
            );
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("recovery just completed"),
                "tear after {k}:\n{}",
                text(&o)
            );
            let h = st.json(
                &["show", "--pinfl", "32307921400450", "--operator", "clerk"],
                CLERK_PASSWORD,
            );
            let docs = h["holder"]["documents"].as_array().expect("docs").clone();
            docs.iter()
                .find(|d| d["status"] == "active")
                .expect("an active document")["document"]
                .as_str()
                .expect("doc")
                .to_string()
        };
        st.check_invariants(false);
        st.retire(&doc);
    }
    // Every certificate of every failed job is on the CRL.
    let crl = st.crl_serials();
    let reg = st.registry();
    let mut stmt = reg
        .connection()
        .prepare("SELECT c.serial FROM certificates c JOIN issuance_jobs j ON j.id = c.job_id WHERE j.state = 'rolled-back'")
        .expect("prepare");
    let failed: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|s| s.expect("row"))
        .collect();
    for s in failed {
        assert!(
            crl.contains(&s.trim_start_matches('0').to_string()),
            "certificate {s} of a failed job is not on the CRL"
        );
    }
}

#[test]
fn a_crash_after_each_journaled_step_is_finished_or_undone_by_recover() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let holder = fixture("holder-03.json");
    for (i, point) in [
        "job.created",
        "card.prepare",
        "ca.issue",
        "card.complete",
        "card.lock",
        "card.locked",
    ]
    .iter()
    .enumerate()
    {
        let img = st.blank_card(0x0C00_0001 + i as u32);
        let card = slot.insert(&img, &[]);
        let o = st.issue(
            &holder,
            &slot.reader_name,
            &[("IDSTATION_FAILPOINT", point)],
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            o.status.signal(),
            Some(9),
            "failpoint {point}: killed by SIGKILL:\n{}",
            text(&o)
        );
        let o = st.ok(
            &["--json", "recover", "--operator", "clerk"],
            CLERK_PASSWORD,
        );
        let resolved: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        st.check_invariants(false);
        let outcome = resolved[0]["outcome"].as_str().unwrap_or("").to_string();
        // Killed after LOCK reached the card: recovery completes the issuance; before: rolled back.
        if *point == "card.locked" {
            assert_eq!(outcome, "completed", "{point}: {resolved}");
        } else {
            assert_eq!(outcome, "rolled-back", "{point}: {resolved}");
            // The same card is issued after recovery (it is reset first when needed).
            let o = st.issue(&holder, &slot.reader_name, &[]);
            assert!(o.status.success(), "{point}: issuing again:\n{}", text(&o));
        }
        card.pull();
        let h = st.json(
            &["show", "--pinfl", "50102033001175", "--operator", "clerk"],
            CLERK_PASSWORD,
        );
        let doc = h["holder"]["documents"]
            .as_array()
            .expect("docs")
            .iter()
            .find(|d| d["status"] == "active")
            .cloned()
            .expect("active doc");
        st.retire(doc["document"].as_str().expect("doc"));
    }
}

#[test]
fn two_processes_issuing_to_one_holder_on_two_readers_one_wins_the_other_exits_5() {
    let st = Station::new();
    let a = testrig::Slot::lease();
    let b = testrig::Slot::lease();
    let ca = a.insert(&st.blank_card(0x2C00_0001), &[]);
    let cb = b.insert(&st.blank_card(0x2C00_0002), &[]);
    let holder = fixture("holder-02.json");
    // Both processes at once, each with the holder's PIN on its standard input.
    let run = |reader: String| {
        let args = [
            "--json",
            "issue",
            "--holder",
            holder.to_str().unwrap(),
            "--reader",
            &reader,
            "--operator",
            "clerk",
        ];
        let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
        c.arg("--data-dir").arg(&st.data).args(args);
        holder_pin::output(c, &args, &st.dir, &[CLERK_PASSWORD], PIN)
    };
    let (oa, ob) = std::thread::scope(|s| {
        let pa = s.spawn(|| run(a.reader_name.clone()));
        let pb = s.spawn(|| run(b.reader_name.clone()));
        (pa.join().expect("a"), pb.join().expect("b"))
    });
    let codes = [oa.status.code(), ob.status.code()];
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(5)),
        "one 0 and one 5:\n{}\n{}",
        text(&oa),
        text(&ob)
    );
    ca.pull();
    cb.pull();
    st.check_invariants(false);
}

/// A registered holder who comes back with another surname and another photo: `issue` refuses
/// before the card (exit 2, naming the fields; the card stays BLANK, no number is spent, the
/// registry keeps the old data) unless the clerk passes `--update-holder`; then the registry
/// takes the new data and `holder.updated` records each change, old and new.
#[test]
fn a_registered_holder_with_changed_data_is_refused_unless_the_clerk_confirms_the_update() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let first = slot.insert(&st.blank_card(0x2D00_0001), &[]);
    let o = st.issue(&fixture("holder-01.json"), &slot.reader_name, &[]);
    assert!(o.status.success(), "first issuance:\n{}", text(&o));
    let issued: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let document = issued["document"].as_str().expect("document").to_owned();
    first.pull();
    st.retire(&document);

    // The same PINFL, married name, new photo.
    let mut changed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("holder-01.json")).expect("fixture"))
            .expect("json");
    changed["surname"] = "Rahimova".into();
    changed["surname_cyrillic"] = "Раҳимова".into();
    let photo = st.dir.join("photo-new.jpg");
    std::fs::copy(fixture("photo-02.jpg"), &photo).expect("photo");
    changed["photo"] = photo.to_str().expect("utf-8").into();
    let file = st.dir.join("holder-01-changed.json");
    std::fs::write(&file, changed.to_string()).expect("write");

    let documents_before: i64 = st
        .registry()
        .connection()
        .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
        .expect("count");
    let second_img = st.blank_card(0x2D00_0002);
    let second = slot.insert(&second_img, &[]);
    let o = st.issue(&file, &slot.reader_name, &[]);
    assert_eq!(o.status.code(), Some(2), "refused:\n{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("PINFL 41505852610128 is registered with other data")
            && err.contains("surname, surname_cyrillic, photo")
            && err.contains("--update-holder"),
        "{err}"
    );
    let reg = st.registry();
    let h = reg
        .holder_by_pinfl("41505852610128")
        .expect("query")
        .expect("holder");
    assert_eq!(
        h.data.surname, "Toʻxtayeva",
        "the registry keeps the old data"
    );
    let documents_after: i64 = reg
        .connection()
        .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
        .expect("count");
    assert_eq!(documents_after, documents_before, "no number spent");
    // The refusal is audited on the holder; the registry's values it showed back are a read of
    // the holder's record.
    let audited = |action: &str| -> i64 {
        reg.connection()
            .query_row(
                "SELECT count(*) FROM audit_events WHERE action = ?1 AND object = 'holder:41505852610128'",
                [action],
                |r| r.get(0),
            )
            .expect("count")
    };
    assert_eq!(audited("issuance.refused"), 1);
    let reads: i64 = reg
        .connection()
        .query_row(
            "SELECT count(*) FROM audit_events WHERE action = 'holder.read'
               AND object = 'holder:41505852610128' AND details LIKE '%registered with other data%'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(reads, 1);
    let state = image_lifecycle(&second_img).to_ascii_lowercase();
    assert!(state.contains("blank"), "the card was not touched: {state}");

    // Confirmed: issued, registry updated, each change audited with old and new.
    let args = [
        "--json",
        "issue",
        "--holder",
        file.to_str().unwrap(),
        "--reader",
        &slot.reader_name,
        "--update-holder",
        "--operator",
        "clerk",
    ];
    let o = st.cmd(&args, CLERK_PASSWORD);
    assert!(o.status.success(), "confirmed issuance:\n{}", text(&o));
    second.pull();
    let reg = st.registry();
    let h = reg
        .holder_by_pinfl("41505852610128")
        .expect("query")
        .expect("holder");
    assert_eq!(h.data.surname, "Rahimova");
    assert_eq!(h.data.surname_cyrillic.as_deref(), Some("Раҳимова"));
    let details: String = reg
        .connection()
        .query_row(
            "SELECT details FROM audit_events WHERE action = 'holder.updated'",
            [],
            |r| r.get(0),
        )
        .expect("one holder.updated event");
    let d: serde_json::Value = serde_json::from_str(&details).expect("json");
    let changes = d["changes"].as_array().expect("changes");
    let surname = changes
        .iter()
        .find(|c| c["field"] == "surname")
        .expect("surname change");
    assert_eq!(surname["old"], "Toʻxtayeva");
    assert_eq!(surname["new"], "Rahimova");
    assert!(changes.iter().any(|c| c["field"] == "photo"), "{d}");
    assert_eq!(d["confirmed_by_clerk"], true);
    st.check_invariants(false);
}

/// The holder's secrets are the holder's: the PIN comes in on a file descriptor (never from the
/// environment), weak PINs and a taken letter path are refused before the card, and the PUK is
/// the station's random one, printed only in the PIN letter (a PDF pdftotext reads), 0600 —
/// and it is the PUK on the card: it unblocks a PIN blocked by three wrong tries.
#[test]
fn the_puk_is_drawn_by_the_station_printed_once_in_the_letter_and_unblocks_the_card() {
    use std::os::unix::fs::PermissionsExt;
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let card = slot.insert(&st.blank_card(0x2E00_0001), &[]);
    let holder = fixture("holder-03.json");
    let issue_args = |letter: &Path| -> Vec<String> {
        [
            "--json",
            "issue",
            "--holder",
            holder.to_str().unwrap(),
            "--reader",
            &slot.reader_name,
            "--pin-letter",
            letter.to_str().unwrap(),
            "--operator",
            "clerk",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run_with_pin = |letter: &Path, pin: &str, env: &[(&str, &str)]| {
        let args = issue_args(letter);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
        c.arg("--data-dir").arg(&st.data).args(&args);
        for (k, v) in env {
            c.env(k, v);
        }
        holder_pin::output(c, &args, &st.dir, &[CLERK_PASSWORD], pin)
    };
    let img = st.dir.join(format!("card-{:08X}.img", 0x2E00_0001u32));
    let blank = || image_lifecycle(&img).to_ascii_lowercase().contains("blank");

    // The environment is not a way in: no --pin-fd, no terminal → refused, whatever is set
    // (the operator's password is on standard input, the PIN only in the environment).
    let letter = st.dir.join("letter-env.pdf");
    let args = issue_args(&letter);
    let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
    c.arg("--data-dir")
        .arg(&st.data)
        .args(&args)
        .env("IDSTATION_PIN", PIN)
        .env("IDSTATION_PUK", PUK);
    let o = holder_pin::with_stdin(c, &[CLERK_PASSWORD]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--pin-fd"),
        "{}",
        text(&o)
    );

    // A weak PIN (a run; the holder's birth date) is refused before the card.
    for (weak, rule) in [
        ("345678", "consecutive digits"),
        ("01022003", "date of birth"),
    ] {
        let o = run_with_pin(&letter, weak, &[]);
        assert_eq!(o.status.code(), Some(2), "{weak}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("pin: ") && err.contains(rule), "{weak}: {err}");
        assert!(!err.contains(weak), "the PIN is not echoed: {err}");
    }
    // A letter path that is taken is refused before the card; nothing is overwritten.
    let taken = st.dir.join("taken.pdf");
    std::fs::write(&taken, b"someone else's file").expect("write");
    let o = run_with_pin(&taken, PIN, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pin-letter"));
    assert_eq!(std::fs::read(&taken).expect("read"), b"someone else's file");
    assert!(blank(), "no refusal touched the card");
    assert!(!letter.exists(), "no letter for a refused issuance");

    // Issued: the letter is a private PDF with the document number and an 8-digit PUK.
    let o = run_with_pin(&letter, PIN, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let document = r["document"].as_str().expect("document");
    let mode = std::fs::metadata(&letter)
        .expect("letter")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the letter is owner-only");
    let puk = holder_pin::puk_in_letter(&letter);
    assert_eq!(puk.len(), 8, "{puk}");
    assert!(puk.bytes().all(|b| b.is_ascii_digit()));
    assert_ne!(puk, PUK, "not the value the tests used to hand in");
    let text_of_letter = Command::new("pdftotext")
        .arg(&letter)
        .arg("-")
        .output()
        .expect("pdftotext");
    assert!(String::from_utf8_lossy(&text_of_letter.stdout).contains(document));
    let all = text(&o);
    assert!(!all.contains(&puk), "the PUK is printed only in the letter");
    for entry in walk(&st.data) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !contains(&bytes, puk.as_bytes()),
            "the PUK is stored in {}",
            entry.display()
        );
    }

    // It is the card's PUK: three wrong PINs block the card, the PUK unblocks it.
    let piv = |args: &[&str]| {
        Command::new("yubico-piv-tool")
            .args(["-r", &slot.reader_name])
            .args(args)
            .output()
            .expect("yubico-piv-tool")
    };
    for _ in 0..3 {
        let o = piv(&["-a", "verify-pin", "-P", "99999999"]);
        assert!(!o.status.success(), "a wrong PIN is refused");
    }
    let o = piv(&["-a", "verify-pin", "-P", PIN]);
    assert!(!o.status.success(), "blocked after three wrong PINs");
    let new_pin = "70418263";
    let o = piv(&["-a", "unblock-pin", "-P", &puk, "-N", new_pin]);
    assert!(o.status.success(), "unblock with the letter's PUK: {o:?}");
    let o = piv(&["-a", "verify-pin", "-P", new_pin]);
    assert!(o.status.success(), "the new PIN works: {o:?}");
    card.pull();
}
