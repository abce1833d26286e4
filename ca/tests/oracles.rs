//! Independent oracles over the CA's output: `openssl verify` / `openssl crl -verify` check
//! the chain and the CRL signatures, pkilint checks the certificates against RFC 5280 and
//! ETSI EN 319 412-2/-5 and the CRL against RFC 5280. The tools must be installed: a missing
//! tool fails the test, it is never skipped. The CA keys are in SoftHSM2 (PKCS#11).

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{holder, pkilint, run, run_ok, write};
use hsm::KeyStore;

struct Fixture {
    dir: tempfile::TempDir,
    root: ca::Issuer,
    esign: ca::Issuer,
    auth: ca::IssuedCert,
    sign: ca::IssuedCert,
    crl_der: Vec<u8>,
}

fn csr_from_openssl(dir: &Path, name: &str, newkey: &[&str]) -> Vec<u8> {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&[
        "-keyout",
        &key,
        "-subj",
        "/CN=ignored",
        "-outform",
        "DER",
        "-out",
        &csr,
    ]);
    run_ok("openssl", &args, dir);
    std::fs::read(dir.join(csr)).expect("openssl wrote the CSR")
}

fn p256_csr(dir: &Path, name: &str) -> Vec<u8> {
    csr_from_openssl(
        dir,
        name,
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    )
}

fn fixture(store: &dyn KeyStore) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = profiles::builtin().expect("builtin profiles");
    let now = SystemTime::now();
    store.generate_p256("root-2026").expect("root key");
    let root = ca::create_root(store, set.cert("root-ca").unwrap(), "root-2026", now).unwrap();
    store.generate_p256("esign-2026").expect("esign key");
    let esign = ca::create_subordinate_ca(
        store,
        set.cert("esign-ca").unwrap(),
        &root,
        "esign-2026",
        now,
    )
    .unwrap();
    let auth_csr = p256_csr(dir.path(), "auth");
    let auth = ca::issue_from_csr(
        store,
        set.cert("holder-auth").unwrap(),
        &esign,
        &auth_csr,
        &holder(),
        now,
    )
    .unwrap();
    let sign_csr = p256_csr(dir.path(), "sign");
    let sign = ca::issue_from_csr(
        store,
        set.cert("holder-sign").unwrap(),
        &esign,
        &sign_csr,
        &holder(),
        now,
    )
    .unwrap();
    let crl_der = ca::issue_crl(
        store,
        set.crl("esign-crl").unwrap(),
        &esign,
        1,
        &[
            ca::RevokedEntry {
                serial: sign.serial.clone(),
                revoked_at: now - Duration::from_secs(5),
                reason: Some(ca::RevocationReason::KeyCompromise),
            },
            ca::RevokedEntry {
                serial: vec![0x55; 16],
                revoked_at: now - Duration::from_secs(86_400),
                reason: Some(ca::RevocationReason::CessationOfOperation),
            },
            ca::RevokedEntry {
                serial: vec![0x56; 16],
                revoked_at: now - Duration::from_secs(60),
                reason: None,
            },
        ],
        now,
    )
    .unwrap();
    let d = dir.path();
    write(d, "root.pem", &ca::cert_pem(root.cert_der()).unwrap());
    write(d, "esign-ca.pem", &ca::cert_pem(esign.cert_der()).unwrap());
    write(d, "holder-auth.pem", &ca::cert_pem(&auth.der).unwrap());
    write(d, "holder-sign.pem", &ca::cert_pem(&sign.der).unwrap());
    write(d, "crl.pem", &ca::crl_pem(&crl_der).unwrap());
    write(
        d,
        "chain.pem",
        &(ca::cert_pem(esign.cert_der()).unwrap() + &ca::cert_pem(root.cert_der()).unwrap()),
    );
    // Debug aid: IDSTATION_KEEP_ORACLE_DIR=<dir> keeps a copy of the files the oracles read.
    if let Some(keep) = std::env::var_os("IDSTATION_KEEP_ORACLE_DIR") {
        let keep = Path::new(&keep);
        std::fs::create_dir_all(keep).expect("create keep dir");
        for f in [
            "root.pem",
            "esign-ca.pem",
            "holder-auth.pem",
            "holder-sign.pem",
            "crl.pem",
            "chain.pem",
        ] {
            std::fs::copy(d.join(f), keep.join(f)).expect("copy oracle file");
        }
    }
    Fixture {
        dir,
        root,
        esign,
        auth,
        sign,
        crl_der,
    }
}

/// Keys live in SoftHSM2 through `hsm::pkcs11::Pkcs11Store`, as in the station.
fn store() -> hsm::pkcs11::Pkcs11Store {
    common::softhsm_store()
}

#[test]
fn openssl_verifies_holder_auth_and_holder_sign_chains() {
    let s = store();
    let f = fixture(&s);
    let d = f.dir.path();
    for holder in ["holder-auth.pem", "holder-sign.pem"] {
        let out = run_ok(
            "openssl",
            &[
                "verify",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "esign-ca.pem",
                holder,
            ],
            d,
        );
        assert_eq!(out.trim(), format!("{holder}: OK"));
    }
    // The authentication certificate is fit for TLS client authentication.
    run_ok(
        "openssl",
        &[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "esign-ca.pem",
            "holder-auth.pem",
        ],
        d,
    );
}

