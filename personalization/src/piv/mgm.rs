//! Card management key (9B) authentication: the mutual challenge-response of SP 800-73-4 Part 2
//! Appendix A.3 ("Authentication of the PIV Card Application Administrator") with the block
//! ciphers of SP 800-78-4 Table 6-1: 3DES (EDE3) and AES-128/192/256, one block in ECB.

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use zeroize::Zeroizing;

use crate::error::Error;
use profiles::card::MgmtAlgorithm;

use crate::secret::ManagementKey;

fn bad_key() -> Error {
    Error::Invalid {
        field: "management key".into(),
        rule: "key length does not fit its algorithm".into(),
    }
}

fn run<C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt>(
    key: &[u8],
    block: &[u8],
    encrypt: bool,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let cipher = C::new_from_slice(key).map_err(|_| bad_key())?;
    let mut b = aes::cipher::Block::<C>::default();
    if block.len() != b.len() {
        return Err(Error::Malformed {
            command: "GENERAL AUTHENTICATE",
            detail: format!("cryptogram of {} bytes, block is {}", block.len(), b.len()),
        });
    }
    b.copy_from_slice(block);
    if encrypt {
        cipher.encrypt_block(&mut b);
    } else {
        cipher.decrypt_block(&mut b);
    }
    let out = Zeroizing::new(b.to_vec());
    b.iter_mut().for_each(|x| *x = 0);
    Ok(out)
}

/// Encrypts (or decrypts) one block with the management key.
pub(crate) fn cipher_block(
    key: &ManagementKey,
    block: &[u8],
    encrypt: bool,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let k = key.bytes();
    match key.algorithm() {
        MgmtAlgorithm::TripleDes => run::<des::TdesEde3>(k, block, encrypt),
        MgmtAlgorithm::Aes128 => run::<aes::Aes128>(k, block, encrypt),
        MgmtAlgorithm::Aes192 => run::<aes::Aes192>(k, block, encrypt),
        MgmtAlgorithm::Aes256 => run::<aes::Aes256>(k, block, encrypt),
    }
}

/// Fresh random challenge of one block.
pub(crate) fn challenge(alg: MgmtAlgorithm) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut c = Zeroizing::new(vec![0u8; alg.block_len()]);
    getrandom::fill(&mut c).map_err(|e| Error::Invalid {
        field: "random generator".into(),
        rule: format!("the operating system RNG failed: {e}"),
    })?;
    Ok(c)
}

/// Constant-time comparison.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes128_matches_fips197_appendix_c1_vector() {
        // FIPS-197 Appendix C.1.
        let key =
            ManagementKey::from_hex(MgmtAlgorithm::Aes128, "000102030405060708090a0b0c0d0e0f")
                .unwrap();
        let pt = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let ct = cipher_block(&key, &pt, true).unwrap();
        assert_eq!(
            &ct[..],
            &[
                0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
                0xc5, 0x5a
            ]
        );
        assert_eq!(&cipher_block(&key, &ct, false).unwrap()[..], &pt);
    }

    #[test]
    fn tdes_with_three_equal_keys_is_single_des() {
        // Single-DES vector (FIPS 81 / classic "Now is t" example): key 0123456789ABCDEF,
        // plaintext "Now is t" -> 3FA40E8A984D4815. EDE3 with K1=K2=K3 reduces to DES.
        let key = ManagementKey::from_hex(
            MgmtAlgorithm::TripleDes,
            "0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        let ct = cipher_block(&key, b"Now is t", true).unwrap();
        assert_eq!(&ct[..], &[0x3f, 0xa4, 0x0e, 0x8a, 0x98, 0x4d, 0x48, 0x15]);
    }

    #[test]
    fn wrong_block_length_is_an_error() {
        let key = ManagementKey::transport_default();
        assert!(cipher_block(&key, &[0; 16], true).is_err());
    }
}
