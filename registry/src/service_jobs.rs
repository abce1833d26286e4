//! Card-service jobs on issued cards (renew, unblock) and their journal, like issuance jobs
//! ([`crate::jobs`]) but in their own tables (schema version 7) so that issuance recovery never
//! mistakes one for an issuance: each step is journaled `started` before its side effect and
//! finished after it; a job that stopped stays `running` (or `failed`) until the station
//! resolves it with the card. At most one running service job of each kind per document (a
//! partial unique index).

use rusqlite::{params, OptionalExtension, Row};

use crate::records::unique_conflict;
use crate::{
    audit, now_rfc3339, validate, Actor, Error, JobState, Registry, Result, StepState, Tx,
};

/// What a service job does to an issued card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// New key pairs and certificates (`idstation renew`).
    Renew,
    /// New PIN with the retry counter reset, optionally a new PUK (`idstation unblock`).
    Unblock,
}

impl ServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Renew => "renew",
            ServiceKind::Unblock => "unblock",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "renew" => Ok(ServiceKind::Renew),
            "unblock" => Ok(ServiceKind::Unblock),
            other => Err(Error::invalid("kind", other, "must be renew or unblock")),
        }
    }
}

/// A new service job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewServiceJob {
    pub kind: ServiceKind,
    pub document_id: i64,
    pub holder_id: i64,
    pub card_serial: String,
    pub office: String,
}

/// One journaled step of a service job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStep {
    pub id: i64,
    pub ordinal: u32,
    pub step: String,
    pub state: StepState,
    /// Canonical JSON.
    pub details: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// A service job with its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceJob {
    pub id: i64,
    pub kind: ServiceKind,
    pub document_id: i64,
    pub holder_id: i64,
    pub card_serial: String,
    pub office: String,
    pub operator: String,
    pub station: String,
    pub state: JobState,
    pub current_step: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub steps: Vec<ServiceStep>,
}

impl ServiceJob {
    /// The last journaled step named `name`.
    pub fn step(&self, name: &str) -> Option<&ServiceStep> {
        self.steps.iter().rev().find(|s| s.step == name)
    }
}

const COLS: &str = "id, kind, document_id, holder_id, card_serial, office, operator, station, \
    state, current_step, error, created_at, finished_at";

