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
