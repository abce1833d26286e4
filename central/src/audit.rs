//! The centre's audit log: the station's hash-chained event format (`registry::audit`,
//! docs/audit-format.md) in a PostgreSQL table that triggers keep append-only. Appends from
//! several centre instances are serialised by a transaction-scoped advisory lock, so the chain
//! has one order.
//!
//! Checkpoints anchor the chain: (seq, hash, time) of the newest event signed by the centre's
//! audit key (`centre-audit-1` in the HSM, certified by the National Root CA under the
//! `audit-signer` profile), stored in `audit_checkpoints` (append-only). [`ensure_signer`] makes
//! the key once, [`checkpoint`] signs, [`verify_log`] checks the chain and every signature.

use crate::db::Prepared;
use deadpool_postgres::Transaction;
use registry::audit::{canonical_json, event_hash, AuditEvent, GENESIS_PREV_HASH};

use crate::error::{CentralError, Result};

/// Key of the advisory lock that serialises appends (any constant shared by all instances).
const AUDIT_LOCK: i64 = 0x1d5_a0d1;

/// HSM label of the centre's audit-signing key.
pub const AUDIT_KEY_LABEL: &str = "centre-audit-1";

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
    // Prepared once per pooled connection: the lock is held from here to the commit, so each
    // round trip saved here is time no other append waits.
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await?;
    let head = tx
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO audit_log (seq, time, operator, role, station, action, object, details, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    tx.execute(&lock, &[&AUDIT_LOCK]).await?;
    let last = tx.query_opt(&head, &[]).await?;
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
        &insert,
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
    client: &impl tokio_postgres::GenericClient,
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

/// The centre's audit signer: its HSM key label and its certificate chain (DER: the signer's
/// certificate, then the National Root CA that issued it).
#[derive(Debug, Clone)]
pub struct AuditSigner {
    pub label: String,
    pub chain_der: Vec<Vec<u8>>,
}

/// The active National Root certificate (DER).
async fn root_cert(client: &tokio_postgres::Client) -> Result<Vec<u8>> {
    client
        .query_opt(
            "SELECT cert_der FROM ca_keys WHERE ca = 'root' AND state = 'active'",
            &[],
        )
        .await?
        .map(|r| r.get(0))
        .ok_or(CentralError::NotInitialised)
}

/// The National Root key (any state) whose certificate signed `der`, else the active one: after
/// a root rollover a certificate stays under the root that issued it.
async fn root_of(client: &impl tokio_postgres::GenericClient, der: &[u8]) -> Result<Vec<u8>> {
    let rows = client
        .query("SELECT cert_der FROM ca_keys WHERE ca = 'root'", &[])
        .await?;
    match rows
        .into_iter()
        .map(|r| r.get::<_, Vec<u8>>(0))
        .find(|c| ca::issued_by(der, c).unwrap_or(false))
    {
        Some(root) => Ok(root),
        None => Err(CentralError::Conflict(format!(
            "certificate {} was not issued by any National Root key of this centre",
            ca::fingerprint_sha256(der)?
        ))),
    }
}

/// The audit signer, made on first use: a P-256 key `centre-audit-1` in the HSM (an existing
/// key of that label is reused: a run that stopped after generating it), certified by the
/// National Root CA under the `audit-signer` profile, stored in `audit_signer_keys` with the
/// event `audit.signer-certified`. Idempotent and safe between several centre instances: it
/// runs under the audit log's advisory lock. An existing signer whose certificate does not
/// match the HSM key is refused.
pub async fn ensure_signer(
    pool: &deadpool_postgres::Pool,
    store: &dyn hsm::KeyStore,
    centre: &str,
) -> Result<AuditSigner> {
    ensure_signer_with(pool, store, &profiles::builtin()?, centre).await
}

/// [`ensure_signer`] certifying a new signer under `profiles` (the centre's, URLs at `[public]
/// base_url`): what `init` calls, which makes the signer. Later callers only find it; a
/// centre initialised before the audit signer existed gets it under the built-in profiles.
pub async fn ensure_signer_with(
    pool: &deadpool_postgres::Pool,
    store: &dyn hsm::KeyStore,
    profiles: &profiles::ProfileSet,
    centre: &str,
) -> Result<AuditSigner> {
    let mut client = pool.get().await?;
    let root = root_cert(&client).await?;
    let tx = client.transaction().await?;
    tx.prepared_execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
        .await?;
    let row = tx
        .prepared_opt(
            "SELECT label, cert_der FROM audit_signer_keys WHERE state = 'active'",
            &[],
        )
        .await?;
    if let Some(row) = row {
        let label: String = row.get(0);
        let der: Vec<u8> = row.get(1);
        let issuer = root_of(&*tx, &der).await?;
        tx.commit().await?;
        check_key_matches(store, &label, &der)?;
        return Ok(AuditSigner {
            label,
            chain_der: vec![der, issuer],
        });
    }
    let label = AUDIT_KEY_LABEL;
    if store.find(label)?.is_none() {
        store.generate_p256(label)?;
    }
    let spki = store.public_key_spki(label)?;
    let root_issuer = tx
        .prepared_one(
            "SELECT label FROM ca_keys WHERE ca = 'root' AND state = 'active'",
            &[],
        )
        .await?;
    let issuer = ca::Issuer::new(store, root_issuer.get(0), &root)?;
    let cert = ca::issue_station_cert(
        store,
        profiles.cert("audit-signer")?,
        &issuer,
        &spki,
        &format!("{centre} audit"),
        std::time::SystemTime::now(),
    )?;
    tx.prepared_execute(
        "INSERT INTO audit_signer_keys (label, state, cert_der) VALUES ($1, 'active', $2)",
        &[&label, &cert.der],
    )
    .await?;
    let actor = Actor {
        operator: "idcentral".into(),
        role: "system".into(),
        station: centre.to_owned(),
    };
    append(
        &tx,
        &actor,
        "audit.signer-certified",
        &format!("audit-key:{label}"),
        &serde_json::json!({
            "key_label": label,
            "serial": cert.serial_hex(),
            "fingerprint_sha256": ca::fingerprint_sha256(&cert.der)?,
            "profile": "audit-signer",
        }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(key = label, "certified the centre's audit signer");
    Ok(AuditSigner {
        label: label.to_owned(),
        chain_der: vec![cert.der, root],
    })
}

/// The signer's certificate must hold the public key of the HSM key `label`.
fn check_key_matches(store: &dyn hsm::KeyStore, label: &str, cert_der: &[u8]) -> Result<()> {
    let spki = store.public_key_spki(label)?;
    if cert_spki(cert_der)? != spki {
        return Err(CentralError::Conflict(format!(
            "audit_signer_keys.{label}: the certificate does not hold the HSM key {label}'s public key"
        )));
    }
    Ok(())
}

fn cert_spki(cert_der: &[u8]) -> Result<Vec<u8>> {
    use der::{Decode, Encode};
    let c = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| CentralError::Database(format!("audit signer certificate: {e}")))?;
    c.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| CentralError::Database(format!("audit signer certificate: {e}")))
}

/// Sign a checkpoint over the newest audit event with the audit key (made first if missing).
/// `None` when the log is empty or its newest event already has one. Under the audit log's
/// advisory lock, so the newest event cannot change while it is signed.
pub async fn checkpoint(
    pool: &deadpool_postgres::Pool,
    store: &dyn hsm::KeyStore,
    centre: &str,
) -> Result<Option<registry::Checkpoint>> {
    let signer = ensure_signer(pool, store, centre).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.prepared_execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
        .await?;
    let last = tx
        .prepared_opt(
            "SELECT l.seq, l.hash, c.seq IS NOT NULL FROM audit_log l
             LEFT JOIN audit_checkpoints c ON c.seq = l.seq
             ORDER BY l.seq DESC LIMIT 1",
            &[],
        )
        .await?;
    let Some(last) = last else {
        return Ok(None);
    };
    if last.get::<_, bool>(2) {
        return Ok(None);
    }
    let seq = last.get::<_, i64>(0) as u64;
    let hash: [u8; 32] = last
        .get::<_, Vec<u8>>(1)
        .try_into()
        .map_err(|_| CentralError::Database("audit_log.hash is not 32 bytes".into()))?;
    let time = registry::now_rfc3339();
    let msg = registry::audit::checkpoint_message(seq, &hash, &time);
    let signature = store.sign_p256_sha256(&signer.label, &msg)?;
    tx.prepared_execute(
        "INSERT INTO audit_checkpoints (seq, hash, time, signature, key_label)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &(seq as i64),
            &hash.as_slice(),
            &time,
            &signature,
            &signer.label,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Some(registry::Checkpoint {
        seq,
        hash,
        time,
        signature,
    }))
}

/// [`checkpoint`] after a command changed something: a failure is logged, not returned (the
/// change is committed; the next checkpoint covers its events).
pub async fn checkpoint_after(
    pool: &deadpool_postgres::Pool,
    store: &dyn hsm::KeyStore,
    centre: &str,
    what: &str,
) {
    if let Err(e) = checkpoint(pool, store, centre).await {
        tracing::warn!(error = %e, after = what, "could not sign an audit checkpoint; the next one covers these events");
    }
}

/// Sign a checkpoint every `every` until the task is dropped (for `serve`: spawn it beside the
/// timeout sweep). Failures are logged and retried at the next tick.
pub async fn run_checkpoints(
    centre: std::sync::Arc<crate::pki::Centre>,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = checkpoint(&centre.pool, centre.store.as_ref(), &centre.name).await {
            tracing::warn!(error = %e, "could not sign a periodic audit checkpoint");
        }
    }
}

