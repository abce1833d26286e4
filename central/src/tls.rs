//! TLS for `idcentral serve`: the centre's server key (`centre-tls-1`, generated in the centre's
//! HSM on first use) with its certificate from the Station CA (subjectAltName: the configured
//! public name and 127.0.0.1), recorded in `server_certs`; and the rustls configuration: TLS 1.3
//! only (RFC 8446), the ring provider, the server's signatures made in the HSM (`hsm::tls`), and
//! client certificates verified up to any usable Station CA key (active or retired, unrevoked,
//! unexpired: a rollover keeps the stations enrolled under the old key working) but optional
//! at the handshake: the enrolment endpoint takes none, every other endpoint refuses a request
//! without one. [`LiveTls`] rebuilds the configuration when the usable keys change, so every
//! serving instance follows a rollover without a restart. The server certificate stays under
//! the key that issued it while that key is usable ([`server_certificate`]).

use crate::db::Prepared;
use std::net::IpAddr;
use std::sync::Arc;

use hsm::KeyStore;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;

use crate::config::ServerSection;
use crate::error::{CentralError, Result};

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

/// A Station CA key the centre accepts station identities under: active or retired, not
/// revoked, not past its certificate's notAfter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationCaKey {
    pub label: String,
    pub state: String,
    pub cert_der: Vec<u8>,
}

/// Whether `der` is a certificate whose notAfter has not passed.
pub fn unexpired(der: &[u8]) -> bool {
    use der::Decode;
    x509_cert::Certificate::from_der(der).is_ok_and(|c| {
        c.tbs_certificate().validity().not_after.to_system_time() > std::time::SystemTime::now()
    })
}

/// Every usable Station CA key ([`StationCaKey`]), oldest first.
pub async fn usable_station_cas(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Vec<StationCaKey>> {
    let rows = client
        .prepared_query(
            "SELECT label, state, cert_der FROM ca_keys
             WHERE ca = 'station-ca' AND state IN ('active', 'retired') ORDER BY created_at, label",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StationCaKey {
            label: r.get(0),
            state: r.get(1),
            cert_der: r.get(2),
        })
        .filter(|k| unexpired(&k.cert_der))
        .collect())
}

/// The key of `cas` whose signature `der` carries.
pub fn issuer_among<'a>(der: &[u8], cas: &'a [StationCaKey]) -> Option<&'a StationCaKey> {
    cas.iter()
        .find(|k| ca::issued_by(der, &k.cert_der).unwrap_or(false))
}

/// The centre's TLS server certificate and the Station CA key that issued it (sent with it,
/// and the anchor a station enrolling now receives).
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub der: Vec<u8>,
    pub issuer: StationCaKey,
}

/// Which Station CA key issues the server certificate: `[server] station_ca_key` when set;
/// else the issuer of `recorded` while it is usable (stations that hold only the anchor they
/// enrolled with keep connecting after a rollover); else the active key.
fn server_issuer(
    server: &ServerSection,
    recorded: Option<&[u8]>,
    cas: &[StationCaKey],
) -> Result<StationCaKey> {
    if let Some(label) = &server.station_ca_key {
        return cas.iter().find(|k| &k.label == label).cloned().ok_or_else(|| {
            CentralError::invalid(
                "server.station_ca_key",
                format!("{label} is not a Station CA key that is active or retired, unrevoked and unexpired"),
            )
        });
    }
    recorded
        .and_then(|d| issuer_among(d, cas))
        .or_else(|| cas.iter().find(|k| k.state == "active"))
        .cloned()
        .ok_or(CentralError::NotInitialised)
}

