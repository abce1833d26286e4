//! `idstation replace` of a card another station issued, on a station enrolled with the
//! national centre: a holder whose card was issued at another office (they moved, or were
//! passing through) is given the new card here. This station has no record of the old
//! document, so the replacement is the centre's and this station's journal
//! (`centre_replacements`, registry schema V12), in the same three steps as a replacement of
//! its own card ([`super::replace`]), every stop leaving the old card active or the new one
//! issued, never neither:
//!
//! 1. **hold**: the old document looked up at the centre (it must be active, the holder's, and
//!    for `recalled` flagged by the centre; for `name-change` the new name must differ from the
//!    centre's), the replacement journaled here (holding), then the document held at the
//!    centre (suspended: it no longer counts against the one-active-card rule, so the centre
//!    reserves the new card). Refused or unanswered: the journal is rolled back at once.
//! 2. **issue**: the ordinary issuance through the centre onto the blank card in the reader.
//! 3. **settle**, decided by that issuance job: completed → the old document revoked at the
//!    centre for the reason (lost, stolen: lost; damaged, name change: revoked; recalled: the
//!    centre's reason `replaced`, revoked superseded) and linked to the new one, then the
//!    journal completed; rolled back or never begun → the replacement's own hold released at
//!    the centre if the centre made it (it knows the hold's job, drawn and journaled before
//!    the hold was asked for; a document no longer suspended there is left as it is), the
//!    journal rolled back; still unfinished → left for `idstation recover`,
//!    which finishes the issuance first. A centre that does not answer leaves the replacement
//!    holding, for the next `replace` or `recover` to settle.

use centre_api::CardAtCentre;
use registry::{AuditEntry, CentreReplacement, JobState};

use super::replace::{crl_reason, with_note, ReplaceInput, ReplaceReport, Settled};
use crate::error::StationError;
use crate::issuance::JobProgress;
use crate::session::Session;
use crate::Station;

/// Replace another station's document `input.document` (see the module documentation). The
/// caller checked the session and that this station has no record of the document.
pub(super) fn replace(
    st: &mut Station,
    session: &Session,
    input: &ReplaceInput,
    progress: &mut dyn FnMut(&JobProgress),
) -> Result<ReplaceReport, StationError> {
    let num = input.document.as_str();
    let refused = |st: &mut Station, e| super::refused(st, session, "replace", num, e);
    let crl = crl_reason(&input.reason).map_err(|e| refused(st, e))?;
    let found =
        super::elsewhere::document_at_centre(st, session, num).map_err(|e| refused(st, e))?;
    check(&found, input).map_err(|e| refused(st, e))?;
    let document = found.document.clone();
    // The holder's document this registry may still have active (another of theirs, declared
    // out of use elsewhere) brought up to date before the new card.
    super::mirror::before_issue(st, session, &input.issue.holder.record.pinfl)?;

    // 1. hold: journaled here first, with the centre's job for the hold drawn now, so that a
    // crash after the centre's hold is settled and a hold never made is never released.
    let hold_job = crate::ra_services::job_uuid()?;
    let started = st.registry.write(|tx| {
        let id = tx.start_centre_replacement(
            &document,
            &found.office,
            &found.holder.pinfl,
            &hold_job,
            &input.reason,
            session.actor(),
        )?;
        tx.audit(&AuditEntry {
            actor: session.actor(),
            action: "replacement.started",
            object: &format!("document:{document}"),
            details: &serde_json::json!({
                "replacement": id, "reason": input.reason, "issued_by_office": found.office,
                "at_centre": true, "hold_job": hold_job,
            }),
        })?;
        Ok(id)
    });
    let rep_id = started.map_err(|e| refused(st, e.into()))?;
    crate::failpoint::hit("replace.held");
    if let Err(e) = crate::ra_services::hold_at_centre(st, session.actor(), &hold_job, &document) {
        let rep = open(st, rep_id)?
            .ok_or_else(|| StationError::Other(format!("replacement {rep_id} is not open")))?;
        // Refused: nothing was held. Not answered: the centre is asked whether it made the
        // hold, which is released if so.
        let rolled = if matches!(e, StationError::CentreRefused { .. }) {
            close(st, session.actor(), &rep, None, false)
        } else {
            roll_back(st, session.actor(), &rep, None)
        };
        return Err(super::replace::unheld(refused(st, e), rep_id, rolled));
    }

    // 2. issue
    let issued = crate::issuance::issue(st, session, &input.issue, progress);
    crate::failpoint::hit("replace.issued");

    // 3. settle
    let rep = open(st, rep_id)?
        .ok_or_else(|| StationError::Other(format!("replacement {rep_id} is not open")))?;
    let settled = settle(st, session.actor(), &rep);
    match (issued, settled) {
        (Ok(new), Ok((s, revoked))) if s.outcome == "completed" => Ok(ReplaceReport {
            replacement: rep_id,
            old_document: document,
            old_status: revoked.state,
            reason: input.reason.clone(),
            crl_reason: crl.into(),
            revoked_certificates: revoked.revoked,
            new,
        }),
        (Ok(_), Ok((s, _))) => Err(StationError::Other(format!(
            "replacement {rep_id}: the new card was issued but the replacement is {}",
            s.outcome
        ))),
        (Ok(new), Err(e)) => Err(with_note(
            e,
            &format!(
                "the new card (document {}) is issued; document {document} is still held at the \
                 national centre: `idstation recover` revokes it there once the centre answers",
                new.document
            ),
        )),
        (Err(e), settled) => {
            let note = match settled.as_ref().map(|(s, _)| s.outcome) {
                Ok("rolled-back") => format!(
                    "replacement of document {document} rolled back: it is active again at the \
                     national centre"
                ),
                _ => format!(
                    "replacement of document {document} pending: `idstation recover` finishes \
                     the new card's issuance, then the replacement"
                ),
            };
            Err(with_note(e, &note))
        }
    }
}

