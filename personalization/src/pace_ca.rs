//! Chip Authentication and Active Authentication, reader side (ICAO Doc 9303 Part 11 §6.2,
//! §6.1), and the data groups that carry their public keys (Part 10 §4.7.14 DG14, §4.7.15
//! DG15), written from the standard independently of the chip crate.
//!
//! - the keys are generated on the chip during personalization (GENERATE ASYMMETRIC KEY PAIR,
//!   INS 46, P2 01 = CA, 02 = AA; card contract in docs/lds.md); the host only ever sees the
//!   public points, which go into DG14 / DG15 and so under EF.SOD;
//! - DG14 = 6E { SET { ChipAuthenticationInfo(id-CA-ECDH-AES-CBC-CMAC-128, 1),
//!   ChipAuthenticationPublicKeyInfo(id-PK-ECDH, SubjectPublicKeyInfo P-256),
//!   ActiveAuthenticationInfo(id-AA, 1, ecdsa-plain-SHA256) } };
//!   DG15 = 6F { SubjectPublicKeyInfo P-256 };
//! - Chip Authentication inside secure messaging: MSE:Set AT 41 A4 { 80 OID }, GENERAL
//!   AUTHENTICATE 7C { 80 PK_DH,IFD } → 7C 00, then AES secure messaging with KDF(x(SK_DH,IFD ·
//!   PK_IC), 1/2) and SSC 0: only a chip holding SK_IC can answer the next command;
//! - Active Authentication: INTERNAL AUTHENTICATE with 8 random bytes; the answer r ‖ s must
//!   verify as ECDSA-SHA-256 under DG15's key.

use p256::ecdsa::signature::Verifier;
use zeroize::Zeroizing;

use super::{AesSession, Domain, IcaoReader, Session};
use crate::apdu::{Channel, Command};
use crate::tlv;
use crate::{Error, Result};

/// id-CA-ECDH-AES-CBC-CMAC-128 (0.4.0.127.0.7.2.2.3.2.2), DER contents.
pub const ID_CA_ECDH_AES_CBC_CMAC_128: [u8; 10] =
    [0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x03, 0x02, 0x02];
/// id-PK-ECDH (0.4.0.127.0.7.2.2.1.2).
pub const ID_PK_ECDH: [u8; 9] = [0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x01, 0x02];
/// id-AA (2.23.136.1.1.5, Part 11 §9.2.9).
pub const ID_AA: [u8; 6] = [0x67, 0x81, 0x08, 0x01, 0x01, 0x05];
/// ecdsa-plain-SHA256 (0.4.0.127.0.7.1.1.4.1.3, BSI TR-03111).
pub const ECDSA_PLAIN_SHA256: [u8; 10] =
    [0x04, 0x00, 0x7F, 0x00, 0x07, 0x01, 0x01, 0x04, 0x01, 0x03];
/// id-ecPublicKey (1.2.840.10045.2.1).
const ID_EC_PUBLIC_KEY: [u8; 7] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// prime256v1 (1.2.840.10045.3.1.7).
const PRIME256V1: [u8; 8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

fn ca_err(rule: impl Into<String>) -> Error {
    Error::Bac { rule: rule.into() }
}

fn lds_err(object: &str, rule: impl Into<String>) -> Error {
    Error::Lds {
        object: object.to_string(),
        rule: rule.into(),
    }
}

/// The public keys of the key pairs the chip generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipKeys {
    /// Chip Authentication public key (uncompressed P-256 point).
    pub ca: Vec<u8>,
    /// Active Authentication public key.
    pub aa: Vec<u8>,
}

/// Has the chip generate its CA and AA key pairs (PERSONALIZING, management key
/// authenticated, ICAO application selected) and returns the public points.
pub fn generate_chip_keys(channel: &mut Channel<'_>) -> Result<ChipKeys> {
    let mut get = |p2: u8, name: &'static str| -> Result<Vec<u8>> {
        let data = channel.ok(&Command::new(name, 0x46, 0x00, p2, vec![]).with_le())?;
        let inner = tlv::expect_single(&data, 0x7F49)?;
        let point = tlv::expect_single(inner, 0x86)?.to_vec();
        if Domain::P256.multiply(&[1], Some(&point)).is_none() {
            return Err(Error::Malformed {
                command: name,
                detail: "the public key is not a P-256 point".into(),
            });
        }
        Ok(point)
    };
    Ok(ChipKeys {
        ca: get(0x01, "GENERATE KEY PAIR (CA)")?,
        aa: get(0x02, "GENERATE KEY PAIR (AA)")?,
    })
}

/// SubjectPublicKeyInfo of a P-256 point (RFC 5480).
pub fn spki_p256(point: &[u8]) -> Vec<u8> {
    let mut alg = tlv::encode(0x06, &ID_EC_PUBLIC_KEY);
    alg.extend(tlv::encode(0x06, &PRIME256V1));
    let mut bits = vec![0x00];
    bits.extend_from_slice(point);
    let mut spki = tlv::encode(0x30, &alg);
    spki.extend(tlv::encode(0x03, &bits));
    tlv::encode(0x30, &spki)
}

