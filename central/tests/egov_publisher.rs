//! The e-government publisher under faults (docs/egov.md): a real PostgreSQL cluster, the
//! centre's SoftHSM2 token, `idcentral serve` (two instances on one database, then a restart),
//! issuances completed through the real protocol over TLS 1.3, and a receiver of the test's own:
//! HTTPS on 127.0.0.1 with client-certificate verification (the centre's Station CA), its server
//! key in a SoftHSM2 token of the test. The receiver verifies every JWS independently (ES256
//! over base64url, with the certificate the centre recorded, `x5c[0]` must be it), checks each
//! field against the registry, keeps each message once by its idempotency key, and can be told to
//! refuse (500), hang past the centre's timeout, take a message and then hang (so the centre
//! never hears its answer), or be down. Every wait polls with a deadline.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use centre_api::{CertifyResponse, EnrolResponse, ReserveResponse};
use common::*;
use hsm::KeyStore;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use testrig::egov::{card_key as card_entry, new_job};
use zeroize::Zeroizing;

// ------------------------------------------------------------------------------------------
// The receiver
// ------------------------------------------------------------------------------------------

/// What the receiver does with the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Verify, keep (once per idempotency key), answer 200 with the receipt; a key seen before
    /// gets the first receipt again.
    Accept,
    /// Answer 500 without keeping anything.
    Refuse,
    /// Say nothing for longer than the centre waits.
    Hang,
    /// Verify and keep the message, then say nothing: the centre never hears it arrived.
    KeepThenHang,
    /// Keep nothing and answer 200 with a page, as a gateway in front of the receiver might.
    Gateway,
    /// Verify, keep and answer the receipt with a NUL character in one of its strings.
    NulInReceipt,
}

#[derive(Default)]
struct Seen {
    /// Requests per idempotency key, whatever the answer.
    posts: HashMap<i64, u32>,
    /// The messages kept: the JWS as received, its payload, the receipt given.
    kept: BTreeMap<i64, (String, Value, Value)>,
    /// Everything the receiver found wrong with a request (must stay empty).
    errors: Vec<String>,
    /// The client certificates the connections presented.
    client_certs: Vec<Vec<u8>>,
}

struct ReceiverState {
    mode: Mutex<Mode>,
    seen: Mutex<Seen>,
    /// The centre's JWS signing certificate, as recorded in `egov_keys`.
    signer: Vec<u8>,
}

