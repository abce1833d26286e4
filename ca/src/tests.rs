//! Unit tests of issuance and CRLs over the in-memory test key store. The independent
//! oracles (openssl, pkilint) and SoftHSM2 are in `tests/`.
use super::memstore::MemStore;
use super::*;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::keys::{checked_p256_spki, p256_spki_prefix, ID_EC_PUBLIC_KEY};
use crate::sign::{random_serial, Prepared, SignedBytes};
use crate::signer::HsmSigner;
use crate::subject::render_subject;
use const_oid::AssociatedOid;
use const_oid::ObjectIdentifier;
use der::asn1::{BitString, Ia5String};
use der::{Any, Decode, Encode};
use hsm::{HsmError, KeyStore};
use p256::ecdsa::DerSignature;
use signature::Verifier;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, Version};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints, CrlNumber, CrlReason,
    ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};

/// The issuing country of the built-in default document profile
/// ([`profiles::DEFAULT_DOCUMENT`]): holders' C, as the station and the centre take it.
fn country() -> String {
    static COUNTRY: OnceLock<String> = OnceLock::new();
    COUNTRY
        .get_or_init(|| {
            let set = profiles::builtin().expect("built-in profiles");
            let doc = set.document(profiles::DEFAULT_DOCUMENT);
            doc.expect("default document profile").country.clone()
        })
        .clone()
}

pub(crate) fn holder() -> HolderSubject {
    HolderSubject {
        pinfl: "31234567890123".into(),
        surname: "Karimova".into(),
        given_names: "Dilnoza".into(),
        common_name: "Dilnoza Karimova".into(),
        country: country(),
    }
}

struct Pki {
    store: MemStore,
    set: profiles::ProfileSet,
    root: Issuer,
    esign: Issuer,
}

fn pki() -> Pki {
    let store = MemStore::new();
    let set = profiles::builtin().unwrap();
    let now = SystemTime::now();
    store.generate_p256("root-1").unwrap();
    let root = create_root(&store, set.cert("root-ca").unwrap(), "root-1", now).unwrap();
    store.generate_p256("esign-1").unwrap();
    let esign = create_subordinate_ca(&store, set.cert("esign-ca").unwrap(), &root, "esign-1", now)
        .unwrap();
    Pki {
        store,
        set,
        root,
        esign,
    }
}

fn holder_key(store: &MemStore, label: &str) -> Vec<u8> {
    store.generate_p256(label).unwrap();
    store.public_key_spki(label).unwrap()
}

fn verify_signed_by(cert_der: &[u8], issuer: &Issuer) {
    let cert = Certificate::from_der(cert_der).unwrap();
    let tbs = cert.tbs_certificate().to_der().unwrap();
    let sig = DerSignature::from_bytes(cert.signature().as_bytes().unwrap()).unwrap();
    issuer
        .public
        .verify(&tbs, &sig)
        .expect("signature verifies");
}

#[test]
fn root_is_self_signed_ca_with_matching_ski_and_aki() {
    let p = pki();
    let cert = p.root.certificate();
    assert_eq!(
        cert.tbs_certificate().subject(),
        cert.tbs_certificate().issuer()
    );
    verify_signed_by(p.root.cert_der(), &p.root);
    let (_, aki) = cert
        .tbs_certificate()
        .get_extension::<AuthorityKeyIdentifier>()
        .unwrap()
        .unwrap();
    assert_eq!(aki.key_identifier.unwrap().as_bytes(), p.root.key_id());
    assert_eq!(p.root.key_id().len(), 20);
}

