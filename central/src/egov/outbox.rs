//! The outbox's delivery state in PostgreSQL (migration V8) and the operators' commands on it.
//!
//! A publisher *claims* due `pending` messages in one transaction with `FOR UPDATE SKIP LOCKED`
//! (several centre instances never take the same message at once), signs a message's JWS the
//! first time (kept in `message`: every retry sends the same bytes), and moves its
//! `next_attempt_at` past the attempt's deadline, a lease: an instance killed mid-delivery leaves
//! the message to be taken again when the lease runs out. Each claim has a random 16-byte token;
//! the outcome is recorded only under that token, so an instance whose lease ran out cannot
//! overwrite a later attempt's outcome. A 2xx answer makes the message `delivered` with the
//! receipt (audited `egov.delivered`: personal data left the centre); a failure counts an
//! attempt and waits `retry_initial_ms · 2^(attempts−1)` (at most `retry_max_ms`); the
//! `max_attempts`-th failure makes it `failed`, the dead letter (audited `egov.failed`), until
//! `idcentral outbox retry`.

use crate::db::Prepared;
use std::time::Duration;

use deadpool_postgres::Pool;

use super::client::Outcome;
use super::keys::EgovKeys;
use crate::audit::{self, Actor};
use crate::config::EgovSection;
use crate::error::{CentralError, Result};
use crate::operators::Session;

/// A message taken for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub claim: [u8; 16],
    /// The compact JWS to send, or why it could not be made (counted as a failed attempt).
    pub jws: std::result::Result<String, String>,
}

/// The wait after the `failures`-th failure: `initial · 2^(failures−1)`, at most `max`.
pub fn backoff(cfg: &EgovSection, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(40);
    let ms = cfg
        .retry_initial_ms
        .saturating_mul(1u64 << exp)
        .min(cfg.retry_max_ms);
    Duration::from_millis(ms)
}

/// The publisher's actor in the audit log.
fn publisher(centre: &str) -> Actor {
    Actor {
        operator: "idcentral".into(),
        role: "system".into(),
        station: centre.to_owned(),
    }
}

/// Claim up to `batch` due messages for `lease` (see the module documentation).
pub async fn claim(
    pool: &Pool,
    store: &dyn hsm::KeyStore,
    keys: &EgovKeys,
    centre: &str,
    lease: Duration,
    batch: i64,
) -> Result<Vec<Claimed>> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .prepared_query(
            "SELECT id, topic, job, message FROM outbox
             WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&batch],
        )
        .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: i64 = r.get(0);
        let topic: String = r.get(1);
        let job: String = r.get(2);
        let jws = match r.get::<_, Option<String>>(3) {
            Some(m) => Ok(m),
            None => match sign(&tx, store, keys, centre, id, &topic, &job).await {
                Ok(m) => Ok(m),
                // The HSM, not the message, failed: nothing was sent and no attempt is
                // counted; the message is due again after a short wait. (A database error
                // aborts the whole claim.)
                Err(CentralError::Hsm(e)) => {
                    tracing::warn!(message = id, error = %e, "the e-government message could not be signed now; no attempt counted");
                    tx.prepared_execute(
                        "UPDATE outbox SET next_attempt_at = now() + interval '30 seconds'
                         WHERE id = $1",
                        &[&id],
                    )
                    .await?;
                    continue;
                }
                Err(e) => Err(e.to_string()),
            },
        };
        let mut token = [0u8; 16];
        getrandom::fill(&mut token)
            .map_err(|e| CentralError::Other(format!("random claim token: {e}")))?;
        // The lease counts from now, after this row's signature, not from the transaction's
        // start (`now()`): signing the batch's messages in the HSM takes time.
        tx.prepared_execute(
            "UPDATE outbox SET claim = $2,
                    next_attempt_at = clock_timestamp() + make_interval(secs => $3),
                    last_attempt_at = now(), message = COALESCE(message, $4)
             WHERE id = $1",
            &[
                &id,
                &token.as_slice(),
                &lease.as_secs_f64(),
                &jws.as_ref().ok(),
            ],
        )
        .await?;
        claimed.push(Claimed {
            id,
            claim: token,
            jws,
        });
    }
    tx.commit().await?;
    Ok(claimed)
}

/// The message of outbox row `id`, signed.
async fn sign(
    tx: &deadpool_postgres::Transaction<'_>,
    store: &dyn hsm::KeyStore,
    keys: &EgovKeys,
    centre: &str,
    id: i64,
    topic: &str,
    job: &str,
) -> Result<String> {
    let payload = super::message::payload(tx, centre, id, topic, job).await?;
    super::jws::sign(store, &keys.jws_label, &keys.jws_chain, &payload)
}

/// What [`record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Delivered,
    /// Failed; retried after the wait.
    Retry(Duration),
    /// Failed for the last time: the dead letter.
    DeadLetter,
    /// The claim was no longer this instance's (its lease ran out and another took over).
    LeaseLost,
}

