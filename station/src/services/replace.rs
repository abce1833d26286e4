//! `idstation replace`: a new card for the same holder in place of a lost, stolen or damaged
//! one, one that names them by a former name, or one the national centre recalled, in one job whose every stop leaves the old card active or the new one issued, never
//! neither:
//!
//! 1. **hold** (one transaction): a `document_replacements` row (state holding: the
//!    replacement's journal and, once completed, the link old → new), the old document
//!    SUSPENDED and its certificates on hold (certificateHold). The old document is no longer
//!    active, so the issuance may begin; the hold can still be released.
//! 2. **issue**: the ordinary issuance job ([`crate::issuance::issue`], its own journal and
//!    recovery) onto the blank card in the reader.
//!
//! On a station enrolled to a national centre each step is the centre's too (through
//! [`crate::service_seam::ServiceSeam`]): the old document is held at the centre before the
//! local hold (a suspended document does not count against the one-active-card rule, so the
//! centre reserves the new card; the centre's job for that hold is drawn and journaled with
//! the local hold), the issuance goes through the centre as any issuance, and the settlement
//! revokes the old document at the centre naming the new one (the centre links old → new) or
//! releases the hold there if the centre made it, before the local transaction.
//! 3. **settle** (one transaction), decided by that issuance job: completed → the hold made
//!    final with the reason's CRLReason (lost/stolen keyCompromise — the keys may be in
//!    someone else's hands; damaged cessationOfOperation — the keys are gone with the chip,
//!    not compromised, as `revoke --reason damaged`; name-change superseded — the holder's
//!    record took the new name and the old card names them by the old one; recalled
//!    superseded too — the centre flagged the card, its keys were never at risk), the old document
//!    LOST or REVOKED, the
//!    replacement completed with the new document; rolled back or never begun → the hold
//!    released, the old document active again, the replacement rolled-back; still unfinished
//!    (after the LOCK command) → left for `idstation recover`, which first finishes the
//!    issuance, then settles the replacement ([`settle_open`]).

use registry::{AuditEntry, CertStatus, DocumentStatus, JobState, Replacement};
use serde::Serialize;

use crate::error::StationError;
use crate::issuance::{IssueInput, IssueReport, JobProgress};
use crate::session::Session;
use crate::Station;

use super::refused;
use super::suspend::HOLD;