struct Receiver {
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<ReceiverState>,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    fn set(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.state.seen.lock().unwrap())
    }

    /// Stop accepting connections: the port refuses them.
    fn down(&mut self) {
        if let Some(t) = self.accept.take() {
            t.abort();
        }
    }

    /// Listen again on the same port.
    async fn up(&mut self) {
        assert!(self.accept.is_none(), "the receiver is already up");
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.accept = Some(tokio::spawn(accept_loop(
            listener,
            Arc::clone(&self.tls),
            Arc::clone(&self.state),
        )));
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<ReceiverState>,
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
            let cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec());
            match cert {
                Some(c) => state.seen.lock().unwrap().client_certs.push(c),
                None => {
                    state
                        .seen
                        .lock()
                        .unwrap()
                        .errors
                        .push("a connection without a client certificate".into());
                    return;
                }
            }
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
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn handle(
    state: &ReceiverState,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let mode = *state.mode.lock().unwrap();
    let Some(key) = key else {
        state
            .seen
            .lock()
            .unwrap()
            .errors
            .push("a request without an Idempotency-Key".into());
        return answer(400, json!({ "error": "Idempotency-Key missing" }));
    };
    *state.seen.lock().unwrap().posts.entry(key).or_default() += 1;
    let mut problems = Vec::new();
    if method != hyper::Method::POST || path != "/v1/messages" {
        problems.push(format!("{method} {path}"));
    }
    if content_type.as_deref() != Some("application/jose") {
        problems.push(format!("content-type {content_type:?}"));
    }
    let jws = String::from_utf8_lossy(&body).into_owned();
    let payload = match verify_jws(&jws, &state.signer) {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    if let Some(p) = &payload {
        if p["message_id"].as_i64() != Some(key) {
            problems.push(format!(
                "message_id {} under Idempotency-Key {key}",
                p["message_id"]
            ));
        }
    }
    if !problems.is_empty() {
        let mut seen = state.seen.lock().unwrap();
        seen.errors
            .extend(problems.iter().map(|p| format!("message {key}: {p}")));
        return answer(400, json!({ "error": problems.join("; ") }));
    }
    let payload = payload.unwrap();
    match mode {
        Mode::Refuse => return answer(500, json!({ "error": "the registry is busy" })),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            return answer(503, json!({ "error": "too late" }));
        }
        Mode::Gateway => {
            return hyper::Response::builder()
                .status(200)
                .header("content-type", "text/html")
                .body(Full::new(Bytes::from_static(
                    b"<html><body>The service is under maintenance.</body></html>",
                )))
                .unwrap()
        }
        Mode::Accept | Mode::KeepThenHang | Mode::NulInReceipt => {}
    }
    let receipt = {
        let mut seen = state.seen.lock().unwrap();
        let mut fresh =
            json!({ "receipt": format!("EGOV-{key}-{}", seen.kept.len() + 1), "message_id": key });
        if mode == Mode::NulInReceipt {
            fresh["note"] = json!("kept\u{0}");
        }
        let (first_jws, _, receipt) = seen
            .kept
            .entry(key)
            .or_insert_with(|| (jws.clone(), payload, fresh))
            .clone();
        if first_jws != jws {
            seen.errors
                .push(format!("message {key} came again with other bytes"));
        }
        receipt
    };
    if mode == Mode::KeepThenHang {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    answer(200, receipt)
}

/// The test's own ES256 verification (RFC 7515 §5.2, RFC 7518 §3.4): the header names ES256 and
/// the key, `x5c[0]` is `signer`, the R ‖ S signature verifies over `header.payload`.
fn verify_jws(jws: &str, signer: &[u8]) -> Result<Value, String> {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let parts: Vec<&str> = jws.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err(format!("{} parts", parts.len()));
    };
    let b64 = |x: &str| URL_SAFE_NO_PAD.decode(x).map_err(|e| e.to_string());
    let header: Value = serde_json::from_slice(&b64(h)?).map_err(|e| e.to_string())?;
    if header["alg"] != "ES256" || header["kid"] != "centre-egov-1" {
        return Err(format!("header {header}"));
    }
    let x5c0 = STANDARD
        .decode(header["x5c"][0].as_str().unwrap_or(""))
        .map_err(|e| e.to_string())?;
    if x5c0 != signer {
        return Err("x5c[0] is not the centre's e-government certificate".into());
    }
    let cert = <x509_cert::Certificate as der::Decode>::from_der(signer).unwrap();
    let spki = der::Encode::to_der(cert.tbs_certificate().subject_public_key_info()).unwrap();
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&b64(s)?).map_err(|e| e.to_string())?;
    key.verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| "the signature does not verify".to_owned())?;
    serde_json::from_slice(&b64(p)?).map_err(|e| e.to_string())
}

/// The receiver's CA and TLS key in a SoftHSM2 token of this test; its CA certificate (PEM) is
/// what the centre's `[egov] ca_file` names.
struct ReceiverPki {
    store: Arc<dyn hsm::KeyStore>,
    ca_der: Vec<u8>,
    server_der: Vec<u8>,
}

fn receiver_pki() -> ReceiverPki {
    let dir = hsm::pkcs11::SoftHsm2Token::process_dir().expect("run through cargo");
    std::fs::create_dir_all(&dir).unwrap();
    let token = hsm::pkcs11::SoftHsm2Token::create(&dir, "egov-recv", "so-pin-1234", "pin-5678")
        .expect("receiver token");
    let store = token.open(Zeroizing::new("pin-5678".to_owned())).unwrap();
    store.generate_p256("recv-ca").unwrap();
    store.generate_p256("recv-tls").unwrap();
    let profiles = profiles::builtin().unwrap();
    let now = std::time::SystemTime::now();
    let ca = ca::create_root(&store, profiles.cert("root-ca").unwrap(), "recv-ca", now).unwrap();
    let names = ca::SubjectAltNames {
        dns: vec!["localhost".into()],
        ip: vec!["127.0.0.1".parse().unwrap()],
    };
    let server = ca::issue_station_cert_with_names(
        &store,
        profiles.cert("centre-tls").unwrap(),
        &ca,
        &store.public_key_spki("recv-tls").unwrap(),
        "e-government receiver",
        &names,
        now,
    )
    .unwrap();
    ReceiverPki {
        store: Arc::new(store),
        ca_der: ca.cert_der().to_vec(),
        server_der: server.der,
    }
}

