//! Basic Access Control, chip side (ICAO Doc 9303 Part 11 §4.3) and the symmetric cryptography
//! it rests on (§9.7): key derivation from the key seed with SHA-1 and DES parity adjustment
//! (§9.7.1.1, §9.7.2), two-key 3DES in CBC mode with a zero IV (§9.7.4 / §4.3.3.1), and the
//! ISO/IEC 9797-1 MAC algorithm 3 ("retail MAC") with padding method 2 (§9.7.4). The block
//! ciphers and SHA-1 come from the `des`, `cbc` and `sha1` crates; only the retail-MAC
//! composition (single-DES CBC over all blocks, then 3DES on the last block) is written here.

use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt};
use cbc::cipher::{KeyInit, KeyIvInit};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

/// A two-key 3DES key K_a ‖ K_b (16 bytes), wiped on drop.
pub type Key16 = Zeroizing<[u8; 16]>;

/// Counter c of the key derivation for an encryption key (§9.7.1.1).
pub const KDF_ENC: u32 = 1;
/// Counter c of the key derivation for a MAC key (§9.7.1.1).
pub const KDF_MAC: u32 = 2;

/// Length of E_IFD ‖ M_IFD in MUTUAL AUTHENTICATE (32-byte cryptogram + 8-byte MAC).
pub const MUTUAL_AUTH_LEN: usize = 40;

/// Why a MUTUAL AUTHENTICATE failed (the chip answers 6300 for both, §4.3.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacFailure {
    /// M_IFD is not the MAC of E_IFD under K_MAC.
    BadMac,
    /// The decrypted cryptogram does not contain the chip's challenge RND.ICC.
    WrongChallenge,
    /// The command data is not 40 bytes.
    BadLength,
}

/// Document Basic Access Key seed from the MRZ information (document number ‖ check digit ‖
/// date of birth ‖ check digit ‖ date of expiry ‖ check digit): the 16 most significant bytes
/// of SHA-1 (§9.7.2). The chip receives the seed from the host; this is here for tests and for
/// the documentation of what the host sends.
pub fn key_seed_from_mrz_information(mrz_information: &[u8]) -> Key16 {
    let digest = Sha1::digest(mrz_information);
    let mut seed = Zeroizing::new([0u8; 16]);
    seed.copy_from_slice(&digest[..16]);
    seed
}

/// Key derivation (§9.7.1.1): H = SHA-1(K_seed ‖ c), K_a = H[0..8], K_b = H[8..16], each byte
/// adjusted to odd parity (the DES parity bits, FIPS 46-3).
pub fn derive_key(seed: &[u8; 16], counter: u32) -> Key16 {
    let mut hasher = Sha1::new();
    hasher.update(seed);
    hasher.update(counter.to_be_bytes());
    let digest = hasher.finalize();
    let mut key = Zeroizing::new([0u8; 16]);
    key.copy_from_slice(&digest[..16]);
    adjust_parity(key.as_mut_slice());
    key
}

/// Set the least significant bit of every byte so that the byte has odd parity.
pub fn adjust_parity(key: &mut [u8]) {
    for b in key {
        let high = *b & 0xFE;
        *b = high | u8::from(high.count_ones() % 2 == 0);
    }
}

/// ISO/IEC 9797-1 padding method 2 (also ISO 7816-4): append 80, then 00 up to a multiple of 8.
pub fn pad(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(data);
    out.push(0x80);
    while out.len() % 8 != 0 {
        out.push(0x00);
    }
    out
}

/// Remove padding method 2; `None` if the padding is malformed.
pub fn unpad(data: &[u8]) -> Option<&[u8]> {
    let end = data.iter().rposition(|&b| b != 0)?;
    if data[end] != 0x80 || data.len() - end > 8 {
        return None;
    }
    Some(&data[..end])
}

/// 3DES-CBC encryption with a zero IV (§9.7.4 for BAC secure messaging and §4.3.3.1 for the
/// authentication cryptograms). `None` when `data` is not a whole number of blocks.
pub fn tdes_encrypt(key: &[u8; 16], data: &[u8]) -> Option<Vec<u8>> {
    if !data.len().is_multiple_of(8) {
        return None;
    }
    let enc = cbc::Encryptor::<des::TdesEde2>::new_from_slices(key, &[0u8; 8]).ok()?;
    Some(enc.encrypt_padded_vec::<NoPadding>(data))
}

/// 3DES-CBC decryption with a zero IV; `None` when `data` is not a whole number of blocks.
pub fn tdes_decrypt(key: &[u8; 16], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if !data.len().is_multiple_of(8) {
        return None;
    }
    let dec = cbc::Decryptor::<des::TdesEde2>::new_from_slices(key, &[0u8; 8]).ok()?;
    dec.decrypt_padded_vec::<NoPadding>(data)
        .ok()
        .map(Zeroizing::new)
}

