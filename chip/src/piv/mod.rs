//! The PIV Card Application (NIST SP 800-73-4 Part 2, "PIV Card Application Card Command
//! Interface", clause 3; data model in Part 1 clause 3 and appendix A; algorithms from
//! SP 800-78-4) plus the Yubico vendor instructions that yubico-piv-tool needs (GET VERSION FD,
//! GET SERIAL F8, SET MANAGEMENT KEY FF, IMPORT FE, RESET FB, GET METADATA F7) and the
//! lifecycle instructions of the idstation card contract (LOCK = ISO 7816-9 ACTIVATE FILE 44).
//!
//! Only ECC P-256 (algorithm 11) is offered for asymmetric keys. Private keys are generated
//! here with the operating system CSPRNG (rejection sampling of a 256-bit scalar) and no
//! command returns them.

use std::collections::BTreeMap;

use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::apdu::Command;
use crate::mgmt::{MgmtAlgorithm, MgmtKey};
use crate::os::{AppImage, Application, CardContext, Lifecycle};
use crate::sw::StatusWord;
use crate::tlv;

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

/// What a GENERAL AUTHENTICATE with an asymmetric key asks for.
enum Operation<'a> {
    Sign(&'a [u8]),
    Ecdh(&'a [u8]),
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

/// Public part of the PIV state in the card image.
#[derive(Serialize, Deserialize)]
struct PivPublic {
    pin_retries_max: u8,
    pin_retries_left: u8,
    puk_retries_max: u8,
    puk_retries_left: u8,
    management_key_algorithm: u8,
    keys: BTreeMap<String, PublicKeyEntry>,
    objects: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyEntry {
    algorithm: u8,
    origin: KeyOrigin,
    public_point: String,
}

/// Secret part of the PIV state (sealed in the image).
#[derive(Serialize, Deserialize)]
struct PivSecrets {
    pin: String,
    puk: String,
    management_key: String,
    private_keys: BTreeMap<String, String>,
}

impl Drop for PivSecrets {
    fn drop(&mut self) {
        self.pin.zeroize();
        self.puk.zeroize();
        self.management_key.zeroize();
        for v in self.private_keys.values_mut() {
            v.zeroize();
        }
    }
}

/// Errors restoring the PIV state from an image, naming the field.
fn image_err(field: &str, rule: &str) -> crate::ChipError {
    crate::ChipError::Image(format!("piv.{field}: {rule}"))
}

fn parse_hex_u32(s: &str) -> Option<u32> {
    u32::from_str_radix(s, 16).ok()
}

fn parse_hex_u8(s: &str) -> Option<u8> {
    u8::from_str_radix(s, 16).ok()
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

    /// Restore from the public and secret parts of an image.
    pub(crate) fn from_image(
        public: &serde_json::Value,
        secrets: &str,
    ) -> Result<Piv, crate::ChipError> {
        let public: PivPublic = serde_json::from_value(public.clone())
            .map_err(|e| image_err("public", &format!("does not parse: {e}")))?;
        let secrets: PivSecrets = serde_json::from_str(secrets)
            .map_err(|_| image_err("secrets", "sealed PIV secrets do not parse"))?;
        let hex_secret = |field: &str, s: &str, len: usize| {
            let v = Zeroizing::new(hex::decode(s).map_err(|_| image_err(field, "not hex"))?);
            if v.len() != len {
                return Err(image_err(field, &format!("must be {len} bytes")));
            }
            Ok::<_, crate::ChipError>(v)
        };
        let check_retries = |field: &str, max: u8, left: u8| {
            if max == 0 || max > 15 || left > max {
                return Err(image_err(
                    field,
                    "retry counters must satisfy 0 <= left <= max <= 15, max >= 1",
                ));
            }
            Ok(())
        };
        check_retries(
            "pin_retries",
            public.pin_retries_max,
            public.pin_retries_left,
        )?;
        check_retries(
            "puk_retries",
            public.puk_retries_max,
            public.puk_retries_left,
        )?;
        let pin = Reference {
            value: hex_secret("pin", &secrets.pin, 8)?,
            max: public.pin_retries_max,
            left: public.pin_retries_left,
        };
        let puk = Reference {
            value: hex_secret("puk", &secrets.puk, 8)?,
            max: public.puk_retries_max,
            left: public.puk_retries_left,
        };
        let alg = MgmtAlgorithm::from_id(public.management_key_algorithm)
            .ok_or_else(|| image_err("management_key_algorithm", "must be 03, 08, 0A or 0C"))?;
        let mkey = hex_secret("management_key", &secrets.management_key, alg.key_len())?;
        let mgmt = MgmtKey::new(alg, &mkey)
            .map_err(|_| image_err("management_key", "length does not match algorithm"))?;
        let mut keys = BTreeMap::new();
        for (slot_hex, entry) in &public.keys {
            let slot = parse_hex_u8(slot_hex)
                .filter(|s| is_key_slot(*s))
                .ok_or_else(|| image_err("keys", &format!("{slot_hex} is not a key slot")))?;
            if entry.algorithm != ALG_ECC_P256 {
                return Err(image_err("keys", "only algorithm 11 (P-256) is supported"));
            }
            let scalar_hex = secrets.private_keys.get(slot_hex).ok_or_else(|| {
                image_err("private_keys", &format!("missing key for slot {slot_hex}"))
            })?;
            let scalar = hex_secret("private_keys", scalar_hex, 32)?;
            let key = SigningKey::from_slice(&scalar)
                .map_err(|_| image_err("private_keys", "not a valid P-256 scalar"))?;
            let sk = SlotKey {
                origin: entry.origin,
                key,
            };
            if hex::encode(sk.public_point()) != entry.public_point.to_lowercase() {
                return Err(image_err(
                    "keys",
                    &format!("public point of slot {slot_hex} does not match its private key"),
                ));
            }
            keys.insert(slot, sk);
        }
        let mut objects = BTreeMap::new();
        for (tag_hex, value_hex) in &public.objects {
            let tag = parse_hex_u32(tag_hex)
                .filter(|t| is_writable_tag(*t))
                .ok_or_else(|| {
                    image_err(
                        "objects",
                        &format!("{tag_hex} is not a PIV data object tag"),
                    )
                })?;
            let value = hex::decode(value_hex)
                .map_err(|_| image_err("objects", &format!("{tag_hex} is not hex")))?;
            if value.len() > MAX_OBJECT_LEN + 8 {
                return Err(image_err(
                    "objects",
                    &format!("{tag_hex} longer than {MAX_OBJECT_LEN}"),
                ));
            }
            objects.insert(tag, value);
        }
        Ok(Piv {
            pin,
            puk,
            mgmt,
            keys,
            objects,
            pin_verified: false,
            pin_fresh_for_always: false,
            pending: None,
            mgmt_authenticated_when_locked: false,
        })
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

    // --- GET DATA (SP 800-73-4 Part 2 clause 3.1.2) ---
    fn get_data(&mut self, ctx: &CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(StatusWord::IncorrectP1P2);
        }
        let tag_bytes = tlv::parse_single(&cmd.data, 0x5C)?;
        if tag_bytes.is_empty() || tag_bytes.len() > 3 {
            return Err(StatusWord::IncorrectData);
        }
        let tag = tag_bytes
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        if tag == TAG_LIFECYCLE {
            return Ok(tlv::encode(0x53, &[ctx.lifecycle.code()]));
        }
        if read_needs_pin(tag) && !self.pin_verified {
            return Err(StatusWord::SecurityStatusNotSatisfied);
        }
        let value = self.objects.get(&tag).ok_or(StatusWord::NotFound)?;
        if tag == TAG_DISCOVERY || tag == TAG_BIT_GROUP {
            // Stored as the complete template (SP 800-73-4 Part 1 clause 3.3.2 / 3.3.3).
            Ok(value.clone())
        } else {
            Ok(tlv::encode(0x53, value))
        }
    }

    // --- PUT DATA (SP 800-73-4 Part 2 clause 3.2.1) ---
    fn put_data(&mut self, ctx: &mut CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(StatusWord::IncorrectP1P2);
        }
        // The state comes first (a LOCKED card answers 6985 to anything it never accepts,
        // whatever the data), then the tag decides what a LOCKED card still accepts.
        if ctx.lifecycle != Lifecycle::Locked {
            self.require_personalizable(ctx)?;
        } else if !self.issuer_authenticated(ctx) {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        let (first, rest) = tlv::parse_one(&cmd.data)?;
        let (tag, stored) = match first.tag {
            TAG_DISCOVERY | TAG_BIT_GROUP => {
                if !rest.is_empty() {
                    return Err(StatusWord::IncorrectData);
                }
                (first.tag, cmd.data.clone())
            }
            0x5C => {
                let tb = first.value;
                if tb.len() != 3 {
                    return Err(StatusWord::IncorrectData);
                }
                let tag = tb.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
                let value = tlv::parse_single(rest, 0x53)?;
                (tag, value.to_vec())
            }
            _ => return Err(StatusWord::IncorrectData),
        };
        if !is_writable_tag(tag) {
            return Err(StatusWord::IncorrectData);
        }
        self.require_issuer(ctx, is_operational_tag(tag))?;
        if stored.len() > MAX_OBJECT_LEN {
            return Err(StatusWord::NotEnoughMemory);
        }
        let old = self.objects.get(&tag).map(Vec::len).unwrap_or(0);
        if self.objects_total() - old + stored.len() > MAX_TOTAL_OBJECTS {
            return Err(StatusWord::NotEnoughMemory);
        }
        if stored.is_empty() {
            self.objects.remove(&tag);
        } else {
            self.objects.insert(tag, stored);
        }
        ctx.personalization_step();
        Ok(Vec::new())
    }

    // --- VERIFY (SP 800-73-4 Part 2 clause 3.2.1) ---
    fn verify(&mut self, ctx: &mut CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 != 0x00 && cmd.p1 != 0xFF {
            return Err(StatusWord::IncorrectP1P2);
        }
        if cmd.p2 != KEY_PIN {
            return Err(StatusWord::ReferenceNotFound);
        }
        if cmd.p1 == 0xFF {
            // Reset the security status of the key reference (data field absent).
            if !cmd.data.is_empty() {
                return Err(StatusWord::WrongLength);
            }
            self.pin_verified = false;
            self.pin_fresh_for_always = false;
            return Ok(Vec::new());
        }
        if cmd.data.is_empty() {
            // Retry status query.
            if self.pin.left == 0 {
                return Err(StatusWord::AuthBlocked);
            }
            if self.pin_verified {
                return Ok(Vec::new());
            }
            return Err(StatusWord::WrongPin(self.pin.left.min(15)));
        }
        if !valid_pin_format(&cmd.data) {
            return Err(StatusWord::IncorrectData);
        }
        let before = self.pin.left;
        let result = self.pin.check(&cmd.data);
        if self.pin.left != before || result.is_err() {
            ctx.mark_dirty();
        }
        match result {
            Ok(()) => {
                self.pin_verified = true;
                self.pin_fresh_for_always = true;
                Ok(Vec::new())
            }
            Err(sw) => {
                self.pin_verified = false;
                self.pin_fresh_for_always = false;
                Err(sw)
            }
        }
    }

    // --- CHANGE REFERENCE DATA (SP 800-73-4 Part 2 clause 3.2.2) ---
    fn change_reference(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 != 0x00 {
            return Err(StatusWord::IncorrectP1P2);
        }
        if cmd.p2 != KEY_PIN && cmd.p2 != KEY_PUK {
            return Err(StatusWord::ReferenceNotFound);
        }
        if cmd.data.len() != 16 {
            return Err(StatusWord::IncorrectData);
        }
        let (old, new) = cmd.data.split_at(8);
        let is_pin = cmd.p2 == KEY_PIN;
        if is_pin && (!valid_pin_format(old) || !valid_pin_format(new)) {
            return Err(StatusWord::IncorrectData);
        }
        let reference = if is_pin { &mut self.pin } else { &mut self.puk };
        if reference.left == 0 {
            return Err(StatusWord::AuthBlocked);
        }
        ctx.mark_dirty();
        reference.check(old)?;
        reference.value = Zeroizing::new(new.to_vec());
        if is_pin {
            self.pin_verified = true;
        }
        ctx.personalization_step();
        Ok(Vec::new())
    }

    // --- RESET RETRY COUNTER (SP 800-73-4 Part 2 clause 3.2.3) ---
    fn reset_retry_counter(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 == 0x02 {
            return self.reset_as_issuer(ctx, cmd);
        }
        if cmd.p1 != 0x00 {
            return Err(StatusWord::IncorrectP1P2);
        }
        if cmd.p2 != KEY_PIN {
            return Err(StatusWord::ReferenceNotFound);
        }
        if cmd.data.len() != 16 {
            return Err(StatusWord::IncorrectData);
        }
        let (puk, new_pin) = cmd.data.split_at(8);
        if !valid_pin_format(new_pin) {
            return Err(StatusWord::IncorrectData);
        }
        if self.puk.left == 0 {
            return Err(StatusWord::AuthBlocked);
        }
        ctx.mark_dirty();
        self.puk.check(puk)?;
        self.pin.value = Zeroizing::new(new_pin.to_vec());
        self.pin.left = self.pin.max;
        self.pin_verified = false;
        self.pin_fresh_for_always = false;
        ctx.personalization_step();
        Ok(Vec::new())
    }

    /// RESET RETRY COUNTER with P1 = 02 (ISO/IEC 7816-4 clause 11.5.10: "the command data
    /// field contains new reference data"; the resetting code is replaced by a security
    /// status): the issuer, with the management key authenticated in this card session, sets
    /// a new PIN (P2 = 80, 8 bytes in PIN format) or a new PUK (P2 = 81, any 8 bytes) and
    /// resets that reference's retry counter to its maximum. Any lifecycle state. The PIN's
    /// security status is cleared. SP 800-73-4 defines only P1 = 00 (PUK + new PIN).
    fn reset_as_issuer(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if cmd.p2 != KEY_PIN && cmd.p2 != KEY_PUK {
            return Err(StatusWord::ReferenceNotFound);
        }
        if cmd.data.len() != 8 {
            return Err(StatusWord::IncorrectData);
        }
        if cmd.p2 == KEY_PIN && !valid_pin_format(&cmd.data) {
            return Err(StatusWord::IncorrectData);
        }
        let authenticated = if ctx.lifecycle == Lifecycle::Locked {
            self.issuer_authenticated(ctx)
        } else {
            ctx.mgmt_authenticated
        };
        if !authenticated {
            return Err(StatusWord::SecurityStatusNotSatisfied);
        }
        let reference = if cmd.p2 == KEY_PIN {
            &mut self.pin
        } else {
            &mut self.puk
        };
        reference.value = Zeroizing::new(cmd.data.clone());
        reference.left = reference.max;
        self.pin_verified = false;
        self.pin_fresh_for_always = false;
        ctx.personalization_step();
        Ok(Vec::new())
    }

    // --- GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 Part 2 clause 3.3.2) ---
    fn generate(&mut self, ctx: &mut CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 != 0x00 || !is_key_slot(cmd.p2) {
            return Err(StatusWord::IncorrectP1P2);
        }
        self.require_issuer(ctx, is_operational_slot(cmd.p2))?;
        let template = tlv::parse_single(&cmd.data, 0xAC)?;
        let mut alg = None;
        for obj in tlv::parse_all(template)? {
            match obj.tag {
                0x80 => {
                    if obj.value.len() != 1 {
                        return Err(StatusWord::IncorrectData);
                    }
                    alg = Some(obj.value[0]);
                }
                // Yubico PIN policy (AA) and touch policy (AB): fixed by slot on this card,
                // accepted and ignored. 81 (RSA exponent) is meaningless for ECC.
                0xAA | 0xAB => {}
                _ => return Err(StatusWord::IncorrectData),
            }
        }
        if alg != Some(ALG_ECC_P256) {
            return Err(StatusWord::IncorrectData);
        }
        let key = random_signing_key()?;
        let sk = SlotKey {
            origin: KeyOrigin::Generated,
            key,
        };
        let point = sk.public_point();
        self.keys.insert(cmd.p2, sk);
        ctx.personalization_step();
        // 7F49 { 86 <uncompressed point> } (SP 800-73-4 Part 2 table 7 for ECC).
        Ok(tlv::encode(0x7F49, &tlv::encode(0x86, &point)))
    }

    // --- IMPORT ASYMMETRIC KEY (Yubico INS FE; ECC private key in tag 06) ---
    fn import(&mut self, ctx: &mut CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        if !is_key_slot(cmd.p2) {
            return Err(StatusWord::IncorrectP1P2);
        }
        if cmd.p1 != ALG_ECC_P256 {
            return Err(StatusWord::IncorrectP1P2);
        }
        self.require_personalizable(ctx)?;
        let mut scalar: Option<Zeroizing<Vec<u8>>> = None;
        for obj in tlv::parse_all(&cmd.data)? {
            match obj.tag {
                0x06 => scalar = Some(Zeroizing::new(obj.value.to_vec())),
                0xAA | 0xAB => {}
                _ => return Err(StatusWord::IncorrectData),
            }
        }
        let scalar = scalar.ok_or(StatusWord::IncorrectData)?;
        if scalar.len() != 32 {
            return Err(StatusWord::IncorrectData);
        }
        let key = SigningKey::from_slice(&scalar).map_err(|_| StatusWord::IncorrectData)?;
        self.keys.insert(
            cmd.p2,
            SlotKey {
                origin: KeyOrigin::Imported,
                key,
            },
        );
        ctx.personalization_step();
        Ok(Vec::new())
    }

    // --- GENERAL AUTHENTICATE (SP 800-73-4 Part 2 clause 3.2.4, appendix A) ---
    fn general_authenticate(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        let template = tlv::parse_single(&cmd.data, 0x7C)?;
        let mut witness = None;
        let mut challenge = None;
        let mut resp = None;
        let mut exponentiation = None;
        for obj in tlv::parse_all(template)? {
            let slot = match obj.tag {
                0x80 => &mut witness,
                0x81 => &mut challenge,
                0x82 => &mut resp,
                0x85 => &mut exponentiation,
                _ => return Err(StatusWord::IncorrectData),
            };
            if slot.is_some() {
                return Err(StatusWord::IncorrectData);
            }
            *slot = Some(obj.value);
        }
        if cmd.p2 == KEY_MGMT {
            return self.authenticate_mgmt(ctx, cmd.p1, witness, challenge, resp);
        }
        self.pending = None;
        if !is_key_slot(cmd.p2) {
            return Err(StatusWord::ReferenceNotFound);
        }
        if cmd.p1 != ALG_ECC_P256 {
            return Err(StatusWord::IncorrectP1P2);
        }
        if witness.is_some() || resp != Some(&[]) {
            return Err(StatusWord::IncorrectData);
        }
        // 82 empty (response requested) with 81 = hash to sign (ECDSA), or 85 = the peer's
        // public point (ECC key establishment, SP 800-73-4 Part 2 appendix A.5).
        let operation = match (challenge, exponentiation) {
            (Some(hash), None) if hash.len() == 32 => Operation::Sign(hash),
            (None, Some(point)) if point.len() == 65 => Operation::Ecdh(point),
            _ => return Err(StatusWord::IncorrectData),
        };
        let slot = cmd.p2;
        if !self.keys.contains_key(&slot) {
            return Err(StatusWord::ReferenceNotFound);
        }
        match pin_policy(slot) {
            PinPolicy::Never => {}
            PinPolicy::Once => {
                if !self.pin_verified {
                    return Err(StatusWord::SecurityStatusNotSatisfied);
                }
            }
            PinPolicy::Always => {
                if !(self.pin_verified && self.pin_fresh_for_always) {
                    return Err(StatusWord::SecurityStatusNotSatisfied);
                }
                // One private-key operation per PIN presentation.
                self.pin_fresh_for_always = false;
            }
        }
        let hash = match operation {
            Operation::Sign(hash) => hash,
            Operation::Ecdh(point) => {
                let key = &self
                    .keys
                    .get(&slot)
                    .ok_or(StatusWord::ReferenceNotFound)?
                    .key;
                let peer = p256::PublicKey::from_sec1_bytes(point)
                    .map_err(|_| StatusWord::IncorrectData)?;
                let shared = p256::ecdh::diffie_hellman(key.as_nonzero_scalar(), peer.as_affine());
                return Ok(tlv::encode(
                    0x7C,
                    &tlv::encode(0x82, shared.raw_secret_bytes().as_slice()),
                ));
            }
        };
        let key = &self
            .keys
            .get(&slot)
            .ok_or(StatusWord::ReferenceNotFound)?
            .key;
        let sig: Signature = key
            .sign_prehash(hash)
            .map_err(|_| StatusWord::IncorrectData)?;
        let der = sig.to_der();
        Ok(tlv::encode(0x7C, &tlv::encode(0x82, der.as_bytes())))
    }

    fn authenticate_mgmt(
        &mut self,
        ctx: &mut CardContext,
        p1: u8,
        witness: Option<&[u8]>,
        challenge: Option<&[u8]>,
        resp: Option<&[u8]>,
    ) -> Result<Vec<u8>, StatusWord> {
        let pending = self.pending.take();
        // A new attempt forgets the earlier authentication (so does the OS flag below).
        self.mgmt_authenticated_when_locked = false;
        if p1 != self.mgmt.alg.id() {
            ctx.mgmt_authenticated = false;
            return Err(StatusWord::IncorrectP1P2);
        }
        let bl = self.mgmt.alg.block_len();
        match (witness, challenge, resp) {
            // Mutual, step 1: request a witness.
            (Some(&[]), None, None) => {
                ctx.mgmt_authenticated = false;
                let plain = Zeroizing::new(random_bytes(bl)?);
                let mut enc = plain.to_vec();
                self.mgmt.crypt_block(&mut enc, true)?;
                self.pending = Some(PendingAuth::Witness(plain));
                Ok(tlv::encode(0x7C, &tlv::encode(0x80, &enc)))
            }
            // Mutual, step 2: decrypted witness and a challenge for the card.
            (Some(w), Some(c), None | Some(&[])) if !w.is_empty() && !c.is_empty() => {
                let Some(PendingAuth::Witness(expected)) = pending else {
                    return Err(StatusWord::ConditionsNotSatisfied);
                };
                if w.len() != bl || c.len() != bl {
                    return Err(StatusWord::IncorrectData);
                }
                let same = expected
                    .iter()
                    .zip(w)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
                if !same {
                    return Err(StatusWord::SecurityStatusNotSatisfied);
                }
                let mut enc = c.to_vec();
                self.mgmt.crypt_block(&mut enc, true)?;
                ctx.mgmt_authenticated = true;
                self.mgmt_authenticated_when_locked = ctx.lifecycle == Lifecycle::Locked;
                Ok(tlv::encode(0x7C, &tlv::encode(0x82, &enc)))
            }
            // External, step 1: request a challenge.
            (None, Some(&[]), None) => {
                ctx.mgmt_authenticated = false;
                let plain = Zeroizing::new(random_bytes(bl)?);
                let out = tlv::encode(0x7C, &tlv::encode(0x81, &plain));
                self.pending = Some(PendingAuth::Challenge(plain));
                Ok(out)
            }
            // External, step 2: the encrypted challenge.
            (None, None, Some(r)) if !r.is_empty() => {
                let Some(PendingAuth::Challenge(plain)) = pending else {
                    return Err(StatusWord::ConditionsNotSatisfied);
                };
                if r.len() != bl {
                    return Err(StatusWord::IncorrectData);
                }
                let mut expected = Zeroizing::new(plain.to_vec());
                self.mgmt.crypt_block(&mut expected, true)?;
                let same = expected
                    .iter()
                    .zip(r)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
                if !same {
                    return Err(StatusWord::SecurityStatusNotSatisfied);
                }
                ctx.mgmt_authenticated = true;
                self.mgmt_authenticated_when_locked = ctx.lifecycle == Lifecycle::Locked;
                Ok(Vec::new())
            }
            _ => Err(StatusWord::IncorrectData),
        }
    }

    // --- SET MANAGEMENT KEY (Yubico INS FF) ---
    fn set_management_key(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 != 0xFF || (cmd.p2 != 0xFF && cmd.p2 != 0xFE) {
            return Err(StatusWord::IncorrectP1P2);
        }
        self.require_personalizable(ctx)?;
        let d = &cmd.data;
        if d.len() < 3 {
            return Err(StatusWord::IncorrectData);
        }
        let alg = MgmtAlgorithm::from_id(d[0]).ok_or(StatusWord::IncorrectData)?;
        if d[1] != KEY_MGMT || usize::from(d[2]) != d.len() - 3 {
            return Err(StatusWord::IncorrectData);
        }
        self.mgmt = MgmtKey::new(alg, &d[3..])?;
        ctx.personalization_step();
        Ok(Vec::new())
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

fn random_bytes(n: usize) -> Result<Vec<u8>, StatusWord> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).map_err(|_| StatusWord::NoPreciseDiagnosis)?;
    Ok(v)
}

/// A P-256 private key from the OS CSPRNG by rejection sampling (FIPS 186-5 A.2.2): draw 256
/// bits, retry if the value is 0 or not below the group order.
fn random_signing_key() -> Result<SigningKey, StatusWord> {
    for _ in 0..64 {
        let bytes = Zeroizing::new(random_bytes(32)?);
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
    Err(StatusWord::NoPreciseDiagnosis)
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
        let public = PivPublic {
            pin_retries_max: self.pin.max,
            pin_retries_left: self.pin.left,
            puk_retries_max: self.puk.max,
            puk_retries_left: self.puk.left,
            management_key_algorithm: self.mgmt.alg.id(),
            keys: self
                .keys
                .iter()
                .map(|(slot, k)| {
                    (
                        format!("{slot:02x}"),
                        PublicKeyEntry {
                            algorithm: ALG_ECC_P256,
                            origin: k.origin,
                            public_point: hex::encode(k.public_point()),
                        },
                    )
                })
                .collect(),
            objects: self
                .objects
                .iter()
                .map(|(tag, v)| (format!("{tag:x}"), hex::encode(v)))
                .collect(),
        };
        let secrets = PivSecrets {
            pin: hex::encode(self.pin.value.as_slice()),
            puk: hex::encode(self.puk.value.as_slice()),
            management_key: hex::encode(self.mgmt.key.as_slice()),
            private_keys: self
                .keys
                .iter()
                .map(|(slot, k)| {
                    let scalar = Zeroizing::new(k.key.to_bytes());
                    (format!("{slot:02x}"), hex::encode(scalar.as_slice()))
                })
                .collect(),
        };
        AppImage {
            public: serde_json::to_value(&public).unwrap_or(serde_json::Value::Null),
            secrets: Zeroizing::new(serde_json::to_string(&secrets).unwrap_or_default()),
        }
    }
}