#[test]
fn esign_ca_has_path_len_zero_and_root_aki() {
    let p = pki();
    verify_signed_by(p.esign.cert_der(), &p.root);
    let tbs = &p.esign.certificate().tbs_certificate();
    let (crit, bc) = tbs.get_extension::<BasicConstraints>().unwrap().unwrap();
    assert!(crit && bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let (_, aki) = tbs
        .get_extension::<AuthorityKeyIdentifier>()
        .unwrap()
        .unwrap();
    assert_eq!(aki.key_identifier.unwrap().as_bytes(), p.root.key_id());
    assert_eq!(
        tbs.issuer(),
        p.root.certificate().tbs_certificate().subject()
    );
}

#[test]
fn holder_sign_subject_and_extensions_follow_the_profile() {
    let p = pki();
    let spki = holder_key(&p.store, "card-9c");
    let now = SystemTime::now();
    let c = issue(
        &p.store,
        p.set.cert("holder-sign").unwrap(),
        &p.esign,
        &spki,
        &holder(),
        now,
    )
    .unwrap();
    verify_signed_by(&c.der, &p.esign);
    let cert = Certificate::from_der(&c.der).unwrap();
    let tbs = &cert.tbs_certificate();
    // RFC 4514 prints the last RDN first: the DER order is C, serialNumber, givenName,
    // surname, CN, as the profile lists them.
    assert_eq!(
        tbs.subject().to_string(),
        format!(
            "CN=Dilnoza Karimova,SN=Karimova,GN=Dilnoza,SERIALNUMBER=PNO{c}-31234567890123,C={c}",
            c = country()
        )
    );
    let (crit, ku) = tbs.get_extension::<KeyUsage>().unwrap().unwrap();
    assert!(crit);
    assert!(ku.non_repudiation() && !ku.digital_signature());
    assert!(tbs.get_extension::<ExtendedKeyUsage>().unwrap().is_none());
    let qc = tbs
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == qc::ID_PE_QC_STATEMENTS)
        .expect("qcStatements present");
    let statements: Vec<qc::QcStatement> = Vec::from_der(qc.extn_value.as_bytes()).unwrap();
    let ids: Vec<String> = statements
        .iter()
        .map(|s| s.statement_id.to_string())
        .collect();
    for want in [
        "0.4.0.1862.1.1",
        "0.4.0.1862.1.4",
        "0.4.0.1862.1.6",
        "0.4.0.1862.1.5",
    ] {
        assert!(ids.contains(&want.to_string()), "{want} in {ids:?}");
    }
    assert_eq!(c.serial.len(), 16);
    assert_eq!(c.serial[0] & 0x80, 0, "serial is positive");
    assert_eq!(
        cert.tbs_certificate().serial_number().as_bytes(),
        c.serial.as_slice()
    );
    let (_, crldp) = tbs
        .get_extension::<CrlDistributionPoints>()
        .unwrap()
        .unwrap();
    let Some(DistributionPointName::FullName(names)) = &crldp.0[0].distribution_point else {
        panic!("full name expected")
    };
    assert_eq!(
        names[0],
        GeneralName::UniformResourceIdentifier(
            Ia5String::new("http://pki.idstation.example.com/crl/esign-1.crl").unwrap()
        ),
        "CRL URL names the issuing key"
    );
}

#[test]
fn serial_numbers_differ() {
    let p = pki();
    let spki = holder_key(&p.store, "card");
    let prof = p.set.cert("holder-auth").unwrap();
    let now = SystemTime::now();
    let a = issue(&p.store, prof, &p.esign, &spki, &holder(), now).unwrap();
    let b = issue(&p.store, prof, &p.esign, &spki, &holder(), now).unwrap();
    assert_ne!(a.serial, b.serial);
}

#[test]
fn rsa_and_p384_keys_are_refused() {
    let p = pki();
    let prof = p.set.cert("holder-auth").unwrap();
    // RSA-2048 SPKI header with a short dummy body is enough to be refused by algorithm.
    let rsa = spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
            parameters: Some(Any::null()),
        },
        subject_public_key: BitString::from_bytes(&[0x30, 0x03, 0x02, 0x01, 0x03]).unwrap(),
    }
    .to_der()
    .unwrap();
    let err = issue(&p.store, prof, &p.esign, &rsa, &holder(), SystemTime::now()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("public key is not a P-256 point: algorithm is 1.2.840.113549.1.1.1"),
        "{err}"
    );
    let mut p384 = [0u8; 97];
    p384[0] = 4;
    let p384 = spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: ID_EC_PUBLIC_KEY,
            parameters: Some(
                Any::encode_from(&ObjectIdentifier::new_unwrap("1.3.132.0.34")).unwrap(),
            ),
        },
        subject_public_key: BitString::from_bytes(&p384).unwrap(),
    }
    .to_der()
    .unwrap();
    let err = issue(
        &p.store,
        prof,
        &p.esign,
        &p384,
        &holder(),
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("curve is 1.3.132.0.34"), "{err}");
}

