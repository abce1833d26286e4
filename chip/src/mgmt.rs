//! The PIV Card Application Administration Key (key reference 9B) and its block ciphers
//! (NIST SP 800-78-4 table 5: algorithm 03 = 3-key Triple DES, 08 = AES-128, 0A = AES-192,
//! 0C = AES-256), used in the challenge-response flows of SP 800-73-4 Part 2 Appendix A.1
//! (GENERAL AUTHENTICATE with a witness or a challenge). Single-block ECB operations only.

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use zeroize::Zeroizing;

use crate::sw::StatusWord;

/// Algorithm identifiers for the management key (SP 800-78-4 table 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MgmtAlgorithm {
    /// 03: Triple DES (3 keys, EDE), 24-byte key, 8-byte block.
    Tdes,
    /// 08: AES-128.
    Aes128,
    /// 0A: AES-192.
    Aes192,
    /// 0C: AES-256.
    Aes256,
}

impl MgmtAlgorithm {
    /// Parse an algorithm identifier byte.
    pub fn from_id(id: u8) -> Option<MgmtAlgorithm> {
        match id {
            0x03 => Some(MgmtAlgorithm::Tdes),
            0x08 => Some(MgmtAlgorithm::Aes128),
            0x0A => Some(MgmtAlgorithm::Aes192),
            0x0C => Some(MgmtAlgorithm::Aes256),
            _ => None,
        }
    }

    /// The identifier byte.
    pub fn id(self) -> u8 {
        match self {
            MgmtAlgorithm::Tdes => 0x03,
            MgmtAlgorithm::Aes128 => 0x08,
            MgmtAlgorithm::Aes192 => 0x0A,
            MgmtAlgorithm::Aes256 => 0x0C,
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            MgmtAlgorithm::Tdes => 24,
            MgmtAlgorithm::Aes128 => 16,
            MgmtAlgorithm::Aes192 => 24,
            MgmtAlgorithm::Aes256 => 32,
        }
    }

    /// Cipher block length in bytes (length of witness and challenge).
    pub fn block_len(self) -> usize {
        match self {
            MgmtAlgorithm::Tdes => 8,
            _ => 16,
        }
    }
}

/// A management key: algorithm and key bytes (zeroized on drop).
#[derive(Clone)]
pub struct MgmtKey {
    /// The algorithm.
    pub alg: MgmtAlgorithm,
    /// The key bytes, `alg.key_len()` long.
    pub key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for MgmtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MgmtKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Transport management key of a blank card: 3DES 01 02 03 04 05 06 07 08 three times
/// (docs/card.md, card contract).
pub const TRANSPORT_MGMT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

impl MgmtKey {
    /// Build a key, checking the length against the algorithm.
    pub fn new(alg: MgmtAlgorithm, key: &[u8]) -> Result<MgmtKey, StatusWord> {
        if key.len() != alg.key_len() {
            return Err(StatusWord::IncorrectData);
        }
        Ok(MgmtKey {
            alg,
            key: Zeroizing::new(key.to_vec()),
        })
    }

    /// The transport key of a blank card.
    pub fn transport() -> MgmtKey {
        MgmtKey {
            alg: MgmtAlgorithm::Tdes,
            key: Zeroizing::new(TRANSPORT_MGMT_KEY.to_vec()),
        }
    }

    /// Encrypt (`encrypt = true`) or decrypt one block in place.
    pub fn crypt_block(&self, block: &mut [u8], encrypt: bool) -> Result<(), StatusWord> {
        match self.alg {
            MgmtAlgorithm::Tdes => one_block::<des::TdesEde3>(&self.key, block, encrypt),
            MgmtAlgorithm::Aes128 => one_block::<aes::Aes128>(&self.key, block, encrypt),
            MgmtAlgorithm::Aes192 => one_block::<aes::Aes192>(&self.key, block, encrypt),
            MgmtAlgorithm::Aes256 => one_block::<aes::Aes256>(&self.key, block, encrypt),
        }
    }
}

fn one_block<C>(key: &[u8], block: &mut [u8], encrypt: bool) -> Result<(), StatusWord>
where
    C: BlockCipherEncrypt + BlockCipherDecrypt + KeyInit,
{
    let cipher = C::new_from_slice(key).map_err(|_| StatusWord::IncorrectData)?;
    let block: &mut aes::cipher::Block<C> =
        block.try_into().map_err(|_| StatusWord::IncorrectData)?;
    if encrypt {
        cipher.encrypt_block(block);
    } else {
        cipher.decrypt_block(block);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes128_matches_fips197_appendix_c1() {
        // FIPS 197 C.1: key 000102..0f, plaintext 00112233..ff.
        let key: Vec<u8> = (0u8..16).collect();
        let mut block = hex::decode("00112233445566778899aabbccddeeff").unwrap();
        let k = MgmtKey::new(MgmtAlgorithm::Aes128, &key).unwrap();
        k.crypt_block(&mut block, true).unwrap();
        assert_eq!(hex::encode(&block), "69c4e0d86a7b0430d8cdb78070b4c55a");
        k.crypt_block(&mut block, false).unwrap();
        assert_eq!(hex::encode(&block), "00112233445566778899aabbccddeeff");
    }

    #[test]
    fn tdes_round_trips_and_rejects_wrong_block_and_key_lengths() {
        let k = MgmtKey::transport();
        let mut block = [0x11u8; 8];
        k.crypt_block(&mut block, true).unwrap();
        assert_ne!(block, [0x11u8; 8]);
        k.crypt_block(&mut block, false).unwrap();
        assert_eq!(block, [0x11u8; 8]);
        assert_eq!(
            k.crypt_block(&mut [0u8; 16], true),
            Err(StatusWord::IncorrectData)
        );
        assert!(MgmtKey::new(MgmtAlgorithm::Aes256, &[0; 16]).is_err());
    }
}