/// Every checkpoint, by sequence number, with the label of the key that signed it.
pub async fn checkpoints(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<(registry::Checkpoint, String)>> {
    let rows = client
        .query(
            "SELECT seq, hash, time, signature, key_label FROM audit_checkpoints ORDER BY seq",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let hash: [u8; 32] = r.get::<_, Vec<u8>>(1).try_into().map_err(|_| {
                CentralError::Database("audit_checkpoints.hash is not 32 bytes".into())
            })?;
            Ok((
                registry::Checkpoint {
                    seq: r.get::<_, i64>(0) as u64,
                    hash,
                    time: r.get(2),
                    signature: r.get(3),
                },
                r.get(4),
            ))
        })
        .collect()
}

/// What `audit verify-log` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogReport {
    pub events: u64,
    pub checkpoints: u64,
    /// The newest checkpoint's sequence number, if any.
    pub last_checkpoint: Option<u64>,
}

/// The whole chain ([`verify_chain`]) and every checkpoint: its key's certificate chains to the
/// National Root CA (audit-signing EKU), its signature verifies, and the event it names has the
/// hash it signed. The first failure is an error naming the sequence number.
pub async fn verify_log(client: &tokio_postgres::Client) -> Result<LogReport> {
    let events = verify_chain(client).await?;
    let keys = client
        .query("SELECT label, cert_der FROM audit_signer_keys", &[])
        .await?;
    let mut verifiers = std::collections::BTreeMap::new();
    for k in &keys {
        let label: String = k.get(0);
        let der: Vec<u8> = k.get(1);
        let root = root_of(client, &der).await?;
        let key =
            registry::export::audit_key_from_chain(&[der, root.clone()], &root, unix_now(), &[])
                .map_err(|e| CentralError::Conflict(format!("audit signer {label}: {e}")))?;
        verifiers.insert(label, key);
    }
    let cps = checkpoints(client).await?;
    for (c, label) in &cps {
        let key = verifiers.get(label).ok_or_else(|| {
            CentralError::Conflict(format!(
                "audit checkpoint {}: signed by {label}, which has no certificate",
                c.seq
            ))
        })?;
        if !c.verify(key) {
            return Err(CentralError::Conflict(format!(
                "audit checkpoint {} (signed at {}): the signature does not verify with {label}",
                c.seq, c.time
            )));
        }
        match events_at(client, c.seq).await? {
            Some(h) if h == c.hash => {}
            Some(_) => {
                return Err(CentralError::Conflict(format!(
                    "audit log broken at sequence {}: the event differs from its signed checkpoint",
                    c.seq
                )))
            }
            None => {
                return Err(CentralError::Conflict(format!(
                "audit log broken at sequence {}: a signed checkpoint names it but it is missing",
                c.seq
            )))
            }
        }
    }
    Ok(LogReport {
        events,
        checkpoints: cps.len() as u64,
        last_checkpoint: cps.last().map(|(c, _)| c.seq),
    })
}

async fn events_at(client: &tokio_postgres::Client, seq: u64) -> Result<Option<[u8; 32]>> {
    Ok(client
        .query_opt(
            "SELECT hash FROM audit_log WHERE seq = $1",
            &[&(seq as i64)],
        )
        .await?
        .and_then(|r| r.get::<_, Vec<u8>>(0).try_into().ok()))
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
