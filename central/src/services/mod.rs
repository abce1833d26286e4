//! Card services through the centre (issue 16; docs/centre.md, "Card services"): a renewal of
//! an issued card's certificates ([`renew`]), a hold and its release ([`hold`]: suspend and
//! resume), registration address changes ([`address`]), and a card of any office as the
//! national registry has it ([`lookup`], read only).
//!
//! Each is a station's *service job* named by the station's UUID, and each step is idempotent
//! by (station, job, step): the step's request and answer are kept in `service_steps`; the same
//! request again gets the same answer, another one `job-conflict`; a job of another station is
//! `job-of-another-station`. Each step is one transaction with its audit event, which names
//! the station and its office.
//!
//! **Who may serve whom.** Any enrolled station may serve any holder of the country — that is
//! what a national registry is for: a holder may walk into any office. The centre does not
//! limit a document to the office that issued it; it records which office did each service
//! (`service_jobs.office`, the audit event's station and details).

pub mod address;
pub mod card_keys;
pub mod changes;
pub mod hold;
pub mod lookup;
pub mod renew;
pub mod renewals;

use crate::db::Prepared;
use centre_api::{rules, JobState};
use deadpool_postgres::{GenericClient, Transaction};
use serde::{de::DeserializeOwned, Serialize};

use crate::audit::{self, Actor};
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Refusal, Result};
use crate::issuance::{check_job_id, conflict, json, state_of, state_str};

/// A service job as stored.
#[derive(Debug, Clone)]
pub struct ServiceJob {
    pub id: String,
    pub station: String,
    pub kind: String,
    pub document_id: Option<i64>,
    pub holder_id: i64,
    pub state: JobState,
    pub challenge: Option<Vec<u8>>,
    /// Why it was aborted (an aborted job).
    pub abort_reason: Option<String>,
    /// Aborted by the centre's timeout sweep.
    pub timed_out: bool,
}

/// Service job `id` (locked for the transaction), whoever it belongs to.
pub async fn find(c: &impl GenericClient, id: &str) -> Result<Option<ServiceJob>> {
    let Some(r) = c
        .prepared_opt(
            "SELECT id, station, kind, document_id, holder_id, state, challenge, abort_reason,
                    timed_out_at IS NOT NULL
             FROM service_jobs WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(ServiceJob {
        id: r.get(0),
        station: r.get(1),
        kind: r.get(2),
        document_id: r.get(3),
        holder_id: r.get(4),
        state: state_of(r.get(5))?,
        challenge: r.get(6),
        abort_reason: r.get(7),
        timed_out: r.get(8),
    }))
}

/// Service job `id` of station `who`, of `kind`: 404 when unknown, 403 when another station's,
/// `job-conflict` when of another kind. `None` when no such job exists yet.
pub async fn station_job(
    c: &impl GenericClient,
    who: &WhoAmI,
    id: &str,
    kind: &str,
) -> Result<Option<ServiceJob>> {
    check_job_id(id)?;
    let Some(job) = find(c, id).await? else {
        return Ok(None);
    };
    if job.station != who.station {
        return Err(CentralError::refused(
            Refusal::Forbidden,
            rules::JOB_OF_ANOTHER_STATION,
            format!("service job {id} belongs to another station"),
        ));
    }
    if job.kind != kind {
        return Err(conflict(format!(
            "service job {id} is a {} job, not a {kind} job",
            job.kind
        )));
    }
    Ok(Some(job))
}

/// [`station_job`] for a step that makes job `id` when it does not exist yet, under a
/// transaction lock on the job's id: a retry sent while the first request is still running
/// waits for it and then answers as a retry (the job it made), not as a second request that
/// finds the first one's effects (its own open renewal, a document already held).
pub async fn station_job_locked(
    tx: &deadpool_postgres::Transaction<'_>,
    who: &WhoAmI,
    id: &str,
    kind: &str,
) -> Result<Option<ServiceJob>> {
    check_job_id(id)?;
    crate::holders::advisory_lock(tx, "service-job", id).await?;
    station_job(tx, who, id, kind).await
}

/// The existing service job `id` of `who` and `kind`, or 404.
pub async fn existing_job(
    c: &impl GenericClient,
    who: &WhoAmI,
    id: &str,
    kind: &str,
) -> Result<ServiceJob> {
    station_job(c, who, id, kind).await?.ok_or_else(|| {
        CentralError::refused(
            Refusal::NotFound,
            centre_api::rules::JOB_NOT_FOUND,
            format!("service job {id} is not known to the centre"),
        )
    })
}

/// The answer kept for `step` of `job` when `req` repeats its request; `job-conflict` when
/// another request was kept; `None` when the step has not run.
pub async fn replay<Q: Serialize, R: DeserializeOwned>(
    c: &impl GenericClient,
    job: &str,
    step: &str,
    req: &Q,
) -> Result<Option<R>> {
    let Some(r) = c
        .prepared_opt(
            "SELECT request, response FROM service_steps WHERE job = $1 AND step = $2",
            &[&job, &step],
        )
        .await?
    else {
        return Ok(None);
    };
    let kept: serde_json::Value = r.get(0);
    if kept != json(req)? {
        return Err(conflict(format!(
            "service job {job} was given another {step} request before; a job's step cannot change"
        )));
    }
    let answer: serde_json::Value = r.get(1);
    serde_json::from_value(answer)
        .map(Some)
        .map_err(|e| CentralError::Database(format!("service job {job} {step} answer: {e}")))
}