/// Record the outcome of the attempt `claimed` (under its claim token), with its audit event.
pub async fn record(
    pool: &Pool,
    cfg: &EgovSection,
    centre: &str,
    claimed: &Claimed,
    outcome: &Outcome,
) -> Result<Recorded> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .prepared_opt(
            "SELECT attempts, payload->>'document' FROM outbox
             WHERE id = $1 AND claim = $2 AND status = 'pending' FOR UPDATE",
            &[&claimed.id, &claimed.claim.as_slice()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Recorded::LeaseLost);
    };
    let attempts = row.get::<_, i32>(0).saturating_add(1);
    let document: Option<String> = row.get(1);
    let object = format!("outbox:{}", claimed.id);
    let done = match outcome {
        Outcome::Delivered { status, receipt } => {
            tx.prepared_execute(
                "UPDATE outbox SET status = 'delivered', delivered_at = now(), attempts = $2,
                        receipt = $3, receipt_status = $4, last_error = NULL, claim = NULL
                 WHERE id = $1",
                &[&claimed.id, &attempts, receipt, &i32::from(*status)],
            )
            .await?;
            let details = serde_json::json!({
                "message": claimed.id, "document": document, "attempts": attempts,
                "status": status, "receipt": receipt,
            });
            audit::append(&tx, &publisher(centre), "egov.delivered", &object, &details).await?;
            Recorded::Delivered
        }
        Outcome::Failed { status, error } => {
            let error: String = error.chars().take(500).collect();
            if attempts as u32 >= cfg.max_attempts {
                tx.prepared_execute(
                    "UPDATE outbox SET status = 'failed', attempts = $2, last_error = $3,
                            receipt_status = $4, claim = NULL
                     WHERE id = $1",
                    &[&claimed.id, &attempts, &error, &status.map(i32::from)],
                )
                .await?;
                let details = serde_json::json!({
                    "message": claimed.id, "document": document, "attempts": attempts,
                    "last_error": error,
                });
                audit::append(&tx, &publisher(centre), "egov.failed", &object, &details).await?;
                Recorded::DeadLetter
            } else {
                let wait = backoff(cfg, attempts as u32);
                tx.prepared_execute(
                    "UPDATE outbox SET attempts = $2, last_error = $3, receipt_status = $4,
                            next_attempt_at = now() + make_interval(secs => $5), claim = NULL
                     WHERE id = $1",
                    &[
                        &claimed.id,
                        &attempts,
                        &error,
                        &status.map(i32::from),
                        &wait.as_secs_f64(),
                    ],
                )
                .await?;
                Recorded::Retry(wait)
            }
        }
    };
    tx.commit().await?;
    Ok(done)
}

/// One outbox message as `idcentral outbox list` and a station show it (no personal data but
/// the document number): the wire type, so the CLI's `--json` and the API agree.
pub type OutboxItem = centre_api::OutboxMessage;

const ITEM_COLS: &str = "id, topic, payload->>'document', status, attempts,
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    CASE WHEN status = 'pending' THEN to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') END,
    to_char(last_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    last_error,
    to_char(delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    receipt_status, receipt";

fn item(r: &tokio_postgres::Row) -> Result<OutboxItem> {
    use centre_api::OutboxStatus;
    let status = match r.get::<_, &str>(3) {
        "pending" => OutboxStatus::Pending,
        "delivered" => OutboxStatus::Delivered,
        "failed" => OutboxStatus::Failed,
        other => {
            return Err(CentralError::Other(format!(
                "outbox status {other:?} is none of pending, delivered, failed"
            )))
        }
    };
    let last_attempt_at: Option<String> = r.get(7);
    Ok(OutboxItem {
        id: r.get(0),
        topic: r.get(1),
        document: r.get(2),
        status,
        attempts: u32::try_from(r.get::<_, i32>(4)).unwrap_or(0),
        created_at: r.get(5),
        next_attempt_at: r.get(6),
        dead_since: last_attempt_at
            .clone()
            .filter(|_| status == OutboxStatus::Failed),
        last_attempt_at,
        last_error: r.get(8),
        delivered_at: r.get(9),
        receipt_status: r.get(10),
        receipt: r.get(11),
    })
}

/// The newest `limit` outbox messages (or only the `failed` ones) — of those numbered below
/// `before`, when given — oldest first, and whether older ones were left out. The read is
/// audited (`outbox.read`, how many, the filter and the limit) as `actor`'s: a centre
/// operator, or a station's operator with the station named. The caller checked the role
/// (ca-admin or auditor).
pub async fn list(
    pool: &Pool,
    actor: &Actor,
    failed_only: bool,
    limit: u32,
    before: Option<i64>,
) -> Result<(Vec<OutboxItem>, bool)> {
    if let Some(rule) = centre_api::outbox_limit_rule(limit) {
        return Err(CentralError::invalid("limit", rule));
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let filter = if failed_only {
        "AND status = 'failed'"
    } else {
        ""
    };
    // One more than asked says whether there are more.
    let mut items = tx
        .query(
            &format!(
                "SELECT * FROM (SELECT {ITEM_COLS} FROM outbox WHERE id < $2 {filter}
                                ORDER BY id DESC LIMIT $1) n
                 ORDER BY id"
            ),
            &[&(i64::from(limit) + 1), &before.unwrap_or(i64::MAX)],
        )
        .await?
        .iter()
        .map(item)
        .collect::<Result<Vec<_>>>()?;
    let more = items.len() > limit as usize;
    if more {
        items.remove(0);
    }
    audit::append(
        &tx,
        actor,
        "outbox.read",
        "outbox",
        &serde_json::json!({ "failed_only": failed_only, "count": items.len(),
                             "limit": limit, "before": before, "more": more }),
    )
    .await?;
    tx.commit().await?;
    Ok((items, more))
}

/// Why a retry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryRefused {
    NoSuchMessage,
    /// The message is `pending` or `delivered`.
    NotFailed(String),
}

impl RetryRefused {
    /// The reason as the audit log records it.
    pub fn reason(&self) -> &'static str {
        match self {
            RetryRefused::NoSuchMessage => "no such message",
            RetryRefused::NotFailed(_) => "not failed",
        }
    }

    /// The refusal's sentence, naming the field and the rule.
    pub fn sentence(&self, id: i64) -> String {
        match self {
            RetryRefused::NoSuchMessage => format!("id: there is no outbox message {id}"),
            RetryRefused::NotFailed(status) => {
                format!("id: outbox message {id} is {status}: only a failed message is retried")
            }
        }
    }
}

