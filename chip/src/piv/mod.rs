//! The PIV Card Application (NIST SP 800-73-4 Part 2, "PIV Card Application Card Command
//! Interface", clause 3; data model in Part 1 clause 3 and appendix A; algorithms from
//! SP 800-78-4) plus the Yubico vendor instructions that yubico-piv-tool needs (GET VERSION FD,
//! GET SERIAL F8, SET MANAGEMENT KEY FF, IMPORT FE, RESET FB, GET METADATA F7) and the
//! lifecycle instructions of the idstation card contract (LOCK = ISO 7816-9 ACTIVATE FILE 44).
//!
//! Only ECC P-256 (algorithm 11) is offered for asymmetric keys. Private keys are generated
//! here with the operating system CSPRNG (rejection sampling of a 256-bit scalar) and no
//! command returns them.
//!
//! The commands live by subject: `data` (GET DATA, PUT DATA), `pin` (VERIFY, CHANGE
//! REFERENCE DATA, RESET RETRY COUNTER), `keys` (GENERATE ASYMMETRIC KEY PAIR, IMPORT,
//! GENERAL AUTHENTICATE, SET MANAGEMENT KEY) and `image` (the PIV part of the card image);
//! this file holds the application's state, its access rules, the dispatch and the remaining
//! vendor and lifecycle instructions (RESET FB, LOCK 44, GET METADATA F7, GET VERSION FD, GET
//! SERIAL F8).

use std::collections::BTreeMap;

use p256::ecdsa::SigningKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::apdu::Command;
use crate::mgmt::{MgmtAlgorithm, MgmtKey};
use crate::os::{AppImage, Application, CardContext, Lifecycle};
use crate::sw::StatusWord;
use crate::tlv;

mod data;
mod image;
mod keys;
mod pin;

/// Full PIV AID (SP 800-73-4 Part 1 clause 2.2): NIST RID A0 00 00 03 08, PIX 00 00 10 00 01 00.
pub const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

/// Transport PIN "123456" (docs/card.md).
pub const TRANSPORT_PIN: &[u8] = b"123456";
/// Transport PUK "12345678" (docs/card.md).
pub const TRANSPORT_PUK: &[u8] = b"12345678";

/// ECC curve P-256 algorithm identifier (SP 800-78-4 table 6-2).
pub const ALG_ECC_P256: u8 = 0x11;

/// PIV key reference of the PIN (SP 800-73-4 Part 1 table 4).
pub const KEY_PIN: u8 = 0x80;
/// PIV key reference of the PUK.
pub const KEY_PUK: u8 = 0x81;
/// PIV Card Application Administration Key.
pub const KEY_MGMT: u8 = 0x9B;

/// Tag of the lifecycle data object of the idstation card contract (read-only).
pub const TAG_LIFECYCLE: u32 = 0x5FFF20;
/// Discovery object tag (SP 800-73-4 Part 1 clause 3.3.2).
pub const TAG_DISCOVERY: u32 = 0x7E;
/// Biometric Information Templates Group Template tag.
pub const TAG_BIT_GROUP: u32 = 0x7F61;

/// Largest data object the card stores (bytes of the value inside tag 53).
pub const MAX_OBJECT_LEN: usize = 4096;
/// Largest total of stored data objects (bytes).
pub const MAX_TOTAL_OBJECTS: usize = 48 * 1024;

/// Default discovery object: PIV AID and PIN usage policy 40 00 (PIV Card Application PIN
/// only; SP 800-73-4 Part 1 clause 3.3.2, table 8).
const DEFAULT_DISCOVERY: [u8; 20] = [
    0x7E, 0x12, 0x4F, 0x0B, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x5F,
    0x2F, 0x02, 0x40, 0x00,
];

/// Vendor version reported by GET VERSION (Yubico form: major, minor, patch).
pub const VERSION: [u8; 3] = [5, 4, 3];

/// Whether `slot` is an asymmetric key reference this card supports: 9A, 9C, 9D, 9E and the
/// retired key management keys 82..95 (SP 800-73-4 Part 1 table 4b).
pub fn is_key_slot(slot: u8) -> bool {
    matches!(slot, 0x9A | 0x9C | 0x9D | 0x9E | 0x82..=0x95)
}

/// Whether `tag` names a data object PUT DATA may write: the PIV objects 5FC101..5FC123
/// (SP 800-73-4 Part 1 table 3), discovery 7E, BIT group 7F61, vendor objects 5FFF00..5FFF1F
/// (yubico-piv-tool keeps administrative data there). 5FFF20 (lifecycle) is read-only.
fn is_writable_tag(tag: u32) -> bool {
    matches!(tag, 0x5FC101..=0x5FC123 | 0x5FFF00..=0x5FFF1F | TAG_DISCOVERY | TAG_BIT_GROUP)
}

