//! CRLs served at `/crl/{key}.crl` (RFC 5280 §5): each CA key's CRL, signed in the HSM through
//! `ca::issue_crl` under the `esign-crl` profile (the CSCA's under `csca-crl`: ICAO Doc 9303-12
//! §7.1.4, no reason codes), lists every certificate of that key revoked in
//! the registry with its date and reason (the holder certificates it issued and, for a root
//! key, the CA certificates it signed that `idcentral ca revoke-ca` revoked: the V13 view
//! `issued_status`). [`super::worker`] signs it again when a certificate
//! of the key is revoked (the queue) and when less than half of its validity is left; the newest
//! is kept in `crls` with a cRLNumber that only grows (§5.2.3).

use crate::db::Prepared;
use std::time::SystemTime;

use deadpool_postgres::Transaction;

use super::Public;
use crate::error::{CentralError, Result};

/// A stored CRL.
pub struct StoredCrl {
    pub der: Vec<u8>,
    pub this_update: SystemTime,
    pub next_update: SystemTime,
}

/// The newest CRL of `key`, if one was signed.
pub async fn newest(public: &Public, key: &str) -> Result<Option<StoredCrl>> {
    let client = public.centre.pool.get().await?;
    Ok(client
        .prepared_opt(
            "SELECT crl_der, this_update, next_update FROM crls WHERE issuer_key = $1",
            &[&key],
        )
        .await?
        .map(|r| StoredCrl {
            der: r.get(0),
            this_update: r.get(1),
            next_update: r.get(2),
        }))
}

/// Sign `key`'s CRL again inside `tx` (which holds the queue row): the next cRLNumber, every
/// revoked certificate of the key.
pub async fn resign(public: &Public, tx: &Transaction<'_>, key: &str) -> Result<()> {
    let Some(issuer) = public.issuers().get(key).cloned() else {
        tracing::warn!(%key, "a CRL was queued for a CA key the HSM does not have: skipped");
        return Ok(());
    };
    let number: i64 = tx
        .prepared_opt(
            "SELECT crl_number FROM crls WHERE issuer_key = $1 FOR UPDATE",
            &[&key],
        )
        .await?
        .map(|r| r.get::<_, i64>(0) + 1)
        .unwrap_or(1);
    let rows = tx
        .prepared_query(
            "SELECT serial, revoked_at, revocation_reason FROM issued_status
             WHERE issuer_key = $1 AND state = 'revoked' ORDER BY revoked_at, serial",
            &[&key],
        )
        .await?;
    let now = SystemTime::now();
    let revoked: Vec<ca::RevokedEntry> = rows
        .iter()
        .map(|r| ca::RevokedEntry {
            serial: r.get(0),
            // revocationDate no later than thisUpdate (whole seconds; RFC 5280 §5.1.2.6).
            revoked_at: r
                .get::<_, Option<SystemTime>>(1)
                .map(whole_seconds)
                .unwrap_or(SystemTime::UNIX_EPOCH)
                .min(whole_seconds(now)),
            reason: r
                .get::<_, Option<&str>>(2)
                .and_then(ca::RevocationReason::from_rfc5280_name),
        })
        .collect();
    let ca: String = tx
        .prepared_one("SELECT ca FROM ca_keys WHERE label = $1", &[&key])
        .await?
        .get(0);
    let profile = public
        .centre
        .profiles
        .crl(profiles::crl_profile_name(&ca))?
        .clone();
    let store = std::sync::Arc::clone(&public.centre.store);
    let count = revoked.len();
    let der = tokio::task::spawn_blocking(move || {
        ca::issue_crl(
            store.as_ref(),
            &profile,
            &issuer,
            u64::try_from(number).unwrap_or(1),
            &revoked,
            now,
        )
    })
    .await
    .map_err(|e| CentralError::Other(format!("CRL signing task: {e}")))??;
    let info = crl_times(&der)?;
    tx.prepared_execute(
        "INSERT INTO crls (issuer_key, crl_number, crl_der, this_update, next_update)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (issuer_key) DO UPDATE
         SET crl_number = $2, crl_der = $3, this_update = $4, next_update = $5",
        &[&key, &number, &der, &info.0, &info.1],
    )
    .await?;
    tracing::info!(%key, crl_number = number, entries = count, "signed the CRL");
    Ok(())
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

/// thisUpdate and nextUpdate of a DER CRL.
fn crl_times(der: &[u8]) -> Result<(SystemTime, SystemTime)> {
    use x509_cert_02::der::Decode;
    let crl = x509_cert_02::crl::CertificateList::from_der(der)
        .map_err(|e| CentralError::Other(format!("the CRL just signed does not decode: {e}")))?;
    let tbs = &crl.tbs_cert_list;
    let next_update = tbs
        .next_update
        .map(|t| t.to_system_time())
        .ok_or_else(|| CentralError::Other("the CRL just signed has no nextUpdate".into()))?;
    Ok((tbs.this_update.to_system_time(), next_update))
}
