//! The running centre's PKI: the HSM, the active key of each CA (from `ca_keys`) as a `ca`
//! issuer, and the certificate profiles. What `serve`'s requests issue with.

use std::sync::Arc;

use deadpool_postgres::Pool;
use hsm::KeyStore;

use crate::error::{CentralError, Result};

/// The CAs enrolment and issuance issue under, and the trust anchors it hands out.
pub struct CentreCas {
    /// National Root CA: station audit signers.
    pub root: ca::Issuer,
    /// e-Signature CA: holder certificates (the issuance protocol's `certify`).
    pub esign: ca::Issuer,
    /// CSCA: station Document Signers.
    pub csca: ca::Issuer,
    /// Station CA: station identities and the centre's TLS server certificate.
    pub station_ca: ca::Issuer,
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
    /// `[issuance]`: series, block size, job timeout.
    pub issuance: crate::config::IssuanceSection,
}

/// The active key of each CA the server issues under, checked against the HSM.
pub async fn load_cas(pool: &Pool, store: &dyn KeyStore) -> Result<CentreCas> {
    let client = pool.get().await?;
    let rows = client
        .query(
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
        esign: find("esign")?,
        csca: find("csca")?,
        station_ca: find("station-ca")?,
    })
}