/// A receiver on `listener` that trusts `station_ca` for client certificates (required).
fn receiver(
    pki: &ReceiverPki,
    listener: tokio::net::TcpListener,
    station_ca: &[u8],
    signer: Vec<u8>,
) -> Receiver {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(station_ca.to_vec()))
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .unwrap();
    let key = hsm::tls::certified_key(
        Arc::clone(&pki.store),
        "recv-tls",
        &[pki.server_der.clone(), pki.ca_der.clone()],
    )
    .unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
    let state = Arc::new(ReceiverState {
        mode: Mutex::new(Mode::Accept),
        seen: Mutex::new(Seen::default()),
        signer,
    });
    let addr = listener.local_addr().unwrap();
    let tls = Arc::new(tls);
    let accept = tokio::spawn(accept_loop(listener, Arc::clone(&tls), Arc::clone(&state)));
    Receiver {
        addr,
        tls,
        state,
        accept: Some(accept),
    }
}

// ------------------------------------------------------------------------------------------
// A station issuing through the centre (as centre_issuance.rs does)
// ------------------------------------------------------------------------------------------

struct Enrolled {
    tls: Arc<rustls::ClientConfig>,
    _station: Station,
}

async fn call(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    path: &str,
    body: &Value,
) -> Value {
    let (status, v, _) = https(addr, "localhost", Arc::clone(tls), "POST", path, Some(body))
        .await
        .unwrap();
    assert_eq!(status, 200, "POST {path}: {v}");
    v
}

/// One whole issuance for holder `pinfl` (reserve, certify, complete): its document number.
async fn issue(addr: SocketAddr, st: &Enrolled, pinfl: &str, surname: &str) -> String {
    let (job, document) = reserve_certify(addr, st, pinfl, surname).await;
    complete(addr, st, &job).await;
    document
}

/// An issuance up to its certificates (reserve with a permanent address, certify): its job and
/// document number.
async fn reserve_certify(
    addr: SocketAddr,
    st: &Enrolled,
    pinfl: &str,
    surname: &str,
) -> (String, String) {
    let job = new_job();
    let reserve = json!({
        "job": job, "operator": "clerk1",
        "holder": { "pinfl": pinfl, "surname": surname, "given_names": "Dilnoza",
                    "patronymic": "Akmalovna", "surname_cyrillic": null, "given_names_cyrillic": null,
                    "patronymic_cyrillic": null, "sex": "F", "date_of_birth": "1990-04-12",
                    "place_of_birth": "Tashkent", "citizenship": "UZB", "photo_sha256": null },
        "address": { "kind": "permanent", "region": "Toshkent", "district": "Yunusobod",
                     "street": format!("Amir Temur {}", &pinfl[12..]), "house": "12", "apartment": "5",
                     "registered_on": "2015-06-01", "registered_until": null },
        "update_holder": false, "card_serial": testrig::egov::card_of(&job),
    });
    let r: ReserveResponse =
        serde_json::from_value(call(addr, &st.tls, centre_api::paths::RESERVE, &reserve).await)
            .unwrap();
    let keys = json!({ "operator": "clerk1", "keys": [
        card_entry(&job, &r.challenge, 0x9a, "holder-auth"),
        card_entry(&job, &r.challenge, 0x9c, "holder-sign"),
    ]});
    let _: CertifyResponse =
        serde_json::from_value(call(addr, &st.tls, &centre_api::paths::certify(&job), &keys).await)
            .unwrap();
    (job, r.document)
}

/// `complete` of issuance `job`.
async fn complete(addr: SocketAddr, st: &Enrolled, job: &str) {
    let complete = json!({ "operator": "clerk1", "card_serial": testrig::egov::card_of(job),
                           "date_of_issue": "2026-12-02", "date_of_expiry": "2036-12-01" });
    call(addr, &st.tls, &centre_api::paths::complete(job), &complete).await;
}

// ------------------------------------------------------------------------------------------
// Waiting and looking
// ------------------------------------------------------------------------------------------

/// Poll `f` every 50 ms until it gives a value; panic naming `what` after `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The outbox id of `document`'s message.
async fn message_id(db: &tokio_postgres::Client, document: &str) -> i64 {
    db.query_one(
        "SELECT id FROM outbox WHERE payload->>'document' = $1",
        &[&document],
    )
    .await
    .unwrap()
    .get(0)
}

