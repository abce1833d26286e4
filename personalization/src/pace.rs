//! PACE, reader side (ICAO Doc 9303 Part 11 §4.4), and AES secure messaging (§9.8.7), written
//! from the standard independently of the chip crate.
//!
//! - EF.CardAccess (§9.2, read before any access control): the PACEInfos the chip offers; this
//!   reader speaks id-PACE-ECDH-GM-AES-CBC-CMAC-128 (0.4.0.127.0.7.2.2.4.2.2) on
//!   brainpoolP256r1 (standardized domain parameter 13) and NIST P-256 (12), preferring 13;
//! - passwords (§9.7.3): the CAN as its ASCII digits, the MRZ as K = SHA-1(MRZ information);
//!   K_π = KDF(K, 3);
//! - MSE:Set AT (§4.4.4.1), then GENERAL AUTHENTICATE ×4 (§4.4.4.2): decrypt the nonce s with
//!   K_π; generic mapping Ĝ = s·G + SK_Map,IFD·PK_Map,IC (§4.4.3.3.1); ephemeral key
//!   agreement on Ĝ; KS_ENC = KDF(x, 1), KS_MAC = KDF(x, 2) (§9.7.1, SHA-1 for AES-128);
//!   tokens T = CMAC(KS_MAC, 7F49{06 OID, 86 PK})[0..8] checked both ways;
//! - AES secure messaging: SSC of 16 bytes starting at 0, IV = AES(KS_ENC, SSC), CMAC-8 over
//!   the padded MAC input; a response that fails any check ends the session.
//!
//! [`IcaoReader::open`] opens the ICAO application with PACE (CAN or MRZ) or BAC and reads its
//! files. Keys and passwords live in zeroizing buffers and never reach `Debug`, logs or errors.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit};
use cmac::Mac;
use p256::elliptic_curve::group::{Curve as _, Group};
use p256::elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use p256::elliptic_curve::{
    AffinePoint, CurveArithmetic, FieldBytes, FieldBytesSize, NonZeroScalar, ProjectivePoint,
};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::apdu::{Channel, Command};
use crate::bac::{BacKeys, BacReader, SmSession, LDS1_AID};
use crate::status::StatusWord;
use crate::tlv;
use crate::{Error, Result};

/// id-PACE-ECDH-GM-AES-CBC-CMAC-128 (Part 11 §9.2.1), DER contents octets.
pub const ID_PACE_ECDH_GM_AES_CBC_CMAC_128: [u8; 10] =
    [0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04, 0x02, 0x02];
/// Standardized domain parameters (Part 11 table 12): NIST P-256.
pub const PARAM_ID_P256: u8 = 0x0C;
/// Standardized domain parameters: brainpoolP256r1.
pub const PARAM_ID_BRAINPOOL_P256R1: u8 = 0x0D;
/// EF.CardAccess, short EF identifier 1C.
pub const SFI_CARD_ACCESS: u8 = 0x1C;

fn pace_err(rule: impl Into<String>) -> Error {
    // The crate's access-control error (it names BAC in its message's field; PACE shares it).
    Error::Bac {
        rule: format!("PACE: {}", rule.into()),
    }
}

fn sm_err(rule: impl Into<String>) -> Error {
    Error::Bac {
        rule: format!("AES secure messaging: {}", rule.into()),
    }
}

/// A PACE password (§4.4.1).
pub enum Password {
    /// The card access number printed on the card: six decimal digits.
    Can(Zeroizing<String>),
    /// The MRZ information: document number ‖ check digit ‖ birth date ‖ check digit ‖
    /// expiry date ‖ check digit (as for BAC, Part 11 §9.7.2).
    Mrz(Zeroizing<String>),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Password::Can(_) => "Password::Can(..)",
            Password::Mrz(_) => "Password::Mrz(..)",
        })
    }
}

impl Password {
    /// A CAN; refused unless it is exactly six ASCII digits.
    pub fn can(can: &str) -> Result<Password> {
        if can.len() != 6 || !can.bytes().all(|b| b.is_ascii_digit()) {
            return Err(pace_err("the CAN must be exactly 6 decimal digits"));
        }
        Ok(Password::Can(Zeroizing::new(can.to_string())))
    }

