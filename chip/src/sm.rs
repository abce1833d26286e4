//! Secure messaging, chip side (ICAO Doc 9303 Part 11 §9.8, ISO/IEC 7816-4 clause 10), after
//! BAC (3DES, §9.8.6) or after PACE (AES-128, §9.8.7): protected commands carry CLA 0C, DO'87'
//! (padding indicator 01 ‖ CBC cryptogram of the padded data), DO'97' (Le) and DO'8E' (MAC
//! over SSC ‖ padded header ‖ DO'87' ‖ DO'97'); protected responses carry DO'87', DO'99' (the
//! status word) and DO'8E' (MAC over SSC ‖ DO'87' ‖ DO'99'). The send sequence counter is
//! incremented before every command and every response is protected (§9.8).
//!
//! 3DES: 8-byte SSC from the BAC challenges, CBC with a zero IV, retail MAC (ISO/IEC 9797-1
//! MAC algorithm 3), padding to 8 bytes. AES: 16-byte SSC starting at 0 (§9.8.7.3), CBC with
//! IV = AES(KS_ENC, SSC) (§9.8.7.1), AES-CMAC truncated to 8 bytes over the data padded to
//! 16 bytes (§9.8.7.2), padding to 16 bytes.

use zeroize::Zeroizing;

use crate::apdu::Command;
use crate::bac::{self, Key16, SessionKeys};
use crate::sw::StatusWord;
use crate::tlv;

/// CLA of a protected command: interindustry, secure messaging with the header authenticated
/// (ISO 7816-4 clause 5.4.1, b4 b3 = 11).
pub const SM_CLA: u8 = 0x0C;

/// The cipher suite of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmCipher {
    /// Two-key 3DES and the retail MAC (after BAC).
    Tdes,
    /// AES-128 and CMAC (after PACE with an AES-128 protocol).
    Aes128,
}

/// An established secure-messaging session (volatile: never stored in the image).
pub struct SmSession {
    cipher: SmCipher,
    ks_enc: Key16,
    ks_mac: Key16,
    /// The SSC, big-endian, right-aligned: 3DES uses the last 8 bytes.
    ssc: [u8; 16],
}

/// ISO/IEC 9797-1 padding method 2 to a multiple of `block` bytes.
fn pad_to(data: &[u8], block: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + block);
    out.extend_from_slice(data);
    out.push(0x80);
    while out.len() % block != 0 {
        out.push(0x00);
    }
    out
}

/// Remove padding method 2 whose padding lies within the last `block` bytes.
fn unpad_from(data: &[u8], block: usize) -> Option<&[u8]> {
    let end = data.iter().rposition(|&b| b != 0)?;
    if data[end] != 0x80 || data.len() - end > block {
        return None;
    }
    Some(&data[..end])
}

impl SmSession {
    /// A 3DES session with the keys and SSC from BAC mutual authentication.
    pub fn new(keys: SessionKeys) -> SmSession {
        let mut ssc = [0u8; 16];
        ssc[8..].copy_from_slice(&keys.ssc);
        SmSession {
            cipher: SmCipher::Tdes,
            ks_enc: keys.ks_enc,
            ks_mac: keys.ks_mac,
            ssc,
        }
    }

    /// An AES-128 session after PACE (or Chip Authentication): SSC = 0 (§9.8.7.3).
    pub fn new_aes(ks_enc: Key16, ks_mac: Key16) -> SmSession {
        SmSession {
            cipher: SmCipher::Aes128,
            ks_enc,
            ks_mac,
            ssc: [0u8; 16],
        }
    }

    /// The cipher suite.
    pub fn cipher(&self) -> SmCipher {
        self.cipher
    }

    /// The current send sequence counter (8 bytes for 3DES, 16 for AES).
    pub fn ssc(&self) -> Vec<u8> {
        self.ssc_bytes().to_vec()
    }

    fn ssc_bytes(&self) -> &[u8] {
        match self.cipher {
            SmCipher::Tdes => &self.ssc[8..],
            SmCipher::Aes128 => &self.ssc,
        }
    }