fn conv(i: usize, e: Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<ServiceJob> {
    let kind: String = r.get(1)?;
    let state: String = r.get(8)?;
    Ok(ServiceJob {
        id: r.get(0)?,
        kind: ServiceKind::parse(&kind).map_err(|e| conv(1, e))?,
        document_id: r.get(2)?,
        holder_id: r.get(3)?,
        card_serial: r.get(4)?,
        office: r.get(5)?,
        operator: r.get(6)?,
        station: r.get(7)?,
        state: JobState::parse(&state).map_err(|e| conv(8, e))?,
        current_step: r.get(9)?,
        error: r.get(10)?,
        created_at: r.get(11)?,
        finished_at: r.get(12)?,
        steps: Vec::new(),
    })
}

fn step_state(s: &str) -> StepState {
    match s {
        "started" => StepState::Started,
        "done" => StepState::Done,
        "failed" => StepState::Failed,
        _ => StepState::Undone,
    }
}

impl Tx<'_> {
    /// Start a service job. Conflict if the document has one of this kind running.
    pub fn create_service_job(&self, job: &NewServiceJob, by: &Actor) -> Result<i64> {
        validate::office("office", &job.office)?;
        let now = now_rfc3339();
        self.conn()
            .execute(
                "INSERT INTO service_jobs (kind, document_id, holder_id, card_serial, office, operator, station, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?8)",
                params![
                    job.kind.as_str(),
                    job.document_id,
                    job.holder_id,
                    job.card_serial,
                    job.office,
                    by.operator,
                    by.station,
                    now
                ],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!(
                        "document {} already has a {} in progress",
                        job.document_id,
                        job.kind.as_str()
                    )
                })
            })?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Journal the start of a step (before its side effect). Returns the step id.
    pub fn begin_service_step(
        &self,
        job_id: i64,
        step: &str,
        details: &serde_json::Value,
    ) -> Result<i64> {
        validate::text("step", step, 64)?;
        let details = audit::canonical_json(details)?;
        let state: String = self
            .conn()
            .query_row(
                "SELECT state FROM service_jobs WHERE id = ?1",
                [job_id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("service job {job_id}")))?;
        if state != "running" {
            return Err(Error::Conflict(format!(
                "service job {job_id} is {state}: no new steps"
            )));
        }
        let now = now_rfc3339();
        self.conn().execute(
            "INSERT INTO service_job_steps (job_id, ordinal, step, state, details, started_at)
             VALUES (?1, (SELECT coalesce(max(ordinal), 0) + 1 FROM service_job_steps WHERE job_id = ?1), ?2, 'started', ?3, ?4)",
            params![job_id, step, details, now],
        )?;
        let id = self.conn().last_insert_rowid();
        self.conn().execute(
            "UPDATE service_jobs SET current_step = ?2, updated_at = ?3 WHERE id = ?1",
            params![job_id, step, now],
        )?;
        Ok(id)
    }

    /// Record how a step ended (`done`, `failed`, or `undone`).
    pub fn finish_service_step(
        &self,
        step_id: i64,
        state: StepState,
        details: Option<&serde_json::Value>,
    ) -> Result<()> {
        if state == StepState::Started {
            return Err(Error::invalid(
                "state",
                "started",
                "a step finishes as done, failed or undone",
            ));
        }
        let details = details.map(audit::canonical_json).transpose()?;
        let n = self.conn().execute(
            "UPDATE service_job_steps SET state = ?2, finished_at = ?3, details = coalesce(?4, details) WHERE id = ?1",
            params![step_id, state.as_str(), now_rfc3339(), details],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("service job step {step_id}")));
        }
        Ok(())
    }

    /// Note why a running job stopped (it stays `running`, for the next attempt to resolve).
    pub fn set_service_job_error(&self, job_id: i64, error: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE service_jobs SET error = ?2, updated_at = ?3 WHERE id = ?1",
            params![job_id, error, now_rfc3339()],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("service job {job_id}")));
        }
        Ok(())
    }

    /// End a running job as `completed`, `failed` or `rolled-back`.
    pub fn end_service_job(&self, job_id: i64, state: JobState, error: Option<&str>) -> Result<()> {
        if state == JobState::Running {
            return Err(Error::invalid(
                "state",
                state.as_str(),
                "a service job ends completed, failed or rolled-back",
            ));
        }
        let now = now_rfc3339();
        let n = self.conn().execute(
            "UPDATE service_jobs SET state = ?2, error = ?3, updated_at = ?4, finished_at = ?4
             WHERE id = ?1 AND state = 'running'",
            params![job_id, state.as_str(), error, now],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "service job {job_id} is not running"
            )));
        }
        Ok(())
    }
}

impl Registry {
    /// A service job with its steps.
    pub fn service_job(&self, id: i64) -> Result<Option<ServiceJob>> {
        let job = self
            .conn
            .query_row(
                &format!("SELECT {COLS} FROM service_jobs WHERE id = ?1"),
                [id],
                job_from_row,
            )
            .optional()?;
        let Some(mut job) = job else { return Ok(None) };
        job.steps = self.service_steps(id)?;
        Ok(Some(job))
    }

