//! The loop `idcentral serve` runs when `[egov]` is configured: claim the due messages
//! ([`super::outbox::claim`]), deliver them at once, each on its own connection
//! ([`super::client::EgovClient::deliver`]), record each outcome ([`super::outbox::record`]),
//! and look again after `poll_interval_ms` (at once while there was work). Errors (the database
//! away, the HSM) are logged and the loop goes on; nothing is lost, because the state is in
//! PostgreSQL and a claim is only a lease.

use std::sync::Arc;
use std::time::Duration;

use super::client::{EgovClient, Outcome};
use super::keys::{self, EgovKeys};
use super::outbox::{self, Recorded};
use crate::config::EgovSection;
use crate::error::{CentralError, Result};
use crate::pki::Centre;

/// Messages claimed at once by one instance.
const BATCH: i64 = 16;
/// How much longer than one delivery's timeout a claim lasts (recording the outcome included).
/// A lease that runs out early costs a second send, which the idempotency key makes harmless; a
/// long one delays the message of an instance that died.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// Start the publisher for `cfg` (nothing when `serve` has no `[egov]` section): make the keys
/// an older centre lacks, load the receiver's CA file, then run [`run`] in the background. An
/// unusable configuration fails here, so `serve` does not start with a publisher that cannot
/// deliver.
pub async fn spawn(centre: &Arc<Centre>, cfg: Option<&EgovSection>) -> Result<()> {
    let Some(cfg) = cfg else {
        tracing::info!("no [egov] section: outbox messages are kept, not delivered");
        return Ok(());
    };
    let keys = centre_keys(centre).await?;
    let client = EgovClient::new(cfg, Arc::clone(&centre.store), &keys)?;
    tracing::info!(url = client.url(), "e-government publisher started");
    tokio::spawn(run(Arc::clone(centre), cfg.clone(), keys, Arc::new(client)));
    Ok(())
}

/// Deliver until the process ends. Every [`keys::RECHECK`] the keys' certificates are looked
/// at again ([`keys::ensure`] certifies one anew when due) and a renewed one taken into use.
pub async fn run(
    centre: Arc<Centre>,
    cfg: EgovSection,
    mut keys: EgovKeys,
    mut client: Arc<EgovClient>,
) {
    let poll = Duration::from_millis(cfg.poll_interval_ms);
    let mut checked = tokio::time::Instant::now();
    loop {
        if checked.elapsed() >= keys::RECHECK {
            checked = tokio::time::Instant::now();
            match recheck(&centre, &cfg, &keys).await {
                Ok(Some((k, c))) => (keys, client) = (k, c),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not look at the e-government keys' certificates")
                }
            }
        }
        match once(&centre, &cfg, &keys, &client).await {
            Ok(0) => tokio::time::sleep(poll).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "e-government publisher: will try again");
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// [`keys::ensure`] on `centre`'s database, HSM and profiles.
async fn centre_keys(centre: &Centre) -> Result<EgovKeys> {
    keys::ensure(
        &centre.pool,
        centre.store.as_ref(),
        &centre.profiles,
        &centre.name,
    )
    .await
}

/// The keys again ([`keys::ensure`]): new ones with a client for them when a certificate changed.
async fn recheck(
    centre: &Centre,
    cfg: &EgovSection,
    current: &EgovKeys,
) -> Result<Option<(EgovKeys, Arc<EgovClient>)>> {
    let keys = centre_keys(centre).await?;
    if keys.jws_chain == current.jws_chain && keys.tls_chain == current.tls_chain {
        return Ok(None);
    }
    let client = EgovClient::new(cfg, Arc::clone(&centre.store), &keys)?;
    tracing::info!("the e-government keys' certificates were renewed: now in use");
    Ok(Some((keys, Arc::new(client))))
}

/// One round: the messages due now, delivered and recorded. How many were attempted.
pub async fn once(
    centre: &Centre,
    cfg: &EgovSection,
    keys: &EgovKeys,
    client: &Arc<EgovClient>,
) -> Result<usize> {
    let lease = client.timeout() + LEASE_MARGIN;
    let claimed = outbox::claim(
        &centre.pool,
        centre.store.as_ref(),
        keys,
        &centre.name,
        lease,
        BATCH,
    )
    .await?;
    let n = claimed.len();
    let mut attempts = tokio::task::JoinSet::new();
    for c in claimed {
        let client = Arc::clone(client);
        attempts.spawn(async move {
            let outcome = match &c.jws {
                Ok(jws) => client.deliver(c.id, jws).await,
                Err(e) => Outcome::Failed {
                    status: None,
                    error: format!("the message could not be made: {e}"),
                },
            };
            (c, outcome)
        });
    }
    let mut first_error = None;
    while let Some(done) = attempts.join_next().await {
        // A task that panicked leaves its message to the lease; the others are still recorded.
        let (c, outcome) = match done {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "an e-government delivery task failed; its message is tried again when its claim runs out");
                first_error.get_or_insert(CentralError::Other(format!("delivery task: {e}")));
                continue;
            }
        };
        match outbox::record(&centre.pool, cfg, &centre.name, &c, &outcome).await {
            Ok(Recorded::Delivered) => tracing::info!(message = c.id, "delivered to e-government"),
            Ok(Recorded::Retry(wait)) => tracing::warn!(
                message = c.id, ?outcome, wait_ms = wait.as_millis() as u64,
                "e-government delivery failed; will retry"
            ),
            Ok(Recorded::DeadLetter) => tracing::error!(
                message = c.id, ?outcome,
                "e-government delivery failed for the last time: the message is failed (outbox list --failed)"
            ),
            Ok(Recorded::LeaseLost) => tracing::warn!(
                message = c.id,
                "the claim ran out before the outcome was recorded; another attempt will decide"
            ),
            Err(e) => {
                tracing::warn!(message = c.id, error = %e, "could not record a delivery's outcome");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(n),
    }
}
