//! [`CentreClient`]: a synchronous HTTPS client of the national centre's API (docs/centre.md).
//! hyper's HTTP/1.1 client over tokio-rustls on a current-thread tokio runtime the client owns;
//! rustls 0.23 with the ring provider, TLS 1.3 only (RFC 8446).
//!
//! The server is authenticated in one of two ways: at enrolment by the SHA-256 of its
//! certificate, which the operator typed ([`super::pin`]); afterwards by its chain up to the
//! Station CA received at enrolment or any Station CA learnt since (`super::anchors`), for the
//! URL's host name (webpki), so a renewed server certificate keeps working. An enrolled station presents its identity certificate; the
//! signature of the handshake is made by its HSM (`hsm::tls`).
//!
//! An enrolled station's client is kept with the [`Station`] ([`CentreClient::for_station`]:
//! built again only when its identity certificate or trust anchors on disk change) and keeps
//! its last HTTP/1.1 connection open for [`IDLE_LIMIT`], so an issuance's calls (status,
//! reserve, certify, complete) share one TLS handshake and one HSM log-in. A request that fails
//! on a reused connection before any answer (the centre closed it meanwhile) is sent once more
//! on a new one: every call of the protocol may be repeated. Errors: no
//! connection, a timeout, a TLS failure or an HTTP 5xx are [`StationError::CentreUnreachable`]
//! (exit 7); a 4xx refusal is [`StationError::CentreRefused`] with the centre's sentence and
//! rule. Bodies are never logged (an enrolment request carries the one-time code).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::sign::CertifiedKey;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::files::CentreFiles;
use super::pin::{Fingerprint, PinnedVerifier};
use crate::error::StationError;
use crate::Station;

/// How long the TCP connection and the TLS handshake may take together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer body read, in bytes.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// How long an idle connection is kept for the next request.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// An open connection waiting for the next request.
struct Idle {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// The connection's task on the client's runtime (aborted when the connection is dropped).
    task: tokio::task::JoinHandle<()>,
    since: Instant,
}

impl Drop for Idle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a cached client was built from: a change on disk builds a new one.
#[derive(PartialEq, Eq)]
struct Built {
    identity: Vec<u8>,
    anchors: Vec<Vec<u8>>,
}

/// The enrolled station's client, kept with its [`Station`] between calls.
#[derive(Default)]
pub struct ClientCache(Mutex<Option<(Built, Arc<CentreClient>)>>);

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCache")
    }
}

/// How one attempt on a connection ended.
enum Attempt {
    Answered(u16, Bytes),
    /// The connection was closed before an answer (only a reused one is tried again).
    Closed(String),
}

/// How the centre's certificate is checked.
pub enum ServerAuth {
    /// Enrolment: exactly the certificate with this SHA-256.
    Fingerprint(Fingerprint),
    /// Afterwards: a chain up to one of these Station CA certificates (DER: the one from
    /// enrolment and those learnt in a rollover), for the URL's host name.
    Anchors(Vec<Vec<u8>>),
}

/// A client of one centre, for one station (or for one enrolment).
pub struct CentreClient {
    url: String,
    host: String,
    port: u16,
    authority: String,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    pinned: Option<Arc<PinnedVerifier>>,
    rt: tokio::runtime::Runtime,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// The connection kept open since the last answer.
    idle: Mutex<Option<Idle>>,
    /// Other instances of the same centre, asked in turn when this one cannot be reached.
    others: Vec<CentreClient>,
}

impl std::fmt::Debug for CentreClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CentreClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The refusal naming `centre` for a station without a `[centre]` section.
fn not_enrolled() -> StationError {
    StationError::invalid(
        "centre",
        "this station is not enrolled with a national centre (station.toml has no [centre] \
         section; a station enrols with `idstation init --centre URL ...`)",
    )
}

