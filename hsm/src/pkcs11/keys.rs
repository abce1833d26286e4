//! Key objects on a PKCS#11 token (OASIS PKCS#11 Base Specification v3.0): finding a key by
//! label and telling a P-256 private key (`CKK_EC` with the `secp256r1` `CKA_EC_PARAMS`) from a
//! generic secret (`CKK_GENERIC_SECRET`), reading the public half (`CKA_EC_POINT`, §2.3.3), and
//! the [`KeyStore`] operations over them: `CKM_EC_KEY_PAIR_GEN` (§2.3.5), `CKM_ECDSA` over a
//! host-computed SHA-256 digest (§2.3.6), `CKM_GENERIC_SECRET_KEY_GEN` and `CKM_SHA256_HMAC`
//! (§2.8, §2.14). Private and secret keys are created `CKA_SENSITIVE=TRUE`,
//! `CKA_EXTRACTABLE=FALSE` (§4.9). Every operation runs through the store's session
//! ([`Pkcs11Store`]), which reopens it and retries once when the module lost it.

use std::collections::HashMap;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState};
use der::{Decode, Encode};
use zeroize::Zeroizing;

use super::token_lock::Access;
use super::{Fail, Found, Pkcs11Store};
use crate::{HsmError, KeyInfo, KeyKind, KeyStore, Result};

/// OID of the NIST P-256 curve (RFC 5480 §2.1.1.1, `secp256r1`), the `CKA_EC_PARAMS` value.
const P256_OID: &str = "1.2.840.10045.3.1.7";

fn p256_params() -> std::result::Result<Vec<u8>, Fail> {
    let oid = der::asn1::ObjectIdentifier::new(P256_OID).map_err(|e| {
        Fail::Hsm(HsmError::Operation {
            op: "encode EC parameters",
            reason: e.to_string(),
        })
    })?;
    oid.to_der().map_err(|e| {
        Fail::Hsm(HsmError::Operation {
            op: "encode EC parameters",
            reason: e.to_string(),
        })
    })
}

/// Classify a key object: a P-256 private key or a generic secret key; anything else is `None`.
fn classify(session: &Session, obj: ObjectHandle) -> std::result::Result<Option<KeyKind>, Fail> {
    let attrs = session.get_attributes(
        obj,
        &[
            AttributeType::Class,
            AttributeType::KeyType,
            AttributeType::EcParams,
            AttributeType::Sign,
        ],
    )?;
    let mut class = None;
    let mut key_type = None;
    let mut params = None;
    let mut can_sign = false;
    for a in &attrs {
        match a {
            Attribute::Class(c) => class = Some(*c),
            Attribute::KeyType(k) => key_type = Some(*k),
            Attribute::EcParams(p) => params = Some(p.clone()),
            Attribute::Sign(b) => can_sign = *b,
            _ => {}
        }
    }
    Ok(match (class, key_type) {
        (Some(ObjectClass::PRIVATE_KEY), Some(KeyType::EC))
            if params.as_deref() == Some(p256_params()?.as_slice()) && can_sign =>
        {
            Some(KeyKind::EcP256)
        }
        (Some(ObjectClass::SECRET_KEY), Some(KeyType::GENERIC_SECRET)) if can_sign => {
            Some(KeyKind::HmacSha256)
        }
        _ => None,
    })
}

/// Find the private/secret key labelled `label` (cached per session).
fn lookup(
    session: &Session,
    cache: &mut HashMap<String, Found>,
    label: &str,
) -> std::result::Result<Option<Found>, Fail> {
    if let Some(f) = cache.get(label) {
        return Ok(Some(*f));
    }
    let mut found = None;
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY] {
        let handles = session.find_objects(&[
            Attribute::Token(true),
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])?;
        for h in handles {
            if let Some(kind) = classify(session, h)? {
                found = Some(Found { kind, key: h });
                break;
            }
        }
        if found.is_some() {
            break;
        }
    }
    match found {
        Some(f) => {
            cache.insert(label.to_owned(), f);
            Ok(Some(f))
        }
        None => {
            // Private objects are invisible to a session that is not logged in: tell "no such
            // key" apart from "the login was lost behind our back".
            let state = session.get_session_info()?.session_state();
            if matches!(state, SessionState::RwUser | SessionState::RoUser) {
                Ok(None)
            } else {
                Err(Fail::NotLoggedIn)
            }
        }
    }
}

