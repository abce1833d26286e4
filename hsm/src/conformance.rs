//! The one conformance suite every [`KeyStore`] backend passes (issue 2: "same tests, two
//! backends"). Each check takes a fresh store; [`conformance_tests!`](crate::conformance_tests)
//! turns every check into a `#[test]` for a backend. Oracles are independent of the HSM: the
//! RustCrypto `p256` 0.14 verifier for signatures and SPKI, and HMAC properties that hold for any
//! correct HMAC (the backends cannot export the key, so there is no host HMAC to compare with).

use p256::ecdsa::signature::Verifier;
use p256::pkcs8::DecodePublicKey;

use crate::{derive_card_secret, HsmError, KeyKind, KeyStore};

/// Generate one key of each kind, then find and list them.
pub fn generate_find_list(store: &dyn KeyStore) {
    assert!(
        store.list().unwrap().is_empty(),
        "a fresh store lists no keys"
    );
    assert_eq!(store.find("root-ca").unwrap(), None);

    let ec = store.generate_p256("root-ca").unwrap();
    assert_eq!(ec.label, "root-ca");
    assert_eq!(ec.kind, KeyKind::EcP256);
    assert!(ec.spki_der.is_some());
    let mac = store.generate_hmac_secret("card-master").unwrap();
    assert_eq!(mac.kind, KeyKind::HmacSha256);
    assert_eq!(mac.spki_der, None);
    let audit = store.generate_p256("audit").unwrap();

    assert_eq!(store.find("root-ca").unwrap(), Some(ec.clone()));
    assert_eq!(store.find("card-master").unwrap(), Some(mac.clone()));
    assert_eq!(
        store.list().unwrap(),
        vec![audit.clone(), mac, ec.clone()],
        "sorted by label"
    );
    assert_ne!(
        audit.spki_der, ec.spki_der,
        "two key pairs, two public keys"
    );
    assert_eq!(
        store.public_key_spki("root-ca").unwrap(),
        ec.spki_der.unwrap()
    );
}

/// A taken label is refused for either kind, whatever kind holds it.
pub fn duplicate_label_refused(store: &dyn KeyStore) {
    let first = store.generate_p256("esign-ca").unwrap();
    store.generate_hmac_secret("mgm-master").unwrap();
    for r in [
        store.generate_p256("esign-ca"),
        store.generate_hmac_secret("esign-ca"),
        store.generate_p256("mgm-master"),
        store.generate_hmac_secret("mgm-master"),
    ] {
        assert!(matches!(r, Err(HsmError::KeyExists { .. })), "{r:?}");
    }
    // The original key is untouched.
    assert_eq!(store.find("esign-ca").unwrap(), Some(first));
    assert_eq!(store.list().unwrap().len(), 2);
}

/// The public key is a valid P-256 SubjectPublicKeyInfo (RFC 5480: id-ecPublicKey, secp256r1).
pub fn public_key_is_p256_spki(store: &dyn KeyStore) {
    let info = store.generate_p256("k").unwrap();
    let der = info.spki_der.unwrap();
    let spki = spki::SubjectPublicKeyInfoRef::try_from(der.as_slice()).unwrap();
    assert_eq!(
        spki.algorithm.oid.to_string(),
        "1.2.840.10045.2.1",
        "id-ecPublicKey"
    );
    let curve: der::asn1::ObjectIdentifier =
        spki.algorithm.parameters.unwrap().decode_as().unwrap();
    assert_eq!(curve.to_string(), "1.2.840.10045.3.1.7", "secp256r1");
    p256::PublicKey::from_public_key_der(&der).expect("a point on P-256");
    // The same SPKI comes back on every read.
    assert_eq!(store.public_key_spki("k").unwrap(), der);
}

