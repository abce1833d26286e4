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

/// Why the execution of a request stops: for good (the request ends `failed`), or for now (an
/// HSM or database that cannot answer: it stays approved, for `idcentral ca recover`).
enum Stop {
    Refused(CentralError),
    Transient(CentralError),
}

impl From<CentralError> for Stop {
    fn from(e: CentralError) -> Self {
        Stop::Transient(e)
    }
}

impl From<deadpool_postgres::PoolError> for Stop {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Stop::Transient(e.into())
    }
}

impl From<tokio_postgres::Error> for Stop {
    fn from(e: tokio_postgres::Error) -> Self {
        Stop::Transient(e.into())
    }
}

impl From<hsm::HsmError> for Stop {
    fn from(e: hsm::HsmError) -> Self {
        Stop::Transient(e.into())
    }
}

impl From<ca::CaError> for Stop {
    fn from(e: ca::CaError) -> Self {
        Stop::Transient(e.into())
    }
}

/// The checks before the HSM is first asked to destroy `key`: still retired with its usage
/// period over (the state may have changed since the request was filed), and in the HSM as the
/// key its certificate certifies — not missing (another token, another domain: nothing would
/// be destroyed while the record said it was), not another key under the label.
async fn first_attempt(
    pool: &Pool,
    store: &dyn KeyStore,
    key: &str,
) -> std::result::Result<(), Stop> {
    let client = pool.get().await?;
    if let Some((_, e)) = refusal(&client, key).await? {
        return Err(Stop::Refused(e));
    }
    let cert: Vec<u8> = client
        .prepared_one("SELECT cert_der FROM tsa_keys WHERE label = $1", &[&key])
        .await?
        .get(0);
    let wanted = ca::certificate_spki(&cert)?;
    match store.find(key)? {
        None => Err(Stop::Refused(CentralError::Conflict(format!(
            "the HSM ({}) has no key {key}: check that [hsm] names the token the time-stamping \
             keys are in; nothing was destroyed",
            store.backend()
        )))),
        Some(found) if found.spki_der.as_deref() != Some(wanted.as_slice()) => {
            Err(Stop::Refused(CentralError::Conflict(format!(
                "the key {key} in the HSM is not the one its certificate certifies; nothing was \
                 destroyed"
            ))))
        }
        Some(_) => Ok(()),
    }
}

/// End request `job` as `failed` (audited `ca.request.failed` with the reason) when its
/// execution stops for good; the error back either way.
async fn fail(pool: &Pool, actor: &Actor, job: &Job<'_>, stop: Stop) -> CentralError {
    let e = match stop {
        Stop::Refused(e) => e,
        Stop::Transient(e) => return e,
    };
    let reason = e.to_string();
    let write = async {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let request = (job.id, job.key, job.requested_by, job.approved_by);
        crate::request_failure::record_failed(&tx, actor, request, &reason).await?;
        tx.commit().await?;
        Ok::<_, CentralError>(())
    };
    if let Err(w) = write.await {
        tracing::error!(error = %w, request = job.id, "could not record a failed CA request");
    }
    e
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
    let journal = pool
        .get()
        .await?
        .prepared_one(
            "SELECT (SELECT destroyed_at IS NOT NULL FROM tsa_keys WHERE label = $1),
                    hsm_attempted_at IS NOT NULL
             FROM ca_requests WHERE id = $2",
            &[&job.key, &job.id],
        )
        .await?;
    let (recorded, attempted): (Option<bool>, bool) = (journal.get(0), journal.get(1));
    let recorded = recorded == Some(true);
    if !recorded && !attempted {
        if let Err(e) = first_attempt(pool, store, job.key).await {
            return Err(fail(pool, actor, job, e).await);
        }
        pool.get()
            .await?
            .prepared_execute(
                "UPDATE ca_requests SET hsm_attempted_at = now() WHERE id = $1",
                &[&job.id],
            )
            .await?;
    }
    let removed = !recorded && store.destroy(job.key)?;
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