    /// The MRZ password from the MRZ information.
    pub fn mrz(mrz_information: &str) -> Password {
        Password::Mrz(Zeroizing::new(mrz_information.to_string()))
    }

    /// The password reference of MSE:Set AT (tag 83): 01 MRZ, 02 CAN.
    pub fn reference(&self) -> u8 {
        match self {
            Password::Mrz(_) => 0x01,
            Password::Can(_) => 0x02,
        }
    }

    /// K (§9.7.3): the CAN's ASCII digits, or SHA-1 of the MRZ information.
    pub fn secret(&self) -> Zeroizing<Vec<u8>> {
        match self {
            Password::Can(c) => Zeroizing::new(c.as_bytes().to_vec()),
            Password::Mrz(m) => Zeroizing::new(Sha1::digest(m.as_bytes()).to_vec()),
        }
    }
}

/// KDF for 128-bit AES keys (§9.7.1): SHA-1(K ‖ counter)[0..16].
pub fn kdf128(k: &[u8], counter: u32) -> Zeroizing<[u8; 16]> {
    let d = Sha1::new()
        .chain_update(k)
        .chain_update(counter.to_be_bytes())
        .finalize();
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&d[..16]);
    out
}

/// AES-CMAC (SP 800-38B) of `data`, first 8 bytes.
pub fn cmac8(key: &[u8; 16], data: &[u8]) -> [u8; 8] {
    let mut m = <cmac::Cmac<aes::Aes128> as KeyInit>::new(&(*key).into());
    m.update(data);
    let t = m.finalize().into_bytes();
    let mut out = [0u8; 8];
    out.copy_from_slice(&t[..8]);
    out
}

fn aes_cbc(key: &[u8; 16], iv: &[u8; 16], data: &[u8], encrypt: bool) -> Result<Vec<u8>> {
    if data.is_empty() || !data.len().is_multiple_of(16) {
        return Err(sm_err(format!(
            "cryptogram of {} bytes is not a whole number of AES blocks",
            data.len()
        )));
    }
    if encrypt {
        Ok(
            cbc::Encryptor::<aes::Aes128>::new(&(*key).into(), &(*iv).into())
                .encrypt_padded_vec::<NoPadding>(data),
        )
    } else {
        cbc::Decryptor::<aes::Aes128>::new(&(*key).into(), &(*iv).into())
            .decrypt_padded_vec::<NoPadding>(data)
            .map_err(|_| sm_err("AES-CBC decryption failed"))
    }
}

/// The PACE authentication token over the other party's ephemeral public key (§4.4.3.4):
/// CMAC(KS_MAC, 7F49 { 06 OID, 86 point })[0..8].
pub fn token(ks_mac: &[u8; 16], point: &[u8]) -> [u8; 8] {
    cmac8(ks_mac, &token_input(point))
}

/// The input of [`token`] (§9.4.5 / §4.4.3.4).
pub fn token_input(point: &[u8]) -> Vec<u8> {
    let mut inner = tlv::encode(0x06, &ID_PACE_ECDH_GM_AES_CBC_CMAC_128);
    inner.extend(tlv::encode(0x86, point));
    tlv::encode(0x7F49, &inner)
}

/// An elliptic-curve domain of PACE, with RustCrypto doing the arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// brainpoolP256r1 (parameter ID 13).
    BrainpoolP256r1,
    /// NIST P-256 (parameter ID 12).
    P256,
}

fn point_of<C>(bytes: &[u8]) -> Option<ProjectivePoint<C>>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    // Uncompressed only (Part 11 §9.4.5 "ECDH public point" 86 is an uncompressed point).
    if bytes.first() != Some(&0x04) {
        return None;
    }
    let p: ProjectivePoint<C> = AffinePoint::<C>::from_sec1_bytes(bytes).ok()?.into();
    (!bool::from(p.is_identity())).then_some(p)
}

fn bytes_of<C>(p: ProjectivePoint<C>) -> Option<Vec<u8>>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    (!bool::from(p.is_identity())).then(|| p.to_affine().to_sec1_point(false).as_bytes().to_vec())
}