/// Signatures verify with p256 0.14 over SHA-256, are DER and low-S, and bind the message.
pub fn signatures_verify(store: &dyn KeyStore) {
    let der = store.generate_p256("signer").unwrap().spki_der.unwrap();
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
    let msg = b"tbsCertificate bytes would go here";
    let mut seen = Vec::new();
    for _ in 0..8 {
        let sig_der = store.sign_p256_sha256("signer", msg).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&sig_der).expect("DER Ecdsa-Sig-Value");
        assert_eq!(sig.normalize_s(), sig, "low-S");
        vk.verify(msg, &sig)
            .expect("verifies over SHA-256(message)");
        assert!(
            vk.verify(b"another message", &sig).is_err(),
            "bound to the message"
        );
        seen.push(sig_der);
    }
    seen.sort();
    seen.dedup();
    assert!(
        seen.len() > 1,
        "ECDSA signatures are randomised (or RFC 6979 over distinct input)"
    );
    // A second key's signature does not verify under the first key.
    store.generate_p256("other").unwrap();
    let other = store.sign_p256_sha256("other", msg).unwrap();
    let other = p256::ecdsa::Signature::from_der(&other).unwrap();
    assert!(vk.verify(msg, &other).is_err());
    // Empty and long messages are fine.
    for m in [&b""[..], &[0x5a; 10_000][..]] {
        let s = store.sign_p256_sha256("signer", m).unwrap();
        vk.verify(m, &p256::ecdsa::Signature::from_der(&s).unwrap())
            .unwrap();
    }
}

/// HMAC-SHA256: 32 bytes, deterministic, separates serials, purposes and keys.
pub fn hmac_properties(store: &dyn KeyStore) {
    store.generate_hmac_secret("master").unwrap();
    store.generate_hmac_secret("master-2").unwrap();
    let a1 = derive_card_secret(store, "master", "piv-mgm", b"SERIAL-0001").unwrap();
    let a2 = derive_card_secret(store, "master", "piv-mgm", b"SERIAL-0001").unwrap();
    let b = derive_card_secret(store, "master", "piv-mgm", b"SERIAL-0002").unwrap();
    let p = derive_card_secret(store, "master", "other-purpose", b"SERIAL-0001").unwrap();
    let k = derive_card_secret(store, "master-2", "piv-mgm", b"SERIAL-0001").unwrap();
    assert_eq!(a1.len(), 32);
    assert_eq!(*a1, *a2, "same input, same output");
    assert_ne!(*a1, *b, "different serial, different output");
    assert_ne!(*a1, *p, "different purpose, different output");
    assert_ne!(*a1, *k, "different key, different output");
    assert_ne!(*a1, [0u8; 32]);
    // Raw HMAC over the exact derivation input equals derive_card_secret.
    let raw = store
        .hmac_sha256("master", b"idstation/piv-mgm\0SERIAL-0001")
        .unwrap();
    assert_eq!(*raw, *a1);
    // Empty input is allowed.
    assert_eq!(store.hmac_sha256("master", b"").unwrap().len(), 32);
}

/// Using a key for the other kind's operation is a WrongKeyKind error naming both kinds.
pub fn wrong_kind_errors(store: &dyn KeyStore) {
    store.generate_p256("ec").unwrap();
    store.generate_hmac_secret("mac").unwrap();
    let e = store.sign_p256_sha256("mac", b"m").unwrap_err();
    assert!(
        matches!(
            e,
            HsmError::WrongKeyKind {
                expected: KeyKind::EcP256,
                actual: KeyKind::HmacSha256,
                ..
            }
        ),
        "{e:?}"
    );
    let e = store.public_key_spki("mac").unwrap_err();
    assert!(matches!(e, HsmError::WrongKeyKind { .. }), "{e:?}");
    let e = store.hmac_sha256("ec", b"m").unwrap_err();
    assert!(
        matches!(
            e,
            HsmError::WrongKeyKind {
                expected: KeyKind::HmacSha256,
                actual: KeyKind::EcP256,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"ec\""), "{e}");
}

/// Unknown labels: `find` says None, the operations say KeyNotFound naming the label.
pub fn unknown_label_errors(store: &dyn KeyStore) {
    assert_eq!(store.find("nope").unwrap(), None);
    for e in [
        store.sign_p256_sha256("nope", b"m").unwrap_err(),
        store.public_key_spki("nope").unwrap_err(),
        store.hmac_sha256("nope", b"m").unwrap_err(),
    ] {
        assert!(
            matches!(&e, HsmError::KeyNotFound { label } if label == "nope"),
            "{e:?}"
        );
    }
    // Labels are exact: a prefix or a case variant is another label.
    store.generate_p256("Root").unwrap();
    assert_eq!(store.find("Roo").unwrap(), None);
    assert_eq!(store.find("root").unwrap(), None);
}

/// Empty labels and labels with control characters are refused before reaching the HSM.
pub fn bad_labels_refused(store: &dyn KeyStore) {
    for label in ["", "a\nb", "tab\there"] {
        let e = store.generate_p256(label).unwrap_err();
        assert!(
            matches!(e, HsmError::InvalidLabel { .. }),
            "{label:?}: {e:?}"
        );
        let e = store.generate_hmac_secret(label).unwrap_err();
        assert!(
            matches!(e, HsmError::InvalidLabel { .. }),
            "{label:?}: {e:?}"
        );
    }
    assert!(store.list().unwrap().is_empty());
}

/// Several threads sign through one store at once (the trait promises Send + Sync).
pub fn concurrent_use(store: &dyn KeyStore) {
    let der = store.generate_p256("shared").unwrap().spki_der.unwrap();
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let vk = &vk;
            s.spawn(move || {
                for i in 0..5u8 {
                    let m = [t, i];
                    let sig = store.sign_p256_sha256("shared", &m).unwrap();
                    vk.verify(&m, &p256::ecdsa::Signature::from_der(&sig).unwrap())
                        .unwrap();
                }
            });
        }
    });
}