impl CentreClient {
    /// For an enrolled station (station.toml has `[centre]`): the Station CA anchor and the
    /// identity certificate from `DIR/centre/`, the identity key in the station's HSM (opened
    /// here from `[hsm]`, so a station opened read-only works too).
    ///
    /// Kept with `st` and reused while the identity certificate and the Station CA anchors on
    /// disk are the ones it was built from (another process may renew them).
    pub fn for_station(st: &Station) -> Result<Arc<CentreClient>, StationError> {
        st.config.centre.as_ref().ok_or_else(not_enrolled)?;
        let files = CentreFiles::new(&st.layout.root);
        let now = Built {
            identity: files.read_identity()?,
            anchors: files.read_all_station_cas()?,
        };
        let mut cache = st
            .centre_client
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((built, client)) = cache.as_ref() {
            if *built == now {
                return Ok(Arc::clone(client));
            }
        }
        let client = Arc::new(CentreClient::build(
            st,
            now.identity.clone(),
            now.anchors.clone(),
        )?);
        *cache = Some((now, Arc::clone(&client)));
        Ok(client)
    }

    /// [`CentreClient::for_station`] presenting `identity` (DER; for the identity key) instead
    /// of the certificate in `DIR/centre/`: a renewed certificate tried before it is kept. Not
    /// kept with the station.
    pub fn for_station_as(st: &Station, identity: Vec<u8>) -> Result<CentreClient, StationError> {
        st.config.centre.as_ref().ok_or_else(not_enrolled)?;
        let anchors = CentreFiles::new(&st.layout.root).read_all_station_cas()?;
        CentreClient::build(st, identity, anchors)
    }

    fn build(
        st: &Station,
        identity: Vec<u8>,
        anchors: Vec<Vec<u8>>,
    ) -> Result<CentreClient, StationError> {
        let centre = st.config.centre.as_ref().ok_or_else(not_enrolled)?;
        let keys: Arc<dyn hsm::KeyStore> = Arc::from(hsm::open(&st.config.hsm)?);
        let ck = hsm::tls::certified_key(keys, super::IDENTITY_KEY, &[identity])?;
        let timeout = Duration::from_secs(centre.request_timeout_seconds);
        let mut client = CentreClient::new(
            &centre.url,
            ServerAuth::Anchors(anchors.clone()),
            Some(ck.clone()),
            timeout,
        )?;
        for url in &centre.other_urls {
            let other = CentreClient::new(
                url,
                ServerAuth::Anchors(anchors.clone()),
                Some(ck.clone()),
                timeout,
            )?;
            client.others.push(other);
        }
        Ok(client)
    }

    /// A client for `url` (`https://HOST[:PORT]`) authenticating the server by `auth`,
    /// presenting `identity` when given.
    pub fn new(
        url: &str,
        auth: ServerAuth,
        identity: Option<CertifiedKey>,
        request_timeout: Duration,
    ) -> Result<CentreClient, StationError> {
        let (host, port) = parse_url(url)?;
        let server_name = ServerName::try_from(host.clone()).map_err(|e| {
            StationError::invalid("centre", format!("{url}: host {host:?} is not usable: {e}"))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| StationError::Other(format!("TLS configuration: {e}")))?;
        let (builder, pinned) = match auth {
            ServerAuth::Fingerprint(fp) => {
                let v = Arc::new(PinnedVerifier::new(fp, Arc::clone(&provider)));
                (
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::clone(&v) as _),
                    Some(v),
                )
            }
            ServerAuth::Anchors(ders) => {
                let mut roots = rustls::RootCertStore::empty();
                for der in ders {
                    roots.add(CertificateDer::from(der)).map_err(|e| {
                        StationError::invalid(
                            "centre/station-ca.pem",
                            format!("is not a usable trust anchor: {e}"),
                        )
                    })?;
                }
                (builder.with_root_certificates(roots), None)
            }
        };
        let tls = match identity {
            Some(ck) => builder
                .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(ck))),
            None => builder.with_no_client_auth(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| StationError::Other(format!("the centre client's runtime: {e}")))?;
        let authority = if port == 443 {
            host.clone()
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(CentreClient {
            url: url.trim_end_matches('/').to_owned(),
            host,
            port,
            authority,
            server_name,
            tls: Arc::new(tls),
            pinned,
            rt,
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout,
            idle: Mutex::new(None),
            others: Vec::new(),
        })
    }