/// The server certificate for `server.public_name`: the recorded one when it was made for that
/// name, is unexpired and its issuer is the one [`server_issuer`] picks; else a new one from
/// that issuer (the key generated first when the HSM does not have it).
pub async fn server_certificate(
    pool: &deadpool_postgres::Pool,
    store: &dyn KeyStore,
    profiles: &profiles::ProfileSet,
    server: &ServerSection,
) -> Result<ServerCert> {
    let client = pool.get().await?;
    let cas = usable_station_cas(&client).await?;
    let row = client
        .prepared_opt(
            "SELECT public_name, cert_der FROM server_certs WHERE key_label = $1",
            &[&SERVER_KEY],
        )
        .await?;
    let key_exists = store.find(SERVER_KEY)?.is_some();
    let recorded = row.filter(|_| key_exists);
    let recorded_der: Option<Vec<u8>> = recorded.as_ref().map(|r| r.get(1));
    let issuer = server_issuer(server, recorded_der.as_deref(), &cas)?;
    if let (Some(row), Some(der)) = (&recorded, &recorded_der) {
        let same_issuer = issuer_among(der, &cas).is_some_and(|k| k.label == issuer.label);
        if row.get::<_, &str>(0) == server.public_name && same_issuer && unexpired(der) {
            return Ok(ServerCert {
                der: der.clone(),
                issuer,
            });
        }
    }
    if !key_exists {
        store.generate_p256(SERVER_KEY)?;
    }
    let signer = ca::Issuer::new(store, &issuer.label, &issuer.cert_der)?;
    let cert = ca::issue_station_cert_with_names(
        store,
        profiles.cert("centre-tls")?,
        &signer,
        &store.public_key_spki(SERVER_KEY)?,
        &server.public_name,
        &server_names(&server.public_name),
        std::time::SystemTime::now(),
    )?;
    client
        .prepared_execute(
            "INSERT INTO server_certs (key_label, public_name, cert_der) VALUES ($1, $2, $3)
             ON CONFLICT (key_label) DO UPDATE SET public_name = $2, cert_der = $3, created_at = now()",
            &[&SERVER_KEY, &server.public_name, &cert.der],
        )
        .await?;
    tracing::info!(serial = %cert.serial_hex(), name = %server.public_name, issuer = %issuer.label, "issued the centre's TLS server certificate");
    Ok(ServerCert {
        der: cert.der,
        issuer,
    })
}

fn tls_err(e: impl std::fmt::Display) -> CentralError {
    CentralError::Other(format!("TLS configuration: {e}"))
}

/// The provider every TLS configuration of the centre uses: ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's rustls configuration (see the module documentation): client certificates
/// verified up to any of `station_cas`.
pub fn server_config(
    store: Arc<dyn KeyStore>,
    server: &ServerCert,
    station_cas: &[StationCaKey],
) -> Result<rustls::ServerConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for k in station_cas {
        roots
            .add(CertificateDer::from(k.cert_der.clone()))
            .map_err(tls_err)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(tls_err)?;
    let key = hsm::tls::certified_key(
        store,
        SERVER_KEY,
        &[server.der.clone(), server.issuer.cert_der.clone()],
    )?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// How often a serving centre reads the Station CA keys again (a rollover's new key, a key
/// revoked or expired): an instance accepts identities under a new key within this.
pub const STATION_CA_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// The server configuration a serving centre uses now, rebuilt when the usable Station CA keys
/// change (every instance on the database follows a rollover without a restart).
pub struct LiveTls {
    store: Arc<dyn KeyStore>,
    server: ServerCert,
    state: std::sync::RwLock<(Vec<StationCaKey>, Arc<rustls::ServerConfig>)>,
}

impl LiveTls {
    pub fn new(
        store: Arc<dyn KeyStore>,
        server: ServerCert,
        cas: Vec<StationCaKey>,
    ) -> Result<LiveTls> {
        let config = Arc::new(server_config(Arc::clone(&store), &server, &cas)?);
        Ok(LiveTls {
            store,
            server,
            state: std::sync::RwLock::new((cas, config)),
        })
    }

    /// The configuration for the next connection.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        match self.state.read() {
            Ok(s) => Arc::clone(&s.1),
            Err(p) => Arc::clone(&p.into_inner().1),
        }
    }

    /// Rebuild when `cas` differs from the keys in use; whether it did.
    pub fn update(&self, cas: Vec<StationCaKey>) -> Result<bool> {
        let same = match self.state.read() {
            Ok(s) => s.0 == cas,
            Err(p) => p.into_inner().0 == cas,
        };
        if same {
            return Ok(false);
        }
        let config = Arc::new(server_config(Arc::clone(&self.store), &self.server, &cas)?);
        let labels: Vec<&str> = cas.iter().map(|k| k.label.as_str()).collect();
        tracing::info!(keys = ?labels, "client certificates now verified under these Station CA keys");
        let mut s = match self.state.write() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        *s = (cas, config);
        Ok(true)
    }
}

/// Read the usable Station CA keys every [`STATION_CA_REFRESH`] and update `tls` (runs beside
/// `serve`; a failed read is logged and the keys in use stay).
pub async fn refresh_station_cas(tls: Arc<LiveTls>, pool: deadpool_postgres::Pool) {
    let mut tick = tokio::time::interval(STATION_CA_REFRESH);
    loop {
        tick.tick().await;
        let read = async { usable_station_cas(&pool.get().await?).await };
        match read.await.and_then(|cas| tls.update(cas)) {
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the Station CA keys again"),
        }
    }
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
