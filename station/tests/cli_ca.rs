//! The `idstation` CLI's CA commands end to end: a real SoftHSM2 token in the data dir, the
//! real registry file, and openssl / pkilint as independent oracles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HSM_PIN: &str = "hsm-pin-4e1f9a77c2";
const ADMIN_PASSWORD: &str = "admin-password-31d8";
const CLERK_PASSWORD: &str = "clerk-password-77aa";

#[path = "common/holder_pin.rs"]
mod holder_pin;
#[path = "common/software_profiles.rs"]
mod software_profiles;

/// `idstation ARGS` with `password` and then CLERK_PASSWORD (a new operator's) on standard
/// input.
fn idstation(data_dir: &Path, args: &[&str], password: &str) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
    c.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("IDSTATION_LOG", "trace");
    holder_pin::with_stdin(c, &[password, CLERK_PASSWORD])
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "idstation failed:\n{}", text(&o));
    assert_no_secret(&o);
    o
}

fn assert_no_secret(o: &Output) {
    let all = text(o);
    for secret in [HSM_PIN, ADMIN_PASSWORD, CLERK_PASSWORD] {
        assert!(
            !all.contains(secret),
            "a secret appeared in the output:\n{all}"
        );
    }
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (scripts/install-deps.sh installs it)")
    });
    o
}

fn sh_ok(cmd: &mut Command) -> Output {
    let o = run(cmd);
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    o
}

fn init(dir: &Path) {
    let o = ok(idstation(
        dir,
        &[
            "init",
            "--admin",
            "admin",
            "--office",
            "TAS01",
            "--station",
            "test-station",
        ],
        ADMIN_PASSWORD,
    ));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.matches("SHA-256").count(),
        5,
        "root, e-Signature CA, audit, CSCA and Document Signer key fingerprints:\n{out}"
    );
}

/// A P-256 key and a CSR for it, made by openssl (an independent implementation).
fn openssl_csr(dir: &Path, name: &str, curve: &str) -> PathBuf {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    sh_ok(
        Command::new("openssl")
            .args(["ecparam", "-name", curve, "-genkey", "-noout", "-out"])
            .arg(&key),
    );
    sh_ok(Command::new("openssl").args(["req", "-new", "-key"]).arg(&key).args(["-subj", "/C=UZ/serialNumber=PNOUZ-41505852610128/GN=Gulnora/SN=Toxtayeva/CN=Gulnora Toxtayeva", "-out"]).arg(&csr));
    csr
}

fn subject_file(dir: &Path) -> PathBuf {
    let p = dir.join("subject.json");
    std::fs::write(
        &p,
        r#"{"pinfl":"41505852610128","surname":"Toʻxtayeva","given_names":"Gʻulnora"}"#,
    )
    .expect("write subject");
    p
}

/// Every file under `dir` with its content, to prove a refused command changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.insert(p.clone(), Vec::new());
                walk(&p, out);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(dir, &mut m);
    m
}

fn pkilint(tool: &str, args: &[&str], file: &Path) {
    let o = run(Command::new(tool)
        .args(args)
        .args(["-s", "WARNING"])
        .arg(file));
    assert!(
        o.status.success(),
        "{tool} {args:?} found problems in {}:\n{}",
        file.display(),
        text(&o)
    );
}