    /// `call` on this centre, and when it cannot be reached on each other instance in turn
    /// (every request of the protocol may be repeated); the first instance's error when none
    /// answers.
    fn with_others<T>(
        &self,
        call: impl Fn(&CentreClient) -> Result<T, StationError>,
    ) -> Result<T, StationError> {
        let first = match call(self) {
            Err(e @ StationError::CentreUnreachable { .. }) => e,
            answer => return answer,
        };
        for other in &self.others {
            match call(other) {
                Err(e @ StationError::CentreUnreachable { .. }) => {
                    tracing::warn!(url = %other.url, error = %e, "another instance of the centre cannot be reached either");
                }
                answer => {
                    tracing::warn!(first = %self.url, answered = %other.url, error = %first, "the centre's first instance cannot be reached; another answered");
                    return answer;
                }
            }
        }
        Err(first)
    }

    /// The centre's URL as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET path` and the JSON answer.
    pub fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, StationError> {
        self.with_others(|c| {
            let body = c.request("GET", path, None)?;
            c.parse(path, &body)
        })
    }

    /// `POST path` with `body` as JSON, and the JSON answer.
    pub fn post<Q: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &Q,
    ) -> Result<R, StationError> {
        self.post_wiping(path, body, false)
    }

    /// [`CentreClient::post`] for an answer that carries a secret (a card's management key):
    /// the answer's bytes are wiped once parsed.
    pub fn post_secret<Q: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &Q,
    ) -> Result<R, StationError> {
        self.post_wiping(path, body, true)
    }

    /// A POST on each instance in turn; the answer's bytes wiped once parsed when `wipe`.
    fn post_wiping<Q: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &Q,
        wipe: bool,
    ) -> Result<R, StationError> {
        let json = serde_json::to_vec(body)
            .map_err(|e| StationError::Other(format!("request body for {path}: {e}")))?;
        self.with_others(|c| {
            let mut answer: Vec<u8> = c.request("POST", path, Some(json.clone()))?.into();
            let parsed = c.parse(path, &answer);
            if wipe {
                zeroize::Zeroize::zeroize(&mut answer);
            }
            parsed
        })
    }

    /// [`CentreClient::post`] answered within `limit` on each instance tried, connection
    /// included, whatever the configured request timeout: for a question whose answer is only
    /// advice (the card in a reader is shown either way).
    pub fn post_within<Q: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &Q,
        limit: Duration,
    ) -> Result<R, StationError> {
        let json = serde_json::to_vec(body)
            .map_err(|e| StationError::Other(format!("request body for {path}: {e}")))?;
        self.with_others(|c| {
            let answer = c.request_within("POST", path, Some(json.clone()), Some(limit))?;
            c.parse(path, &answer)
        })
    }

    fn parse<R: DeserializeOwned>(&self, path: &str, body: &[u8]) -> Result<R, StationError> {
        serde_json::from_slice(body).map_err(|e| {
            StationError::Other(format!(
                "the centre at {} answered {path} with a body this station does not understand: {e}",
                self.url
            ))
        })
    }

    fn unreachable(&self, reason: impl Into<String>) -> StationError {
        StationError::CentreUnreachable {
            url: self.url.clone(),
            reason: reason.into(),
        }
    }

    /// One request, on the kept connection or a new one: the answer's body on 2xx, the typed
    /// error otherwise.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, StationError> {
        self.request_within(method, path, body, None)
    }

    /// [`CentreClient::request`], the whole of it (connection included) within `limit` when
    /// given.
    fn request_within(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        limit: Option<Duration>,
    ) -> Result<Bytes, StationError> {
        tracing::debug!(url = %self.url, method, path, "centre request");
        let body = Bytes::from(body.unwrap_or_default());
        let exchange = async {
            if let Some(mut idle) = self.take_idle() {
                match self
                    .attempt(&mut idle.sender, method, path, body.clone())
                    .await?
                {
                    Attempt::Answered(status, bytes) => {
                        self.keep(idle);
                        return Ok((status, bytes));
                    }
                    Attempt::Closed(why) => {
                        tracing::debug!(url = %self.url, %why, "the kept connection was closed; a new one");
                    }
                }
            }
            let stream = tokio::time::timeout(self.connect_timeout, self.connect())
                .await
                .map_err(|_| {
                    self.unreachable(format!(
                        "no connection within {} s",
                        self.connect_timeout.as_secs()
                    ))
                })??;
            let mut idle = self.open(stream).await?;
            match self.attempt(&mut idle.sender, method, path, body).await? {
                Attempt::Answered(status, bytes) => {
                    self.keep(idle);
                    Ok((status, bytes))
                }
                Attempt::Closed(why) => Err(self.unreachable(format!("{method} {path}: {why}"))),
            }
        };
        let (status, bytes) = self.rt.block_on(async {
            match limit {
                Some(limit) => tokio::time::timeout(limit, exchange).await.map_err(|_| {
                    self.unreachable(format!(
                        "no answer to {method} {path} within {} s",
                        limit.as_secs_f64()
                    ))
                })?,
                None => exchange.await,
            }
        })?;
        tracing::debug!(url = %self.url, method, path, status, "centre answer");
        match status {
            200..=299 => Ok(bytes),
            400..=499 => Err(StationError::CentreRefused {
                status,
                refusal: unknown_endpoint(refusal(status, &bytes), &self.url, method, path),
            }),
            500..=599 => {
                Err(self.unreachable(format!("HTTP {status}: {}", refusal(status, &bytes).error)))
            }
            _ => Err(StationError::Other(format!(
                "the centre at {} answered {method} {path} with HTTP {status}",
                self.url
            ))),
        }
    }

    async fn connect(
        &self,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, StationError> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
        connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                match self
                    .pinned
                    .as_ref()
                    .and_then(|p| p.mismatch().map(|m| (p, m)))
                {
                    Some((p, seen)) => StationError::invalid(
                        "centre-fingerprint",
                        format!(
                        "the centre at {} presented a TLS certificate with SHA-256 {seen}, not \
                         {}; nothing was sent (the enrolment code is not spent): check the \
                         fingerprint and the URL with the centre",
                        self.url,
                        p.expected()
                    ),
                    ),
                    None => self.unreachable(format!("TLS: {e}")),
                }
            })
    }

    /// HTTP/1.1 on a new TLS stream, its connection task spawned on the client's runtime.
    async fn open(
        &self,
        stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    ) -> Result<Idle, StationError> {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(format!("HTTP: {e}")))?;
        let task = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "a connection to the centre ended");
            }
        });
        Ok(Idle {
            sender,
            task,
            since: Instant::now(),
        })
    }

    /// One request on `sender` within the request timeout.
    async fn attempt(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<Attempt, StationError> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| StationError::invalid("path", format!("{path:?}: {e}")))?;
        let exchange = async {
            if let Err(e) = sender.ready().await {
                return Ok(Attempt::Closed(e.to_string()));
            }
            let resp = match sender.send_request(req).await {
                Ok(r) => r,
                // Closed before an answer began: nothing was answered, the request may be sent
                // again.
                Err(e) if e.is_canceled() || e.is_incomplete_message() || e.is_closed() => {
                    return Ok(Attempt::Closed(e.to_string()))
                }
                Err(e) => return Err(self.unreachable(format!("{method} {path}: {e}"))),
            };
            let status = resp.status().as_u16();
            let bytes = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    self.unreachable(format!("reading the answer to {method} {path}: {e}"))
                })?
                .to_bytes();
            Ok(Attempt::Answered(status, bytes))
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| {
                self.unreachable(format!(
                    "no answer to {method} {path} within {} s",
                    self.request_timeout.as_secs()
                ))
            })?
    }

    /// The kept connection, unless it has been idle too long or is closed.
    fn take_idle(&self) -> Option<Idle> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        (idle.since.elapsed() < IDLE_LIMIT && !idle.sender.is_closed()).then_some(idle)
    }

    /// Keep `idle` for the next request.
    fn keep(&self, mut idle: Idle) {
        idle.since = Instant::now();
        *self.idle.lock().unwrap_or_else(PoisonError::into_inner) = Some(idle);
    }
}

