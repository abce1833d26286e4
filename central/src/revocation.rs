//! Emergency revocation of a CA certificate at the centre (`idcentral ca revoke-ca`, `ca
//! reissue-list`; docs/centre.md "Emergency: CA certificate revocation"), with RFC 5280 §5.3.1
//! reasons. The request is a `ca_requests` row of kind `revoke-ca`, filed and approved under the
//! dual-control rules of `crate::rotation` (which files it and runs [`execute`]).
//!
//! Execution, each step committed before the next: (1) one transaction revokes the key's
//! certificate (`ca_keys`: state `revoked`, the parent key that signed it, its serial, time and
//! reason), flags every unrevoked holder certificate the key issued for re-issuance, queues the
//! parent's CRL and the certificate's OCSP response for `serve`'s signing worker
//! (`crate::public::worker`, which every `serve` runs: the parent's CRL lists it within seconds)
//! and audits `ca.revoked`; (2) the request is marked executed. `idcentral ca recover` finishes a
//! request killed between the two (failpoint `rotation.revoked`) without revoking twice.
//!
//! Only CAs with a parent are revoked this way: the e-Signature CA and the Station CA (both
//! certified by the National Root). The National Root and the CSCA are self-signed: no CRL of
//! a parent can list them ([`target_refusal`]).

use crate::db::Prepared;
use deadpool_postgres::{GenericClient, Pool, Transaction};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Actor};
use crate::error::{CentralError, Result};
use crate::operators::{Role, Session};

/// The CRL reasons a CA certificate is revoked with (RFC 5280 §5.3.1).
pub const REASONS: &[&str] = &[
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
];

/// A refusal of a request to file: the rule's name and the error.
pub type Refused = (&'static str, CentralError);

/// What an executed revocation did.
#[derive(Debug, Clone, Serialize)]
pub struct Revocation {
    pub request: i64,
    pub ca: String,
    pub key: String,
    pub reason: String,
    /// The revoked CA certificate's serial, upper-case hex.
    pub serial: String,
    /// The key that signed it, whose CRL lists it.
    pub parent_key: String,
    pub revoked_at: String,
    /// Holder certificates flagged for re-issuance.
    pub flagged: i32,
}

/// One holder certificate to issue again (`ca reissue-list`).
#[derive(Debug, Clone, Serialize)]
pub struct ReissueItem {
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    pub document: String,
    pub document_state: Option<String>,
    pub serial: String,
    pub slot: String,
    pub profile: String,
    pub issuer_key: String,
    pub request: i64,
}

/// Why `ca`'s certificate cannot be revoked with `revoke-ca`; `None` when it can.
pub fn target_refusal(ca: &str) -> Option<Refused> {
    let (rule, why) = match ca {
        "esign" | "station-ca" => return None,
        "root" => (
            "root not revocable",
            "the National Root cannot be revoked with revoke-ca: it is a self-signed trust \
             anchor that no CRL of a parent lists; roll it over (`ca rotate --ca root`) and \
             withdraw the old root from relying parties' trust stores"
                .to_owned(),
        ),
        "csca" => (
            "csca not revocable",
            "the CSCA cannot be revoked with revoke-ca: it is self-signed (ICAO 9303-12 §5) and \
             a CRL it signs itself cannot revoke its own certificate; rotate it (`ca rotate --ca \
             csca`), then withdraw the old key from the Master List (`ca withdraw-csca`) and from \
             the ICAO PKD"
                .to_owned(),
        ),
        other => (
            "revocable CAs",
            format!(
                "{other} is not a CA whose certificate revoke-ca revokes: give esign or station"
            ),
        ),
    };
    Some((rule, CentralError::invalid("ca", why)))
}

/// The reason must be one of [`REASONS`].
pub fn check_reason(reason: &str) -> std::result::Result<(), Refused> {
    if REASONS.contains(&reason) {
        return Ok(());
    }
    let why = format!(
        "{reason:?} is not a CA revocation reason: give one of {} (RFC 5280 §5.3.1)",
        REASONS.join(", ")
    );
    Err(("revocation reasons", CentralError::invalid("reason", why)))
}

/// The key to revoke: `key` (a key of `ca`, not revoked yet) or else `ca`'s active key; never
/// the active Station CA key ([`station_ca_refusal`]).
pub async fn target_key(
    tx: &Transaction<'_>,
    ca: &str,
    key: Option<&str>,
) -> std::result::Result<String, Refused> {
    let label = any_target_key(tx, ca, key).await?;
    let active = tx
        .prepared_opt(
            "SELECT 1 FROM ca_keys WHERE label = $1 AND state = 'active'",
            &[&label],
        )
        .await
        .map_err(|e| ("database", CentralError::from(e)))?
        .is_some();
    match (ca, active) {
        ("station-ca", true) => Err(station_ca_refusal(&label)),
        _ => Ok(label),
    }
}

/// The active Station CA key issues the centre's TLS server certificate and every enrolment:
/// with it revoked and none active, no instance could start and no station enrol. It is rotated
/// first, then revoked.
fn station_ca_refusal(label: &str) -> Refused {
    let why = format!(
        "{label} is the active Station CA key, which issues the centre's TLS server certificate \
         and every station identity: rotate it first (`ca rotate --ca station`, approved), then \
         revoke it with --key {label}"
    );
    ("active station ca", CentralError::invalid("key", why))
}

async fn any_target_key(
    tx: &Transaction<'_>,
    ca: &str,
    key: Option<&str>,
) -> std::result::Result<String, Refused> {
    let db = |e: tokio_postgres::Error| ("database", CentralError::from(e));
    let Some(label) = key else {
        let active = tx
            .prepared_opt(
                "SELECT label FROM ca_keys WHERE ca = $1 AND state = 'active'",
                &[&ca],
            )
            .await
            .map_err(db)?;
        return active.map(|r| r.get(0)).ok_or_else(|| {
            let why = format!("{ca} has no active key: name the key to revoke with --key");
            ("unknown key", CentralError::invalid("key", why))
        });
    };
    let row = tx
        .prepared_opt(
            "SELECT state FROM ca_keys WHERE label = $1 AND ca = $2",
            &[&label, &ca],
        )
        .await
        .map_err(db)?;
    match row.map(|r| r.get::<_, String>(0)) {
        None => Err((
            "unknown key",
            CentralError::invalid("key", format!("{label} is not a key of the CA {ca}")),
        )),
        Some(s) if s == "revoked" => Err((
            "already revoked",
            CentralError::Conflict(format!("key: {label} is already revoked")),
        )),
        Some(_) => Ok(label.to_owned()),
    }
}

/// An approved `revoke-ca` request as its execution reads it.
pub struct Job<'a> {
    pub id: i64,
    pub ca: &'a str,
    pub key: &'a str,
    pub reason: &'a str,
    pub requested_by: &'a str,
    pub approved_by: &'a str,
    /// Whether step 1 committed already (the journal's `revoked_at`).
    pub revoked: bool,
}

