//! The issuance protocol, server side (docs/centre.md, "Issuance"): a station reserves a
//! document number for a holder (`reserve`), has the card's keys certified (`certify`), and
//! completes or aborts the job (`finish`); the centre aborts jobs left open too long (`sweep`).
//!
//! Every call names the job by the station's UUID and is idempotent by (station, job, step): the
//! request of each step is kept with the job, the same request again gets the same answer, a
//! different one is `job-conflict`. Each step is one transaction with its audit event.

pub mod certify;
pub mod finish;
pub mod reserve;
pub mod status;
pub mod sweep;

use crate::db::Prepared;
use centre_api::{rules, IssuedCertificate, JobState};
use deadpool_postgres::{GenericClient, Transaction};
use serde::de::DeserializeOwned;

use crate::audit::Actor;
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Refusal, Result};

/// Job UUIDs: RFC 9562 text form in lower case, `8-4-4-4-12` hex digits.
pub fn check_job_id(job: &str) -> Result<()> {
    let groups: Vec<&str> = job.split('-').collect();
    let shape = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups.iter().zip(shape).all(|(g, n)| {
            g.len() == n
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(CentralError::invalid(
            "job",
            "must be a UUID in lower-case text form (8-4-4-4-12 hex digits, RFC 9562)",
        ))
    }
}

/// Card serials: 8 hexadecimal digits.
pub fn check_card_serial(serial: &str) -> Result<()> {
    if serial.len() == 8 && serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(CentralError::invalid(
            "card_serial",
            "must be 8 hexadecimal digits",
        ))
    }
}

/// The station's operator named in a request: the centre's operator-name rule.
pub fn check_operator(name: &str) -> Result<()> {
    crate::operators::check_name("operator", name)
}

/// Who a station's request is audited as: its operator, at the station.
pub fn actor(who: &WhoAmI, operator: &str) -> Actor {
    Actor {
        operator: operator.to_owned(),
        role: "station".into(),
        station: who.station.clone(),
    }
}

/// A job as stored.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub station: String,
    pub operator: String,
    pub holder_id: i64,
    pub series: String,
    pub number: i32,
    pub state: JobState,
    pub challenge: Vec<u8>,
    pub card_serial: String,
    pub reserve_request: serde_json::Value,
    pub certify_request: Option<serde_json::Value>,
    pub complete_request: Option<serde_json::Value>,
    pub abort_request: Option<serde_json::Value>,
    pub abort_reason: Option<String>,
}

impl Job {
    pub fn document(&self) -> String {
        crate::numbers::document_number(&self.series, self.number)
    }
}

pub fn state_of(s: &str) -> Result<JobState> {
    Ok(match s {
        "reserved" => JobState::Reserved,
        "certified" => JobState::Certified,
        "completed" => JobState::Completed,
        "aborted" => JobState::Aborted,
        other => return Err(CentralError::Database(format!("job state {other:?}"))),
    })
}

pub fn state_str(s: JobState) -> &'static str {
    match s {
        JobState::Reserved => "reserved",
        JobState::Certified => "certified",
        JobState::Completed => "completed",
        JobState::Aborted => "aborted",
    }
}

/// A job's columns as [`find_job`] reads them (a macro, so that its statements are literals that
/// [`Prepared`] can keep).
macro_rules! job_cols {
    () => {
        "id, station, operator, holder_id, series, number, state, challenge, card_serial, \
         reserve_request, certify_request, complete_request, abort_request, abort_reason"
    };
}
const SELECT_JOB: &str = concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1");
const SELECT_JOB_LOCKED: &str = concat!(
    "SELECT ",
    job_cols!(),
    " FROM jobs WHERE id = $1 FOR UPDATE"
);

/// The job `id` (locked for the transaction when `lock`), whoever it belongs to.
pub async fn find_job(c: &impl GenericClient, id: &str, lock: bool) -> Result<Option<Job>> {
    let sql = if lock { SELECT_JOB_LOCKED } else { SELECT_JOB };
    let Some(r) = c.prepared_opt(sql, &[&id]).await? else {
        return Ok(None);
    };
    Ok(Some(Job {
        id: r.get(0),
        station: r.get(1),
        operator: r.get(2),
        holder_id: r.get(3),
        series: r.get(4),
        number: r.get(5),
        state: state_of(r.get(6))?,
        challenge: r.get(7),
        card_serial: r.get(8),
        reserve_request: r.get(9),
        certify_request: r.get(10),
        complete_request: r.get(11),
        abort_request: r.get(12),
        abort_reason: r.get(13),
    }))
}

