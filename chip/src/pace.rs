//! PACE, chip side (ICAO Doc 9303 Part 11 §4.4): id-PACE-ECDH-GM-AES-CBC-CMAC-128 with the
//! generic mapping (§4.4.3.3.1) on brainpoolP256r1 (standardized domain parameter 13) and
//! NIST P-256 (12), passwords MRZ (reference 01) and CAN (02).
//!
//! - EF.CardAccess (FID 011C, SFI 1C, §9.2.1 / §9.2.2) is [`CARD_ACCESS`]: one PACEInfo per
//!   domain parameter, version 2;
//! - MSE:Set AT (§4.4.4.1) chooses the protocol, the password and the parameter ID;
//! - four GENERAL AUTHENTICATE steps (§4.4.4.2): encrypted nonce z = E(K_π, s), mapping
//!   (Ĝ = s·G + H with H = SK_Map,IC · PK_Map,IFD), key agreement on Ĝ, mutual
//!   authentication with the tokens T = CMAC(KS_MAC, 7F49{06 OID, 86 PK})[0..8];
//! - key derivation (§9.7.1): KDF(K, c) = SHA-1(K ‖ c)[0..16] for AES-128, c = 1 (KS_ENC),
//!   2 (KS_MAC), 3 (K_π); the MRZ password is K = SHA-1(MRZ information), the CAN its ASCII
//!   digits (§9.7.3).
//!
//! The curve arithmetic is RustCrypto's (`p256`, `bp256`); nothing here touches field elements.
//! Everything is written from the standard and shares no code with the host side.

use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use cmac::{KeyInit, Mac};
use p256::elliptic_curve::group::{Curve as _, Group};
use p256::elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use p256::elliptic_curve::{
    AffinePoint, CurveArithmetic, FieldBytes, FieldBytesSize, NonZeroScalar, ProjectivePoint,
};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::bac::Key16;
use crate::sw::StatusWord;
use crate::tlv;

/// FID of EF.CardAccess (Part 10 §3.11.1; in this chip: readable inside the ICAO application
/// without access control).
pub const EF_CARD_ACCESS: u16 = 0x011C;
/// SFI of EF.CardAccess.
pub const SFI_CARD_ACCESS: u8 = 0x1C;

/// id-PACE-ECDH-GM-AES-CBC-CMAC-128 = 0.4.0.127.0.7.2.2.4.2.2 (Part 11 §9.2.1), DER contents.
pub const OID_PACE_ECDH_GM_AES_128: [u8; 10] =
    [0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04, 0x02, 0x02];

/// Standardized domain parameter ID of NIST P-256 (Part 11 §9.5.1, table 12).
pub const PARAM_P256: u8 = 12;
/// Standardized domain parameter ID of brainpoolP256r1 (table 12).
pub const PARAM_BP256: u8 = 13;

/// Password reference of the MRZ (Part 11 §4.4.4.1, MSE:Set AT tag 83).
pub const PASSWORD_MRZ: u8 = 0x01;
/// Password reference of the CAN.
pub const PASSWORD_CAN: u8 = 0x02;

/// EF.CardAccess: SecurityInfos = SET OF { PACEInfo(id-PACE-ECDH-GM-AES-CBC-CMAC-128,
/// version 2, parameterId 13), PACEInfo(…, 2, 12) } (Part 11 §9.2.1). brainpoolP256r1
/// first: it is the chip's default when MSE:Set AT names no parameter.
pub const CARD_ACCESS: [u8; 42] = [
    0x31,
    0x28, //
    0x30,
    0x12,
    0x06,
    0x0A,
    0x04,
    0x00,
    0x7F,
    0x00,
    0x07,
    0x02,
    0x02,
    0x04,
    0x02,
    0x02, //
    0x02,
    0x01,
    0x02,
    0x02,
    0x01,
    PARAM_BP256, //
    0x30,
    0x12,
    0x06,
    0x0A,
    0x04,
    0x00,
    0x7F,
    0x00,
    0x07,
    0x02,
    0x02,
    0x04,
    0x02,
    0x02, //
    0x02,
    0x01,
    0x02,
    0x02,
    0x01,
    PARAM_P256,
];

