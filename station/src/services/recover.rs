//! `idstation recover` for card services: renewal and unblock jobs left `running` by a process
//! that died (a service whose process is alive holds its document's lock and is left alone).
//!
//! - **renew, stopped before `ca.issue` finished**: nothing of it is in use (the old
//!   certificates are still the document's active ones): rolled back — the national centre
//!   (when enrolled) is told to abort the job's UUID, which revokes whatever it may have
//!   issued; locally the job ends `rolled-back`. The card may hold new keys under its old
//!   certificates until the next renewal generates again.
//! - **renew, stopped after `ca.issue`**: the new certificates exist and may be on the card;
//!   finishing needs the card and the holder's PIN (read back, test signatures), so recovery
//!   does not touch it and reports it `waiting-for-card` (unless the centre aborted it meanwhile,
//!   its renewal timeout: then it is rolled back, its certificates revoked here too, and the
//!   next renewal makes new ones): the next `idstation renew` of the
//!   document, with the card, resumes it at `card.install`.
//! - **unblock**: the card holds its old or its new PIN and nothing else depends on it: the
//!   job ends `failed`; the next `idstation unblock` sets the PIN again.
//! - **a renewal of another office's card** (`centre_renewals`, kind `renew-at-centre`): as a
//!   renewal, by whether the centre's certificates were journaled (`certified`).

use registry::{AuditEntry, JobState, ServiceJob, ServiceKind, StepState};
use serde::Serialize;
use serde_json::json;

use super::ServiceStep;
use crate::datadir::{Work, WorkLock};
use crate::error::StationError;
use crate::service_seam::Renewal;
use crate::session::Session;
use crate::Station;

/// What recovery did with one service job.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRecovered {
    pub service_job: i64,
    pub kind: &'static str,
    pub document: String,
    /// rolled-back, waiting-for-card or failed.
    pub outcome: &'static str,
    pub detail: String,
}

/// Settle every interrupted card service job (see the module documentation). Clerk or
/// ca-admin.
pub fn recover(st: &mut Station, session: &Session) -> Result<Vec<ServiceRecovered>, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "recover card services",
        &[registry::Role::Clerk, registry::Role::CaAdmin],
    )?;
    let mut out = Vec::new();
    for job in st.registry.unfinished_service_jobs()? {
        let Ok(_lock) = WorkLock::acquire(&st.layout.root, Work::CardService(job.document_id))
        else {
            continue;
        };
        let document = document_text(st, &job)?;
        let r = match job.kind {
            ServiceKind::Unblock => fail_unblock(st, session, &job, &document)?,
            ServiceKind::Renew => recover_renewal(st, session, &job, &document)?,
        };
        out.push(r);
    }
    for r in st.registry.running_centre_renewals()? {
        let number = crate::records::parse_document(&r.document)?;
        let Ok(_lock) = WorkLock::acquire(&st.layout.root, Work::centre_renewal(number)) else {
            continue;
        };
        // Read again under the lock: a process that held it may have finished it meanwhile.
        match st.registry.running_centre_renewal(&r.document)? {
            Some(now) if now.id == r.id => out.push(recover_centre_renewal(st, session, &now)?),
            _ => continue,
        }
    }
    Ok(out)
}

/// A renewal of another office's card (its journal, `centre_renewals`): aborted at the centre
/// and rolled back when it never got its certificates, else left for the card.
fn recover_centre_renewal(
    st: &mut Station,
    session: &Session,
    r: &registry::CentreRenewal,
) -> Result<ServiceRecovered, StationError> {
    let recovered = |outcome, detail| ServiceRecovered {
        service_job: r.id,
        kind: "renew-at-centre",
        document: r.document.clone(),
        outcome,
        detail,
    };
    if r.certificates.is_some() {
        if let Some(why) = aborted_at_centre(st, &r.uuid) {
            super::renew_elsewhere::roll_back_journal(st, session.actor(), r, &why)?;
            return Ok(recovered("rolled-back", why));
        }
        return Ok(recovered(
            "waiting-for-card",
            format!(
                "a renewal of office {}'s card {}: its certificates are issued and may be on the \
                 card: run `idstation renew --document {}` with the card and the holder's PIN to \
                 finish it",
                r.office, r.card_serial, r.document
            ),
        ));
    }
    let reason = "interrupted before its certificates were issued; rolled back by recovery";
    super::renew_elsewhere::abort_and_roll_back(st, session.actor(), r, reason)?;
    Ok(recovered("rolled-back", reason.into()))
}