#[test]
fn init_issue_and_crl_verify_with_openssl_and_pkilint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    init(&data);
    software_profiles::install(&data);
    let root = data.join("ca/root-ca-1.pem");
    let esign = data.join("ca/esign-ca-1.pem");

    let csr = openssl_csr(tmp.path(), "sign", "prime256v1");
    let sign_pem = tmp.path().join("holder-sign.pem");
    ok(idstation(
        &data,
        &[
            "ca",
            "issue",
            "--csr",
            csr.to_str().unwrap(),
            "--profile",
            "software-holder-sign",
            "--out",
            sign_pem.to_str().unwrap(),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    let auth_key = tmp.path().join("auth.key");
    let auth_spki = tmp.path().join("auth.spki.pem");
    sh_ok(
        Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(&auth_key),
    );
    sh_ok(
        Command::new("openssl")
            .args(["ec", "-pubout", "-in"])
            .arg(&auth_key)
            .arg("-out")
            .arg(&auth_spki),
    );
    let auth_pem = tmp.path().join("holder-auth.pem");
    let subject = subject_file(tmp.path());
    ok(idstation(
        &data,
        &[
            "ca",
            "issue",
            "--spki",
            auth_spki.to_str().unwrap(),
            "--subject",
            subject.to_str().unwrap(),
            "--profile",
            "software-holder-auth",
            "--out",
            auth_pem.to_str().unwrap(),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));

    for cert in [&sign_pem, &auth_pem] {
        let o = sh_ok(
            Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(&root)
                .arg("-untrusted")
                .arg(&esign)
                .arg(cert),
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(": OK"),
            "{}",
            text(&o)
        );
    }
    // The subject of holder-sign came from the CSR, the one of holder-auth from the JSON.
    let o = sh_ok(
        Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-subject",
                "-nameopt",
                "utf8,sep_comma_plus",
                "-in",
            ])
            .arg(&auth_pem),
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("serialNumber=PNOUZ-41505852610128"),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Toʻxtayeva"),
        "{}",
        text(&o)
    );

    pkilint(
        "lint_etsi_cert",
        &["lint", "-t", "QCP-N-QSCD-NON-EIDAS-FINAL-CERTIFICATE"],
        &sign_pem,
    );
    pkilint(
        "lint_etsi_cert",
        &["lint", "-t", "NCP-NATURAL-PERSON-CERTIFICATE"],
        &auth_pem,
    );
    pkilint("lint_pkix_cert", &["lint"], &root);
    pkilint("lint_pkix_cert", &["lint"], &esign);

    // Two CRLs in a row: the CRL number goes up, both verify against the e-Signature CA.
    let crl1 = tmp.path().join("esign-1.crl.pem");
    let crl2 = tmp.path().join("esign-2.crl.pem");
    let o = ok(idstation(
        &data,
        &[
            "--json",
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            crl1.to_str().unwrap(),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    let r1: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let o = ok(idstation(
        &data,
        &[
            "--json",
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            crl2.to_str().unwrap(),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    let r2: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        r2["crl_number"].as_u64(),
        r1["crl_number"].as_u64().map(|n| n + 1)
    );
    for crl in [&crl1, &crl2] {
        let o = sh_ok(
            Command::new("openssl")
                .arg("crl")
                .arg("-in")
                .arg(crl)
                .arg("-CAfile")
                .arg(&esign)
                .arg("-verify")
                .arg("-noout"),
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("verify OK"),
            "{}",
            text(&o)
        );
        pkilint("lint_crl", &["lint", "-t", "CRL", "-p", "PKIX"], crl);
    }
    assert!(
        data.join("crl/esign-ca-1.crl").is_file(),
        "the CRL is published in the data dir"
    );

    // ca show --json lists the three CA keys as active, with fingerprints openssl agrees with.
    let o = ok(idstation(&data, &["--json", "ca", "show"], ""));
    let cas: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let root_fp = sh_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&root),
    );
    let root_fp = String::from_utf8_lossy(&root_fp.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or("")
        .to_string();
    let cas = cas.as_array().expect("array");
    assert_eq!(cas.len(), 5, "root, esign, audit, csca, document-signer");
    assert!(cas.iter().all(|c| c["state"] == "active"));
    assert_eq!(
        cas[0]["fingerprint_sha256"].as_str(),
        Some(root_fp.as_str())
    );

    // The HSM PIN is in no file of the data dir and in no registry row.
    for (path, bytes) in snapshot(&data) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(HSM_PIN),
            "HSM PIN found in {}",
            path.display()
        );
        assert!(
            !String::from_utf8_lossy(&bytes).contains(ADMIN_PASSWORD),
            "password found in {}",
            path.display()
        );
    }
}

#[test]
fn bad_input_gives_one_clear_error_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");

    // Missing HSM module: refused before anything is created.
    let o = idstation(
        &data,
        &["init", "--hsm-module", "/nonexistent/libpkcs11.so"],
        ADMIN_PASSWORD,
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/nonexistent/libpkcs11.so"),
        "{}",
        text(&o)
    );
    assert!(!data.exists(), "a failed init leaves no data dir behind");

    init(&data);
    software_profiles::install(&data);
    let again = idstation(&data, &["init"], ADMIN_PASSWORD);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already initialised"),
        "{}",
        text(&again)
    );

    let malformed = tmp.path().join("malformed.csr");
    std::fs::write(
        &malformed,
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .expect("write");
    // A CSR whose signature does not match: flip a byte in the signature of a good one.
    let good = openssl_csr(tmp.path(), "good", "prime256v1");
    let der = tmp.path().join("good.der");
    sh_ok(
        Command::new("openssl")
            .args(["req", "-in"])
            .arg(&good)
            .args(["-outform", "DER", "-out"])
            .arg(&der),
    );
    let mut bytes = std::fs::read(&der).expect("read");
    let last = bytes.len() - 5;
    bytes[last] ^= 0x01;
    let forged = tmp.path().join("forged.der");
    std::fs::write(&forged, &bytes).expect("write");
    let p384 = openssl_csr(tmp.path(), "p384", "secp384r1");
    let out = tmp.path().join("never.pem");

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![
                "--csr",
                malformed.to_str().unwrap(),
                "--profile",
                "software-holder-sign",
            ],
            2,
            "not a valid PKCS#10 request",
        ),
        (
            vec![
                "--csr",
                forged.to_str().unwrap(),
                "--profile",
                "software-holder-sign",
            ],
            2,
            "signature does not verify",
        ),
        (
            vec![
                "--csr",
                p384.to_str().unwrap(),
                "--profile",
                "software-holder-sign",
            ],
            2,
            "P-256",
        ),
        // A qualified holder certificate for a software key: only the issuance job issues
        // holder profiles, from keys generated on a card.
        (
            vec!["--csr", good.to_str().unwrap(), "--profile", "holder-sign"],
            2,
            "only the issuance job",
        ),
        (
            vec!["--csr", good.to_str().unwrap(), "--profile", "holder-auth"],
            2,
            "only the issuance job",
        ),
        // A station audit signer for a software key.
        (
            vec!["--csr", good.to_str().unwrap(), "--profile", "audit-signer"],
            2,
            "generates in its HSM",
        ),
        (
            vec![
                "--csr",
                good.to_str().unwrap(),
                "--profile",
                "no-such-profile",
            ],
            2,
            "no-such-profile",
        ),
    ];
    for (args, code, needle) in cases {
        let before = snapshot(&data);
        let mut full = vec!["ca", "issue"];
        full.extend(args.iter().copied());
        full.extend(["--out", out.to_str().unwrap(), "--operator", "admin"]);
        let o = idstation(&data, &full, ADMIN_PASSWORD);
        assert_eq!(o.status.code(), Some(code), "{full:?}:\n{}", text(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains(needle),
            "{full:?}: expected {needle:?} in:\n{}",
            text(&o)
        );
        assert_eq!(
            stderr
                .lines()
                .filter(|l| l.starts_with("idstation:"))
                .count(),
            1,
            "one error line"
        );
        assert!(!out.exists());
        assert_no_secret(&o);
        let after = snapshot(&data);
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "{full:?} changed the data dir"
        );
        assert_eq!(
            before.get(&data.join("registry.sqlite")),
            after.get(&data.join("registry.sqlite")),
            "{full:?} wrote the registry"
        );
    }

    // A profile file with an unknown key, in the data dir's profile override directory.
    let profiles = data.join("test-profiles/cert");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    let mut bad = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/cert/holder-sign.toml"),
    )
    .expect("read profile");
    bad.push_str("\nkey_usage_extra = true\n");
    std::fs::write(profiles.join("holder-sign.toml"), bad).expect("write");
    let o = idstation(
        &data,
        &[
            "ca",
            "issue",
            "--csr",
            good.to_str().unwrap(),
            "--profile",
            "holder-sign",
            "--out",
            out.to_str().unwrap(),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("holder-sign.toml") && stderr.contains("key_usage_extra"),
        "names the file and the key:\n{}",
        text(&o)
    );
}

