//! An e-government receiver for tests of the centre's publisher (docs/egov.md) and of what a
//! station sees of it (feature `egov`): HTTPS on 127.0.0.1, TLS 1.3, a client certificate
//! required and verified up to the centre's Station CA, its server key in a SoftHSM2 token of
//! the test under its own CA (the file `[egov] ca_file` names). It keeps each message once by
//! its `Idempotency-Key` and can be told to refuse (HTTP 500). It runs on its own tokio
//! runtime, so a synchronous test drives it.
//!
//! ```text
//! let mut recv = testrig::egov::Receiver::new(dir);      // PKI and port, not yet accepting
//! centre.enable_egov(&recv.url(), recv.ca_file(), 2);    // [egov], before `serve`
//! recv.start(&station_ca_der);                           // accepting, answering 200
//! recv.set(testrig::egov::Mode::Refuse);                 // 500 from now on
//! ```
//!
//! Also here: [`issue_without_card`], an issuance through the centre's protocol with software
//! keys proving possession as a card would, so a test gets an outbox message without a reader.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hsm::KeyStore as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// What the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep the message (once per idempotency key) and answer 200 with a receipt; a key seen
    /// before gets its first receipt again.
    Accept,
    /// Answer 500 without keeping anything.
    Refuse,
}

#[derive(Default)]
struct Seen {
    /// Requests per idempotency key, whatever the answer.
    posts: BTreeMap<i64, u32>,
    /// 200 answers per idempotency key.
    accepted: BTreeMap<i64, u32>,
    /// The receipt given to each key kept.
    receipts: BTreeMap<i64, Value>,
}

struct State {
    mode: Mutex<Mode>,
    seen: Mutex<Seen>,
}

/// The receiver (see the module documentation). Stops when dropped.
pub struct Receiver {
    rt: tokio::runtime::Runtime,
    listener: Option<std::net::TcpListener>,
    addr: SocketAddr,
    ca_file: PathBuf,
    store: Arc<dyn hsm::KeyStore>,
    chain: Vec<Vec<u8>>,
    state: Arc<State>,
}

impl Receiver {
    /// Its CA and server key (a SoftHSM2 token in this process's token dir: run through
    /// cargo's runner), its CA certificate written to `dir/egov-ca.pem`, a port bound.
    pub fn new(dir: &Path) -> Receiver {
        let (store, ca_der, server_der) = pki();
        let ca_file = dir.join("egov-ca.pem");
        std::fs::write(&ca_file, pem(&ca_der)).expect("write the receiver's CA file");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("the receiver's address");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the receiver's runtime");
        Receiver {
            rt,
            listener: Some(listener),
            addr,
            ca_file,
            store,
            chain: vec![server_der, ca_der],
            state: Arc::new(State {
                mode: Mutex::new(Mode::Accept),
                seen: Mutex::new(Seen::default()),
            }),
        }
    }

    /// `https://localhost:PORT/v1/messages` (the certificate names localhost and 127.0.0.1).
    pub fn url(&self) -> String {
        format!("https://localhost:{}/v1/messages", self.addr.port())
    }

    /// The PEM file of the receiver's CA, for `[egov] ca_file`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Accept connections whose client certificate chains to `station_ca` (DER).
    pub fn start(&mut self, station_ca: &[u8]) {
        let listener = self.listener.take().expect("the receiver is started once");
        let tls = Arc::new(server_config(&self.store, &self.chain, station_ca));
        let state = Arc::clone(&self.state);
        self.rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            accept_loop(listener, tls, state).await
        });
    }

    /// Answer from now on as `mode` says.
    pub fn set(&self, mode: Mode) {
        *self.state.mode.lock().expect("mode") = mode;
    }

    /// How many times message `id` was posted, whatever the answer.
    pub fn posts(&self, id: i64) -> u32 {
        self.seen(|s| s.posts.get(&id).copied().unwrap_or(0))
    }

    /// How many times message `id` was answered 200.
    pub fn accepted(&self, id: i64) -> u32 {
        self.seen(|s| s.accepted.get(&id).copied().unwrap_or(0))
    }

    /// The ids of the messages kept.
    pub fn kept(&self) -> Vec<i64> {
        self.seen(|s| s.receipts.keys().copied().collect())
    }

    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.state.seen.lock().expect("seen"))
    }
}

/// A CA and a TLS server certificate for localhost and 127.0.0.1, keys in a new SoftHSM2
/// token: the store, the CA certificate and the server certificate (DER).
fn pki() -> (Arc<dyn hsm::KeyStore>, Vec<u8>, Vec<u8>) {
    let dir = hsm::pkcs11::SoftHsm2Token::process_dir().expect("run through cargo's runner");
    std::fs::create_dir_all(&dir).expect("the token dir");
    let mut label = [0u8; 4];
    getrandom::fill(&mut label).expect("random");
    let label = format!("egov-recv-{}", hex::encode(label));
    let token = hsm::pkcs11::SoftHsm2Token::create(&dir, &label, "so-pin-1234", "pin-5678")
        .expect("the receiver's token");
    let store = token
        .open(zeroize::Zeroizing::new("pin-5678".to_owned()))
        .expect("open the receiver's token");
    store.generate_p256("recv-ca").expect("CA key");
    store.generate_p256("recv-tls").expect("TLS key");
    let profiles = profiles::builtin().expect("built-in profiles");
    let now = std::time::SystemTime::now();
    let root = profiles.cert("root-ca").expect("root-ca profile");
    let ca = ca::create_root(&store, root, "recv-ca", now).expect("the receiver's CA");
    let names = ca::SubjectAltNames {
        dns: vec!["localhost".into()],
        ip: vec!["127.0.0.1".parse().expect("an IP")],
    };
    let server = ca::issue_station_cert_with_names(
        &store,
        profiles.cert("centre-tls").expect("centre-tls profile"),
        &ca,
        &store.public_key_spki("recv-tls").expect("TLS key"),
        "e-government receiver",
        &names,
        now,
    )
    .expect("the receiver's certificate");
    (Arc::new(store), ca.cert_der().to_vec(), server.der)
}