/// What the clerk hands to a replacement.
pub struct ReplaceInput {
    pub document: String,
    /// One of [`REASONS`].
    pub reason: String,
    /// The new card's issuance: the holder record (same PINFL as the old document's holder),
    /// the reader with the blank card, the holder's PIN and the new PIN letter.
    pub issue: IssueInput,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplaceReport {
    pub replacement: i64,
    pub old_document: String,
    pub old_status: String,
    pub reason: String,
    pub crl_reason: String,
    pub revoked_certificates: Vec<String>,
    pub new: IssueReport,
}

/// How an open replacement was settled.
#[derive(Debug, Clone, Serialize)]
pub struct Settled {
    pub replacement: i64,
    pub old_document: String,
    /// completed, rolled-back, pending (its issuance job is still unfinished), or failed (it
    /// could not be settled now: `error` says why; the next `recover` or `replace` tries again).
    pub outcome: &'static str,
    pub new_document: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Settled {
    /// Replacement `id` of `old_document`, which could not be settled: `e`.
    pub(super) fn failed(id: i64, old_document: &str, e: &StationError) -> Settled {
        tracing::warn!(replacement = id, document = old_document, error = %e, "a replacement could not be settled");
        Settled {
            replacement: id,
            old_document: old_document.to_owned(),
            outcome: "failed",
            new_document: None,
            error: Some(e.to_string()),
        }
    }
}

/// The reasons a card is replaced for. `recalled`: the national centre flagged the card for
/// replacement (its chip data can no longer be authenticated, e.g. after a CSCA withdrawal),
/// on an enrolled station only and only for a card of its own the centre flagged (a disabled
/// station's cards cannot be replaced this way: the centre refuses that station, and another
/// has no record of them).
pub const REASONS: &[&str] = &["lost", "stolen", "damaged", "name-change", "recalled"];

/// The CRLReason of a replacement's reason. A name change supersedes the old card
/// (superseded, RFC 5280 §5.3.1): its keys were never at risk, but its certificates name the
/// holder by the old name.
pub(super) fn crl_reason(reason: &str) -> Result<&'static str, StationError> {
    match reason {
        "lost" | "stolen" => Ok("keyCompromise"),
        "damaged" => Ok("cessationOfOperation"),
        // A recalled card's keys were never at risk either: the new card supersedes it.
        "name-change" | "recalled" => Ok("superseded"),
        other => Err(StationError::invalid(
            "reason",
            format!("{other:?} must be one of lost, stolen, damaged, name-change, recalled"),
        )),
    }
}

/// What becomes of the old document once its replacement is issued: lost (lost, stolen) or
/// revoked (damaged, name change, recalled).
fn old_status(reason: &str) -> Result<DocumentStatus, StationError> {
    match reason {
        "name-change" | "recalled" => Ok(DocumentStatus::Revoked),
        other => crate::records::revocation_for(other).map(|(status, _)| status),
    }
}

/// A recalled card is one the national centre flagged for replacement; asked before anything
/// changes (the centre unreachable: nothing changed).
fn check_recalled(st: &mut Station, session: &Session, number: &str) -> Result<(), StationError> {
    let other = "choose lost, stolen, damaged or name-change";
    if st.config.centre.is_none() {
        return Err(StationError::invalid(
            "reason",
            format!(
                "recalled is for a card the national centre flagged for replacement, and this \
                 station is not enrolled with a centre: {other}"
            ),
        ));
    }
    let asked = crate::centre::to_replace::flagged(st, session, number);
    let older = |e: &StationError| {
        matches!(e, StationError::CentreRefused { refusal, .. }
            if centre_api::CardsToReplaceRequest::refused_as_unknown_field(refusal))
    };
    match asked {
        Err(e) if older(&e) => Err(StationError::invalid(
            "reason",
            format!(
                "the national centre is older than this station and cannot say whether \
                 document {number} is flagged for replacement (upgrade the centre): {other}"
            ),
        )),
        Err(e) => Err(e),
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(StationError::invalid(
            "reason",
            format!(
                "document {number} is not flagged for replacement at the national centre: \
                 recalled is only for a card the centre flagged; {other}"
            ),
        )),
    }
}

/// [`check_new_name`] against the names this station's registry has.
fn check_name_change(
    registered: &registry::NewHolder,
    input: &IssueInput,
) -> Result<(), StationError> {
    let h = registered;
    let names = [
        Some(h.surname.as_str()),
        Some(h.given_names.as_str()),
        h.patronymic.as_deref(),
        h.surname_cyrillic.as_deref(),
        h.given_names_cyrillic.as_deref(),
        h.patronymic_cyrillic.as_deref(),
    ];
    check_new_name(names, input, false)
}

/// A name-change replacement carries the holder's new name: at least one of the names (Latin
/// or Cyrillic) differs from `registered` (this station's registry's, or with `national` the
/// national registry's), and the clerk confirmed the change.
pub(super) fn check_new_name(
    registered: [Option<&str>; 6],
    input: &IssueInput,
    national: bool,
) -> Result<(), StationError> {
    let r = &input.holder.record;
    let typed = [
        Some(r.surname.as_str()),
        Some(r.given_names.as_str()),
        r.patronymic.as_deref(),
        r.surname_cyrillic.as_deref(),
        r.given_names_cyrillic.as_deref(),
        r.patronymic_cyrillic.as_deref(),
    ];
    let (whose, changes) = if national {
        (
            "the ones the national registry has",
            "the national registry",
        )
    } else {
        ("the ones registered", "the registry")
    };
    if registered == typed {
        return Err(StationError::invalid(
            "surname",
            format!(
                "a name-change replacement needs the holder's new name: the names are {whose}; \
                 enter the new name from the holder's documents"
            ),
        ));
    }
    if !input.update_holder {
        return Err(StationError::invalid(
            "surname",
            format!(
                "the holder's new name changes {changes}: confirm it against the holder's \
                 documents (--update-holder) before the replacement"
            ),
        ));
    }
    Ok(())
}

/// Replace document `input.document`. See the module docs.
pub fn replace(
    st: &mut Station,
    session: &Session,
    input: &ReplaceInput,
    progress: &mut dyn FnMut(&JobProgress),
) -> Result<ReplaceReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "replace documents",
        &[registry::Role::Clerk],
    )?;
    let num = input.document.as_str();
    // Earlier interrupted replacements first (their issuance jobs are resolved by the
    // issuance's own recovery; what needs no card is settled here).
    settle_open(st, session.actor())?;
    // Another station's card: the centre's record and this station's journal of it.
    if st.config.centre.is_some() && !issued_here(st, num)? {
        return super::replace_elsewhere::replace(st, session, input, progress);
    }
    let (doc, card, crl) = check(st, input).map_err(|e| refused(st, session, "replace", num, e))?;
    let number = doc.number;
    if input.reason == "recalled" {
        check_recalled(st, session, &number.to_string())
            .map_err(|e| refused(st, session, "replace", num, e))?;
    }

    // 1. hold
    let held = hold(st, session, input, &doc, card.id, crl)?;
    let rep_id = held.id;
    crate::failpoint::hit("replace.held");
    // The national record (a station enrolled to a centre): the old document held there too,
    // which lets the centre reserve the holder's new card. Refused or unanswered: the
    // replacement is rolled back at once if the centre can say whether it made the hold, else
    // left for `idstation recover` (as after a crash in between).
    let national = match &held.hold_job {
        // Under the job the journal holds: a roll-back releases only a hold the centre made.
        Some(job) => {
            crate::ra_services::hold_at_centre(st, session.actor(), job, &number.to_string())
                .map(|_| ())
        }
        None => crate::ra_services::seam(st)
            .hold(st, session.actor(), &number.to_string())
            .map(|_| ()),
    };
    if let Err(e) = national {
        let rep = st
            .registry
            .open_replacements()?
            .into_iter()
            .find(|r| r.id == rep_id);
        let rolled = match rep {
            Some(rep) => settle(st, session.actor(), &rep).map(|_| ()),
            None => Ok(()),
        };
        return Err(unheld(
            refused(st, session, "replace", num, e),
            rep_id,
            rolled,
        ));
    }

    // 2. issue
    let issued = crate::issuance::issue(st, session, &input.issue, progress);
    crate::failpoint::hit("replace.issued");

    // 3. settle
    let rep = st
        .registry
        .open_replacements()?
        .into_iter()
        .find(|r| r.id == rep_id)
        .ok_or_else(|| StationError::Other(format!("replacement {rep_id} is not open")))?;
    let settled = settle(st, session.actor(), &rep)?;
    finish(st, input, issued, &settled, &held, number)
}

