//! `idstation unblock`: after the clerk confirmed the holder's identity in person (recorded),
//! the holder's new PIN is set on the issued card and its retry counter reset with the issuer's
//! key (`00 2C 02 80`, docs/card.md "Operational state"); `new_puk` also sets a new random PUK
//! and writes a new PIN letter. One journaled step (`card.unblock`); a failure leaves the old
//! or the new PIN on the card (either way another `unblock` settles it) and removes the new
//! letter (its PUK may not be on the card).

use std::path::PathBuf;
use std::time::Instant;

use personalization::piv::services as card_services;
use personalization::plan::Credentials;
use personalization::secret::{Pin, PinKind};
use registry::{AuditEntry, JobState, NewServiceJob, ServiceKind, StepState};
use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::{begin, finish, issued_document, match_card, refused, IssuedDocument};
use super::{ServiceProgress, ServiceStep};
use crate::card::serial_text;
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// What the clerk hands to an unblock.
pub struct UnblockInput {
    pub document: String,
    pub reader: Option<String>,
    /// The clerk checked the holder's identity in person (recorded in the audit log).
    pub identity_confirmed: bool,
    /// The holder's new PIN, entered by the holder.
    pub new_pin: Zeroizing<String>,
    /// Also a new random PUK, printed into a new PIN letter at this new file.
    pub new_puk_letter: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnblockReport {
    /// This station's service job; `None` for another office's card (no record here: the
    /// audit log is the record).
    pub service_job: Option<i64>,
    /// The office that issued the card, when it is another office's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_by_office: Option<String>,
    pub document: String,
    pub card_serial: String,
    pub reader: String,
    pub new_puk: bool,
    pub pin_letter: Option<PathBuf>,
    pub apdus: u64,
    pub total_ms: f64,
}

/// Unblock the PIN of document `input.document`'s card in the reader. See the module docs.
pub fn unblock(
    st: &mut Station,
    session: &Session,
    input: &UnblockInput,
    progress: &mut dyn FnMut(&ServiceProgress),
) -> Result<UnblockReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "unblock PINs",
        &[registry::Role::Clerk],
    )?;
    let started = Instant::now();
    if !super::known_here(st, &input.document)
        .map_err(|e| refused(st, session, "unblock", &input.document, e))?
        && st.config.centre.is_some()
    {
        return super::unblock_elsewhere::unblock(st, session, input, progress, started);
    }
    let (doc, pin) = check_before_card(st, input)
        .map_err(|e| refused(st, session, "unblock", &input.document, e))?;
    crate::records::audit_holder_reads(
        st,
        session,
        &[&doc.holder.data.pinfl],
        &format!("unblock --document {}", doc.document.number),
    )?;
    // One card service per document at a time; recovery leaves a live one alone.
    let _lock = crate::datadir::WorkLock::acquire(
        &st.layout.root,
        crate::datadir::Work::CardService(doc.document.id),
    )?;
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
    // Renewed at another office since this registry last saw it: brought here first.
    let doc = if super::adopt::renewed_elsewhere(st, session, &profile, &doc, &card)? {
        issued_document(st, &input.document)?
    } else {
        doc
    };
    check_card(st, session, input, &doc, &profile, &mut tx, &card)?;
    close_interrupted(st, session, &doc)?;
    let mut card_key = super::card_key_of(st, session.actor(), &profile, &doc, &card, "unblock")?;
    let card_key = match card_key.get(st, &profile) {
        Ok(key) => key,
        Err(e @ StationError::CentreRefused { .. }) => {
            return Err(refused(st, session, "unblock", &input.document, e))
        }
        Err(e) => return Err(e),
    };

    // The new PUK goes into its letter before it goes to the card (a PUK on a card with no
    // letter would help nobody).
    let puk = match &input.new_puk_letter {
        Some(path) => Some(write_letter(st, &doc, &profile, path)?),
        None => None,
    };
    let remove_letter = || {
        if let Some(path) = &input.new_puk_letter {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::error!(error = %e, path = %path.display(), "could not remove the PIN letter of a failed unblock");
            }
        }
    };
    let created = st.registry.write(|t| {
        t.create_service_job(
            &NewServiceJob {
                kind: ServiceKind::Unblock,
                document_id: doc.document.id,
                holder_id: doc.holder.id,
                card_serial: doc.card.chip_serial.clone(),
                office: st.config.station.office.clone(),
            },
            session.actor(),
        )
    });
    let job_id = created.inspect_err(|_| remove_letter())?;
    let step = ServiceStep::CardUnblock;
    let details = json!({ "new_puk": puk.is_some(), "identity_confirmed_by": session.operator() });
    let step_id = begin(st, job_id, step, &details).inspect_err(|_| remove_letter())?;
    crate::failpoint::hit("unblock.card.unblock");
    progress(&ServiceProgress {
        step,
        detail: "new PIN with the issuer's key".into(),
    });
    let result = card_services::unblock(&mut tx, card.serial, card_key, &pin, puk.as_ref());
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let err = StationError::card(Some(step.as_str()), &e);
            remove_letter();
            fail_job(st, session, &doc, job_id, step_id, &err);
            return Err(err);
        }
    };
    finish(
        st,
        step_id,
        StepState::Done,
        &json!({ "new_puk": report.new_puk }),
    )?;
    complete_job(st, session, &doc, job_id, report.new_puk)?;
    crate::audit::checkpoint_after(st, "card.unblocked");
    Ok(UnblockReport {
        service_job: Some(job_id),
        issued_by_office: None,
        document: doc.document.number.to_string(),
        card_serial: serial_text(card.serial),
        reader,
        new_puk: report.new_puk,
        pin_letter: input.new_puk_letter.clone(),
        apdus: report.stats.apdus,
        total_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The card in the reader is the document's (its current certificates, or those of a renewal
/// waiting to be resumed) and its chip opens with the document's MRZ; refusals audited.
fn check_card(
    st: &mut Station,
    session: &Session,
    input: &UnblockInput,
    doc: &IssuedDocument,
    profile: &profiles::card::CardProfile,
    tx: &mut dyn personalization::transport::Transport,
    card: &card_services::IssuedCard,
) -> Result<(), StationError> {
    let slots: Vec<_> = profile.keys.iter().map(|k| k.slot).collect();
    // A renewal interrupted after its certificates were issued, or one rolled back or aborted by
    // the centre after, may have written them: they identify the card too.
    let renewing = super::renew::carried_certificates(st, doc, profile)?;
    match_card(doc, card, &slots, |slot| {
        let mut ok: Vec<&[u8]> = Vec::new();
        if let Some(c) = doc.certificate(profile, slot) {
            ok.push(&c.data.der);
        }
        ok.extend(
            renewing
                .iter()
                .filter(|(s, _)| *s == slot)
                .map(|(_, der)| der.as_slice()),
        );
        ok
    })
    .map_err(|e| refused(st, session, "unblock", &input.document, e))?;
    match super::match_document(st, tx, doc) {
        Ok(_) => {}
        Err(e @ StationError::Conflict(_)) => {
            return Err(refused(st, session, "unblock", &input.document, e))
        }
        Err(e) => return Err(e),
    }
    match check_national(st, session, doc, card) {
        Err(e @ (StationError::Conflict(_) | StationError::CentreRefused { .. })) => {
            Err(refused(st, session, "unblock", &input.document, e))
        }
        other => other,
    }
}

/// On a station enrolled with the national centre the centre's state of the document decides,
/// as for the other card services: another office may have declared the card lost or stolen
/// since this station's record was written. The card is looked up there (`POST
/// /v1/cards/lookup`, each instance within [`super::elsewhere::LOOKUP_WITHIN`]: the reader is
/// held meanwhile) and must be of the same document, active; a centre that cannot be asked stops
/// the unblock with nothing changed.
fn check_national(
    st: &Station,
    session: &Session,
    doc: &IssuedDocument,
    card: &card_services::IssuedCard,
) -> Result<(), StationError> {
    let serial = serial_text(card.serial);
    let number = doc.document.number.to_string();
    let Some(found) = super::elsewhere::own_card(st, session.operator(), card, &serial, &number)?
    else {
        return Ok(());
    };
    let at_centre = &found.record;
    if at_centre.state != "active" {
        return Err(StationError::Conflict(format!(
            "document status: the national registry has document {number} as {} (this \
             station's record says {}); a PIN is unblocked only on an active document",
            at_centre.state,
            doc.document.status.as_str()
        )));
    }
    Ok(())
}

/// An unblock killed mid-way: the card has the old or the new PIN and nothing else depends on
/// it; this unblock sets the PIN again.
fn close_interrupted(
    st: &mut Station,
    session: &Session,
    doc: &IssuedDocument,
) -> Result<(), StationError> {
    if let Some(job) = st
        .registry
        .running_service_job(doc.document.id, ServiceKind::Unblock)?
    {
        // An unblock killed mid-way: the card has the old or the new PIN and nothing else
        // depends on it; this unblock sets the PIN again.
        let why = "interrupted; superseded by a new unblock";
        st.registry.write(|t| {
            t.end_service_job(job.id, JobState::Failed, Some(why))?;
            t.audit(&AuditEntry {
                actor: session.actor(),
                action: "unblock.failed",
                object: &format!("document:{}", doc.document.number),
                details: &json!({ "service_job": job.id, "error": why }),
            })?;
            Ok(())
        })?;
    }
    Ok(())
}

fn fail_job(
    st: &mut Station,
    session: &Session,
    doc: &IssuedDocument,
    job_id: i64,
    step_id: i64,
    err: &StationError,
) {
    let _ = st.registry.write(|t| {
        t.finish_service_step(step_id, StepState::Failed, None)?;
        t.end_service_job(job_id, JobState::Failed, Some(&err.to_string()))?;
        t.audit(&AuditEntry {
            actor: session.actor(),
            action: "unblock.failed",
            object: &format!("document:{}", doc.document.number),
            details: &json!({ "service_job": job_id, "error": err.to_string() }),
        })
    });
}

fn complete_job(
    st: &mut Station,
    session: &Session,
    doc: &IssuedDocument,
    job_id: i64,
    new_puk: bool,
) -> Result<(), StationError> {
    st.registry.write(|t| {
        t.end_service_job(job_id, JobState::Completed, None)?;
        t.audit(&AuditEntry {
            actor: session.actor(),
            action: "card.unblocked",
            object: &format!("document:{}", doc.document.number),
            details: &json!({
                "service_job": job_id,
                "card": doc.card.chip_serial,
                "identity_confirmed_by": session.operator(),
                "new_puk": new_puk,
            }),
        })?;
        Ok(())
    })?;
    Ok(())
}

/// Before the card: the clerk's confirmation, the document and its card on record, the new
/// PIN as the card profile and the weak-PIN rules take it, the letter's destination.
fn check_before_card(
    st: &Station,
    input: &UnblockInput,
) -> Result<(IssuedDocument, Pin), StationError> {
    check_identity_confirmed(input)?;
    let doc = issued_document(st, &input.document)?;
    let dob = crate::holder::parse_date(&doc.holder.data.date_of_birth).map_err(|e| {
        StationError::Other(format!(
            "holder of document {}: date_of_birth: {e}",
            doc.document.number
        ))
    })?;
    let pin = crate::issuance::check_pin(st.card_profile()?, &input.new_pin, dob)?;
    if let Some(path) = &input.new_puk_letter {
        crate::pin_letter::check_destination(path)?;
    }
    Ok((doc, pin))
}

/// The clerk confirmed the holder's identity in person.
pub(super) fn check_identity_confirmed(input: &UnblockInput) -> Result<(), StationError> {
    if !input.identity_confirmed {
        return Err(StationError::invalid(
            "identity_confirmed",
            "the clerk must confirm the holder's identity in person before a PIN is unblocked \
             (--identity-confirmed)",
        ));
    }
    Ok(())
}

/// A random PUK as the card profile allows, printed into the letter at `path` for document
/// `doc`'s holder.
fn write_letter(
    st: &Station,
    doc: &IssuedDocument,
    profile: &profiles::card::CardProfile,
    path: &std::path::Path,
) -> Result<Pin, StationError> {
    let h = &doc.holder.data;
    let name = format!("{} {}", h.surname, h.given_names);
    write_letter_for(st, &doc.document.number.to_string(), &name, profile, path)
}

/// A random PUK as the card profile allows, printed into the letter at `path` for document
/// `document` of holder `holder_name`.
pub(super) fn write_letter_for(
    st: &Station,
    document: &str,
    holder_name: &str,
    profile: &profiles::card::CardProfile,
    path: &std::path::Path,
) -> Result<Pin, StationError> {
    let text = crate::pin_letter::generate_puk(profile.puk.max_length)?;
    let puk =
        Pin::new(PinKind::Puk, &text).map_err(|e| StationError::invalid("puk", e.to_string()))?;
    profile
        .check_secret(&puk)
        .map_err(|e| StationError::invalid("puk", e.to_string()))?;
    let facts = crate::pin_letter::LetterFacts {
        document,
        holder_name,
        office: &st.config.station.office,
        issued_on: crate::time_util::today_utc(),
    };
    crate::pin_letter::write(path, &facts, &text)?;
    Ok(puk)
}