fn require(
    session: &Session,
    cache: &mut HashMap<String, Found>,
    label: &str,
    expected: KeyKind,
) -> std::result::Result<ObjectHandle, Fail> {
    match lookup(session, cache, label)? {
        None => Err(Fail::Hsm(HsmError::KeyNotFound {
            label: label.to_owned(),
        })),
        Some(f) if f.kind != expected => Err(Fail::Hsm(HsmError::WrongKeyKind {
            label: label.to_owned(),
            expected,
            actual: f.kind,
        })),
        Some(f) => Ok(f.key),
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING around the SEC 1 point (PKCS#11 v3.0 §2.3.3);
/// some modules return the bare point. Accept both, return the bare point.
pub(super) fn unwrap_ec_point(value: &[u8]) -> std::result::Result<Vec<u8>, Fail> {
    if value.len() == 65 && value[0] == 0x04 {
        return Ok(value.to_vec());
    }
    der::asn1::OctetString::from_der(value)
        .map(|o| o.as_bytes().to_vec())
        .map_err(|e| {
            Fail::Hsm(HsmError::Operation {
                op: "read public key",
                reason: format!("CKA_EC_POINT is neither a point nor a DER OCTET STRING: {e}"),
            })
        })
}

fn spki_of(session: &Session, label: &str, id: &[u8]) -> std::result::Result<Vec<u8>, Fail> {
    let mut template = vec![
        Attribute::Token(true),
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    if !id.is_empty() {
        template.push(Attribute::Id(id.to_vec()));
    }
    let handles = session.find_objects(&template)?;
    let Some(public) = handles.first() else {
        return Err(Fail::Hsm(HsmError::PublicHalfMissing {
            label: label.to_owned(),
        }));
    };
    let attrs = session.get_attributes(*public, &[AttributeType::EcPoint])?;
    let point = attrs
        .iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p.clone()),
            _ => None,
        })
        .ok_or(Fail::Hsm(HsmError::Operation {
            op: "read public key",
            reason: format!("the public key object for {label:?} has no CKA_EC_POINT"),
        }))?;
    Ok(crate::p256_point_to_spki(
        &unwrap_ec_point(&point)?,
        "read public key",
    )?)
}

fn key_id_of(session: &Session, key: ObjectHandle) -> std::result::Result<Vec<u8>, Fail> {
    let attrs = session.get_attributes(key, &[AttributeType::Id])?;
    Ok(attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::Id(id) => Some(id),
            _ => None,
        })
        .unwrap_or_default())
}

fn refuse_taken(
    session: &Session,
    cache: &mut HashMap<String, Found>,
    label: &str,
) -> std::result::Result<(), Fail> {
    if lookup(session, cache, label)?.is_some() {
        return Err(Fail::Hsm(HsmError::KeyExists {
            label: label.to_owned(),
        }));
    }
    // Any other object (a foreign key type, a public key, a certificate) under the label also
    // makes it ambiguous.
    let others = session.find_objects(&[
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ])?;
    if !others.is_empty() {
        return Err(Fail::Hsm(HsmError::KeyExists {
            label: label.to_owned(),
        }));
    }
    Ok(())
}