/// Keep `step`'s request and answer (in the step's transaction).
pub async fn keep<Q: Serialize, R: Serialize>(
    tx: &Transaction<'_>,
    job: &str,
    step: &str,
    req: &Q,
    answer: &R,
) -> Result<()> {
    tx.prepared_execute(
        "INSERT INTO service_steps (job, step, request, response) VALUES ($1, $2, $3, $4)",
        &[&job, &step, &json(req)?, &json(answer)?],
    )
    .await?;
    Ok(())
}

/// A new service job of `who`.
pub struct NewJob<'a> {
    pub id: &'a str,
    pub operator: &'a str,
    pub kind: &'a str,
    pub document_id: Option<i64>,
    pub holder_id: i64,
    pub state: JobState,
    pub challenge: Option<&'a [u8]>,
}

pub async fn insert_job(tx: &Transaction<'_>, who: &WhoAmI, j: &NewJob<'_>) -> Result<()> {
    tx.prepared_execute(
        "INSERT INTO service_jobs (id, station, office, operator, kind, document_id, holder_id, state, challenge)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[&j.id, &who.station, &who.office, &j.operator, &j.kind, &j.document_id, &j.holder_id,
          &state_str(j.state), &j.challenge],
    )
    .await?;
    Ok(())
}

pub async fn set_state(
    tx: &Transaction<'_>,
    job: &str,
    state: JobState,
    reason: Option<&str>,
) -> Result<()> {
    tx.prepared_execute(
        "UPDATE service_jobs SET state = $2, abort_reason = $3, updated_at = now() WHERE id = $1",
        &[&job, &state_str(state), &reason],
    )
    .await?;
    Ok(())
}

/// A document as the services need it.
#[derive(Debug, Clone)]
pub struct Doc {
    pub id: i64,
    pub number: String,
    /// Its issuance job (every certificate of the card hangs on it).
    pub job: String,
    pub holder_id: i64,
    pub state: String,
    pub office: String,
    pub date_of_expiry: time::Date,
    pub card_serial: String,
    pub suspended_at: Option<std::time::SystemTime>,
}

/// Document `number` (locked for the transaction), or `document-not-found`.
pub async fn document(c: &impl GenericClient, number: &str) -> Result<Doc> {
    let (series, n) = crate::numbers::parse_document(number)?;
    let r = c
        .prepared_opt(
            "SELECT id, job, holder_id, state, office, date_of_expiry, card_serial, suspended_at
             FROM documents WHERE series = $1 AND number = $2 FOR UPDATE",
            &[&series, &n],
        )
        .await?
        .ok_or_else(|| {
            CentralError::refused(
                Refusal::NotFound,
                rules::DOCUMENT_NOT_FOUND,
                format!("the centre has no issued document {number}"),
            )
        })?;
    Ok(Doc {
        id: r.get(0),
        number: number.to_owned(),
        job: r.get(1),
        holder_id: r.get(2),
        state: r.get(3),
        office: r.get(4),
        date_of_expiry: r.get(5),
        card_serial: r.get(6),
        suspended_at: r.get(7),
    })
}

/// The document must be active (`document-suspended` names a hold; any other state is
/// `document-not-active`).
pub fn require_active(doc: &Doc, service: &str) -> Result<()> {
    match doc.state.as_str() {
        "active" => Ok(()),
        "suspended" => Err(CentralError::refused(
            Refusal::Conflict,
            rules::DOCUMENT_SUSPENDED,
            format!(
                "document {} is suspended (its certificates are on hold): a {service} needs an active document; release the hold first, the holder in person",
                doc.number
            ),
        )),
        s => Err(CentralError::refused(
            Refusal::Conflict,
            rules::DOCUMENT_NOT_ACTIVE,
            format!("document {} is {s}: a {service} needs an active document", doc.number),
        )),
    }
}

/// Audit `action` on `object` by `who`'s `operator`, naming the office that served.
pub async fn audit(
    tx: &Transaction<'_>,
    who: &WhoAmI,
    operator: &str,
    action: &str,
    object: &str,
    mut details: serde_json::Value,
) -> Result<()> {
    details["office"] = serde_json::json!(who.office);
    let actor = Actor {
        operator: operator.to_owned(),
        role: "station".into(),
        station: who.station.clone(),
    };
    audit::append(tx, &actor, action, object, &details).await?;
    Ok(())
}

/// Upper-case hex serials of rows whose first column is a serial.
pub fn serials(rows: &[tokio_postgres::Row]) -> Vec<String> {
    rows.iter()
        .map(|r| hex::encode_upper(r.get::<_, &[u8]>(0)))
        .collect()
}

/// The job UUID's shape (before any lookup).
pub fn check_job_id_only(id: &str) -> Result<()> {
    check_job_id(id)
}