fn scalar_of<C: CurveArithmetic>(bytes: &[u8]) -> Option<NonZeroScalar<C>> {
    let mut wide = Zeroizing::new([0u8; 32]);
    if bytes.len() > 32 {
        return None;
    }
    wide[32 - bytes.len()..].copy_from_slice(bytes);
    let repr = FieldBytes::<C>::try_from(&wide[..]).ok()?;
    NonZeroScalar::<C>::from_repr(repr).into_option()
}

/// `k · P` (P = the domain's generator if `p` is `None`), uncompressed.
fn multiply<C>(k: &[u8], p: Option<&[u8]>) -> Option<Vec<u8>>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let k = scalar_of::<C>(k)?;
    let base = match p {
        Some(b) => point_of::<C>(b)?,
        None => ProjectivePoint::<C>::generator(),
    };
    bytes_of::<C>(base * *k)
}

/// `s·G + H`.
fn generic_map<C>(s: &[u8], h: &[u8]) -> Option<Vec<u8>>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let s = scalar_of::<C>(s)?;
    let h = point_of::<C>(h)?;
    bytes_of::<C>(ProjectivePoint::<C>::generator() * *s + h)
}

impl Domain {
    /// The domain of a standardized parameter ID, if this reader speaks it.
    pub fn from_id(id: u8) -> Option<Domain> {
        match id {
            PARAM_ID_BRAINPOOL_P256R1 => Some(Domain::BrainpoolP256r1),
            PARAM_ID_P256 => Some(Domain::P256),
            _ => None,
        }
    }

    /// Its parameter ID.
    pub fn id(self) -> u8 {
        match self {
            Domain::BrainpoolP256r1 => PARAM_ID_BRAINPOOL_P256R1,
            Domain::P256 => PARAM_ID_P256,
        }
    }

    /// `k · P` (P = generator when `None`); `None` if `k` or `P` is not valid on this curve.
    pub fn multiply(self, k: &[u8], p: Option<&[u8]>) -> Option<Vec<u8>> {
        match self {
            Domain::BrainpoolP256r1 => multiply::<bp256::BrainpoolP256r1>(k, p),
            Domain::P256 => multiply::<p256::NistP256>(k, p),
        }
    }

    /// The generic mapping's Ĝ = s·G + H.
    pub fn map(self, s: &[u8], h: &[u8]) -> Option<Vec<u8>> {
        match self {
            Domain::BrainpoolP256r1 => generic_map::<bp256::BrainpoolP256r1>(s, h),
            Domain::P256 => generic_map::<p256::NistP256>(s, h),
        }
    }

    /// A fresh private key.
    pub fn private_key(self) -> Result<Zeroizing<Vec<u8>>> {
        for _ in 0..64 {
            let mut k = Zeroizing::new(vec![0u8; 32]);
            getrandom::fill(&mut k).map_err(|e| pace_err(format!("random generator: {e}")))?;
            if self.multiply(&k, None).is_some() {
                return Ok(k);
            }
        }
        Err(pace_err("random generator gave no valid private key"))
    }
}

/// One PACEInfo of EF.CardAccess (§9.2.1): protocol OID, version, parameter ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaceInfo {
    /// The protocol OID (DER contents).
    pub protocol: Vec<u8>,
    /// Version (2).
    pub version: u32,
    /// Standardized domain parameter ID, if present.
    pub parameter_id: Option<u32>,
}

fn der_uint(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 4 || v[0] & 0x80 != 0 {
        return None;
    }
    Some(v.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)))
}

/// The PACEInfos of EF.CardAccess (SecurityInfos, a SET OF SecurityInfo); other
/// SecurityInfos are skipped.
pub fn parse_card_access(ef: &[u8]) -> Result<Vec<PaceInfo>> {
    let bad = |d: &str| pace_err(format!("EF.CardAccess: {d}"));
    let set = tlv::expect_single(ef, 0x31).map_err(|_| bad("not a SET OF SecurityInfo"))?;
    let mut out = Vec::new();
    for info in tlv::parse_all(set).map_err(|_| bad("malformed SecurityInfo"))? {
        if info.tag != 0x30 {
            return Err(bad("SecurityInfo is not a SEQUENCE"));
        }
        let fields = tlv::parse_all(info.value).map_err(|_| bad("malformed SecurityInfo"))?;
        let Some(oid) = fields.first().filter(|f| f.tag == 0x06) else {
            return Err(bad("SecurityInfo without protocol OID"));
        };
        // id-PACE = 0.4.0.127.0.7.2.2.4
        if !oid
            .value
            .starts_with(&ID_PACE_ECDH_GM_AES_CBC_CMAC_128[..8])
        {
            continue;
        }
        let version = fields
            .get(1)
            .filter(|f| f.tag == 0x02)
            .and_then(|f| der_uint(f.value))
            .ok_or_else(|| bad("PACEInfo without an INTEGER version"))?;
        let parameter_id = match fields.get(2) {
            None => None,
            Some(f) if f.tag == 0x02 => {
                Some(der_uint(f.value).ok_or_else(|| bad("PACEInfo parameterId"))?)
            }
            Some(_) => return Err(bad("PACEInfo parameterId is not an INTEGER")),
        };
        out.push(PaceInfo {
            protocol: oid.value.to_vec(),
            version,
            parameter_id,
        });
    }
    Ok(out)
}