/// Whether this station's registry has document `num` (a number that does not parse is left
/// to [`check`], which names it).
fn issued_here(st: &Station, num: &str) -> Result<bool, StationError> {
    match crate::records::parse_document(num) {
        Ok(n) => Ok(st.registry.document(n)?.is_some()),
        Err(_) => Ok(true),
    }
}

/// The replacement's preconditions: the document is active, issued on a card, and the
/// holder's (and, for a name change, the holder's new name); the document, its card and the
/// old certificates' CRL reason.
fn check(
    st: &Station,
    input: &ReplaceInput,
) -> Result<(registry::Document, registry::Card, &'static str), StationError> {
    let num = input.document.as_str();
    let crl = crl_reason(&input.reason)?;
    let number = crate::records::parse_document(num)?;
    let doc = st
        .registry
        .document(number)?
        .ok_or_else(|| StationError::NotFound(format!("document: no document {number}")))?;
    if doc.status != DocumentStatus::Active {
        return Err(StationError::Conflict(format!(
            "document status: document {number} is {}; only an active document is replaced",
            doc.status.as_str()
        )));
    }
    let holder = st
        .registry
        .holder(doc.holder_id)?
        .ok_or_else(|| StationError::Other(format!("document {number} has no holder")))?;
    if holder.data.pinfl != input.issue.holder.record.pinfl {
        return Err(StationError::invalid(
            "pinfl",
            format!(
                "the holder record is for PINFL {}, document {number} belongs to another \
                 holder: a replacement is issued to the same holder",
                input.issue.holder.record.pinfl
            ),
        ));
    }
    if input.reason == "name-change" {
        check_name_change(&holder.data, &input.issue)?;
    }
    let card = st.registry.card_of_document(doc.id)?.ok_or_else(|| {
        StationError::Conflict(format!(
            "document {number} has no card on record: only an issued document is replaced"
        ))
    })?;
    Ok((doc, card, crl))
}

/// A replacement begun: its id, the certificates it put on hold, their CRL reason.
struct Held {
    id: i64,
    certs: Vec<registry::Certificate>,
    crl: &'static str,
    /// The centre's job for the hold there (an enrolled station).
    hold_job: Option<String>,
}

