//! `idstation inspect`: an issued card read as an inspection system reads it (ICAO Doc 9303
//! Part 11 §4.2 chip access, §6 chip authentication, §5.1 passive authentication), each check
//! reported (`personalization::pace::inspect`): the access control used (PACE with the CAN
//! given by the operator, or with the MRZ of the document the registry has for this card; BAC
//! on a card that offers no PACE), Chip Authentication, Active Authentication, passive
//! authentication against the station's CSCA certificates, and each data group's hash against
//! EF.SOD. Clerks and auditors; every inspection (and every one that could not open the chip)
//! is audited, as it reads the holder's personal data.

use std::time::SystemTime;

use personalization::pace::inspect::Inspection;
use personalization::pace::{read_card_access, Access};
use personalization::transport::pcsc::Pcsc;
use personalization::transport::Transport;
use registry::AuditEntry;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::card::serial_text;
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// How the chip is opened.
pub enum InspectAccess {
    /// PACE with this CAN (six digits, from the card face).
    Can(Zeroizing<String>),
    /// The MRZ of the document the registry has for the card in the reader (PACE-MRZ, or BAC
    /// when the card offers no PACE).
    MrzFromRegistry,
}

/// What `idstation inspect` is asked.
pub struct InspectInput {
    /// Reader name (or a unique part of it); `None` = the one reader holding a card.
    pub reader: Option<String>,
    pub access: InspectAccess,
}

/// What an inspection found, with the card and the document it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    pub reader: String,
    /// The chip serial (PIV GET SERIAL), when the card answers it.
    pub card_serial: Option<String>,
    /// The document the registry binds to that card, if any.
    pub document: Option<String>,
    /// Every check passed.
    pub passed: bool,
    #[serde(flatten)]
    pub inspection: Inspection,
}

/// Inspect the card in the reader (clerk or auditor; audited). An error when the chip cannot
/// be opened at all (a wrong CAN, another document's MRZ); otherwise the report, whose
/// [`InspectReport::passed`] says whether every check passed.
pub fn inspect(
    st: &mut Station,
    session: &Session,
    input: &InspectInput,
) -> Result<InspectReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "inspect cards",
        crate::records::READ_ROLES,
    )?;
    let pcsc = Pcsc::establish().map_err(|e| StationError::card(None, &e))?;
    let reader = crate::readers::choose_reader(&pcsc, input.reader.as_deref())?;
    let mut card = pcsc
        .connect(&reader)
        .map_err(|e| StationError::card(None, &e.in_step("connect to the card")))?;
    let mut tx = card
        .begin()
        .map_err(|e| StationError::card(None, &e.in_step("open a card transaction")))?;
    let serial = personalization::executor::inspect(&mut tx)
        .ok()
        .map(|i| serial_text(i.serial));
    let document = match &serial {
        Some(s) => document_of_card(st, s)?,
        None => None,
    };
    let outcome = run(st, &mut tx, &input.access, document.as_ref());
    let what = serial.clone().unwrap_or_else(|| format!("in {reader}"));
    audit(st, session, &what, document.as_ref(), &outcome)?;
    let inspection = outcome?;
    Ok(InspectReport {
        reader,
        card_serial: serial,
        document: document.map(|d| d.number.to_string()),
        passed: inspection.all_passed(),
        inspection,
    })
}

/// The access control, the CSCA certificates, the inspection.
fn run(
    st: &Station,
    tx: &mut dyn Transport,
    access: &InspectAccess,
    document: Option<&registry::Document>,
) -> Result<Inspection, StationError> {
    let mut ch = personalization::apdu::Channel::new(tx);
    let access = match access {
        InspectAccess::Can(can) => {
            Access::can(can).map_err(|_| StationError::invalid("can", "must be 6 digits"))?
        }
        InspectAccess::MrzFromRegistry => {
            let d = document.ok_or_else(|| {
                StationError::NotFound(
                    "mrz-from-registry: the registry binds no document to the card in the reader"
                        .into(),
                )
            })?;
            let mrz = crate::records::document_mrz(st, d)?.ok_or_else(|| {
                StationError::Other(format!("document {}: no MRZ on record", d.number))
            })?;
            let info = Zeroizing::new(
                personalization::mrz::bac_mrz_information(&mrz)
                    .map_err(|e| StationError::invalid("mrz", e.to_string()))?,
            );
            match read_card_access(&mut ch) {
                Ok(_) => Access::pace_mrz(&info),
                Err(_) => Access::bac(&info),
            }
        }
    };
    let cscas: Vec<Vec<u8>> = st
        .registry
        .ca_keys(crate::hierarchy::CSCA_CA)?
        .into_iter()
        .rev()
        // A revoked CSCA (one the centre withdrew from its Master List) is no anchor.
        .filter(|k| k.state != registry::CaKeyState::Revoked)
        .filter_map(|k| k.certificate)
        .collect();
    let cscas: Vec<&[u8]> = cscas.iter().map(Vec::as_slice).collect();
    personalization::pace::inspect::inspect(&mut ch, &access, &cscas, SystemTime::now())
        .map_err(|e| StationError::card(Some(&format!("open the chip with {}", access.name())), &e))
}

/// The document the registry binds to the card with chip serial `serial`.
fn document_of_card(
    st: &Station,
    serial: &str,
) -> Result<Option<registry::Document>, StationError> {
    let Some(card) = st.registry.card(serial)? else {
        return Ok(None);
    };
    let (Some(holder), Some(doc)) = (card.holder_id, card.document_id) else {
        return Ok(None);
    };
    Ok(st
        .registry
        .documents_of_holder(holder)?
        .into_iter()
        .find(|d| d.id == doc))
}

/// `card.inspected` (with the outcome) or `card.inspect-failed`: a read of personal data that
/// cannot be audited is not answered.
fn audit(
    st: &mut Station,
    session: &Session,
    card: &str,
    document: Option<&registry::Document>,
    outcome: &Result<Inspection, StationError>,
) -> Result<(), StationError> {
    let document = document.map(|d| d.number.to_string());
    let (action, details) = match outcome {
        Ok(i) => (
            "card.inspected",
            serde_json::json!({
                "access_control": i.access_control,
                "passed": i.all_passed(),
                "document": document,
            }),
        ),
        Err(e) => (
            "card.inspect-failed",
            serde_json::json!({ "error": e.to_string(), "document": document }),
        ),
    };
    st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action,
        object: &format!("card:{card}"),
        details: &details,
    })?;
    Ok(())
}
