//! The LDS1 eMRTD application (ICAO Doc 9303 Part 10 "Logical Data Structure", AID
//! A0 00 00 02 47 10 01): transparent EFs (EF.COM 011E, DG1..DG16 0101..0110, EF.SOD 011D)
//! read with SELECT / READ BINARY (ISO/IEC 7816-4 clauses 11.2.2, 11.3.3, also by short EF
//! identifier) inside secure messaging established by PACE (Part 11 §4.4, see [`pace`]) or
//! Basic Access Control (Part 11 §4.3, §9.8; see [`bac`] and [`sm`]). EF.CardAccess (011C,
//! SFI 1C) is readable without access control once a PACE password is set. Personalization
//! (card contract `coord/LDS-CONTRACT.md`, docs/lds.md): CREATE FILE (ISO/IEC 7816-9, with an
//! FCP template), UPDATE BINARY, and PUT DATA of the BAC key seed (01 0B), the PACE MRZ
//! password (01 0E) and the CAN (01 0F), allowed while the card is PERSONALIZING and the PIV
//! management key was authenticated in this card session.
//!
//! [`bac`]: crate::bac
//! [`pace`]: crate::pace
//! [`sm`]: crate::sm

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::apdu::Command;
use crate::bac::{self, Key16};
use crate::os::{AppImage, Application, CardContext, Lifecycle};
use crate::pace::{self, PaceRun, Randomness};
use crate::sm::{SmSession, SM_CLA};
use crate::sw::StatusWord;
use crate::tlv;

/// AID of the LDS1 eMRTD application (Part 10).
pub const LDS_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01];

/// Largest EF (bytes): offsets of a short READ BINARY are 15 bits (card contract).
pub const MAX_EF_SIZE: usize = 32767;

/// File identifier of EF.COM.
pub const EF_COM: u16 = 0x011E;
/// File identifier of EF.SOD.
pub const EF_SOD: u16 = 0x011D;

/// Whether `fid` is one of the LDS1 EFs this chip offers: DG1..DG16 (0101..0110), EF.SOD
/// (011D), EF.COM (011E) (Part 10, the LDS1 elementary files).
pub fn is_lds_fid(fid: u16) -> bool {
    matches!(fid, 0x0101..=0x0110 | EF_SOD | EF_COM)
}

/// Short EF identifier of an LDS1 EF: the low byte of its FID (DG1 = 01 … DG16 = 10,
/// EF.SOD = 1D, EF.COM = 1E; Part 10).
pub fn sfi_of(fid: u16) -> u8 {
    (fid & 0x1F) as u8
}

/// Access-control state of the application (volatile).
enum BacState {
    /// No challenge, no session.
    Idle,
    /// GET CHALLENGE answered RND.ICC; the next MUTUAL AUTHENTICATE must use it.
    Challenged(Zeroizing<[u8; 8]>),
    /// Secure messaging established (3DES after BAC, AES after PACE).
    Session(SmSession),
}

/// Length of the PACE MRZ password secret K = SHA-1(MRZ information) (Part 11 §9.7.3).
pub const PACE_MRZ_KEY_LEN: usize = 20;
/// Length of the CAN (decimal digits).
pub const CAN_LEN: usize = 6;

/// The LDS1 application.
pub struct Lds {
    files: BTreeMap<u16, Vec<u8>>,
    key_seed: Option<Key16>,
    /// K = SHA-1(MRZ information), the MRZ password of PACE.
    pace_mrz_key: Option<Zeroizing<Vec<u8>>>,
    /// The CAN (ASCII digits).
    can: Option<Zeroizing<Vec<u8>>>,
    /// Consecutive PACE runs started (first GENERAL AUTHENTICATE) and not completed
    /// successfully; persistent, so that removing the card does not reset it.
    pace_failures: u32,
    /// The Chip Authentication private key (P-256), generated on the chip.
    ca_key: Option<Zeroizing<Vec<u8>>>,
    /// The Active Authentication private key (P-256), generated on the chip.
    aa_key: Option<Zeroizing<Vec<u8>>>,
    current_ef: Option<u16>,
    bac: BacState,
    pace: Option<PaceRun>,
    /// MSE:Set AT for Chip Authentication was accepted in this session.
    ca_armed: bool,
    /// The session that replaces the current one once the current answer is protected (Chip
    /// Authentication).
    next_session: Option<SmSession>,
}