#[test]
fn a_clerk_may_not_publish_crls_and_the_refusal_is_audited() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    init(&data);
    ok(idstation(
        &data,
        &[
            "operator",
            "add",
            "--name",
            "clerk1",
            "--role",
            "clerk",
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    let out = tmp.path().join("x.crl");
    let o = idstation(
        &data,
        &[
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            out.to_str().unwrap(),
            "--operator",
            "clerk1",
        ],
        CLERK_PASSWORD,
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("role clerk may not publish CRLs"),
        "{}",
        text(&o)
    );
    let o = idstation(
        &data,
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
        "wrong-password-123",
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(!out.exists());
    let reg = registry::Registry::open_read_only(data.join("registry.sqlite")).expect("registry");
    let events = reg.audit_events(1, u64::MAX).expect("events");
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.action == "operator.refused")
        .collect();
    assert_eq!(refused.len(), 2, "{events:#?}");
    assert_eq!(refused[0].operator, "clerk1");
    assert!(refused[0].details.contains("publish CRLs"));
}

/// The GUI's "revoke a certificate" (station::interactive::revoke_certificate) takes one
/// holder's certificate out of use; the PKI's own certificates (root, e-Signature CA, CSCA,
/// Document Signer, station audit signer) go only through `ca revoke-ca` under dual control.
/// The refusal names that path, changes nothing and is audited.
#[test]
fn revoking_one_certificate_refuses_the_pkis_own_certificates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let pin = tmp.path().join("hsm.pin");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&pin, format!("{HSM_PIN}\n")).expect("pin file");
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    ok(idstation(
        &data,
        &[
            "init",
            "--admin",
            "admin",
            "--station",
            "revoke-test",
            "--hsm-pin-file",
            pin.to_str().unwrap(),
            // The token where this test process's SoftHSM2 configuration points (cargo's
            // runner sets SOFTHSM2_CONF), so the station also opens in this process below.
            "--softhsm-dir",
            hsm::pkcs11::SoftHsm2Token::process_dir()
                .expect("run through cargo (scripts/cargo-runner.sh)")
                .to_str()
                .unwrap(),
        ],
        ADMIN_PASSWORD,
    ));
    let mut st = station::Station::open(&data).expect("open the station");
    let session = st
        .authorize(
            "admin",
            &zeroize::Zeroizing::new(ADMIN_PASSWORD.to_owned()),
            "revoke certificates",
            &[registry::Role::CaAdmin],
        )
        .expect("log in");
    let pki: Vec<registry::Certificate> = {
        let c = st.registry.connection();
        let mut q = c
            .prepare("SELECT serial FROM certificates ORDER BY id")
            .expect("query");
        let serials: Vec<String> = q
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        serials
            .iter()
            .flat_map(|s| st.registry.certificates_by_serial(s).expect("by serial"))
            .collect()
    };
    assert!(
        pki.len() >= 3,
        "init records the PKI's certificates: {}",
        pki.len()
    );
    for cert in &pki {
        let e = station::interactive::revoke_certificate(
            &mut st,
            &session,
            &cert.data.serial,
            "keyCompromise",
        )
        .expect_err(&cert.data.purpose);
        assert_eq!(e.exit_code(), 6, "{e}");
        assert!(e.to_string().contains("ca revoke-ca"), "{e}");
        let now = st
            .registry
            .certificates_by_serial(&cert.data.serial)
            .expect("read");
        assert_eq!(now[0].status, cert.status, "nothing changed");
    }
    let refusals: i64 = st
        .registry
        .connection()
        .query_row(
            "SELECT count(*) FROM audit_events WHERE action = 'certificate.revoke-refused'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(refusals, pki.len() as i64, "every refusal is audited");
}