    /// The running service job of `kind` of document `document_id`, if any, with its steps.
    pub fn running_service_job(
        &self,
        document_id: i64,
        kind: ServiceKind,
    ) -> Result<Option<ServiceJob>> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM service_jobs WHERE document_id = ?1 AND kind = ?2 AND state = 'running'",
                params![document_id, kind.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => self.service_job(id),
            None => Ok(None),
        }
    }

    /// Every service job still `running`, oldest first.
    pub fn unfinished_service_jobs(&self) -> Result<Vec<ServiceJob>> {
        let ids: Vec<i64> = self
            .conn
            .prepare("SELECT id FROM service_jobs WHERE state = 'running' ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(j) = self.service_job(id)? {
                out.push(j);
            }
        }
        Ok(out)
    }

    fn service_steps(&self, job_id: i64) -> Result<Vec<ServiceStep>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, ordinal, step, state, details, started_at, finished_at FROM service_job_steps WHERE job_id = ?1 ORDER BY ordinal",
        )?;
        let rows = st.query_map([job_id], |r| {
            let s: String = r.get(3)?;
            Ok(ServiceStep {
                id: r.get(0)?,
                ordinal: r.get(1)?,
                step: r.get(2)?,
                state: step_state(&s),
                details: r.get(4)?,
                started_at: r.get(5)?,
                finished_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::tests::{address, holder};
    use crate::testutil::{actor, temp_registry};
    use crate::{Completion, NewJob};

    /// An issued document (no certificates needed here): its id and holder.
    fn issued(reg: &mut Registry) -> (i64, i64) {
        let a = actor();
        let h = reg
            .write(|tx| {
                tx.add_number_block("TAS01", "AA", 1, 999_999)?;
                tx.insert_holder(&holder("31405850000012"), &address(), &a)
            })
            .unwrap();
        let num = reg.allocate_document_number("TAS01").unwrap();
        let job = reg
            .create_job(
                &NewJob {
                    holder_id: h,
                    office: "TAS01".into(),
                    document: Some(num),
                },
                &a,
            )
            .unwrap();
        reg.write(|tx| {
            tx.complete_issuance(
                &Completion {
                    job_id: job,
                    date_of_issue: "2026-11-25".into(),
                    date_of_expiry: "2036-11-24".into(),
                    card_serial: "0A0B0C0D".into(),
                    certificate_ids: vec![],
                    document_signer: None,
                },
                &a,
            )
        })
        .unwrap();
        (reg.document(num).unwrap().unwrap().id, h)
    }

    #[test]
    fn a_service_job_is_journaled_apart_from_issuance_and_one_runs_per_document() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        let (doc, h) = issued(&mut reg);
        let new = NewServiceJob {
            kind: ServiceKind::Renew,
            document_id: doc,
            holder_id: h,
            card_serial: "0A0B0C0D".into(),
            office: "TAS01".into(),
        };
        let job = reg.write(|tx| tx.create_service_job(&new, &a)).unwrap();
        let e = reg.write(|tx| tx.create_service_job(&new, &a)).unwrap_err();
        assert!(
            e.to_string().contains("already has a renew in progress"),
            "{e}"
        );
        let s = reg
            .write(|tx| tx.begin_service_step(job, "card.generate", &serde_json::json!({})))
            .unwrap();
        reg.write(|tx| {
            tx.finish_service_step(s, StepState::Done, Some(&serde_json::json!({"keys": 2})))
        })
        .unwrap();
        reg.write(|tx| tx.begin_service_step(job, "ca.issue", &serde_json::json!({})))
            .unwrap();
        // Issuance recovery does not see it; the service journal does.
        assert!(reg.unfinished_jobs().unwrap().is_empty());
        let open = reg
            .running_service_job(doc, ServiceKind::Renew)
            .unwrap()
            .expect("running");
        assert_eq!(open.kind, ServiceKind::Renew);
        assert_eq!(open.current_step.as_deref(), Some("ca.issue"));
        assert_eq!(open.step("card.generate").unwrap().details, r#"{"keys":2}"#);
        assert_eq!(open.step("ca.issue").unwrap().state, StepState::Started);
        assert_eq!(reg.unfinished_service_jobs().unwrap().len(), 1);
        reg.write(|tx| tx.end_service_job(job, JobState::Completed, None))
            .unwrap();
        assert!(reg
            .running_service_job(doc, ServiceKind::Renew)
            .unwrap()
            .is_none());
        let e = reg
            .write(|tx| tx.begin_service_step(job, "card.install", &serde_json::json!({})))
            .unwrap_err();
        assert!(e.to_string().contains("no new steps"), "{e}");
        // The next one may start, and an unblock may run beside a renewal.
        reg.write(|tx| tx.create_service_job(&new, &a)).unwrap();
        let unblock = NewServiceJob {
            kind: ServiceKind::Unblock,
            ..new
        };
        reg.write(|tx| tx.create_service_job(&unblock, &a)).unwrap();
        assert_eq!(reg.unfinished_service_jobs().unwrap().len(), 2);
    }
}
