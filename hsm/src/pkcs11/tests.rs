//! PKCS#11 backend tests against SoftHSM2 with a private token directory.

use cryptoki::object::{Attribute, AttributeType};
use cryptoki::session::SessionState;
use der::Encode;

use super::keys::unwrap_ec_point;
use super::test_token::{self, fresh_store, fresh_token_with_pin, USER_PIN};
use super::*;
use crate::conformance;
use crate::test_support;
use crate::{KeyStore, SecretSource};

crate::conformance_tests!(fresh_store());

/// The raw PKCS#11 function list of the same module (dlopen of the same path gives the same
/// library instance), to act behind the store's back.
fn raw(store: &Pkcs11Store) -> cryptoki_sys::Pkcs11 {
    // SAFETY: loading the module the store already loaded; no initialisation routine runs twice.
    unsafe { cryptoki_sys::Pkcs11::new(store.module()).expect("dlopen module") }
}

/// C_GetAttributeValue(obj, CKA_VALUE) with a real buffer; returns (rv, ulValueLen).
fn read_value(store: &Pkcs11Store, obj: ObjectHandle) -> (cryptoki_sys::CK_RV, u64) {
    let lib = raw(store);
    let mut buf = vec![0u8; 512];
    let mut attr = cryptoki_sys::CK_ATTRIBUTE {
        type_: cryptoki_sys::CKA_VALUE,
        pValue: buf.as_mut_ptr().cast(),
        ulValueLen: buf.len() as cryptoki_sys::CK_ULONG,
    };
    let rv = store
        .with_session(|s| {
            // SAFETY: valid session and object handles, one attribute with a 512-byte buffer.
            unsafe { lib.C_GetAttributeValue(s.handle(), obj.handle(), &mut attr, 1) }
        })
        .unwrap();
    assert!(
        buf.iter().all(|b| *b == 0),
        "no key byte was written into the buffer"
    );
    (rv, attr.ulValueLen)
}

#[test]
fn private_key_and_hmac_secret_cannot_be_read_out() {
    let store = fresh_store();
    store.generate_p256("root-ca").unwrap();
    store.generate_hmac_secret("card-master").unwrap();
    for label in ["root-ca", "card-master"] {
        let key = store.key_handle(label).unwrap().expect("key exists");
        let (rv, len) = read_value(&store, key);
        assert_eq!(
            rv,
            cryptoki_sys::CKR_ATTRIBUTE_SENSITIVE,
            "{label}: CKA_VALUE refused"
        );
        assert_eq!(len, cryptoki_sys::CK_UNAVAILABLE_INFORMATION, "{label}");

        let attrs = store
            .with_session(|s| {
                s.get_attributes(
                    key,
                    &[
                        AttributeType::Extractable,
                        AttributeType::Sensitive,
                        AttributeType::NeverExtractable,
                        AttributeType::AlwaysSensitive,
                        AttributeType::Private,
                        AttributeType::Token,
                    ],
                )
            })
            .unwrap()
            .unwrap();
        let flags: Vec<(AttributeType, bool)> = attrs
            .iter()
            .filter_map(|a| match a {
                Attribute::Extractable(b) => Some((AttributeType::Extractable, *b)),
                Attribute::Sensitive(b) => Some((AttributeType::Sensitive, *b)),
                Attribute::NeverExtractable(b) => Some((AttributeType::NeverExtractable, *b)),
                Attribute::AlwaysSensitive(b) => Some((AttributeType::AlwaysSensitive, *b)),
                Attribute::Private(b) => Some((AttributeType::Private, *b)),
                Attribute::Token(b) => Some((AttributeType::Token, *b)),
                _ => None,
            })
            .collect();
        assert_eq!(
            flags,
            vec![
                (AttributeType::Extractable, false),
                (AttributeType::Sensitive, true),
                (AttributeType::NeverExtractable, true),
                (AttributeType::AlwaysSensitive, true),
                (AttributeType::Private, true),
                (AttributeType::Token, true),
            ],
            "{label}"
        );
        // cryptoki's own size query reports the value as sensitive too.
        let info = store
            .with_session(|s| s.get_attribute_info(key, &[AttributeType::Value]))
            .unwrap()
            .unwrap();
        assert!(
            matches!(info[0], cryptoki::object::AttributeInfo::Sensitive),
            "{label}: {info:?}"
        );
    }
}