/// Step 1, one registry transaction: the replacement recorded, the old document suspended and
/// its active certificates on hold; the replacement's id and the held certificates.
fn hold(
    st: &mut Station,
    session: &Session,
    input: &ReplaceInput,
    doc: &registry::Document,
    card_id: i64,
    crl: &'static str,
) -> Result<Held, StationError> {
    let number = doc.number;
    let certs: Vec<_> = st
        .registry
        .certificates_of_card(card_id)?
        .into_iter()
        .filter(|c| c.status == CertStatus::Active)
        .collect();
    let now = registry::now_rfc3339();
    // On an enrolled station, the centre's job for the hold there, drawn before it is asked for.
    let hold_job = match st.config.centre {
        Some(_) => Some(crate::ra_services::job_uuid()?),
        None => None,
    };
    let tx = st.registry.transaction()?;
    let rep_id = tx.start_replacement(
        doc.id,
        doc.holder_id,
        &input.reason,
        crl,
        hold_job.as_deref(),
        session.actor(),
    )?;
    tx.set_document_status(
        number,
        DocumentStatus::Suspended,
        "replacement",
        session.actor(),
    )?;
    for c in &certs {
        tx.revoke_certificate(c.id, HOLD, &now)?;
    }
    tx.audit(&AuditEntry {
        actor: session.actor(),
        action: "replacement.started",
        object: &format!("document:{number}"),
        details: &serde_json::json!({
            "replacement": rep_id,
            "reason": input.reason,
            "held": certs.iter().map(|c| c.data.serial.as_str()).collect::<Vec<_>>(),
        }),
    })?;
    tx.commit()?;
    Ok(Held {
        id: rep_id,
        certs,
        crl,
        hold_job,
    })
}

/// The outcome once the replacement is settled: the report, or the issuance's error with a
/// note saying whether the old document is active again or the replacement is pending.
fn finish(
    st: &Station,
    input: &ReplaceInput,
    issued: Result<crate::issuance::IssueReport, StationError>,
    settled: &Settled,
    held: &Held,
    number: registry::DocumentNumber,
) -> Result<ReplaceReport, StationError> {
    let (rep_id, crl, certs) = (held.id, held.crl, &held.certs);
    match issued {
        Ok(new) => {
            if settled.outcome != "completed" {
                return Err(StationError::Other(format!(
                    "replacement {rep_id}: the new card was issued but the replacement is {}",
                    settled.outcome
                )));
            }
            let old = st
                .registry
                .document(number)?
                .ok_or_else(|| StationError::Other(format!("document {number} vanished")))?;
            Ok(ReplaceReport {
                replacement: rep_id,
                old_document: number.to_string(),
                old_status: old.status.as_str().into(),
                reason: input.reason.clone(),
                crl_reason: crl.into(),
                revoked_certificates: certs.iter().map(|c| c.data.serial.clone()).collect(),
                new,
            })
        }
        Err(e) => {
            let note = match settled.outcome {
                "rolled-back" => format!(
                    "replacement of document {number} rolled back: the old document is active again"
                ),
                _ => format!(
                    "replacement of document {number} pending: `idstation recover` finishes the \
                     new card's issuance, then the replacement"
                ),
            };
            Err(with_note(e, &note))
        }
    }
}

/// The hold's refusal `e` of replacement `rep_id`, noting when the roll-back that followed
/// (`rolled`) could not be done and is left for `recover`.
pub(super) fn unheld(
    e: StationError,
    rep_id: i64,
    rolled: Result<(), StationError>,
) -> StationError {
    match rolled {
        Ok(()) => e,
        Err(r) => with_note(
            e,
            &format!(
                "replacement {rep_id} stays open until the centre answers (`idstation recover` \
                 settles it): {r}"
            ),
        ),
    }
}

/// `e` with `note` added to its message, keeping its kind (and so its exit code).
pub(super) fn with_note(e: StationError, note: &str) -> StationError {
    match e {
        StationError::Card { step, message } => StationError::Card {
            step,
            message: format!("{message}; {note}"),
        },
        StationError::Invalid { field, rule } => StationError::Invalid {
            field,
            rule: format!("{rule}; {note}"),
        },
        StationError::Conflict(m) => StationError::Conflict(format!("{m}; {note}")),
        StationError::NotPermitted(m) => StationError::NotPermitted(format!("{m}; {note}")),
        StationError::NotFound(m) => StationError::NotFound(format!("{m}; {note}")),
        StationError::Other(m) => StationError::Other(format!("{m}; {note}")),
        other => {
            tracing::warn!(%note, "replacement");
            other
        }
    }
}

