//! Recovery of unfinished issuance jobs (at every issuance, and by `idstation recover`).
//!
//! A job is unfinished when its process died or failed after the LOCK command may have reached
//! the card. Jobs whose process is alive (it holds the job's lock file) are never touched.
//!
//! - No `card.lock` step journaled: the card cannot be LOCKED by this job, so the job is rolled
//!   back — its certificates revoked (cessationOfOperation, on the next CRL), its document
//!   number spoiled (if the card was written) or released, the job `rolled-back`. The card is
//!   reset when it is next inserted for an issuance.
//! - `card.lock` journaled: only the card can say whether LOCK arrived. With the card at hand:
//!   LOCKED with exactly this job's certificates → the issuance is completed; otherwise it is
//!   reset and the job rolled back. Without the card, automatic recovery leaves the job for the
//!   card's next insertion; `idstation recover --without-card` rolls it back (the certificates
//!   are revoked, so a LOCKED card that never came back cannot be used to sign).

use personalization::executor::{self, Personalizer};
use personalization::lifecycle::Lifecycle;
use personalization::transport::pcsc::Pcsc;
use personalization::transport::Transport;
use profiles::card::Slot;
use registry::{Actor, Job, Rollback};
use serde::Serialize;

use crate::datadir::{Work, WorkLock};
use crate::error::StationError;
use crate::journal::{JobStep, Reached};
use crate::registrar::Registrar;
use crate::Station;

#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    pub job_id: i64,
    pub outcome: &'static str,
    pub detail: String,
}

/// Finish interrupted dual-control CA requests (key rotation, root rollover, CA revocation):
/// see [`crate::rotation::recover`].
/// Clerk or ca-admin.
pub fn recover_ca_requests(
    st: &mut Station,
    session: &crate::session::Session,
) -> Result<Vec<crate::rotation::Recovered>, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "recover CA requests",
        &[registry::Role::Clerk, registry::Role::CaAdmin],
    )?;
    crate::rotation::recover(st, session.actor())
}

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Resolve what needs no card; leave jobs that need their card.
    Automatic,
    /// Also look for each job's card in the readers; leave the job when the card is absent.
    LookForCards,
    /// Look for each job's card in the readers; roll the job back when the card is absent.
    WithoutCardRollsBack,
}

/// How far `job` got, as its journal shows.
fn reached(job: &Job) -> Reached {
    Reached::from_journal(job.steps.iter().map(|s| s.step.as_str()))
}

/// Roll `job` back through the [`Registrar`] (the card reset now, if `card_reset` names it).
fn roll_back(
    st: &mut Station,
    actor: &Actor,
    registrar: &dyn Registrar,
    job: &Job,
    card_reset: Option<String>,
    reason: &str,
) -> Result<Resolved, StationError> {
    let number = reached(job).number_on_rollback();
    let rollback = Rollback {
        job_id: job.id,
        number,
        card_reset,
        reason: reason.into(),
    };
    let summary = registrar.abort(st, actor, &rollback, job.card_serial.as_deref())?;
    crate::audit::checkpoint_after(st, "recovery.rolled-back");
    Ok(Resolved {
        job_id: job.id,
        outcome: "rolled-back",
        detail: format!(
            "{reason}; {} certificate(s) revoked, document number {}",
            summary.revoked_certificates.len(),
            number.as_str()
        ),
    })
}

/// Resolve every unfinished job that `mode` allows. Returns what was done.
/// Clerk or ca-admin.
pub fn recover(
    st: &mut Station,
    session: &crate::session::Session,
    mode: Mode,
) -> Result<Vec<Resolved>, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "recover issuances",
        &[registry::Role::Clerk, registry::Role::CaAdmin],
    )?;
    let (_, registrar) = crate::ra::seams(st);
    recover_as(st, &session.actor().clone(), registrar.as_ref(), mode)
}

/// [`recover`] on behalf of `actor` (an issuance that found an unfinished job on its card).
fn recover_as(
    st: &mut Station,
    actor: &Actor,
    registrar: &dyn Registrar,
    mode: Mode,
) -> Result<Vec<Resolved>, StationError> {
    let mut out = Vec::new();
    if st.config.centre.is_some() {
        // Reservations the centre holds for jobs never recorded here; the centre being away
        // leaves them for the next run.
        match crate::ra::recover_pending(st, actor) {
            Ok(settled) => out.extend(settled.into_iter().map(|job| Resolved {
                job_id: 0,
                outcome: "released",
                detail: format!("reservation {job} at the centre, never recorded here, aborted"),
            })),
            Err(e) => {
                tracing::warn!(error = %e, "pending reservations at the centre left for later")
            }
        }
    }
    let jobs = st.registry.unfinished_jobs()?;
    for job in jobs {
        if WorkLock::is_held(&st.layout.root, Work::IssuanceJob(job.id)) {
            continue;
        }
        let Ok(_lock) = WorkLock::acquire(&st.layout.root, Work::IssuanceJob(job.id)) else {
            continue;
        };
        if !reached(&job).lock_may_have_reached_the_card() {
            out.push(roll_back(
                st,
                actor,
                registrar,
                &job,
                None,
                "unfinished issuance rolled back by recovery",
            )?);
            continue;
        }
        if mode == Mode::Automatic {
            out.push(Resolved {
                job_id: job.id,
                outcome: "left",
                detail: format!(
                    "LOCK may have reached card {}: insert it to finish, or run `idstation recover --without-card`",
                    job.card_serial.as_deref().unwrap_or("?")
                ),
            });
            continue;
        }
        let serial = job.card_serial.clone().unwrap_or_default();
        match crate::readers::find_card(&serial) {
            Some(reader) => {
                let pcsc = Pcsc::establish().map_err(|e| StationError::card(None, &e))?;
                let mut card = pcsc
                    .connect(&reader)
                    .map_err(|e| StationError::card(None, &e.in_step("connect to the card")))?;
                let mut tx = card.begin().map_err(|e| {
                    StationError::card(None, &e.in_step("open a card transaction"))
                })?;
                out.push(resolve_with_card(st, actor, registrar, &job, &mut tx)?);
            }
            None if mode == Mode::WithoutCardRollsBack => out.push(roll_back(
                st,
                actor,
                registrar,
                &job,
                None,
                &format!("card {serial} not present; its certificates are revoked"),
            )?),
            None => out.push(Resolved {
                job_id: job.id,
                outcome: "left",
                detail: format!(
                    "card {serial} is not in a reader: insert it and run recover again, or use --without-card"
                ),
            }),
        }
    }
    Ok(out)
}

