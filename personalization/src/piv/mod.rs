//! PIV client (NIST SP 800-73-4 Part 2 §3: SELECT, GET DATA, PUT DATA, VERIFY, CHANGE REFERENCE
//! DATA, GENERAL AUTHENTICATE, GENERATE ASYMMETRIC KEY PAIR) plus the card contract's vendor
//! instructions (Yubico-compatible GET SERIAL F8, GET VERSION FD, SET MANAGEMENT KEY FF; the
//! lifecycle object 5FFF20, LOCK = ISO 7816-9 ACTIVATE FILE 44, RESET TO BLANK FB).

pub mod mgm;
pub mod objects;
pub mod services;

use profiles::card::Slot;
use zeroize::Zeroizing;

use crate::apdu::{check, Channel, Command, Stats};
use crate::error::Error;
use crate::lifecycle::Lifecycle;
use crate::secret::{ManagementKey, Pin, PinKind};
use crate::status::StatusWord;
use crate::tlv::{self, Tag};
use crate::transport::Transport;

/// PIN retry status as VERIFY without data reports it (SP 800-73-4 Part 2 §3.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinStatus {
    /// Verified in this session.
    Verified,
    /// Not verified; tries left.
    TriesLeft(u8),
    /// Blocked.
    Blocked,
}

/// Algorithm identifier for ECC P-256 (SP 800-78-4 Table 6-2).
const ALG_P256: u8 = 0x11;
/// Key reference of the card application administration (management) key.
const MGM_KEY_REF: u8 = 0x9B;

/// A public key generated on the card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// Slot.
    pub slot: Slot,
    /// SubjectPublicKeyInfo, DER (RFC 5480 id-ecPublicKey / prime256v1).
    pub spki_der: Vec<u8>,
}

/// A PIV session on one card. Counts APDUs and bytes through its [`Channel`].
pub struct Piv<'t> {
    ch: Channel<'t>,
}

fn pin_error(kind: PinKind, command: &'static str, sw: StatusWord) -> Error {
    match sw {
        StatusWord::WrongPin(0) | StatusWord::Blocked => Error::PinBlocked { which: kind.name() },
        StatusWord::WrongPin(n) => Error::WrongPin {
            which: kind.name(),
            tries_left: n,
        },
        sw => Error::Status { command, sw },
    }
}

impl<'t> Piv<'t> {
    /// A session over `transport` (nothing is sent yet).
    pub fn new(transport: &'t mut dyn Transport) -> Self {
        Self {
            ch: Channel::new(transport),
        }
    }

    /// APDU and byte counts so far.
    pub fn stats(&self) -> Stats {
        self.ch.stats()
    }