#[test]
fn sensitive_keys_cannot_be_made_extractable_again() {
    let store = fresh_store();
    store.generate_p256("k").unwrap();
    let key = store.key_handle("k").unwrap().unwrap();
    // PKCS#11 v3.0 §4.9: CKA_EXTRACTABLE may only go TRUE -> FALSE, CKA_SENSITIVE only FALSE -> TRUE.
    for attr in [Attribute::Extractable(true), Attribute::Sensitive(false)] {
        let r = store
            .with_session(|s| s.update_attributes(key, std::slice::from_ref(&attr)))
            .unwrap();
        assert!(r.is_err(), "{attr:?} must be refused");
    }
    assert_eq!(
        read_value(&store, key).0,
        cryptoki_sys::CKR_ATTRIBUTE_SENSITIVE
    );
}

#[test]
fn signing_recovers_after_all_sessions_are_closed_behind_the_store() {
    let store = fresh_store();
    let spki = store.generate_p256("k").unwrap().spki_der.unwrap();
    let before = store.with_session(|s| s.handle()).unwrap();
    let lib = raw(&store);
    // SAFETY: a valid slot id of an initialised module.
    let rv = unsafe { lib.C_CloseAllSessions(store.slot_id() as cryptoki_sys::CK_SLOT_ID) };
    assert_eq!(rv, cryptoki_sys::CKR_OK);

    // The old handle is dead now (CKR_SESSION_HANDLE_INVALID for any call on it).
    let rv = unsafe {
        let mut info = std::mem::zeroed::<cryptoki_sys::CK_SESSION_INFO>();
        lib.C_GetSessionInfo(before, &mut info)
    };
    assert_eq!(rv, cryptoki_sys::CKR_SESSION_HANDLE_INVALID);

    let sig = store.sign_p256_sha256("k", b"after the outage").unwrap();
    let vk =
        <p256::ecdsa::VerifyingKey as p256::pkcs8::DecodePublicKey>::from_public_key_der(&spki)
            .unwrap();
    use p256::ecdsa::signature::Verifier;
    vk.verify(
        b"after the outage",
        &p256::ecdsa::Signature::from_der(&sig).unwrap(),
    )
    .unwrap();
    let state = store
        .with_session(|s| s.get_session_info().map(|i| i.session_state()))
        .unwrap()
        .unwrap();
    assert_eq!(state, SessionState::RwUser, "the new session is logged in");
}

#[test]
fn hmac_recovers_after_logout_behind_the_store() {
    let store = fresh_store();
    store.generate_hmac_secret("m").unwrap();
    let expected = store.hmac_sha256("m", b"serial").unwrap();
    // Log out behind the store's back. The key handle is cached, so the module itself
    // answers the next C_SignInit (CKR_USER_NOT_LOGGED_IN or CKR_KEY_HANDLE_INVALID).
    let lib = raw(&store);
    let rv = store
        .with_session(|s| unsafe { lib.C_Logout(s.handle()) })
        .unwrap();
    assert_eq!(rv, cryptoki_sys::CKR_OK);
    assert_eq!(*store.hmac_sha256("m", b"serial").unwrap(), *expected);

    // Once more, now with a label lookup that finds nothing in the logged-out session: the
    // store must tell "no such key" from "login lost" and log in again.
    let rv = store
        .with_session(|s| unsafe { lib.C_Logout(s.handle()) })
        .unwrap();
    assert_eq!(rv, cryptoki_sys::CKR_OK);
    store.generate_p256("after-logout").unwrap();
    assert!(store.find("after-logout").unwrap().is_some());
}

#[test]
fn keys_persist_across_stores_and_are_found_by_label() {
    let token = fresh_token_with_pin(USER_PIN);
    let first = token.open(Zeroizing::new(USER_PIN.into())).unwrap();
    let k = first.generate_p256("persisted").unwrap();
    drop(first);
    let second = token.open(Zeroizing::new(USER_PIN.into())).unwrap();
    assert_eq!(second.find("persisted").unwrap(), Some(k));
}

