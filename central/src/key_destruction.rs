//! The end of a time-stamping key: its private key removed from the centre's HSM under dual
//! control (`idcentral ca destroy-tsa-key`, docs/relying-parties.md "Time-stamps").
//!
//! A TSA key signs within its usage period only; afterwards nothing needs it, and the CA/Browser
//! Forum Code Signing Baseline Requirements §6.3.2 ask that a Timestamp Certificate's private key
//! be removed from the Hardware Crypto Module within 18 months of the certificate's issuance,
//! the removal logged through a key deletion ceremony "witnessed and signed-off by at least two
//! Trusted Role members". Here that is a CA request of kind `destroy-tsa-key` (the same table,
//! expiry and rules as a rotation; `crate::rotation` files and executes it): a ca-admin files it for a retired key whose
//! usage period is over, a second ca-admin approves it, and the approval executes it: the key is
//! destroyed in the HSM, then one transaction records `tsa_keys.destroyed_at`, marks the request
//! executed and audits `tsa.key-destroyed` naming both operators. The certificate stays: the
//! tokens the key signed verify with it for years. A crash between the HSM and the database is
//! finished by `idcentral ca recover` (destroying a key that is already gone changes nothing).

use deadpool_postgres::{GenericClient, Pool};
use hsm::KeyStore;
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Actor};
use crate::db::Prepared;
use crate::error::{CentralError, Result};

/// The request kind in `ca_requests`.
pub const KIND: &str = "destroy-tsa-key";
/// The `ca` a destruction request names (one pending at a time, as for a CA).
pub const CA: &str = "tsa";

/// What an executed destruction did.
#[derive(Debug, Clone, Serialize)]
pub struct Destruction {
    pub request: i64,
    /// The TSA key's label, e.g. `centre-tsa-2`.
    pub key: String,
    /// Its certificate's serial (hex) and SHA-256 fingerprint: the certificate is kept.
    pub serial: Option<String>,
    pub fingerprint_sha256: String,
    /// Whether this execution removed the key (false: an earlier, interrupted one had).
    pub removed_from_hsm: bool,
    pub destroyed_at: String,
    pub requested_by: String,
    pub approved_by: String,
}

/// Why TSA key `key` may not be destroyed now, as (rule, error); `None` when it may.
pub(crate) async fn refusal(
    c: &impl GenericClient,
    key: &str,
) -> Result<Option<(&'static str, CentralError)>> {
    let shown = registry::audit::bounded_name(key);
    let row = c
        .prepared_opt(
            "SELECT state, destroyed_at IS NOT NULL, key_usage_until < now(),
                    to_char(key_usage_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM tsa_keys WHERE label = $1",
            &[&key],
        )
        .await?;
    let Some(r) = row else {
        return Ok(Some((
            "unknown",
            CentralError::NotFound(format!(
                "no time-stamping key {shown} (`idcentral ca services` lists them)"
            )),
        )));
    };
    let (state, destroyed, over): (String, bool, Option<bool>) = (r.get(0), r.get(1), r.get(2));
    let until: Option<String> = r.get(3);
    Ok(if destroyed {
        Some((
            "destroyed",
            CentralError::Conflict(format!("time-stamping key {shown} was destroyed already")),
        ))
    } else if state != "retired" {
        Some((
            "retired",
            CentralError::Conflict(format!(
                "time-stamping key {shown} is {state}: only a retired key is destroyed (the \
                 active key rolls over first)"
            )),
        ))
    } else if over != Some(true) {
        Some((
            "usage over",
            CentralError::Conflict(format!(
                "time-stamping key {shown} may still sign until {}: a key is destroyed after \
                 its usage period",
                until.as_deref().unwrap_or("?")
            )),
        ))
    } else {
        None
    })
}

/// An approved request `id` for `key`, as its journal gives it.
pub struct Job<'a> {
    pub id: i64,
    pub key: &'a str,
    pub requested_by: &'a str,
    pub approved_by: &'a str,
}

/// Execute approved request `job` (the caller holds its execution lock): the key out of the
/// HSM, then the record, the request's end and the audit event in one transaction.
pub async fn execute(
    pool: &Pool,
    store: &dyn KeyStore,
    actor: &Actor,
    job: &Job<'_>,
) -> Result<Destruction> {
    let recorded = {
        let client = pool.get().await?;
        client
            .prepared_one(
                "SELECT destroyed_at IS NOT NULL FROM tsa_keys WHERE label = $1",
                &[&job.key],
            )
            .await?
            .get::<_, bool>(0)
    };
    if !recorded {
        // Checked again: the key's state may have changed since the request was filed.
        if let Some((_, e)) = refusal(&pool.get().await?, job.key).await? {
            return Err(e);
        }
    }
    let removed = store.destroy(job.key)?;
    crate::failpoint::hit("destroy.hsm-done");
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let r = tx
        .prepared_one(
            "UPDATE tsa_keys SET destroyed_at = coalesce(destroyed_at, now()) WHERE label = $1
             RETURNING serial, cert_der,
                 to_char(destroyed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[&job.key],
        )
        .await?;
    let serial = r.get::<_, Option<Vec<u8>>>(0).map(hex::encode);
    // A retired key has its certificate (V18's `tsa_keys_certified`).
    let cert: Option<Vec<u8>> = r.get(1);
    let fingerprint = match cert {
        Some(der) => ca::fingerprint_sha256(&der)?,
        None => String::new(),
    };
    let destroyed_at: String = r.get(2);
    let executed = tx
        .prepared_execute(
            "UPDATE ca_requests SET state = 'executed', executed_at = now()
             WHERE id = $1 AND state = 'approved'",
            &[&job.id],
        )
        .await?;
    if executed == 1 {
        let details = json!({
            "key": job.key, "serial": serial, "certificate_sha256": fingerprint,
            "removed_from_hsm": removed, "hsm": store.backend(),
            "requested_by": job.requested_by, "approved_by": job.approved_by,
        });
        let object = format!("ca-request:{}", job.id);
        audit::append(&tx, actor, "tsa.key-destroyed", &object, &details).await?;
    }
    tx.commit().await?;
    tracing::info!(key = %job.key, request = job.id, removed,
        "time-stamping key destroyed in the HSM under dual control");
    Ok(Destruction {
        request: job.id,
        key: job.key.to_owned(),
        serial,
        fingerprint_sha256: fingerprint,
        removed_from_hsm: removed,
        destroyed_at,
        requested_by: job.requested_by.to_owned(),
        approved_by: job.approved_by.to_owned(),
    })
}