/// The domain this reader picks from the chip's PACEInfos: ECDH-GM-AES-128, version 2,
/// brainpoolP256r1 if offered, else P-256.
pub fn choose_domain(infos: &[PaceInfo]) -> Result<Domain> {
    let offered: Vec<Domain> = infos
        .iter()
        .filter(|i| i.protocol == ID_PACE_ECDH_GM_AES_CBC_CMAC_128 && i.version == 2)
        .filter_map(|i| i.parameter_id.and_then(|p| u8::try_from(p).ok()))
        .filter_map(Domain::from_id)
        .collect();
    [Domain::BrainpoolP256r1, Domain::P256]
        .into_iter()
        .find(|d| offered.contains(d))
        .ok_or_else(|| {
            pace_err(
                "EF.CardAccess offers no id-PACE-ECDH-GM-AES-CBC-CMAC-128 with parameter 12 or 13",
            )
        })
}

/// The terminal's ephemeral keys for one run (random, or the worked example's in tests).
pub struct EphemeralKeys {
    /// SK_Map,IFD.
    pub mapping: Zeroizing<Vec<u8>>,
    /// SK_DH,IFD.
    pub agreement: Zeroizing<Vec<u8>>,
}

impl EphemeralKeys {
    /// Fresh random keys.
    pub fn random(domain: Domain) -> Result<EphemeralKeys> {
        Ok(EphemeralKeys {
            mapping: domain.private_key()?,
            agreement: domain.private_key()?,
        })
    }
}

/// What a completed PACE establishes.
#[derive(Debug)]
pub struct PaceOutcome {
    /// The AES secure-messaging session (SSC 0).
    pub session: AesSession,
    /// The chip's ephemeral public key PK_DH,IC (Chip Authentication binds to it).
    pub chip_ephemeral: Vec<u8>,
}

fn ga(
    ch: &mut Channel<'_>,
    name: &'static str,
    last: bool,
    tag: u8,
    value: &[u8],
) -> Result<(StatusWord, Vec<u8>)> {
    let inner = if value.is_empty() && tag == 0 {
        Vec::new()
    } else {
        tlv::encode(u32::from(tag), value)
    };
    let data = tlv::encode(0x7C, &inner);
    if data.len() > 255 {
        return Err(pace_err(
            "GENERAL AUTHENTICATE data longer than a short APDU",
        ));
    }
    let mut apdu = vec![
        if last { 0x00 } else { 0x10 },
        0x86,
        0x00,
        0x00,
        data.len() as u8,
    ];
    apdu.extend_from_slice(&data);
    apdu.push(0x00);
    let r = ch.exchange_short(name, &apdu)?;
    Ok((r.sw, r.data))
}

/// The one data object `want` inside a GENERAL AUTHENTICATE answer 7C.
fn answer_object(name: &'static str, data: &[u8], want: u8) -> Result<Vec<u8>> {
    let malformed = |d: String| Error::Malformed {
        command: name,
        detail: d,
    };
    let inner = tlv::expect_single(data, 0x7C)
        .map_err(|_| malformed("not a dynamic authentication data object 7C".into()))?;
    let v = tlv::expect_single(inner, u32::from(want)).map_err(|_| {
        malformed(format!(
            "7C does not hold exactly one data object {want:02X}"
        ))
    })?;
    Ok(v.to_vec())
}

