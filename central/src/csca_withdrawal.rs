//! A CSCA key taken off the CSCA Master List under dual control (`idcentral ca withdraw-csca`;
//! docs/relying-parties.md "CSCA Master List").
//!
//! A CSCA certificate is self-signed (ICAO Doc 9303-12 §5): no CRL can revoke it, so what a
//! State does with a compromised CSCA key, once a rotation has replaced it, is to stop vouching
//! for it — the next Master List no longer lists it or the link certificates to and from it. Here
//! that is a CA request of kind `withdraw-csca` (the same table, expiry and dual-control rules as
//! a rotation; `crate::rotation` files and executes it): a ca-admin files it for a retired CSCA
//! key with an RFC 5280 reason, a second ca-admin approves it, and the approval executes it in
//! one transaction — `ca_keys.withdrawn_at` set, the request executed, `ca.csca-withdrawn`
//! audited with both operators. Every `serve` signs the next Master List without the key at its
//! next refresh (`crate::public::master_list`), and `GET /v1/anchors` names it to the stations,
//! which stop trusting it (`crate::anchors`). The key's certificate and the Document Signer
//! certificates it issued are not changed, but every card in use whose EF.SOD such a Document
//! Signer signed is flagged for replacement in the same transaction (`idcentral station
//! cards-to-replace`): no inspection system that trusts the Master List accepts its chip data.

use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Actor};
use crate::db::Prepared;
use crate::error::{CentralError, Result};

/// The request kind in `ca_requests`.
pub const KIND: &str = "withdraw-csca";
/// The `ca` a withdrawal names (one pending CSCA request at a time).
pub const CA: &str = "csca";

/// What an executed withdrawal did.
#[derive(Debug, Clone, Serialize)]
pub struct Withdrawal {
    pub request: i64,
    pub key: String,
    pub reason: String,
    pub withdrawn_at: String,
    pub requested_by: String,
    pub approved_by: String,
    /// The stations whose newest Document Signer certificate the key issued, as `station
    /// (serial)`: each stops issuing once it reads the anchors, until it renews its Document
    /// Signer under the active CSCA.
    pub document_signers: Vec<String>,
    /// Cards in use whose EF.SOD a Document Signer the key certified signed, now flagged for
    /// replacement.
    pub cards_to_replace: u64,
}

/// Why CSCA key `key` may not be withdrawn now, as (rule, error); `None` when it may.
pub(crate) async fn refusal(
    c: &impl GenericClient,
    key: &str,
) -> Result<Option<(&'static str, CentralError)>> {
    let shown = registry::audit::bounded_name(key);
    let row = c
        .prepared_opt(
            "SELECT ca, state, withdrawn_at IS NOT NULL FROM ca_keys WHERE label = $1",
            &[&key],
        )
        .await?;
    let Some(r) = row else {
        return Ok(Some((
            "unknown",
            CentralError::NotFound(format!(
                "key: no CA key {shown} (`idcentral ca list` lists them)"
            )),
        )));
    };
    let (ca, state, withdrawn): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
    Ok(if ca != CA {
        Some((
            "csca only",
            CentralError::invalid(
                "key",
                format!(
                    "{shown} is a key of {ca}: only a CSCA key is withdrawn from the Master List"
                ),
            ),
        ))
    } else if withdrawn {
        Some((
            "withdrawn",
            CentralError::Conflict(format!("key: CSCA key {shown} was withdrawn already")),
        ))
    } else if state == "active" {
        Some((
            "active",
            CentralError::Conflict(format!(
                "key: CSCA key {shown} is active: rotate the CSCA first (`ca rotate --ca csca`), then \
                 withdraw the retired key"
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
    pub reason: &'a str,
    pub requested_by: &'a str,
    pub approved_by: &'a str,
}

/// Execute approved request `job` (the caller holds its execution lock) in one transaction. A
/// key that may no longer be withdrawn (withdrawn by another request meanwhile) ends the request
/// `failed`, audited `ca.request.failed`.
pub async fn execute(pool: &Pool, actor: &Actor, job: &Job<'_>) -> Result<Withdrawal> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.prepared_execute(
        "SELECT 1 FROM ca_keys WHERE label = $1 FOR UPDATE",
        &[&job.key],
    )
    .await?;
    let object = format!("ca-request:{}", job.id);
    if let Some((_, e)) = refusal(&tx, job.key).await? {
        let request = (job.id, job.key, job.requested_by, job.approved_by);
        crate::request_failure::record_failed(&tx, actor, request, &e.to_string()).await?;
        tx.commit().await?;
        return Err(e);
    }
    let at: String = tx
        .prepared_one(
            "UPDATE ca_keys SET withdrawn_at = now() WHERE label = $1
             RETURNING to_char(withdrawn_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[&job.key],
        )
        .await?
        .get(0);
    tx.prepared_execute(
        "UPDATE ca_requests SET state = 'executed', executed_at = now()
         WHERE id = $1 AND state = 'approved'",
        &[&job.id],
    )
    .await?;
    let details = json!({
        "key": job.key, "reason": job.reason,
        "requested_by": job.requested_by, "approved_by": job.approved_by,
    });
    crate::stations::fill_issuer_keys(&tx, None).await?;
    let document_signers: Vec<String> = tx
        .prepared_query(
            "SELECT s.station, s.serial FROM station_certs s
             WHERE s.purpose = 'document-signer' AND s.issuer_key = $1 AND s.revoked_at IS NULL
               AND s.issued_at = (SELECT max(t.issued_at) FROM station_certs t
                                  WHERE t.station = s.station AND t.purpose = 'document-signer')
             ORDER BY s.station",
            &[&job.key],
        )
        .await?
        .iter()
        .map(|r| {
            format!(
                "{} ({})",
                r.get::<_, &str>(0),
                hex::encode(r.get::<_, &[u8]>(1))
            )
        })
        .collect();
    let cards_to_replace = crate::replacements::flag_csca_cards(&tx, job.key, job.reason).await?;
    let mut details = details;
    details["document_signers"] = json!(document_signers);
    details["cards_to_replace"] = json!(cards_to_replace);
    audit::append(&tx, actor, "ca.csca-withdrawn", &object, &details).await?;
    tx.commit().await?;
    tracing::info!(key = %job.key, request = job.id, "CSCA key withdrawn from the Master List");
    Ok(Withdrawal {
        request: job.id,
        key: job.key.to_owned(),
        reason: job.reason.to_owned(),
        withdrawn_at: at,
        requested_by: job.requested_by.to_owned(),
        approved_by: job.approved_by.to_owned(),
        document_signers,
        cards_to_replace,
    })
}
