//! The station side of the centre's HTTPS tests: `idcentral serve` as a child process, a
//! station whose keys are in a SoftHSM2 token of the test, and one HTTPS request over TLS 1.3
//! with or without its client certificate.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use hsm::KeyStore;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use zeroize::Zeroizing;

pub const STATION_PIN: &str = "station-pin-9d3e";

/// The `idcentral serve` child, killed and reaped when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub fingerprint: String,
    /// The public relying-party listener ([`Server::start_public`]).
    pub public: Option<SocketAddr>,
}

impl Server {
    pub fn start(config: &Path) -> Server {
        Server::start_with(config, false, Some("info"))
    }

    /// [`Server::start`] with the public listener on a free port too.
    pub fn start_public(config: &Path) -> Server {
        Server::start_with(config, true, Some("info"))
    }

    /// `idcentral serve` on free ports (the public listener too when `public`), logging at
    /// `log` (None: the operator's default, warnings).
    pub fn start_with(config: &Path, public: bool, log: Option<&str>) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        if public {
            args.extend(["--public-listen", "127.0.0.1:0"]);
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_idcentral"));
        match log {
            Some(level) => cmd.env("IDCENTRAL_LOG", level),
            None => cmd.env_remove("IDCENTRAL_LOG"),
        };
        let mut child = cmd
            .arg("--config")
            .arg(config)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start idcentral serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = || {
            lines
                .next()
                .and_then(|l| l.ok())
                .unwrap_or_else(|| panic!("idcentral serve stopped before it listened"))
        };
        let first = next();
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .unwrap();
        let second = next();
        let fingerprint = second
            .strip_prefix("TLS SHA256 Fingerprint=")
            .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
            .to_owned();
        let public = public.then(|| {
            let third = next();
            third
                .strip_prefix("public listening on ")
                .unwrap_or_else(|| panic!("unexpected third line {third:?}"))
                .parse()
                .unwrap()
        });
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            fingerprint,
            public,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The station side: keys in its own SoftHSM2 token.
pub struct Station {
    pub store: Arc<dyn hsm::KeyStore>,
}

impl Station {
    pub fn new(label: &str) -> Station {
        let dir = hsm::pkcs11::SoftHsm2Token::process_dir()
            .expect("run through cargo: the runner sets SOFTHSM2_CONF");
        std::fs::create_dir_all(&dir).unwrap();
        let token = hsm::pkcs11::SoftHsm2Token::create(&dir, label, "so-pin-1234", STATION_PIN)
            .expect("station token");
        let store = token.open(Zeroizing::new(STATION_PIN.to_owned())).unwrap();
        for key in ["identity", "audit", "ds"] {
            store.generate_p256(key).unwrap();
        }
        Station {
            store: Arc::new(store),
        }
    }

    pub fn csr(&self, key: &str) -> String {
        hex::encode(ca::csr_for_hsm_key(self.store.as_ref(), key, "station request").unwrap())
    }

    pub fn enrol_request(&self, station: &str, code: &str) -> serde_json::Value {
        serde_json::json!({
            "station": station, "enrolment_code": code,
            "identity_csr": self.csr("identity"), "audit_csr": self.csr("audit"),
            "document_signer_csr": self.csr("ds"),
        })
    }
}

pub fn der_of_pem(pem: &str) -> Vec<u8> {
    use der::DecodePem;
    let cert = x509_cert::Certificate::from_pem(pem.as_bytes()).unwrap();
    der::Encode::to_der(&cert).unwrap()
}

/// The HSM key `key` of `store` with its certificate, as a TLS client identity.
pub fn identity(
    store: &Arc<dyn hsm::KeyStore>,
    key: &str,
    cert: Vec<u8>,
) -> rustls::sign::CertifiedKey {
    hsm::tls::certified_key(Arc::clone(store), key, &[cert]).unwrap()
}

/// A TLS 1.3 client trusting `anchor` (DER), optionally presenting `identity`.
pub fn client_config(
    anchor: &[u8],
    identity: Option<rustls::sign::CertifiedKey>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(anchor.to_vec())).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match identity {
        None => builder.with_no_client_auth(),
        Some(ck) => {
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(ck)))
        }
    })
}

/// One HTTPS request; `Err` when the TLS connection was refused. Also returns the server's
/// certificate (DER).
pub async fn https(
    addr: SocketAddr,
    name: &str,
    tls: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value, Vec<u8>), String> {
    // A bound on the whole call, as the station's own client has: a test that meets a hung
    // exchange fails (or retries) naming it instead of waiting forever. (Seen once: a call
    // made while an instance was refusing the client's certificate never completed, with no
    // socket left open.)
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let server_name = ServerName::try_from(name.to_owned()).unwrap();
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let server_cert = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        // hyper's documented order: wait until the connection can take a request (an error here
        // when the server has already closed it, e.g. after refusing the client certificate).
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", name)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::json!({ "raw": String::from_utf8_lossy(&bytes) }));
        Ok((status, json, server_cert))
    };
    tokio::time::timeout(HTTPS_CALL_LIMIT, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "{method} {path}: no answer within {} s",
                HTTPS_CALL_LIMIT.as_secs()
            ))
        })
}

/// How long [`https`] waits for one whole exchange.
const HTTPS_CALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn assert_refused(
    r: &Result<(u16, serde_json::Value, Vec<u8>), String>,
    status: u16,
    rule: &str,
) {
    let (s, body, _) = r
        .as_ref()
        .unwrap_or_else(|e| panic!("wanted HTTP {status}, got {e}"));
    assert_eq!((*s, body["rule"].as_str()), (status, Some(rule)), "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

pub fn openssl_verify(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("verify")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