#[derive(Serialize, Deserialize)]
struct LdsPublic {
    /// FID (4 hex digits) → contents (hex).
    files: BTreeMap<String, String>,
    bac_key_seed_set: bool,
    /// Added with PACE (issue 17); absent in older images.
    #[serde(default)]
    pace_mrz_set: bool,
    #[serde(default)]
    can_set: bool,
    #[serde(default)]
    pace_failures: u32,
    #[serde(default)]
    ca_key_set: bool,
    #[serde(default)]
    aa_key_set: bool,
}

#[derive(Serialize, Deserialize, Default)]
struct LdsSecrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bac_key_seed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pace_mrz_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    can: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aa_key: Option<String>,
}

impl Drop for LdsSecrets {
    fn drop(&mut self) {
        for s in [
            &mut self.bac_key_seed,
            &mut self.pace_mrz_key,
            &mut self.can,
            &mut self.ca_key,
            &mut self.aa_key,
        ]
        .into_iter()
        .flatten()
        {
            zeroize::Zeroize::zeroize(s);
        }
    }
}

/// Whether `can` is a CAN this chip accepts: exactly six ASCII digits.
pub fn is_valid_can(can: &[u8]) -> bool {
    can.len() == CAN_LEN && can.iter().all(u8::is_ascii_digit)
}

fn image_err(field: &str, rule: &str) -> crate::ChipError {
    if field.is_empty() {
        crate::ChipError::Image(format!("applications.lds: {rule}"))
    } else {
        crate::ChipError::Image(format!("applications.lds.{field}: {rule}"))
    }
}

fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, StatusWord> {
    let mut v = Zeroizing::new([0u8; N]);
    getrandom::fill(v.as_mut_slice()).map_err(|_| StatusWord::NoPreciseDiagnosis)?;
    Ok(v)
}

impl Default for Lds {
    fn default() -> Self {
        Lds::blank()
    }
}

impl Lds {
    /// An empty LDS: no files, no key seed.
    pub fn blank() -> Lds {
        Lds {
            files: BTreeMap::new(),
            key_seed: None,
            pace_mrz_key: None,
            can: None,
            pace_failures: 0,
            ca_key: None,
            aa_key: None,
            current_ef: None,
            bac: BacState::Idle,
            pace: None,
            ca_armed: false,
            next_session: None,
        }
    }

    /// Restore from the card image.
    pub(crate) fn from_image(
        public: &serde_json::Value,
        secrets: &str,
    ) -> Result<Lds, crate::ChipError> {
        let public: LdsPublic = serde_json::from_value(public.clone())
            .map_err(|e| image_err("", &format!("does not parse: {e}")))?;
        let secrets: LdsSecrets = serde_json::from_str(secrets)
            .map_err(|_| image_err("secrets", "sealed LDS secrets do not parse"))?;
        let mut files = BTreeMap::new();
        for (name, content) in &public.files {
            let fid = u16::from_str_radix(name, 16)
                .ok()
                .filter(|f| name.len() == 4 && is_lds_fid(*f))
                .ok_or_else(|| {
                    image_err(
                        &format!("files.{name}"),
                        "must be an LDS1 FID 0101..0110, 011D or 011E",
                    )
                })?;
            let bytes = hex::decode(content)
                .map_err(|_| image_err(&format!("files.{name}"), "must be hex"))?;
            if bytes.is_empty() || bytes.len() > MAX_EF_SIZE {
                return Err(image_err(
                    &format!("files.{name}"),
                    "size must be 1..=32767 bytes",
                ));
            }
            files.insert(fid, bytes);
        }
        let key_seed = match &secrets.bac_key_seed {
            None => None,
            Some(hexseed) => {
                let bytes = Zeroizing::new(
                    hex::decode(hexseed)
                        .map_err(|_| image_err("secrets.bac_key_seed", "must be hex"))?,
                );
                let mut seed = Zeroizing::new([0u8; 16]);
                if bytes.len() != 16 {
                    return Err(image_err("secrets.bac_key_seed", "must be 16 bytes"));
                }
                seed.copy_from_slice(&bytes);
                Some(seed)
            }
        };
        if key_seed.is_some() != public.bac_key_seed_set {
            return Err(image_err(
                "bac_key_seed_set",
                "does not match the sealed secrets",
            ));
        }
        let pace_mrz_key = match &secrets.pace_mrz_key {
            None => None,
            Some(k) => {
                let bytes = Zeroizing::new(
                    hex::decode(k).map_err(|_| image_err("secrets.pace_mrz_key", "must be hex"))?,
                );
                if bytes.len() != PACE_MRZ_KEY_LEN {
                    return Err(image_err("secrets.pace_mrz_key", "must be 20 bytes"));
                }
                Some(bytes)
            }
        };
        let can = match &secrets.can {
            None => None,
            Some(c) => {
                let bytes = Zeroizing::new(c.as_bytes().to_vec());
                if !is_valid_can(&bytes) {
                    return Err(image_err("secrets.can", "must be 6 decimal digits"));
                }
                Some(bytes)
            }
        };
        if pace_mrz_key.is_some() != public.pace_mrz_set {
            return Err(image_err(
                "pace_mrz_set",
                "does not match the sealed secrets",
            ));
        }
        if can.is_some() != public.can_set {
            return Err(image_err("can_set", "does not match the sealed secrets"));
        }
        let private_key = |field: &str, v: &Option<String>, set: bool| {
            let key = match v {
                None => None,
                Some(k) => {
                    let bytes = Zeroizing::new(
                        hex::decode(k)
                            .map_err(|_| image_err(&format!("secrets.{field}"), "must be hex"))?,
                    );
                    if pace::ca::public_key(&bytes).is_none() {
                        return Err(image_err(
                            &format!("secrets.{field}"),
                            "must be a P-256 private key (32 bytes, 1..n-1)",
                        ));
                    }
                    Some(bytes)
                }
            };
            if key.is_some() != set {
                return Err(image_err(
                    &format!("{field}_set"),
                    "does not match the sealed secrets",
                ));
            }
            Ok(key)
        };
        let ca_key = private_key("ca_key", &secrets.ca_key, public.ca_key_set)?;
        let aa_key = private_key("aa_key", &secrets.aa_key, public.aa_key_set)?;
        Ok(Lds {
            files,
            key_seed,
            pace_mrz_key,
            can,
            pace_failures: public.pace_failures,
            ca_key,
            aa_key,
            current_ef: None,
            bac: BacState::Idle,
            pace: None,
            ca_armed: false,
            next_session: None,
        })
    }

