//! The CSCA Master List the centre publishes (ICAO Doc 9303-12 §5.3, §9; `ca::master_list`):
//! the signed list of this State's CSCA certificates — every CSCA key's self-signed certificate
//! that has not expired and is not withdrawn (`crate::csca_withdrawal`), and the link
//! certificates (new key under the old) between them — that
//! inspection systems and other States import, served at `/ca/csca-master-list.ml`.
//!
//! It is signed by a Master List Signer (profile `master-list-signer`), a key of its own in the
//! HSM (`centre-mls-<N>`) that the active CSCA key certifies: "Master Lists MUST NOT be signed
//! and issued directly by a CSCA itself" (§5.3). [`ensure`] (every `serve` at start and every
//! refresh of the worker, under a transaction advisory lock so instances on one database sign
//! once) certifies a new signer key when there is none, when the active CSCA key is not the one
//! that certified it (a CSCA rotation), when a twelfth of its usage period is left, or when the
//! HSM does not hold the key its certificate certifies; and it signs a new list when the CSCA
//! certificates or the signer changed (§5.3: "it is RECOMMENDED that a new Master List be
//! compiled and issued"). Every list is kept (`master_lists`); the newest is served. A signer key
//! a newer one replaced never signs again and leaves the HSM at once ([`destroy_replaced`]).

use crate::db::Prepared;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{GenericClient, Pool};
use hsm::KeyStore;
use sha2::{Digest, Sha256};

use crate::audit;
use crate::error::{CentralError, Result};

/// The Master List Signer's profile.
pub const PROFILE: &str = "master-list-signer";
/// The signer keys' HSM labels: `centre-mls-<N>`, N from 1.
pub const KEY_PREFIX: &str = "centre-mls-";
/// A signer key is replaced when less than this part of its usage period is left (a month of
/// the profile's year).
pub const ROLL_WHEN_LEFT: u32 = 12;
/// The file name the public listener serves the newest list under (`/ca/<FILE>`).
pub const FILE: &str = "csca-master-list.ml";

const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('idcentral.master-list'))";

