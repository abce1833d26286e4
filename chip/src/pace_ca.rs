//! Chip Authentication and Active Authentication, chip side (ICAO Doc 9303 Part 11 §6.2 and
//! §6.1), for the keys the chip generates itself at personalization (GENERATE ASYMMETRIC KEY
//! PAIR, INS 46; the private keys never leave the chip, not even in `vchip show`: they are in
//! the image's sealed secrets).
//!
//! - Chip Authentication, id-CA-ECDH-AES-CBC-CMAC-128 (0.4.0.127.0.7.2.2.3.2.2), on NIST
//!   P-256: inside secure messaging, MSE:Set AT (P1-P2 41 A4, 80 OID [84 key ID]) then
//!   GENERAL AUTHENTICATE with 7C { 80 PK_DH,IFD } (§6.2.4.2); the chip answers 7C 00 under the
//!   old session keys, then restarts secure messaging with KS_ENC/KS_MAC = KDF(x(SK_IC ·
//!   PK_DH,IFD), 1/2) and SSC = 0 (§9.8.7.3).
//! - Active Authentication with ECDSA (§6.1, ActiveAuthenticationInfo in DG14 names
//!   ecdsa-plain-SHA256): INTERNAL AUTHENTICATE (INS 88) with an 8-byte challenge; the answer
//!   is the plain signature r ‖ s (BSI TR-03111 §5.2.1) over SHA-256 of the challenge.

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use zeroize::Zeroizing;

use crate::bac::Key16;
use crate::pace::{kdf_aes128, x_coordinate, Curve, KDF_ENC, KDF_MAC};
use crate::sw::StatusWord;
use crate::tlv;

/// id-CA-ECDH-AES-CBC-CMAC-128 = 0.4.0.127.0.7.2.2.3.2.2 (Part 11 §9.2.6), DER contents.
pub const OID_CA_ECDH_AES_128: [u8; 10] =
    [0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x03, 0x02, 0x02];

/// P1 P2 of GENERATE ASYMMETRIC KEY PAIR for the Chip Authentication key.
pub const KEY_CA: u8 = 0x01;
/// P1 P2 of GENERATE ASYMMETRIC KEY PAIR for the Active Authentication key.
pub const KEY_AA: u8 = 0x02;

/// Length of the Active Authentication challenge (Part 11 §6.1.3: 8 bytes).
pub const AA_CHALLENGE_LEN: usize = 8;

/// A fresh P-256 private key (32 bytes).
pub fn generate_private_key() -> Option<Zeroizing<Vec<u8>>> {
    Curve::P256.random_scalar()
}

/// Its public key, uncompressed.
pub fn public_key(sk: &[u8]) -> Option<Vec<u8>> {
    Curve::P256.mul(sk, None)
}

/// MSE:Set AT for Chip Authentication: 80 OID, optional 84 key ID (we hold one key; any key
/// ID other than 01 is unknown).
pub fn parse_set_at(data: &[u8]) -> Result<(), StatusWord> {
    let mut oid = None;
    let mut key_id = None;
    for obj in tlv::parse_all(data)? {
        let slot = match obj.tag {
            0x80 => &mut oid,
            0x84 => &mut key_id,
            _ => return Err(StatusWord::IncorrectData),
        };
        if slot.replace(obj.value).is_some() {
            return Err(StatusWord::IncorrectData);
        }
    }
    if oid != Some(&OID_CA_ECDH_AES_128[..]) {
        return Err(StatusWord::IncorrectData);
    }
    match key_id {
        None | Some([0x01]) => Ok(()),
        Some(_) => Err(StatusWord::ReferenceNotFound),
    }
}

/// The chip's half of Chip Authentication: from the GENERAL AUTHENTICATE data 7C { 80 PK },
/// the new session keys (KS_ENC, KS_MAC).
pub fn chip_authenticate(sk_ca: &[u8], data: &[u8]) -> Result<(Key16, Key16), StatusWord> {
    let inner = tlv::parse_single(data, 0x7C)?;
    let pk_ifd = tlv::parse_single(inner, 0x80)?;
    let point = Curve::P256
        .mul(sk_ca, Some(pk_ifd))
        .ok_or(StatusWord::IncorrectData)?;
    let k = x_coordinate(&point).ok_or(StatusWord::IncorrectData)?;
    Ok((kdf_aes128(&k, KDF_ENC), kdf_aes128(&k, KDF_MAC)))
}

/// Active Authentication: r ‖ s of ECDSA-SHA-256 over the challenge.
pub fn active_authenticate(sk_aa: &[u8], challenge: &[u8]) -> Result<Vec<u8>, StatusWord> {
    if challenge.len() != AA_CHALLENGE_LEN {
        return Err(StatusWord::WrongLength);
    }
    let key = SigningKey::from_slice(sk_aa).map_err(|_| StatusWord::NoPreciseDiagnosis)?;
    let sig: Signature = key.sign(challenge);
    Ok(sig.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chip_authentication_agrees_with_the_terminal_and_refuses_bad_points() {
        let sk = generate_private_key().unwrap();
        let pk_ic = public_key(&sk).unwrap();
        let eph = generate_private_key().unwrap();
        let pk_ifd = public_key(&eph).unwrap();
        let data = tlv::encode(0x7C, &tlv::encode(0x80, &pk_ifd));
        let (enc, mac) = chip_authenticate(&sk, &data).unwrap();
        let k = x_coordinate(&Curve::P256.mul(&eph, Some(&pk_ic)).unwrap()).unwrap();
        assert_eq!(*enc, *kdf_aes128(&k, KDF_ENC));
        assert_eq!(*mac, *kdf_aes128(&k, KDF_MAC));
        let mut bad = pk_ifd.clone();
        bad[64] ^= 1;
        let data = tlv::encode(0x7C, &tlv::encode(0x80, &bad));
        assert_eq!(
            chip_authenticate(&sk, &data).err(),
            Some(StatusWord::IncorrectData)
        );
    }

    #[test]
    fn set_at_names_the_protocol_and_key_one() {
        assert_eq!(
            parse_set_at(&hex::decode("800A04007F00070202030202").unwrap()),
            Ok(())
        );
        assert_eq!(
            parse_set_at(&hex::decode("800A04007F00070202030202840101").unwrap()),
            Ok(())
        );
        assert_eq!(
            parse_set_at(&hex::decode("800A04007F00070202030202840102").unwrap()),
            Err(StatusWord::ReferenceNotFound)
        );
        // id-CA-DH-AES (…3.1.2) is not offered.
        assert_eq!(
            parse_set_at(&hex::decode("800A04007F00070202030102").unwrap()),
            Err(StatusWord::IncorrectData)
        );
    }

    #[test]
    fn active_authentication_signature_verifies_with_the_public_key() {
        use p256::ecdsa::signature::Verifier;
        let sk = generate_private_key().unwrap();
        let sig = active_authenticate(&sk, b"8 bytes!").unwrap();
        assert_eq!(sig.len(), 64);
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public_key(&sk).unwrap()).unwrap();
        let sig = Signature::from_slice(&sig).unwrap();
        assert!(vk.verify(b"8 bytes!", &sig).is_ok());
        assert!(vk.verify(b"8 bytes?", &sig).is_err());
        assert_eq!(
            active_authenticate(&sk, b"7 bytes").err(),
            Some(StatusWord::WrongLength)
        );
    }
}
