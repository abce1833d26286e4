//! Issuance jobs and their journal (ARCHITECTURE "One issuance").
//!
//! The station journals each step *before* its side effect: [`Registry::journal_step`] commits a
//! `started` row durably, the station does the card / HSM work, then [`Registry::finish_step`]
//! records `done` or `failed`. After a crash, [`Registry::unfinished_jobs`] returns every job still
//! `running` with its steps, so recovery knows exactly which side effects may have happened.
//! At most one job per holder can be `running` (a partial unique index), and a holder with an
//! active document cannot get a new job: two stations issuing to one holder cannot both proceed.

use rusqlite::{params, OptionalExtension, Row};

use crate::records::{unique_conflict, CardLifecycle, TOPIC_EGOV_REGISTER_HOLDER};
use crate::{
    audit, now_rfc3339, validate, Actor, AuditEntry, DocumentNumber, Error, Registry, Result, Tx,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Completed,
    Failed,
    RolledBack,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::RolledBack => "rolled-back",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "running" => JobState::Running,
            "completed" => JobState::Completed,
            "failed" => JobState::Failed,
            "rolled-back" => JobState::RolledBack,
            _ => {
                return Err(Error::invalid(
                    "state",
                    s,
                    "must be running, completed, failed or rolled-back",
                ))
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    Started,
    Done,
    Failed,
    Undone,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Started => "started",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::Undone => "undone",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "started" => StepState::Started,
            "done" => StepState::Done,
            "failed" => StepState::Failed,
            _ => StepState::Undone,
        }
    }
}

/// A new issuance job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub holder_id: i64,
    pub office: String,
    pub document: Option<DocumentNumber>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: i64,
    pub ordinal: u32,
    pub step: String,
    pub state: StepState,
    pub details: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub holder_id: i64,
    pub office: String,
    pub operator: String,
    pub station: String,
    pub document: Option<DocumentNumber>,
    pub card_serial: Option<String>,
    pub state: JobState,
    pub current_step: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    /// Filled by [`Registry::job`] and [`Registry::unfinished_jobs`]; empty in listings.
    pub steps: Vec<Step>,
}

/// Filter for [`Registry::issuances`]. `from`/`to` compare with `created_at` (RFC 3339 UTC;
/// a bare date `YYYY-MM-DD` works as a prefix bound).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuanceFilter {
    pub from: Option<String>,
    pub to: Option<String>,
    pub office: Option<String>,
    pub operator: Option<String>,
    pub state: Option<JobState>,
    pub limit: Option<u32>,
}

/// Everything that becomes true at once when an issuance completes (after read-back passed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub job_id: i64,
    pub date_of_issue: String,
    pub date_of_expiry: String,
    pub card_serial: String,
    /// Certificates (ids from [`Tx::insert_certificate`]) now on the locked card.
    pub certificate_ids: Vec<i64>,
    /// The serial number (hex) of the Document Signer certificate whose key signed the card's
    /// EF.SOD; recorded in the `issuance.completed` audit event. `None` when not known (a job
    /// journaled by an older version).
    pub document_signer: Option<String>,
}

const JOB_COLS: &str = "id, holder_id, office, operator, station, series, number, card_serial, \
    state, current_step, error, created_at, updated_at, finished_at";

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let series: Option<String> = r.get(5)?;
    let number: Option<u32> = r.get(6)?;
    let state: String = r.get(8)?;
    let conv = |e: Error| {
        rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, Box::new(e))
    };
    Ok(Job {
        id: r.get(0)?,
        holder_id: r.get(1)?,
        office: r.get(2)?,
        operator: r.get(3)?,
        station: r.get(4)?,
        document: match (series, number) {
            (Some(s), Some(n)) => Some(DocumentNumber::new(&s, n).map_err(conv)?),
            _ => None,
        },
        card_serial: r.get(7)?,
        state: JobState::parse(&state).map_err(conv)?,
        current_step: r.get(9)?,
        error: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        finished_at: r.get(13)?,
        steps: Vec::new(),
    })
}

