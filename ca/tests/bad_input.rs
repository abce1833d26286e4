//! Bad input gets one clear error naming the field and the rule: malformed and forged CSRs,
//! keys that are not P-256, unknown profiles, profile files with unknown keys. Keys are in
//! SoftHSM2; CSRs come from openssl (an independent producer).

mod common;

use std::path::Path;
use std::time::SystemTime;

use common::{holder, run_ok, softhsm_store};
use hsm::KeyStore;

fn csr(dir: &Path, name: &str, newkey: &[&str]) -> Vec<u8> {
    let key = format!("{name}.key");
    let out = format!("{name}.csr");
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&[
        "-keyout",
        &key,
        "-subj",
        "/CN=applicant",
        "-outform",
        "DER",
        "-out",
        &out,
    ]);
    run_ok("openssl", &args, dir);
    std::fs::read(dir.join(out)).expect("openssl wrote the CSR")
}

fn p256_csr(dir: &Path) -> Vec<u8> {
    csr(
        dir,
        "p256",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    )
}

struct Ca {
    store: hsm::pkcs11::Pkcs11Store,
    set: profiles::ProfileSet,
    esign: ca::Issuer,
}

fn ca() -> Ca {
    let store = softhsm_store();
    let set = profiles::builtin().unwrap();
    let now = SystemTime::now();
    store.generate_p256("root").unwrap();
    let root = ca::create_root(&store, set.cert("root-ca").unwrap(), "root", now).unwrap();
    store.generate_p256("esign").unwrap();
    let esign =
        ca::create_subordinate_ca(&store, set.cert("esign-ca").unwrap(), &root, "esign", now)
            .unwrap();
    Ca { store, set, esign }
}

fn issue_csr(c: &Ca, csr: &[u8]) -> Result<ca::IssuedCert, ca::CaError> {
    ca::issue_from_csr(
        &c.store,
        c.set.cert("holder-auth").unwrap(),
        &c.esign,
        csr,
        &holder(),
        SystemTime::now(),
    )
}

#[test]
fn good_csr_in_der_and_pem_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let c = ca();
    let der = p256_csr(dir.path());
    issue_csr(&c, &der).expect("DER CSR");
    let pem =
        der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &der).unwrap();
    issue_csr(&c, pem.as_bytes()).expect("PEM CSR");
}

#[test]
fn malformed_csr_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = ca();
    let err = issue_csr(&c, b"hello, I am not a CSR").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("CSR is not a valid PKCS#10 request (RFC 2986 §4): "),
        "{err}"
    );
    let der = p256_csr(dir.path());
    let err = issue_csr(&c, &der[..der.len() - 10]).unwrap_err();
    assert!(matches!(err, ca::CaError::CsrMalformed { .. }), "{err}");
}

#[test]
fn csr_with_a_bad_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = ca();
    let der = p256_csr(dir.path());
    // Change one letter of the subject ("applicant" -> "bpplicant"): the signature no longer
    // covers the request.
    let mut forged = der.clone();
    let at = forged
        .windows(9)
        .position(|w| w == b"applicant")
        .expect("subject in CSR");
    forged[at] = b'b';
    let err = issue_csr(&c, &forged).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CSR signature does not verify (proof of possession failed, RFC 2986 §3)"
    );
    // A signature that is not a DER Ecdsa-Sig-Value at all.
    let mut broken = der;
    let n = broken.len();
    broken[n - 3] ^= 0xff;
    let err = issue_csr(&c, &broken).unwrap_err();
    assert!(
        matches!(
            err,
            ca::CaError::CsrSignature | ca::CaError::CsrMalformed { .. }
        ),
        "{err}"
    );
}

#[test]
fn p384_csr_is_refused_as_not_p256() {
    let dir = tempfile::tempdir().unwrap();
    let c = ca();
    let der = csr(
        dir.path(),
        "p384",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
    );
    let err = issue_csr(&c, &der).unwrap_err();
    assert_eq!(
        err.to_string(),
        "public key is not a P-256 point: curve is 1.3.132.0.34, not prime256v1 (1.2.840.10045.3.1.7)"
    );
}

#[test]
fn rsa_csr_and_rsa_spki_are_refused_as_not_p256() {
    let dir = tempfile::tempdir().unwrap();
    let c = ca();
    let der = csr(dir.path(), "rsa", &["-newkey", "rsa:2048"]);
    let err = issue_csr(&c, &der).unwrap_err();
    assert_eq!(
        err.to_string(),
        "public key is not a P-256 point: algorithm is 1.2.840.113549.1.1.1, not id-ecPublicKey (1.2.840.10045.2.1) (this is an RSA key)"
    );
    run_ok(
        "openssl",
        &[
            "pkey", "-in", "rsa.key", "-pubout", "-outform", "DER", "-out", "rsa.spki",
        ],
        dir.path(),
    );
    let spki = std::fs::read(dir.path().join("rsa.spki")).unwrap();
    let err = ca::issue(
        &c.store,
        c.set.cert("holder-sign").unwrap(),
        &c.esign,
        &spki,
        &holder(),
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(matches!(err, ca::CaError::NotP256 { .. }), "{err}");
}

#[test]
fn unknown_profile_is_refused_by_name() {
    let set = profiles::builtin().unwrap();
    let err: ca::CaError = set.cert("holder-x").unwrap_err().into();
    assert_eq!(
        err.to_string(),
        "unknown certificate profile 'holder-x' (known: audit-signer, centre-tls, csca, document-signer, egov-signer, esign-ca, holder-auth, holder-sign, master-list-signer, ocsp-responder, root-ca, station-ca, station-identity, tsa)"
    );
}

#[test]
fn profile_file_with_an_unknown_key_is_refused_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    profiles::write_builtin(dir.path()).unwrap();
    let f = dir.path().join("cert/holder-sign.toml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        &f,
        text.replace("[qc_statements]", "[qc_statements]\nqscd = true"),
    )
    .unwrap();
    let err = profiles::load_dir_over_builtin(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("profile {}: ", f.display())),
        "{msg}"
    );
    assert!(msg.contains("unknown field `qscd`"), "{msg}");
}

/// A holder subject taken from a request must name the country (C): a request without one is
/// refused naming the attribute, not given a default country; with C it is taken as given.
#[test]
fn a_csr_subject_without_a_country_is_refused_not_defaulted() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, subj: &str| {
        let (key, out) = (format!("{name}.key"), format!("{name}.csr"));
        run_ok(
            "openssl",
            &[
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-keyout",
                &key,
                "-subj",
                subj,
                "-outform",
                "DER",
                "-out",
                &out,
            ],
            dir.path(),
        );
        std::fs::read(dir.path().join(out)).expect("openssl wrote the CSR")
    };
    let without = make(
        "no-c",
        "/serialNumber=PNOUZ-31234567890123/GN=Dilnoza/SN=Karimova",
    );
    let e = ca::holder_subject_from_csr(&without, "UZ").expect_err("no C");
    assert!(e.to_string().contains("no C attribute"), "{e}");
    let with = make(
        "with-c",
        "/C=KZ/serialNumber=PNOUZ-31234567890123/GN=Dilnoza/SN=Karimova",
    );
    let s = ca::holder_subject_from_csr(&with, "UZ").expect("with C");
    assert_eq!(s.country, "KZ");
}
