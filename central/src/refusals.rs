//! Every refusal of an enrolled station's request is written to the audit log
//! (`request.refused`: the rule, the sentence, the request and the job), in its own transaction
//! after the refused one rolled back. Requests refused before the station is known (no client
//! certificate, a certificate that is no station's) are only logged: anyone may connect, and the
//! audit chain is not theirs to fill.

use serde_json::json;

use crate::audit::{self, Actor};
use crate::error::{CentralError, Result};
use crate::pki::Centre;
use centre_api::WhoAmI;

/// A string field of a JSON body, bounded for the log (the body is the client's).
fn field(body: &serde_json::Value, name: &str) -> Option<String> {
    body.get(name)
        .and_then(|v| v.as_str())
        .map(registry::audit::bounded_name)
}

/// Write `err` to the audit log as the refusal of `station`'s `request` (the error comes back
/// unchanged; a failure to audit is logged, never put in its place).
pub async fn record(
    centre: &Centre,
    station: &str,
    request: &str,
    job: Option<&str>,
    body: &[u8],
    err: &CentralError,
) {
    let Some(rule) = err.rule() else { return };
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let job = job
        .map(registry::audit::bounded_name)
        .or_else(|| field(&parsed, "job"));
    let actor = Actor {
        operator: field(&parsed, "operator").unwrap_or_else(|| station.to_owned()),
        role: "station".into(),
        station: station.to_owned(),
    };
    let object = match &job {
        Some(j) => format!("job:{j}"),
        None => format!("station:{station}"),
    };
    let details =
        json!({ "request": request, "rule": rule, "reason": err.to_string(), "job": job });
    let write = async {
        let mut client = centre.pool.get().await?;
        let tx = client.transaction().await?;
        audit::append(&tx, &actor, "request.refused", &object, &details).await?;
        tx.commit().await?;
        Ok::<(), CentralError>(())
    };
    if let Err(e) = write.await {
        tracing::warn!(%station, %rule, error = %e, "could not audit a refusal");
    }
}

/// `r`, with its refusal (if it is one) audited as `who`'s.
pub async fn audited<T>(
    centre: &Centre,
    who: &WhoAmI,
    request: &str,
    job: Option<&str>,
    body: &[u8],
    r: Result<T>,
) -> Result<T> {
    if let Err(e) = &r {
        record(centre, &who.station, request, job, body, e).await;
    }
    r
}