impl Tx<'_> {
    /// Start a job. Conflict if the holder has an active document or another running job.
    pub fn create_job(&self, job: &NewJob, by: &Actor) -> Result<i64> {
        validate::office("office", &job.office)?;
        let active: Option<String> = self
            .conn()
            .query_row(
                "SELECT series || printf('%07d', number) FROM documents WHERE holder_id = ?1 AND status = 'active'",
                [job.holder_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(doc) = active {
            return Err(Error::Conflict(format!(
                "holder {} already has an active card (document {doc}); declare it lost or revoked first",
                job.holder_id
            )));
        }
        if let Some(num) = job.document {
            let state = crate::numbers::number_state(self.conn(), num)?;
            if state != crate::NumberState::Allocated {
                return Err(Error::Conflict(format!(
                    "document number {num} is {}; a job needs a freshly allocated number",
                    state.as_str()
                )));
            }
            let taken: i64 = self.conn().query_row(
                "SELECT count(*) FROM issuance_jobs WHERE series = ?1 AND number = ?2",
                params![num.series_str(), num.number],
                |r| r.get(0),
            )?;
            if taken > 0 {
                return Err(Error::Conflict(format!(
                    "document number {num} already belongs to another job"
                )));
            }
        }
        let now = now_rfc3339();
        self.conn()
            .execute(
                "INSERT INTO issuance_jobs (holder_id, office, operator, station, series, number, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?7)",
                params![
                    job.holder_id,
                    job.office,
                    by.operator,
                    by.station,
                    job.document.map(|d| d.series_str().to_string()),
                    job.document.map(|d| d.number),
                    now
                ],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("holder {} already has an issuance in progress", job.holder_id)
                })
            })?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Attach the document number (if allocated after the job started) and/or the card serial.
    pub fn set_job_subjects(
        &self,
        job_id: i64,
        document: Option<DocumentNumber>,
        card_serial: Option<&str>,
    ) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE issuance_jobs SET
                series = coalesce(?2, series), number = coalesce(?3, number),
                card_serial = coalesce(?4, card_serial), updated_at = ?5
             WHERE id = ?1",
            params![
                job_id,
                document.map(|d| d.series_str().to_string()),
                document.map(|d| d.number),
                card_serial,
                now_rfc3339()
            ],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("job {job_id}")));
        }
        Ok(())
    }

    /// Note why a running job stopped, leaving it for recovery (it stays `running`).
    pub fn set_job_error(&self, job_id: i64, error: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE issuance_jobs SET error = ?2, updated_at = ?3 WHERE id = ?1",
            params![job_id, error, now_rfc3339()],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("job {job_id}")));
        }
        Ok(())
    }

    /// Journal the start of a step (before its side effect). Returns the step id.
    pub fn begin_step(&self, job_id: i64, step: &str, details: &serde_json::Value) -> Result<i64> {
        validate::text("step", step, 64)?;
        let details = audit::canonical_json(details)?;
        let state: String = self
            .conn()
            .query_row(
                "SELECT state FROM issuance_jobs WHERE id = ?1",
                [job_id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("job {job_id}")))?;
        if state != "running" {
            return Err(Error::Conflict(format!(
                "job {job_id} is {state}: no new steps"
            )));
        }
        let now = now_rfc3339();
        self.conn().execute(
            "INSERT INTO job_steps (job_id, ordinal, step, state, details, started_at)
             VALUES (?1, (SELECT coalesce(max(ordinal), 0) + 1 FROM job_steps WHERE job_id = ?1), ?2, 'started', ?3, ?4)",
            params![job_id, step, details, now],
        )?;
        let id = self.conn().last_insert_rowid();
        self.conn().execute(
            "UPDATE issuance_jobs SET current_step = ?2, updated_at = ?3 WHERE id = ?1",
            params![job_id, step, now],
        )?;
        Ok(id)
    }

    /// Record how a step ended (`done`, `failed`, or `undone` by recovery).
    pub fn finish_step(
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
            "UPDATE job_steps SET state = ?2, finished_at = ?3, details = coalesce(?4, details) WHERE id = ?1",
            params![step_id, state.as_str(), now_rfc3339(), details],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("job step {step_id}")));
        }
        Ok(())
    }

    /// End a job as `failed` or `rolled-back` (completion goes through [`Tx::complete_issuance`]).
    pub fn end_job(&self, job_id: i64, state: JobState, error: Option<&str>) -> Result<()> {
        if matches!(state, JobState::Running | JobState::Completed) {
            return Err(Error::invalid(
                "state",
                state.as_str(),
                "end_job takes failed or rolled-back; use complete_issuance to complete",
            ));
        }
        let now = now_rfc3339();
        let n = self.conn().execute(
            "UPDATE issuance_jobs SET state = ?2, error = ?3, updated_at = ?4, finished_at = ?4
             WHERE id = ?1 AND state IN ('running', 'failed')",
            params![job_id, state.as_str(), error, now],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!("job {job_id} is not running")));
        }
        Ok(())
    }

    /// Complete an issuance atomically: document `active` and its number `used`, card `locked`
    /// and bound to holder and document, certificates `active`, an outbox message to register the
    /// holder in e-government, the job `completed`, and an audit event — one durable commit
    /// when the caller commits.
    pub fn complete_issuance(&self, c: &Completion, by: &Actor) -> Result<i64> {
        let job: Job = self
            .conn()
            .query_row(
                &format!("SELECT {JOB_COLS} FROM issuance_jobs WHERE id = ?1"),
                [c.job_id],
                job_from_row,
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("job {}", c.job_id)))?;
        if job.state != JobState::Running {
            return Err(Error::Conflict(format!(
                "job {} is {}, not running",
                c.job_id,
                job.state.as_str()
            )));
        }
        let num = job.document.ok_or_else(|| {
            Error::Conflict(format!("job {} has no document number allocated", c.job_id))
        })?;
        let doc_id = self.insert_document(
            num,
            job.holder_id,
            &job.office,
            &c.date_of_issue,
            &c.date_of_expiry,
            by,
        )?;
        let card_id = self.upsert_card(&c.card_serial, CardLifecycle::Locked)?;
        self.bind_card(
            &c.card_serial,
            CardLifecycle::Locked,
            Some(job.holder_id),
            Some(doc_id),
        )?;
        for id in &c.certificate_ids {
            self.activate_certificate(*id, card_id)?;
        }
        let pinfl: String = self.conn().query_row(
            "SELECT pinfl FROM holders WHERE id = ?1",
            [job.holder_id],
            |r| r.get(0),
        )?;
        self.outbox_push(
            TOPIC_EGOV_REGISTER_HOLDER,
            &serde_json::json!({
                "pinfl": pinfl,
                "document": num.to_string(),
                "date_of_issue": c.date_of_issue,
                "date_of_expiry": c.date_of_expiry,
                "office": job.office,
            }),
        )?;
        let now = now_rfc3339();
        self.conn().execute(
            "UPDATE issuance_jobs SET state = 'completed', card_serial = ?2, updated_at = ?3, finished_at = ?3, error = NULL
             WHERE id = ?1",
            params![c.job_id, c.card_serial, now],
        )?;
        let mut details = serde_json::json!({
            "job": c.job_id,
            "card": c.card_serial,
            "certificates": c.certificate_ids,
            "pinfl": pinfl,
        });
        if let Some(ds) = &c.document_signer {
            details["document_signer"] = serde_json::json!(ds);
        }
        self.audit(&AuditEntry {
            actor: by,
            action: "issuance.completed",
            object: &format!("document:{num}"),
            details: &details,
        })?;
        Ok(doc_id)
    }
}