/// KDF counter of KS_ENC (§9.7.1).
pub const KDF_ENC: u32 = 1;
/// KDF counter of KS_MAC.
pub const KDF_MAC: u32 = 2;
/// KDF counter of K_π, the password key (§9.7.3).
pub const KDF_PI: u32 = 3;

/// Key derivation for AES-128 (§9.7.1): the 16 most significant bytes of SHA-1(K ‖ c).
pub fn kdf_aes128(secret: &[u8], counter: u32) -> Key16 {
    let mut h = Sha1::new();
    h.update(secret);
    h.update(counter.to_be_bytes());
    let d = h.finalize();
    let mut k = Zeroizing::new([0u8; 16]);
    k.copy_from_slice(&d[..16]);
    k
}

/// AES-128-CBC with a zero IV over whole blocks (the nonce encryption of §4.4.3.1).
pub fn aes_cbc_encrypt(key: &[u8; 16], data: &[u8]) -> Option<Vec<u8>> {
    if data.is_empty() || !data.len().is_multiple_of(16) {
        return None;
    }
    let enc = cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &[0u8; 16]).ok()?;
    Some(enc.encrypt_padded_vec::<NoPadding>(data))
}

/// AES-128-CBC decryption with a zero IV over whole blocks.
pub fn aes_cbc_decrypt(key: &[u8; 16], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if data.is_empty() || !data.len().is_multiple_of(16) {
        return None;
    }
    let dec = cbc::Decryptor::<aes::Aes128>::new_from_slices(key, &[0u8; 16]).ok()?;
    dec.decrypt_padded_vec::<NoPadding>(data)
        .ok()
        .map(Zeroizing::new)
}

/// AES-CMAC (NIST SP 800-38B) truncated to 8 bytes, the MAC of AES secure messaging and of the
/// PACE authentication tokens (§9.8.6.2, §4.4.3.4).
pub fn cmac8(key: &[u8; 16], message: &[u8]) -> [u8; 8] {
    // A 16-byte key always fits AES-128.
    let mut mac = match <cmac::Cmac<aes::Aes128> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0u8; 8],
    };
    mac.update(message);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 8];
    out.copy_from_slice(&full[..8]);
    out
}

/// The password key K_π (§9.7.3) of a stored password secret: the MRZ's SHA-1 or the CAN.
pub fn password_key(secret: &[u8]) -> Key16 {
    kdf_aes128(secret, KDF_PI)
}

/// The authentication token (§4.4.3.4): CMAC over the public key data object
/// 7F49 { 06 OID, 86 encoded point } (Part 11 §9.4.2/§9.4.5), first 8 bytes.
pub fn auth_token(ks_mac: &[u8; 16], other_public: &[u8]) -> [u8; 8] {
    cmac8(ks_mac, &public_key_template(other_public))
}

/// 7F49 { 06 OID, 86 point }: the input of [`auth_token`].
pub fn public_key_template(point: &[u8]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(point.len() + 16);
    tlv::push(&mut inner, 0x06, &OID_PACE_ECDH_GM_AES_128);
    tlv::push(&mut inner, 0x86, point);
    tlv::encode(0x7F49, &inner)
}

/// The elliptic curves this chip offers for PACE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (parameter ID 12).
    P256,
    /// brainpoolP256r1 (parameter ID 13).
    BrainpoolP256r1,
}

/// Generic point and scalar helpers over a RustCrypto curve.
mod ec {
    use super::*;

    pub(super) fn scalar<C>(bytes: &[u8]) -> Option<NonZeroScalar<C>>
    where
        C: CurveArithmetic,
    {
        let fb = FieldBytes::<C>::try_from(bytes).ok()?;
        NonZeroScalar::<C>::from_repr(fb).into_option()
    }

    /// Decode an uncompressed point (04 ‖ x ‖ y) that lies on the curve and is not the
    /// identity (Part 11 §4.4.3.3: the chip checks the other party's points).
    pub(super) fn decode<C>(bytes: &[u8]) -> Option<ProjectivePoint<C>>
    where
        C: CurveArithmetic,
        FieldBytesSize<C>: ModulusSize,
        AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    {
        if bytes.first() != Some(&0x04) {
            return None;
        }
        let affine = AffinePoint::<C>::from_sec1_bytes(bytes).ok()?;
        let p = ProjectivePoint::<C>::from(affine);
        if bool::from(p.is_identity()) {
            return None;
        }
        Some(p)
    }