/// Destroy one half of key pair `label` behind the store's back, as a destroy cut short by a
/// crash (or by an older version's order) leaves it.
fn destroy_half(store: &Pkcs11Store, label: &str, class: cryptoki::object::ObjectClass) {
    store
        .with_session(|s| {
            let found = s
                .find_objects(&[
                    Attribute::Token(true),
                    Attribute::Class(class),
                    Attribute::Label(label.as_bytes().to_vec()),
                ])
                .unwrap();
            assert_eq!(found.len(), 1, "{label}: one {class:?}");
            s.destroy_object(found[0]).unwrap();
        })
        .unwrap();
}

#[test]
fn a_destroy_cut_short_is_finished_by_the_next_one_whichever_half_is_left() {
    use cryptoki::object::ObjectClass;
    let token = fresh_token_with_pin(USER_PIN);
    let store = token.open(Zeroizing::new(USER_PIN.into())).unwrap();
    let keep = store.generate_p256("keep").unwrap();
    store.generate_p256("only-private").unwrap();
    store.generate_p256("only-public").unwrap();

    // The private half left (the public one went first): found, but unreadable as a key, and
    // named as such; destroy removes it.
    destroy_half(&store, "only-private", ObjectClass::PUBLIC_KEY);
    let r = store.find("only-private");
    assert!(
        matches!(&r, Err(HsmError::PublicHalfMissing { label }) if label == "only-private"),
        "{r:?}"
    );
    assert!(store.destroy("only-private").unwrap());
    assert_eq!(store.find("only-private").unwrap(), None);

    // The public half left, seen by another process that had the key pair cached: destroy
    // removes the public object, and the label is free again.
    let other = token.open(Zeroizing::new(USER_PIN.into())).unwrap();
    assert!(other.find("only-public").unwrap().is_some(), "cached there");
    destroy_half(&store, "only-public", ObjectClass::PRIVATE_KEY);
    assert_eq!(store.find("only-public").unwrap(), None);
    assert!(
        other.destroy("only-public").unwrap(),
        "the public half was left"
    );
    assert!(!store.destroy("only-public").unwrap(), "nothing left");
    store.generate_p256("only-public").unwrap();

    assert_eq!(store.find("keep").unwrap(), Some(keep.clone()));
    assert!(store.sign_p256_sha256("keep", b"untouched").is_ok());
}

#[test]
fn open_from_config_reads_the_pin_from_a_file() {
    let token = fresh_token_with_pin(USER_PIN);
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("hsm-pin");
    std::fs::write(&pin_file, format!("{USER_PIN}\n")).unwrap();
    let cfg = token.config(SecretSource::File(pin_file));
    let store = crate::open(&cfg).unwrap();
    assert_eq!(store.backend(), "pkcs11");
    store.generate_hmac_secret("x").unwrap();
}

#[test]
fn wrong_pin_is_a_login_error_that_does_not_contain_the_pin() {
    let token = fresh_token_with_pin(USER_PIN);
    let wrong = "wrong-pin-81c2e4";
    let err = token.open(Zeroizing::new(wrong.into())).unwrap_err();
    assert!(matches!(err, HsmError::Login(_)), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("PinIncorrect"), "{shown}");
    assert!(
        !shown.contains(wrong) && !shown.contains(USER_PIN),
        "{shown}"
    );
}

