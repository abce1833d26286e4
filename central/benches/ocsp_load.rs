//! Benchmark (issue 21): OCSP answers per second from the centre's public listener, and p50 /
//! p99 latency at 80 % of that rate, against `openssl ocsp -index … -port …` serving the same
//! certificates on the same machine in the same run; and the time from a revocation to the first
//! OCSP answer that says `revoked`.
//!
//! `cargo bench -p central --bench ocsp_load` (a bench binary, one run, ≈ 1–2 minutes).
//!
//! The centre is the real one (as in `centre_load`): a private PostgreSQL cluster, `idcentral
//! init` with its own SoftHSM2 token, `idcentral serve` (the release binary of this build) with
//! its public plain-HTTP listener on 127.0.0.1. Two stations enrol and issue `OCSP_LOAD_CARDS`
//! cards through the issuance protocol (reserve → certify → complete over mutual TLS), two
//! holder certificates each; the bench waits until the centre has signed a response for every
//! one of them ahead of time.
//!
//! The peer: `openssl ocsp -index index.txt -port P -rsigner R -rkey K -CA esign.pem`, one
//! process as an operator starts it, `index.txt` written from the same certificates (serial,
//! notAfter, subject; all `V`), its responder key and self-signed certificate made with `openssl`
//! (P-256, OCSPSigning) since the e-Signature CA's key is in the centre's HSM: the requests are
//! the same bytes (SHA-1 CertIDs against the e-Signature CA), the responder signs each answer.
//!
//! The load: `OCSP_LOAD_CLIENTS` concurrent HTTP/1.1 clients (tasks of a 2-thread runtime in this
//! process, one keep-alive connection each, reconnecting when the server closes it) POST
//! `application/ocsp-request` bodies (built with `x509-ocsp`, one random certificate of the set
//! each) for `OCSP_LOAD_SECONDS`: answers per second (each answer decoded: `successful`, one
//! SingleResponse, `good`). Then paced at 80 % of that rate for the same time: a pacer thread
//! hands out each request's send time when it is due (sleeping in between, not spinning), the
//! first free client sends it, and latency runs from the scheduled send time to the whole answer
//! (a request that waits for a free client counts the wait: no coordinated omission; every
//! request due within the phase counts, however late its answer).
//!
//! Revocation: `OCSP_LOAD_REVOKES` documents, one after another, are revoked with `POST
//! /v1/documents/{d}/revoke` (a station over mutual TLS, as the clerk's station does); a client
//! asks the public listener for the document's signing certificate every 2 ms from the moment
//! the request is sent; the time to the first `revoked` answer.
//!
//! Environment: `OCSP_LOAD_CARDS` (default 200), `OCSP_LOAD_CLIENTS` (default 16),
//! `OCSP_LOAD_SECONDS` (each phase, default 10), `OCSP_LOAD_REVOKES` (default 7),
//! `OCSP_LOAD_PIN` (`G:S`, taskset CPU lists, e.g. `0:1`: before the load phases every thread
//! of this process, the load generator, is moved to CPUs G and every thread of each responder,
//! `idcentral` and `openssl ocsp` alike, to CPUs S, so that neither side runs on the other's
//! core; unset, the scheduler places them).

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
mod shared;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::json;
use shared::*;
use x509_cert_02::der::{Decode, Encode};
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest,
};

/// A certificate's serial and DER.
type SerialAndCert = (Vec<u8>, Vec<u8>);

fn env_count(name: &str, default: usize) -> usize {
    let v = std::env::var(name)
        .ok()
        .map(|s| {
            s.parse::<usize>()
                .unwrap_or_else(|e| panic!("{name}={s:?}: {e}"))
        })
        .unwrap_or(default);
    assert!((1..=100_000).contains(&v), "{name} must be in 1..=100000");
    v
}

