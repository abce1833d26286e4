//! What `serve` signs ahead of time, from the queue `relying_party_queue` that a trigger on
//! `certificates` fills on every issuance and revocation (migration V7): each certificate's OCSP
//! response and each CA key's CRL. Every `serve` runs it (with or without the public listener),
//! so what is published is kept current whichever instance serves it. The worker takes up to
//! [`BATCH`] rows with `FOR UPDATE SKIP LOCKED` (so several instances share the work), signs,
//! stores and deletes them in one transaction, and looks again at once while there is work;
//! idle, it waits for the trigger's `NOTIFY idcentral_relying_parties` on a connection of its own
//! ([`listen`]), or [`POLL`] at most (the connection may be down: a failover). A revocation is
//! therefore answered `revoked` within a few milliseconds plus one signature. What the trigger
//! and a CA revocation queue is `urgent` (migration V32) and taken before the refresh below,
//! so a revocation never waits behind responses whose status did not change.
//!
//! Every [`REFRESH`] (or a quarter of the OCSP validity, when shorter) it also queues what would otherwise expire: responses with less than half
//! of their validity left, CRLs with less than half of theirs, and (once, at start) every
//! certificate with no stored response; it certifies a new responder key when a third of the
//! responder certificate's validity is left and destroys a replaced one whose certificates have
//! all ended ([`super::responder_keys`]), signs the CSCA Master List again when the CSCAs or its
//! signer changed and destroys a replaced signer's key ([`super::master_list`]), and rolls the time-stamping key over when a twelfth of its
//! usage period is left ([`super::tsa_keys`]; another instance's rollover is picked up here
//! too).

use crate::db::Prepared;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::ocsp::{self, Status};
use super::{master_list, responder_keys, Public};
use crate::error::{CentralError, Result};

/// Queue rows signed in one transaction.
const BATCH: i64 = 64;
/// How long an idle worker waits for a notification before it looks at the queue anyway.
pub const POLL: Duration = Duration::from_millis(500);
/// The channel the V7 trigger notifies.
const CHANNEL: &str = "idcentral_relying_parties";
/// How often the worker queues what is about to expire (more often when a quarter of the OCSP
/// validity is shorter).
const REFRESH: Duration = Duration::from_secs(30);

/// How often a process reports the time-stamping keys due for destruction.
const REMIND: Duration = Duration::from_secs(86_400);