/// The rule of a request the centre has no route for (an empty 404), which the station names so:
/// the centre is older than this station. A 404 with a body that is not the centre's (a proxy's
/// page) keeps `http-404`.
pub const ROUTE_UNKNOWN: &str = "route-unknown";

/// `r`, said in words when it is a plain 404 (no refusal body): the centre has no such
/// endpoint, so it is older than this station (stations are upgraded after their centre).
fn unknown_endpoint(
    r: centre_api::Refusal,
    url: &str,
    method: &str,
    path: &str,
) -> centre_api::Refusal {
    // The centre explains every refusal of its own; an empty 404 is a route it does not have
    // (a proxy in between answers with a page of its own, which stays as it is).
    if r.rule != "http-404" || !r.error.ends_with("without an explanation") {
        return r;
    }
    centre_api::Refusal {
        error: format!(
            "the centre at {url} does not offer {method} {path}: it is older than this station \
             (upgrade the centre; {})",
            r.error
        ),
        rule: ROUTE_UNKNOWN.to_owned(),
        ..r
    }
}

/// The centre's refusal body, or one made from the status when the body is not one (e.g. an
/// older centre's plain 404).
fn refusal(status: u16, body: &[u8]) -> centre_api::Refusal {
    serde_json::from_slice(body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        centre_api::Refusal {
            error: if text.is_empty() {
                format!("HTTP {status} without an explanation")
            } else {
                format!(
                    "HTTP {status}: {}",
                    text.chars().take(200).collect::<String>()
                )
            },
            rule: format!("http-{status}"),
            office: None,
        }
    })
}