/// Put the dead letter `id` back in the queue: `pending`, no attempts counted, due now
/// (audited `outbox.retried` with the attempts and the last error it had, as `actor`'s). A
/// message that is not `failed`, or no message, is `Ok(Err(why))` with nothing changed and
/// nothing audited: the caller audits the refusal its own way ([`retry`] for the CLI, the
/// API's `request.refused` for a station). The caller checked the role (ca-admin).
pub async fn retry_message(
    pool: &Pool,
    actor: &Actor,
    id: i64,
) -> Result<std::result::Result<OutboxItem, RetryRefused>> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .prepared_opt(
            "SELECT status, attempts, last_error FROM outbox WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    let Some(r) = row else {
        return Ok(Err(RetryRefused::NoSuchMessage));
    };
    let status: String = r.get(0);
    if status != "failed" {
        return Ok(Err(RetryRefused::NotFailed(status)));
    }
    let (attempts, last_error): (i32, Option<String>) = (r.get(1), r.get(2));
    tx.prepared_execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), claim = NULL
         WHERE id = $1",
        &[&id],
    )
    .await?;
    audit::append(
        &tx,
        actor,
        "outbox.retried",
        &format!("outbox:{id}"),
        &serde_json::json!({ "message": id, "attempts": attempts, "last_error": last_error }),
    )
    .await?;
    let item = item(
        &tx.query_one(
            &format!("SELECT {ITEM_COLS} FROM outbox WHERE id = $1"),
            &[&id],
        )
        .await?,
    )?;
    tx.commit().await?;
    Ok(Ok(item))
}

/// `idcentral outbox retry`: [`retry_message`], a refusal named (`NotFound`, exit 2;
/// `Conflict`, exit 5) and audited (`operator.refused`).
pub async fn retry(pool: &Pool, session: &Session, id: i64) -> Result<OutboxItem> {
    match retry_message(pool, session.actor(), id).await? {
        Ok(item) => Ok(item),
        Err(why) => {
            let err = match &why {
                RetryRefused::NoSuchMessage => CentralError::NotFound(why.sentence(id)),
                RetryRefused::NotFailed(_) => CentralError::Conflict(why.sentence(id)),
            };
            Err(refuse(pool, session, id, why.reason(), err).await)
        }
    }
}

/// Audit a refused `outbox retry` in its own transaction and return `err`.
async fn refuse(
    pool: &Pool,
    session: &Session,
    id: i64,
    reason: &str,
    err: CentralError,
) -> CentralError {
    let log = async {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        audit::append(
            &tx,
            session.actor(),
            "operator.refused",
            &format!("outbox:{id}"),
            &serde_json::json!({ "action": "retry outbox messages", "reason": reason, "error": err.to_string() }),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, CentralError>(())
    };
    if let Err(e) = log.await {
        tracing::error!(error = %e, "could not audit a refusal");
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_the_initial_up_to_the_maximum() {
        let cfg = EgovSection {
            url: "https://egov.example/v1".into(),
            ca_file: "/x".into(),
            timeout_seconds: 10,
            max_attempts: 10,
            retry_initial_ms: 2_000,
            retry_max_ms: 60_000,
            poll_interval_ms: 1_000,
        };
        let waits: Vec<u64> = (1..=7).map(|n| backoff(&cfg, n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(&cfg, 1000).as_secs(), 60);
    }
}