    pub(super) fn encode<C>(p: &ProjectivePoint<C>) -> Option<Vec<u8>>
    where
        C: CurveArithmetic,
        FieldBytesSize<C>: ModulusSize,
        AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    {
        if bool::from(p.is_identity()) {
            return None;
        }
        Some(p.to_affine().to_sec1_point(false).as_bytes().to_vec())
    }

    pub(super) fn random_scalar<C>() -> Option<Zeroizing<Vec<u8>>>
    where
        C: CurveArithmetic,
    {
        for _ in 0..64 {
            let mut bytes = Zeroizing::new(vec![0u8; 32]);
            getrandom::fill(&mut bytes).ok()?;
            if scalar::<C>(&bytes).is_some() {
                return Some(bytes);
            }
        }
        None
    }

    /// sk · P, P = the generator when `base` is `None`.
    pub(super) fn mul<C>(sk: &[u8], base: Option<&[u8]>) -> Option<Vec<u8>>
    where
        C: CurveArithmetic,
        FieldBytesSize<C>: ModulusSize,
        AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    {
        let k = scalar::<C>(sk)?;
        let p = match base {
            None => ProjectivePoint::<C>::generator(),
            Some(b) => decode::<C>(b)?,
        };
        encode::<C>(&(p * *k))
    }

    /// Ĝ = s·G + H (generic mapping, §4.4.3.3.1); `s` is the nonce, at most 32 bytes.
    pub(super) fn map<C>(s: &[u8], h: &[u8]) -> Option<Vec<u8>>
    where
        C: CurveArithmetic,
        FieldBytesSize<C>: ModulusSize,
        AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    {
        if s.len() > 32 {
            return None;
        }
        let mut wide = Zeroizing::new([0u8; 32]);
        wide[32 - s.len()..].copy_from_slice(s);
        let k = scalar::<C>(wide.as_slice())?;
        let h = decode::<C>(h)?;
        encode::<C>(&(ProjectivePoint::<C>::generator() * *k + h))
    }
}

impl Curve {
    /// The curve of a standardized domain parameter ID (table 12); `None` if not offered.
    pub fn from_param_id(id: u8) -> Option<Curve> {
        match id {
            PARAM_P256 => Some(Curve::P256),
            PARAM_BP256 => Some(Curve::BrainpoolP256r1),
            _ => None,
        }
    }

    /// A random private key (1 ≤ k < n), 32 bytes big-endian.
    pub fn random_scalar(self) -> Option<Zeroizing<Vec<u8>>> {
        match self {
            Curve::P256 => ec::random_scalar::<p256::NistP256>(),
            Curve::BrainpoolP256r1 => ec::random_scalar::<bp256::BrainpoolP256r1>(),
        }
    }

    /// sk · base (base = the curve's generator when `None`), uncompressed; `None` when sk is
    /// not a valid private key or base not a valid point.
    pub fn mul(self, sk: &[u8], base: Option<&[u8]>) -> Option<Vec<u8>> {
        match self {
            Curve::P256 => ec::mul::<p256::NistP256>(sk, base),
            Curve::BrainpoolP256r1 => ec::mul::<bp256::BrainpoolP256r1>(sk, base),
        }
    }

    /// The generic mapping Ĝ = s·G + H.
    pub fn map_generator(self, s: &[u8], h: &[u8]) -> Option<Vec<u8>> {
        match self {
            Curve::P256 => ec::map::<p256::NistP256>(s, h),
            Curve::BrainpoolP256r1 => ec::map::<bp256::BrainpoolP256r1>(s, h),
        }
    }

    /// Whether `point` is an uncompressed point on the curve other than the identity.
    pub fn is_valid_point(self, point: &[u8]) -> bool {
        match self {
            Curve::P256 => ec::decode::<p256::NistP256>(point).is_some(),
            Curve::BrainpoolP256r1 => ec::decode::<bp256::BrainpoolP256r1>(point).is_some(),
        }
    }
}