    /// The channel underneath, for another application on the same card session (the LDS
    /// writer and BAC reader, [`crate::lds`]); its APDUs count in [`stats`](Self::stats).
    pub fn channel(&mut self) -> &mut Channel<'t> {
        &mut self.ch
    }

    /// SELECT the PIV application by its full AID (ISO 7816-4 §11.2.2, SP 800-73-4 Part 2
    /// §3.1.1); returns the application property template (tag 61).
    pub fn select(&mut self) -> Result<Vec<u8>, Error> {
        let cmd = Command::new("SELECT", 0xA4, 0x04, 0x00, objects::PIV_AID.to_vec()).with_le();
        let r = self.ch.exchange(&cmd)?;
        match r.sw {
            StatusWord::Ok => {}
            StatusWord::NotFound => return Err(Error::NoPivApplication),
            sw => {
                return Err(Error::Status {
                    command: "SELECT",
                    sw,
                })
            }
        }
        if !r.data.is_empty() {
            tlv::expect_single(&r.data, 0x61).map_err(|e| Error::Malformed {
                command: "SELECT",
                detail: format!("application property template: {e}"),
            })?;
        }
        Ok(r.data)
    }

    /// GET SERIAL (vendor F8): 4 bytes big-endian.
    pub fn serial(&mut self) -> Result<u32, Error> {
        let d = self
            .ch
            .ok(&Command::new("GET SERIAL", 0xF8, 0, 0, vec![]).with_le())?;
        let b: [u8; 4] = d.as_slice().try_into().map_err(|_| Error::Malformed {
            command: "GET SERIAL",
            detail: format!("{} bytes, expected 4", d.len()),
        })?;
        Ok(u32::from_be_bytes(b))
    }

    /// GET VERSION (vendor FD): major, minor, patch.
    pub fn version(&mut self) -> Result<[u8; 3], Error> {
        let d = self
            .ch
            .ok(&Command::new("GET VERSION", 0xFD, 0, 0, vec![]).with_le())?;
        d.get(..3)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| Error::Malformed {
                command: "GET VERSION",
                detail: format!("{} bytes, expected 3", d.len()),
            })
    }

    /// The lifecycle object 5FFF20 (`53 01 <state>`).
    pub fn lifecycle(&mut self) -> Result<Lifecycle, Error> {
        let obj = self.get_data(objects::tags::LIFECYCLE)?;
        let v = tlv::expect_single(&obj, 0x53).map_err(|e| Error::Malformed {
            command: "GET DATA lifecycle",
            detail: e.to_string(),
        })?;
        match v {
            [0x00] => Ok(Lifecycle::Blank),
            [0x01] => Ok(Lifecycle::Personalizing),
            [0x02] => Ok(Lifecycle::Locked),
            other => Err(Error::Malformed {
                command: "GET DATA lifecycle",
                detail: format!("unknown lifecycle value {other:02X?}"),
            }),
        }
    }

    fn tag_list(tag: Tag) -> Vec<u8> {
        let mut t = Vec::new();
        tlv::push_tag(&mut t, tag);
        tlv::encode(0x5C, &t)
    }

    /// GET DATA (SP 800-73-4 Part 2 §3.1.2): the whole object as the card returns it
    /// (`53 …`, or `7E …` for Discovery).
    pub fn get_data(&mut self, tag: Tag) -> Result<Vec<u8>, Error> {
        let cmd = Command::new("GET DATA", 0xCB, 0x3F, 0xFF, Self::tag_list(tag)).with_le();
        self.ch.ok(&cmd)
    }

    /// PUT DATA (SP 800-73-4 Part 2 §3.2.2): `object` is the complete object (`53 …` or `7E …`).
    /// The data field is the tag list `5C` and the object, except for the Discovery Object, whose
    /// `7E` template is the whole data field.
    pub fn put_data(&mut self, tag: Tag, object: &[u8]) -> Result<(), Error> {
        let mut data = if tag == objects::tags::DISCOVERY {
            Vec::with_capacity(object.len())
        } else {
            Self::tag_list(tag)
        };
        data.extend_from_slice(object);
        self.ch
            .ok(&Command::new("PUT DATA", 0xDB, 0x3F, 0xFF, data))
            .map(|_| ())
    }

    /// Mutual authentication with the card management key (SP 800-73-4 Part 2 Appendix A.3):
    /// the card proves it knows the key too; [`Error::ManagementKeyRejected`] if the card refuses
    /// ours, [`Error::CardAuthenticationFailed`] if its answer to our challenge is wrong.
    pub fn authenticate(&mut self, key: &ManagementKey) -> Result<(), Error> {
        let alg = key.algorithm();
        let bl = alg.block_len();
        // Step 1: request a witness.
        let step1 = Command::new(
            "GENERAL AUTHENTICATE (witness)",
            0x87,
            alg.id(),
            MGM_KEY_REF,
            vec![0x7C, 0x02, 0x80, 0x00],
        )
        .with_le();
        let r = self.ch.exchange(&step1)?;
        match r.sw {
            StatusWord::Ok => {}
            StatusWord::IncorrectP1P2 | StatusWord::IncorrectData => {
                // The card has a key of another algorithm in 9B.
                return Err(Error::ManagementKeyRejected {
                    algorithm: alg.name(),
                });
            }
            sw => {
                return Err(Error::Status {
                    command: step1.name,
                    sw,
                })
            }
        }
        let malformed = |d: String| Error::Malformed {
            command: "GENERAL AUTHENTICATE (witness)",
            detail: d,
        };
        let tmpl = tlv::expect_single(&r.data, 0x7C).map_err(|e| malformed(e.to_string()))?;
        let witness = tlv::find(tmpl, 0x80)
            .map_err(|e| malformed(e.to_string()))?
            .ok_or_else(|| malformed("no witness (tag 80)".into()))?;
        if witness.len() != bl {
            return Err(malformed(format!(
                "witness of {} bytes, {} block is {bl}",
                witness.len(),
                alg
            )));
        }
        let plain = mgm::cipher_block(key, witness, false)?;
        let challenge = mgm::challenge(alg)?;
        // Step 2: return the decrypted witness and challenge the card.
        let mut inner = Zeroizing::new(Vec::with_capacity(4 + 2 * bl));
        tlv::push(&mut inner, 0x80, &plain);
        tlv::push(&mut inner, 0x81, &challenge);
        let mut body = Zeroizing::new(Vec::new());
        tlv::push(&mut body, 0x7C, &inner);
        let step2 = Command::new(
            "GENERAL AUTHENTICATE (mutual)",
            0x87,
            alg.id(),
            MGM_KEY_REF,
            body.to_vec(),
        )
        .with_le();
        let r = self.ch.exchange(&step2)?;
        match r.sw {
            StatusWord::Ok => {}
            StatusWord::SecurityStatusNotSatisfied | StatusWord::IncorrectData => {
                return Err(Error::ManagementKeyRejected {
                    algorithm: alg.name(),
                })
            }
            sw => {
                return Err(Error::Status {
                    command: step2.name,
                    sw,
                })
            }
        }
        let malformed = |d: String| Error::Malformed {
            command: "GENERAL AUTHENTICATE (mutual)",
            detail: d,
        };
        let tmpl = tlv::expect_single(&r.data, 0x7C).map_err(|e| malformed(e.to_string()))?;
        let answer = tlv::find(tmpl, 0x82)
            .map_err(|e| malformed(e.to_string()))?
            .ok_or_else(|| malformed("no response (tag 82)".into()))?;
        let expected = mgm::cipher_block(key, &challenge, true)?;
        if !mgm::ct_eq(answer, &expected) {
            return Err(Error::CardAuthenticationFailed);
        }
        tracing::debug!(algorithm = %alg, "management key authenticated (mutual)");
        Ok(())
    }

    /// SET MANAGEMENT KEY (vendor FF, card contract): `00 FF FF FF <alg 9B len key>`; needs the
    /// current key authenticated.
    pub fn set_management_key(&mut self, key: &ManagementKey) -> Result<(), Error> {
        let kb = key.bytes();
        let mut data = Vec::with_capacity(3 + kb.len());
        data.extend_from_slice(&[key.algorithm().id(), MGM_KEY_REF, kb.len() as u8]);
        data.extend_from_slice(kb);
        let cmd = Command::new("SET MANAGEMENT KEY", 0xFF, 0xFF, 0xFF, data);
        self.ch.ok(&cmd).map(|_| ())
    }

    /// GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 Part 2 §3.3.2) for ECC P-256; returns the public
    /// key from `7F49 { 86 <04 X Y> }`.
    pub fn generate_p256(&mut self, slot: Slot) -> Result<p256::PublicKey, Error> {
        let cmd = Command::new(
            "GENERATE ASYMMETRIC KEY PAIR",
            0x47,
            0x00,
            slot.key_ref(),
            vec![0xAC, 0x03, 0x80, 0x01, ALG_P256],
        )
        .with_le();
        let d = self.ch.ok(&cmd)?;
        let malformed = |detail: String| Error::Malformed {
            command: "GENERATE ASYMMETRIC KEY PAIR",
            detail,
        };
        let v = tlv::expect_single(&d, 0x7F49).map_err(|e| malformed(e.to_string()))?;
        let point = tlv::find(v, 0x86)
            .map_err(|e| malformed(e.to_string()))?
            .ok_or_else(|| malformed("no EC point (tag 86)".into()))?;
        p256::PublicKey::from_sec1_bytes(point)
            .map_err(|_| malformed("tag 86 is not a P-256 point".into()))
    }

    /// VERIFY without data: the PIN status (SP 800-73-4 Part 2 §3.2.1).
    pub fn pin_status(&mut self, kind: PinKind) -> Result<PinStatus, Error> {
        let cmd = Command::new("VERIFY", 0x20, 0x00, kind.reference(), vec![]);
        let r = self.ch.exchange(&cmd)?;
        match r.sw {
            StatusWord::Ok => Ok(PinStatus::Verified),
            StatusWord::WrongPin(0) | StatusWord::Blocked => Ok(PinStatus::Blocked),
            StatusWord::WrongPin(n) => Ok(PinStatus::TriesLeft(n)),
            sw => Err(Error::Status {
                command: "VERIFY",
                sw,
            }),
        }
    }

    /// VERIFY the PIN.
    pub fn verify(&mut self, pin: &Pin) -> Result<(), Error> {
        let cmd = Command::new(
            "VERIFY",
            0x20,
            0x00,
            pin.kind().reference(),
            pin.padded().to_vec(),
        );
        let r = self.ch.exchange(&cmd)?;
        match r.sw {
            StatusWord::Ok => Ok(()),
            sw => Err(pin_error(pin.kind(), "VERIFY", sw)),
        }
    }

    /// CHANGE REFERENCE DATA (SP 800-73-4 Part 2 §3.2.3) for the PIN or PUK.
    pub fn change_reference(&mut self, old: &Pin, new: &Pin) -> Result<(), Error> {
        if old.kind() != new.kind() {
            return Err(Error::Invalid {
                field: "CHANGE REFERENCE DATA".into(),
                rule: "old and new value must be the same kind (PIN or PUK)".into(),
            });
        }
        let mut data = Zeroizing::new(Vec::with_capacity(16));
        data.extend_from_slice(&*old.padded());
        data.extend_from_slice(&*new.padded());
        let cmd = Command::new(
            "CHANGE REFERENCE DATA",
            0x24,
            0x00,
            old.kind().reference(),
            data.to_vec(),
        );
        let r = self.ch.exchange(&cmd)?;
        match r.sw {
            StatusWord::Ok => Ok(()),
            sw => Err(pin_error(old.kind(), "CHANGE REFERENCE DATA", sw)),
        }
    }

    /// RESET RETRY COUNTER as the issuer (ISO/IEC 7816-4 §11.5.10 with P1 = 02: the data field
    /// is the new reference data only; docs/card.md "Operational state"): a new PIN or PUK
    /// (by `value.kind()`) with its retry counter reset. Needs the management key authenticated
    /// in this session (on a LOCKED card: after the LOCK).
    pub fn set_reference_as_issuer(&mut self, value: &Pin) -> Result<(), Error> {
        let name = match value.kind() {
            PinKind::Pin => "RESET RETRY COUNTER (issuer, new PIN)",
            PinKind::Puk => "RESET RETRY COUNTER (issuer, new PUK)",
        };
        let cmd = Command::new(
            name,
            0x2C,
            0x02,
            value.kind().reference(),
            value.padded().to_vec(),
        );
        let r = self.ch.exchange(&cmd)?;
        check(name, r.sw)
    }

    /// The public key in `slot` as GET METADATA (vendor F7, `04 { 86 <point> }`) reports it;
    /// `None` when the slot is empty (6A88).
    pub fn slot_public_key(&mut self, slot: Slot) -> Result<Option<p256::PublicKey>, Error> {
        let cmd = Command::new("GET METADATA", 0xF7, 0x00, slot.key_ref(), vec![]).with_le();
        let r = self.ch.exchange(&cmd)?;
        match r.sw {
            StatusWord::Ok => {}
            StatusWord::ReferencedDataNotFound => return Ok(None),
            sw => {
                return Err(Error::Status {
                    command: "GET METADATA",
                    sw,
                })
            }
        }
        let malformed = |detail: String| Error::Malformed {
            command: "GET METADATA",
            detail,
        };
        let public = tlv::find(&r.data, 0x04)
            .map_err(|e| malformed(e.to_string()))?
            .ok_or_else(|| malformed("no public key (tag 04)".into()))?;
        let point = tlv::find(public, 0x86)
            .map_err(|e| malformed(e.to_string()))?
            .ok_or_else(|| malformed("no EC point (tag 86)".into()))?;
        p256::PublicKey::from_sec1_bytes(point)
            .map(Some)
            .map_err(|_| malformed("tag 86 is not a P-256 point".into()))
    }

    /// ECDSA P-256 signature with the key in `slot` over a SHA-256 digest (GENERAL AUTHENTICATE,
    /// SP 800-73-4 Part 2 §3.2.4: `7C { 82 00, 81 <hash> }` → `7C { 82 <DER Ecdsa-Sig-Value> }`).
    pub fn sign_p256(&mut self, slot: Slot, digest: &[u8; 32]) -> Result<Vec<u8>, Error> {
        let mut inner = vec![0x82, 0x00];
        tlv::push(&mut inner, 0x81, digest);
        let body = tlv::encode(0x7C, &inner);
        let cmd = Command::new(
            "GENERAL AUTHENTICATE (sign)",
            0x87,
            ALG_P256,
            slot.key_ref(),
            body,
        )
        .with_le();
        let r = self.ch.exchange(&cmd)?;
        if r.sw != StatusWord::Ok {
            return Err(Error::Status {
                command: cmd.name,
                sw: r.sw,
            });
        }
        let malformed = |detail: String| Error::Malformed {
            command: "GENERAL AUTHENTICATE (sign)",
            detail,
        };
        let t = tlv::expect_single(&r.data, 0x7C).map_err(|e| malformed(e.to_string()))?;
        tlv::find(t, 0x82)
            .map_err(|e| malformed(e.to_string()))?
            .map(<[u8]>::to_vec)
            .ok_or_else(|| malformed("no signature (tag 82)".into()))
    }

    /// LOCK (card contract: ISO 7816-9 ACTIVATE FILE `00 44 00 00` on the PIV application):
    /// PERSONALIZING → LOCKED; needs the management key authenticated.
    pub fn lock(&mut self) -> Result<(), Error> {
        let r = self
            .ch
            .exchange(&Command::new("LOCK", 0x44, 0, 0, vec![]))?;
        check("LOCK", r.sw)
    }

    /// RESET TO BLANK (card contract `00 FB 00 00`): destroys keys and objects, restores the
    /// transport credentials; needs the management key authenticated.
    pub fn reset_to_blank(&mut self) -> Result<(), Error> {
        let r = self
            .ch
            .exchange(&Command::new("RESET TO BLANK", 0xFB, 0, 0, vec![]))?;
        check("RESET TO BLANK", r.sw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_name_their_key_reference_and_certificate() {
        assert_eq!(Slot::Signature.to_string(), "9C");
        assert_eq!(objects::certificate_tag(Slot::Signature), 0x5FC10A);
        assert_eq!(objects::certificate_tag(Slot::Authentication), 0x5FC105);
    }

    #[test]
    fn tag_list_encodes_three_and_one_byte_tags() {
        assert_eq!(Piv::tag_list(0x5FC102), vec![0x5C, 0x03, 0x5F, 0xC1, 0x02]);
        assert_eq!(Piv::tag_list(0x7E), vec![0x5C, 0x01, 0x7E]);
    }

    /// A scripted card for the management-key protocol (APDU vectors; crypto with the test's
    /// own AES, not the client's).
    struct MgmCard {
        key: [u8; 16],
        witness: [u8; 16],
        tamper_answer: bool,
        sent: Vec<Vec<u8>>,
    }

    impl Transport for MgmCard {
        fn transmit(&mut self, capdu: &[u8]) -> Result<Vec<u8>, Error> {
            use aes::cipher::{BlockCipherEncrypt, KeyInit};
            self.sent.push(capdu.to_vec());
            let aes = aes::Aes128::new_from_slice(&self.key).unwrap();
            let enc = |b: &[u8]| {
                let mut blk = aes::cipher::Block::<aes::Aes128>::default();
                blk.copy_from_slice(b);
                aes.encrypt_block(&mut blk);
                blk.to_vec()
            };
            if capdu[5..] == [0x7C, 0x02, 0x80, 0x00, 0x00] {
                let mut r = vec![0x7C, 0x12, 0x80, 0x10];
                r.extend(enc(&self.witness));
                r.extend([0x90, 0x00]);
                return Ok(r);
            }
            // 00 87 08 9B 26 7C 24 80 10 <witness> 81 10 <challenge> 00
            assert_eq!(
                &capdu[..9],
                &[0x00, 0x87, 0x08, 0x9B, 0x26, 0x7C, 0x24, 0x80, 0x10]
            );
            if capdu[9..25] != self.witness {
                return Ok(vec![0x69, 0x82]);
            }
            assert_eq!(&capdu[25..27], &[0x81, 0x10]);
            let mut answer = enc(&capdu[27..43]);
            if self.tamper_answer {
                answer[0] ^= 1;
            }
            let mut r = vec![0x7C, 0x12, 0x82, 0x10];
            r.extend(answer);
            r.extend([0x90, 0x00]);
            Ok(r)
        }
    }

    fn aes_key(k: &[u8; 16]) -> ManagementKey {
        ManagementKey::new(profiles::card::MgmtAlgorithm::Aes128, k).unwrap()
    }

    #[test]
    fn mutual_authentication_follows_sp800_73_appendix_a3() {
        let mut card = MgmCard {
            key: [0x42; 16],
            witness: [0x17; 16],
            tamper_answer: false,
            sent: vec![],
        };
        Piv::new(&mut card)
            .authenticate(&aes_key(&[0x42; 16]))
            .unwrap();
        assert_eq!(
            card.sent[0],
            vec![0x00, 0x87, 0x08, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00, 0x00]
        );
        assert_eq!(card.sent.len(), 2);
    }

    #[test]
    fn wrong_management_key_is_rejected_by_the_card() {
        let mut card = MgmCard {
            key: [0x42; 16],
            witness: [0x17; 16],
            tamper_answer: false,
            sent: vec![],
        };
        let e = Piv::new(&mut card)
            .authenticate(&aes_key(&[0x43; 16]))
            .unwrap_err();
        assert!(matches!(e, Error::ManagementKeyRejected { .. }), "{e}");
    }

    #[test]
    fn card_that_cannot_answer_our_challenge_is_not_trusted() {
        let mut card = MgmCard {
            key: [0x42; 16],
            witness: [0x17; 16],
            tamper_answer: true,
            sent: vec![],
        };
        let e = Piv::new(&mut card)
            .authenticate(&aes_key(&[0x42; 16]))
            .unwrap_err();
        assert!(matches!(e, Error::CardAuthenticationFailed), "{e}");
    }

    struct Fixed(Vec<u8>);
    impl Transport for Fixed {
        fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, Error> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn malformed_card_answers_are_errors_not_panics() {
        for answer in [
            vec![0x90, 0x00],
            vec![0x7F, 0x49, 0x03, 0x86, 0x01, 0x04, 0x90, 0x00],
            vec![0x7C, 0x05, 0x82, 0x03, 0x30, 0x01, 0x90, 0x00],
            vec![0x53, 0x01, 0x09, 0x90, 0x00],
            vec![0x01, 0x02, 0x90, 0x00],
            vec![0x7C, 0x82, 0x90, 0x00],
        ] {
            let mut t = Fixed(answer.clone());
            let mut piv = Piv::new(&mut t);
            assert!(piv.generate_p256(Slot::Signature).is_err(), "{answer:02X?}");
            assert!(piv.lifecycle().is_err(), "{answer:02X?}");
            assert!(piv.serial().is_err(), "{answer:02X?}");
            assert!(
                piv.authenticate(&aes_key(&[1; 16])).is_err(),
                "{answer:02X?}"
            );
            let _ = piv.sign_p256(Slot::Signature, &[0; 32]);
        }
    }

    #[test]
    fn wrong_pin_reports_tries_left_and_blocked() {
        let mut t = Fixed(vec![0x63, 0xC2]);
        let e = Piv::new(&mut t)
            .verify(&Pin::new(PinKind::Pin, "000000").unwrap())
            .unwrap_err();
        assert_eq!(e.to_string(), "wrong PIN: 2 tries left");
        let mut t = Fixed(vec![0x69, 0x83]);
        let e = Piv::new(&mut t)
            .verify(&Pin::new(PinKind::Puk, "00000000").unwrap())
            .unwrap_err();
        assert_eq!(e.to_string(), "PUK is blocked");
    }
}