    /// Whether PACE is offered: a PACE password is set and the card is not BLANK.
    fn pace_available(&self, ctx: &CardContext) -> bool {
        ctx.lifecycle != Lifecycle::Blank && (self.pace_mrz_key.is_some() || self.can.is_some())
    }

    /// Consecutive unsuccessful PACE runs (persistent; for tests and `vchip show`).
    pub fn pace_failures(&self) -> u32 {
        self.pace_failures
    }

    /// The cipher of the established secure-messaging session, if any.
    pub fn session_cipher(&self) -> Option<crate::sm::SmCipher> {
        match &self.bac {
            BacState::Session(s) => Some(s.cipher()),
            _ => None,
        }
    }

    /// Whether a BAC session (secure messaging) is established (for tests and `tracing`).
    pub fn bac_session_active(&self) -> bool {
        matches!(self.bac, BacState::Session(_))
    }

    fn end_session(&mut self) {
        self.bac = BacState::Idle;
        self.ca_armed = false;
        self.next_session = None;
    }

    /// The bytes of an EF: a stored file, or EF.CardAccess while PACE is offered.
    fn file(&self, ctx: &CardContext, fid: u16) -> Option<&[u8]> {
        if fid == pace::EF_CARD_ACCESS {
            return self.pace_available(ctx).then_some(&pace::CARD_ACCESS[..]);
        }
        self.files.get(&fid).map(Vec::as_slice)
    }

    /// Whether a plain SELECT / READ BINARY targets EF.CardAccess, which needs no access
    /// control (Part 11 §4.2: the terminal reads it before PACE).
    fn targets_card_access(&self, cmd: &Command) -> bool {
        match cmd.ins {
            0xA4 => {
                matches!(cmd.p1, 0x00 | 0x02) && cmd.data[..] == pace::EF_CARD_ACCESS.to_be_bytes()
            }
            0xB0 if cmd.p1 & 0x80 != 0 => cmd.p1 & 0x1F == pace::SFI_CARD_ACCESS,
            0xB0 => self.current_ef == Some(pace::EF_CARD_ACCESS),
            _ => false,
        }
    }