/// An OCSP request for `serial` of `issuer` (SHA-1 CertID, RFC 5019 §2.1.1), DER.
fn ocsp_request(issuer: &x509_cert_02::Certificate, serial: &[u8]) -> Vec<u8> {
    use sha1::Digest;
    use x509_cert_02::der::asn1::{Null, OctetString};
    let tbs = &issuer.tbs_certificate;
    let name = tbs.subject.to_der().unwrap();
    let key = tbs.subject_public_key_info.subject_public_key.raw_bytes();
    let id = CertId {
        hash_algorithm: x509_cert_02::spki::AlgorithmIdentifierOwned {
            oid: x509_cert_02::der::oid::db::rfc5912::ID_SHA_1,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(sha1::Sha1::digest(&name).to_vec()).unwrap(),
        issuer_key_hash: OctetString::new(sha1::Sha1::digest(key).to_vec()).unwrap(),
        serial_number: x509_cert_02::serial_number::SerialNumber::new(serial).unwrap(),
    };
    OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id,
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

/// What an answer says about its one certificate: `Some(true)` revoked, `Some(false)` good,
/// `None` anything else (not successful, unknown, not one SingleResponse).
fn status_of(der: &[u8]) -> Option<bool> {
    let r = OcspResponse::from_der(der).ok()?;
    if r.response_status != OcspResponseStatus::Successful {
        return None;
    }
    let basic = BasicOcspResponse::from_der(r.response_bytes?.response.as_bytes()).ok()?;
    let [single] = basic.tbs_response_data.responses.as_slice() else {
        return None;
    };
    match single.cert_status {
        CertStatus::Good(_) => Some(false),
        CertStatus::Revoked(_) => Some(true),
        CertStatus::Unknown(_) => None,
    }
}

/// One client's HTTP/1.1 connection, kept alive; made again when the server closes it.
struct Client {
    addr: SocketAddr,
    path: &'static str,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    connects: u64,
}

impl Client {
    fn new(addr: SocketAddr, path: &'static str) -> Client {
        Client {
            addr,
            path,
            sender: None,
            connects: 0,
        }
    }

    async fn connect(&mut self) {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect to the responder");
        tcp.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(conn);
        self.sender = Some(sender);
        self.connects += 1;
    }

    /// POST one OCSP request; the answer's body (HTTP 200 asserted).
    async fn ask(&mut self, der: &[u8]) -> Bytes {
        for attempt in 0..2 {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.connect().await;
            }
            let sender = self.sender.as_mut().unwrap();
            if sender.ready().await.is_err() {
                self.sender = None;
                continue;
            }
            let req = hyper::Request::builder()
                .method("POST")
                .uri(self.path)
                .header("host", self.addr.to_string())
                .header("content-type", "application/ocsp-request")
                .body(Full::new(Bytes::copy_from_slice(der)))
                .unwrap();
            match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.into_body().collect().await.expect("body").to_bytes();
                    assert_eq!(status, 200, "OCSP over HTTP: {body:?}");
                    return body;
                }
                // A connection the server closed between two requests: once more on a new one.
                Err(e) if attempt == 0 => {
                    let _ = e;
                    self.sender = None;
                }
                Err(e) => panic!("OCSP request: {e}"),
            }
        }
        unreachable!("two attempts")
    }
}

struct Phase {
    answers: u64,
    secs: f64,
    latencies_ms: Vec<f64>,
    /// Paced requests answered in more than [`SLOW_MS`]: when each was due (ms into the phase)
    /// and its latency, to tell a tail spread over the phase from one made by a few stalls.
    slow: Vec<(f64, f64)>,
    connects: u64,
}

/// The p99 target (issue 21), ms.
const SLOW_MS: f64 = 5.0;