/// Execute an approved request from wherever its journal stands (see the module docs); the
/// caller holds the request's execution lock.
pub async fn execute(pool: &Pool, actor: &Actor, job: &Job<'_>) -> Result<Revocation> {
    if !job.revoked {
        revoke(pool, actor, job).await?;
        crate::failpoint::hit("rotation.revoked");
    }
    let client = pool.get().await?;
    client
        .prepared_execute(
            "UPDATE ca_requests SET state = 'executed', executed_at = now()
             WHERE id = $1 AND state = 'approved'",
            &[&job.id],
        )
        .await?;
    summary(&client, job).await
}

/// The National Root key whose certificate signed `cert`.
async fn parent_of(tx: &Transaction<'_>, label: &str, cert: &[u8]) -> Result<String> {
    for r in tx
        .prepared_query("SELECT label, cert_der FROM ca_keys WHERE ca = 'root'", &[])
        .await?
    {
        if ca::issued_by(cert, r.get::<_, &[u8]>(1))? {
            return Ok(r.get(0));
        }
    }
    Err(CentralError::Other(format!(
        "no National Root key of the centre signed the certificate of {label}"
    )))
}

/// Step 1, one transaction (see the module docs).
async fn revoke(pool: &Pool, actor: &Actor, job: &Job<'_>) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Waits for an issuance holding the key FOR SHARE (`Centre::active_issuer`): its
    // certificates are committed, and flagged below.
    let cert: Vec<u8> = tx
        .prepared_one(
            "SELECT cert_der FROM ca_keys WHERE label = $1 FOR UPDATE",
            &[&job.key],
        )
        .await?
        .get(0);
    let parent = parent_of(&tx, job.key, &cert).await?;
    let serial = hex::decode(ca::CertInfo::parse(&cert)?.serial_hex)
        .map_err(|e| CentralError::Other(format!("serial: {e}")))?;
    tx.prepared_execute(
        "UPDATE ca_keys SET state = 'revoked', parent_key = $2, serial = $3,
                revoked_at = now(), revocation_reason = $4
         WHERE label = $1",
        &[&job.key, &parent, &serial, &job.reason],
    )
    .await?;
    let flagged = tx
        .prepared_execute(
            "UPDATE certificates SET reissue_request = $2
             WHERE issuer_key = $1 AND state <> 'revoked' AND reissue_request IS NULL",
            &[&job.key, &job.id],
        )
        .await?;
    let flagged = i32::try_from(flagged).unwrap_or(i32::MAX);
    publish(&tx, &parent, &serial).await?;
    tx.prepared_execute(
        "UPDATE ca_requests SET revoked_at = now(), flagged = $2 WHERE id = $1",
        &[&job.id, &flagged],
    )
    .await?;
    let details = json!({
        "request": job.id, "ca": job.ca, "key": job.key, "reason": job.reason,
        "serial": hex::encode_upper(&serial), "parent_key": parent, "flagged": flagged,
        "requested_by": job.requested_by, "approved_by": job.approved_by,
    });
    let object = format!("ca-key:{}", job.key);
    audit::append(&tx, actor, "ca.revoked", &object, &details).await?;
    tx.commit().await?;
    Ok(())
}