/// Settle every replacement left holding (a crash, or an issuance left for recovery); one that
/// cannot be settled now is reported as failed (`Settled::error`) and the others go on.
pub fn settle_open(
    st: &mut Station,
    actor: &registry::Actor,
) -> Result<Vec<Settled>, StationError> {
    let mut out = Vec::new();
    for rep in st.registry.open_replacements()? {
        out.push(match settle(st, actor, &rep) {
            Ok(s) => s,
            Err(e) => {
                let number = st
                    .registry
                    .documents_of_holder(rep.holder_id)
                    .ok()
                    .and_then(|ds| ds.into_iter().find(|d| d.id == rep.old_document_id))
                    .map_or_else(
                        || format!("(document id {})", rep.old_document_id),
                        |d| d.number.to_string(),
                    );
                Settled::failed(rep.id, &number, &e)
            }
        });
    }
    out.extend(super::replace_elsewhere::settle_open(st, actor)?);
    Ok(out)
}

/// Settle one holding replacement from the state of its issuance job (module docs, step 3).
fn settle(
    st: &mut Station,
    actor: &registry::Actor,
    rep: &Replacement,
) -> Result<Settled, StationError> {
    let old = st
        .registry
        .documents_of_holder(rep.holder_id)?
        .into_iter()
        .find(|d| d.id == rep.old_document_id)
        .ok_or_else(|| StationError::Other(format!("replacement {}: no old document", rep.id)))?;
    let job = st
        .registry
        .jobs_of_holder(rep.holder_id)?
        .into_iter()
        .filter(|j| j.id > rep.issuance_job_floor)
        .min_by_key(|j| j.id);
    let held: Vec<_> = match st.registry.card_of_document(old.id)? {
        Some(card) => st
            .registry
            .certificates_of_card(card.id)?
            .into_iter()
            .filter(|c| {
                c.status == CertStatus::Revoked && c.revocation_reason.as_deref() == Some(HOLD)
            })
            .collect(),
        None => Vec::new(),
    };
    let number = old.number;
    match job.as_ref().map(|j| j.state) {
        Some(JobState::Running) | Some(JobState::Failed) => Ok(Settled {
            replacement: rep.id,
            old_document: number.to_string(),
            outcome: "pending",
            new_document: None,
            error: None,
        }),
        Some(JobState::Completed) => {
            let job = job.as_ref().expect("matched Some");
            let new_number = job.document.ok_or_else(|| {
                StationError::Other(format!("issuance job {} has no document", job.id))
            })?;
            let new_doc = st.registry.document(new_number)?.ok_or_else(|| {
                StationError::Other(format!("no document {new_number} of job {}", job.id))
            })?;
            let status = old_status(&rep.reason)?;
            crate::ra_services::seam(st).replacement_settled(
                st,
                actor,
                &number.to_string(),
                &rep.reason,
                Some(&new_number.to_string()),
            )?;
            let now = registry::now_rfc3339();
            let tx = st.registry.transaction()?;
            for c in &held {
                tx.finalize_certificate_hold(c.id, &rep.crl_reason, &now)?;
            }
            // Revoked meanwhile (`idstation revoke` of the held document): that status stays.
            if old.status == DocumentStatus::Suspended {
                tx.set_document_status(
                    number,
                    status,
                    &format!("replaced: {}", rep.reason),
                    actor,
                )?;
            }
            tx.finish_replacement(rep.id, Some((new_doc.id, job.id)))?;
            tx.audit(&AuditEntry {
                actor,
                action: "document.replaced",
                object: &format!("document:{number}"),
                details: &serde_json::json!({
                    "replacement": rep.id,
                    "reason": rep.reason,
                    "crl_reason": rep.crl_reason,
                    "certificates": held.iter().map(|c| c.data.serial.as_str()).collect::<Vec<_>>(),
                    "new_document": new_number.to_string(),
                    "issuance_job": job.id,
                }),
            })?;
            tx.commit()?;
            Ok(Settled {
                replacement: rep.id,
                old_document: number.to_string(),
                outcome: "completed",
                new_document: Some(new_number.to_string()),
                error: None,
            })
        }
        // Rolled back, or never begun: the old card is the holder's again.
        Some(JobState::RolledBack) | None => {
            // The hold at the centre is released only if the centre made it (a replacement
            // begun before its job was journaled: as before, whenever held here).
            let made = match (&rep.hold_job, &st.config.centre) {
                (Some(job), Some(_)) if old.status == DocumentStatus::Suspended => {
                    let n = number.to_string();
                    crate::ra_services::centre_made_hold(st, job, &n)?
                }
                _ => true,
            };
            if old.status == DocumentStatus::Suspended && made {
                crate::ra_services::seam(st).replacement_settled(
                    st,
                    actor,
                    &number.to_string(),
                    &rep.reason,
                    None,
                )?;
            }
            let tx = st.registry.transaction()?;
            // Revoked meanwhile (`idstation revoke` of the held document): it stays revoked.
            if old.status == DocumentStatus::Suspended {
                tx.set_document_status(
                    number,
                    DocumentStatus::Active,
                    "replacement rolled back",
                    actor,
                )?;
                for c in &held {
                    tx.release_certificate_hold(c.id)?;
                }
            }
            tx.finish_replacement(rep.id, None)?;
            tx.audit(&AuditEntry {
                actor,
                action: "replacement.rolled-back",
                object: &format!("document:{number}"),
                details: &serde_json::json!({
                    "replacement": rep.id,
                    "issuance_job": job.as_ref().map(|j| j.id),
                }),
            })?;
            tx.commit()?;
            Ok(Settled {
                replacement: rep.id,
                old_document: number.to_string(),
                outcome: "rolled-back",
                new_document: None,
                error: None,
            })
        }
    }
}