/// Log a warning for each retired time-stamping key due for destruction
/// ([`super::service_keys::destruction_reminders`]).
async fn remind_destruction(public: &Arc<Public>) {
    let now = time::OffsetDateTime::now_utc();
    match super::service_keys::destruction_reminders(&public.centre.pool, now).await {
        Ok(due) => {
            for d in due {
                let when = if d.overdue { "was due" } else { "is due" };
                tracing::warn!(
                    key = %d.key, destroy_by = %d.destroy_by,
                    "the retired time-stamping key is still in the HSM: its destruction {when} by \
                     {} (two ca-admins: `idcentral ca destroy-tsa-key --key {}`, then `ca approve`)",
                    d.destroy_by, d.key
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the time-stamping keys due for destruction")
        }
    }
}

/// Run until the process stops; `db` is where to LISTEN (a connection apart from the pool).
pub async fn run(public: Arc<Public>, db: crate::config::DatabaseSection) {
    let wake = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(listen(db, Arc::clone(&wake)));
    let mut last_refresh: Option<Instant> = None;
    let mut last_reminder: Option<Instant> = None;
    let every = REFRESH.min(public.ocsp_validity / 4);
    loop {
        if last_refresh.is_none_or(|t| t.elapsed() >= every) {
            if let Err(e) = refresh(&public, last_refresh.is_none()).await {
                tracing::warn!(error = %e, "could not queue the responses and CRLs to refresh");
            }
            last_refresh = Some(Instant::now());
        }
        if last_reminder.is_none_or(|t| t.elapsed() >= REMIND) {
            remind_destruction(&public).await;
            last_reminder = Some(Instant::now());
        }
        match drain(&public).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {
                let _ = tokio::time::timeout(POLL, wake.notified()).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not sign the queued OCSP responses and CRLs");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// LISTEN on [`CHANNEL`] and wake the worker at each notification; reconnect after a second
/// when the connection fails (the worker polls meanwhile).
async fn listen(db: crate::config::DatabaseSection, wake: Arc<tokio::sync::Notify>) {
    loop {
        if let Err(e) = listen_once(&db, &wake).await {
            tracing::debug!(error = %e, "the relying-party queue's LISTEN connection ended");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(
    db: &crate::config::DatabaseSection,
    wake: &Arc<tokio::sync::Notify>,
) -> Result<()> {
    let cfg = crate::db::pg_config(db)?;
    let (client, mut conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| CentralError::Database(e.to_string()))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection delivers notifications only while it is polled.
    let driver = tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            match m {
                Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| CentralError::Database(e.to_string()))?;
    while rx.recv().await.is_some() {
        wake.notify_one();
    }
    driver.abort();
    Ok(())
}

/// Queue what is about to expire (see the module documentation); roll responders.
pub async fn refresh(public: &Arc<Public>, at_start: bool) -> Result<()> {
    let client = public.centre.pool.get().await?;
    let half_ocsp = i64::try_from(public.ocsp_validity.as_secs() / 2).unwrap_or(i64::MAX);
    client
        .prepared_execute(
            "INSERT INTO relying_party_queue (kind, issuer_key, serial)
             SELECT 'ocsp', issuer_key, serial FROM ocsp_responses
             WHERE next_update < now() + make_interval(secs => $1)
             ON CONFLICT DO NOTHING",
            &[&(half_ocsp as f64)],
        )
        .await?;
    // Each CRL when less than half of its own validity is left (its profile's nextUpdate:
    // 48 hours for most keys, 90 days for the CSCA's).
    client
        .prepared_execute(
            "INSERT INTO relying_party_queue (kind, issuer_key, serial)
             SELECT 'crl', k.label, '\\x'::bytea FROM ca_keys k
             WHERE NOT EXISTS (SELECT 1 FROM crls c WHERE c.issuer_key = k.label
                               AND c.next_update > now() + (c.next_update - c.this_update) / 2)
             ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    if at_start {
        client
            .prepared_execute(
                "INSERT INTO relying_party_queue (kind, issuer_key, serial)
                 SELECT 'ocsp', c.issuer_key, c.serial FROM certificates c
                 WHERE NOT EXISTS (SELECT 1 FROM ocsp_responses r
                                   WHERE r.issuer_key = c.issuer_key AND r.serial = c.serial)
                 ON CONFLICT DO NOTHING",
                &[],
            )
            .await?;
    }
    drop(client);
    // A CA key another process made (`idcentral ca approve` of a rotation, another instance):
    // loaded here before its certificates are asked about, its CRL and certificate served.
    if let Err(e) = pick_up_new_keys(public).await {
        tracing::warn!(error = %e, "could not load the CA keys made since");
    }
    let profile = public.centre.profiles.cert(ocsp::PROFILE)?;
    let validity = Duration::from_secs(u64::from(profile.validity.days) * 86_400);
    let now = SystemTime::now();
    let responders = public.responders();
    let rolling = responders.iter().any(|r| {
        r.not_after.duration_since(now).unwrap_or_default()
            <= validity / responder_keys::ROLL_WHEN_LEFT
    }) || public.issuers().iter().any(|(key, issuer)| {
        // A CA key whose responder could not be certified (and whose CA has a day left).
        ca::days_within_issuer(1, issuer.not_after(), now) > 0
            && !responders.iter().any(|r| r.ca_key == *key)
    });
    // The time-stamping key: rolled over here before its usage period ends (or picked up
    // when another instance rolled it).
    if let Err(e) = public.tsa.refresh(&public.centre, &public.issuers()).await {
        tracing::warn!(error = %e, "could not read the time-stamping key");
    }
    if rolling {
        // Each CA key on its own (responder_keys::ensure_responders); nothing certified at all
        // keeps the responders in memory and is tried again at the next refresh.
        match responder_keys::ensure_responders(
            &public.centre.pool,
            &public.centre.store,
            &public.issuers(),
            &public.centre.profiles,
            &public.centre.name,
            &responders,
        )
        .await
        {
            Ok(fresh) => {
                if let Ok(mut r) = public.responders.write() {
                    *r = fresh;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not roll the OCSP responders over"),
        }
    }
    // The service keys' upkeep: each step on its own, so one that fails (logged) does not keep
    // the others from running.
    let c = &public.centre;
    if let Err(e) = responder_keys::destroy_ended(&c.pool, &c.store, &c.name).await {
        tracing::warn!(error = %e, "could not destroy the replaced OCSP responder keys");
    }
    if let Err(e) = refresh_master_list(public).await {
        tracing::warn!(error = %e, "could not sign the CSCA Master List");
    }
    if let Err(e) = master_list::destroy_replaced(&c.pool, &c.store, &c.name).await {
        tracing::warn!(error = %e, "could not destroy the replaced Master List Signer keys");
    }
    Ok(())
}

/// Reload the CA keys when `ca_keys` lists one this process has not loaded (a key the HSM does
/// not hold is left out by [`super::load_issuers`], logged at each try).
async fn pick_up_new_keys(public: &Arc<Public>) -> Result<()> {
    let known = public.issuers();
    let client = public.centre.pool.get().await?;
    let rows = client
        .prepared_query("SELECT label FROM ca_keys", &[])
        .await?;
    drop(client);
    if rows
        .iter()
        .any(|r| !known.contains_key(r.get::<_, &str>(0)))
    {
        public.reload_keys().await?;
    }
    Ok(())
}

/// The CSCA Master List signed again when the CSCA certificates or its signer changed (a CSCA
/// rotation adds a key, loaded by [`pick_up_new_keys`] first).
async fn refresh_master_list(public: &Arc<Public>) -> Result<()> {
    let c = &public.centre;
    master_list::ensure(&c.pool, &c.store, &public.issuers(), &c.profiles, &c.name).await?;
    Ok(())
}

/// Sign up to [`BATCH`] queued items in one transaction; how many there were.
pub async fn drain(public: &Arc<Public>) -> Result<usize> {
    let mut client = public.centre.pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .prepared_query(
            "SELECT kind, issuer_key, serial, queued_at FROM relying_party_queue
             ORDER BY urgent DESC, queued_at LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&BATCH],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // A key this process does not know yet: a rotation at the centre made it.
    let known = public.issuers();
    if rows
        .iter()
        .any(|r| !known.contains_key(r.get::<_, &str>(1)))
    {
        public.reload_keys().await?;
    }
    let (issuers, responders) = (public.issuers(), public.responders());
    let mut skipped = 0usize;
    for row in &rows {
        let (kind, key, serial): (&str, &str, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
        match kind {
            "crl" => super::crl::resign(public, &tx, key).await?,
            _ => {
                let Some(responder) = responders.iter().find(|r| r.ca_key == key).cloned() else {
                    // Nothing can be signed for it now. Its CA certificate ended: the item is
                    // dropped. Else (its responder could not be certified yet, logged there;
                    // the refresh tries again) it goes to the back of the queue, not urgent, so
                    // it neither blocks the items behind it nor is taken again at once.
                    let ended = issuers
                        .get(key)
                        .is_some_and(|i| i.not_after() <= SystemTime::now());
                    if ended {
                        tracing::warn!(%key, "an OCSP response was queued for a CA key whose certificate has ended: dropped");
                        dequeue(&tx, row).await?;
                    } else {
                        tracing::warn!(%key, "an OCSP response was queued for a CA key without a responder yet: deferred");
                        defer(&tx, row).await?;
                    }
                    skipped += 1;
                    continue;
                };
                let cert = tx
                    .prepared_opt(
                        "SELECT state, revoked_at, revocation_reason FROM issued_status
                         WHERE issuer_key = $1 AND serial = $2",
                        &[&key, &serial],
                    )
                    .await?;
                let Some(cert) = cert else {
                    dequeue(&tx, row).await?;
                    continue;
                };
                let status = if cert.get::<_, &str>(0) == "revoked" {
                    Status::Revoked {
                        at: cert
                            .get::<_, Option<SystemTime>>(1)
                            .unwrap_or(SystemTime::UNIX_EPOCH),
                        reason: cert.get(2),
                    }
                } else {
                    Status::Good
                };
                let (store, r, s, st, validity) = (
                    Arc::clone(&public.centre.store),
                    Arc::clone(&responder),
                    serial.clone(),
                    status.clone(),
                    public.ocsp_validity,
                );
                let (der, this_update, next_update) = tokio::task::spawn_blocking(move || {
                    ocsp::sign_stored(store.as_ref(), &r, &s, &st, validity)
                })
                .await
                .map_err(|e| CentralError::Other(format!("OCSP signing task: {e}")))??;
                let (word, at, reason) = match &status {
                    Status::Revoked { at, reason } => ("revoked", Some(*at), reason.clone()),
                    _ => ("good", None, None),
                };
                tx.prepared_execute(
                    "INSERT INTO ocsp_responses
                       (issuer_key, serial, status, revoked_at, reason, response_der, produced_at, next_update)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (issuer_key, serial) DO UPDATE
                     SET status = $3, revoked_at = $4, reason = $5, response_der = $6,
                         produced_at = $7, next_update = $8",
                    &[&key, &serial, &word, &at, &reason, &der, &this_update, &next_update],
                )
                .await?;
            }
        }
        dequeue(&tx, row).await?;
    }
    tx.commit().await?;
    // Deferred items are no work done: the worker waits for a notification or its poll.
    Ok(rows.len() - skipped)
}

/// Put queue item `row` back at the end of the queue, not urgent.
async fn defer(tx: &deadpool_postgres::Transaction<'_>, row: &tokio_postgres::Row) -> Result<()> {
    on_item(
        tx,
        row,
        "UPDATE relying_party_queue SET urgent = false, queued_at = clock_timestamp()
         WHERE kind = $1 AND issuer_key = $2 AND serial = $3 AND queued_at = $4",
    )
    .await
}

/// Remove queue item `row` — unless it was queued again meanwhile (a later `queued_at`).
async fn dequeue(tx: &deadpool_postgres::Transaction<'_>, row: &tokio_postgres::Row) -> Result<()> {
    on_item(
        tx,
        row,
        "DELETE FROM relying_party_queue
         WHERE kind = $1 AND issuer_key = $2 AND serial = $3 AND queued_at = $4",
    )
    .await
}

/// Run `sql` on queue item `row` (kind, issuer key, serial, queued at: `$1`..`$4`).
async fn on_item(
    tx: &deadpool_postgres::Transaction<'_>,
    row: &tokio_postgres::Row,
    sql: &'static str,
) -> Result<()> {
    let (kind, key, serial): (&str, &str, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
    tx.prepared_execute(sql, &[&kind, &key, &serial, &row.get::<_, SystemTime>(3)])
        .await?;
    Ok(())
}