/// The job `id` of station `who`: 404 when unknown, 403 when another station's.
pub async fn station_job(
    c: &impl GenericClient,
    who: &WhoAmI,
    id: &str,
    lock: bool,
) -> Result<Job> {
    check_job_id(id)?;
    let job = find_job(c, id, lock).await?.ok_or_else(|| {
        CentralError::refused(
            Refusal::NotFound,
            centre_api::rules::JOB_NOT_FOUND,
            format!("job {id} is not known to the centre"),
        )
    })?;
    if job.station != who.station {
        return Err(CentralError::refused(
            Refusal::Forbidden,
            rules::JOB_OF_ANOTHER_STATION,
            format!("job {id} belongs to another station"),
        ));
    }
    Ok(job)
}

/// Whether a step's request repeats the one kept with the job: `Some(true)` the same request
/// (answer as before), `None` none kept yet; a different one is `job-conflict`.
pub fn repeated<T: DeserializeOwned + PartialEq>(
    job: &str,
    step: &str,
    kept: Option<&serde_json::Value>,
    req: &T,
) -> Result<Option<bool>> {
    let Some(kept) = kept else {
        return Ok(None);
    };
    let same = serde_json::from_value::<T>(kept.clone()).is_ok_and(|k| k == *req);
    if same {
        Ok(Some(true))
    } else {
        Err(conflict(format!(
            "job {job} was given another {step} request before; a job's step cannot change"
        )))
    }
}

pub fn conflict(reason: String) -> CentralError {
    CentralError::refused(Refusal::Conflict, rules::JOB_CONFLICT, reason)
}

/// The job was aborted (by the station or by the centre after the timeout).
pub fn aborted(job: &Job) -> CentralError {
    CentralError::refused(
        Refusal::Conflict,
        rules::JOB_ABORTED,
        format!(
            "job {} was aborted: {}",
            job.id,
            job.abort_reason.as_deref().unwrap_or("")
        ),
    )
}

/// The certificates issued for a job, in slot order (not those of later renewals).
pub async fn certificates(c: &impl GenericClient, job: &str) -> Result<Vec<IssuedCertificate>> {
    let rows = c
        .prepared_query(
            "SELECT slot, profile, serial, cert_der FROM certificates
             WHERE job = $1 AND service_job IS NULL ORDER BY slot",
            &[&job],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| IssuedCertificate {
            slot: r.get(0),
            profile: r.get(1),
            serial: hex::encode_upper(r.get::<_, &[u8]>(2)),
            der: hex::encode(r.get::<_, &[u8]>(3)),
        })
        .collect())
}

/// The step whose request a state change records (the `jobs` column it goes to).
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Certify,
    Complete,
}

/// Set a job's state (and the request of the step that moved it).
pub async fn set_state(
    tx: &Transaction<'_>,
    job: &str,
    state: JobState,
    step: Step,
    request: &serde_json::Value,
) -> Result<()> {
    let sql = match step {
        Step::Certify => {
            "UPDATE jobs SET state = $2, certify_request = $3, updated_at = now() WHERE id = $1"
        }
        Step::Complete => {
            "UPDATE jobs SET state = $2, complete_request = $3, updated_at = now() WHERE id = $1"
        }
    };
    tx.prepared_execute(sql, &[&job, &state_str(state), request])
        .await?;
    Ok(())
}

/// A value as JSON for a jobs column or an audit detail.
pub fn json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| CentralError::Other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_card_serials_and_operators_follow_their_rules() {
        assert!(check_job_id("0f8fad5b-d9cb-469f-a165-70867728950e").is_ok());
        for bad in [
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "0f8fad5bd9cb469fa16570867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "../../etc",
        ] {
            let e = check_job_id(bad).unwrap_err().to_string();
            assert!(e.starts_with("job: "), "{bad}: {e}");
        }
        assert!(check_card_serial("0A1b2C3d").is_ok());
        assert!(check_card_serial("0A1b2C3").is_err());
        assert!(check_operator("clerk1").is_ok());
        assert!(check_operator("Clerk 1").is_err());
    }
}