/// Data objects whose read access rule is "PIN" (SP 800-73-4 Part 1 table 3): fingerprints,
/// facial image, printed information, iris images, pairing code reference data.
fn read_needs_pin(tag: u32) -> bool {
    matches!(tag, 0x5FC103 | 0x5FC108 | 0x5FC109 | 0x5FC121 | 0x5FC123)
}

/// Key references the issuer may generate anew on a LOCKED card (docs/card.md "Operational
/// state"): PIV Authentication 9A and Digital Signature 9C, the two keys a renewal replaces.
pub fn is_operational_slot(slot: u8) -> bool {
    matches!(slot, 0x9A | 0x9C)
}

/// Data objects the issuer may write on a LOCKED card: the certificates of 9A (5FC105) and
/// 9C (5FC10A) and the Key History object (5FC10C, SP 800-73-4 Part 1 appendix A, table 19), the
/// objects that name the keys a renewal replaces. Everything else (CHUID, CCC, Printed
/// Information, Discovery, vendor objects) stays as issued.
pub fn is_operational_tag(tag: u32) -> bool {
    matches!(tag, 0x5FC105 | 0x5FC10A | 0x5FC10C)
}

/// PIN policy of a key slot (SP 800-73-4 Part 1 clause 3.1: 9A PIN, 9C PIN always, 9D PIN,
/// 9E none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PinPolicy {
    Never,
    Once,
    Always,
}

fn pin_policy(slot: u8) -> PinPolicy {
    match slot {
        0x9E => PinPolicy::Never,
        0x9C => PinPolicy::Always,
        _ => PinPolicy::Once,
    }
}

/// Where a private key came from (GET METADATA tag 03).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyOrigin {
    /// Generated on the chip.
    Generated,
    /// Imported with IMPORT (FE).
    Imported,
}

struct SlotKey {
    origin: KeyOrigin,
    key: SigningKey,
}

impl SlotKey {
    fn public_point(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec()
    }
}

/// A PIN or PUK with its retry counter.
struct Reference {
    value: Zeroizing<Vec<u8>>,
    max: u8,
    left: u8,
}

impl Reference {
    fn new(plain: &[u8], max: u8) -> Reference {
        Reference {
            value: Zeroizing::new(pad8(plain)),
            max,
            left: max,
        }
    }

    /// Compare in constant time with respect to the contents.
    fn matches(&self, candidate: &[u8]) -> bool {
        if candidate.len() != self.value.len() {
            return false;
        }
        let diff = self
            .value
            .iter()
            .zip(candidate)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }

    /// Check a candidate, updating the retry counter. The caller must persist.
    fn check(&mut self, candidate: &[u8]) -> Result<(), StatusWord> {
        if self.left == 0 {
            return Err(StatusWord::AuthBlocked);
        }
        // Decrement first, restore on success (anti-tearing order).
        self.left -= 1;
        if self.matches(candidate) {
            self.left = self.max;
            Ok(())
        } else {
            Err(StatusWord::WrongPin(self.left.min(15)))
        }
    }
}

fn pad8(plain: &[u8]) -> Vec<u8> {
    let mut v = plain.to_vec();
    v.resize(8, 0xFF);
    v
}

/// Check the PIN format of SP 800-73-4 Part 2 clause 2.4.3: 8 bytes, 6 to 8 ASCII digits
/// followed by FF padding.
fn valid_pin_format(block: &[u8]) -> bool {
    if block.len() != 8 {
        return false;
    }
    let len = block.iter().position(|b| *b == 0xFF).unwrap_or(8);
    len >= 6
        && block[..len].iter().all(|b| b.is_ascii_digit())
        && block[len..].iter().all(|b| *b == 0xFF)
}

/// Management-key authentication in progress (SP 800-73-4 Part 2 appendix A.1).
enum PendingAuth {
    /// The card sent an encrypted witness; this is the plain witness.
    Witness(Zeroizing<Vec<u8>>),
    /// The card sent this challenge (external authenticate).
    Challenge(Zeroizing<Vec<u8>>),
}

