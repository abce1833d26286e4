//! What a registration authority checks of a key generated elsewhere (on a card) before it is
//! certified, and the subject it certifies it under: the proof of possession (an ECDSA P-256
//! signature, FIPS 186-5 §6.4, over a digest the relying party chose) and the holder's subject
//! from the registry's fields. Shared by the station's own CA and the national centre.

use p256::ecdsa::DerSignature;
use signature::hazmat::PrehashVerifier;

use crate::error::Result;
use crate::keys::checked_p256_spki;
use crate::subject::HolderSubject;

/// Check that `signature` (DER `Ecdsa-Sig-Value`) is an ECDSA P-256 signature over the 32-byte
/// `digest` (used as the hash value, as a PIV card's GENERAL AUTHENTICATE signs it) by the key of
/// `spki_der`. An error when `spki_der` is not a P-256 SubjectPublicKeyInfo; `false` when the
/// signature does not parse or does not verify.
pub fn verify_possession(spki_der: &[u8], digest: &[u8; 32], signature: &[u8]) -> Result<bool> {
    let (_, key) = checked_p256_spki(spki_der)?;
    Ok(DerSignature::from_bytes(signature)
        .is_ok_and(|sig| key.verify_prehash(digest, &sig).is_ok()))
}

/// Whether certificate `child_der` was signed by the key of certificate `issuer_der`
/// (ecdsa-with-SHA256 over its TBSCertificate, RFC 5280 §4.1.1.3) and names it as its issuer.
/// An error when either is not a certificate or the issuer's key is not P-256; `false` when the
/// names differ or the signature does not verify. What a station checks of a CA certificate the
/// centre sends it before it records it.
pub fn issued_by(child_der: &[u8], issuer_der: &[u8]) -> Result<bool> {
    use der::{Decode, Encode};
    let parse = |d: &[u8]| {
        x509_cert::Certificate::from_der(d).map_err(|e| crate::error::CaError::Certificate {
            reason: e.to_string(),
        })
    };
    let (child, issuer) = (parse(child_der)?, parse(issuer_der)?);
    if child.tbs_certificate().issuer() != issuer.tbs_certificate().subject()
        || child.signature_algorithm().oid != crate::ECDSA_WITH_SHA256
    {
        return Ok(false);
    }
    let tbs = child
        .tbs_certificate()
        .to_der()
        .map_err(crate::error::enc("TBSCertificate"))?;
    let Some(sig) = child.signature().as_bytes() else {
        return Ok(false);
    };
    signed_by(&issuer, &tbs, sig)
}

/// Whether `signature` (DER `Ecdsa-Sig-Value`) over `message` (ecdsa-with-SHA256) verifies with
/// the key `cert` certifies. An error when that key is not P-256.
pub(crate) fn signed_by(
    cert: &x509_cert::Certificate,
    message: &[u8],
    signature: &[u8],
) -> Result<bool> {
    use der::Encode;
    use signature::Verifier;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(crate::error::enc("SPKI"))?;
    let (_, key) = checked_p256_spki(&spki)?;
    Ok(DerSignature::from_bytes(signature).is_ok_and(|sig| key.verify(message, &sig).is_ok()))
}

/// The subject of a holder certificate: PINFL, names, "given names surname" as the common name,
/// and `country` (ISO 3166-1 alpha-2: the document profile's issuing country).
pub fn holder_subject(
    pinfl: &str,
    surname: &str,
    given_names: &str,
    country: &str,
) -> HolderSubject {
    HolderSubject {
        pinfl: pinfl.to_owned(),
        surname: surname.to_owned(),
        given_names: given_names.to_owned(),
        common_name: format!("{given_names} {surname}"),
        country: country.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::{DerSignature, SigningKey};
    use p256::pkcs8::EncodePublicKey;

    use super::*;

    #[test]
    fn a_proof_verifies_only_for_its_digest_and_key() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let other = SigningKey::from_slice(&[8u8; 32]).unwrap();
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let digest = [1u8; 32];
        let sig: DerSignature = key.sign_prehash(&digest).unwrap();
        assert!(verify_possession(spki.as_bytes(), &digest, sig.as_bytes()).unwrap());
        assert!(!verify_possession(spki.as_bytes(), &[2u8; 32], sig.as_bytes()).unwrap());
        let forged: DerSignature = other.sign_prehash(&digest).unwrap();
        assert!(!verify_possession(spki.as_bytes(), &digest, forged.as_bytes()).unwrap());
        assert!(!verify_possession(spki.as_bytes(), &digest, b"not DER").unwrap());
        assert!(verify_possession(b"not a key", &digest, sig.as_bytes()).is_err());
    }

    #[test]
    fn the_holder_subject_names_given_names_then_surname() {
        let s = holder_subject("31234567890123", "Karimova", "Dilnoza", "UZ");
        assert_eq!(s.common_name, "Dilnoza Karimova");
        assert!(s.validate().is_ok());
    }
}