/// How to undo an unfinished issuance (recovery, or a failed attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    pub job_id: i64,
    /// What becomes of the job's document number: `Spoiled` (printed on / written to a card
    /// that is discarded) or `Released` (never used). Ignored if the job has no number.
    pub number: crate::NumberState,
    /// The card, if it was reset to BLANK (so it can be issued again).
    pub card_reset: Option<String>,
    /// Why (recorded in the job and the audit event).
    pub reason: String,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackSummary {
    /// Certificates revoked (reason cessationOfOperation): they must appear on the next CRL.
    pub revoked_certificates: Vec<i64>,
    pub document: Option<DocumentNumber>,
}

impl Tx<'_> {
    /// Undo an unfinished issuance in one transaction: every certificate of the job that is not
    /// revoked is revoked with `cessationOfOperation` (none of them reached a locked card that
    /// the registry shows as issued), the document number becomes spoiled or released, steps
    /// still `started` become `undone`, the card (if reset) is BLANK again, the job ends
    /// `rolled-back`, and an audit event records it.
    pub fn roll_back_issuance(&self, r: &Rollback, by: &Actor) -> Result<RollbackSummary> {
        if !matches!(
            r.number,
            crate::NumberState::Spoiled | crate::NumberState::Released
        ) {
            return Err(Error::invalid(
                "number",
                r.number.as_str(),
                "a rolled-back job's number becomes spoiled or released",
            ));
        }
        validate::text("reason", &r.reason, 500)?;
        let job: Job = self
            .conn()
            .query_row(
                &format!("SELECT {JOB_COLS} FROM issuance_jobs WHERE id = ?1"),
                [r.job_id],
                job_from_row,
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("job {}", r.job_id)))?;
        if !matches!(job.state, JobState::Running | JobState::Failed) {
            return Err(Error::Conflict(format!(
                "job {} is {}: only running or failed jobs are rolled back",
                r.job_id,
                job.state.as_str()
            )));
        }
        let now = now_rfc3339();
        let mut st = self.conn().prepare(
            "SELECT id FROM certificates WHERE job_id = ?1 AND status IN ('issued', 'active') ORDER BY id",
        )?;
        let ids: Vec<i64> = st
            .query_map([r.job_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for id in &ids {
            self.revoke_certificate(*id, "cessationOfOperation", &now)?;
        }
        if let Some(num) = job.document {
            if crate::numbers::number_state(self.conn(), num)? == crate::NumberState::Allocated {
                self.mark_document_number(num, r.number, Some(&r.reason))?;
            }
        }
        if let Some(serial) = &r.card_reset {
            self.upsert_card(serial, CardLifecycle::Blank)?;
            self.bind_card(serial, CardLifecycle::Blank, None, None)?;
        }
        self.conn().execute(
            "UPDATE job_steps SET state = 'undone', finished_at = ?2 WHERE job_id = ?1 AND state = 'started'",
            params![r.job_id, now],
        )?;
        self.end_job(r.job_id, JobState::RolledBack, Some(&r.reason))?;
        self.audit(&AuditEntry {
            actor: by,
            action: "issuance.rolled-back",
            object: &format!("job:{}", r.job_id),
            details: &serde_json::json!({
                "revoked_certificates": ids,
                "document": job.document.map(|d| d.to_string()),
                "number_state": r.number.as_str(),
                "card_reset": r.card_reset,
                "reason": r.reason,
            }),
        })?;
        Ok(RollbackSummary {
            revoked_certificates: ids,
            document: job.document,
        })
    }
}