/// `https://HOST[:PORT]` (a trailing `/` allowed): the host (brackets of an IPv6 address
/// removed) and the port (443 by default).
pub fn parse_url(url: &str) -> Result<(String, u16), StationError> {
    let bad = |rule: &str| StationError::invalid("centre", format!("{url:?}: {rule}"));
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| bad("is not a URL (https://HOST[:PORT])"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad(
            "must start with https:// (the centre speaks TLS 1.3 only)",
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("must be https://HOST[:PORT] without a path or query"));
    }
    let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("must not carry a user name or password"));
    }
    let host = uri
        .host()
        .ok_or_else(|| bad("has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    Ok((host, uri.port_u16().unwrap_or(443)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_centre_url_is_https_host_and_port_only() {
        assert_eq!(
            parse_url("https://centre.example:8443").unwrap(),
            ("centre.example".into(), 8443)
        );
        assert_eq!(
            parse_url("https://127.0.0.1/").unwrap(),
            ("127.0.0.1".into(), 443)
        );
        assert_eq!(parse_url("https://[::1]:9").unwrap(), ("::1".into(), 9));
        for (url, rule) in [
            ("http://centre:80", "https://"),
            ("https://centre/v1", "without a path"),
            ("https://u:p@centre", "user name"),
            ("centre", "https://"),
        ] {
            let e = parse_url(url).unwrap_err().to_string();
            assert!(e.contains("centre") && e.contains(rule), "{url}: {e}");
        }
    }

    #[test]
    fn a_refusal_without_a_json_body_names_the_status() {
        let r = refusal(404, b"");
        assert_eq!(r.rule, "http-404");
        assert!(r.error.contains("HTTP 404"), "{}", r.error);
        let r = refusal(409, br#"{"error":"used","rule":"enrolment-code-used"}"#);
        assert_eq!(
            (r.error.as_str(), r.rule.as_str()),
            ("used", "enrolment-code-used")
        );
    }

    #[test]
    fn a_plain_404_says_the_centre_is_older() {
        let url = "https://centre.example:8443";
        let path = "/v1/cards-to-replace";
        let r = unknown_endpoint(refusal(404, b""), url, "POST", path);
        assert_eq!(r.rule, ROUTE_UNKNOWN);
        assert!(
            r.error.starts_with(&format!(
                "the centre at {url} does not offer POST {path}: it is older than this station"
            )),
            "{}",
            r.error
        );
        // A proxy's page in between is not the centre speaking: left as it is.
        let r = unknown_endpoint(refusal(404, b"<html>Not Found</html>"), url, "POST", path);
        assert!(r.error.starts_with("HTTP 404: <html>"), "{}", r.error);
        assert_eq!(r.rule, "http-404");
        // A refusal the centre explained (a document it does not have) stays as it said.
        let body = br#"{"error":"no document AA0000001","rule":"document-not-found"}"#;
        let r = unknown_endpoint(refusal(404, body), url, "POST", path);
        assert_eq!(r.error, "no document AA0000001");
    }

    #[test]
    fn refusals_map_to_exit_codes_by_status_and_unreachable_is_seven() {
        let r = |status| StationError::CentreRefused {
            status,
            refusal: refusal(status, b"{\"error\":\"no\",\"rule\":\"r\"}"),
        };
        assert_eq!(
            [400, 401, 403, 404, 409].map(|s| r(s).exit_code()),
            [2, 6, 6, 2, 5]
        );
        assert_eq!(r(403).to_string(), "centre refused: no (rule r)");
        let e = StationError::CentreUnreachable {
            url: "https://c".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(e.exit_code(), 7);
        let s = e.to_string();
        assert!(
            s.contains("https://c cannot be reached") && s.contains("nothing was changed"),
            "{s}"
        );
    }

    #[test]
    fn a_closed_port_is_unreachable_at_once() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = CentreClient::new(
            &format!("https://127.0.0.1:{port}"),
            ServerAuth::Fingerprint(Fingerprint::of(b"x")),
            None,
            Duration::from_secs(30),
        )
        .unwrap();
        let t = std::time::Instant::now();
        let e = c.get::<serde_json::Value>("/v1/whoami").unwrap_err();
        assert!(matches!(e, StationError::CentreUnreachable { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    /// A centre that takes the connection and never answers (not even the TLS handshake):
    /// `post_within` gives up at its limit, not at the request timeout.
    #[test]
    fn an_answer_wanted_within_a_limit_is_given_up_at_the_limit() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
        let c = CentreClient::new(
            &format!("https://127.0.0.1:{port}"),
            ServerAuth::Fingerprint(Fingerprint::of(b"x")),
            None,
            Duration::from_secs(30),
        )
        .unwrap();
        let t = std::time::Instant::now();
        let limit = Duration::from_millis(300);
        let e = c
            .post_within::<_, serde_json::Value>("/v1/cards/lookup", &serde_json::json!({}), limit)
            .unwrap_err();
        assert!(matches!(e, StationError::CentreUnreachable { .. }), "{e}");
        assert!(e.to_string().contains("within 0.3 s"), "{e}");
        let took = t.elapsed();
        assert!(took >= limit && took < Duration::from_secs(3), "{took:?}");
        drop(held.join().unwrap());
    }

    /// A TLS server on 127.0.0.1 answering each request `{"n": K}` (K counts requests), that
    /// either keeps the connection open or closes it after each answer without saying so
    /// (`Connection: close` absent: as a server that drops an idle connection). Returns the
    /// port, the certificate (DER) and the number of connections accepted.
    fn server(close_after_answer: bool) -> (u16, Vec<u8>, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.der"), dir.path().join("k.der"));
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-outform",
                "DER",
            ])
            .arg("-keyout")
            .arg(dir.path().join("k.pem"))
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let pk8 = std::process::Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(dir.path().join("k.pem"))
            .arg("-out")
            .arg(&key)
            .output()
            .unwrap();
        assert!(pk8.status.success(), "{pk8:?}");
        let cert = std::fs::read(cert).unwrap();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(std::fs::read(key).unwrap());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.clone())], key.into())
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let mut answered = 0;
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    counter.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        continue;
                    };
                    // One connection at a time: the client sends one request at a time.
                    loop {
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            match tls.read(&mut byte).await {
                                Ok(1) => head.push(byte[0]),
                                _ => break,
                            }
                        }
                        if !head.ends_with(b"\r\n\r\n") {
                            break;
                        }
                        answered += 1;
                        let body = format!("{{\"n\": {answered}}}");
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        tls.write_all(reply.as_bytes()).await.unwrap();
                        tls.flush().await.unwrap();
                        if close_after_answer {
                            let _ = tls.shutdown().await;
                            break;
                        }
                    }
                }
            });
        });
        (port, cert, accepted)
    }

    fn client_of(port: u16, cert: &[u8]) -> CentreClient {
        CentreClient::new(
            &format!("https://localhost:{port}"),
            ServerAuth::Fingerprint(Fingerprint::of(cert)),
            None,
            Duration::from_secs(10),
        )
        .unwrap()
    }

    #[test]
    fn requests_share_one_kept_connection() {
        let (port, cert, accepted) = server(false);
        let c = client_of(port, &cert);
        for n in 1..=3 {
            let v: serde_json::Value = c.get("/v1/status").unwrap();
            assert_eq!(v["n"], n);
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_kept_connection_the_server_closed_is_replaced_and_the_request_answered() {
        let (port, cert, accepted) = server(true);
        let c = client_of(port, &cert);
        for n in 1..=3 {
            let v: serde_json::Value = c.get("/v1/status").unwrap();
            assert_eq!(v["n"], n, "each request answered once");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
