//! Public keys: P-256 SubjectPublicKeyInfo checks (RFC 5480) and key identifiers
//! (RFC 5280 §4.2.1.2).

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use p256::ecdsa::VerifyingKey;
use profiles::SkiMethod;
use sha2::Digest;
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

use crate::error::{enc, CaError, Result};

/// id-ecPublicKey (RFC 5480 §2.1.1).
pub(crate) const ID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 / prime256v1 (RFC 5480 §2.1.1.1).
pub(crate) const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Decode an SPKI and check it is an uncompressed-or-compressed P-256 point on the curve
/// (RFC 5480 §2). Returns the SPKI re-encoded canonically (uncompressed point) and the key.
pub(crate) fn checked_p256_spki(
    spki_der: &[u8],
) -> Result<(SubjectPublicKeyInfoOwned, VerifyingKey)> {
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(|e| CaError::NotP256 {
        reason: format!("not a SubjectPublicKeyInfo: {e}"),
    })?;
    let key = p256_key(&spki)?;
    if is_uncompressed_p256(&spki) {
        return Ok((spki, key));
    }
    let canonical = SubjectPublicKeyInfoOwned::from_key(&key).map_err(enc("public key"))?;
    Ok((canonical, key))
}

/// The SPKI (already checked by [`p256_key`]) carries an uncompressed point and the named-curve
/// parameter: [`checked_p256_spki`] returns it as decoded, so its DER is the caller's input.
pub(crate) fn is_uncompressed_p256(spki: &SubjectPublicKeyInfoOwned) -> bool {
    spki.subject_public_key.as_bytes().map(<[u8]>::len) == Some(65)
        && spki.algorithm.parameters.as_ref().map(|p| p.value().len()) == Some(8)
}

pub(crate) fn p256_key(spki: &SubjectPublicKeyInfoOwned) -> Result<VerifyingKey> {
    p256_key_of(
        &spki.algorithm.oid,
        spki.algorithm.parameters.as_ref().map(Into::into),
        spki.subject_public_key.as_bytes(),
    )
}

/// The P-256 public key of an SPKI given by parts: id-ecPublicKey, the prime256v1 named curve,
/// a subjectPublicKey without unused bits holding a point on the curve.
pub(crate) fn p256_key_of(
    algorithm: &ObjectIdentifier,
    parameters: Option<der::asn1::AnyRef<'_>>,
    point: Option<&[u8]>,
) -> Result<VerifyingKey> {
    let not = |reason: String| CaError::NotP256 { reason };
    if *algorithm != ID_EC_PUBLIC_KEY {
        return Err(not(format!(
            "algorithm is {algorithm}, not id-ecPublicKey (1.2.840.10045.2.1){}",
            if algorithm.to_string() == "1.2.840.113549.1.1.1" {
                " (this is an RSA key)"
            } else {
                ""
            }
        )));
    }
    let curve = parameters
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .ok_or_else(|| not("EC parameters are not a named curve OID".into()))?;
    if curve != SECP256R1 {
        return Err(not(format!(
            "curve is {curve}, not prime256v1 (1.2.840.10045.3.1.7)"
        )));
    }
    let point = point.ok_or_else(|| not("subjectPublicKey has unused bits".into()))?;
    p256_point(point)
}

/// A SEC 1 encoded P-256 point, checked to be on the curve.
pub(crate) fn p256_point(point: &[u8]) -> Result<VerifyingKey> {
    VerifyingKey::from_sec1_bytes(point).map_err(|_| CaError::NotP256 {
        reason: "the point does not decode or is not on the curve".into(),
    })
}

/// The DER of an uncompressed P-256 SubjectPublicKeyInfo up to its 65-byte point (RFC 5480
/// §2: id-ecPublicKey, the prime256v1 named curve, a BIT STRING without unused bits), encoded
/// once with `spki`/`der`. Every canonical P-256 SPKI is this prefix followed by the point.
/// Empty if it could not be encoded (then every key takes the decoding path).
pub(crate) fn p256_spki_prefix() -> &'static [u8] {
    static PREFIX: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| {
        let point = [0u8; 65];
        let spki = SubjectPublicKeyInfoRef {
            algorithm: spki::AlgorithmIdentifierRef {
                oid: ID_EC_PUBLIC_KEY,
                parameters: der::asn1::AnyRef::new(
                    der::Tag::ObjectIdentifier,
                    SECP256R1.as_bytes(),
                )
                .ok(),
            },
            subject_public_key: match der::asn1::BitStringRef::from_bytes(&point) {
                Ok(b) => b,
                Err(_) => return Vec::new(),
            },
        };
        match spki.to_der() {
            Ok(der) if der.len() > point.len() => der[..der.len() - point.len()].to_vec(),
            _ => Vec::new(),
        }
    })
}

/// Key identifier of an SPKI: SHA-1 (RFC 5280 §4.2.1.2 (1)) or the leftmost 160 bits of
/// SHA-256 (RFC 7093 §2 (1)) over the subjectPublicKey BIT STRING value.
pub(crate) fn key_identifier(method: SkiMethod, spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    key_identifier_of(method, spki.subject_public_key.raw_bytes())
}

/// [`key_identifier`] over the subjectPublicKey BIT STRING value `bits`.
pub(crate) fn key_identifier_of(method: SkiMethod, bits: &[u8]) -> Vec<u8> {
    match method {
        SkiMethod::Rfc5280Sha1 => sha1::Sha1::digest(bits).to_vec(),
        SkiMethod::Rfc7093Sha256 => sha2::Sha256::digest(bits)[..20].to_vec(),
    }
}

/// A SubjectPublicKeyInfo given as DER or as PEM (`PUBLIC KEY`), checked to be a P-256 key;
/// returned as DER.
pub fn spki_from_der_or_pem(bytes: &[u8]) -> Result<Vec<u8>> {
    let der = if bytes.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(bytes).map_err(|_| CaError::NotP256 {
            reason: "PEM input is not text".into(),
        })?;
        let (label, der) = der::pem::decode_vec(text.as_bytes()).map_err(|e| CaError::NotP256 {
            reason: format!("not a PEM public key: {e}"),
        })?;
        if label != "PUBLIC KEY" {
            return Err(CaError::NotP256 {
                reason: format!("PEM label is {label:?}, expected \"PUBLIC KEY\""),
            });
        }
        der
    } else {
        bytes.to_vec()
    };
    checked_p256_spki(&der)?;
    Ok(der)
}