/// Runs PACE (MSE:Set AT and the four GENERAL AUTHENTICATE steps) with `password` on
/// `domain`. The ICAO application must be selected. A wrong password fails with an error
/// that names the mutual authentication step and the status word.
pub fn establish(
    ch: &mut Channel<'_>,
    password: &Password,
    domain: Domain,
    keys: &EphemeralKeys,
) -> Result<PaceOutcome> {
    // MSE:Set AT: 80 OID, 83 password reference, 84 parameter ID.
    let mut at = tlv::encode(0x80, &ID_PACE_ECDH_GM_AES_CBC_CMAC_128);
    at.extend(tlv::encode(0x83, &[password.reference()]));
    at.extend(tlv::encode(0x84, &[domain.id()]));
    ch.ok(&Command::new("MSE:Set AT (PACE)", 0x22, 0xC1, 0xA4, at))?;

    // Step 1: the encrypted nonce z; s = D(K_π, z).
    const STEP1: &str = "GENERAL AUTHENTICATE (PACE encrypted nonce)";
    let (sw, data) = ga(ch, STEP1, false, 0, &[])?;
    crate::apdu::check(STEP1, sw)?;
    let z = answer_object(STEP1, &data, 0x80)?;
    if z.len() != 16 {
        return Err(Error::Malformed {
            command: STEP1,
            detail: format!(
                "encrypted nonce of {} bytes, expected one AES block",
                z.len()
            ),
        });
    }
    let k_pi = kdf128(&password.secret(), 3);
    let s = Zeroizing::new(aes_cbc(&k_pi, &[0u8; 16], &z, false)?);

    // Step 2: mapping.
    const STEP2: &str = "GENERAL AUTHENTICATE (PACE mapping)";
    let pk_map_ifd = domain
        .multiply(&keys.mapping, None)
        .ok_or_else(|| pace_err("invalid mapping key"))?;
    let (sw, data) = ga(ch, STEP2, false, 0x81, &pk_map_ifd)?;
    crate::apdu::check(STEP2, sw)?;
    let pk_map_ic = answer_object(STEP2, &data, 0x82)?;
    if pk_map_ic == pk_map_ifd {
        return Err(pace_err("the chip echoed our mapping key"));
    }
    let h = domain
        .multiply(&keys.mapping, Some(&pk_map_ic))
        .ok_or_else(|| pace_err("the chip's mapping key is not a point of the curve"))?;
    let g_hat = domain
        .map(&s, &h)
        .ok_or_else(|| pace_err("the mapped generator is the point at infinity"))?;

    // Step 3: key agreement on Ĝ.
    const STEP3: &str = "GENERAL AUTHENTICATE (PACE key agreement)";
    let pk_ifd = domain
        .multiply(&keys.agreement, Some(&g_hat))
        .ok_or_else(|| pace_err("invalid ephemeral key"))?;
    let (sw, data) = ga(ch, STEP3, false, 0x83, &pk_ifd)?;
    crate::apdu::check(STEP3, sw)?;
    let pk_ic = answer_object(STEP3, &data, 0x84)?;
    if pk_ic == pk_ifd {
        return Err(pace_err("the chip echoed our ephemeral key"));
    }
    let shared = domain
        .multiply(&keys.agreement, Some(&pk_ic))
        .ok_or_else(|| pace_err("the chip's ephemeral key is not a point of the curve"))?;
    let x = Zeroizing::new(shared[1..33].to_vec());
    let ks_enc = kdf128(&x, 1);
    let ks_mac = kdf128(&x, 2);

    // Step 4: mutual authentication.
    const STEP4: &str = "GENERAL AUTHENTICATE (PACE mutual authentication)";
    let (sw, data) = ga(ch, STEP4, true, 0x85, &token(&ks_mac, &pk_ic))?;
    if sw != StatusWord::Ok {
        return Err(pace_err(format!(
            "mutual authentication refused by the card ({sw}): wrong {} or no such password on the card",
            match password {
                Password::Can(_) => "CAN",
                Password::Mrz(_) => "MRZ",
            }
        )));
    }
    let t_ic = answer_object(STEP4, &data, 0x86)?;
    if !ct_eq(&t_ic, &token(&ks_mac, &pk_ifd)) {
        return Err(pace_err(
            "the chip's authentication token T_IC does not verify: not a genuine PACE chip",
        ));
    }
    Ok(PaceOutcome {
        session: AesSession::new(*ks_enc, *ks_mac),
        chip_ephemeral: pk_ic,
    })
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// ISO/IEC 9797-1 padding method 2 to 16-byte blocks.
fn pad16(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 16);
    v.extend_from_slice(data);
    v.push(0x80);
    while !v.len().is_multiple_of(16) {
        v.push(0);
    }
    v
}