#[test]
fn off_curve_point_is_refused() {
    let p = pki();
    let mut spki_der = holder_key(&p.store, "card");
    let n = spki_der.len();
    spki_der[n - 1] ^= 0x01; // y no longer matches x
    let err = issue(
        &p.store,
        p.set.cert("holder-auth").unwrap(),
        &p.esign,
        &spki_der,
        &holder(),
        SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "public key is not a P-256 point: the point does not decode or is not on the curve"
    );
}

/// The canonical-form shortcut: its prefix is what `spki` encodes for every P-256 key, and a
/// key in that form still has its point checked (the off-curve test above takes this path).
#[test]
fn canonical_p256_spki_prefix_matches_every_generated_key() {
    let p = pki();
    let prefix = p256_spki_prefix();
    assert_eq!(
        hex::encode(prefix),
        "3059301306072a8648ce3d020106082a8648ce3d030107034200"
    );
    for i in 0..8 {
        let spki_der = holder_key(&p.store, &format!("k{i}"));
        assert_eq!(spki_der.len(), prefix.len() + 65);
        assert!(spki_der.starts_with(prefix));
        let (decoded, _) = checked_p256_spki(&spki_der).unwrap();
        assert_eq!(decoded.to_der().unwrap(), spki_der);
    }
    // A 65-byte point with a compressed-point tag matches the prefix and is still refused.
    let mut bad = prefix.to_vec();
    bad.push(0x02);
    bad.extend_from_slice(&[0x11; 64]);
    let err = issue(
        &p.store,
        p.set.cert("holder-auth").unwrap(),
        &p.esign,
        &bad,
        &holder(),
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(matches!(err, CaError::NotP256 { .. }), "{err}");
}

#[test]
fn bad_holder_fields_are_named() {
    let p = pki();
    let spki = holder_key(&p.store, "card");
    let prof = p.set.cert("holder-sign").unwrap();
    let mut h = holder();
    h.pinfl = "1234".into();
    let err = issue(&p.store, prof, &p.esign, &spki, &h, SystemTime::now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "holder pinfl: must be exactly 14 digits (got 4 characters)"
    );
    let mut h = holder();
    h.surname = "X".repeat(65);
    let err = issue(&p.store, prof, &p.esign, &spki, &h, SystemTime::now()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("holder surname: subject surname would be 65 characters"),
        "{err}"
    );
}

#[test]
fn profile_kind_must_fit_the_operation() {
    let p = pki();
    let spki = holder_key(&p.store, "card");
    let err = issue(
        &p.store,
        p.set.cert("esign-ca").unwrap(),
        &p.esign,
        &spki,
        &holder(),
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(matches!(err, CaError::WrongProfileKind { .. }), "{err}");
}

#[test]
fn esign_ca_may_not_certify_another_ca() {
    let p = pki();
    p.store.generate_p256("sub-2").unwrap();
    let err = create_subordinate_ca(
        &p.store,
        p.set.cert("esign-ca").unwrap(),
        &p.esign,
        "sub-2",
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("pathLenConstraint 0"), "{err}");
}

#[test]
fn certificate_may_not_outlive_its_issuer() {
    let p = pki();
    let spki = holder_key(&p.store, "card");
    let later = SystemTime::now() + Duration::from_secs(9 * 365 * 86_400);
    let err = issue(
        &p.store,
        p.set.cert("holder-sign").unwrap(),
        &p.esign,
        &spki,
        &holder(),
        later,
    )
    .unwrap_err();
    assert!(matches!(err, CaError::OutlivesIssuer { .. }), "{err}");
}

#[test]
fn issuer_key_must_match_issuer_certificate() {
    let p = pki();
    p.store.generate_p256("other").unwrap();
    let err = Issuer::new(&p.store, "other", p.esign.cert_der()).unwrap_err();
    assert!(
        err.to_string()
            .contains("is not the certificate's public key"),
        "{err}"
    );
    let err = Issuer::new(&p.store, "missing", p.esign.cert_der()).unwrap_err();
    assert!(
        matches!(err, CaError::Hsm(HsmError::KeyNotFound { .. })),
        "{err}"
    );
}

#[test]
fn crl_has_number_aki_dates_and_reasons() {
    let p = pki();
    let now = SystemTime::now();
    let revoked = vec![
        RevokedEntry {
            serial: vec![0x41; 16],
            revoked_at: now - Duration::from_secs(3600),
            reason: Some(RevocationReason::KeyCompromise),
        },
        RevokedEntry {
            serial: vec![0x42; 16],
            revoked_at: now - Duration::from_secs(60),
            reason: None,
        },
    ];
    let der = issue_crl(
        &p.store,
        p.set.crl("esign-crl").unwrap(),
        &p.esign,
        7,
        &revoked,
        now,
    )
    .unwrap();
    let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).unwrap();
    let tbs = &crl.tbs_cert_list;
    assert_eq!(tbs.version, Version::V2);
    let sig = DerSignature::from_bytes(crl.signature.as_bytes().unwrap()).unwrap();
    p.esign.public.verify(&tbs.to_der().unwrap(), &sig).unwrap();
    let next = tbs.next_update.unwrap().to_system_time();
    let this = tbs.this_update.to_system_time();
    assert_eq!(
        next.duration_since(this).unwrap(),
        Duration::from_secs(48 * 3600)
    );
    let exts = tbs.crl_extensions.as_ref().unwrap();
    let aki = exts
        .iter()
        .find(|e| e.extn_id == AuthorityKeyIdentifier::OID)
        .unwrap();
    let aki = AuthorityKeyIdentifier::from_der(aki.extn_value.as_bytes()).unwrap();
    assert_eq!(aki.key_identifier.unwrap().as_bytes(), p.esign.key_id());
    let num = exts.iter().find(|e| e.extn_id == CrlNumber::OID).unwrap();
    assert_eq!(
        CrlNumber::from_der(num.extn_value.as_bytes()).unwrap(),
        CrlNumber::try_from(7u64).unwrap()
    );
    let entries = tbs.revoked_certificates.as_ref().unwrap();
    assert_eq!(entries.len(), 2);
    let reason = &entries[0].crl_entry_extensions.as_ref().unwrap()[0];
    assert_eq!(
        CrlReason::from_der(reason.extn_value.as_bytes()).unwrap(),
        CrlReason::KeyCompromise
    );
    assert!(entries[1].crl_entry_extensions.is_none());
}

#[test]
fn crl_refuses_future_revocation_and_duplicates() {
    let p = pki();
    let now = SystemTime::now();
    let prof = p.set.crl("esign-crl").unwrap();
    let e = RevokedEntry {
        serial: vec![1, 2, 3],
        revoked_at: now + Duration::from_secs(3600),
        reason: None,
    };
    let err = issue_crl(&p.store, prof, &p.esign, 1, std::slice::from_ref(&e), now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "revoked entry 0: revocation date is after thisUpdate"
    );
    let e = RevokedEntry {
        revoked_at: now - Duration::from_secs(1),
        ..e
    };
    let err = issue_crl(&p.store, prof, &p.esign, 1, &[e.clone(), e], now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "revoked entry 1: serial number listed twice"
    );
}

#[test]
fn fingerprint_is_colon_hex_and_refuses_garbage() {
    let p = pki();
    let fp = fingerprint_sha256(p.root.cert_der()).unwrap();
    assert_eq!(fp.len(), 32 * 3 - 1);
    assert!(fingerprint_sha256(b"not a certificate").is_err());
}

#[test]
fn hsm_failure_surfaces_as_hsm_error() {
    struct Failing(MemStore);
    impl KeyStore for Failing {
        fn backend(&self) -> &'static str {
            "failing"
        }
        fn generate_p256(&self, l: &str) -> hsm::Result<hsm::KeyInfo> {
            self.0.generate_p256(l)
        }
        fn generate_hmac_secret(&self, l: &str) -> hsm::Result<hsm::KeyInfo> {
            self.0.generate_hmac_secret(l)
        }
        fn find(&self, l: &str) -> hsm::Result<Option<hsm::KeyInfo>> {
            self.0.find(l)
        }
        fn list(&self) -> hsm::Result<Vec<hsm::KeyInfo>> {
            self.0.list()
        }
        fn public_key_spki(&self, l: &str) -> hsm::Result<Vec<u8>> {
            self.0.public_key_spki(l)
        }
        fn sign_p256_sha256(&self, _: &str, _: &[u8]) -> hsm::Result<Vec<u8>> {
            Err(HsmError::Operation {
                op: "sign",
                reason: "CKR_DEVICE_ERROR".into(),
            })
        }
        fn hmac_sha256(&self, l: &str, d: &[u8]) -> hsm::Result<zeroize::Zeroizing<[u8; 32]>> {
            self.0.hmac_sha256(l, d)
        }
        fn destroy(&self, l: &str) -> hsm::Result<bool> {
            self.0.destroy(l)
        }
    }
    let f = Failing(MemStore::new());
    f.generate_p256("root").unwrap();
    let set = profiles::builtin().unwrap();
    let err = create_root(&f, set.cert("root-ca").unwrap(), "root", SystemTime::now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "HSM: HSM operation sign failed: CKR_DEVICE_ERROR"
    );
}