    /// Personalization rights (card contract): PERSONALIZING (else 6985) and the management
    /// key authenticated in this card session (else 6982).
    fn require_personalization(ctx: &CardContext) -> Result<(), StatusWord> {
        if ctx.lifecycle != Lifecycle::Personalizing {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        if !ctx.mgmt_authenticated {
            return Err(StatusWord::SecurityStatusNotSatisfied);
        }
        Ok(())
    }

    /// Plain (unprotected) SELECT EF / READ BINARY: only during personalization with the
    /// management key, so the host can check its writes; otherwise 6982.
    fn require_plain_read(ctx: &CardContext) -> Result<(), StatusWord> {
        if ctx.lifecycle == Lifecycle::Personalizing && ctx.mgmt_authenticated {
            Ok(())
        } else {
            Err(StatusWord::SecurityStatusNotSatisfied)
        }
    }

    // --- SELECT (ISO 7816-4 11.2.2), EF by file identifier ---
    fn select_ef(&mut self, ctx: &CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        if cmd.p1 == 0x04 {
            // Only reachable under secure messaging (the OS selects applications): the LDS
            // application itself stays selected, the session continues.
            if !cmd.data.is_empty() && LDS_AID.starts_with(&cmd.data) && cmd.data.len() >= 5 {
                self.current_ef = None;
                return Ok(Vec::new());
            }
            return Err(StatusWord::NotFound);
        }
        if cmd.p1 != 0x00 && cmd.p1 != 0x02 {
            return Err(StatusWord::IncorrectP1P2);
        }
        let want_fcp = match cmd.p2 {
            0x0C => false,
            0x00 | 0x04 => true,
            _ => return Err(StatusWord::IncorrectP1P2),
        };
        let fid = match cmd.data[..] {
            [hi, lo] => u16::from_be_bytes([hi, lo]),
            _ => return Err(StatusWord::WrongLength),
        };
        let file = self.file(ctx, fid).ok_or(StatusWord::NotFound)?;
        let size = file.len() as u16;
        self.current_ef = Some(fid);
        if !want_fcp {
            return Ok(Vec::new());
        }
        // FCP (ISO 7816-4 table 12): size, descriptor "working EF, transparent", FID, SFI.
        let mut fcp = Vec::new();
        tlv::push(&mut fcp, 0x80, &size.to_be_bytes());
        tlv::push(&mut fcp, 0x82, &[0x01]);
        tlv::push(&mut fcp, 0x83, &fid.to_be_bytes());
        tlv::push(&mut fcp, 0x88, &[sfi_of(fid) << 3]);
        Ok(tlv::encode(0x62, &fcp))
    }

    /// The EF and offset of a READ / UPDATE BINARY (ISO 7816-4 11.3.3): P1 b8 = 1 means
    /// b5..b1 = short EF identifier (the EF becomes current) and P2 = offset; otherwise
    /// P1 P2 = 15-bit offset in the current EF.
    fn resolve(&mut self, ctx: &CardContext, p1: u8, p2: u8) -> Result<(u16, usize), StatusWord> {
        if p1 & 0x80 != 0 {
            let sfi = p1 & 0x1F;
            if p1 & 0x60 != 0 || sfi == 0 {
                return Err(StatusWord::IncorrectP1P2);
            }
            let fid = if sfi == pace::SFI_CARD_ACCESS && self.pace_available(ctx) {
                pace::EF_CARD_ACCESS
            } else {
                *self
                    .files
                    .keys()
                    .find(|fid| sfi_of(**fid) == sfi)
                    .ok_or(StatusWord::NotFound)?
            };
            self.current_ef = Some(fid);
            Ok((fid, usize::from(p2)))
        } else {
            let fid = self.current_ef.ok_or(StatusWord::NoCurrentEf)?;
            Ok((fid, usize::from(u16::from_be_bytes([p1, p2]))))
        }
    }

    // --- READ BINARY (ISO 7816-4 11.3.3) ---
    fn read_binary(&mut self, ctx: &CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        if !cmd.data.is_empty() {
            return Err(StatusWord::WrongLength);
        }
        let ne = cmd.ne.ok_or(StatusWord::WrongLength)?;
        let (fid, offset) = self.resolve(ctx, cmd.p1, cmd.p2)?;
        let file = self.file(ctx, fid).ok_or(StatusWord::NotFound)?;
        if offset >= file.len() {
            return Err(StatusWord::WrongOffset);
        }
        let end = offset.saturating_add(ne).min(file.len());
        let mut out = file[offset..end].to_vec();
        if end == file.len() && ctx.corrupt_efs.contains(&fid) {
            // Fault injection: the EF's last byte leaves the chip with its lowest bit flipped.
            if let Some(last) = out.last_mut() {
                *last ^= 0x01;
            }
        }
        Ok(out)
    }

    // --- UPDATE BINARY (ISO 7816-4 11.3.5) ---
    fn update_binary(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        Lds::require_personalization(ctx)?;
        if cmd.data.is_empty() {
            return Err(StatusWord::WrongLength);
        }
        let (fid, offset) = self.resolve(ctx, cmd.p1, cmd.p2)?;
        let file = self.files.get_mut(&fid).ok_or(StatusWord::NotFound)?;
        let end = offset
            .checked_add(cmd.data.len())
            .filter(|end| *end <= file.len())
            .ok_or(StatusWord::WrongOffset)?;
        file[offset..end].copy_from_slice(&cmd.data);
        ctx.mark_dirty();
        Ok(Vec::new())
    }

    // --- CREATE FILE (ISO 7816-9): 62 { 80 02 <size>, 83 02 <FID> [, 82 01 01] } ---
    fn create_file(&mut self, ctx: &mut CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        Lds::require_personalization(ctx)?;
        if (cmd.p1, cmd.p2) != (0, 0) {
            return Err(StatusWord::IncorrectP1P2);
        }
        let fcp = tlv::parse_single(&cmd.data, 0x62)?;
        let mut size = None;
        let mut fid = None;
        let mut descriptor = None;
        for obj in tlv::parse_all(fcp)? {
            let slot = match obj.tag {
                0x80 => &mut size,
                0x83 => &mut fid,
                0x82 => &mut descriptor,
                _ => return Err(StatusWord::IncorrectData),
            };
            if slot.is_some() {
                return Err(StatusWord::IncorrectData);
            }
            *slot = Some(obj.value);
        }
        // File descriptor byte 01: working EF with transparent structure (ISO 7816-4 table 14).
        if descriptor.is_some_and(|d| d != [0x01]) {
            return Err(StatusWord::IncorrectData);
        }
        let size = match size.ok_or(StatusWord::IncorrectData)? {
            [s] => usize::from(*s),
            [hi, lo] => usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => return Err(StatusWord::IncorrectData),
        };
        let fid = match fid.ok_or(StatusWord::IncorrectData)? {
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            _ => return Err(StatusWord::IncorrectData),
        };
        if !is_lds_fid(fid) || size == 0 {
            return Err(StatusWord::IncorrectData);
        }
        if size > MAX_EF_SIZE {
            return Err(StatusWord::NotEnoughMemory);
        }
        if self.files.contains_key(&fid) {
            return Err(StatusWord::FileExists);
        }
        self.files.insert(fid, vec![0u8; size]);
        self.current_ef = Some(fid);
        ctx.mark_dirty();
        tracing::debug!(fid = format!("{fid:04X}"), size, "LDS file created");
        Ok(Vec::new())
    }

    // --- PUT DATA 01 0B: the BAC key seed (card contract); 01 0E / 01 0F: PACE passwords ---
    fn put_key_seed(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        Lds::require_personalization(ctx)?;
        match (cmd.p1, cmd.p2) {
            (0x01, 0x0B) => {}
            (0x01, 0x0E) => {
                // K = SHA-1(MRZ information), the MRZ password of PACE (Part 11 §9.7.3).
                if cmd.data.len() != PACE_MRZ_KEY_LEN {
                    return Err(StatusWord::WrongLength);
                }
                self.pace_mrz_key = Some(Zeroizing::new(cmd.data.clone()));
                self.end_session();
                ctx.mark_dirty();
                tracing::info!("PACE MRZ password set");
                return Ok(Vec::new());
            }
            (0x01, 0x0F) => {
                if cmd.data.len() != CAN_LEN {
                    return Err(StatusWord::WrongLength);
                }
                if !is_valid_can(&cmd.data) {
                    return Err(StatusWord::IncorrectData);
                }
                self.can = Some(Zeroizing::new(cmd.data.clone()));
                self.end_session();
                ctx.mark_dirty();
                tracing::info!("PACE CAN set");
                return Ok(Vec::new());
            }
            _ => return Err(StatusWord::IncorrectP1P2),
        }
        if cmd.data.len() != 16 {
            return Err(StatusWord::WrongLength);
        }
        let mut seed = Zeroizing::new([0u8; 16]);
        seed.copy_from_slice(&cmd.data);
        self.key_seed = Some(seed);
        self.end_session();
        ctx.mark_dirty();
        tracing::info!("BAC key seed set");
        Ok(Vec::new())
    }

    /// BAC is available once the key seed is set, in PERSONALIZING and LOCKED.
    fn bac_keys(&self, ctx: &CardContext) -> Result<(Key16, Key16), StatusWord> {
        let seed = self
            .key_seed
            .as_ref()
            .filter(|_| ctx.lifecycle != Lifecycle::Blank)
            .ok_or(StatusWord::ConditionsNotSatisfied)?;
        Ok((
            bac::derive_key(seed, bac::KDF_ENC),
            bac::derive_key(seed, bac::KDF_MAC),
        ))
    }

    // --- GET CHALLENGE (ISO 7816-4; Part 11 §4.3, first step) ---
    fn get_challenge(&mut self, ctx: &CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        self.end_session();
        if (cmd.p1, cmd.p2) != (0, 0) {
            return Err(StatusWord::IncorrectP1P2);
        }
        if !cmd.data.is_empty() || cmd.ne != Some(8) {
            return Err(StatusWord::WrongLength);
        }
        self.bac_keys(ctx)?;
        let rnd_icc = random_bytes::<8>()?;
        let out = rnd_icc.to_vec();
        self.bac = BacState::Challenged(rnd_icc);
        Ok(out)
    }

    // --- MUTUAL AUTHENTICATE (ISO 7816-4 EXTERNAL AUTHENTICATE, INS 82; Part 11 §4.3) ---
    fn mutual_authenticate(
        &mut self,
        ctx: &CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        let state = std::mem::replace(&mut self.bac, BacState::Idle);
        if (cmd.p1, cmd.p2) != (0, 0) {
            return Err(StatusWord::IncorrectP1P2);
        }
        let BacState::Challenged(rnd_icc) = state else {
            return Err(StatusWord::ConditionsNotSatisfied);
        };
        let (k_enc, k_mac) = self.bac_keys(ctx)?;
        if cmd.data.len() != bac::MUTUAL_AUTH_LEN {
            return Err(StatusWord::WrongLength);
        }
        let k_icc = random_bytes::<16>()?;
        match bac::chip_authenticate(&k_enc, &k_mac, &rnd_icc, &k_icc, &cmd.data) {
            Ok((answer, keys)) => {
                self.bac = BacState::Session(SmSession::new(keys));
                tracing::info!("BAC: mutual authentication succeeded, secure messaging on");
                Ok(answer)
            }
            Err(failure) => {
                tracing::info!(?failure, "BAC: mutual authentication failed");
                Err(StatusWord::AuthenticationFailed)
            }
        }
    }

    // --- MSE:Set AT for PACE (ISO 7816-4 MANAGE SECURITY ENVIRONMENT; Part 11 §4.4.4.1) ---
    fn mse_set_at(&mut self, ctx: &CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        self.pace = None;
        if (cmd.p1, cmd.p2) != (0xC1, 0xA4) {
            return Err(StatusWord::IncorrectP1P2);
        }
        if !self.pace_available(ctx) {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        let set = pace::parse_set_at(&cmd.data)?;
        let secret = match set.password {
            pace::PASSWORD_MRZ => self.pace_mrz_key.as_ref(),
            _ => self.can.as_ref(),
        }
        .ok_or(StatusWord::ReferenceNotFound)?;
        self.pace = Some(PaceRun::new(set, secret, Randomness::for_next_run()));
        Ok(Vec::new())
    }

    // --- GENERAL AUTHENTICATE for PACE (ISO 7816-4 INS 86; Part 11 §4.4.4.2) ---
    fn general_authenticate(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        let Some(mut run) = self.pace.take() else {
            return Err(StatusWord::ConditionsNotSatisfied);
        };
        if (cmd.p1, cmd.p2) != (0x00, 0x00) {
            return Err(StatusWord::IncorrectP1P2);
        }
        // Steps 1 to 3 are chained (CLA 10), the token ends the chain (CLA 00).
        let chained = cmd.cla & 0x10 != 0;
        if run.expects_token() == chained {
            return Err(if chained {
                StatusWord::LastCommandExpected
            } else {
                StatusWord::IncorrectData
            });
        }
        // Counted by the run's state, not by the bytes of the command: any encoding of the
        // first step that gets a nonce out of the card is an attempt.
        if run.is_fresh() {
            // Count the attempt before it can be tested (docs/lds.md, "Guessing the CAN"):
            // the counter is persistent and only a successful run clears it, so pulling the
            // card in the middle of a run does not escape it.
            let before = self.pace_failures;
            self.pace_failures = before.saturating_add(1);
            ctx.mark_dirty();
            let delay = pace::guess_delay(before);
            if !delay.is_zero() {
                tracing::info!(
                    failures = before,
                    ?delay,
                    "PACE: delaying after failed runs"
                );
                std::thread::sleep(delay);
            }
        }
        match run.step(&cmd.data) {
            Ok((answer, None)) => {
                self.pace = Some(run);
                Ok(answer)
            }
            Ok((answer, Some(keys))) => {
                self.pace_failures = 0;
                ctx.mark_dirty();
                self.current_ef = None;
                self.bac = BacState::Session(SmSession::new_aes(keys.ks_enc, keys.ks_mac));
                tracing::info!(
                    password = if keys.password == pace::PASSWORD_CAN {
                        "CAN"
                    } else {
                        "MRZ"
                    },
                    "PACE: mutual authentication succeeded, AES secure messaging on"
                );
                Ok(answer)
            }
            Err(failure) => {
                if failure.wrong_token {
                    tracing::info!(
                        failures = self.pace_failures,
                        "PACE: mutual authentication failed (wrong password or token)"
                    );
                }
                Err(failure.sw)
            }
        }
    }

    // --- GENERATE ASYMMETRIC KEY PAIR (ISO 7816-8 INS 46): 00 01 = CA key, 00 02 = AA key ---
    fn generate_key(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        Lds::require_personalization(ctx)?;
        if !cmd.data.is_empty() {
            return Err(StatusWord::WrongLength);
        }
        let slot = match (cmd.p1, cmd.p2) {
            (0x00, pace::ca::KEY_CA) => &mut self.ca_key,
            (0x00, pace::ca::KEY_AA) => &mut self.aa_key,
            _ => return Err(StatusWord::IncorrectP1P2),
        };
        let sk = pace::ca::generate_private_key().ok_or(StatusWord::NoPreciseDiagnosis)?;
        let pk = pace::ca::public_key(&sk).ok_or(StatusWord::NoPreciseDiagnosis)?;
        *slot = Some(sk);
        ctx.mark_dirty();
        tracing::info!(key = cmd.p2, "LDS key pair generated on the chip");
        // 7F49 { 86 uncompressed point } (ISO 7816-8 public key template).
        Ok(tlv::encode(0x7F49, &tlv::encode(0x86, &pk)))
    }

    /// A command that arrived inside secure messaging, already unwrapped.
    fn process_protected(
        &mut self,
        ctx: &CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        match cmd.ins {
            0xA4 => self.select_ef(ctx, cmd),
            0xB0 => self.read_binary(ctx, cmd),
            // MSE:Set AT for Chip Authentication (Part 11 §6.2.4.2).
            0x22 => {
                self.ca_armed = false;
                if (cmd.p1, cmd.p2) != (0x41, 0xA4) {
                    return Err(StatusWord::IncorrectP1P2);
                }
                if self.ca_key.is_none() {
                    return Err(StatusWord::ConditionsNotSatisfied);
                }
                pace::ca::parse_set_at(&cmd.data)?;
                self.ca_armed = true;
                Ok(Vec::new())
            }
            0x86 => {
                let armed = std::mem::take(&mut self.ca_armed);
                let key = self.ca_key.as_ref().filter(|_| armed);
                let key = key.ok_or(StatusWord::ConditionsNotSatisfied)?;
                if (cmd.p1, cmd.p2) != (0x00, 0x00) {
                    return Err(StatusWord::IncorrectP1P2);
                }
                let (ks_enc, ks_mac) = pace::ca::chip_authenticate(key, &cmd.data)?;
                self.next_session = Some(SmSession::new_aes(ks_enc, ks_mac));
                tracing::info!("Chip Authentication: secure messaging restarts with new keys");
                Ok(tlv::encode(0x7C, &[]))
            }
            // INTERNAL AUTHENTICATE: Active Authentication (Part 11 §6.1).
            0x88 => {
                if (cmd.p1, cmd.p2) != (0x00, 0x00) {
                    return Err(StatusWord::IncorrectP1P2);
                }
                let key = self
                    .aa_key
                    .as_ref()
                    .ok_or(StatusWord::ConditionsNotSatisfied)?;
                pace::ca::active_authenticate(key, &cmd.data)
            }
            // No writes through BAC (card contract).
            0xD6 | 0xE0 | 0xDA => Err(StatusWord::SecurityStatusNotSatisfied),
            _ => Err(StatusWord::InsNotSupported),
        }
    }
}

impl Application for Lds {
    fn name(&self) -> &'static str {
        "lds"
    }

    fn aid(&self) -> &'static [u8] {
        &LDS_AID
    }