/// The x-coordinate of an uncompressed point (the ECDH shared secret, §4.4.3.3).
pub fn x_coordinate(point: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if point.len() != 65 || point[0] != 0x04 {
        return None;
    }
    Some(Zeroizing::new(point[1..33].to_vec()))
}

/// Where the chip's random values come from: the OS generator, or fixed values in tests
/// (the worked example's nonce and ephemeral keys).
pub enum Randomness {
    /// `getrandom`.
    System,
    /// Given values: the nonce s, SK_Map,IC, SK_DH,IC.
    #[cfg(test)]
    Fixed {
        /// The nonce s.
        nonce: Vec<u8>,
        /// SK_Map,IC.
        sk_map: Vec<u8>,
        /// SK_DH,IC.
        sk_dh: Vec<u8>,
    },
}

#[cfg(test)]
thread_local! {
    static NEXT: std::cell::RefCell<Option<Randomness>> = const { std::cell::RefCell::new(None) };
}

impl Randomness {
    /// The randomness of the next PACE run: the system's, or in tests what
    /// [`Randomness::set_next`] left for this thread.
    pub fn for_next_run() -> Randomness {
        #[cfg(test)]
        if let Some(r) = NEXT.with(|n| n.borrow_mut().take()) {
            return r;
        }
        Randomness::System
    }

    /// Tests: the next PACE run on this thread uses `r`.
    #[cfg(test)]
    pub fn set_next(r: Randomness) {
        NEXT.with(|n| *n.borrow_mut() = Some(r));
    }
}

/// Why a PACE step failed: the status word to answer and whether the attempt counts as a
/// failed password (only a wrong terminal token does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceFailure {
    /// Status word.
    pub sw: StatusWord,
    /// Whether mutual authentication failed (wrong password or a forged token).
    pub wrong_token: bool,
}

impl From<StatusWord> for PaceFailure {
    fn from(sw: StatusWord) -> Self {
        PaceFailure {
            sw,
            wrong_token: false,
        }
    }
}

/// Where a PACE run stands (volatile; never in the image).
enum Step {
    /// MSE:Set AT done; next: GENERAL AUTHENTICATE with an empty dynamic authentication data.
    Set,
    /// Encrypted nonce sent; next: the terminal's mapping key.
    NonceSent { s: Zeroizing<Vec<u8>> },
    /// Mapping done; next: the terminal's ephemeral key.
    Mapped { g_hat: Vec<u8> },
    /// Key agreement done; next: the terminal's token.
    Agreed {
        pk_ic: Vec<u8>,
        pk_ifd: Vec<u8>,
        ks_enc: Key16,
        ks_mac: Key16,
    },
}

/// The outcome of a successful PACE: the AES secure-messaging keys (SSC starts at 0, §9.8.7.3).
pub struct PaceKeys {
    /// KS_ENC.
    pub ks_enc: Key16,
    /// KS_MAC.
    pub ks_mac: Key16,
    /// Which password was used.
    pub password: u8,
}

/// One PACE run after MSE:Set AT.
pub struct PaceRun {
    curve: Curve,
    password: u8,
    k_pi: Key16,
    step: Step,
    random: Randomness,
}

/// What MSE:Set AT asked for (Part 11 §4.4.4.1): 80 OID, 83 password reference, [84 parameter
/// ID]. Without 84 the chip takes brainpoolP256r1, the first PACEInfo of EF.CardAccess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetAt {
    /// Password reference (01 MRZ, 02 CAN).
    pub password: u8,
    /// The domain parameters.
    pub curve: Curve,
}