/// The old document as the centre has it may be replaced here for `input`.
fn check(found: &CardAtCentre, input: &ReplaceInput) -> Result<(), StationError> {
    let document = &found.document;
    if found.state != "active" {
        return Err(StationError::Conflict(format!(
            "document status: document {document} is {} at the national centre; only an active \
             document is replaced",
            found.state
        )));
    }
    let pinfl = &input.issue.holder.record.pinfl;
    if &found.holder.pinfl != pinfl {
        return Err(StationError::invalid(
            "pinfl",
            format!(
                "the holder record is for PINFL {pinfl}, document {document} belongs to another \
                 holder: a replacement is issued to the same holder"
            ),
        ));
    }
    match input.reason.as_str() {
        "recalled" if found.replacement_due.is_none() => Err(StationError::invalid(
            "reason",
            format!(
                "document {document} is not flagged for replacement at the national centre: \
                 recalled is only for a card the centre flagged; choose lost, stolen, damaged or \
                 name-change"
            ),
        )),
        "name-change" => {
            let h = &found.holder;
            let registered = [
                Some(h.surname.as_str()),
                Some(h.given_names.as_str()),
                h.patronymic.as_deref(),
                h.surname_cyrillic.as_deref(),
                h.given_names_cyrillic.as_deref(),
                h.patronymic_cyrillic.as_deref(),
            ];
            super::replace::check_new_name(registered, &input.issue, true)
        }
        _ => Ok(()),
    }
}

/// Replacement `id` if it is still holding.
fn open(st: &Station, id: i64) -> Result<Option<CentreReplacement>, StationError> {
    Ok(st
        .registry
        .open_centre_replacements()?
        .into_iter()
        .find(|r| r.id == id))
}

/// Settle every replacement of another station's card left holding; one that cannot be
/// settled now (the centre away, or refusing) is reported as failed, and the others go on.
pub(super) fn settle_open(
    st: &mut Station,
    actor: &registry::Actor,
) -> Result<Vec<Settled>, StationError> {
    let mut out = Vec::new();
    for rep in st.registry.open_centre_replacements()? {
        out.push(match settle(st, actor, &rep) {
            Ok((s, _)) => s,
            Err(e) => Settled::failed(rep.id, &rep.old_document, &e),
        });
    }
    Ok(out)
}