#[test]
fn openssl_verifies_the_crl_and_sees_the_revocation() {
    let s = store();
    let f = fixture(&s);
    let d = f.dir.path();
    let out = run_ok(
        "openssl",
        &[
            "crl",
            "-in",
            "crl.pem",
            "-CAfile",
            "chain.pem",
            "-verify",
            "-noout",
        ],
        d,
    );
    assert!(out.contains("verify OK"), "{out}");
    let text = run_ok("openssl", &["crl", "-in", "crl.pem", "-noout", "-text"], d);
    assert!(
        text.contains("X509v3 CRL Number: \n                1"),
        "{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("Cessation Of Operation"), "{text}");
    assert!(
        text.contains(&f.sign.serial_hex().to_uppercase()),
        "revoked serial listed: {text}"
    );
    // openssl, checking the CRL, refuses the revoked certificate and accepts the other one.
    let (code, out) = run(
        "openssl",
        &[
            "verify",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "esign-ca.pem",
            "holder-sign.pem",
        ],
        d,
    );
    assert_ne!(code, 0, "revoked certificate must not verify: {out}");
    assert!(out.contains("certificate revoked"), "{out}");
    run_ok(
        "openssl",
        &[
            "verify",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "esign-ca.pem",
            "holder-auth.pem",
        ],
        d,
    );
    assert!(!f.crl_der.is_empty());
}

#[test]
fn fingerprint_matches_openssl() {
    let s = store();
    let f = fixture(&s);
    let out = run_ok(
        "openssl",
        &[
            "x509",
            "-in",
            "root.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
        f.dir.path(),
    );
    let fp = ca::fingerprint_sha256(f.root.cert_der()).unwrap();
    assert_eq!(out.trim(), format!("sha256 Fingerprint={fp}"));
    assert_eq!(f.esign.key_label(), "esign-2026");
    assert_eq!(f.auth.issuer_key_label, "esign-2026");
}

#[test]
fn pkilint_finds_nothing_in_holder_sign_as_qcp_n_qscd() {
    let s = store();
    let f = fixture(&s);
    pkilint(
        "lint_etsi_cert",
        &["-t", "QCP-N-QSCD-NON-EIDAS-FINAL-CERTIFICATE"],
        &f.dir.path().join("holder-sign.pem"),
    );
}

#[test]
fn pkilint_finds_nothing_in_holder_auth_as_ncp_natural_person() {
    let s = store();
    let f = fixture(&s);
    pkilint(
        "lint_etsi_cert",
        &["-t", "NCP-NATURAL-PERSON-CERTIFICATE"],
        &f.dir.path().join("holder-auth.pem"),
    );
}

#[test]
fn pkilint_finds_nothing_in_root_and_esign_ca() {
    let s = store();
    let f = fixture(&s);
    pkilint("lint_pkix_cert", &[], &f.dir.path().join("root.pem"));
    pkilint("lint_pkix_cert", &[], &f.dir.path().join("esign-ca.pem"));
}

#[test]
fn pkilint_finds_nothing_in_the_crl() {
    let s = store();
    let f = fixture(&s);
    pkilint(
        "lint_crl",
        &["-t", "CRL", "-p", "PKIX"],
        &f.dir.path().join("crl.pem"),
    );
}

#[test]
fn pkilint_and_openssl_accept_uzbek_latin_names_in_utf8() {
    let s = store();
    let f = fixture(&s);
    let set = profiles::builtin().unwrap();
    s.generate_p256("card-uz").unwrap();
    let spki = s.public_key_spki("card-uz").unwrap();
    let holder = ca::HolderSubject {
        pinfl: "52108934560017".into(),
        surname: "Gʻulomov".into(),
        given_names: "Oʻtkir Shuhrat".into(),
        common_name: "Oʻtkir Shuhrat Gʻulomov".into(),
        country: "UZ".into(),
    };
    let c = ca::issue(
        &s,
        set.cert("holder-sign").unwrap(),
        &f.esign,
        &spki,
        &holder,
        SystemTime::now(),
    )
    .unwrap();
    let d = f.dir.path();
    let pem = write(d, "holder-uz.pem", &ca::cert_pem(&c.der).unwrap());
    run_ok(
        "openssl",
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "esign-ca.pem",
            "holder-uz.pem",
        ],
        d,
    );
    let subject = run_ok(
        "openssl",
        &[
            "x509",
            "-in",
            "holder-uz.pem",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253,-esc_msb",
        ],
        d,
    );
    assert!(subject.contains("Gʻulomov"), "{subject}");
    assert!(
        subject.contains("serialNumber=PNOUZ-52108934560017"),
        "{subject}"
    );
    pkilint(
        "lint_etsi_cert",
        &["-t", "QCP-N-QSCD-NON-EIDAS-FINAL-CERTIFICATE"],
        &pem,
    );
}