/// Parse the data of MSE:Set AT for PACE. Errors: 6A80 for a malformed template or an
/// unknown protocol, 6A88 for an unknown password reference or parameter ID.
pub fn parse_set_at(data: &[u8]) -> Result<SetAt, StatusWord> {
    let mut oid = None;
    let mut password = None;
    let mut param = None;
    for obj in tlv::parse_all(data)? {
        let slot = match obj.tag {
            0x80 => &mut oid,
            0x83 => &mut password,
            0x84 => &mut param,
            _ => return Err(StatusWord::IncorrectData),
        };
        if slot.replace(obj.value).is_some() {
            return Err(StatusWord::IncorrectData);
        }
    }
    if oid != Some(&OID_PACE_ECDH_GM_AES_128[..]) {
        return Err(StatusWord::IncorrectData);
    }
    let password = match password {
        Some([p @ (PASSWORD_MRZ | PASSWORD_CAN)]) => *p,
        Some([_]) => return Err(StatusWord::ReferenceNotFound),
        _ => return Err(StatusWord::IncorrectData),
    };
    let curve = match param {
        None => Curve::BrainpoolP256r1,
        Some([id]) => Curve::from_param_id(*id).ok_or(StatusWord::ReferenceNotFound)?,
        Some(_) => return Err(StatusWord::IncorrectData),
    };
    Ok(SetAt { password, curve })
}

/// The one data object inside the dynamic authentication data 7C of a GENERAL AUTHENTICATE
/// (Part 11 §4.4.4.2): `Some(value)` of tag `want`, `None` for an empty 7C.
fn dynamic_auth_data(data: &[u8], want: Option<u8>) -> Result<Option<&[u8]>, StatusWord> {
    let inner = tlv::parse_single(data, 0x7C)?;
    match want {
        None if inner.is_empty() => Ok(None),
        None => Err(StatusWord::IncorrectData),
        Some(tag) => {
            let obj = tlv::parse_single(inner, u32::from(tag))?;
            Ok(Some(obj))
        }
    }
}

fn response(tag: u8, value: &[u8]) -> Vec<u8> {
    tlv::encode(0x7C, &tlv::encode(u32::from(tag), value))
}

impl PaceRun {
    /// A run with the password secret (SHA-1 of the MRZ information, or the CAN digits).
    pub fn new(set: SetAt, secret: &[u8], random: Randomness) -> PaceRun {
        PaceRun {
            curve: set.curve,
            password: set.password,
            k_pi: password_key(secret),
            step: Step::Set,
            random,
        }
    }

    fn nonce(&self) -> Option<Zeroizing<Vec<u8>>> {
        match &self.random {
            Randomness::System => {
                let mut s = Zeroizing::new(vec![0u8; 16]);
                getrandom::fill(&mut s).ok()?;
                Some(s)
            }
            #[cfg(test)]
            Randomness::Fixed { nonce, .. } => Some(Zeroizing::new(nonce.clone())),
        }
    }

    fn private_key(&self, mapping: bool) -> Option<Zeroizing<Vec<u8>>> {
        match &self.random {
            Randomness::System => {
                let _which = mapping;
                self.curve.random_scalar()
            }
            #[cfg(test)]
            Randomness::Fixed { sk_map, sk_dh, .. } => Some(Zeroizing::new(if mapping {
                sk_map.clone()
            } else {
                sk_dh.clone()
            })),
        }
    }

    /// Whether the run has not started yet (next: the request for the encrypted nonce).
    pub fn is_fresh(&self) -> bool {
        matches!(self.step, Step::Set)
    }

    /// Whether the run expects the last step (the terminal's token, sent without chaining).
    pub fn expects_token(&self) -> bool {
        matches!(self.step, Step::Agreed { .. })
    }