    fn block(&self) -> usize {
        match self.cipher {
            SmCipher::Tdes => 8,
            SmCipher::Aes128 => 16,
        }
    }

    fn increment(&mut self) {
        let next = u128::from_be_bytes(self.ssc).wrapping_add(1);
        let next = match self.cipher {
            SmCipher::Tdes => next & u128::from(u64::MAX),
            SmCipher::Aes128 => next,
        };
        self.ssc = next.to_be_bytes();
    }

    /// The MAC over `message` (not yet padded): retail MAC, or CMAC over the padded message.
    fn mac(&self, message: &[u8]) -> [u8; 8] {
        match self.cipher {
            SmCipher::Tdes => bac::retail_mac(&self.ks_mac, message),
            SmCipher::Aes128 => crate::pace::cmac8(&self.ks_mac, &pad_to(message, 16)),
        }
    }

    /// The IV of the DO'87' cryptogram: zero (3DES), AES(KS_ENC, SSC) (AES, §9.8.7.1).
    fn aes_iv(&self) -> [u8; 16] {
        use aes::cipher::{BlockCipherEncrypt, KeyInit};
        let cipher = aes::Aes128::new(&(*self.ks_enc).into());
        let mut block = self.ssc.into();
        cipher.encrypt_block(&mut block);
        block.into()
    }

    fn encrypt(&self, padded: &[u8]) -> Option<Vec<u8>> {
        match self.cipher {
            SmCipher::Tdes => bac::tdes_encrypt(&self.ks_enc, padded),
            SmCipher::Aes128 => {
                use cbc::cipher::block_padding::NoPadding;
                use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
                if !padded.len().is_multiple_of(16) {
                    return None;
                }
                let enc =
                    cbc::Encryptor::<aes::Aes128>::new_from_slices(&*self.ks_enc, &self.aes_iv())
                        .ok()?;
                Some(enc.encrypt_padded_vec::<NoPadding>(padded))
            }
        }
    }

    fn decrypt(&self, cryptogram: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        match self.cipher {
            SmCipher::Tdes => bac::tdes_decrypt(&self.ks_enc, cryptogram),
            SmCipher::Aes128 => {
                use cbc::cipher::block_padding::NoPadding;
                use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
                if cryptogram.is_empty() || !cryptogram.len().is_multiple_of(16) {
                    return None;
                }
                let dec =
                    cbc::Decryptor::<aes::Aes128>::new_from_slices(&*self.ks_enc, &self.aes_iv())
                        .ok()?;
                dec.decrypt_padded_vec::<NoPadding>(cryptogram)
                    .ok()
                    .map(Zeroizing::new)
            }
        }
    }