#[test]
fn edited_profile_is_not_served_from_the_extension_cache() {
    let p = pki();
    let spki = holder_key(&p.store, "card");
    let now = SystemTime::now();
    let original = p.set.cert("holder-auth").unwrap();
    let first = issue(&p.store, original, &p.esign, &spki, &holder(), now).unwrap();
    // The profile file edited and loaded again, as a station restarted after an edit sees it.
    let (file, text) = profiles::BUILTIN_FILES
        .iter()
        .find(|(f, _)| *f == "cert/holder-auth.toml")
        .unwrap();
    let edited_text = text.replace(
        r#"extended_key_usage = ["clientAuth"]"#,
        r#"extended_key_usage = ["emailProtection"]"#,
    );
    assert_ne!(&edited_text, text);
    let edited = profiles::parse_cert_profile(std::path::Path::new(file), &edited_text).unwrap();
    assert_ne!(edited.digest(), original.digest());
    let second = issue(&p.store, &edited, &p.esign, &spki, &holder(), now).unwrap();
    let eku = |der: &[u8]| {
        let c = Certificate::from_der(der).unwrap();
        c.tbs_certificate()
            .get_extension::<ExtendedKeyUsage>()
            .unwrap()
            .unwrap()
            .1
             .0
    };
    assert_eq!(eku(&first.der), vec![profiles::Eku::CLIENT_AUTH.0]);
    assert_eq!(eku(&second.der), vec![profiles::Eku::EMAIL_PROTECTION.0]);
    // And the SKI follows each certificate's key, not the cached first one.
    let other = holder_key(&p.store, "card-2");
    let third = issue(&p.store, original, &p.esign, &other, &holder(), now).unwrap();
    let ski = |der: &[u8]| {
        let c = Certificate::from_der(der).unwrap();
        c.tbs_certificate()
            .get_extension::<SubjectKeyIdentifier>()
            .unwrap()
            .unwrap()
            .1
    };
    assert_ne!(ski(&first.der), ski(&third.der));
}

