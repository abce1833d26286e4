//! TLS for `idcentral serve`: the centre's server key (`centre-tls-1`, generated in the centre's
//! HSM on first use) with its certificate from the Station CA (subjectAltName: the configured
//! public name and 127.0.0.1), recorded in `server_certs`; and the rustls configuration: TLS 1.3
//! only (RFC 8446), the ring provider, the server's signatures made in the HSM (`hsm::tls`), and
//! client certificates verified up to the Station CA but optional at the handshake: the
//! enrolment endpoint takes none, every other endpoint refuses a request without one.

use std::net::IpAddr;
use std::sync::Arc;

use hsm::KeyStore;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;

use crate::config::ServerSection;
use crate::error::{CentralError, Result};
use crate::pki::CentreCas;

/// The HSM label of the centre's TLS server key.
pub const SERVER_KEY: &str = "centre-tls-1";

/// The server certificate's subject alternative names: the public name (a DNS name or an IP
/// address) and 127.0.0.1.
pub fn server_names(public_name: &str) -> ca::SubjectAltNames {
    let mut names = ca::SubjectAltNames::default();
    match public_name.parse::<IpAddr>() {
        Ok(ip) => names.ip.push(ip),
        Err(_) => names.dns.push(public_name.to_owned()),
    }
    let loopback = IpAddr::from([127, 0, 0, 1]);
    if !names.ip.contains(&loopback) {
        names.ip.push(loopback);
    }
    names
}

/// The server certificate (DER) for `server.public_name`: the recorded one when it was made for
/// that name, else a new one (the key generated first when the HSM does not have it).
pub async fn server_certificate(
    pool: &deadpool_postgres::Pool,
    store: &dyn KeyStore,
    cas: &CentreCas,
    profiles: &profiles::ProfileSet,
    server: &ServerSection,
) -> Result<Vec<u8>> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT public_name, cert_der FROM server_certs WHERE key_label = $1",
            &[&SERVER_KEY],
        )
        .await?;
    let key_exists = store.find(SERVER_KEY)?.is_some();
    if let Some(row) = row.filter(|_| key_exists) {
        if row.get::<_, &str>(0) == server.public_name {
            return Ok(row.get(1));
        }
    }
    if !key_exists {
        store.generate_p256(SERVER_KEY)?;
    }
    let cert = ca::issue_station_cert_with_names(
        store,
        profiles.cert("centre-tls")?,
        &cas.station_ca,
        &store.public_key_spki(SERVER_KEY)?,
        &server.public_name,
        &server_names(&server.public_name),
        std::time::SystemTime::now(),
    )?;
    client
        .execute(
            "INSERT INTO server_certs (key_label, public_name, cert_der) VALUES ($1, $2, $3)
             ON CONFLICT (key_label) DO UPDATE SET public_name = $2, cert_der = $3, created_at = now()",
            &[&SERVER_KEY, &server.public_name, &cert.der],
        )
        .await?;
    tracing::info!(serial = %cert.serial_hex(), name = %server.public_name, "issued the centre's TLS server certificate");
    Ok(cert.der)
}

fn tls_err(e: impl std::fmt::Display) -> CentralError {
    CentralError::Other(format!("TLS configuration: {e}"))
}

/// The provider every TLS configuration of the centre uses: ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's rustls configuration (see the module documentation).
pub fn server_config(
    store: Arc<dyn KeyStore>,
    server_cert: &[u8],
    station_ca_cert: &[u8],
) -> Result<rustls::ServerConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(station_ca_cert.to_vec()))
        .map_err(tls_err)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(tls_err)?;
    let key = hsm::tls::certified_key(
        store,
        SERVER_KEY,
        &[server_cert.to_vec(), station_ca_cert.to_vec()],
    )?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_named_by_its_public_name_and_loopback() {
        let n = server_names("centre.example.com");
        assert_eq!(n.dns, ["centre.example.com"]);
        assert_eq!(n.ip, [IpAddr::from([127, 0, 0, 1])]);
        let n = server_names("10.1.2.3");
        assert!(n.dns.is_empty());
        assert_eq!(
            n.ip,
            [IpAddr::from([10, 1, 2, 3]), IpAddr::from([127, 0, 0, 1])]
        );
        assert_eq!(server_names("127.0.0.1").ip.len(), 1);
    }
}