/// Settle replacements left holding (`idstation replace` interrupted): after the issuance
/// jobs are resolved, each replacement is completed (its new card issued) or rolled back (the
/// old document active again); one whose issuance is still unfinished stays pending. See
/// this module. Clerk or ca-admin.
pub fn recover(
    st: &mut Station,
    session: &crate::session::Session,
) -> Result<Vec<Settled>, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "recover replacements",
        &[registry::Role::Clerk, registry::Role::CaAdmin],
    )?;
    settle_open(st, session.actor())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn input(update_holder: bool) -> IssueInput {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/holders/holder-01.json");
        let holder = crate::holder::load(
            &p,
            &crate::holder::ValidationPolicy::new(date!(2026 - 01 - 01)),
        )
        .expect("the fixture holder is valid");
        IssueInput {
            holder,
            reader: None,
            pin: zeroize::Zeroizing::new(String::new()),
            pin_letter: "letter.pdf".into(),
            update_holder,
        }
    }

    #[test]
    fn each_reason_has_its_crl_reason_and_the_old_documents_status() {
        let expected = [
            ("lost", "keyCompromise", DocumentStatus::Lost),
            ("stolen", "keyCompromise", DocumentStatus::Lost),
            ("damaged", "cessationOfOperation", DocumentStatus::Revoked),
            ("name-change", "superseded", DocumentStatus::Revoked),
            ("recalled", "superseded", DocumentStatus::Revoked),
        ];
        assert_eq!(
            REASONS,
            expected.iter().map(|e| e.0).collect::<Vec<_>>().as_slice()
        );
        for (reason, crl, status) in expected {
            assert_eq!(crl_reason(reason).expect(reason), crl);
            assert_eq!(old_status(reason).expect(reason), status);
        }
        let e = crl_reason("renamed").expect_err("not a reason");
        assert!(e.to_string().contains("name-change"), "{e}");
    }

    #[test]
    fn a_name_change_needs_a_new_name_and_the_clerks_confirmation() {
        let new = input(true);
        let mut registered = registry::NewHolder::try_from(&new.holder).expect("holder");
        // The same names: refused, naming the surname field.
        let e = check_name_change(&registered, &new).expect_err("same names");
        assert!(e.to_string().contains("surname"), "{e}");
        assert!(e.to_string().contains("new name"), "{e}");
        // The registry has the old surname: a name change.
        registered.surname = "Karimova".into();
        check_name_change(&registered, &new).expect("a new surname");
        // Only the Cyrillic form changed: still a name change.
        let mut cyr = registry::NewHolder::try_from(&new.holder).expect("holder");
        cyr.surname_cyrillic = Some("Каримова".into());
        check_name_change(&cyr, &new).expect("a new Cyrillic surname");
        // Not confirmed by the clerk: refused.
        let e = check_name_change(&registered, &input(false)).expect_err("unconfirmed");
        assert!(e.to_string().contains("confirm"), "{e}");
    }
}