fn server_config(
    store: &Arc<dyn hsm::KeyStore>,
    chain: &[Vec<u8>],
    station_ca: &[u8],
) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(station_ca.to_vec()))
        .expect("the Station CA as a trust anchor");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .expect("client verifier");
    let key = hsm::tls::certified_key(Arc::clone(store), "recv-tls", chain).expect("TLS key");
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, state) = (acceptor.clone(), Arc::clone(&state));
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(status: u16, body: Value) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    state: &State,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    // The body is read whole before answering, as a receiver would.
    let _ = req.into_body().collect().await;
    let Some(key) = key else {
        return answer(400, json!({ "error": "Idempotency-Key missing" }));
    };
    let mode = *state.mode.lock().expect("mode");
    let mut seen = state.seen.lock().expect("seen");
    *seen.posts.entry(key).or_default() += 1;
    if mode == Mode::Refuse {
        return answer(500, json!({ "error": "the registry is busy" }));
    }
    *seen.accepted.entry(key).or_default() += 1;
    let receipt = seen
        .receipts
        .entry(key)
        .or_insert_with(|| json!({ "receipt": format!("EGOV-{key}"), "message_id": key }))
        .clone();
    answer(200, receipt)
}

fn pem(der: &[u8]) -> String {
    use std::fmt::Write;
    let b64 = base64_encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        let _ = writeln!(out, "{}", String::from_utf8_lossy(line));
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64_encode(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// An issuance without a card

/// A fresh job UUID (RFC 9562 version 4, lower case).
/// A chip serial for job `job`'s card (its first 8 hex digits): every card a test issues is
/// another card, as the centre requires (`card-already-issued`).
pub fn card_of(job: &str) -> String {
    job[..8].to_uppercase()
}

pub fn new_job() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("random");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A key as a card would generate it for `slot` under `profile`: a software P-256 key whose
/// proof signs `centre_api::proof_digest` for the job, as the entry of a certify request.
pub fn card_key(job: &str, challenge: &str, slot: u8, profile: &str) -> Value {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::pkcs8::EncodePublicKey;
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("random");
    let key = p256::ecdsa::SigningKey::from_slice(&b).expect("a P-256 scalar");
    let spki = key
        .verifying_key()
        .to_public_key_der()
        .expect("SPKI")
        .into_vec();
    let challenge = hex::decode(challenge).expect("the challenge is hex");
    let digest = centre_api::proof_digest(job, &challenge, slot, &spki);
    let sig: p256::ecdsa::DerSignature = key.sign_prehash(&digest).expect("sign");
    json!({ "slot": format!("{slot:02X}"), "profile": profile,
            "public_key": hex::encode(&spki), "proof": hex::encode(sig.as_bytes()) })
}

/// One issuance for holder `pinfl` through the centre's protocol (reserve, certify with
/// software keys, complete), each call made by `post(path, body)` — the station's own client,
/// say; the document number. The centre puts one `document.issued` message in its outbox.
pub fn issue_without_card(
    post: &dyn Fn(&str, &Value) -> Value,
    operator: &str,
    pinfl: &str,
) -> String {
    issue_signed_by(post, operator, pinfl, None)
}

/// [`issue_without_card`], the completion naming `document_signer` (the serial, hex, of the
/// Document Signer certificate that signed the card's EF.SOD) when given, as a station does.
pub fn issue_signed_by(
    post: &dyn Fn(&str, &Value) -> Value,
    operator: &str,
    pinfl: &str,
    document_signer: Option<&str>,
) -> String {
    let job = new_job();
    let reserve = json!({
        "job": job, "operator": operator,
        "holder": { "pinfl": pinfl, "surname": "Karimova", "given_names": "Dilnoza",
                    "patronymic": "Akmalovna", "surname_cyrillic": null, "given_names_cyrillic": null,
                    "patronymic_cyrillic": null, "sex": "F", "date_of_birth": "1990-04-12",
                    "place_of_birth": "Tashkent", "citizenship": "UZB", "photo_sha256": null },
        "address": { "kind": "permanent", "region": "Toshkent", "district": "Yunusobod",
                     "street": "Amir Temur 1", "house": "12", "apartment": "5",
                     "registered_on": "2015-06-01", "registered_until": null },
        "update_holder": false, "card_serial": card_of(&job),
    });
    let r = post(centre_api::paths::RESERVE, &reserve);
    let challenge = r["challenge"].as_str().expect("a challenge").to_owned();
    let document = r["document"].as_str().expect("a document").to_owned();
    let keys = json!({ "operator": operator, "keys": [
        card_key(&job, &challenge, 0x9a, "holder-auth"),
        card_key(&job, &challenge, 0x9c, "holder-sign"),
    ]});
    post(&centre_api::paths::certify(&job), &keys);
    let mut complete = json!({ "operator": operator, "card_serial": card_of(&job),
                               "date_of_issue": "2026-12-02", "date_of_expiry": "2036-12-01" });
    if let Some(ds) = document_signer {
        complete["document_signer"] = json!(ds);
    }
    post(&centre_api::paths::complete(&job), &complete);
    document
}
