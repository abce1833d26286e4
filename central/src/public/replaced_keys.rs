//! The end of a service key a newer one replaced — an OCSP responder's
//! ([`super::responder_keys`]) or a Master List Signer's ([`super::master_list`]): once each of
//! when the kind says it is due (a responder's once each of its certificates has ended, a Master
//! List Signer's once replaced), [`destroy_due`] removes it from the HSM, records the removal
//! and audits it, in one transaction under the kind's advisory lock. A key under the label that
//! is not the one the certificate certifies is left alone (logged); a private key without its
//! public half (a destroy cut short by a crash) is this key and goes. A key already gone (an
//! attempt that removed it and did not commit; or another HSM token configured, which every
//! other signature of the centre would show at once) is recorded with `removed_from_hsm:
//! false`.

use crate::db::Prepared;
use std::sync::Arc;
use std::time::SystemTime;

use deadpool_postgres::Pool;
use hsm::KeyStore;

use crate::audit;
use crate::error::Result;

/// One kind of replaced key.
pub struct Replaced {
    /// The transaction advisory lock that orders this kind's changes across instances.
    pub lock: &'static str,
    /// The keys due, not recorded destroyed: rows of (HSM label, audit object, the end of its
    /// last certificate, the CA key it served or NULL, that certificate).
    pub due: &'static str,
    /// Records the destruction of the key `$1`.
    pub record: &'static str,
    /// The audit action.
    pub action: &'static str,
}

/// Destroy every key of kind `k` that is due (see the module documentation); how many.
pub async fn destroy_due(
    pool: &Pool,
    store: &Arc<dyn KeyStore>,
    centre_name: &str,
    k: &'static Replaced,
) -> Result<usize> {
    let mut client = pool.get().await?;
    if client.prepared_query(k.due, &[]).await?.is_empty() {
        return Ok(0);
    }
    let tx = client.transaction().await?;
    tx.prepared_execute(k.lock, &[]).await?;
    let due = tx.prepared_query(k.due, &[]).await?;
    for row in &due {
        let (label, object, ended): (String, String, SystemTime) =
            (row.get(0), row.get(1), row.get(2));
        let (ca_key, cert): (Option<String>, Vec<u8>) = (row.get(3), row.get(4));
        // Never another key under the label: only the key the certificate certifies goes. A
        // private key whose public half is gone is this key, half destroyed before a crash.
        let certified = ca::certificate_spki(&cert)?;
        let other = match store.find(&label) {
            Ok(found) => found.is_some_and(|f| f.spki_der.as_ref() != Some(&certified)),
            Err(hsm::HsmError::PublicHalfMissing { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if other {
            tracing::warn!(key = %label, action = k.action,
                "the HSM key under this label is not the one its certificate certifies: not destroyed");
            continue;
        }
        let removed = store.destroy(&label)?;
        tx.prepared_execute(k.record, &[&label]).await?;
        let mut details = serde_json::json!({
            "key": label, "ended": super::http_date(ended), "removed_from_hsm": removed,
        });
        if let Some(c) = &ca_key {
            details["ca_key"] = c.as_str().into();
        }
        let actor = super::centre_actor(centre_name);
        audit::append(&tx, &actor, k.action, &object, &details).await?;
        tracing::info!(key = %label, removed, action = k.action, "destroyed a replaced key");
    }
    tx.commit().await?;
    Ok(due.len())
}