/// A destroyed key is gone (found, listed, signing: no), its label is free again, the other
/// keys are untouched, and destroying it again says there was nothing to destroy.
pub fn destroy_removes_the_key(store: &dyn KeyStore) {
    let keep = store.generate_p256("tsa-2").unwrap();
    store.generate_p256("tsa-1").unwrap();
    store.generate_hmac_secret("old-master").unwrap();
    assert!(store.destroy("tsa-1").unwrap());
    assert!(store.destroy("old-master").unwrap());
    assert_eq!(store.find("tsa-1").unwrap(), None);
    assert_eq!(store.find("old-master").unwrap(), None);
    assert_eq!(store.list().unwrap(), vec![keep.clone()]);
    let r = store.sign_p256_sha256("tsa-1", b"after its end");
    assert!(matches!(r, Err(HsmError::KeyNotFound { .. })), "{r:?}");
    assert!(!store.destroy("tsa-1").unwrap(), "nothing left to destroy");
    assert!(!store.destroy("never-made").unwrap());
    // The label is free: a new key (no left-over public half makes it ambiguous).
    let again = store.generate_p256("tsa-1").unwrap();
    assert_ne!(again.spki_der, keep.spki_der);
    assert!(store.sign_p256_sha256("tsa-2", b"still signs").is_ok());
}

/// One `#[test]` per conformance check for a backend; `$make` builds a fresh store.
#[macro_export]
#[doc(hidden)]
macro_rules! conformance_tests {
    ($make:expr) => {
        mod conformance_suite {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn conformance_generate_find_list() {
                conformance::generate_find_list(&$make);
            }
            #[test]
            fn conformance_duplicate_label_refused() {
                conformance::duplicate_label_refused(&$make);
            }
            #[test]
            fn conformance_public_key_is_p256_spki() {
                conformance::public_key_is_p256_spki(&$make);
            }
            #[test]
            fn conformance_signatures_verify_with_p256() {
                conformance::signatures_verify(&$make);
            }
            #[test]
            fn conformance_hmac_is_deterministic_and_separates_inputs() {
                conformance::hmac_properties(&$make);
            }
            #[test]
            fn conformance_wrong_kind_errors() {
                conformance::wrong_kind_errors(&$make);
            }
            #[test]
            fn conformance_unknown_label_errors() {
                conformance::unknown_label_errors(&$make);
            }
            #[test]
            fn conformance_bad_labels_refused() {
                conformance::bad_labels_refused(&$make);
            }
            #[test]
            fn conformance_destroy_removes_the_key() {
                conformance::destroy_removes_the_key(&$make);
            }
            #[test]
            fn conformance_concurrent_use() {
                conformance::concurrent_use(&$make);
            }
        }
    };
}