/// `clients` clients ask `addr` for `d`: as fast as they can (`rate` None) or on a schedule of
/// `rate` requests per second in all. Every answer must say `good`.
///
/// On a schedule, a pacer thread of its own ([`pace`]) hands out each request's send time when
/// it comes; the first free client takes it, and latency runs from that time to the whole
/// answer (a request waiting for a free client counts the wait: no coordinated omission). The
/// clients wait for the next send time without spinning, so the load generator does not take
/// CPU time from the responder it measures.
fn load(
    addr: SocketAddr,
    path: &'static str,
    requests: &Arc<Vec<Vec<u8>>>,
    clients: usize,
    d: Duration,
    rate: Option<f64>,
) -> Phase {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bad = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(50);
    let stop = start + d;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (pacer, tickets) = match rate {
        Some(r) => (
            Some(std::thread::spawn(move || pace(start, stop, r, tx))),
            Some(Arc::new(tokio::sync::Mutex::new(rx))),
        ),
        None => (None, None),
    };
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                let requests = Arc::clone(requests);
                let bad = Arc::clone(&bad);
                let tickets = tickets.clone();
                tokio::spawn(async move {
                    let mut client = Client::new(addr, path);
                    client.connect().await;
                    let mut lat = Vec::new();
                    let mut slow = Vec::new();
                    let mut n = 0u64;
                    let mut pick = i * 7919;
                    tokio::time::sleep_until(start.into()).await;
                    loop {
                        let scheduled = match &tickets {
                            Some(rx) => match rx.lock().await.recv().await {
                                Some(t) => t,
                                None => break,
                            },
                            None => Instant::now(),
                        };
                        if scheduled >= stop {
                            break;
                        }
                        pick = (pick + 104_729) % requests.len();
                        let body = client.ask(&requests[pick]).await;
                        let done = Instant::now();
                        if status_of(&body) != Some(false) {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                        // At the maximum, what was answered within the window; on a
                        // schedule, every request due within it, however late its answer
                        // (the slowest are the ones that matter).
                        if rate.is_some() || done <= stop {
                            n += 1;
                            let took = ms(done - scheduled);
                            lat.push(took);
                            if rate.is_some() && took > SLOW_MS {
                                slow.push((ms(scheduled - start), took));
                            }
                        }
                    }
                    (n, lat, slow, client.connects)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("a client task"));
        }
        out
    });
    if let Some(p) = pacer {
        p.join().expect("the pacer");
    }
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "answers that are not `good`"
    );
    let mut phase = Phase {
        answers: 0,
        secs: d.as_secs_f64(),
        latencies_ms: Vec::new(),
        slow: Vec::new(),
        connects: 0,
    };
    for (n, lat, slow, c) in results {
        phase.answers += n;
        phase.latencies_ms.extend(lat);
        phase.slow.extend(slow);
        phase.connects += c;
    }
    phase
}

/// The schedule: request k is due at `start + k / rate`, until `stop`; each send time is handed
/// out when it comes. The thread sleeps between them (`nanosleep`: tokio's timer would round to
/// whole milliseconds); a sleep that ends late hands out every time that has passed at once,
/// each still timed from when it was due.
fn pace(
    start: Instant,
    stop: Instant,
    rate: f64,
    tickets: tokio::sync::mpsc::UnboundedSender<Instant>,
) {
    for k in 0u64.. {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        if due >= stop {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if tickets.send(due).is_err() {
            break;
        }
    }
}

fn pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap()
}