    /// Verify and decrypt a protected command (§9.8). Any error is an SM error:
    /// the caller answers 6988 and ends the session.
    pub fn unwrap_command(&mut self, cmd: &Command) -> Result<Command, StatusWord> {
        const SM_ERROR: StatusWord = StatusWord::SmDataObjectsIncorrect;
        if cmd.cla != SM_CLA {
            return Err(SM_ERROR);
        }
        self.increment();
        let mut do87: Option<(&[u8], &[u8])> = None; // (encoded DO, value)
        let mut do97: Option<(&[u8], &[u8])> = None;
        let mut mac: Option<&[u8]> = None;
        let mut rest = &cmd.data[..];
        while !rest.is_empty() {
            let (obj, next) = tlv::parse_one(rest).map_err(|_| SM_ERROR)?;
            let raw = &rest[..rest.len() - next.len()];
            // Order fixed by §9.8: [DO'87'] [DO'97'] DO'8E', nothing after the MAC.
            if mac.is_some() {
                return Err(SM_ERROR);
            }
            match obj.tag {
                0x87 if do87.is_none() && do97.is_none() => do87 = Some((raw, obj.value)),
                0x97 if do97.is_none() => do97 = Some((raw, obj.value)),
                0x8E if obj.value.len() == 8 => mac = Some(obj.value),
                _ => return Err(SM_ERROR),
            }
            rest = next;
        }
        let mac = mac.ok_or(SM_ERROR)?;
        let block = self.block();
        let mut n = Zeroizing::new(Vec::with_capacity(cmd.data.len() + 32));
        n.extend_from_slice(self.ssc_bytes());
        n.extend_from_slice(&pad_to(&[cmd.cla, cmd.ins, cmd.p1, cmd.p2], block));
        if let Some((raw, _)) = do87 {
            n.extend_from_slice(raw);
        }
        if let Some((raw, _)) = do97 {
            n.extend_from_slice(raw);
        }
        if !bac::ct_eq(&self.mac(&n), mac) {
            return Err(SM_ERROR);
        }
        let data = match do87 {
            None => Vec::new(),
            Some((_, value)) => {
                let (&indicator, cryptogram) = value.split_first().ok_or(SM_ERROR)?;
                if indicator != 0x01 || cryptogram.is_empty() {
                    return Err(SM_ERROR);
                }
                let plain = self.decrypt(cryptogram).ok_or(SM_ERROR)?;
                unpad_from(&plain, block).ok_or(SM_ERROR)?.to_vec()
            }
        };
        let ne = match do97.map(|(_, v)| v) {
            None | Some([]) => None,
            Some([0x00]) => Some(256),
            Some([le]) => Some(usize::from(*le)),
            Some([0x00, 0x00]) => Some(65536),
            Some([hi, lo]) => Some(usize::from(u16::from_be_bytes([*hi, *lo]))),
            Some(_) => return Err(SM_ERROR),
        };
        Ok(Command {
            cla: 0x00,
            ins: cmd.ins,
            p1: cmd.p1,
            p2: cmd.p2,
            data,
            ne,
        })
    }

    /// Protect a response (§9.8): [DO'87'] DO'99' DO'8E'. The status word travels in DO'99'
    /// and, unchanged, as the trailer of the R-APDU.
    pub fn wrap_response(&mut self, data: &[u8], sw: StatusWord) -> Vec<u8> {
        self.increment();
        let mut out = Vec::with_capacity(data.len() + 40);
        if !data.is_empty() {
            let padded = Zeroizing::new(pad_to(data, self.block()));
            // pad_to() always yields whole blocks, so encryption cannot fail.
            let cryptogram = self.encrypt(&padded).unwrap_or_default();
            let mut value = Vec::with_capacity(cryptogram.len() + 1);
            value.push(0x01);
            value.extend_from_slice(&cryptogram);
            tlv::push(&mut out, 0x87, &value);
        }
        tlv::push(&mut out, 0x99, &sw.to_bytes());
        let mut k = Vec::with_capacity(out.len() + 16);
        k.extend_from_slice(self.ssc_bytes());
        k.extend_from_slice(&out);
        let mac = self.mac(&k);
        tlv::push(&mut out, 0x8E, &mac);
        out
    }
}