/// Why the centre aborted renewal `uuid` left for its card (its timeout), on an enrolled
/// station; `None` while it can still complete, on a standalone station, and when the centre
/// cannot be asked now (logged: the renewal stays waiting for its card).
fn aborted_at_centre(st: &Station, uuid: &str) -> Option<String> {
    if st.config.centre.is_none() || uuid.is_empty() {
        return None;
    }
    crate::ra_services::renewal_aborted_at_centre(st, uuid)
        .inspect_err(|e| tracing::warn!(renewal = uuid, error = %e, "could not ask the centre about a renewal"))
        .ok()
        .flatten()
}

fn document_text(st: &Station, job: &ServiceJob) -> Result<String, StationError> {
    let doc = st
        .registry
        .documents_of_holder(job.holder_id)?
        .into_iter()
        .find(|d| d.id == job.document_id)
        .ok_or_else(|| {
            StationError::Other(format!(
                "service job {}: no document {}",
                job.id, job.document_id
            ))
        })?;
    Ok(doc.number.to_string())
}

fn fail_unblock(
    st: &mut Station,
    session: &Session,
    job: &ServiceJob,
    document: &str,
) -> Result<ServiceRecovered, StationError> {
    let why = "interrupted; the card has its old or its new PIN: run `idstation unblock` again";
    st.registry.write(|t| {
        t.end_service_job(job.id, JobState::Failed, Some(why))?;
        t.audit(&AuditEntry {
            actor: session.actor(),
            action: "unblock.failed",
            object: &format!("document:{document}"),
            details: &json!({ "service_job": job.id, "error": why, "by": "recovery" }),
        })?;
        Ok(())
    })?;
    Ok(ServiceRecovered {
        service_job: job.id,
        kind: "unblock",
        document: document.into(),
        outcome: "failed",
        detail: why.into(),
    })
}

fn recover_renewal(
    st: &mut Station,
    session: &Session,
    job: &ServiceJob,
    document: &str,
) -> Result<ServiceRecovered, StationError> {
    let issued = job
        .step(ServiceStep::CaIssue.as_str())
        .is_some_and(|s| s.state == StepState::Done);
    if issued {
        if let Some(why) = aborted_at_centre(st, &super::renew::renewal_uuid(job)) {
            // Whatever the document's state now (it may have been suspended or declared lost
            // since): its issuance job is all the rollback needs.
            let number = crate::records::parse_document(document)?;
            let rolled_back = match st.registry.job_of_document(number)? {
                Some(issuance) => {
                    let e = StationError::Conflict(why.clone());
                    super::renew::roll_back_locally(
                        st,
                        session.actor(),
                        (issuance.id, document),
                        job.id,
                        &e,
                    )
                }
                None => Err(StationError::Other(format!(
                    "document {document}: no issuance job in this registry"
                ))),
            };
            return Ok(match rolled_back {
                Ok(()) => ServiceRecovered {
                    service_job: job.id,
                    kind: "renew",
                    document: document.into(),
                    outcome: "rolled-back",
                    detail: why,
                },
                Err(e) => ServiceRecovered {
                    service_job: job.id,
                    kind: "renew",
                    document: document.into(),
                    outcome: "waiting-for-card",
                    detail: format!("{why}; it could not be rolled back here: {e}"),
                },
            });
        }
        return Ok(ServiceRecovered {
            service_job: job.id,
            kind: "renew",
            document: document.into(),
            outcome: "waiting-for-card",
            detail: format!(
                "its certificates are issued and may be on card {}: run `idstation renew --document {document}` with the card and the holder's PIN to finish it",
                job.card_serial
            ),
        });
    }
    let uuid = super::renew::renewal_uuid(job);
    let holder = st
        .registry
        .holder(job.holder_id)?
        .ok_or_else(|| StationError::Other(format!("service job {}: no holder", job.id)))?;
    let reason = "interrupted before its certificates were issued; rolled back by recovery";
    if !uuid.is_empty() {
        let renewal = Renewal {
            service_job: job.id,
            uuid: &uuid,
            document,
            date_of_expiry: "",
            card_serial: &job.card_serial,
            holder: &holder.data,
        };
        crate::ra_services::seam(st).renewal_abort(st, session.actor(), &renewal, reason)?;
    }
    st.registry.write(|t| {
        t.end_service_job(job.id, JobState::RolledBack, Some(reason))?;
        t.audit(&AuditEntry {
            actor: session.actor(),
            action: "renewal.rolled-back",
            object: &format!("document:{document}"),
            details: &json!({ "service_job": job.id, "error": reason, "revoked": [], "by": "recovery" }),
        })?;
        Ok(())
    })?;
    Ok(ServiceRecovered {
        service_job: job.id,
        kind: "renew",
        document: document.into(),
        outcome: "rolled-back",
        detail: reason.into(),
    })
}
