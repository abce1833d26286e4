//! EF.SOD against an independent oracle: OpenSSL's `cms -verify` with the CSCA as trust anchor
//! accepts what [`personalization::sod::build_sod`] produces, the content OpenSSL extracts is
//! the LDSSecurityObject with the data-group hashes, and our own passive authentication agrees
//! (and refuses an altered data group, a foreign CSCA, a wrong signer key).
//!
//! The CSCA and Document Signer certificates and keys are made by the `openssl` CLI (ICAO 9303
//! Part 12 profile: CSCA basicConstraints CA pathLen 0, keyCertSign+cRLSign; DS digitalSignature).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use der::{Decode, DecodePem};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use personalization::lds::{self, Dg11, FaceGender, LdsFiles};
use personalization::sod::{
    build_sod, content_info_der, passive_authentication, LdsSecurityObject,
};
use sha2::{Digest, Sha256};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Pki {
    dir: tempfile::TempDir,
    csca_der: Vec<u8>,
    ds_der: Vec<u8>,
    ds_key: SigningKey,
}

fn make_pki(name: &str) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "csca.key",
            "-out",
            "csca.pem",
            "-days",
            "3650",
            "-subj",
            &format!("/C=UZ/O=idstation tests/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE,pathlen:0",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ds.key",
            "-out",
            "ds.csr",
            "-subj",
            "/C=UZ/O=idstation tests/CN=Document Signer",
        ],
    );
    std::fs::write(d.join("ds.ext"),
        "keyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "ds.csr",
            "-CA",
            "csca.pem",
            "-CAkey",
            "csca.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-extfile",
            "ds.ext",
            "-outform",
            "DER",
            "-out",
            "ds.der",
        ],
    );
    let csca =
        x509_cert::Certificate::from_pem(std::fs::read(d.join("csca.pem")).unwrap()).unwrap();
    let csca_der = der::Encode::to_der(&csca).unwrap();
    let ds_der = std::fs::read(d.join("ds.der")).unwrap();
    let ds_key =
        SigningKey::from_pkcs8_pem(&std::fs::read_to_string(d.join("ds.key")).unwrap()).unwrap();
    Pki {
        dir,
        csca_der,
        ds_der,
        ds_key,
    }
}

fn files(pki: &Pki) -> LdsFiles {
    let mrz = [
        "I<UZBAD12345674<41505852610128".to_string(),
        "8505152F3611249UZB<<<<<<<<<<<6".to_string(),
        "TOXTAYEVA<<GULNORA<<<<<<<<<<<<".to_string(),
    ];
    let photo = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/holders/photo-01.jpg"),
    )
    .unwrap();
    let mut dgs = BTreeMap::new();
    dgs.insert(1, lds::dg1(&mrz).unwrap());
    dgs.insert(2, lds::dg2(&photo, FaceGender::Female).unwrap());
    dgs.insert(
        11,
        lds::dg11(&Dg11 {
            full_name: "TOʻXTAYEVA<<GʻULNORA SHAVKAT QIZI".into(),
            personal_number: "41505852610128".into(),
            place_of_birth: "Toshkent shahri".into(),
            permanent_address: Some(
                "Toshkent shahri, Yunusobod tumani, Amir Temur shoh koʻchasi 108, 12".into(),
            ),
        }),
    );
    dgs.insert(
        12,
        lds::dg12("UZB 2601", time::macros::date!(2026 - 11 - 25)),
    );
    let mut f = LdsFiles { dgs, sod: vec![] };
    let key = pki.ds_key.clone();
    f.sod = build_sod(&f.dg_hashes(), &pki.ds_der, |m| {
        let s: DerSignature = key.sign(m);
        Ok(s.to_bytes().to_vec())
    })
    .unwrap();
    f
}

#[test]
fn openssl_cms_verify_accepts_the_sod_and_its_content_holds_the_dg_hashes() {
    let pki = make_pki("CSCA Test");
    let f = files(&pki);
    let d = pki.dir.path();
    std::fs::write(d.join("sod.der"), content_info_der(&f.sod).unwrap()).unwrap();
    // `-purpose any` is not needed with OpenSSL 3.0 (a DS certificate without EKU and with
    // keyUsage digitalSignature passes the default S/MIME signing purpose; station/tests/lds_e2e.rs
    // verifies without it); it is given here so the test holds on builds with a stricter default.
    let out = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "sod.der",
            "-CAfile",
            "csca.pem",
            "-purpose",
            "any",
            "-binary",
            "-out",
            "content.der",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl cms -verify refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Verification successful"));
    let content = std::fs::read(d.join("content.der")).unwrap();
    let lso = LdsSecurityObject::from_der(&content).unwrap();
    assert_eq!(lso.data_group_hash_values.len(), 4);
    for h in &lso.data_group_hash_values {
        let dg = &f.dgs[&h.data_group_number];
        assert_eq!(
            h.data_group_hash_value.as_bytes(),
            Sha256::digest(dg).as_slice()
        );
    }
    passive_authentication(&f.sod, &f.dgs, &pki.csca_der, SystemTime::now()).unwrap();
}

#[test]
fn passive_authentication_refuses_an_altered_data_group() {
    let pki = make_pki("CSCA Test");
    let mut f = files(&pki);
    let dg1 = f.dgs.get_mut(&1).unwrap();
    *dg1.last_mut().unwrap() ^= 1;
    let e = passive_authentication(&f.sod, &f.dgs, &pki.csca_der, SystemTime::now()).unwrap_err();
    assert!(e.to_string().contains("DG1 does not match"), "{e}");
}

#[test]
fn passive_authentication_refuses_a_foreign_csca() {
    let pki = make_pki("CSCA Test");
    let other = make_pki("CSCA Test");
    let f = files(&pki);
    let e = passive_authentication(&f.sod, &f.dgs, &other.csca_der, SystemTime::now()).unwrap_err();
    assert!(e.to_string().contains("CSCA key"), "{e}");
    // And OpenSSL agrees.
    let d = other.dir.path();
    std::fs::write(d.join("sod.der"), content_info_der(&f.sod).unwrap()).unwrap();
    let out = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "sod.der",
            "-CAfile",
            "csca.pem",
            "-purpose",
            "any",
            "-binary",
            "-out",
            "/dev/null",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn build_sod_refuses_a_signature_from_another_key() {
    let pki = make_pki("CSCA Test");
    let other = make_pki("CSCA Other");
    let f = files(&pki);
    let e = build_sod(&f.dg_hashes(), &pki.ds_der, |m| {
        let s: DerSignature = other.ds_key.sign(m);
        Ok(s.to_bytes().to_vec())
    })
    .unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");
}

#[test]
fn passive_authentication_refuses_a_missing_data_group() {
    let pki = make_pki("CSCA Test");
    let mut f = files(&pki);
    f.dgs.remove(&2);
    let e = passive_authentication(&f.sod, &f.dgs, &pki.csca_der, SystemTime::now()).unwrap_err();
    assert!(
        e.to_string().contains("DG2 is in EF.SOD but was not read"),
        "{e}"
    );
}