    fn select(&mut self, _ctx: &mut CardContext) -> Result<Vec<u8>, StatusWord> {
        self.current_ef = None;
        self.pace = None;
        self.end_session();
        // FCI (ISO 7816-4 table 10) with the DF name.
        Ok(tlv::encode(0x6F, &tlv::encode(0x84, &LDS_AID)))
    }

    fn deselect(&mut self) {
        self.current_ef = None;
        self.pace = None;
        self.end_session();
    }

    fn reset(&mut self) {
        self.current_ef = None;
        self.pace = None;
        self.end_session();
    }

    fn process(&mut self, ctx: &mut CardContext, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        // A plain command aborts secure messaging (Part 11 §9.8), and a challenge is only
        // good for the MUTUAL AUTHENTICATE that follows it.
        if cmd.ins != 0x82 {
            self.end_session();
        }
        // A PACE run continues only with its next GENERAL AUTHENTICATE.
        if cmd.ins != 0x86 {
            self.pace = None;
        }
        match cmd.ins {
            0xA4 => {
                if !self.targets_card_access(cmd) || !self.pace_available(ctx) {
                    Lds::require_plain_read(ctx)?;
                }
                self.select_ef(ctx, cmd)
            }
            0xB0 => {
                if !self.targets_card_access(cmd) || !self.pace_available(ctx) {
                    Lds::require_plain_read(ctx)?;
                }
                self.read_binary(ctx, cmd)
            }
            0x22 => self.mse_set_at(ctx, cmd),
            0x86 => self.general_authenticate(ctx, cmd),
            0x46 => self.generate_key(ctx, cmd),
            0xD6 => self.update_binary(ctx, cmd),
            0xE0 => self.create_file(ctx, cmd),
            0xDA => self.put_key_seed(ctx, cmd),
            0x84 => self.get_challenge(ctx, cmd),
            0x82 => self.mutual_authenticate(ctx, cmd),
            0x44 => ctx.lock(cmd),
            _ => Err(StatusWord::InsNotSupported),
        }
    }

