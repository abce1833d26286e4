//! The renewals of the country as the centre's operators see them (`idcentral renewals list`,
//! `idcentral renewals abort`): every renewal of a document's certificates, or the open ones —
//! reserved or certified, each blocking every other office's renewal of its document until it
//! completes, its station aborts it, or the centre's timeout does (`[issuance]
//! renewal_timeout_seconds`). A ca-admin may abort an open one at once (a holder who lost the
//! card in the middle of a renewal, an office closed): as the timeout does, its certificates
//! are revoked cessationOfOperation and the card, if it carries them, stays served.

use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;

use crate::audit;
use crate::db::Prepared;
use crate::error::{CentralError, Result};
use crate::operators::Session;

/// A renewal of a document's certificates (a card service job).
#[derive(Debug, Clone, Serialize)]
pub struct RenewalRecord {
    pub document: String,
    pub job: String,
    pub office: String,
    pub station: String,
    pub operator: String,
    /// `reserved`, `certified` (open: waiting for the card), `completed`, `aborted`.
    pub state: String,
    /// RFC 3339 UTC.
    pub opened_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// Aborted by the centre's renewal timeout.
    pub timed_out: bool,
}

impl RenewalRecord {
    /// One line of `renewals list` and of `show`.
    pub fn line(&self) -> String {
        let why = match (&self.abort_reason, self.timed_out) {
            (Some(w), true) => format!(": aborted by the centre ({w})"),
            (Some(w), false) => format!(": {w}"),
            (None, _) => String::new(),
        };
        format!(
            "renewal {} of {} {} at office {} ({}/{}) opened {}, last changed {}{why}",
            self.job,
            self.document,
            self.state,
            self.office,
            self.station,
            self.operator,
            self.opened_at,
            self.updated_at
        )
    }
}

/// Which renewals [`renewals`] reads.
#[derive(Debug, Clone, Default)]
pub struct Which {
    /// Of this holder's documents (all: `None`).
    pub holder: Option<i64>,
    /// Of this document (series, number).
    pub document: Option<(String, i32)>,
    /// Only the open ones (reserved or certified).
    pub open_only: bool,
    /// At most this many, the oldest first.
    pub limit: Option<i64>,
}

/// The renewals `which` names, oldest first.
pub async fn renewals(c: &impl GenericClient, which: &Which) -> Result<Vec<RenewalRecord>> {
    let (series, number) = match &which.document {
        Some((s, n)) => (Some(s.as_str()), Some(*n)),
        None => (None, None),
    };
    let rows = c
        .prepared_query(
            "SELECT d.series, d.number, s.id, s.office, s.station, s.operator, s.state,
                    to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    to_char(s.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    s.abort_reason, s.timed_out_at IS NOT NULL
             FROM service_jobs s JOIN documents d ON d.id = s.document_id
             WHERE s.kind = 'renew' AND ($1::bigint IS NULL OR d.holder_id = $1)
               AND (NOT $2 OR s.state IN ('reserved', 'certified'))
               AND ($3::text IS NULL OR (d.series = $3 AND d.number = $4))
             ORDER BY s.created_at, s.id LIMIT $5",
            &[
                &which.holder,
                &which.open_only,
                &series,
                &number,
                &which.limit,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RenewalRecord {
            document: crate::numbers::document_number(r.get(0), r.get(1)),
            job: r.get(2),
            office: r.get(3),
            station: r.get(4),
            operator: r.get(5),
            state: r.get(6),
            opened_at: r.get(7),
            updated_at: r.get(8),
            abort_reason: r.get(9),
            timed_out: r.get(10),
        })
        .collect())
}

/// The most renewals `renewals list` prints unless `--limit` says otherwise.
pub const LIST_LIMIT: i64 = 1000;

/// `idcentral renewals list [--open] [--document D] [--limit N]` (ca-admin or auditor): the
/// oldest `limit` (1..=100000; absent: [`LIST_LIMIT`]) renewals `which` names; audited
/// `renewals.read` with the filters and the count.
pub async fn list(
    pool: &Pool,
    session: &Session,
    open_only: bool,
    document: Option<&str>,
    limit: Option<i64>,
) -> Result<Vec<RenewalRecord>> {
    let limit = limit.unwrap_or(LIST_LIMIT);
    if !(1..=100_000).contains(&limit) {
        return Err(CentralError::invalid(
            "limit",
            format!("{limit}: must be 1..100000"),
        ));
    }
    let which = Which {
        document: document.map(crate::numbers::parse_document).transpose()?,
        open_only,
        limit: Some(limit),
        ..Which::default()
    };
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let all = renewals(&tx, &which).await?;
    let details = serde_json::json!({ "open_only": open_only, "document": document,
        "limit": limit, "count": all.len() });
    audit::append(&tx, session.actor(), "renewals.read", "renewals", &details).await?;
    tx.commit().await?;
    Ok(all)
}

/// `idcentral renewals abort JOB --reason TEXT` (ca-admin): an open renewal aborted now, as the
/// timeout would (its certificates revoked cessationOfOperation, the document's previous ones
/// untouched); audited `renewal.aborted` by the operator. A completed or aborted one is refused
/// (exit 5), an unknown one exits 2.
pub async fn abort(
    pool: &Pool,
    session: &Session,
    job: &str,
    reason: &str,
) -> Result<RenewalRecord> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(CentralError::invalid(
            "reason",
            "must be 1-500 characters without control characters",
        ));
    }
    crate::issuance::check_job_id(job)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let found = super::find(&tx, job)
        .await?
        .filter(|j| j.kind == "renew")
        .ok_or_else(|| CentralError::NotFound(format!("job: no renewal {job} at the centre")))?;
    if !matches!(
        found.state,
        centre_api::JobState::Reserved | centre_api::JobState::Certified
    ) {
        return Err(CentralError::Conflict(format!(
            "renewal {job} is {}: only an open renewal (reserved or certified) is aborted",
            crate::issuance::state_str(found.state)
        )));
    }
    let doc = super::renew::job_document(&tx, &found).await?;
    let reason = format!(
        "aborted by {} at the centre: {reason}",
        session.actor().operator
    );
    let answer = super::renew::abort_renewal(
        &tx,
        &found,
        &doc,
        &reason,
        super::renew::AbortedBy::CentreOperator,
    )
    .await?;
    let details = serde_json::json!({ "service_job": job, "reason": reason,
        "revoked": answer.revoked, "station": found.station });
    audit::append(
        &tx,
        session.actor(),
        "renewal.aborted",
        &format!("document:{}", doc.number),
        &details,
    )
    .await?;
    let which = Which {
        holder: Some(doc.holder_id),
        ..Which::default()
    };
    let record = renewals(&tx, &which)
        .await?
        .into_iter()
        .find(|r| r.job == job)
        .ok_or_else(|| CentralError::Database(format!("renewal {job} vanished")))?;
    tx.commit().await?;
    Ok(record)
}