/// The PIV application's state.
pub struct Piv {
    pin: Reference,
    puk: Reference,
    mgmt: MgmtKey,
    keys: BTreeMap<u8, SlotKey>,
    objects: BTreeMap<u32, Vec<u8>>,
    // volatile security state
    pin_verified: bool,
    pin_fresh_for_always: bool,
    pending: Option<PendingAuth>,
    /// The last successful management-key authentication of this session was made while
    /// the card was LOCKED ([`Piv::require_issuer`]).
    mgmt_authenticated_when_locked: bool,
}

impl Piv {
    /// A blank PIV application with transport PIN, PUK and management key.
    pub fn blank(pin_retries: u8, puk_retries: u8) -> Piv {
        let mut objects = BTreeMap::new();
        objects.insert(TAG_DISCOVERY, DEFAULT_DISCOVERY.to_vec());
        Piv {
            pin: Reference::new(TRANSPORT_PIN, pin_retries),
            puk: Reference::new(TRANSPORT_PUK, puk_retries),
            mgmt: MgmtKey::transport(),
            keys: BTreeMap::new(),
            objects,
            pin_verified: false,
            pin_fresh_for_always: false,
            pending: None,
            mgmt_authenticated_when_locked: false,
        }
    }

    fn clear_security_state(&mut self) {
        self.pin_verified = false;
        self.pin_fresh_for_always = false;
        self.pending = None;
        self.mgmt_authenticated_when_locked = false;
    }

    /// Public description for `vchip show`: key slots and their public points.
    pub fn public_keys(&self) -> Vec<(u8, KeyOrigin, Vec<u8>)> {
        self.keys
            .iter()
            .map(|(slot, k)| (*slot, k.origin, k.public_point()))
            .collect()
    }