/// Queue the issuing key's (`parent`'s) CRL and the certificate's OCSP response for the signing
/// worker, urgent (before refreshes), and wake it at commit (as the V7/V32 trigger does for
/// holder certificates).
pub(crate) async fn publish(tx: &Transaction<'_>, parent: &str, serial: &[u8]) -> Result<()> {
    tx.prepared_execute(
        "INSERT INTO relying_party_queue (kind, issuer_key, serial, urgent)
         VALUES ('crl', $1, '\\x'::bytea, true), ('ocsp', $1, $2, true)
         ON CONFLICT (kind, issuer_key, serial)
         DO UPDATE SET queued_at = clock_timestamp(), urgent = true",
        &[&parent, &serial],
    )
    .await?;
    tx.prepared_execute(
        "SELECT pg_notify('idcentral_relying_parties', $1)",
        &[&parent],
    )
    .await?;
    Ok(())
}

async fn summary(c: &impl GenericClient, job: &Job<'_>) -> Result<Revocation> {
    let r = c
        .prepared_one(
            "SELECT k.serial, k.parent_key,
                    to_char(k.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    r.flagged
             FROM ca_keys k, ca_requests r WHERE k.label = $1 AND r.id = $2",
            &[&job.key, &job.id],
        )
        .await?;
    Ok(Revocation {
        request: job.id,
        ca: job.ca.to_owned(),
        key: job.key.to_owned(),
        reason: job.reason.to_owned(),
        serial: hex::encode_upper(r.get::<_, Option<Vec<u8>>>(0).unwrap_or_default()),
        parent_key: r.get::<_, Option<String>>(1).unwrap_or_default(),
        revoked_at: r.get::<_, Option<String>>(2).unwrap_or_default(),
        flagged: r.get::<_, Option<i32>>(3).unwrap_or(0),
    })
}

/// The holder certificates flagged for re-issuance (ca-admin or auditor). It reads personal
/// data: each holder listed is audited as `holder.shown`, in the transaction that reads.
pub async fn reissue_list(pool: &Pool, session: &Session) -> Result<Vec<ReissueItem>> {
    session.require(&[Role::CaAdmin, Role::Auditor], "reissue-list")?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .prepared_query(
            "SELECT h.pinfl, h.surname, h.given_names, j.series, j.number, d.state,
                    c.serial, c.slot, c.profile, c.issuer_key, c.reissue_request
             FROM certificates c JOIN holders h ON h.id = c.holder_id
             JOIN jobs j ON j.id = c.job LEFT JOIN documents d ON d.job = c.job
             WHERE c.reissue_request IS NOT NULL AND c.state <> 'revoked'
             ORDER BY h.pinfl, j.series, j.number, c.slot",
            &[],
        )
        .await?;
    let items: Vec<ReissueItem> = rows.iter().map(item).collect();
    let mut seen = std::collections::BTreeSet::new();
    for i in items.iter().filter(|i| seen.insert(i.pinfl.clone())) {
        let details = json!({ "pinfl": i.pinfl, "found": true, "purpose": "reissue-list" });
        let object = format!("holder:{}", i.pinfl);
        audit::append(&tx, session.actor(), "holder.shown", &object, &details).await?;
    }
    tx.commit().await?;
    Ok(items)
}

fn item(r: &tokio_postgres::Row) -> ReissueItem {
    ReissueItem {
        pinfl: r.get(0),
        surname: r.get(1),
        given_names: r.get(2),
        document: crate::numbers::document_number(r.get(3), r.get(4)),
        document_state: r.get(5),
        serial: hex::encode_upper(r.get::<_, &[u8]>(6)),
        slot: r.get(7),
        profile: r.get(8),
        issuer_key: r.get(9),
        request: r.get(10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cas_with_a_parent_are_revoked_and_refusals_name_the_field_and_rule() {
        assert!(target_refusal("esign").is_none() && target_refusal("station-ca").is_none());
        let (rule, e) = target_refusal("root").unwrap();
        assert_eq!(rule, "root not revocable");
        assert!(
            e.to_string().starts_with("ca: the National Root cannot"),
            "{e}"
        );
        let (rule, e) = target_refusal("csca").unwrap();
        assert_eq!(rule, "csca not revocable");
        assert!(e.to_string().contains("ICAO 9303-12"), "{e}");
        assert_eq!(e.exit_code(), 2);
        for r in REASONS {
            assert!(check_reason(r).is_ok(), "{r}");
            assert!(ca::RevocationReason::from_rfc5280_name(r).is_some(), "{r}");
        }
        let (rule, e) = check_reason("certificateHold").unwrap_err();
        assert_eq!(rule, "revocation reasons");
        assert!(
            e.to_string()
                .starts_with("reason: \"certificateHold\" is not"),
            "{e}"
        );
    }
}
