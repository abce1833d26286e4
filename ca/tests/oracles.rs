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

/// The Station CA's two end-entity profiles: the centre's TLS server certificate (SAN from the
/// issuance call) and a station's identity (TLS client). openssl checks the chain for the TLS
/// purposes and the host/IP names; pkilint checks both against RFC 5280.
#[test]
fn tls_server_and_client_certificates_verify_for_their_purposes() {
    let s = store();
    let f = fixture(&s);
    let set = profiles::builtin().unwrap();
    let now = SystemTime::now();
    s.generate_p256("station-ca-1").unwrap();
    let station_ca = ca::create_subordinate_ca(
        &s,
        set.cert("station-ca").unwrap(),
        &f.root,
        "station-ca-1",
        now,
    )
    .unwrap();
    s.generate_p256("centre-tls-1").unwrap();
    s.generate_p256("identity").unwrap();
    let names = ca::SubjectAltNames {
        dns: vec!["centre.example.com".into()],
        ip: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
    };
    let tls = set.cert("centre-tls").unwrap();
    let server = ca::issue_station_cert_with_names(
        &s,
        tls,
        &station_ca,
        &s.public_key_spki("centre-tls-1").unwrap(),
        "centre.example.com",
        &names,
        now,
    )
    .unwrap();
    let client = ca::issue_station_cert(
        &s,
        set.cert("station-identity").unwrap(),
        &station_ca,
        &s.public_key_spki("identity").unwrap(),
        "tas01-st1",
        now,
    )
    .unwrap();
    // The profile requires a SAN, and the identity profile allows none.
    let spki = s.public_key_spki("identity").unwrap();
    let e = ca::issue_station_cert(&s, tls, &station_ca, &spki, "x", now).unwrap_err();
    assert!(
        e.to_string()
            .contains("requires at least one subject alternative name"),
        "{e}"
    );
    let e = ca::issue_station_cert_with_names(
        &s,
        set.cert("station-identity").unwrap(),
        &station_ca,
        &spki,
        "x",
        &names,
        now,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("allows no subject alternative names"),
        "{e}"
    );

    let d = f.dir.path();
    write(
        d,
        "station-ca.pem",
        &ca::cert_pem(station_ca.cert_der()).unwrap(),
    );
    write(d, "server.pem", &ca::cert_pem(&server.der).unwrap());
    write(d, "client.pem", &ca::cert_pem(&client.der).unwrap());
    let text = run_ok(
        "openssl",
        &["x509", "-in", "server.pem", "-noout", "-text"],
        d,
    );
    assert!(
        text.contains("DNS:centre.example.com, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"),
        "{text}"
    );
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    let base = [
        "verify",
        "-x509_strict",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "station-ca.pem",
    ];
    let check = |extra: &[&str], cert: &str| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args.push(cert);
        run("openssl", &args, d)
    };
    for extra in [
        &[
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "centre.example.com",
        ][..],
        &["-purpose", "sslserver", "-verify_ip", "127.0.0.1"][..],
    ] {
        let (code, out) = check(extra, "server.pem");
        assert_eq!(code, 0, "{extra:?}: {out}");
    }
    let (code, out) = check(&["-purpose", "sslclient"], "client.pem");
    assert_eq!(code, 0, "{out}");
    // The wrong purpose and a name not in the SAN are refused.
    let (code, _) = check(&["-purpose", "sslclient"], "server.pem");
    assert_ne!(code, 0);
    let (code, _) = check(&["-purpose", "sslserver"], "client.pem");
    assert_ne!(code, 0);
    let (code, _) = check(&["-verify_hostname", "other.example.com"], "server.pem");
    assert_ne!(code, 0);
    pkilint("lint_pkix_cert", &[], &d.join("server.pem"));
    pkilint("lint_pkix_cert", &[], &d.join("client.pem"));
}