/// Settle one holding replacement from the state of its issuance job (module docs, step 3);
/// with the centre's answer to the revocation when it completed.
fn settle(
    st: &mut Station,
    actor: &registry::Actor,
    rep: &CentreReplacement,
) -> Result<(Settled, centre_api::RevokeResponse), StationError> {
    let job = match st.registry.holder_by_pinfl(&rep.pinfl)? {
        Some(h) => st
            .registry
            .jobs_of_holder(h.id)?
            .into_iter()
            .filter(|j| j.id > rep.issuance_job_floor)
            .min_by_key(|j| j.id),
        None => None,
    };
    let settled = |outcome, new_document| Settled {
        replacement: rep.id,
        old_document: rep.old_document.clone(),
        outcome,
        new_document,
        error: None,
    };
    let none = || centre_api::RevokeResponse {
        document: rep.old_document.clone(),
        state: "suspended".into(),
        revoked: Vec::new(),
        crl_reason: String::new(),
    };
    match job.as_ref().map(|j| (j, j.state)) {
        Some((_, JobState::Running | JobState::Failed)) => Ok((settled("pending", None), none())),
        Some((job, JobState::Completed)) => {
            let new_number = job.document.ok_or_else(|| {
                StationError::Other(format!("issuance job {} has no document", job.id))
            })?;
            let new_doc = st.registry.document(new_number)?.ok_or_else(|| {
                StationError::Other(format!("no document {new_number} of job {}", job.id))
            })?;
            // The centre's word for a recalled card: replaced (superseded), linked to the new.
            let reason = match rep.reason.as_str() {
                "recalled" => "replaced",
                other => other,
            };
            let old = crate::records::parse_document(&rep.old_document)?;
            let new = new_number.to_string();
            let revoked = crate::ra::revoke_replaced_at_centre(st, actor, old, reason, Some(&new))?;
            st.registry.write(|tx| {
                tx.finish_centre_replacement(rep.id, Some((new_doc.id, job.id)))?;
                tx.audit(&AuditEntry {
                    actor,
                    action: "document.replaced",
                    object: &format!("document:{}", rep.old_document),
                    details: &serde_json::json!({
                        "replacement": rep.id, "reason": rep.reason,
                        "issued_by_office": rep.old_office, "at_centre": true,
                        "state": revoked.state, "crl_reason": revoked.crl_reason,
                        "certificates": revoked.revoked, "new_document": new,
                        "issuance_job": job.id,
                    }),
                })
            })?;
            Ok((settled("completed", Some(new)), revoked))
        }
        // Rolled back, or never begun: the old card is the holder's again.
        Some((job, JobState::RolledBack)) => {
            roll_back(st, actor, rep, Some(job.id))?;
            Ok((settled("rolled-back", None), none()))
        }
        None => {
            roll_back(st, actor, rep, None)?;
            Ok((settled("rolled-back", None), none()))
        }
    }
}

/// The journal rolled back, the hold released at the centre first if the centre made it (it
/// knows the replacement's hold job): a suspension anyone else made is not touched. (A hold
/// request still on its way when the centre says it does not know the job would arrive after
/// this: the document is then left suspended at the centre, for the holder to resume in
/// person.)
fn roll_back(
    st: &mut Station,
    actor: &registry::Actor,
    rep: &CentreReplacement,
    job: Option<i64>,
) -> Result<(), StationError> {
    let held = crate::ra_services::centre_made_hold(st, &rep.hold_job, &rep.old_document)?;
    if held {
        crate::ra_services::seam(st).replacement_settled(
            st,
            actor,
            &rep.old_document,
            &rep.reason,
            None,
        )?;
    }
    close(st, actor, rep, job, held)
}

/// The journal rolled back (`released`: the replacement's hold at the centre released).
fn close(
    st: &mut Station,
    actor: &registry::Actor,
    rep: &CentreReplacement,
    job: Option<i64>,
    released: bool,
) -> Result<(), StationError> {
    st.registry.write(|tx| {
        tx.finish_centre_replacement(rep.id, None)?;
        tx.audit(&AuditEntry {
            actor,
            action: "replacement.rolled-back",
            object: &format!("document:{}", rep.old_document),
            details: &serde_json::json!({
                "replacement": rep.id, "issuance_job": job, "at_centre": true,
                "hold_released": released,
            }),
        })
    })?;
    Ok(())
}