/// An AES-128 secure-messaging session (§9.8.7).
pub struct AesSession {
    ks_enc: Zeroizing<[u8; 16]>,
    ks_mac: Zeroizing<[u8; 16]>,
    ssc: u128,
}

impl std::fmt::Debug for AesSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesSession(..)")
    }
}

impl AesSession {
    /// A session with SSC = 0 (§9.8.7.3: after PACE and after Chip Authentication).
    pub fn new(ks_enc: [u8; 16], ks_mac: [u8; 16]) -> AesSession {
        AesSession {
            ks_enc: Zeroizing::new(ks_enc),
            ks_mac: Zeroizing::new(ks_mac),
            ssc: 0,
        }
    }

    /// The send sequence counter.
    pub fn ssc(&self) -> u128 {
        self.ssc
    }

    fn iv(&self) -> [u8; 16] {
        let mut b = self.ssc.to_be_bytes().into();
        aes::Aes128::new(&(*self.ks_enc).into()).encrypt_block(&mut b);
        b.into()
    }

    /// Protects a command: SSC + 1, DO'87' (01 ‖ AES-CBC), DO'97', DO'8E'. Returns the short
    /// C-APDU.
    pub fn protect(
        &mut self,
        ins: u8,
        p1: u8,
        p2: u8,
        data: &[u8],
        le: Option<u8>,
    ) -> Result<Vec<u8>> {
        self.ssc = self.ssc.wrapping_add(1);
        let header = [0x0C, ins, p1, p2];
        let mut body = Vec::new();
        if !data.is_empty() {
            let mut v = vec![0x01];
            v.extend(aes_cbc(&self.ks_enc, &self.iv(), &pad16(data), true)?);
            body.extend(tlv::encode(0x87, &v));
        }
        if let Some(le) = le {
            body.extend_from_slice(&[0x97, 0x01, le]);
        }
        let mut n = self.ssc.to_be_bytes().to_vec();
        n.extend(pad16(&header));
        n.extend_from_slice(&body);
        let mac = cmac8(&self.ks_mac, &pad16(&n));
        body.extend_from_slice(&[0x8E, 0x08]);
        body.extend_from_slice(&mac);
        if body.len() > 255 {
            return Err(sm_err("protected command longer than a short APDU"));
        }
        let mut apdu = header.to_vec();
        apdu.push(body.len() as u8);
        apdu.extend(body);
        apdu.push(0x00);
        Ok(apdu)
    }

    /// Verifies and opens a protected response (without SW1 SW2): SSC + 1, DO'87', DO'99',
    /// DO'8E' in this order, the MAC last. Returns the data and the status word of DO'99'.
    pub fn unprotect(&mut self, body: &[u8], outer: StatusWord) -> Result<(Vec<u8>, StatusWord)> {
        self.ssc = self.ssc.wrapping_add(1);
        if body.is_empty() {
            return Err(sm_err(format!(
                "the card answered {outer} without secure-messaging objects (session ended)"
            )));
        }
        let objects =
            tlv::parse_all(body).map_err(|_| sm_err("malformed response data objects"))?;
        let order: Vec<u32> = objects.iter().map(|o| o.tag).collect();
        let (do87, do99) = match order[..] {
            [0x87, 0x99, 0x8E] => (Some(objects[0].value), objects[1].value),
            [0x99, 0x8E] => (None, objects[0].value),
            _ => {
                return Err(sm_err(format!(
                    "response data objects {order:02X?}: expected [87] 99 8E in this order"
                )))
            }
        };
        let mac = objects[objects.len() - 1].value;
        let mac_input_len = body.len() - 2 - mac.len();
        if body[mac_input_len..mac_input_len + 2] != [0x8E, 0x08] {
            return Err(sm_err("DO'8E' must hold 8 bytes in the short length form"));
        }
        let mut k = self.ssc.to_be_bytes().to_vec();
        k.extend_from_slice(&body[..mac_input_len]);
        if !ct_eq(&cmac8(&self.ks_mac, &pad16(&k)), mac) {
            return Err(sm_err("response MAC (DO'8E') does not verify"));
        }
        let sw = match do99 {
            [a, b] => StatusWord::from_bytes(*a, *b),
            _ => return Err(sm_err("DO'99' must hold 2 bytes")),
        };
        let data = match do87 {
            None => Vec::new(),
            Some(v) => {
                let (&ind, ct) = v.split_first().ok_or_else(|| sm_err("empty DO'87'"))?;
                if ind != 0x01 {
                    return Err(sm_err(format!(
                        "DO'87' padding indicator {ind:02X}, expected 01"
                    )));
                }
                let plain =
                    Zeroizing::new(aes_cbc(&self.ks_enc, &self.iv_for_response(), ct, false)?);
                let end = plain
                    .iter()
                    .rposition(|&b| b != 0)
                    .filter(|&i| plain[i] == 0x80 && plain.len() - i <= 16)
                    .ok_or_else(|| {
                        sm_err("DO'87' plaintext lacks padding method 2 in its last block")
                    })?;
                plain[..end].to_vec()
            }
        };
        Ok((data, sw))
    }