/// (status, attempts, last_error) of outbox message `id`.
async fn state(db: &tokio_postgres::Client, id: i64) -> (String, i32, Option<String>) {
    let r = db
        .query_one(
            "SELECT status, attempts, last_error FROM outbox WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

async fn delivered(db: &tokio_postgres::Client, id: i64, limit: Duration) {
    wait_for(&format!("message {id} delivered"), limit, || async move {
        (state(db, id).await.0 == "delivered").then_some(())
    })
    .await
}

/// The message must say what the registry holds for `document`.
async fn check_fields(db: &tokio_postgres::Client, payload: &Value, document: &str) {
    let r = db
        .query_one(
            "SELECT h.pinfl, h.surname, h.given_names, h.patronymic, d.office, d.station,
                    to_char(d.date_of_issue, 'YYYY-MM-DD'), d.job
             FROM documents d JOIN holders h ON h.id = d.holder_id
             WHERE d.series || lpad(d.number::text, 7, '0') = $1",
            &[&document],
        )
        .await
        .unwrap();
    let job: String = r.get(7);
    let serials: Vec<String> = db
        .query(
            "SELECT serial FROM certificates WHERE job = $1 ORDER BY slot",
            &[&job],
        )
        .await
        .unwrap()
        .iter()
        .map(|c| hex::encode_upper(c.get::<_, &[u8]>(0)))
        .collect();
    let pinfl: String = r.get(0);
    assert_eq!(payload["topic"], "document.issued", "{payload}");
    assert_eq!(payload["holder"]["pinfl"], pinfl.as_str());
    assert_eq!(payload["holder"]["surname"], r.get::<_, String>(1).as_str());
    assert_eq!(
        payload["holder"]["given_names"],
        r.get::<_, String>(2).as_str()
    );
    assert_eq!(
        payload["holder"]["patronymic"],
        r.get::<_, Option<String>>(3).unwrap().as_str()
    );
    assert_eq!(payload["document"]["number"], document);
    assert_eq!(payload["document"]["series"], &document[..2]);
    assert_eq!(
        payload["document"]["place_of_issue"],
        json!({ "office": r.get::<_, String>(4), "station": r.get::<_, String>(5) })
    );
    assert_eq!(
        payload["document"]["date_of_issue"],
        r.get::<_, String>(6).as_str()
    );
    let address = &payload["registration_address"];
    assert_eq!(
        (address["street"].as_str(), address["apartment"].as_str()),
        (
            Some(format!("Amir Temur {}", &pinfl[12..]).as_str()),
            Some("5")
        ),
        "{payload}"
    );
    // A holder whose permanent registration the test ended (step 1b) is sent the temporary one.
    let permanent_ended: bool = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM holder_addresses a
                            JOIN holder_address_ends e ON e.address_id = a.id
                            JOIN holders h ON h.id = a.holder_id
                            WHERE h.pinfl = $1 AND a.kind = 'permanent')",
            &[&r.get::<_, String>(0)],
        )
        .await
        .unwrap()
        .get(0);
    let kind = if permanent_ended {
        "temporary"
    } else {
        "permanent"
    };
    assert_eq!(address["kind"], kind, "{payload}");
    let in_message: Vec<&str> = payload["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    assert_eq!(in_message, serials);
    assert_eq!(serials.len(), 2);
}

fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

// ------------------------------------------------------------------------------------------
// The test
// ------------------------------------------------------------------------------------------

#[test]
fn every_message_arrives_exactly_once_through_refusals_hangs_outages_and_a_restart() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    // The receiver's port and CA first: the centre's configuration names them.
    let pki = receiver_pki();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("egov-ca.pem");
    std::fs::write(&ca_file, pem(&pki.ca_der)).unwrap();
    let (tmp, cluster, config) = centre(&format!(
        "\n[server]\npublic_name = \"localhost\"\n\n[egov]\nurl = \"https://localhost:{port}/v1/messages\"\n\
         ca_file = \"{}\"\ntimeout_seconds = 2\nmax_attempts = 8\nretry_initial_ms = 200\n\
         retry_max_ms = 1000\npoll_interval_ms = 100\n",
        ca_file.display()
    ));
    let pw = format!("{ADMIN_PASSWORD}\n");
    ok(idcentral(&config, &["init", "--admin", "admin"], &pw));
    ok(idcentral(
        &config,
        &[
            "operator",
            "add",
            "--name",
            "aud1",
            "--role",
            "auditor",
            "--operator",
            "admin",
        ],
        &format!("{ADMIN_PASSWORD}\nauditor-pw-0123\n"),
    ));
    let code = add_station_at(&config, "TAS01", "tas01-st1");
    let db_client = rt.block_on(db(&cluster));
    let db = &db_client;

    // init made both e-government keys, each audited. A centre initialised before they existed
    // has no rows: `serve` makes them then (two instances starting at once make one pair, the
    // HSM keys init left are reused).
    let cert_of = |sql: &str| -> Vec<u8> { rt.block_on(db.query_one(sql, &[])).unwrap().get(0) };
    let jws_sql = "SELECT cert_der FROM egov_keys WHERE purpose = 'jws' AND state = 'active'";
    let tls_sql =
        "SELECT cert_der FROM egov_keys WHERE purpose = 'tls-client' AND state = 'active'";
    let spki = |der: &[u8]| {
        let c = <x509_cert::Certificate as der::Decode>::from_der(der).unwrap();
        der::Encode::to_der(c.tbs_certificate().subject_public_key_info()).unwrap()
    };
    let (jws_spki, tls_spki) = (spki(&cert_of(jws_sql)), spki(&cert_of(tls_sql)));
    let key_events = || {
        rt.block_on(audit_actions(db))
            .iter()
            .filter(|a| *a == "egov.key-certified")
            .count()
    };
    assert_eq!(key_events(), 2);
    rt.block_on(db.execute("DELETE FROM egov_keys", &[]))
        .unwrap();

    // Two centre instances on one database, both publishing.
    let mut server = Server::start(&config);
    let second = Server::start(&config);
    assert_eq!(key_events(), 4, "one pair made again, not two");
    let signer = cert_of(jws_sql);
    let tls_client = cert_of(tls_sql);
    assert_eq!((spki(&signer), spki(&tls_client)), (jws_spki, tls_spki));

    // The JWS signer under the National Root with its own EKU; the TLS client under the
    // Station CA, for client authentication.
    let root = cert_of("SELECT cert_der FROM ca_keys WHERE ca = 'root'");
    let station_ca = cert_of("SELECT cert_der FROM ca_keys WHERE ca = 'station-ca'");
    for (name, der) in [
        ("signer.pem", &signer),
        ("root.pem", &root),
        ("client.pem", &tls_client),
        ("station-ca.pem", &station_ca),
    ] {
        std::fs::write(tmp.path().join(name), pem(der)).unwrap();
    }
    let (good, out) = openssl_verify(
        tmp.path(),
        &["-x509_strict", "-CAfile", "root.pem", "signer.pem"],
    );
    assert!(good, "{out}");
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "extendedKeyUsage,keyUsage", "-in"])
        .arg(tmp.path().join("signer.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("1.3.6.1.4.1.32473.1.3.2") && text.contains("Digital Signature"),
        "{text}"
    );
    let (good, out) = openssl_verify(
        tmp.path(),
        &[
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "station-ca.pem",
            "client.pem",
        ],
    );
    assert!(good, "{out}");

    let mut recv = {
        let _guard = rt.enter();
        receiver(&pki, listener, &station_ca, signer.clone())
    };
    macro_rules! seen_kept {
        ($id:expr) => {{
            let r = &recv;
            let id = $id;
            move || async move { r.seen(|s| s.kept.contains_key(&id)).then_some(()) }
        }};
    }

    let addr = server.addr;
    let st = rt.block_on(async {
        let station = Station::new("egov-st1");
        let req = station.enrol_request("tas01-st1", &code);
        let anon = client_config(&station_ca, None);
        let resp: EnrolResponse =
            serde_json::from_value(call(addr, &anon, "/v1/enrol", &req).await).unwrap();
        let id = identity(&station.store, "identity", der_of_pem(&resp.identity_cert));
        Enrolled {
            tls: client_config(&station_ca, Some(id)),
            _station: station,
        }
    });
    let mut documents: Vec<String> = Vec::new();
    let mut pinfl_n = 31234567890100u64;
    let mut next_holder = || {
        pinfl_n += 1;
        pinfl_n.to_string()
    };

    // 1. A receiver that answers: four issuances, each delivered once, though two instances
    //    look for due messages every 100 ms (claims skip rows another holds).
    rt.block_on(async {
        for _ in 0..4 {
            documents.push(issue(addr, &st, &next_holder(), "Karimova").await);
        }
        for d in &documents {
            let id = message_id(db, d).await;
            delivered(db, id, Duration::from_secs(20)).await;
        }
    });
    drop(second);
    recv.seen(|s| {
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(s.kept.len(), 4);
        assert!(s.posts.values().all(|n| *n == 1), "{:?}", s.posts);
        assert!(s.client_certs.iter().all(|c| *c == tls_client));
    });

    // 1b. The registration in force when the issuance completed: a temporary address recorded
    //     after the permanent one (before `complete`) does not take its place in the message;
    //     a holder whose permanent registration ended before `complete` gets the temporary one.
    rt.block_on(async {
        let temporary = |pinfl: String, street: String| async move {
            db.execute(
                "INSERT INTO holder_addresses (holder_id, kind, region, district, street, house,
                   apartment, registered_on, registered_until, station, operator)
                 SELECT id, 'temporary', 'Samarqand', 'Urgut', $2, '3', '5', '2026-11-01',
                        '2027-11-01', 'tas01-st1', 'clerk1'
                 FROM holders WHERE pinfl = $1",
                &[&pinfl, &street],
            )
            .await
            .unwrap();
        };
        let (pa, pb) = (next_holder(), next_holder());
        let (job_a, doc_a) = reserve_certify(addr, &st, &pa, "Saidova").await;
        temporary(pa.clone(), "Registon 1".into()).await;
        let (job_b, doc_b) = reserve_certify(addr, &st, &pb, "Saidova").await;
        temporary(pb.clone(), format!("Amir Temur {}", &pb[12..])).await;
        db.execute(
            "INSERT INTO holder_address_ends (address_id, ended_on, station, operator)
             SELECT a.id, '2026-12-01', 'tas01-st1', 'clerk1'
             FROM holder_addresses a JOIN holders h ON h.id = a.holder_id
             WHERE h.pinfl = $1 AND a.kind = 'permanent'",
            &[&pb],
        )
        .await
        .unwrap();
        complete(addr, &st, &job_a).await;
        complete(addr, &st, &job_b).await;
        for (d, kind, street) in [
            (&doc_a, "permanent", format!("Amir Temur {}", &pa[12..])),
            (&doc_b, "temporary", format!("Amir Temur {}", &pb[12..])),
        ] {
            let id = message_id(db, d).await;
            delivered(db, id, Duration::from_secs(20)).await;
            let address = recv.seen(|s| s.kept[&id].1["registration_address"].clone());
            assert_eq!(address["kind"], kind, "{d}: {address}");
            assert_eq!(address["street"], street.as_str(), "{d}: {address}");
        }
        documents.push(doc_a);
        documents.push(doc_b);
    });

    // 2. A receiver answering 500: the centre retries with backoff, then delivers once it
    //    answers; the last error was the 500.
    recv.set(Mode::Refuse);
    let refused_id = rt.block_on(async {
        let d = issue(addr, &st, &next_holder(), "Aliyeva").await;
        let id = message_id(db, &d).await;
        let (_, attempts, error) = wait_for(
            "two refused attempts",
            Duration::from_secs(20),
            || async move {
                let s = state(db, id).await;
                (s.1 >= 2).then_some(s)
            },
        )
        .await;
        assert!(
            error.as_deref().unwrap_or("").contains("HTTP 500"),
            "{error:?}"
        );
        assert!(attempts >= 2);
        recv.set(Mode::Accept);
        delivered(db, id, Duration::from_secs(20)).await;
        documents.push(d);
        id
    });
    recv.seen(|s| assert!(s.posts[&refused_id] >= 3 && s.kept.contains_key(&refused_id)));

    // 3. A receiver that hangs past the centre's 2 s timeout: the attempt fails as a timeout,
    //    the message stays pending and is delivered once the receiver answers again.
    recv.set(Mode::Hang);
    let hung = rt.block_on(async {
        let d = issue(addr, &st, &next_holder(), "Yusupova").await;
        let id = message_id(db, &d).await;
        let error = wait_for(
            "a timed-out attempt",
            Duration::from_secs(20),
            || async move {
                let s = state(db, id).await;
                (s.1 >= 1).then_some(s.2)
            },
        )
        .await;
        assert!(
            error
                .as_deref()
                .unwrap_or("")
                .contains("no answer within 2 s"),
            "{error:?}"
        );
        recv.set(Mode::Accept);
        delivered(db, id, Duration::from_secs(20)).await;
        documents.push(d);
        id
    });
    recv.seen(|s| assert!(s.posts[&hung] >= 2 && s.kept.contains_key(&hung)));

    // 4. A receiver that takes the message and then does not answer: the centre sends it again
    //    (the same bytes, the same key) and the receiver answers the first receipt a second
    //    time; the centre records that receipt.
    recv.set(Mode::KeepThenHang);
    let twice = rt.block_on(async {
        let d = issue(addr, &st, &next_holder(), "Rashidova").await;
        let id = message_id(db, &d).await;
        wait_for(
            "the message kept by the receiver",
            Duration::from_secs(20),
            seen_kept!(id),
        )
        .await;
        recv.set(Mode::Accept);
        delivered(db, id, Duration::from_secs(20)).await;
        let receipt: Value = db
            .query_one("SELECT receipt FROM outbox WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(receipt, recv.seen(|s| s.kept[&id].2.clone()));
        documents.push(d);
        id
    });
    recv.seen(|s| assert!(s.posts[&twice] >= 2, "{:?}", s.posts));

    // 4b. A 200 that is no receipt (a gateway's page): an attempt counted, not a delivery; the
    //    message is delivered once the receiver answers. A receipt with a NUL in a string
    //    (which jsonb cannot hold) is recorded without it, not refused forever.
    recv.set(Mode::Gateway);
    let gated = rt.block_on(async {
        let d = issue(addr, &st, &next_holder(), "Nazarova").await;
        let id = message_id(db, &d).await;
        let error = wait_for(
            "an attempt answered by the gateway",
            Duration::from_secs(20),
            || async move {
                let s = state(db, id).await;
                (s.1 >= 1).then_some(s.2)
            },
        )
        .await;
        assert!(
            error.as_deref().unwrap_or("").contains(&format!(
                "HTTP 200 but the answer is not a JSON receipt for message {id}"
            )),
            "{error:?}"
        );
        recv.set(Mode::NulInReceipt);
        delivered(db, id, Duration::from_secs(20)).await;
        let receipt: Value = db
            .query_one("SELECT receipt FROM outbox WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(receipt["note"], "kept", "{receipt}");
        assert_eq!(receipt["message_id"], id, "{receipt}");
        recv.set(Mode::Accept);
        documents.push(d);
        id
    });
    recv.seen(|s| assert!(s.posts[&gated] >= 2 && s.kept.contains_key(&gated)));

    // 5. The receiver down long enough: the message becomes the dead letter after 8 attempts,
    //    `outbox list --failed` shows it, an auditor may not retry it, a ca-admin does, and it
    //    is delivered once the receiver is back.
    recv.down();
    let dead = rt.block_on(async {
        let d = issue(addr, &st, &next_holder(), "Nazarova").await;
        let id = message_id(db, &d).await;
        wait_for("the dead letter", Duration::from_secs(30), || async move {
            (state(db, id).await.0 == "failed").then_some(())
        })
        .await;
        documents.push(d);
        id
    });
    let (status, attempts, error) = rt.block_on(state(db, dead));
    assert_eq!((status.as_str(), attempts), ("failed", 8));
    assert!(
        error.as_deref().unwrap_or("").contains("connect"),
        "{error:?}"
    );
    let listed: Value = serde_json::from_str(&ok(idcentral(
        &config,
        &["--json", "outbox", "list", "--failed", "--operator", "aud1"],
        "auditor-pw-0123\n",
    )))
    .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], dead);
    assert_eq!(listed[0]["status"], "failed");
    assert_eq!(listed[0]["attempts"], 8);
    assert!(listed[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("connect"));
    let all = ok(idcentral(
        &config,
        &["outbox", "list", "--operator", "admin"],
        &pw,
    ));
    assert_eq!(all.lines().count(), documents.len(), "{all}");
    assert!(
        all.lines().filter(|l| l.contains("delivered")).count() == documents.len() - 1,
        "{all}"
    );
    // `--limit N`: the newest N, oldest first, and a note that older ones were left out; a
    // limit out of 1..=1000 refused naming it.
    let newest = idcentral(
        &config,
        &["outbox", "list", "--limit", "2", "--operator", "admin"],
        &pw,
    );
    let two = ok(newest.clone());
    let last_two: Vec<&str> = all.lines().skip(documents.len() - 2).collect();
    assert_eq!(two.lines().collect::<Vec<_>>(), last_two, "{two}");
    let note = String::from_utf8_lossy(&newest.stderr).into_owned();
    assert!(
        note.contains("the newest 2 messages; older ones were left out: --before "),
        "{note}"
    );
    // The next page: `--before` the first id shown.
    let first_shown = two
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let page2 = ok(idcentral(
        &config,
        &[
            "outbox",
            "list",
            "--limit",
            "2",
            "--before",
            first_shown,
            "--operator",
            "admin",
        ],
        &pw,
    ));
    let before_two: Vec<&str> = all.lines().skip(documents.len() - 4).take(2).collect();
    assert_eq!(page2.lines().collect::<Vec<_>>(), before_two, "{page2}");
    refused(
        &idcentral(
            &config,
            &["outbox", "list", "--limit", "0", "--operator", "admin"],
            &pw,
        ),
        2,
        "limit: 0 must be from 1 to 1000",
    );
    let id = dead.to_string();
    refused(
        &idcentral(
            &config,
            &["outbox", "retry", &id, "--operator", "aud1"],
            "auditor-pw-0123\n",
        ),
        6,
        "",
    );
    refused(
        &idcentral(
            &config,
            &["outbox", "retry", "999999", "--operator", "admin"],
            &pw,
        ),
        2,
        "id: there is no outbox message 999999",
    );
    refused(
        &idcentral(
            &config,
            &[
                "outbox",
                "retry",
                &refused_id.to_string(),
                "--operator",
                "admin",
            ],
            &pw,
        ),
        5,
        &format!("id: outbox message {refused_id} is delivered: only a failed message is retried"),
    );
    rt.block_on(recv.up());
    let again: Value = serde_json::from_str(&ok(idcentral(
        &config,
        &["--json", "outbox", "retry", &id, "--operator", "admin"],
        &pw,
    )))
    .unwrap();
    assert_eq!(
        (again["status"].as_str(), again["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
    rt.block_on(delivered(db, dead, Duration::from_secs(20)));

    // 6. A restart: the receiver down while two issuances complete, the centre killed with
    //    their messages pending; then the receiver back, and a new centre process delivers
    //    both. Then the receiver keeps a message and hangs, the centre is killed before it
    //    hears the answer, and its successor (once the claim's lease ran out) sends it again:
    //    still once as far as the receiver can tell. (This centre gives up only after 1000
    //    attempts: however slow the machine, the messages are still pending when it dies.)
    let patient = tmp.path().join("centre-patient.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("max_attempts = 8"));
    std::fs::write(
        &patient,
        text.replace("max_attempts = 8", "max_attempts = 1000"),
    )
    .unwrap();
    drop(server);
    server = Server::start(&patient);
    let addr = server.addr;
    recv.down();
    let pending: Vec<String> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.push(issue(addr, &st, &next_holder(), "Tursunova").await);
        }
        v
    });
    drop(server);
    for d in &pending {
        let id = rt.block_on(message_id(db, d));
        assert_eq!(rt.block_on(state(db, id)).0, "pending");
    }
    rt.block_on(recv.up());
    server = Server::start(&config);
    let addr = server.addr;
    rt.block_on(async {
        for d in &pending {
            let id = message_id(db, d).await;
            delivered(db, id, Duration::from_secs(60)).await;
        }
    });
    documents.extend(pending);
    recv.set(Mode::KeepThenHang);
    let killed = rt.block_on(async {
        let d = issue(addr, &st, &next_holder(), "Ergasheva").await;
        let id = message_id(db, &d).await;
        wait_for(
            "the message kept by the receiver",
            Duration::from_secs(20),
            seen_kept!(id),
        )
        .await;
        documents.push(d);
        id
    });
    drop(server);
    recv.set(Mode::Accept);
    let _server = Server::start(&config);
    // The claim lasts the timeout (2 s) and a 10 s margin.
    rt.block_on(delivered(db, killed, Duration::from_secs(60)));
    recv.seen(|s| assert!(s.posts[&killed] >= 2, "{:?}", s.posts));

    // Exactly once, as far as the receiver can tell: every message of every issuance was kept
    // once under its own key, carried the registry's data, and nothing it found was wrong.
    let ids: Vec<i64> = rt
        .block_on(db.query("SELECT id FROM outbox ORDER BY id", &[]))
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), documents.len());
    let kept = recv.seen(|s| {
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        s.kept.clone()
    });
    assert_eq!(kept.keys().copied().collect::<Vec<_>>(), ids);
    let mut documents_seen: Vec<String> = kept
        .values()
        .map(|(_, p, _)| p["document"]["number"].as_str().unwrap().to_owned())
        .collect();
    documents_seen.sort();
    let mut expected = documents.clone();
    expected.sort();
    assert_eq!(documents_seen, expected, "one message per issuance");
    rt.block_on(async {
        for (id, (_, payload, _)) in &kept {
            let d = payload["document"]["number"].as_str().unwrap();
            check_fields(db, payload, d).await;
            assert_eq!(state(db, *id).await.0, "delivered");
        }
    });
    // Each delivery audited once; the dead letter too; the operator's retry and the reads.
    let actions = rt.block_on(audit_actions(db));
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(count("egov.delivered"), documents.len());
    assert_eq!(count("egov.failed"), 1);
    assert_eq!(count("outbox.retried"), 1);
    // --failed, the whole list, --limit 2 twice (the refused --limit 0 reads nothing).
    assert_eq!(count("outbox.read"), 4);
    assert!(count("operator.refused") >= 3, "{actions:?}");
    ok(idcentral(
        &config,
        &["audit", "verify-log", "--operator", "admin"],
        &pw,
    ));
}
