//! The running centre's PKI: the HSM, the active key of each CA (from `ca_keys`) as a `ca`
//! issuer, and the certificate profiles. What `serve`'s requests issue with.

use crate::db::Prepared;
use std::sync::Arc;

use deadpool_postgres::Pool;
use hsm::KeyStore;

use crate::error::{CentralError, Result};

/// The CAs enrolment and issuance issue under, and the trust anchors it hands out.
pub struct CentreCas {
    /// National Root CA: station audit signers.
    pub root: ca::Issuer,
    /// e-Signature CA: holder certificates (the issuance protocol's `certify`); `None` while
    /// its key is revoked and no new one is approved (`idcentral ca revoke-ca`).
    pub esign: Option<ca::Issuer>,
    /// CSCA: station Document Signers.
    pub csca: ca::Issuer,
}

/// What the server's handlers share: the pool, the HSM, the CAs and the profiles.
pub struct Centre {
    pub name: String,
    pub pool: Pool,
    pub store: Arc<dyn KeyStore>,
    pub cas: CentreCas,
    pub profiles: profiles::ProfileSet,
    /// SHA-256 fingerprint of the centre's TLS server certificate (as `ca::fingerprint_sha256`).
    pub tls_fingerprint: String,
    /// The Station CA certificate (DER) that issued the TLS server certificate: the anchor a
    /// station enrolling now verifies the centre with (empty in `serve --public-only`).
    pub server_anchor: Vec<u8>,
    /// `[issuance]`: series, block size, job timeout.
    pub issuance: crate::config::IssuanceSection,
    /// The keys of rotating CAs issued with since start (see [`Centre::active_issuer`]).
    pub active: ActiveIssuers,
}

/// Issuers built for the active keys of the CAs that rotate while the centre serves (the
/// e-Signature CA, the CSCA, the Station CA): one per key, made when a request first meets it.
#[derive(Default)]
pub struct ActiveIssuers(std::sync::Mutex<Vec<Arc<ca::Issuer>>>);

impl Centre {
    /// The active key of `ca` as the database has it now, read in the caller's transaction
    /// with `FOR SHARE` (a rotation's switch waits until the caller commits, and a caller that
    /// starts after the switch sees the new key), as an issuer.
    pub async fn active_issuer(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        ca: &str,
    ) -> Result<Arc<ca::Issuer>> {
        // A statement that waited for a switch to commit finds the old row retired and cannot
        // see the new one (its snapshot is older): ask again.
        for _ in 0..3 {
            let row = client
                .prepared_opt(
                    "SELECT label, cert_der FROM ca_keys WHERE ca = $1 AND state = 'active' FOR SHARE",
                    &[&ca],
                )
                .await?;
            let Some(row) = row else { continue };
            let (label, der): (&str, &[u8]) = (row.get(0), row.get(1));
            let mut cache = self
                .active
                .0
                .lock()
                .map_err(|_| CentralError::Other("issuer cache poisoned".into()))?;
            if let Some(i) = cache
                .iter()
                .find(|i| i.key_label() == label && i.cert_der() == der)
            {
                return Ok(Arc::clone(i));
            }
            let issuer = Arc::new(ca::Issuer::new(self.store.as_ref(), label, der)?);
            cache.push(Arc::clone(&issuer));
            return Ok(issuer);
        }
        Err(no_active_key(client, ca).await)
    }
}

/// Refuse at once (HTTP 409 `no-active-ca-key`) when `ca` has no active key because its key
/// was revoked (`idcentral ca revoke-ca`): what issuance answers until a new key is approved.
pub async fn require_active(
    client: &impl deadpool_postgres::GenericClient,
    ca: &str,
) -> Result<()> {
    let active = client
        .prepared_opt(
            "SELECT 1 FROM ca_keys WHERE ca = $1 AND state = 'active'",
            &[&ca],
        )
        .await?;
    match active {
        Some(_) => Ok(()),
        None => Err(no_active_key(client, ca).await),
    }
}

/// Why `ca` has no active key, as the refusal a station is given.
async fn no_active_key(client: &impl deadpool_postgres::GenericClient, ca: &str) -> CentralError {
    let revoked = client
        .prepared_opt(
            "SELECT label FROM ca_keys WHERE ca = $1 AND state = 'revoked'
             ORDER BY revoked_at DESC NULLS LAST, created_at DESC LIMIT 1",
            &[&ca],
        )
        .await;
    match revoked {
        Ok(Some(r)) => CentralError::refused(
            crate::error::Refusal::Conflict,
            centre_api::rules::NO_ACTIVE_CA_KEY,
            format!(
                "the {ca} CA has no active key: {} was revoked; issuance resumes once a new key is approved (idcentral ca rotate --ca {})",
                r.get::<_, String>(0),
                if ca == "station-ca" { "station" } else { ca }
            ),
        ),
        Ok(None) => CentralError::NotInitialised,
        Err(e) => e.into(),
    }
}

/// The active key of each CA the server issues under, checked against the HSM.
pub async fn load_cas(pool: &Pool, store: &dyn KeyStore) -> Result<CentreCas> {
    let client = pool.get().await?;
    let rows = client
        .prepared_query(
            "SELECT ca, label, cert_der FROM ca_keys WHERE state = 'active'",
            &[],
        )
        .await?;
    let find = |ca: &str| -> Result<ca::Issuer> {
        let row = rows
            .iter()
            .find(|r| r.get::<_, &str>(0) == ca)
            .ok_or(CentralError::NotInitialised)?;
        let label: &str = row.get(1);
        let der: &[u8] = row.get(2);
        Ok(ca::Issuer::new(store, label, der)?)
    };
    Ok(CentreCas {
        root: find("root")?,
        esign: find("esign").ok(),
        csca: find("csca")?,
    })
}

/// A station certificate (identity, audit signer, Document Signer) for `spki` named
/// `common_name`, by `issuer` under the centre's profile `profile`, signed on tokio's blocking
/// pool (not on the thread that serves connections).
pub async fn issue_station_cert(
    centre: &Arc<Centre>,
    issuer: &Arc<ca::Issuer>,
    profile: &'static str,
    spki: Vec<u8>,
    common_name: String,
) -> Result<ca::IssuedCert> {
    let (c, signer) = (Arc::clone(centre), Arc::clone(issuer));
    tokio::task::spawn_blocking(move || {
        ca::issue_station_cert(
            c.store.as_ref(),
            c.profiles.cert(profile)?,
            &signer,
            &spki,
            &common_name,
            std::time::SystemTime::now(),
        )
        .map_err(CentralError::from)
    })
    .await
    .map_err(|e| CentralError::Other(format!("issuing task: {e}")))?
}