    fn respond(&mut self, ctx: &mut CardContext, cmd: &Command) -> (Vec<u8>, StatusWord) {
        if cmd.cla != SM_CLA {
            return match self.process(ctx, cmd) {
                Ok(data) => (data, StatusWord::Ok),
                Err(sw) => (Vec::new(), sw),
            };
        }
        // Secure messaging: verify and decrypt, process, protect the answer. An SM error ends
        // the session and is answered in plain (§9.8).
        let BacState::Session(mut session) = std::mem::replace(&mut self.bac, BacState::Idle)
        else {
            return (Vec::new(), StatusWord::SmDataObjectsIncorrect);
        };
        let inner = match session.unwrap_command(cmd) {
            Ok(inner) => inner,
            Err(sw) => {
                tracing::info!("secure messaging error: session ended");
                return (Vec::new(), sw);
            }
        };
        let (data, sw) = match self.process_protected(ctx, &inner) {
            Ok(data) => (data, StatusWord::Ok),
            Err(sw) => (Vec::new(), sw),
        };
        let protected = session.wrap_response(&data, sw);
        // Chip Authentication: its answer goes out under the old keys, then the new ones rule.
        self.bac = BacState::Session(self.next_session.take().unwrap_or(session));
        (protected, sw)
    }

    fn supports_secure_messaging(&self) -> bool {
        true
    }