/// A loaded profile is a read-only value; the extension cache keys on its digest. Changing one
/// in memory after loading is a bug that debug builds catch.
#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "was changed in memory after loading")]
fn a_profile_changed_in_memory_after_loading_is_caught_in_debug_builds() {
    let p = pki();
    let spki = holder_key(&p.store, "card");
    let now = SystemTime::now();
    let original = p.set.cert("holder-auth").unwrap();
    issue(&p.store, original, &p.esign, &spki, &holder(), now).unwrap();
    let mut changed = original.clone();
    changed.extended_key_usage = vec![profiles::Eku::EMAIL_PROTECTION];
    let _ = issue(&p.store, &changed, &p.esign, &spki, &holder(), now);
}

/// The end-entity encoder (pre-encoded issuer parts and extensions) must produce exactly what
/// `x509-cert`'s `CertificateBuilder` produces for the same certificate: rebuild every issued
/// holder certificate through the builder and compare the tbsCertificate bytes.
#[test]
fn template_tbs_equals_the_x509_cert_builder_output() {
    let p = pki();
    let uncompressed = holder_key(&p.store, "card-9a");
    // The same kind of key given with a compressed point (re-encoded uncompressed on issue).
    let (spki, _) = checked_p256_spki(&uncompressed).unwrap();
    let point = spki.subject_public_key.raw_bytes();
    let mut x_only = vec![0x02 | (point[64] & 1)];
    x_only.extend_from_slice(&point[1..33]);
    let compressed = SubjectPublicKeyInfoOwned {
        algorithm: spki.algorithm.clone(),
        subject_public_key: BitString::from_bytes(&x_only).unwrap(),
    }
    .to_der()
    .unwrap();
    let now = SystemTime::now();
    let mut compared = 0;
    // A holder with non-ASCII names too (UTF8String attributes, the ʻ of Uzbek Latin).
    let utf8_holder = HolderSubject {
        pinfl: "52001234567890".into(),
        surname: "Gʻulomova".into(),
        given_names: "Oʻgʻiloy Shahnoza".into(),
        common_name: "Oʻgʻiloy Gʻulomova".into(),
        country: country(),
    };
    for (profile, h) in [
        ("holder-auth", holder()),
        ("holder-sign", holder()),
        ("holder-sign", utf8_holder),
    ] {
        for key_der in [&uncompressed, &compressed] {
            // Twice: the second issuance is served from the issuer's extension cache.
            for _ in 0..2 {
                let profile = p.set.cert(profile).unwrap();
                let issued = issue(&p.store, profile, &p.esign, key_der, &h, now).unwrap();
                let raw_tbs = SignedBytes::from_der(&issued.der)
                    .unwrap()
                    .tbs
                    .to_der()
                    .unwrap();
                let cert = Certificate::from_der(&issued.der).unwrap();
                let tbs = cert.tbs_certificate();
                // The subject as x509-cert's own Name types encode it, independently of the
                // borrowed encoder in the template.
                assert_eq!(
                    hex::encode(tbs.subject().to_der().unwrap()),
                    hex::encode(render_subject(profile, Some(&h)).unwrap().to_der().unwrap()),
                    "{} subject differs from x509-cert's encoding",
                    profile.name
                );
                let mut builder = CertificateBuilder::new(
                    Prepared {
                        issuer: tbs.issuer().clone(),
                        subject: tbs.subject().clone(),
                        extensions: tbs.extensions().unwrap().to_vec(),
                    },
                    tbs.serial_number().clone(),
                    *tbs.validity(),
                    tbs.subject_public_key_info().clone(),
                )
                .unwrap();
                let signer = HsmSigner::new(&p.store, p.esign.key_label(), p.esign.public);
                let via_builder = builder.finalize(&signer).unwrap();
                assert_eq!(
                    hex::encode(&raw_tbs),
                    hex::encode(&via_builder),
                    "{} tbsCertificate differs from the builder's",
                    profile.name
                );
                verify_signed_by(&issued.der, &p.esign);
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 12);
}

#[test]
fn serial_numbers_are_positive_16_bytes_and_never_repeat() {
    let mut seen = std::collections::HashSet::new();
    // Several pool refills (64 serials per 1 KiB block).
    for _ in 0..5000 {
        let s = random_serial().unwrap();
        assert_eq!(s.len(), 16);
        assert_eq!(
            s[0] & 0xc0,
            0x40,
            "positive, no leading zero octet: {}",
            hex::encode(&s)
        );
        assert!(seen.insert(s), "a serial number repeated");
    }
}

#[test]
fn a_forked_child_does_not_reuse_the_parents_serial_randomness() {
    // Fill this thread's pool, then fork: the child inherits a copy of the pool. Without the
    // pthread_atfork guard both would hand out the same next serial.
    random_serial().unwrap();
    let mut fds = [0i32; 2];
    // SAFETY: plain pipe(2) into a two-element array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only computes a serial, writes it to the pipe and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let s = random_serial().unwrap_or_default();
        // SAFETY: writes the serial's bytes to the pipe's write end, then leaves at once.
        unsafe {
            libc::write(fds[1], s.as_ptr().cast(), s.len());
            libc::_exit(0);
        }
    }
    let parent = random_serial().unwrap();
    let mut child = [0u8; 16];
    // SAFETY: reads at most 16 bytes into a 16-byte buffer; waits for the child.
    let n = unsafe { libc::read(fds[0], child.as_mut_ptr().cast(), child.len()) };
    unsafe {
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    assert_eq!(n, 16, "the child sent its serial");
    assert_ne!(
        parent,
        child.to_vec(),
        "parent and child handed out the same serial"
    );
}

/// RFC 5280 §4.2.1.3: only a key whose certificate asserts cRLSign signs CRLs. A CA profile
/// without it (edited from the shipped esign-ca) gives a CA that issues certificates but no CRL.
#[test]
fn a_ca_key_without_crl_sign_signs_no_crl() {
    let p = pki();
    let now = SystemTime::now();
    let (file, text) = profiles::BUILTIN_FILES
        .iter()
        .find(|(f, _)| *f == "cert/esign-ca.toml")
        .unwrap();
    let edited = text.replace(
        r#"key_usage = ["digitalSignature", "keyCertSign", "cRLSign"]"#,
        r#"key_usage = ["digitalSignature", "keyCertSign"]"#,
    );
    assert_ne!(&edited, text);
    let profile = profiles::parse_cert_profile(std::path::Path::new(file), &edited).unwrap();
    p.store.generate_p256("no-crl-sign").unwrap();
    let ca = create_subordinate_ca(&p.store, &profile, &p.root, "no-crl-sign", now).unwrap();
    let crl_profile = p.set.crl("esign-crl").unwrap();
    let err = issue_crl(&p.store, crl_profile, &ca, 1, &[], now).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}",
            CaError::Issuer {
                label: "no-crl-sign".into(),
                rule: "keyUsage lacks cRLSign: this key does not sign CRLs (RFC 5280 §4.2.1.3)"
                    .into()
            }
        )
    );
    // The shipped CA keys still sign theirs.
    issue_crl(&p.store, crl_profile, &p.esign, 1, &[], now).unwrap();
    issue_crl(&p.store, crl_profile, &p.root, 1, &[], now).unwrap();
}