impl Registry {
    /// Create a job in its own durable transaction.
    pub fn create_job(&mut self, job: &NewJob, by: &Actor) -> Result<i64> {
        self.write(|tx| tx.create_job(job, by))
    }

    /// Journal a step start durably (commit) — call before the side effect.
    pub fn journal_step(
        &mut self,
        job_id: i64,
        step: &str,
        details: &serde_json::Value,
    ) -> Result<i64> {
        self.write(|tx| tx.begin_step(job_id, step, details))
    }

    /// Record a step's end durably.
    pub fn finish_step(
        &mut self,
        step_id: i64,
        state: StepState,
        details: Option<&serde_json::Value>,
    ) -> Result<()> {
        self.write(|tx| tx.finish_step(step_id, state, details))
    }

    /// A job with its steps.
    pub fn job(&self, id: i64) -> Result<Option<Job>> {
        let job = self
            .conn
            .query_row(
                &format!("SELECT {JOB_COLS} FROM issuance_jobs WHERE id = ?1"),
                [id],
                job_from_row,
            )
            .optional()?;
        let Some(mut job) = job else { return Ok(None) };
        job.steps = self.steps(id)?;
        Ok(Some(job))
    }

    fn steps(&self, job_id: i64) -> Result<Vec<Step>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, ordinal, step, state, details, started_at, finished_at FROM job_steps WHERE job_id = ?1 ORDER BY ordinal",
        )?;
        let rows = st.query_map([job_id], |r| {
            let s: String = r.get(3)?;
            Ok(Step {
                id: r.get(0)?,
                ordinal: r.get(1)?,
                step: r.get(2)?,
                state: StepState::parse(&s),
                details: r.get(4)?,
                started_at: r.get(5)?,
                finished_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The job that was given document number `num`, if any.
    pub fn job_of_document(&self, num: DocumentNumber) -> Result<Option<Job>> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM issuance_jobs WHERE series = ?1 AND number = ?2 ORDER BY id DESC LIMIT 1",
                params![num.series_str(), num.number],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => self.job(id),
            None => Ok(None),
        }
    }

    /// Every job of a holder, newest first.
    pub fn jobs_of_holder(&self, holder_id: i64) -> Result<Vec<Job>> {
        let ids: Vec<i64> = self
            .conn
            .prepare("SELECT id FROM issuance_jobs WHERE holder_id = ?1 ORDER BY id DESC")?
            .query_map([holder_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(j) = self.job(id)? {
                out.push(j);
            }
        }
        Ok(out)
    }

    /// Every job still `running`, with its steps: what recovery must resolve.
    pub fn unfinished_jobs(&self) -> Result<Vec<Job>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {JOB_COLS} FROM issuance_jobs WHERE state = 'running' ORDER BY id"
        ))?;
        let mut jobs: Vec<Job> = st.query_map([], job_from_row)?.collect::<Result<_, _>>()?;
        for j in &mut jobs {
            j.steps = self.steps(j.id)?;
        }
        Ok(jobs)
    }

    /// The newest issuance job other than `except` that began preparing card `card_serial`
    /// (journaled a `card.prepare` step), with its steps: whose key a card left half-personalized
    /// is under.
    pub fn last_job_that_prepared(&self, card_serial: &str, except: i64) -> Result<Option<Job>> {
        let job = self
            .conn
            .query_row(
                &format!(
                    "SELECT {JOB_COLS} FROM issuance_jobs j WHERE card_serial = ?1 AND id <> ?2
                       AND EXISTS (SELECT 1 FROM job_steps s WHERE s.job_id = j.id
                                   AND s.step = 'card.prepare')
                     ORDER BY id DESC LIMIT 1"
                ),
                params![card_serial, except],
                job_from_row,
            )
            .optional()?;
        let Some(mut job) = job else { return Ok(None) };
        job.steps = self.steps(job.id)?;
        Ok(Some(job))
    }

    /// Issuances by date range / office / operator / state, newest first.
    pub fn issuances(&self, f: &IssuanceFilter) -> Result<Vec<Job>> {
        let mut sql = format!("SELECT {JOB_COLS} FROM issuance_jobs WHERE 1=1");
        let mut args: Vec<String> = Vec::new();
        if let Some(v) = &f.from {
            args.push(v.clone());
            sql += &format!(" AND created_at >= ?{}", args.len());
        }
        if let Some(v) = &f.to {
            // A bare date as upper bound includes that whole day.
            let v = if v.len() == 10 {
                format!("{v}T99")
            } else {
                v.clone()
            };
            args.push(v);
            sql += &format!(" AND created_at < ?{}", args.len());
        }
        if let Some(v) = &f.office {
            args.push(v.clone());
            sql += &format!(" AND office = ?{}", args.len());
        }
        if let Some(v) = &f.operator {
            args.push(v.clone());
            sql += &format!(" AND operator = ?{}", args.len());
        }
        if let Some(v) = f.state {
            args.push(v.as_str().to_string());
            sql += &format!(" AND state = ?{}", args.len());
        }
        sql += &format!(
            " ORDER BY created_at DESC, id DESC LIMIT {}",
            f.limit.unwrap_or(1000)
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), job_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::tests::{address, holder};
    use crate::records::{CertStatus, DocumentStatus, NewCertificate};
    use crate::testutil::{actor, temp_registry};

    pub(crate) fn setup(reg: &mut Registry) -> (i64, i64) {
        let a = actor();
        reg.write(|tx| {
            tx.add_number_block("TAS01", "AA", 1, 999_999)?;
            let h = tx.insert_holder(&holder("31405850000012"), &address(), &a)?;
            let k = tx.insert_ca_key("esign-1", "esign", "issuing", b"spki", &a)?;
            Ok((h, k))
        })
        .unwrap()
    }

    #[test]
    fn a_journaled_issuance_completes_atomically_and_the_holder_has_one_active_card() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        let (h, k) = setup(&mut reg);
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
        let s = reg
            .journal_step(
                job,
                "card.prepare",
                &serde_json::json!({"reader": "Virtual PCD 00 00"}),
            )
            .unwrap();
        reg.finish_step(s, StepState::Done, None).unwrap();
        let s2 = reg
            .journal_step(job, "ca.issue", &serde_json::json!({}))
            .unwrap();
        let cert = reg
            .write(|tx| {
                tx.insert_certificate(&NewCertificate {
                    issuer_key_id: k,
                    serial: "1a2b".into(),
                    subject: "CN=KARIMOVA DILNOZA".into(),
                    purpose: "holder-sign".into(),
                    not_before: "2026-01-01T00:00:00Z".into(),
                    not_after: "2031-01-01T00:00:00Z".into(),
                    holder_id: Some(h),
                    card_id: None,
                    job_id: Some(job),
                    der: vec![0x30, 0],
                })
            })
            .unwrap();
        reg.finish_step(s2, StepState::Done, None).unwrap();
        // A crash here: recovery sees the job and its steps.
        let open = reg.unfinished_jobs().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(
            open[0]
                .steps
                .iter()
                .map(|s| s.step.as_str())
                .collect::<Vec<_>>(),
            ["card.prepare", "ca.issue"]
        );
        assert_eq!(
            reg.certificates_of_job(job).unwrap()[0].status,
            CertStatus::Issued
        );

        reg.write(|tx| {
            tx.complete_issuance(
                &Completion {
                    job_id: job,
                    date_of_issue: "2026-11-25".into(),
                    date_of_expiry: "2036-11-24".into(),
                    card_serial: "VCHIP-0001".into(),
                    certificate_ids: vec![cert],
                    document_signer: None,
                },
                &a,
            )
        })
        .unwrap();
        assert!(reg.unfinished_jobs().unwrap().is_empty());
        let active = reg.active_card(h).unwrap().expect("active card");
        assert_eq!(active.document.number, num);
        assert_eq!(active.document.status, DocumentStatus::Active);
        assert_eq!(active.card.lifecycle, CardLifecycle::Locked);
        assert_eq!(active.certificates[0].status, CertStatus::Active);
        assert_eq!(reg.certificates_by_serial("1A2B").unwrap().len(), 1);
        // Emergency revocation of key k: its active holder certificate is listed for re-issuance.
        assert_eq!(reg.write(|tx| tx.mark_reissue_for_issuer(k)).unwrap(), 1);
        assert_eq!(reg.certificates_needing_reissue().unwrap()[0].id, cert);
        assert_eq!(
            reg.outbox_pending().unwrap()[0].topic,
            TOPIC_EGOV_REGISTER_HOLDER
        );
        assert_eq!(
            reg.document_number_state(num).unwrap(),
            crate::NumberState::Used
        );
        let listed = reg
            .issuances(&IssuanceFilter {
                office: Some("TAS01".into()),
                state: Some(JobState::Completed),
                from: Some("2020-01-01".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert!(reg
            .issuances(&IssuanceFilter {
                operator: Some("nobody".into()),
                ..Default::default()
            })
            .unwrap()
            .is_empty());

        // One active card per holder: a new job conflicts until the old document is declared lost.
        let e = reg
            .create_job(
                &NewJob {
                    holder_id: h,
                    office: "TAS01".into(),
                    document: None,
                },
                &a,
            )
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        reg.write(|tx| tx.set_document_status(num, DocumentStatus::Lost, "reported lost", &a))
            .unwrap();
        reg.create_job(
            &NewJob {
                holder_id: h,
                office: "TAS01".into(),
                document: None,
            },
            &a,
        )
        .unwrap();
        assert!(reg.active_card(h).unwrap().is_none());
        let hist = reg.document_history(active.document.id).unwrap();
        assert_eq!(
            hist.iter().map(|c| c.status.as_str()).collect::<Vec<_>>(),
            ["active", "lost"]
        );
    }

    #[test]
    fn rolling_back_revokes_the_jobs_certificates_spoils_the_number_and_frees_the_holder() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        let (h, k) = setup(&mut reg);
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
            tx.upsert_card("VCHIP-9", CardLifecycle::Personalizing)
                .map(|_| ())
        })
        .unwrap();
        let step = reg
            .journal_step(job, "card.write", &serde_json::json!({}))
            .unwrap();
        let cert = reg
            .write(|tx| {
                tx.insert_certificate(&NewCertificate {
                    issuer_key_id: k,
                    serial: "77".into(),
                    subject: "CN=K".into(),
                    purpose: "holder-auth".into(),
                    not_before: "2026-01-01T00:00:00Z".into(),
                    not_after: "2031-01-01T00:00:00Z".into(),
                    holder_id: Some(h),
                    card_id: None,
                    job_id: Some(job),
                    der: vec![0x30, 0],
                })
            })
            .unwrap();
        let sum = reg
            .write(|tx| {
                tx.roll_back_issuance(
                    &Rollback {
                        job_id: job,
                        number: crate::NumberState::Spoiled,
                        card_reset: Some("VCHIP-9".into()),
                        reason: "card pulled during card.write".into(),
                    },
                    &a,
                )
            })
            .unwrap();
        assert_eq!(sum.revoked_certificates, vec![cert]);
        let c = &reg.certificates_of_job(job).unwrap()[0];
        assert_eq!(c.status, CertStatus::Revoked);
        assert_eq!(c.revocation_reason.as_deref(), Some("cessationOfOperation"));
        assert_eq!(
            reg.revoked_certificates(k).unwrap().len(),
            1,
            "on the next CRL"
        );
        assert_eq!(
            reg.document_number_state(num).unwrap(),
            crate::NumberState::Spoiled
        );
        assert_eq!(
            reg.card("VCHIP-9").unwrap().unwrap().lifecycle,
            CardLifecycle::Blank
        );
        let j = reg.job(job).unwrap().unwrap();
        assert_eq!(j.state, JobState::RolledBack);
        assert_eq!(j.steps[0].id, step);
        assert_eq!(j.steps[0].state, StepState::Undone);
        assert!(reg.unfinished_jobs().unwrap().is_empty());
        // The holder can be issued again, with a fresh number.
        let num2 = reg.allocate_document_number("TAS01").unwrap();
        assert_ne!(num, num2);
        reg.create_job(
            &NewJob {
                holder_id: h,
                office: "TAS01".into(),
                document: Some(num2),
            },
            &a,
        )
        .unwrap();
        // A spoiled number cannot start a job.
        let e = reg
            .create_job(
                &NewJob {
                    holder_id: h,
                    office: "TAS01".into(),
                    document: Some(num),
                },
                &a,
            )
            .unwrap_err();
        assert!(e.to_string().contains("is spoiled"), "{e}");
        assert_eq!(reg.verify_audit(&Default::default()).unwrap().events, 1);
    }

    #[test]
    fn two_running_jobs_for_one_holder_conflict() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        let (h, _) = setup(&mut reg);
        let j = NewJob {
            holder_id: h,
            office: "TAS01".into(),
            document: None,
        };
        reg.create_job(&j, &a).unwrap();
        let e = reg.create_job(&j, &a).unwrap_err();
        assert!(
            e.to_string()
                .contains("already has an issuance in progress"),
            "{e}"
        );
    }

    #[test]
    fn a_failed_completion_leaves_nothing_half_done() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        let (h, _) = setup(&mut reg);
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
        // Certificate id 999 does not exist: activation fails after the document was inserted.
        let e = reg
            .write(|tx| {
                tx.complete_issuance(
                    &Completion {
                        job_id: job,
                        date_of_issue: "2026-11-25".into(),
                        date_of_expiry: "2036-11-24".into(),
                        card_serial: "VCHIP-0002".into(),
                        certificate_ids: vec![999],
                        document_signer: None,
                    },
                    &a,
                )
            })
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
        assert!(reg.document(num).unwrap().is_none());
        assert!(reg.card("VCHIP-0002").unwrap().is_none());
        assert_eq!(
            reg.document_number_state(num).unwrap(),
            crate::NumberState::Allocated
        );
        assert_eq!(reg.job(job).unwrap().unwrap().state, JobState::Running);
        reg.write(|tx| {
            tx.mark_document_number(num, crate::NumberState::Spoiled, Some("card spoiled"))?;
            tx.end_job(job, JobState::RolledBack, Some("card pulled"))
        })
        .unwrap();
        assert!(reg.unfinished_jobs().unwrap().is_empty());
    }
}