fn point_of_spki(spki: &[u8], object: &str) -> Result<Vec<u8>> {
    let inner = tlv::expect_single(spki, 0x30)?;
    let parts = tlv::parse_all(inner)?;
    let [alg, bits] = &parts[..] else {
        return Err(lds_err(
            object,
            "SubjectPublicKeyInfo must hold algorithm and key",
        ));
    };
    let want_alg = {
        let mut a = tlv::encode(0x06, &ID_EC_PUBLIC_KEY);
        a.extend(tlv::encode(0x06, &PRIME256V1));
        a
    };
    if alg.tag != 0x30 || alg.value != want_alg || bits.tag != 0x03 {
        return Err(lds_err(object, "key must be id-ecPublicKey on prime256v1"));
    }
    match bits.value.split_first() {
        Some((0x00, point)) if point.len() == 65 && point[0] == 0x04 => Ok(point.to_vec()),
        _ => Err(lds_err(object, "key must be an uncompressed P-256 point")),
    }
}

/// DG14 (Part 10 §4.7.14) with the Chip Authentication key and the Active Authentication
/// algorithm.
pub fn dg14(ca_point: &[u8]) -> Vec<u8> {
    let mut ca_info = tlv::encode(0x06, &ID_CA_ECDH_AES_CBC_CMAC_128);
    ca_info.extend(tlv::encode(0x02, &[0x01]));
    let mut pk_info = tlv::encode(0x06, &ID_PK_ECDH);
    pk_info.extend(spki_p256(ca_point));
    let mut aa_info = tlv::encode(0x06, &ID_AA);
    aa_info.extend(tlv::encode(0x02, &[0x01]));
    aa_info.extend(tlv::encode(0x06, &ECDSA_PLAIN_SHA256));
    let mut set = tlv::encode(0x30, &ca_info);
    set.extend(tlv::encode(0x30, &pk_info));
    set.extend(tlv::encode(0x30, &aa_info));
    tlv::encode(0x6E, &tlv::encode(0x31, &set))
}

/// DG15 (Part 10 §4.7.15): the Active Authentication public key.
pub fn dg15(aa_point: &[u8]) -> Vec<u8> {
    tlv::encode(0x6F, &spki_p256(aa_point))
}

/// What DG14 announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dg14 {
    /// The Chip Authentication public key (P-256 point).
    pub ca_public: Vec<u8>,
    /// Whether Active Authentication uses ecdsa-plain-SHA256.
    pub aa_ecdsa_sha256: bool,
}

/// Parses DG14; requires id-CA-ECDH-AES-CBC-CMAC-128 and an id-PK-ECDH key on P-256.
pub fn parse_dg14(dg: &[u8]) -> Result<Dg14> {
    let set = tlv::expect_single(tlv::expect_single(dg, 0x6E)?, 0x31)?;
    let mut ca_offered = false;
    let mut ca_public = None;
    let mut aa = false;
    for info in tlv::parse_all(set)? {
        let fields = tlv::parse_all(info.value)?;
        let Some(oid) = fields.first().filter(|f| f.tag == 0x06) else {
            return Err(lds_err("DG14", "SecurityInfo without protocol OID"));
        };
        if oid.value == ID_CA_ECDH_AES_CBC_CMAC_128 {
            ca_offered = true;
        } else if oid.value == ID_PK_ECDH {
            let spki = fields
                .get(1)
                .ok_or_else(|| lds_err("DG14", "ChipAuthenticationPublicKeyInfo without key"))?;
            ca_public = Some(point_of_spki(&tlv::encode(spki.tag, spki.value), "DG14")?);
        } else if oid.value == ID_AA {
            aa = fields.get(2).is_some_and(|f| f.value == ECDSA_PLAIN_SHA256);
        }
    }
    if !ca_offered {
        return Err(lds_err(
            "DG14",
            "no ChipAuthenticationInfo for id-CA-ECDH-AES-CBC-CMAC-128",
        ));
    }
    Ok(Dg14 {
        ca_public: ca_public
            .ok_or_else(|| lds_err("DG14", "no ChipAuthenticationPublicKeyInfo (id-PK-ECDH)"))?,
        aa_ecdsa_sha256: aa,
    })
}

/// The Active Authentication public key of DG15.
pub fn parse_dg15(dg: &[u8]) -> Result<Vec<u8>> {
    point_of_spki(tlv::expect_single(dg, 0x6F)?, "DG15")
}

