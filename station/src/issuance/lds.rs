//! The ICAO 9303 LDS of one card (Part 10 data groups, Part 10 §4.6.2 EF.SOD): the data groups
//! from the holder's LDS view ([`personalization::lds::holder_data_groups`]), EF.SOD signed in
//! the HSM by the active Document Signer, and the CSCA certificate passive authentication
//! chains it to.

use std::collections::BTreeMap;

use personalization::lds::LdsFiles;
use personalization::mrz::MrzDocument;
use personalization::pace::ca::{self, ChipKeys};
use zeroize::Zeroizing;

use crate::error::StationError;
use crate::holder::ValidHolder;
use crate::holder_views::lift;
use crate::Station;

/// What the card step needs to write and check the LDS.
pub struct LdsData {
    pub files: LdsFiles,
    pub mrz_information: Zeroizing<String>,
    pub csca_der: Vec<u8>,
    /// The serial number (lower-case hex) of the Document Signer certificate whose key signed
    /// EF.SOD: the station journals it with the card step and tells the centre at `complete`.
    pub document_signer: String,
}

/// The active key (with its certificate) of a registry CA name.
fn active_key(st: &Station, ca_name: &str) -> Result<(String, Vec<u8>), StationError> {
    st.registry
        .ca_keys(ca_name)?
        .into_iter()
        .rev()
        .find(|k| k.state == registry::CaKeyState::Active && k.certificate.is_some())
        .and_then(|k| k.certificate.map(|c| (k.label, c)))
        .ok_or_else(|| {
            StationError::NotFound(format!(
                "no active {ca_name} key with a certificate in the registry (stations initialised before ICAO LDS support have none: see docs/lds.md)"
            ))
        })
}

/// Builds the LDS of one card: DG1 (MRZ), DG2 (the photo as JPEG in an ISO/IEC 19794-5 record;
/// omitted when the holder record has no photo), DG11 (name in national characters, PINFL,
/// place of birth, permanent address), DG12 (issuing office, date of issue), DG14 and DG15
/// (the Chip Authentication and Active Authentication public keys the chip generated, when
/// it did), EF.SOD signed by the active Document Signer key in the HSM over all of them.
pub fn build_lds(
    st: &Station,
    holder: &ValidHolder,
    document: &str,
    (expiry, today): (time::Date, time::Date),
    chip_keys: Option<&ChipKeys>,
) -> Result<LdsData, StationError> {
    let photo = match &holder.photo_path {
        Some(p) => Some(std::fs::read(p).map_err(|e| StationError::io(p, e))?),
        None => None,
    };
    let groups = personalization::lds::holder_data_groups(
        &holder.into(),
        photo.as_deref(),
        &MrzDocument {
            issuing_state: &st.document_profile()?.issuing_state,
            number: document,
            expiry,
        },
        &st.config.station.office,
        today,
    )
    .map_err(lift)?;
    let mut files = LdsFiles {
        dgs: groups.dgs,
        sod: Vec::new(),
    };
    if let Some(keys) = chip_keys {
        files.dgs.insert(14, ca::dg14(&keys.ca));
        files.dgs.insert(15, ca::dg15(&keys.aa));
    }
    let (csca_der, document_signer) = sign_sod(st, &mut files)?;
    Ok(LdsData {
        files,
        mrz_information: groups.mrz_information,
        csca_der,
        document_signer,
    })
}

/// EF.SOD over `files`' data groups, signed by the active Document Signer key; returns the
/// certificate of the CSCA key that certified that Document Signer (after a CSCA rollover the
/// DS may still be certified by the retired CSCA key, whose certificate stays valid) and the
/// Document Signer certificate's serial number (hex).
fn sign_sod(st: &Station, files: &mut LdsFiles) -> Result<(Vec<u8>, String), StationError> {
    let (ds_label, ds_cert) = active_key(st, crate::hierarchy::DS_CA)?;
    let ds_serial = ::ca::CertInfo::parse(&ds_cert)?.serial_hex;
    let csca_der = crate::hierarchy::certifying_key(st, &ds_label, &ds_cert)?
        .1
        .certificate
        .ok_or_else(|| StationError::Other("the CSCA key has no certificate".into()))?;
    let mut hsm_error = None;
    let hashes: BTreeMap<u8, [u8; 32]> = files.dg_hashes();
    let sod = personalization::sod::build_sod(&hashes, &ds_cert, |m| {
        st.keys.sign_p256_sha256(&ds_label, m).map_err(|e| {
            let msg = e.to_string();
            hsm_error = Some(e);
            personalization::Error::Lds {
                object: "EF.SOD".into(),
                rule: format!("the Document Signer key could not sign: {msg}"),
            }
        })
    });
    files.sod = match (sod, hsm_error) {
        (_, Some(e)) => return Err(e.into()),
        (Ok(s), None) => s,
        (Err(e), None) => return Err(StationError::Other(e.to_string())),
    };
    Ok((csca_der, ds_serial))
}