/// The newest list: (DER, when signed).
pub async fn newest(pool: &Pool) -> Result<Option<(Vec<u8>, SystemTime)>> {
    let client = pool.get().await?;
    Ok(client
        .prepared_opt(
            "SELECT der, signed_at FROM master_lists ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

/// The certificates of the CSCA keys that are not revoked or withdrawn: what a list of this
/// centre's must verify to.
pub async fn csca_keys(pool: &Pool) -> Result<Vec<Vec<u8>>> {
    let client = pool.get().await?;
    Ok(client
        .prepared_query(
            "SELECT cert_der FROM ca_keys
             WHERE ca = 'csca' AND state <> 'revoked' AND withdrawn_at IS NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Make sure the newest list is signed by a current signer over today's CSCA certificates (see
/// the module documentation); the id of a list signed now, if one was. Nothing when the CSCA
/// has no active key (after an emergency revocation, until a rotation) or nothing to list. A new
/// signer is certified and committed first, in a transaction of its own, so a list that then
/// cannot be signed loses no certificate the CSCA issued.
pub async fn ensure(
    pool: &Pool,
    store: &Arc<dyn KeyStore>,
    issuers: &BTreeMap<String, ca::Issuer>,
    profiles: &profiles::ProfileSet,
    centre_name: &str,
) -> Result<Option<i64>> {
    let client = pool.get().await?;
    let Some(csca) = client
        .prepared_opt(
            "SELECT label FROM ca_keys WHERE ca = 'csca' AND state = 'active'",
            &[],
        )
        .await?
        .map(|r| r.get::<_, String>(0))
    else {
        tracing::warn!("the CSCA has no active key: no Master List is signed");
        return Ok(None);
    };
    let issuer = issuers.get(&csca).ok_or_else(|| {
        CentralError::Other(format!(
            "CSCA Master List: the active CSCA key {csca} is not in the HSM as its certificate \
             says; no signer is certified"
        ))
    })?;
    if csca_certificates(&client).await?.is_empty() {
        tracing::warn!("no CSCA certificate to list: no Master List is signed");
        return Ok(None);
    }
    drop(client);
    let (signer, signer_der) = current_signer(pool, store, issuer, profiles, centre_name).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.prepared_execute(LOCK, &[]).await?;
    let certs = csca_certificates(&tx).await?;
    let content_sha256 = Sha256::digest(ca::master_list::content(&certs)?).to_vec();
    let unchanged = tx
        .prepared_opt(
            "SELECT 1 FROM master_lists WHERE id = (SELECT max(id) FROM master_lists)
               AND signer = $1 AND content_sha256 = $2",
            &[&signer, &content_sha256],
        )
        .await?
        .is_some();
    if unchanged || certs.is_empty() {
        return Ok(None);
    }
    let now = SystemTime::now();
    let der = ca::master_list::build(&certs, &signer_der, issuer.cert_der(), now, |m| {
        Ok(store.sign_p256_sha256(&signer, m)?)
    })?;
    let id: i64 = tx
        .prepared_one(
            "INSERT INTO master_lists (signer, content_sha256, certificates, der, signed_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&signer, &content_sha256, &(certs.len() as i32), &der, &now],
        )
        .await?
        .get(0);
    let details = serde_json::json!({
        "id": id, "signer": signer, "csca_certificates": certs.len(),
        "sha256": hex::encode(Sha256::digest(&der)),
    });
    audit::append(
        &tx,
        &super::centre_actor(centre_name),
        "master-list.signed",
        &format!("master-list:{id}"),
        &details,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(id, %signer, certificates = certs.len(), "signed the CSCA Master List");
    Ok(Some(id))
}

/// [`ensure`] with the CA keys loaded from the HSM: what `idcentral ca approve` runs after a CSCA
/// rotation or withdrawal, so the list is current at once rather than at the next refresh of a
/// `serve`.
pub async fn sign_now(
    pool: &Pool,
    store: &Arc<dyn KeyStore>,
    profiles: &profiles::ProfileSet,
    centre_name: &str,
) -> Result<Option<i64>> {
    let issuers = super::load_issuers(pool, store.as_ref()).await?;
    ensure(pool, store, &issuers, profiles, centre_name).await
}

/// Why the newest list may not be handed out as the centre's: `Some(rule)` when it does not
/// list exactly what the centre's CSCA certificates are now (a rotation or withdrawal since,
/// signed again at the next refresh of a `serve`).
pub async fn stale(pool: &Pool, listed: &[Vec<u8>]) -> Result<Option<String>> {
    let client = pool.get().await?;
    let now = csca_certificates(&client).await?;
    let same = now.len() == listed.len() && now.iter().all(|c| listed.contains(c));
    Ok((!same).then(|| {
        format!(
            "the newest CSCA Master List lists {} certificates, the centre's CSCAs are {} now (a \
             rotation or withdrawal since it was signed): `idcentral serve` signs the next one \
             within 30 seconds, export it then",
            listed.len(),
            now.len()
        )
    }))
}

/// The CSCA certificates a list carries: every CSCA key's certificate that is not revoked,
/// withdrawn (`crate::csca_withdrawal`) or expired, and the new-with-old link certificates
/// between two such keys that have not expired, oldest first.
async fn csca_certificates(c: &impl GenericClient) -> Result<Vec<Vec<u8>>> {
    let rows = c
        .prepared_query(
            "SELECT cert_der FROM ca_keys
             WHERE ca = 'csca' AND state <> 'revoked' AND withdrawn_at IS NULL
             ORDER BY created_at, label",
            &[],
        )
        .await?;
    let links = c
        .prepared_query(
            "SELECT l.cert_der FROM ca_links l
               JOIN ca_keys c ON c.label = l.certified_key
               JOIN ca_keys s ON s.label = l.signer_key
             WHERE l.kind = 'new-with-old' AND c.ca = 'csca'
               AND c.state <> 'revoked' AND s.state <> 'revoked'
               AND c.withdrawn_at IS NULL AND s.withdrawn_at IS NULL
             ORDER BY c.created_at, l.certified_key",
            &[],
        )
        .await?;
    let now = SystemTime::now();
    let mut out = Vec::new();
    for der in rows
        .iter()
        .chain(links.iter())
        .map(|r| r.get::<_, Vec<u8>>(0))
    {
        use der::Decode;
        let cert = x509_cert::Certificate::from_der(&der).map_err(|e| {
            CentralError::Other(format!(
                "CSCA Master List: a CSCA certificate in ca_keys or ca_links does not parse: {e}"
            ))
        })?;
        if cert.tbs_certificate().validity().not_after.to_system_time() > now {
            out.push(der);
        }
    }
    Ok(out)
}

/// The signer to sign with now: the newest recorded while it is current (see the module
/// documentation), else a new key certified by `csca` now. (label, certificate DER).
async fn current_signer(
    pool: &Pool,
    store: &Arc<dyn KeyStore>,
    csca: &ca::Issuer,
    profiles: &profiles::ProfileSet,
    centre_name: &str,
) -> Result<(String, Vec<u8>)> {
    let profile = profiles.cert(PROFILE)?;
    let usage = profile
        .private_key_usage_period
        .as_ref()
        .map_or(profile.validity.days, |p| p.days);
    let margin = Duration::from_secs(u64::from(usage) * 86_400) / ROLL_WHEN_LEFT;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.prepared_execute(LOCK, &[]).await?;
    let now = SystemTime::now();
    let newest = tx
        .prepared_opt(
            "SELECT label, csca_key, cert_der, key_usage_until FROM master_list_signers
             ORDER BY substring(label FROM '[0-9]+$')::int DESC LIMIT 1",
            &[],
        )
        .await?;
    let replaces = match newest {
        Some(row) => {
            let (label, by, der): (String, String, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
            let until: SystemTime = row.get(3);
            let left = until.duration_since(now).unwrap_or_default();
            let held = store.find(&label)?.is_some()
                && store.public_key_spki(&label)? == ca::certificate_spki(&der)?;
            if by == csca.key_label() && left > margin && held {
                tx.commit().await?;
                return Ok((label, der));
            }
            Some(label)
        }
        None => None,
    };
    let last: Option<i32> = tx
        .prepared_one(
            "SELECT max(substring(label FROM '^centre-mls-([0-9]{1,9})$')::int)
             FROM master_list_signers",
            &[],
        )
        .await?
        .get(0);
    let label = format!("{KEY_PREFIX}{}", last.unwrap_or(0) + 1);
    // A key under the next label with no row was made by an attempt that did not commit.
    if store.find(&label)?.is_none() {
        store.generate_p256(&label)?;
    }
    let n = label.trim_start_matches(KEY_PREFIX);
    let cert = ca::issue_station_cert(
        store.as_ref(),
        profile,
        csca,
        &store.public_key_spki(&label)?,
        &format!("idstation Master List Signer {n}"),
        now,
    )?;
    let until = ca::private_key_usage_end(&cert.der)?.unwrap_or(cert.not_after);
    tx.prepared_execute(
        "INSERT INTO master_list_signers (label, csca_key, serial, cert_der, key_usage_until, not_after)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&label, &csca.key_label(), &cert.serial, &cert.der, &until, &cert.not_after],
    )
    .await?;
    let details = serde_json::json!({
        "key": label, "csca_key": csca.key_label(), "serial": cert.serial_hex(),
        "key_usage_until": crate::public::http_date(until),
        "not_after": crate::public::http_date(cert.not_after),
        "fingerprint_sha256": ca::fingerprint_sha256(&cert.der)?,
        "replaces": replaces,
    });
    audit::append(
        &tx,
        &super::centre_actor(centre_name),
        "master-list.signer-certified",
        &format!("ca-key:{}", csca.key_label()),
        &details,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(key = %label, csca = %csca.key_label(), "certified a Master List Signer");
    Ok((label, cert.der))
}

/// Signer keys a newer key replaced, not recorded destroyed ([`super::replaced_keys`]): a
/// replaced signer never signs again (lists are signed under the lock, by the newest signer),
/// so its key goes at once; the lists it signed verify with its certificate.
static REPLACED: super::replaced_keys::Replaced = super::replaced_keys::Replaced {
    lock: LOCK,
    due: "SELECT label, 'master-list-signer:' || label, not_after, csca_key, cert_der
          FROM master_list_signers
          WHERE destroyed_at IS NULL
            AND label <> (SELECT label FROM master_list_signers
                          ORDER BY substring(label FROM '[0-9]+$')::int DESC LIMIT 1)",
    record: "UPDATE master_list_signers SET destroyed_at = now() WHERE label = $1",
    action: "master-list.signer-key-destroyed",
};

/// Remove from the HSM every replaced signer key, record it and audit
/// `master-list.signer-key-destroyed`; how many.
pub async fn destroy_replaced(
    pool: &Pool,
    store: &Arc<dyn KeyStore>,
    centre_name: &str,
) -> Result<usize> {
    super::replaced_keys::destroy_due(pool, store, centre_name, &REPLACED).await
}