impl IcaoReader<'_, '_> {
    /// Chip Authentication with DG14's key; on success secure messaging continues with the
    /// new keys (SSC 0) and the application is selected again under them, which only a chip
    /// holding the private key can answer.
    pub fn chip_authenticate(&mut self, dg14: &Dg14) -> Result<()> {
        let eph = Domain::P256.private_key()?;
        let pk = Domain::P256
            .multiply(&eph, None)
            .ok_or_else(|| ca_err("Chip Authentication: invalid ephemeral key"))?;
        let shared = Domain::P256
            .multiply(&eph, Some(&dg14.ca_public))
            .ok_or_else(|| ca_err("Chip Authentication: DG14's key is not a P-256 point"))?;
        let x = Zeroizing::new(shared[1..33].to_vec());
        let at = tlv::encode(0x80, &ID_CA_ECDH_AES_CBC_CMAC_128);
        let (_, sw) = self.transmit("MSE:Set AT (CA)", 0x22, 0x41, 0xA4, &at, None)?;
        crate::apdu::check("MSE:Set AT (CA)", sw)?;
        let data = tlv::encode(0x7C, &tlv::encode(0x80, &pk));
        let (answer, sw) = self.transmit(
            "GENERAL AUTHENTICATE (CA)",
            0x86,
            0x00,
            0x00,
            &data,
            Some(0),
        )?;
        crate::apdu::check("GENERAL AUTHENTICATE (CA)", sw)?;
        if answer != [0x7C, 0x00] {
            return Err(Error::Malformed {
                command: "GENERAL AUTHENTICATE (CA)",
                detail: "expected an empty dynamic authentication data object 7C 00".into(),
            });
        }
        self.session = Session::Aes(AesSession::new(
            *super::kdf128(&x, 1),
            *super::kdf128(&x, 2),
        ));
        self.select_application().map_err(|e| {
            ca_err(format!(
                "Chip Authentication: the chip does not answer under the new keys ({e}): it does not hold DG14's private key"
            ))
        })
    }

    /// Active Authentication with DG15's key: a fresh 8-byte challenge, the chip's r ‖ s must
    /// verify as ECDSA-SHA-256.
    pub fn active_authenticate(&mut self, aa_public: &[u8]) -> Result<()> {
        let mut challenge = [0u8; 8];
        getrandom::fill(&mut challenge).map_err(|e| ca_err(format!("random generator: {e}")))?;
        self.active_authenticate_with(aa_public, &challenge)
    }

    fn active_authenticate_with(&mut self, aa_public: &[u8], challenge: &[u8; 8]) -> Result<()> {
        let (sig, sw) = self.transmit(
            "INTERNAL AUTHENTICATE (AA)",
            0x88,
            0x00,
            0x00,
            challenge,
            Some(0),
        )?;
        crate::apdu::check("INTERNAL AUTHENTICATE (AA)", sw)?;
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(aa_public)
            .map_err(|_| lds_err("DG15", "not a P-256 public key"))?;
        let sig = p256::ecdsa::Signature::from_slice(&sig).map_err(|_| Error::Malformed {
            command: "INTERNAL AUTHENTICATE (AA)",
            detail: format!("{} bytes, expected a 64-byte r ‖ s", sig.len()),
        })?;
        vk.verify(challenge, &sig).map_err(|_| {
            ca_err("Active Authentication: the signature does not verify with DG15's key (a clone, or DG15 of another card)")
        })
    }
}

/// Opens the ICAO application with `access` and reads the LDS as an inspection system that
/// insists on the chip's authenticity: EF.COM must list DG14 and DG15; DG14 is read and Chip
/// Authentication run with its key (which must be `expected_ca` when given: the key the chip
/// generated at personalization), then DG15 is read and Active Authentication run with its
/// key, then every other data group and EF.SOD, all under the Chip Authentication session.
/// Passive authentication of what is returned is the caller's ([`crate::sod`]).
pub fn read_lds_authenticated(
    channel: &mut Channel<'_>,
    access: &super::Access,
    expected_ca: Option<&[u8]>,
) -> Result<crate::lds::LdsRead> {
    use crate::lds::{fid, parse_ef_com};
    let mut r = IcaoReader::open(channel, access)?;
    let com = r.read_ef(fid::COM)?;
    let numbers = parse_ef_com(&com)?;
    for n in [14, 15] {
        if !numbers.contains(&n) {
            return Err(lds_err(
                "EF.COM",
                format!("lists no DG{n}: the chip cannot prove it is genuine"),
            ));
        }
    }
    let mut dgs = std::collections::BTreeMap::new();
    let dg14 = r.read_ef(fid::dg(14))?;
    let info = parse_dg14(&dg14)?;
    if expected_ca.is_some_and(|k| k != info.ca_public) {
        return Err(lds_err(
            "DG14",
            "its Chip Authentication key is not the one the chip generated",
        ));
    }
    r.chip_authenticate(&info)?;
    dgs.insert(14, dg14);
    let dg15 = r.read_ef(fid::dg(15))?;
    r.active_authenticate(&parse_dg15(&dg15)?)?;
    dgs.insert(15, dg15);
    for &n in &numbers {
        if let std::collections::btree_map::Entry::Vacant(slot) = dgs.entry(n) {
            slot.insert(r.read_ef(fid::dg(n))?);
        }
    }
    let sod = r.read_ef(fid::SOD)?;
    Ok(crate::lds::LdsRead { com, dgs, sod })
}