    /// The response's IV uses the SSC as incremented for the response.
    fn iv_for_response(&self) -> [u8; 16] {
        self.iv()
    }
}

/// How to open the ICAO application. `Debug` names the method only, never the password.
pub enum Access {
    /// PACE with the CAN.
    PaceCan(Password),
    /// PACE with the MRZ.
    PaceMrz(Password),
    /// Basic Access Control with the MRZ information.
    Bac(Zeroizing<String>),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Access::{}(..)", self.name())
    }
}

impl Access {
    /// PACE with a CAN (six digits).
    pub fn can(can: &str) -> Result<Access> {
        Ok(Access::PaceCan(Password::can(can)?))
    }

    /// PACE with the MRZ.
    pub fn pace_mrz(mrz_information: &str) -> Access {
        Access::PaceMrz(Password::mrz(mrz_information))
    }

    /// BAC.
    pub fn bac(mrz_information: &str) -> Access {
        Access::Bac(Zeroizing::new(mrz_information.to_string()))
    }

    /// Name for reports ("PACE-CAN", "PACE-MRZ", "BAC").
    pub fn name(&self) -> &'static str {
        match self {
            Access::PaceCan(_) => "PACE-CAN",
            Access::PaceMrz(_) => "PACE-MRZ",
            Access::Bac(_) => "BAC",
        }
    }
}

enum Session {
    Aes(AesSession),
    Tdes(SmSession),
}

/// A reader of the ICAO application over an established secure-messaging session.
pub struct IcaoReader<'c, 't> {
    channel: &'c mut Channel<'t>,
    session: Session,
    domain: Option<Domain>,
}

/// Largest READ BINARY chunk (a protected answer stays a short R-APDU, as with BAC).
pub const READ_CHUNK: usize = crate::bac::READ_CHUNK;

/// Reads EF.CardAccess in plain (SELECT of the ICAO application first).
pub fn read_card_access(ch: &mut Channel<'_>) -> Result<Vec<u8>> {
    ch.ok(&Command::new(
        "SELECT LDS1",
        0xA4,
        0x04,
        0x0C,
        LDS1_AID.to_vec(),
    ))?;
    let r = ch.exchange_short(
        "READ BINARY EF.CardAccess",
        &[0x00, 0xB0, 0x80 | SFI_CARD_ACCESS, 0x00, 0x00],
    )?;
    match r.sw {
        StatusWord::Ok => Ok(r.data),
        sw => Err(pace_err(format!(
            "EF.CardAccess not readable ({sw}): the card offers no PACE"
        ))),
    }
}

