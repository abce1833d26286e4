//! `idstation unblock` of a card another office issued, on a station enrolled with the national
//! centre (docs/station.md "Card services"). This station has no record of the card: the centre
//! has (`POST /v1/cards/lookup` with the chip serial and the certificates read from the card),
//! the chip must open with the MRZ of the centre's record and carry its document number, the
//! document must be active there, and the card must be under a management key the centre
//! derives (`card_key` in the record: cards issued through the centre since it derives them;
//! an older card is under its issuing station's key and is unblocked at that office). The
//! centre then releases the card's key for this unblock (`POST /v1/cards/key`, audited there),
//! and the new PIN (and, when asked, a new PUK printed into a new letter first) is set with the
//! issuer's key as for this station's own cards.
//!
//! There is no service job here (the station's journal hangs on its own documents): the audit
//! log is the record — `unblock.started` before the card is touched, `card.unblocked` or
//! `unblock.failed` after — so an unblock killed in between shows as started and never ended,
//! with the old or the new PIN on the card (another `unblock` settles it).

use std::time::Instant;

use personalization::piv::services as card_services;
use registry::AuditEntry;
use serde_json::json;

use super::elsewhere::{self, AtCentre};
use super::refused;
use super::unblock::{check_identity_confirmed, write_letter_for, UnblockInput, UnblockReport};
use super::{ServiceProgress, ServiceStep};
use crate::card::serial_text;
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// Unblock the PIN of another office's card, document `input.document`, in the reader.
pub(super) fn unblock(
    st: &mut Station,
    session: &Session,
    input: &UnblockInput,
    progress: &mut dyn FnMut(&ServiceProgress),
    started: Instant,
) -> Result<UnblockReport, StationError> {
    let number = input.document.clone();
    let refuse = |st: &mut Station, e: StationError| refused(st, session, "unblock", &number, e);
    check_identity_confirmed(input).map_err(|e| refuse(st, e))?;
    if let Some(path) = &input.new_puk_letter {
        crate::pin_letter::check_destination(path).map_err(|e| refuse(st, e))?;
    }
    let profile = st.card_profile()?.clone();
    let mut card_session = super::connect(input.reader.as_deref())?;
    let reader = card_session.reader.clone();
    let mut tx = card_session
        .conn
        .begin()
        .map_err(|e| StationError::card(None, &e.in_step("open a card transaction")))?;
    let slots: Vec<_> = profile.keys.iter().map(|k| k.slot).collect();
    let card = card_services::read_issued(&mut tx, &slots)
        .map_err(|e| StationError::card(Some("read the card"), &e))?;
    let serial = serial_text(card.serial);
    let found = elsewhere::for_service(st, session, "unblock", &number, &card)?;
    let record = &found.record;
    check_record(&found, &number, &serial, "unblocked").map_err(|e| refuse(st, e))?;
    elsewhere::match_chip(&mut tx, record).map_err(|e| refuse(st, e))?;
    let dob = crate::holder::parse_date(&record.holder.date_of_birth).map_err(|_| {
        StationError::Other(format!(
            "the centre's date of birth {:?} is not a date",
            record.holder.date_of_birth
        ))
    })?;
    let pin =
        crate::issuance::check_pin(&profile, &input.new_pin, dob).map_err(|e| refuse(st, e))?;
    let request = centre_api::CardKeyRequest {
        operator: session.operator().to_owned(),
        card_serial: serial.clone(),
        purpose: "unblock".into(),
        job: None,
        document: Some(number.clone()),
        certificates: elsewhere::serials_read(&card)?,
    };
    let card_key = match crate::card::centre_card_key(st, &profile, &request) {
        Ok((key, _)) => key,
        Err(e @ StationError::CentreRefused { .. }) => return Err(refuse(st, e)),
        Err(e) => return Err(e),
    };
    // The new PUK goes into its letter before it goes to the card.
    let holder_name = format!("{} {}", record.holder.surname, record.holder.given_names);
    let puk = match &input.new_puk_letter {
        Some(path) => Some(write_letter_for(st, &number, &holder_name, &profile, path)?),
        None => None,
    };
    let remove_letter = || {
        if let Some(path) = &input.new_puk_letter {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::error!(error = %e, path = %path.display(), "could not remove the PIN letter of a failed unblock");
            }
        }
    };
    let object = format!("document:{number}");
    let details = json!({ "at_centre": true, "card": serial, "issued_by_office": record.office,
        "identity_confirmed_by": session.operator(), "new_puk": puk.is_some() });
    st.registry
        .audit(&AuditEntry {
            actor: session.actor(),
            action: "unblock.started",
            object: &object,
            details: &details,
        })
        .inspect_err(|_| remove_letter())?;
    crate::failpoint::hit("unblock.card.unblock");
    progress(&ServiceProgress {
        step: ServiceStep::CardUnblock,
        detail: "new PIN with the card key released by the national centre".into(),
    });
    let report = match card_services::unblock(&mut tx, card.serial, &card_key, &pin, puk.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            let err = StationError::card(Some(ServiceStep::CardUnblock.as_str()), &e);
            remove_letter();
            let _ = st.registry.audit(&AuditEntry {
                actor: session.actor(),
                action: "unblock.failed",
                object: &object,
                details: &json!({ "at_centre": true, "card": serial, "error": err.to_string() }),
            });
            return Err(err);
        }
    };
    st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action: "card.unblocked",
        object: &object,
        details: &details,
    })?;
    crate::audit::checkpoint_after(st, "card.unblocked");
    Ok(UnblockReport {
        service_job: None,
        issued_by_office: Some(found.record.office.clone()),
        document: number,
        card_serial: serial,
        reader,
        new_puk: report.new_puk,
        pin_letter: input.new_puk_letter.clone(),
        apdus: report.stats.apdus,
        total_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The centre's record is of document `number`, active, and its card under the centre's key;
/// `done` says what the service does (`unblocked`: a PIN; `renewed`: the certificates).
pub(super) fn check_record(
    found: &AtCentre,
    number: &str,
    serial: &str,
    done: &str,
) -> Result<(), StationError> {
    let what = if done == "renewed" {
        "its certificates are"
    } else {
        "its PIN is"
    };
    let record = &found.record;
    if record.document != number {
        return Err(StationError::Conflict(format!(
            "document number: the card in the reader ({serial}) is document {} in the national \
             registry, not {number}",
            record.document
        )));
    }
    if record.state != "active" {
        return Err(StationError::Conflict(format!(
            "document status: the national registry has document {number} as {}; {what} {done} \
             only on an active document",
            record.state
        )));
    }
    if record.card_key.is_none() {
        return Err(StationError::Conflict(format!(
            "card key: card {serial} was issued by office {} under that station's own \
             management key (before the national centre derived card keys): {what} {done} at \
             that office",
            record.office
        )));
    }
    Ok(())
}