#[test]
fn a_request_signed_in_the_hsm_proves_possession_of_its_key() {
    let store = MemStore::new();
    let spki = holder_key(&store, "identity");
    let csr = crate::csr_for_hsm_key(&store, "identity", "tas01-st1").unwrap();
    assert_eq!(crate::verify_csr(&csr).unwrap(), spki);
    let mut bad = csr.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(crate::verify_csr(&bad).is_err());
    let e = crate::csr_for_hsm_key(&store, "identity", "a,b=c").unwrap_err();
    assert!(e.to_string().contains("CN may use"), "{e}");
}

#[test]
fn issued_by_checks_the_issuer_name_and_signature() {
    let p = pki();
    let (root, esign) = (p.root.cert_der(), p.esign.cert_der());
    assert!(crate::issued_by(esign, root).unwrap());
    assert!(crate::issued_by(root, root).unwrap(), "a self-signed root");
    assert!(
        !crate::issued_by(root, esign).unwrap(),
        "another issuer's name"
    );
    // Another root with the same name: the name matches, the signature does not.
    p.store.generate_p256("root-2").unwrap();
    let other = create_root(
        &p.store,
        p.set.cert("root-ca").unwrap(),
        "root-2",
        SystemTime::now(),
    )
    .unwrap();
    assert!(!crate::issued_by(esign, other.cert_der()).unwrap());
    let mut bent = esign.to_vec();
    let n = bent.len();
    bent[n - 5] ^= 0x01;
    assert!(!crate::issued_by(&bent, root).unwrap_or(false));
    assert!(crate::issued_by(b"not a certificate", root).is_err());
}