    /// One GENERAL AUTHENTICATE step. `Ok((data, None))` answers a step, `Ok((data,
    /// Some(keys)))` ends PACE successfully. On `Err` the caller drops the run.
    pub fn step(&mut self, data: &[u8]) -> Result<(Vec<u8>, Option<PaceKeys>), PaceFailure> {
        let fail = |sw: StatusWord| PaceFailure {
            sw,
            wrong_token: false,
        };
        let step = std::mem::replace(&mut self.step, Step::Set);
        match step {
            Step::Set => {
                dynamic_auth_data(data, None)?;
                let s = self.nonce().ok_or(fail(StatusWord::NoPreciseDiagnosis))?;
                let z =
                    aes_cbc_encrypt(&self.k_pi, &s).ok_or(fail(StatusWord::NoPreciseDiagnosis))?;
                self.step = Step::NonceSent { s };
                Ok((response(0x80, &z), None))
            }
            Step::NonceSent { s } => {
                let pk_map_ifd = dynamic_auth_data(data, Some(0x81))?.unwrap_or_default();
                if !self.curve.is_valid_point(pk_map_ifd) {
                    return Err(fail(StatusWord::IncorrectData));
                }
                let sk_map = self
                    .private_key(true)
                    .ok_or(fail(StatusWord::NoPreciseDiagnosis))?;
                let pk_map_ic = self
                    .curve
                    .mul(&sk_map, None)
                    .ok_or(fail(StatusWord::NoPreciseDiagnosis))?;
                // The terminal must not echo our mapping key (§4.4.4.2 note on PK checks).
                if pk_map_ic == pk_map_ifd {
                    return Err(fail(StatusWord::IncorrectData));
                }
                let h = self
                    .curve
                    .mul(&sk_map, Some(pk_map_ifd))
                    .ok_or(fail(StatusWord::IncorrectData))?;
                let g_hat = self
                    .curve
                    .map_generator(&s, &h)
                    .ok_or(fail(StatusWord::IncorrectData))?;
                self.step = Step::Mapped { g_hat };
                Ok((response(0x82, &pk_map_ic), None))
            }
            Step::Mapped { g_hat } => {
                let pk_ifd = dynamic_auth_data(data, Some(0x83))?.unwrap_or_default();
                if !self.curve.is_valid_point(pk_ifd) {
                    return Err(fail(StatusWord::IncorrectData));
                }
                let sk_dh = self
                    .private_key(false)
                    .ok_or(fail(StatusWord::NoPreciseDiagnosis))?;
                let pk_ic = self
                    .curve
                    .mul(&sk_dh, Some(&g_hat))
                    .ok_or(fail(StatusWord::NoPreciseDiagnosis))?;
                // §4.4.4.2: the chip SHALL check that its and the terminal's ephemeral public
                // keys differ.
                if pk_ic == pk_ifd {
                    return Err(fail(StatusWord::IncorrectData));
                }
                let k_point = self
                    .curve
                    .mul(&sk_dh, Some(pk_ifd))
                    .ok_or(fail(StatusWord::IncorrectData))?;
                let k = x_coordinate(&k_point).ok_or(fail(StatusWord::IncorrectData))?;
                let ks_enc = kdf_aes128(&k, KDF_ENC);
                let ks_mac = kdf_aes128(&k, KDF_MAC);
                let answer = response(0x84, &pk_ic);
                self.step = Step::Agreed {
                    pk_ic,
                    pk_ifd: pk_ifd.to_vec(),
                    ks_enc,
                    ks_mac,
                };
                Ok((answer, None))
            }
            Step::Agreed {
                pk_ic,
                pk_ifd,
                ks_enc,
                ks_mac,
            } => {
                let t_ifd = dynamic_auth_data(data, Some(0x85))?.unwrap_or_default();
                let expected = auth_token(&ks_mac, &pk_ic);
                if !crate::bac::ct_eq(&expected, t_ifd) {
                    return Err(PaceFailure {
                        sw: StatusWord::AuthenticationFailed,
                        wrong_token: true,
                    });
                }
                let t_ic = auth_token(&ks_mac, &pk_ifd);
                Ok((
                    response(0x86, &t_ic),
                    Some(PaceKeys {
                        ks_enc,
                        ks_mac,
                        password: self.password,
                    }),
                ))
            }
        }
    }
}

/// How long the chip waits before it answers the first GENERAL AUTHENTICATE of a PACE run,
/// given the number of consecutive PACE runs that were started and not completed
/// successfully (docs/lds.md, "Guessing the CAN"): none for the first two, then 250 ms
/// doubling per further failure, at most 30 s.
pub fn guess_delay(failures: u32) -> std::time::Duration {
    const BASE_MS: u64 = 250;
    const MAX_MS: u64 = 30_000;
    if failures < 3 {
        return std::time::Duration::ZERO;
    }
    let shift = (failures - 3).min(16);
    std::time::Duration::from_millis((BASE_MS << shift).min(MAX_MS))
}

#[path = "pace_ca.rs"]
pub mod ca;

#[cfg(test)]
#[path = "pace_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "pace_card_tests.rs"]
mod card_tests;