/// Before an issuance on card `serial`: resolve unfinished jobs of that card with the card.
pub(crate) fn recover_with_card(
    st: &mut Station,
    actor: &Actor,
    registrar: &dyn Registrar,
    tx: &mut dyn Transport,
    serial: u32,
) -> Result<Vec<Resolved>, StationError> {
    let mut out = recover_as(st, actor, registrar, Mode::Automatic)?;
    let serial = crate::card::serial_text(serial);
    for job in st.registry.unfinished_jobs()? {
        if job.card_serial.as_deref() != Some(serial.as_str())
            || WorkLock::is_held(&st.layout.root, Work::IssuanceJob(job.id))
        {
            continue;
        }
        let Ok(_lock) = WorkLock::acquire(&st.layout.root, Work::IssuanceJob(job.id)) else {
            continue;
        };
        out.push(resolve_with_card(st, actor, registrar, &job, tx)?);
    }
    Ok(out)
}

/// The Document Signer certificate serial journaled with the job's `card.complete` step (the
/// key that signed the EF.SOD now on the card); `None` for a job an older version journaled.
fn journaled_document_signer(job: &Job) -> Option<String> {
    job.steps
        .iter()
        .rev()
        .filter(|s| s.step == JobStep::CardComplete.as_str())
        .find_map(|s| {
            let details: serde_json::Value = serde_json::from_str(&s.details).ok()?;
            details.get("document_signer")?.as_str().map(str::to_owned)
        })
}

fn resolve_with_card(
    st: &mut Station,
    actor: &Actor,
    registrar: &dyn Registrar,
    job: &Job,
    tx: &mut dyn Transport,
) -> Result<Resolved, StationError> {
    let profile = st.card_profile()?.clone();
    let info = executor::inspect(tx).map_err(|e| StationError::card(Some("recovery"), &e))?;
    let certs = st.registry.certificates_of_job(job.id)?;
    let slot_of = |purpose: &str| {
        profile
            .keys
            .iter()
            .find(|k| k.certificate_profile == purpose)
            .map(|k| k.slot)
    };
    let slot_certs: Vec<(Slot, Vec<u8>)> = certs
        .iter()
        .filter_map(|c| slot_of(&c.data.purpose).map(|s| (s, c.data.der.clone())))
        .collect();
    if info.lifecycle == Lifecycle::Locked
        && executor::verify_issued(tx, info.serial, &slot_certs).is_ok()
    {
        let doc = st.document_profile()?;
        let issued =
            registry::validate::date("created_at", job.created_at.get(..10).unwrap_or(""))?;
        let completion = registry::Completion {
            job_id: job.id,
            date_of_issue: issued.to_string(),
            date_of_expiry: doc.expiry(issued).to_string(),
            card_serial: crate::card::serial_text(info.serial),
            certificate_ids: certs.iter().map(|c| c.id).collect(),
            document_signer: journaled_document_signer(job),
        };
        if let Err(e) =
            registrar.complete(st, actor, &completion, JobStep::RegistryComplete.as_str())
        {
            // Refused for good (the centre aborted the job, so the registrar rolled it back
            // here): recovery is done with it; the card is void.
            return match st.registry.job(job.id)? {
                Some(now) if now.state == registry::JobState::RolledBack => {
                    crate::audit::checkpoint_after(st, "recovery.rolled-back");
                    Ok(Resolved {
                        job_id: job.id,
                        outcome: "rolled-back",
                        detail: e.to_string(),
                    })
                }
                _ => Err(e),
            };
        }
        return Ok(Resolved {
            job_id: job.id,
            outcome: "completed",
            detail: "the card is LOCKED with this job's certificates".into(),
        });
    }
    if info.lifecycle == Lifecycle::Locked {
        return roll_back(
            st,
            actor,
            registrar,
            job,
            None,
            "the card is LOCKED but not with this job's certificates",
        );
    }
    // Under the key the job's journal says the card went under: the centre's is asked for
    // again (the job's UUID names it), this station's is derived again.
    let key = match crate::card::journaled_card_key(job) {
        Some(_) => crate::ra::centre_card_key_for_job(st, actor, job.id, &profile, info.serial)?.0,
        None => crate::card::card_management_key(st, &profile, info.serial)?,
    };
    Personalizer::new(&profile)
        .reset(tx, &key, &mut |_| {})
        .map_err(|e| StationError::card(Some(JobStep::CardReset.as_str()), &e))?;
    roll_back(
        st,
        actor,
        registrar,
        job,
        Some(crate::card::serial_text(info.serial)),
        "the card never reached LOCKED; it was reset",
    )
}