#[cfg(test)]
mod tests {
    //! ICAO Doc 9303 Part 11 Appendix D.4: the protected SELECT of EF.COM and the two READ
    //! BINARY commands of the worked example, chip side.
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector hex")
    }

    fn key(s: &str) -> Key16 {
        Zeroizing::new(h(s).try_into().expect("16 bytes"))
    }

    fn d4_session() -> SmSession {
        SmSession::new(SessionKeys {
            ks_enc: key("979EC13B1CBFE9DCD01AB0FED307EAE5"),
            ks_mac: key("F1CB1F1FB5ADF208806B89DC579DC1F8"),
            ssc: h("887022120C06C226").try_into().unwrap(),
        })
    }

    #[test]
    fn appendix_d4_select_ef_com_unwraps_and_its_response_matches() {
        let mut sm = d4_session();
        let cmd =
            Command::parse(&h("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")).unwrap();
        let plain = sm.unwrap_command(&cmd).unwrap();
        assert_eq!((plain.ins, plain.p1, plain.p2), (0xA4, 0x02, 0x0C));
        assert_eq!(plain.data, h("011E"));
        assert_eq!(plain.ne, None);
        assert_eq!(hex::encode_upper(sm.ssc()), "887022120C06C227");
        let resp = sm.wrap_response(&[], StatusWord::Ok);
        assert_eq!(hex::encode_upper(resp), "990290008E08FA855A5D4C50A8ED");
        assert_eq!(hex::encode_upper(sm.ssc()), "887022120C06C228");
    }

    #[test]
    fn appendix_d4_read_binary_commands_and_responses() {
        let mut sm = d4_session();
        let select =
            Command::parse(&h("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")).unwrap();
        sm.unwrap_command(&select).unwrap();
        sm.wrap_response(&[], StatusWord::Ok);

        // READ BINARY of the first four bytes of EF.COM.
        let rb1 = Command::parse(&h("0CB000000D9701048E08ED6705417E96BA5500")).unwrap();
        let plain = sm.unwrap_command(&rb1).unwrap();
        assert_eq!((plain.ins, plain.p1, plain.p2), (0xB0, 0x00, 0x00));
        assert!(plain.data.is_empty());
        assert_eq!(plain.ne, Some(4));
        let resp = sm.wrap_response(&h("60145F01"), StatusWord::Ok);
        assert_eq!(
            hex::encode_upper(resp),
            "8709019FF0EC34F9922651990290008E08AD55CC17140B2DED"
        );

        // READ BINARY of the remaining 18 bytes from offset 4.
        let rb2 = Command::parse(&h("0CB000040D9701128E082EA28A70F3C7B53500")).unwrap();
        let plain = sm.unwrap_command(&rb2).unwrap();
        assert_eq!((plain.p1, plain.p2, plain.ne), (0x00, 0x04, Some(0x12)));
        let resp = sm.wrap_response(&h("04303130365F36063034303030305C026175"), StatusWord::Ok);
        assert_eq!(
            hex::encode_upper(resp),
            "871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A99029000\
             8E08C8B2787EAEA07D74"
        );
        assert_eq!(hex::encode_upper(sm.ssc()), "887022120C06C22C");
    }

    #[test]
    fn tampered_missing_or_misordered_data_objects_are_sm_errors() {
        let good = h("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800");
        let err = Err(StatusWord::SmDataObjectsIncorrect);
        // flipped MAC bit
        let mut bad = good.clone();
        bad[25] ^= 1;
        assert_eq!(
            d4_session()
                .unwrap_command(&Command::parse(&bad).unwrap())
                .map(|c| c.data.clone()),
            err
        );
        // flipped cryptogram bit
        let mut bad = good.clone();
        bad[9] ^= 1;
        assert!(d4_session()
            .unwrap_command(&Command::parse(&bad).unwrap())
            .is_err());
        // no DO'8E'
        let no_mac = h("0CA4020C0B8709016375432908C044F600");
        assert!(d4_session()
            .unwrap_command(&Command::parse(&no_mac).unwrap())
            .is_err());
        // MAC before the cryptogram
        let swapped = h("0CA4020C158E08BF8B92D635FF24F88709016375432908C044F600");
        assert!(d4_session()
            .unwrap_command(&Command::parse(&swapped).unwrap())
            .is_err());
        // an unknown data object
        let unknown = h("0CA4020C0380010000");
        assert!(d4_session()
            .unwrap_command(&Command::parse(&unknown).unwrap())
            .is_err());
        // plain CLA
        let mut plain = good.clone();
        plain[0] = 0x00;
        assert!(d4_session()
            .unwrap_command(&Command::parse(&plain).unwrap())
            .is_err());
        // the right command against the wrong SSC (replay after one exchange)
        let mut sm = d4_session();
        let cmd = Command::parse(&good).unwrap();
        sm.unwrap_command(&cmd).unwrap();
        sm.wrap_response(&[], StatusWord::Ok);
        assert!(sm.unwrap_command(&cmd).is_err(), "replayed command");
    }
}