#[test]
fn no_hsm_pin_appears_in_any_log_line() {
    let logs = test_support::capture_logs();
    let pin = "log-probe-pin-6a7b8c";
    let so_pin = "log-probe-so-9d8e7f";
    let wrong = "log-probe-wrong-5e4d3c";

    let token =
        SoftHsm2Token::create(&test_token::softhsm_dir(), "log-probe", so_pin, pin).unwrap();
    let err = token.open(Zeroizing::new(wrong.into())).unwrap_err();
    let shown = format!("{err} {err:?}");
    let store = token.open(Zeroizing::new(pin.into())).unwrap();
    store.generate_p256("k").unwrap();
    store.generate_hmac_secret("m").unwrap();
    store.sign_p256_sha256("k", b"m").unwrap();
    // Force the recovery path (re-login) while capturing.
    let lib = raw(&store);
    unsafe { lib.C_CloseAllSessions(store.slot_id() as cryptoki_sys::CK_SLOT_ID) };
    store.hmac_sha256("m", b"x").unwrap();
    // The store's own Debug output.
    let debug = format!("{store:?}");

    let text = logs.text();
    // The capture works and saw this test's operations at all levels we emit.
    assert!(
        text.contains("PKCS#11 token initialised") && text.contains("log-probe"),
        "{text}"
    );
    assert!(
        text.contains("PKCS#11 session lost"),
        "recovery was logged: {text}"
    );
    assert!(
        text.contains("DEBUG"),
        "TRACE/DEBUG records are captured: {text}"
    );
    for secret in [pin, so_pin, wrong] {
        assert!(!text.contains(secret), "a PIN leaked into the log");
        assert!(
            !shown.contains(secret),
            "a PIN leaked into an error: {shown}"
        );
        assert!(!debug.contains(secret), "a PIN leaked into Debug: {debug}");
    }
}

#[test]
fn missing_module_is_a_clear_error() {
    let err = Pkcs11Store::open(
        Path::new("/nonexistent/libnothing.so"),
        &BTreeMap::new(),
        "t",
        Zeroizing::new("1234".into()),
    )
    .unwrap_err();
    assert!(
        matches!(&err, HsmError::Module { path, reason }
            if path == Path::new("/nonexistent/libnothing.so") && reason.contains("no such file")),
        "{err}"
    );
}

#[test]
fn unknown_token_label_is_token_not_found() {
    let _ = fresh_store(); // make sure the module is initialised with the test environment
    let t = SoftHsm2Token::at(&test_token::softhsm_dir(), "no-such-token");
    let err = t.open(Zeroizing::new(USER_PIN.into())).unwrap_err();
    assert!(
        matches!(&err, HsmError::TokenNotFound { label } if label == "no-such-token"),
        "{err}"
    );
}

#[test]
fn a_softhsm_environment_the_process_was_not_started_with_is_refused_and_not_set() {
    let _ = fresh_store();
    let before = std::env::var_os("SOFTHSM2_CONF");
    let other = tempfile::tempdir().unwrap();
    let err = SoftHsm2Token::create(other.path(), "elsewhere", "so-1", "user-1").unwrap_err();
    assert!(
        matches!(&err, HsmError::Environment { name, wanted, .. }
            if name == "SOFTHSM2_CONF" && wanted.starts_with(&*other.path().to_string_lossy())),
        "{err}"
    );
    assert!(err.to_string().contains("when the process starts"), "{err}");
    // The process environment is read, never written.
    assert_eq!(std::env::var_os("SOFTHSM2_CONF"), before);
}

#[test]
fn init_token_refuses_a_taken_label_and_a_label_over_32_bytes() {
    let token = fresh_token_with_pin(USER_PIN);
    let again = init_token(
        &token.module,
        &token.env,
        SlotChoice::FirstFree,
        &token.token_label,
        "so",
        "user",
    )
    .unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    let long = "L".repeat(33);
    let err = init_token(
        &token.module,
        &token.env,
        SlotChoice::FirstFree,
        &long,
        "so",
        "user",
    )
    .unwrap_err();
    assert!(err.to_string().contains("1 to 32 bytes"), "{err}");
}

#[test]
fn softhsm2_conf_names_the_private_token_dir() {
    let conf = softhsm2_conf(Path::new("/data/hsm/tokens"));
    assert!(conf.contains("directories.tokendir = /data/hsm/tokens\n"));
    assert!(conf.contains("objectstore.backend = file\n"));
}

#[test]
fn ec_point_is_unwrapped_from_its_octet_string() {
    let mut point = vec![0x04];
    point.extend_from_slice(&[7u8; 64]);
    let wrapped = der::asn1::OctetString::new(point.clone())
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(&wrapped[..2], &[0x04, 0x41]);
    assert_eq!(unwrap_ec_point(&wrapped).ok(), Some(point.clone()));
    assert_eq!(unwrap_ec_point(&point).ok(), Some(point));
    assert!(unwrap_ec_point(&[0x30, 0x00]).is_err());
}
