//! The centre's audit log: the station's hash-chained event format (`registry::audit`,
//! docs/audit-format.md) in a PostgreSQL table that triggers keep append-only. Appends from
//! several centre instances are serialised by a transaction-scoped advisory lock, so the chain
//! has one order.

use registry::audit::{canonical_json, event_hash, AuditEvent, GENESIS_PREV_HASH};
use tokio_postgres::Transaction;

use crate::error::{CentralError, Result};

/// Key of the advisory lock that serialises appends (any constant shared by all instances).
const AUDIT_LOCK: i64 = 0x1d5_a0d1;

/// Who did something at the centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub operator: String,
    pub role: String,
    /// The station the request came from, or the centre's own name.
    pub station: String,
}

/// Append one event inside `tx` (it commits or rolls back with the change it records).
pub async fn append(
    tx: &Transaction<'_>,
    actor: &Actor,
    action: &str,
    object: &str,
    details: &serde_json::Value,
) -> Result<AuditEvent> {
    let details = canonical_json(details).map_err(|e| CentralError::Other(e.to_string()))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
        .await?;
    let last = tx
        .query_opt(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?;
    let (seq, prev_hash) = match last {
        None => (1u64, GENESIS_PREV_HASH),
        Some(row) => {
            let seq: i64 = row.get(0);
            let hash: Vec<u8> = row.get(1);
            let prev: [u8; 32] = hash
                .try_into()
                .map_err(|_| CentralError::Database("audit_log.hash is not 32 bytes".into()))?;
            (seq as u64 + 1, prev)
        }
    };
    let time = registry::now_rfc3339();
    let hash = event_hash(
        seq,
        [
            &time,
            &actor.operator,
            &actor.role,
            &actor.station,
            action,
            object,
            &details,
        ],
        &prev_hash,
    );
    tx.execute(
        "INSERT INTO audit_log (seq, time, operator, role, station, action, object, details, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &(seq as i64),
            &time,
            &actor.operator,
            &actor.role,
            &actor.station,
            &action,
            &object,
            &details,
            &prev_hash.as_slice(),
            &hash.as_slice(),
        ],
    )
    .await?;
    Ok(AuditEvent {
        seq,
        time,
        operator: actor.operator.clone(),
        role: actor.role.clone(),
        station: actor.station.clone(),
        action: action.to_owned(),
        object: object.to_owned(),
        details,
        prev_hash,
        hash,
    })
}

/// Every event with `from <= seq <= to`, in order.
pub async fn events(
    client: &tokio_postgres::Client,
    from: u64,
    to: u64,
) -> Result<Vec<AuditEvent>> {
    let rows = client
        .query(
            "SELECT seq, time, operator, role, station, action, object, details, prev_hash, hash
             FROM audit_log WHERE seq BETWEEN $1 AND $2 ORDER BY seq",
            &[&(from as i64), &(to.min(i64::MAX as u64) as i64)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let h = |i: usize| -> Result<[u8; 32]> {
                r.get::<_, Vec<u8>>(i)
                    .try_into()
                    .map_err(|_| CentralError::Database("audit_log hash is not 32 bytes".into()))
            };
            Ok(AuditEvent {
                seq: r.get::<_, i64>(0) as u64,
                time: r.get(1),
                operator: r.get(2),
                role: r.get(3),
                station: r.get(4),
                action: r.get(5),
                object: r.get(6),
                details: r.get(7),
                prev_hash: h(8)?,
                hash: h(9)?,
            })
        })
        .collect()
}

/// Walk the whole chain: each event's hash recomputes and names its predecessor. Returns the
/// number of events; the first break is an error naming its sequence number.
pub async fn verify_chain(client: &tokio_postgres::Client) -> Result<u64> {
    let all = events(client, 1, u64::MAX).await?;
    let mut prev = GENESIS_PREV_HASH;
    for (i, e) in all.iter().enumerate() {
        let expected_seq = i as u64 + 1;
        if e.seq != expected_seq || e.prev_hash != prev || e.compute_hash() != e.hash {
            return Err(CentralError::Conflict(format!(
                "audit log broken at sequence {expected_seq}"
            )));
        }
        prev = e.hash;
    }
    Ok(all.len() as u64)
}