/// ISO/IEC 9797-1 MAC algorithm 3 with DES, padding method 2 and an 8-byte result (§9.7.4):
/// single-DES CBC-MAC under K_a over the padded message, then the last block is decrypted with
/// K_b and encrypted with K_a again.
pub fn retail_mac(key: &[u8; 16], message: &[u8]) -> [u8; 8] {
    let padded = Zeroizing::new(pad(message));
    let mut half = Zeroizing::new([0u8; 8]);
    half.copy_from_slice(&key[..8]);
    let ka = des::Des::new(&(*half).into());
    half.copy_from_slice(&key[8..]);
    let kb = des::Des::new(&(*half).into());
    let mut state = des::cipher::Block::<des::Des>::default();
    for chunk in padded.chunks(8) {
        for (s, m) in state.iter_mut().zip(chunk) {
            *s ^= m;
        }
        ka.encrypt_block(&mut state);
    }
    kb.decrypt_block(&mut state);
    ka.encrypt_block(&mut state);
    let mut out = [0u8; 8];
    out.copy_from_slice(&state);
    out
}

/// Compare two byte strings without an early exit.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a successful mutual authentication establishes: the session keys and the initial send
/// sequence counter (§9.8.2: SSC = the 4 least significant bytes of RND.ICC ‖ those of RND.IFD).
pub struct SessionKeys {
    /// KS_ENC.
    pub ks_enc: Key16,
    /// KS_MAC.
    pub ks_mac: Key16,
    /// Initial SSC.
    pub ssc: [u8; 8],
}

/// The chip's step of MUTUAL AUTHENTICATE (§4.3.3.1 steps 3–5 and §9.7.1 for the session keys):
/// check M_IFD over E_IFD with K_MAC, decrypt E_IFD with K_ENC into RND.IFD ‖ RND.ICC' ‖ K.IFD,
/// check RND.ICC' = RND.ICC, then answer E_ICC ‖ M_ICC where E_ICC = 3DES(K_ENC, RND.ICC ‖
/// RND.IFD ‖ K.ICC), and derive KS_ENC, KS_MAC from K_seed = K.IFD ⊕ K.ICC.
pub fn chip_authenticate(
    k_enc: &[u8; 16],
    k_mac: &[u8; 16],
    rnd_icc: &[u8; 8],
    k_icc: &[u8; 16],
    command: &[u8],
) -> Result<(Vec<u8>, SessionKeys), BacFailure> {
    if command.len() != MUTUAL_AUTH_LEN {
        return Err(BacFailure::BadLength);
    }
    let (e_ifd, m_ifd) = command.split_at(32);
    if !ct_eq(&retail_mac(k_mac, e_ifd), m_ifd) {
        return Err(BacFailure::BadMac);
    }
    let s = tdes_decrypt(k_enc, e_ifd).ok_or(BacFailure::BadLength)?;
    let (rnd_ifd, rest) = s.split_at(8);
    let (rnd_icc_echo, k_ifd) = rest.split_at(8);
    if !ct_eq(rnd_icc_echo, rnd_icc) {
        return Err(BacFailure::WrongChallenge);
    }
    let mut r = Zeroizing::new(Vec::with_capacity(32));
    r.extend_from_slice(rnd_icc);
    r.extend_from_slice(rnd_ifd);
    r.extend_from_slice(k_icc);
    let e_icc = tdes_encrypt(k_enc, &r).ok_or(BacFailure::BadLength)?;
    let m_icc = retail_mac(k_mac, &e_icc);
    let mut answer = e_icc;
    answer.extend_from_slice(&m_icc);

    let mut seed = Zeroizing::new([0u8; 16]);
    for (i, s) in seed.iter_mut().enumerate() {
        *s = k_ifd[i] ^ k_icc[i];
    }
    let mut ssc = [0u8; 8];
    ssc[..4].copy_from_slice(&rnd_icc[4..]);
    ssc[4..].copy_from_slice(&rnd_ifd[4..]);
    Ok((
        answer,
        SessionKeys {
            ks_enc: derive_key(&seed, KDF_ENC),
            ks_mac: derive_key(&seed, KDF_MAC),
            ssc,
        },
    ))
}