    fn require_personalizable(&self, ctx: &CardContext) -> Result<(), StatusWord> {
        if ctx.lifecycle == Lifecycle::Locked {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        if !ctx.mgmt_authenticated {
            return Err(StatusWord::SecurityStatusNotSatisfied);
        }
        Ok(())
    }

    /// The rights of the issuer on a LOCKED card (docs/card.md "Operational state"): in BLANK
    /// and PERSONALIZING the personalization rule ([`Self::require_personalizable`]); in
    /// LOCKED, `allowed` says whether the object or key reference is one the issuer may still
    /// change (else 6985, before the authentication check, as for every LOCKED refusal), and
    /// then the management key must be authenticated in this card session (else 6982).
    ///
    /// On a LOCKED card only an authentication made after the LOCK counts: the one that
    /// personalized the card ends with the personalization, and without a new one the LOCKED
    /// card answers exactly as it always did (6985).
    fn require_issuer(
        &self,
        ctx: &CardContext,
        allowed_when_locked: bool,
    ) -> Result<(), StatusWord> {
        if ctx.lifecycle != Lifecycle::Locked {
            return self.require_personalizable(ctx);
        }
        if !allowed_when_locked || !self.issuer_authenticated(ctx) {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        Ok(())
    }

    /// The management key was authenticated in this card session while the card was LOCKED
    /// (the issuer, after issuance), and it is not the transport key: a card locked with the
    /// key everybody knows grants nobody the issuer's rights.
    fn issuer_authenticated(&self, ctx: &CardContext) -> bool {
        ctx.mgmt_authenticated && self.mgmt_authenticated_when_locked && !self.transport_key()
    }

    /// The management key is still the transport key of a blank card.
    fn transport_key(&self) -> bool {
        self.mgmt.alg == MgmtAlgorithm::Tdes
            && self.mgmt.key.as_slice() == crate::mgmt::TRANSPORT_MGMT_KEY
    }

    fn objects_total(&self) -> usize {
        self.objects.values().map(Vec::len).sum()
    }

    // --- RESET TO BLANK (Yubico INS FB, rules of the card contract) ---
    fn reset_to_blank(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if (cmd.p1, cmd.p2) != (0, 0) {
            return Err(StatusWord::IncorrectP1P2);
        }
        if !cmd.data.is_empty() {
            return Err(StatusWord::WrongLength);
        }
        if ctx.lifecycle == Lifecycle::Locked {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        let both_blocked = self.pin.left == 0 && self.puk.left == 0;
        if !ctx.mgmt_authenticated && !both_blocked {
            return Err(StatusWord::SecurityStatusNotSatisfied);
        }
        // Every application (PIV and LDS) is wiped by the OS after this command.
        ctx.request_wipe();
        Ok(Vec::new())
    }

    // --- LOCK (ISO 7816-9 ACTIVATE FILE, card-wide, card contract) ---
    fn lock(&mut self, ctx: &mut CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        ctx.lock(cmd)
    }

    // --- GET METADATA (Yubico INS F7) ---
    fn metadata(&self, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 != 0x00 {
            return Err(StatusWord::IncorrectP1P2);
        }
        let mut out = Vec::new();
        match cmd.p2 {
            KEY_PIN | KEY_PUK => {
                let (r, default) = if cmd.p2 == KEY_PIN {
                    (&self.pin, pad8(TRANSPORT_PIN))
                } else {
                    (&self.puk, pad8(TRANSPORT_PUK))
                };
                tlv::push(&mut out, 0x01, &[0xFF]);
                tlv::push(&mut out, 0x05, &[u8::from(r.matches(&default))]);
                tlv::push(&mut out, 0x06, &[r.max, r.left]);
            }
            KEY_MGMT => {
                tlv::push(&mut out, 0x01, &[self.mgmt.alg.id()]);
                tlv::push(&mut out, 0x02, &[0x00, 0x01]);
                tlv::push(&mut out, 0x05, &[u8::from(self.transport_key())]);
            }
            slot if is_key_slot(slot) => {
                let k = self.keys.get(&slot).ok_or(StatusWord::ReferenceNotFound)?;
                let policy = match pin_policy(slot) {
                    PinPolicy::Never => 0x01,
                    PinPolicy::Once => 0x02,
                    PinPolicy::Always => 0x03,
                };
                tlv::push(&mut out, 0x01, &[ALG_ECC_P256]);
                tlv::push(&mut out, 0x02, &[policy, 0x01]);
                let origin = match k.origin {
                    KeyOrigin::Generated => 0x01,
                    KeyOrigin::Imported => 0x02,
                };
                tlv::push(&mut out, 0x03, &[origin]);
                tlv::push(&mut out, 0x04, &tlv::encode(0x86, &k.public_point()));
            }
            _ => return Err(StatusWord::ReferenceNotFound),
        }
        Ok(out)
    }
}

/// Application property template answered to SELECT (SP 800-73-4 Part 2 clause 3.1.1,
/// table 3): PIX of the application, coexistent tag allocation authority (NIST RID), label.
fn property_template() -> Vec<u8> {
    let mut inner = Vec::new();
    tlv::push(&mut inner, 0x4F, &PIV_AID[5..]);
    tlv::push(&mut inner, 0x79, &tlv::encode(0x4F, &PIV_AID[..5]));
    tlv::push(&mut inner, 0x50, b"idstation PIV");
    tlv::encode(0x61, &inner)
}

impl Application for Piv {
    fn name(&self) -> &'static str {
        "piv"
    }

    fn aid(&self) -> &'static [u8] {
        &PIV_AID
    }

    fn select(&mut self, _ctx: &mut CardContext) -> Result<Vec<u8>, StatusWord> {
        self.pending = None;
        Ok(property_template())
    }

    fn deselect(&mut self) {
        self.clear_security_state();
    }

    fn reset(&mut self) {
        self.clear_security_state();
    }

    fn wipe(&mut self) {
        *self = Piv::blank(self.pin.max, self.puk.max);
    }

    fn process(&mut self, ctx: &mut CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        if cmd.ins != 0x87 {
            // A pending management-key challenge is only valid for the next command.
            self.pending = None;
        }
        match cmd.ins {
            0xCB => self.get_data(ctx, cmd),
            0xDB => self.put_data(ctx, cmd),
            0x20 => self.verify(ctx, cmd),
            0x24 => self.change_reference(ctx, cmd),
            0x2C => self.reset_retry_counter(ctx, cmd),
            0x47 => self.generate(ctx, cmd),
            0x87 => self.general_authenticate(ctx, cmd),
            // No file system in the PIV application (SP 800-73-4 has no EFs).
            0xA4 => Err(StatusWord::NotFound),
            0xFE => self.import(ctx, cmd),
            0xFF => self.set_management_key(ctx, cmd),
            0xFB => self.reset_to_blank(ctx, cmd),
            0x44 => self.lock(ctx, cmd),
            0xF7 => self.metadata(cmd),
            0xFD => {
                if (cmd.p1, cmd.p2) != (0, 0) {
                    return Err(StatusWord::IncorrectP1P2);
                }
                Ok(VERSION.to_vec())
            }
            0xF8 => {
                if (cmd.p1, cmd.p2) != (0, 0) {
                    return Err(StatusWord::IncorrectP1P2);
                }
                Ok(ctx.serial.to_be_bytes().to_vec())
            }
            _ => Err(StatusWord::InsNotSupported),
        }
    }

    fn image(&self) -> AppImage {
        self.to_image()
    }
}