impl<'c, 't> IcaoReader<'c, 't> {
    /// Selects the ICAO application and opens it: PACE reads EF.CardAccess, picks the domain
    /// ([`choose_domain`]) and runs [`establish`] with fresh keys; BAC runs
    /// [`BacReader::open`]. Then SELECTs the application again inside secure messaging (§4.2).
    pub fn open(channel: &'c mut Channel<'t>, access: &Access) -> Result<Self> {
        let password = match access {
            Access::Bac(mrz) => {
                let keys = BacKeys::from_mrz_information(mrz);
                let session = BacReader::open(channel, &keys)?.into_session();
                return Ok(Self {
                    channel,
                    session: Session::Tdes(session),
                    domain: None,
                });
            }
            Access::PaceCan(p) | Access::PaceMrz(p) => p,
        };
        let infos = parse_card_access(&read_card_access(channel)?)?;
        let domain = choose_domain(&infos)?;
        let keys = EphemeralKeys::random(domain)?;
        let outcome = establish(channel, password, domain, &keys)?;
        let mut reader = Self {
            channel,
            session: Session::Aes(outcome.session),
            domain: Some(domain),
        };
        reader.select_application()?;
        Ok(reader)
    }

    /// The PACE domain used (None after BAC).
    pub fn domain(&self) -> Option<Domain> {
        self.domain
    }

    fn transmit(
        &mut self,
        name: &'static str,
        ins: u8,
        p1: u8,
        p2: u8,
        data: &[u8],
        le: Option<u8>,
    ) -> Result<(Vec<u8>, StatusWord)> {
        let apdu = match &mut self.session {
            Session::Aes(s) => s.protect(ins, p1, p2, data, le)?,
            Session::Tdes(s) => s.protect(ins, p1, p2, data, le)?,
        };
        let r = self.channel.exchange_short(name, &apdu)?;
        match &mut self.session {
            Session::Aes(s) => s.unprotect(&r.data, r.sw),
            Session::Tdes(s) => s.unprotect(&r.data, r.sw),
        }
    }

    /// SELECT of the ICAO application inside secure messaging.
    pub fn select_application(&mut self) -> Result<()> {
        let (_, sw) = self.transmit("SELECT LDS1 (SM)", 0xA4, 0x04, 0x0C, &LDS1_AID, None)?;
        crate::apdu::check("SELECT LDS1 (SM)", sw)
    }

    /// SELECT EF inside secure messaging.
    pub fn select_ef(&mut self, fid: u16) -> Result<()> {
        let (_, sw) =
            self.transmit("SELECT EF (SM)", 0xA4, 0x02, 0x0C, &fid.to_be_bytes(), None)?;
        crate::apdu::check("SELECT EF (SM)", sw)
    }

    /// READ BINARY of `len` bytes (≤ [`READ_CHUNK`]) at `offset` inside secure messaging.
    pub fn read_binary(&mut self, offset: u16, len: u8) -> Result<Vec<u8>> {
        if offset > 0x7FFF {
            return Err(sm_err("READ BINARY offset beyond 32767"));
        }
        let (data, sw) = self.transmit(
            "READ BINARY (SM)",
            0xB0,
            (offset >> 8) as u8,
            offset as u8,
            &[],
            Some(len),
        )?;
        crate::apdu::check("READ BINARY (SM)", sw)?;
        Ok(data)
    }

    /// Reads a whole EF (its BER-TLV header gives the length).
    pub fn read_ef(&mut self, fid: u16) -> Result<Vec<u8>> {
        self.select_ef(fid)?;
        let head = self.read_binary(0, 4)?;
        let total = tlv::total_len(&head).ok_or_else(|| Error::Malformed {
            command: "READ BINARY (SM)",
            detail: format!("EF {fid:04X} does not start with a BER-TLV header"),
        })?;
        if total > 0x7FFF {
            return Err(sm_err(format!(
                "EF {fid:04X} claims {total} bytes (max 32767)"
            )));
        }
        let mut out = head;
        out.truncate(total);
        while out.len() < total {
            let n = (total - out.len()).min(READ_CHUNK);
            let chunk = self.read_binary(out.len() as u16, n as u8)?;
            if chunk.is_empty() {
                return Err(Error::Malformed {
                    command: "READ BINARY (SM)",
                    detail: format!("EF {fid:04X} ended at {} of {total} bytes", out.len()),
                });
            }
            out.extend_from_slice(&chunk);
        }
        out.truncate(total);
        Ok(out)
    }
}

#[path = "pace_ca.rs"]
pub mod ca;

#[path = "pace_inspect.rs"]
pub mod inspect;

#[cfg(test)]
#[path = "pace_tests.rs"]
mod tests;
