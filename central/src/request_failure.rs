//! The end of a CA request whose execution stopped for good (`crate::key_destruction`,
//! `crate::csca_withdrawal`): state `failed`, audited. Apart from `crate::rotation`, which
//! dispatches to both, so that neither depends back on it.

use crate::audit::{self, Actor};
use crate::db::Prepared;
use crate::error::Result;
use serde_json::json;

/// End approved request `id` as `failed` for `reason` in `tx` (audited `ca.request.failed` with
/// the key and both operators): an execution that stopped for good.
pub(crate) async fn record_failed(
    tx: &deadpool_postgres::Transaction<'_>,
    actor: &Actor,
    (id, key, requested_by, approved_by): (i64, &str, &str, &str),
    reason: &str,
) -> Result<()> {
    tx.prepared_execute(
        "UPDATE ca_requests SET state = 'failed', note = $2 WHERE id = $1 AND state = 'approved'",
        &[&id, &registry::audit::bounded_name(reason)],
    )
    .await?;
    let details = json!({ "key": key, "reason": reason,
        "requested_by": requested_by, "approved_by": approved_by });
    let object = format!("ca-request:{id}");
    audit::append(tx, actor, "ca.request.failed", &object, &details).await?;
    Ok(())
}
