//! Reading an issued card as an inspection system does (ICAO Doc 9303 Part 11 §4.2 chip access
//! procedure, §6 authentication of the chip, §5.1 passive authentication), reporting every
//! check instead of stopping at the first failure: the access control used (PACE with the CAN
//! or the MRZ, or BAC), Chip Authentication (DG14), Active Authentication (DG15), passive
//! authentication (EF.SOD against a CSCA) and each data group's hash against EF.SOD. Meant for
//! `idstation inspect`; the report serializes to JSON.

use std::collections::BTreeMap;
use std::time::SystemTime;

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::OctetString;
use der::Decode;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ca, Access, Domain, IcaoReader};
use crate::apdu::Channel;
use crate::lds::{fid, parse_ef_com};
use crate::sod::{content_info_der, passive_authentication, LdsSecurityObject};
use crate::Result;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "snake_case")]
pub enum Check {
    /// The check passed.
    Passed,
    /// The check failed: why.
    Failed(String),
    /// The card does not offer it (e.g. no DG14): why it was not run.
    NotOffered(String),
}

/// One data group as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataGroupCheck {
    /// Data group number.
    pub number: u8,
    /// Its length in bytes.
    pub length: usize,
    /// SHA-256 of what the chip returned (hex).
    pub sha256: String,
    /// Whether EF.SOD lists the data group, and with this hash.
    pub matches_sod: bool,
}

/// What an inspection found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// "PACE-CAN", "PACE-MRZ" or "BAC".
    pub access_control: &'static str,
    /// The PACE domain parameters ("brainpoolP256r1" / "P-256"), none after BAC.
    pub pace_domain: Option<&'static str>,
    /// Chip Authentication.
    pub chip_authentication: Check,
    /// Active Authentication.
    pub active_authentication: Check,
    /// Passive authentication of EF.SOD and every data group.
    pub passive_authentication: Check,
    /// Each data group listed in EF.COM.
    pub data_groups: Vec<DataGroupCheck>,
}

/// The data group hashes EF.SOD holds, without verifying anything (for the per-group report;
/// [`passive_authentication`] does the verification).
fn sod_hashes(ef_sod: &[u8]) -> Option<BTreeMap<u8, Vec<u8>>> {
    let ci = ContentInfo::from_der(&content_info_der(ef_sod).ok()?).ok()?;
    let sd: SignedData = ci.content.decode_as().ok()?;
    let econtent: OctetString = sd.encap_content_info.econtent.as_ref()?.decode_as().ok()?;
    let lso = LdsSecurityObject::from_der(econtent.as_bytes()).ok()?;
    Some(
        lso.data_group_hash_values
            .into_iter()
            .map(|h| {
                (
                    h.data_group_number,
                    h.data_group_hash_value.as_bytes().to_vec(),
                )
            })
            .collect(),
    )
}

/// Inspects the card: opens the ICAO application with `access` (an error if that fails:
/// nothing else can be read), then Chip Authentication if DG14 is present, Active
/// Authentication if DG15 is, every data group of EF.COM, EF.SOD and passive authentication
/// at `now` against the CSCA certificates `cscas` (it passes if one of them vouches for the
/// Document Signer: after a CSCA rollover the older key still vouches for the cards it signed).
pub fn inspect(
    channel: &mut Channel<'_>,
    access: &Access,
    cscas: &[&[u8]],
    now: SystemTime,
) -> Result<Inspection> {
    let mut r = IcaoReader::open(channel, access)?;
    let pace_domain = r.domain().map(|d| match d {
        Domain::BrainpoolP256r1 => "brainpoolP256r1",
        Domain::P256 => "P-256",
    });
    let com = r.read_ef(fid::COM)?;
    let numbers = parse_ef_com(&com)?;
    let mut dgs = BTreeMap::new();
    // DG14 first: Chip Authentication replaces the session before the other reads.
    let chip_authentication = if numbers.contains(&14) {
        let dg14 = r.read_ef(fid::dg(14))?;
        let check = match ca::parse_dg14(&dg14) {
            Ok(info) => match r.chip_authenticate(&info) {
                Ok(()) => Check::Passed,
                Err(e) => {
                    // The chip could not follow to the new keys: the session is over, nothing
                    // more can be read; report what is known.
                    let ended = "not run: the session ended with the failed Chip Authentication";
                    let h = Sha256::digest(&dg14).to_vec();
                    return Ok(Inspection {
                        access_control: access.name(),
                        pace_domain,
                        chip_authentication: Check::Failed(e.to_string()),
                        active_authentication: Check::NotOffered(ended.into()),
                        passive_authentication: Check::NotOffered(ended.into()),
                        data_groups: vec![DataGroupCheck {
                            number: 14,
                            length: dg14.len(),
                            sha256: h.iter().map(|b| format!("{b:02x}")).collect(),
                            matches_sod: false,
                        }],
                    });
                }
            },
            Err(e) => Check::Failed(e.to_string()),
        };
        dgs.insert(14, dg14);
        check
    } else {
        Check::NotOffered("EF.COM lists no DG14".into())
    };
    let active_authentication = if numbers.contains(&15) {
        let dg15 = r.read_ef(fid::dg(15))?;
        let check = match ca::parse_dg15(&dg15) {
            Ok(key) => match r.active_authenticate(&key) {
                Ok(()) => Check::Passed,
                Err(e) => Check::Failed(e.to_string()),
            },
            Err(e) => Check::Failed(e.to_string()),
        };
        dgs.insert(15, dg15);
        check
    } else {
        Check::NotOffered("EF.COM lists no DG15".into())
    };
    for &n in &numbers {
        if let std::collections::btree_map::Entry::Vacant(slot) = dgs.entry(n) {
            slot.insert(r.read_ef(fid::dg(n))?);
        }
    }
    let sod = r.read_ef(fid::SOD)?;
    let mut passive = Check::Failed("no CSCA certificate to verify EF.SOD against".into());
    for csca_der in cscas {
        passive = match passive_authentication(&sod, &dgs, csca_der, now) {
            Ok(_) => Check::Passed,
            Err(e) => Check::Failed(e.to_string()),
        };
        if passive == Check::Passed {
            break;
        }
    }
    let in_sod = sod_hashes(&sod).unwrap_or_default();
    let data_groups = dgs
        .iter()
        .map(|(&n, v)| {
            let h = Sha256::digest(v).to_vec();
            DataGroupCheck {
                number: n,
                length: v.len(),
                sha256: h.iter().map(|b| format!("{b:02x}")).collect(),
                matches_sod: in_sod.get(&n) == Some(&h),
            }
        })
        .collect();
    Ok(Inspection {
        access_control: access.name(),
        pace_domain,
        chip_authentication,
        active_authentication,
        passive_authentication: passive,
        data_groups,
    })
}

impl Inspection {
    /// Every check passed: CA, AA and passive authentication ran and passed, and every data
    /// group's hash is the one EF.SOD holds.
    pub fn all_passed(&self) -> bool {
        [
            &self.chip_authentication,
            &self.active_authentication,
            &self.passive_authentication,
        ]
        .iter()
        .all(|c| **c == Check::Passed)
            && self.data_groups.iter().all(|d| d.matches_sod)
    }
}