impl KeyStore for Pkcs11Store {
    fn backend(&self) -> &'static str {
        "pkcs11"
    }

    fn generate_p256(&self, label: &str) -> Result<KeyInfo> {
        crate::check_label(label, crate::MAX_LABEL_LEN)?;
        let spki = self.run("generate P-256 key pair", Access::Write, |s, cache| {
            refuse_taken(s, cache, label)?;
            let id = s.generate_random_vec(16)?;
            let public = [
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::EcParams(p256_params()?),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ];
            let private = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ];
            s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)?;
            spki_of(s, label, &id)
        })?;
        tracing::info!(label, token = %self.token_label, "generated P-256 key pair");
        Ok(KeyInfo {
            label: label.to_owned(),
            kind: KeyKind::EcP256,
            spki_der: Some(spki),
        })
    }

    fn generate_hmac_secret(&self, label: &str) -> Result<KeyInfo> {
        crate::check_label(label, crate::MAX_LABEL_LEN)?;
        self.run("generate HMAC secret", Access::Write, |s, cache| {
            refuse_taken(s, cache, label)?;
            let id = s.generate_random_vec(16)?;
            let template = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::ValueLen(32.into()),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Verify(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id),
            ];
            s.generate_key(&Mechanism::GenericSecretKeyGen, &template)?;
            Ok(())
        })?;
        tracing::info!(label, token = %self.token_label, "generated HMAC-SHA256 secret");
        Ok(KeyInfo {
            label: label.to_owned(),
            kind: KeyKind::HmacSha256,
            spki_der: None,
        })
    }

    fn destroy(&self, label: &str) -> Result<bool> {
        crate::check_label(label, crate::MAX_LABEL_LEN)?;
        let destroyed = self.run("destroy key", Access::Write, |s, cache| {
            // Another process may have destroyed the key since it was cached here.
            cache.remove(label);
            let found = lookup(s, cache, label)?;
            cache.remove(label);
            // The key pair's public halves: those with the private key's id, or, when no
            // private key is left under the label, each EC public key under it whose id no
            // private key has (what an interrupted destroy leaves; another key's half stays).
            let mut publics = vec![
                Attribute::Token(true),
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            let publics = match found {
                Some(f) if f.kind == KeyKind::HmacSha256 => Vec::new(),
                Some(f) => {
                    publics.push(Attribute::Id(key_id_of(s, f.key)?));
                    s.find_objects(&publics)?
                }
                None => {
                    let mut orphans = Vec::new();
                    for h in s.find_objects(&publics)? {
                        let id = key_id_of(s, h)?;
                        let paired = s.find_objects(&[
                            Attribute::Token(true),
                            Attribute::Class(ObjectClass::PRIVATE_KEY),
                            Attribute::Id(id),
                        ])?;
                        if paired.is_empty() {
                            orphans.push(h);
                        }
                    }
                    orphans
                }
            };
            // The private key first: once it is gone nothing can sign under the label, and a
            // retry finds any public half left by the label alone.
            if let Some(f) = found {
                s.destroy_object(f.key)?;
            }
            for h in &publics {
                s.destroy_object(*h)?;
            }
            Ok(found.is_some() || !publics.is_empty())
        })?;
        if destroyed {
            tracing::info!(label, token = %self.token_label, "destroyed key");
        }
        Ok(destroyed)
    }

    fn find(&self, label: &str) -> Result<Option<KeyInfo>> {
        self.run("find key", Access::Read, |s, cache| {
            let Some(f) = lookup(s, cache, label)? else {
                return Ok(None);
            };
            let spki_der = match f.kind {
                KeyKind::EcP256 => Some(spki_of(s, label, &key_id_of(s, f.key)?)?),
                KeyKind::HmacSha256 => None,
            };
            Ok(Some(KeyInfo {
                label: label.to_owned(),
                kind: f.kind,
                spki_der,
            }))
        })
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        let mut keys = self.run("list keys", Access::Read, |s, _cache| {
            let mut out = Vec::new();
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY] {
                for h in s.find_objects(&[Attribute::Token(true), Attribute::Class(class)])? {
                    let Some(kind) = classify(s, h)? else {
                        continue;
                    };
                    let attrs = s.get_attributes(h, &[AttributeType::Label, AttributeType::Id])?;
                    let mut label = None;
                    let mut id = Vec::new();
                    for a in attrs {
                        match a {
                            Attribute::Label(l) => label = String::from_utf8(l).ok(),
                            Attribute::Id(i) => id = i,
                            _ => {}
                        }
                    }
                    // Keys without a UTF-8 label were not made by the station; skip them.
                    let Some(label) = label else { continue };
                    let spki_der = match kind {
                        KeyKind::EcP256 => Some(spki_of(s, &label, &id)?),
                        KeyKind::HmacSha256 => None,
                    };
                    out.push(KeyInfo {
                        label,
                        kind,
                        spki_der,
                    });
                }
            }
            Ok(out)
        })?;
        keys.sort_by(|a, b| a.label.cmp(&b.label));
        Ok(keys)
    }

    fn public_key_spki(&self, label: &str) -> Result<Vec<u8>> {
        self.run("read public key", Access::Read, |s, cache| {
            let key = require(s, cache, label, KeyKind::EcP256)?;
            spki_of(s, label, &key_id_of(s, key)?)
        })
    }

    fn sign_p256_sha256(&self, label: &str, message: &[u8]) -> Result<Vec<u8>> {
        let digest = crate::sha256(message);
        let raw = self.run("sign (CKM_ECDSA)", Access::Read, |s, cache| {
            let key = require(s, cache, label, KeyKind::EcP256)?;
            Ok(s.sign(&Mechanism::Ecdsa, key, &digest)?)
        })?;
        tracing::debug!(label, "signed with P-256 key");
        crate::normalise_p256_signature(&raw, "sign (CKM_ECDSA)")
    }

    fn hmac_sha256(&self, label: &str, data: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let tag =
            Zeroizing::new(
                self.run("HMAC (CKM_SHA256_HMAC)", Access::Read, |s, cache| {
                    let key = require(s, cache, label, KeyKind::HmacSha256)?;
                    Ok(s.sign(&Mechanism::Sha256Hmac, key, data)?)
                })?,
            );
        let mut out = Zeroizing::new([0u8; 32]);
        if tag.len() != out.len() {
            return Err(HsmError::Operation {
                op: "HMAC (CKM_SHA256_HMAC)",
                reason: format!("the module returned {} bytes, expected 32", tag.len()),
            });
        }
        out.copy_from_slice(&tag);
        Ok(out)
    }
}

impl Pkcs11Store {
    /// The private or secret key objects labelled `label`.
    #[cfg(test)]
    pub(crate) fn key_handle(&self, label: &str) -> Result<Option<ObjectHandle>> {
        self.run("find key", Access::Read, |s, c| {
            Ok(lookup(s, c, label)?.map(|f: Found| f.key))
        })
    }
}