    fn wipe(&mut self) {
        *self = Lds::blank();
    }

    fn image(&self) -> AppImage {
        let public = LdsPublic {
            files: self
                .files
                .iter()
                .map(|(fid, content)| (format!("{fid:04x}"), hex::encode(content)))
                .collect(),
            bac_key_seed_set: self.key_seed.is_some(),
            pace_mrz_set: self.pace_mrz_key.is_some(),
            can_set: self.can.is_some(),
            pace_failures: self.pace_failures,
            ca_key_set: self.ca_key.is_some(),
            aa_key_set: self.aa_key.is_some(),
        };
        let secrets = LdsSecrets {
            bac_key_seed: self.key_seed.as_ref().map(|s| hex::encode(s.as_slice())),
            pace_mrz_key: self
                .pace_mrz_key
                .as_ref()
                .map(|k| hex::encode(k.as_slice())),
            can: self
                .can
                .as_ref()
                .map(|c| String::from_utf8_lossy(c).into_owned()),
            ca_key: self.ca_key.as_ref().map(|k| hex::encode(k.as_slice())),
            aa_key: self.aa_key.as_ref().map(|k| hex::encode(k.as_slice())),
        };
        AppImage {
            public: serde_json::to_value(&public).unwrap_or(serde_json::Value::Null),
            secrets: Zeroizing::new(serde_json::to_string(&secrets).unwrap_or_default()),
        }
    }
}