#[cfg(test)]
mod tests {
    //! ICAO Doc 9303 Part 11 Appendix D.2 and D.3 (worked example for the MRZ of the specimen
    //! document L898902C<, born 1969-08-06, expiring 1994-06-23).
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector hex")
    }

    fn h16(s: &str) -> [u8; 16] {
        h(s).try_into().expect("16 bytes")
    }

    #[test]
    fn appendix_d2_derives_kseed_kenc_and_kmac_from_the_mrz_information() {
        let seed = key_seed_from_mrz_information(b"L898902C<369080619406236");
        assert_eq!(hex::encode_upper(*seed), "239AB9CB282DAF66231DC5A4DF6BFBAE");
        assert_eq!(
            hex::encode_upper(derive_key(&seed, KDF_ENC)),
            "AB94FDECF2674FDFB9B391F85D7F76F2"
        );
        assert_eq!(
            hex::encode_upper(derive_key(&seed, KDF_MAC)),
            "7962D9ECE03D1ACD4C76089DCE131543"
        );
    }

    #[test]
    fn parity_adjustment_sets_odd_parity_on_every_byte() {
        // D.2: K_a before adjustment AB94FCEDF2664EDF becomes AB94FDECF2674FDF.
        let mut ka = h("AB94FCEDF2664EDF");
        adjust_parity(&mut ka);
        assert_eq!(hex::encode_upper(&ka), "AB94FDECF2674FDF");
        let mut all: Vec<u8> = (0..=255).collect();
        adjust_parity(&mut all);
        assert!(all.iter().all(|b| b.count_ones() % 2 == 1));
    }

    #[test]
    fn padding_method_2_round_trips_and_rejects_bad_padding() {
        assert_eq!(pad(&[]), h("8000000000000000"));
        assert_eq!(pad(&h("011E")), h("011E800000000000"));
        assert_eq!(pad(&[0u8; 8]).len(), 16);
        assert_eq!(unpad(&h("011E800000000000")), Some(&h("011E")[..]));
        assert_eq!(unpad(&h("011E000000000000")), None);
        assert_eq!(unpad(&h("0000000000000000")), None);
        assert_eq!(
            unpad(&h("8000000000000000000000")),
            None,
            "more than a block"
        );
    }

    #[test]
    fn appendix_d3_terminal_cryptogram_and_mac() {
        // The terminal side of D.3, to check the primitives against the published E_IFD, M_IFD.
        let k_enc = h16("AB94FDECF2674FDFB9B391F85D7F76F2");
        let k_mac = h16("7962D9ECE03D1ACD4C76089DCE131543");
        let s = h("781723860C06C2264608F919887022120B795240CB7049B01C19B33E32804F0B");
        let e_ifd = tdes_encrypt(&k_enc, &s).unwrap();
        assert_eq!(
            hex::encode_upper(&e_ifd),
            "72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2"
        );
        assert_eq!(
            hex::encode_upper(retail_mac(&k_mac, &e_ifd)),
            "5F1448EEA8AD90A7"
        );
    }

    #[test]
    fn appendix_d3_chip_answer_session_keys_and_ssc() {
        let k_enc = h16("AB94FDECF2674FDFB9B391F85D7F76F2");
        let k_mac = h16("7962D9ECE03D1ACD4C76089DCE131543");
        let rnd_icc: [u8; 8] = h("4608F91988702212").try_into().unwrap();
        let k_icc = h16("0B4F80323EB3191CB04970CB4052790B");
        let cmd = h(
            "72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2\
                     5F1448EEA8AD90A7",
        );
        let (answer, keys) = chip_authenticate(&k_enc, &k_mac, &rnd_icc, &k_icc, &cmd).unwrap();
        assert_eq!(
            hex::encode_upper(&answer),
            "46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F\
             2F2D235D074D7449"
        );
        assert_eq!(
            hex::encode_upper(keys.ks_enc),
            "979EC13B1CBFE9DCD01AB0FED307EAE5"
        );
        assert_eq!(
            hex::encode_upper(keys.ks_mac),
            "F1CB1F1FB5ADF208806B89DC579DC1F8"
        );
        assert_eq!(hex::encode_upper(keys.ssc), "887022120C06C226");
    }

    #[test]
    fn mutual_authenticate_fails_on_a_bad_mac_a_wrong_challenge_or_length() {
        let k_enc = h16("AB94FDECF2674FDFB9B391F85D7F76F2");
        let k_mac = h16("7962D9ECE03D1ACD4C76089DCE131543");
        let k_icc = h16("0B4F80323EB3191CB04970CB4052790B");
        let rnd_icc: [u8; 8] = h("4608F91988702212").try_into().unwrap();
        let mut cmd = h(
            "72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2\
                         5F1448EEA8AD90A7",
        );
        let other_challenge = [0u8; 8];
        assert_eq!(
            chip_authenticate(&k_enc, &k_mac, &other_challenge, &k_icc, &cmd).err(),
            Some(BacFailure::WrongChallenge)
        );
        cmd[39] ^= 1;
        assert_eq!(
            chip_authenticate(&k_enc, &k_mac, &rnd_icc, &k_icc, &cmd).err(),
            Some(BacFailure::BadMac)
        );
        assert_eq!(
            chip_authenticate(&k_enc, &k_mac, &rnd_icc, &k_icc, &cmd[..39]).err(),
            Some(BacFailure::BadLength)
        );
        // A wrong MRZ gives other keys: the MAC check fails first.
        let wrong = key_seed_from_mrz_information(b"L898902C<369080619406237");
        let cmd = h(
            "72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2\
                     5F1448EEA8AD90A7",
        );
        assert_eq!(
            chip_authenticate(
                &derive_key(&wrong, KDF_ENC),
                &derive_key(&wrong, KDF_MAC),
                &rnd_icc,
                &k_icc,
                &cmd
            )
            .err(),
            Some(BacFailure::BadMac)
        );
    }
}