/// `OCSP_LOAD_PIN=G:S` (see the module documentation): this process to CPUs `G`, each of
/// `responders` to CPUs `S`, every thread, with `taskset -a -cp`.
fn pin_if_asked(responders: &[u32]) {
    let Ok(spec) = std::env::var("OCSP_LOAD_PIN") else {
        return;
    };
    let (generator, servers) = spec
        .split_once(':')
        .unwrap_or_else(|| panic!("OCSP_LOAD_PIN={spec:?}: give G:S, e.g. 0:1"));
    let own = std::process::id();
    for (cpus, pid) in
        std::iter::once((generator, own)).chain(responders.iter().map(|p| (servers, *p)))
    {
        let o = Command::new("taskset")
            .args(["-a", "-cp", cpus, &pid.to_string()])
            .output()
            .expect("run taskset (Debian util-linux)");
        assert!(
            o.status.success(),
            "taskset -a -cp {cpus} {pid}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    println!("pinned: the load generator to CPUs {generator}, the responders to CPUs {servers}");
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// `openssl` with `args` (split at spaces) in `dir`, which must succeed.
fn openssl(dir: &Path, args: &str) {
    let args: Vec<&str> = args.split(' ').collect();
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(&args)
        .output()
        .expect("run openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `openssl ocsp` serving `index.txt` in `dir` on a free port, once it says it waits for
/// clients. (Not probed with a connection: OpenSSL 3.0's responder spins on a connection closed
/// before it sent a request, and serves nothing else meanwhile.)
fn openssl_responder(dir: &Path) -> (Child, SocketAddr) {
    use std::io::BufRead;
    let addr = free_port();
    let port = addr.port().to_string();
    let mut child = Command::new("openssl")
        .current_dir(dir)
        .args([
            "ocsp",
            "-index",
            "index.txt",
            "-port",
            &port,
            "-rsigner",
            "rcert.pem",
            "-rkey",
            "rkey.pem",
            "-CA",
            "esign.pem",
            "-ignore_err",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start openssl ocsp");
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .and_then(|l| l.ok())
            .expect("openssl ocsp stopped before it listened");
        if line.contains("waiting for OCSP client connections") {
            break;
        }
    }
    // It logs every request's first line: read and drop.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// `20261202103000Z` → `261202103000Z` (the index's UTCTime form).
fn index_time(t: &x509_cert_02::time::Time) -> String {
    let dt = t.to_date_time();
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        dt.year() % 100,
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minutes(),
        dt.seconds()
    )
}

fn report(name: &str, max: &Phase, paced: &mut Phase, rate: f64) -> (f64, f64, f64) {
    let per_s = max.answers as f64 / max.secs;
    let p50 = quantile(&mut paced.latencies_ms, 0.5);
    let p99 = quantile(&mut paced.latencies_ms, 0.99);
    println!(
        "  {name:<40} max {per_s:9.0} answers/s ({} answers, {} connections) | at {rate:.0}/s: {:.0}/s answered, p50 {p50:.2} ms, p99 {p99:.2} ms ({} connections)",
        max.answers,
        max.connects,
        paced.answers as f64 / paced.secs,
        paced.connects
    );
    println!("    {}", slow_text(paced));
    (per_s, p50, p99)
}

/// Where the paced phase's answers slower than [`SLOW_MS`] were: how many, in how many of the
/// phase's 100 ms windows (by when they were due), and the worst.
fn slow_text(paced: &Phase) -> String {
    let windows = (paced.secs * 10.0).ceil() as usize;
    let mut hit: Vec<usize> = paced
        .slow
        .iter()
        .map(|(at, _)| (at / 100.0) as usize)
        .collect();
    hit.sort_unstable();
    hit.dedup();
    let worst = paced
        .slow
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1));
    format!(
        "answers over {SLOW_MS} ms: {} ({:.2} %), due in {} of {windows} 100-ms windows{}",
        paced.slow.len(),
        100.0 * paced.slow.len() as f64 / paced.answers.max(1) as f64,
        hit.len(),
        worst.map_or(String::new(), |(at, took)| format!(
            "; the worst {took:.1} ms, due {:.2} s into the phase",
            at / 1000.0
        ))
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("ocsp_load: bench");
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` (or `--all-targets`) runs this
    // binary without it: then it does nothing.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ocsp_load: a benchmark, run by `cargo bench -p central --bench ocsp_load`");
        return;
    }
    let cards = env_count("OCSP_LOAD_CARDS", 200);
    let clients = env_count("OCSP_LOAD_CLIENTS", 16);
    let window = env_secs("OCSP_LOAD_SECONDS", 10.0);
    let revokes = env_count("OCSP_LOAD_REVOKES", 7);
    assert!(
        revokes < cards,
        "OCSP_LOAD_REVOKES must be below OCSP_LOAD_CARDS"
    );
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "ocsp_load: {cards} cards ({} certificates), {clients} clients, {:.0} s per phase; {nproc} CPUs; load average {}",
        2 * cards,
        window.as_secs_f64(),
        loadavg()
    );

    // The centre: cluster, config with the public base URL, init, two stations, serve.
    let (tmp, cluster, config) = centre(
        "\n[server]\npublic_name = \"localhost\"\n\n[public]\nbase_url = \"http://127.0.0.1\"\n",
    );
    ok(idcentral(
        &config,
        &["init", "--admin", "admin"],
        &format!("{ADMIN_PASSWORD}\n"),
    ));
    let codes: Vec<(String, String)> = (0..2)
        .map(|i| {
            let name = format!("tas01-ocsp{i}");
            let code = add_station_at(&config, "TAS01", &name);
            (name, code)
        })
        .collect();
    let server = Server::start_with(&config, true, None);
    let public = server.public.expect("the public listener");
    let setup = runtime();
    let (stations, tls) = enrol_all(&setup, &cluster, server.addr, &codes, "ocsp-st");

    // The cards, through the protocol, from the two stations at once.
    let t = Instant::now();
    let addr = server.addr;
    let jobs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = tls
            .iter()
            .enumerate()
            .map(|(i, tls)| {
                let n = cards / 2 + (i < cards % 2) as usize;
                s.spawn(move || {
                    let rt = runtime();
                    let mut link = Link::new(addr, tls);
                    (0..n as u64)
                        .map(|seq| rt.block_on(one_card(&mut link, i, seq)).job)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("a station thread"))
            .collect()
    });
    println!(
        "issued {} cards in {:.1} s",
        jobs.len(),
        t.elapsed().as_secs_f64()
    );

    // Every certificate has its response signed ahead of time before the load starts.
    let (esign_der, certs): (Vec<u8>, Vec<SerialAndCert>) = setup.block_on(async {
        let c = db(&cluster).await;
        let t = Instant::now();
        loop {
            let missing: i64 = c
                .query_one(
                    "SELECT count(*) FROM certificates c LEFT JOIN ocsp_responses r
                       ON r.issuer_key = c.issuer_key AND r.serial = c.serial
                     WHERE r.serial IS NULL",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if missing == 0 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "{missing} certificates without a stored response"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let esign = c
            .query_one(
                "SELECT cert_der FROM ca_keys WHERE label = 'esign-ca-1'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let certs = c
            .query(
                "SELECT serial, cert_der FROM certificates ORDER BY serial",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        (esign, certs)
    });
    assert_eq!(certs.len(), 2 * cards, "holder certificates at the centre");
    let esign = x509_cert_02::Certificate::from_der(&esign_der).unwrap();
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        certs
            .iter()
            .map(|(serial, _)| ocsp_request(&esign, serial))
            .collect(),
    );

    // The peer's files: the index from the same certificates, a responder key and certificate.
    let dir = tmp.path().join("openssl-ocsp");
    std::fs::create_dir(&dir).unwrap();
    let mut index = String::new();
    for (_, der) in &certs {
        let c = x509_cert_02::Certificate::from_der(der).unwrap();
        let serial = hex::encode_upper(c.tbs_certificate.serial_number.as_bytes());
        let serial = serial.trim_start_matches("00");
        let subject = c
            .tbs_certificate
            .subject
            .0
            .iter()
            .map(|rdn| format!("/{rdn}"))
            .collect::<String>();
        index.push_str(&format!(
            "V\t{}\t\t{serial}\tunknown\t{subject}\n",
            index_time(&c.tbs_certificate.validity.not_after)
        ));
    }
    std::fs::write(dir.join("index.txt"), index).unwrap();
    // Holders have two certificates with one subject.
    std::fs::write(dir.join("index.txt.attr"), "unique_subject = no\n").unwrap();
    std::fs::write(dir.join("esign.pem"), pem(&esign_der)).unwrap();
    openssl(
        &dir,
        "ecparam -name prime256v1 -genkey -noout -out rkey.pem",
    );
    openssl(
        &dir,
        "req -x509 -new -key rkey.pem -subj /CN=openssl-ocsp-peer -days 2 -addext extendedKeyUsage=OCSPSigning -out rcert.pem",
    );
    let (mut peer, peer_addr) = openssl_responder(&dir);
    // Same answers from both: good for a certificate of the set.
    let rt = runtime();
    for (addr, path) in [(public, "/ocsp"), (peer_addr, "/")] {
        let body = rt.block_on(async {
            let mut c = Client::new(addr, path);
            c.ask(&requests[0]).await
        });
        assert_eq!(status_of(&body), Some(false), "{addr}: not `good`");
    }

    // Maximum rate, then 80 % of it, for each; the peer in the same run.
    pin_if_asked(&[server.child.id(), peer.id()]);
    println!("load average before the load: {}", loadavg());
    let pg_pid = postmaster_pid(&cluster);
    let mut figures = Vec::new();
    for (name, addr, path, pid) in [
        (
            "idcentral serve (public listener)",
            public,
            "/ocsp",
            server.child.id(),
        ),
        (
            "openssl ocsp -index (one process)",
            peer_addr,
            "/",
            peer.id(),
        ),
    ] {
        let before = cpu_snap(pid, pg_pid);
        let max = load(addr, path, &requests, clients, window, None);
        let (cpu_client, cpu_server, cpu_pg) = cpu_between(&before, &cpu_snap(pid, pg_pid));
        let rate = 0.8 * max.answers as f64 / max.secs;
        let mut paced = load(addr, path, &requests, clients, window, Some(rate));
        figures.push(report(name, &max, &mut paced, rate));
        let per = |cpu: f64| 1e6 * cpu / max.answers.max(1) as f64;
        println!(
            "    CPU per answer at the maximum: the responder {:.0} µs, PostgreSQL {:.0} µs, the load generator {:.0} µs; load average {}",
            per(cpu_server),
            per(cpu_pg),
            per(cpu_client),
            loadavg()
        );
    }
    let _ = peer.kill();
    let _ = peer.wait();

    // Revocation → the first `revoked` answer.
    let mut took = Vec::new();
    let mut asker = Client::new(public, "/ocsp");
    for job in jobs.iter().take(revokes) {
        let (document, serial): (String, Vec<u8>) = setup.block_on(async {
            let c = db(&cluster).await;
            let r = c
                .query_one(
                    "SELECT d.series || lpad(d.number::text, 7, '0'), c.serial
                     FROM documents d JOIN certificates c ON c.job = d.job
                     WHERE d.job = $1 AND c.profile = 'holder-sign'",
                    &[job],
                )
                .await
                .unwrap();
            (r.get(0), r.get(1))
        });
        let req = ocsp_request(&esign, &serial);
        let before = rt.block_on(asker.ask(&req));
        assert_eq!(status_of(&before), Some(false), "{document}: good before");
        let t0 = Instant::now();
        let tls0 = Arc::clone(&tls[0]);
        let revoke = std::thread::spawn(move || {
            let t = Instant::now();
            let r = runtime().block_on(call(
                addr,
                &tls0,
                "POST",
                &centre_api::paths::revoke(&document),
                Some(&json!({ "operator": "clerk1", "reason": "lost" })),
            ));
            assert_eq!(
                r.body["revoked"].as_array().map(Vec::len),
                Some(2),
                "{}",
                r.body
            );
            t.elapsed()
        });
        let first = rt.block_on(async {
            loop {
                let body = asker.ask(&req).await;
                if status_of(&body) == Some(true) {
                    return t0.elapsed();
                }
                assert!(t0.elapsed() < Duration::from_secs(30), "never revoked");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let call_took = revoke.join().expect("the revoke call");
        println!(
            "  revoke → first `revoked` answer {:7.1} ms (the revoke call itself {:.1} ms)",
            ms(first),
            ms(call_took)
        );
        took.push(ms(first));
    }
    let max_revoked = took.iter().copied().fold(0.0, f64::max);
    let median_revoked = quantile(&mut took, 0.5);

    let (ours, ours_p50, ours_p99) = figures[0];
    let (theirs, theirs_p50, theirs_p99) = figures[1];
    println!();
    println!(
        "throughput: {ours:.0}/s against openssl ocsp {theirs:.0}/s = {:.1} × (target ≥ 20 ×: {})",
        ours / theirs,
        if ours >= 20.0 * theirs {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "latency at 80 %: p50 {ours_p50:.2} ms, p99 {ours_p99:.2} ms (target p99 < 5 ms: {}); openssl ocsp p50 {theirs_p50:.2} ms, p99 {theirs_p99:.2} ms",
        if ours_p99 < 5.0 { "met" } else { "NOT met" }
    );
    println!(
        "revoke → revoked over {} samples: median {median_revoked:.0} ms, max {max_revoked:.0} ms (target < 2 s: {})",
        took.len(),
        if max_revoked < 2000.0 { "met" } else { "NOT met" }
    );
    println!("load average at the end: {}", loadavg());
    drop(server);
    drop(stations);
}
