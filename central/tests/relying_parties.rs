//! The relying-party services end to end (docs/relying-parties.md): a real PostgreSQL cluster,
//! the centre's SoftHSM2 token, `idcentral serve` with its public plain-HTTP listener, an
//! enrolled station that issues a card (software card keys), and openssl as the relying party:
//! `openssl ocsp` (POST, and the RFC 5019 GET built by hand), `openssl crl`, `openssl ts
//! -verify`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use centre_api::{CertifyResponse, EnrolResponse, ReserveResponse};
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use serde_json::{json, Value};

/// `idcentral serve` with both listeners, killed when dropped.
struct Centre {
    child: Child,
    api: SocketAddr,
}

impl Centre {
    fn start(config: &Path, public: SocketAddr) -> Centre {
        let mut child = Command::new(env!("CARGO_BIN_EXE_idcentral"))
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0", "--public-listen"])
            .arg(public.to_string())
            .env("IDCENTRAL_LOG", "info")
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
        let api = next()
            .strip_prefix("listening on ")
            .expect("listening on")
            .parse()
            .unwrap();
        assert!(next().starts_with("TLS SHA256 Fingerprint="));
        let bound: SocketAddr = next()
            .strip_prefix("public listening on ")
            .expect("public listening on")
            .parse()
            .unwrap();
        assert_eq!(bound, public);
        Centre { child, api }
    }
}

/// `idcentral serve --public-only` on a free port, its log to `stderr`: the child and its
/// public address.
fn start_public_only(config: &Path, stderr: Stdio) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idcentral"))
        .arg("--config")
        .arg(config)
        .args(["serve", "--public-only", "--public-listen", "127.0.0.1:0"])
        .env("IDCENTRAL_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start idcentral serve --public-only");
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .and_then(|l| l.ok())
        .expect("idcentral serve --public-only stopped before it listened");
    let addr = line
        .strip_prefix("public listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

impl Drop for Centre {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (bound and released: the centre binds it next).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One plain HTTP/1.1 request: (status, headers, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

/// A plain HTTP/1.1 GET with extra request headers: (status, headers, body).
async fn http_with(
    addr: SocketAddr,
    path: &str,
    extra: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method("GET")
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

/// Run a tool in `dir`: (success, stdout + stderr).
fn tool(dir: &Path, program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not be started ({e}): it is required"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `openssl ts -verify` of the reply `reply` to the query `query` against `root.pem` in `dir`,
/// with the TSA certificate `untrusted` when the token carries none.
fn ts_verify(dir: &Path, reply: &str, query: &str, untrusted: Option<&str>) -> (bool, String) {
    let mut args = vec!["ts", "-verify", "-in", reply, "-queryfile", query];
    args.extend_from_slice(&["-CAfile", "root.pem"]);
    if let Some(u) = untrusted {
        args.extend_from_slice(&["-untrusted", u]);
    }
    tool(dir, "openssl", &args)
}

fn pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap()
}

use testrig::egov::new_job;

/// A card key's certify entry: a software P-256 key signing the proof digest.
fn card_key(job: &str, challenge: &str, slot: u8, profile: &str) -> Value {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    let key = p256::ecdsa::SigningKey::from_slice(&b).unwrap();
    let spki = key
        .verifying_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let digest = centre_api::proof_digest(job, &hex::decode(challenge).unwrap(), slot, &spki);
    let sig: p256::ecdsa::DerSignature = key.sign_prehash(&digest).unwrap();
    json!({ "slot": format!("{slot:02X}"), "profile": profile,
            "public_key": hex::encode(spki), "proof": hex::encode(sig.as_bytes()) })
}

/// `openssl ocsp` against the public listener for `cert` (a file in `dir`), verifying the
/// response against `chain.pem`; its output.
fn ocsp(dir: &Path, url: &str, cert_args: &[&str]) -> String {
    let mut args = vec![
        "ocsp",
        "-issuer",
        "esign.pem",
        "-CAfile",
        "chain.pem",
        "-url",
        url,
        "-no_nonce",
    ];
    args.extend_from_slice(cert_args);
    tool(dir, "openssl", &args).1
}

/// Ask until `ocsp` says `want` (at most `limit`); the answer and how long it took.
fn ocsp_until(
    dir: &Path,
    url: &str,
    cert_args: &[&str],
    want: &str,
    limit: Duration,
) -> (String, Duration) {
    let start = Instant::now();
    loop {
        let out = ocsp(dir, url, cert_args);
        if out.contains(want) {
            return (out, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "no {want:?} within {limit:?}; last answer:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn header<'a>(h: &'a hyper::HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} header in {h:?}"))
        .to_str()
        .unwrap()
}

/// The stored response of `serial`, as the database has it now.
fn stored_der(rt: &tokio::runtime::Runtime, db: &tokio_postgres::Client, serial: &[u8]) -> Vec<u8> {
    rt.block_on(db.query_one(
        "SELECT response_der FROM ocsp_responses WHERE serial = $1",
        &[&serial],
    ))
    .unwrap()
    .get(0)
}

/// GET `/ocsp/{b64}` from `addr` until the answer is what the database stores for `serial`
/// (at most `limit`); how long it took.
fn get_until_stored(
    rt: &tokio::runtime::Runtime,
    db: &tokio_postgres::Client,
    addr: SocketAddr,
    b64: &str,
    serial: &[u8],
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let (_, _, body) = rt.block_on(http(addr, "GET", &format!("/ocsp/{b64}"), None, vec![]));
        if body == stored_der(rt, db, serial) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{addr} did not answer the stored response within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid of the OCSP cache's LISTEN connection once it is listening, preloaded and has run its
/// first heartbeat (`SELECT 1` is the last query it ran), other than `not`; waits at most 10 s.
fn cache_listening(rt: &tokio::runtime::Runtime, db: &tokio_postgres::Client, not: i32) -> i32 {
    let start = Instant::now();
    loop {
        let row = rt
            .block_on(db.query_opt(
                "SELECT pid FROM pg_stat_activity
                 WHERE application_name = 'idcentral-ocsp-cache' AND query = 'SELECT 1'
                   AND pid <> $1",
                &[&not],
            ))
            .unwrap();
        if let Some(r) = row {
            return r.get(0);
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the OCSP cache did not listen again within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `kill -SIG pid`.
fn signal(sig: &str, pid: i32) {
    let st = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// The OCSP cache (central/src/public/ocsp_cache.rs) against the database: `b64` asks for
/// `serial`, whose response is stored; `other` is another certificate whose stored response
/// is put in its place.
fn memory_follows_the_database(
    rt: &tokio::runtime::Runtime,
    db: &tokio_postgres::Client,
    public: SocketAddr,
    b64: &str,
    serial: &[u8],
    other: &[u8],
) {
    let get = || {
        rt.block_on(http(public, "GET", &format!("/ocsp/{b64}"), None, vec![]))
            .2
    };
    let sql = |q: &str| rt.block_on(db.batch_execute(q)).unwrap();
    let put_other = || {
        rt.block_on(db.execute(
            "UPDATE ocsp_responses SET response_der =
               (SELECT response_der FROM ocsp_responses WHERE serial = $2) WHERE serial = $1",
            &[&serial, &other],
        ))
        .unwrap()
    };
    // The LISTEN connection lost (terminated): the process connects again and preloads every
    // stored response before its first heartbeat.
    let first = cache_listening(rt, db, 0);
    let killed: i64 = rt
        .block_on(db.query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = 'idcentral-ocsp-cache'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "one process listens for the cache");
    let listener = cache_listening(rt, db, first);
    let preloaded = stored_der(rt, db, serial);
    // A change the processes are not told of (the V11 trigger off) is not seen: the first
    // request after the preload is answered from memory, not from the database.
    sql("ALTER TABLE ocsp_responses DISABLE TRIGGER ocsp_responses_notify");
    assert_eq!(put_other(), 1);
    assert_ne!(stored_der(rt, db, serial), preloaded);
    assert_eq!(get(), preloaded, "answered from the preloaded memory");
    assert_eq!(get(), preloaded);
    // The LISTEN connection silent (its server process stopped: no reset, no answer): the
    // heartbeat notices, the cache is dropped and the database's row is answered.
    signal("STOP", listener);
    let took = get_until_stored(rt, db, public, b64, serial, Duration::from_secs(8));
    signal("CONT", listener);
    eprintln!("OCSP cache dropped {took:?} after its LISTEN connection went silent");
    sql("ALTER TABLE ocsp_responses ENABLE TRIGGER ocsp_responses_notify");
    // Back to memory once LISTEN is back; the worker signs the response again (queued as a
    // refresh would) and stores it: the new one replaces the one in memory.
    cache_listening(rt, db, listener);
    let filled = get();
    assert_eq!(get(), filled);
    sql(&format!(
        "INSERT INTO relying_party_queue (kind, issuer_key, serial)
         SELECT 'ocsp', issuer_key, serial FROM ocsp_responses WHERE serial = '\\x{}';
         NOTIFY idcentral_relying_parties",
        hex::encode(serial)
    ));
    let start = Instant::now();
    while stored_der(rt, db, serial) == filled {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never signed again"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = get_until_stored(rt, db, public, b64, serial, Duration::from_secs(1));
    eprintln!("the response the worker signed again was answered {took:?} after it was stored");
}

/// POST the TimeStampReq in `dir/query` to `/tsa` at `addr`: (status, headers, body).
fn post_tsa(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    dir: &Path,
    query: &str,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    rt.block_on(http(
        addr,
        "POST",
        "/tsa",
        Some("application/timestamp-query"),
        std::fs::read(dir.join(query)).unwrap(),
    ))
}

/// Every TSA key as "label state", by label.
fn tsa_states(rt: &tokio::runtime::Runtime, db: &tokio_postgres::Client) -> Vec<String> {
    rt.block_on(db.query(
        "SELECT label || ' ' || state FROM tsa_keys ORDER BY label",
        &[],
    ))
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// After the rollover at `only`'s start: `centre-tsa-3` is active and signs the next token
/// (verified with its certificate, not with the old one, by openssl), the old key is retired and
/// its token `r.tsr` still verifies; the rollover is audited.
fn tsa_rolled_over(
    rt: &tokio::runtime::Runtime,
    db: &tokio_postgres::Client,
    dir: &Path,
    only: SocketAddr,
) {
    assert_eq!(
        tsa_states(rt, db),
        ["centre-tsa-2 retired", "centre-tsa-3 active"]
    );
    let cert = |label: &str| -> Vec<u8> {
        rt.block_on(db.query_one("SELECT cert_der FROM tsa_keys WHERE label = $1", &[&label]))
            .unwrap()
            .get(0)
    };
    std::fs::write(dir.join("tsa-old.pem"), pem(&cert("centre-tsa-2"))).unwrap();
    std::fs::write(dir.join("tsa-new.pem"), pem(&cert("centre-tsa-3"))).unwrap();
    // A new key, not the old one certified again.
    let key_of = |f: &str| tool(dir, "openssl", &["x509", "-in", f, "-noout", "-pubkey"]).1;
    assert_ne!(key_of("tsa-old.pem"), key_of("tsa-new.pem"));
    let (_, text) = tool(
        dir,
        "openssl",
        &["x509", "-in", "tsa-new.pem", "-noout", "-text"],
    );
    assert!(
        text.contains("Private Key Usage Period") && text.contains("Time Stamping"),
        "{text}"
    );
    // A request without certReq: the token carries no certificate, so only the right one given
    // to openssl verifies it.
    let (made, o) = tool(
        dir,
        "openssl",
        &[
            "ts", "-query", "-data", "data.txt", "-sha256", "-out", "q3.tsq",
        ],
    );
    assert!(made, "{o}");
    let (status, _, body) = post_tsa(rt, only, dir, "q3.tsq");
    assert_eq!(status, 200);
    std::fs::write(dir.join("r3.tsr"), &body).unwrap();
    let (ok, out) = ts_verify(dir, "r3.tsr", "q3.tsq", Some("tsa-new.pem"));
    assert!(ok && out.contains("Verification: OK"), "{out}");
    let (ok, out) = ts_verify(dir, "r3.tsr", "q3.tsq", Some("tsa-old.pem"));
    assert!(!ok, "signed by centre-tsa-2? {out}");
    let by_key: Vec<(String, i64)> = rt
        .block_on(db.query(
            "SELECT tsa_key, count(*) FROM tsa_tokens GROUP BY tsa_key ORDER BY tsa_key",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        by_key,
        [
            ("centre-tsa-2".to_owned(), 2),
            ("centre-tsa-3".to_owned(), 1)
        ]
    );
    // The old key's token still verifies (its certificate is valid for years).
    let (ok, out) = ts_verify(dir, "r.tsr", "q.tsq", None);
    assert!(ok && out.contains("Verification: OK"), "{out}");
    let details: String = rt
        .block_on(db.query_one(
            "SELECT details FROM audit_log WHERE action = 'tsa.certified' ORDER BY seq DESC LIMIT 1",
            &[],
        ))
        .unwrap()
        .get(0);
    let details: Value = serde_json::from_str(&details).unwrap();
    assert_eq!(
        (details["key"].as_str(), details["replaces"].as_str()),
        (Some("centre-tsa-3"), Some("centre-tsa-2")),
        "{details}"
    );
}

/// A rollover that fails (here: the database refuses to make the new key active, after the
/// key was generated and the root certified it) leaves the active key signing while its usage
/// period lasts: an instance starts, says why in its log, time-stamps with `centre-tsa-3`,
/// audits the failure with the serial the root signed, and `ca services` shows the pending
/// label. The next instance's rollover finishes it with the key the failed one made.
fn tsa_rollover_fails_softly(
    rt: &tokio::runtime::Runtime,
    db: &tokio_postgres::Client,
    dir: &Path,
    config: &Path,
    pw: &str,
) {
    rt.block_on(db.batch_execute(
        "UPDATE tsa_keys SET key_usage_until = now() + interval '1 day' WHERE state = 'active';
         CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
         CREATE TRIGGER test_refuse BEFORE UPDATE ON tsa_keys
             FOR EACH ROW WHEN (NEW.state = 'active') EXECUTE FUNCTION test_refuse()",
    ))
    .unwrap();
    let start = |name: &str| {
        let log_path = dir.join(name);
        let log = std::fs::File::create(&log_path).unwrap();
        let (child, addr) = start_public_only(config, Stdio::from(log));
        (child, addr, log_path)
    };
    // The log without its colours (ANSI SGR sequences).
    let stop = |mut child: Child, log_path: &Path| {
        let _ = child.kill();
        let _ = child.wait();
        let raw = std::fs::read_to_string(log_path).unwrap();
        let mut plain = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                chars.by_ref().find(|&c| c == 'm');
            } else {
                plain.push(c);
            }
        }
        plain
    };
    let (third, addr, log_path) = start("third.log");
    let (status, _, body) = post_tsa(rt, addr, dir, "q3.tsq");
    let log = stop(third, &log_path);
    assert_eq!(status, 200);
    std::fs::write(dir.join("r4.tsr"), &body).unwrap();
    let (verified, out) = ts_verify(dir, "r4.tsr", "q3.tsq", Some("tsa-new.pem"));
    assert!(verified && out.contains("Verification: OK"), "{out}");
    assert!(
        log.contains("could not roll the time-stamping key over")
            && log.contains("refused by the test")
            && log.contains("generated P-256 key pair label=\"centre-tsa-4\""),
        "{log}"
    );
    assert_eq!(
        tsa_states(rt, db),
        [
            "centre-tsa-2 retired",
            "centre-tsa-3 active",
            "centre-tsa-4 pending"
        ]
    );
    let failed: String = rt
        .block_on(db.query_one(
            "SELECT details FROM audit_log WHERE action = 'tsa.rollover-failed' ORDER BY seq DESC LIMIT 1",
            &[],
        ))
        .unwrap()
        .get(0);
    let failed: Value = serde_json::from_str(&failed).unwrap();
    assert_eq!(failed["key"], "centre-tsa-4", "{failed}");
    assert!(failed["unrecorded_serial"].is_string(), "{failed}");
    let services: Value = serde_json::from_str(&ok(idcentral(
        config,
        &["--json", "ca", "services", "--operator", "admin"],
        pw,
    )))
    .unwrap();
    assert_eq!(services["tsa_pending"], "centre-tsa-4", "{services}");

    rt.block_on(
        db.batch_execute("DROP TRIGGER test_refuse ON tsa_keys; DROP FUNCTION test_refuse()"),
    )
    .unwrap();
    let (fourth, _, log_path) = start("fourth.log");
    let log = stop(fourth, &log_path);
    assert!(
        log.contains("certified the time-stamping unit key=centre-tsa-4")
            && !log.contains("generated P-256 key pair"),
        "{log}"
    );
    let active: String = rt
        .block_on(db.query_one("SELECT label FROM tsa_keys WHERE state = 'active'", &[]))
        .unwrap()
        .get(0);
    assert_eq!(active, "centre-tsa-4");
}

/// The public keys SoftHSM2 holds under `dir/hsm`, as OpenSC's pkcs11-tool lists them (no
/// login: public objects only), and the number of objects it stores on disk.
fn hsm_objects(dir: &Path) -> (String, usize) {
    let out = Command::new("pkcs11-tool")
        .args([
            "--module",
            "/usr/lib/softhsm/libsofthsm2.so",
            "--token-label",
            "idcentral",
            "--list-objects",
            "--type",
            "pubkey",
        ])
        .env("SOFTHSM2_CONF", dir.join("hsm/softhsm2.conf"))
        .output()
        .expect("pkcs11-tool (opensc) is required");
    assert!(out.status.success(), "{out:?}");
    fn count(p: &Path) -> usize {
        std::fs::read_dir(p)
            .map(|d| {
                d.flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => count(&e.path()),
                        _ => usize::from(e.path().extension().is_some_and(|x| x == "object")),
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        count(&dir.join("hsm")),
    )
}

/// The details of the newest audit event `action`.
fn last_details(rt: &tokio::runtime::Runtime, db: &tokio_postgres::Client, action: &str) -> Value {
    let row = rt
        .block_on(db.query_one(
            "SELECT details FROM audit_log WHERE action = $1 ORDER BY seq DESC LIMIT 1",
            &[&action],
        ))
        .unwrap();
    serde_json::from_str(row.get(0)).unwrap()
}

/// The HSM labels of the public keys `hsm_objects` lists.
/// Delete the public half of key pair `label` in the centre's token (a public object: no
/// login), as a destroy cut short between the two objects leaves it.
fn delete_public_half(dir: &Path, label: &str) {
    let out = Command::new("pkcs11-tool")
        .args([
            "--module",
            "/usr/lib/softhsm/libsofthsm2.so",
            "--token-label",
            "idcentral",
            "--delete-object",
            "--type",
            "pubkey",
            "--label",
            label,
        ])
        .env("SOFTHSM2_CONF", dir.join("hsm/softhsm2.conf"))
        .output()
        .expect("pkcs11-tool (opensc) is required");
    assert!(out.status.success(), "{out:?}");
}

fn hsm_labels(dir: &Path) -> Vec<String> {
    hsm_objects(dir)
        .0
        .lines()
        .filter_map(|l| l.trim().strip_prefix("label:"))
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The e-Signature CA's responder was certified again at the start of `serve --public-only` for
/// a new key (`ocsp-esign-ca-1-k2`, audited as replacing `ocsp-esign-ca-1`); once the old key's
/// certificate has ended, the next `serve` destroys it in the HSM and records it, a replaced key
/// the HSM no longer has is recorded as not removed, and the new responder signs.
fn responder_key_replaced_then_destroyed(
    rt: &tokio::runtime::Runtime,
    db: &tokio_postgres::Client,
    dir: &Path,
    config: &Path,
    pw: &str,
) {
    let rows = rt
        .block_on(db.query(
            "SELECT key_label, cert_der FROM ocsp_responders WHERE ca_key = 'esign-ca-1'
             ORDER BY not_after DESC",
            &[],
        ))
        .unwrap();
    let labels: Vec<&str> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(labels, ["ocsp-esign-ca-1-k2", "ocsp-esign-ca-1"]);
    let spki = |der: Vec<u8>| {
        let info = ca::CertInfo::parse(&der).unwrap();
        (info.subject, ca::certificate_spki(&der).unwrap())
    };
    let (new, old) = (spki(rows[0].get(1)), spki(rows[1].get(1)));
    assert_eq!(new.0, old.0, "the same responder name");
    assert_ne!(new.1, old.1, "a new key");
    let replaces = last_details(rt, db, "ocsp.responder-certified");
    assert_eq!(
        (replaces["key"].as_str(), replaces["replaces"].as_str()),
        (Some("ocsp-esign-ca-1-k2"), Some("ocsp-esign-ca-1"))
    );
    let held = hsm_labels(dir);
    for l in ["ocsp-esign-ca-1", "ocsp-esign-ca-1-k2"] {
        assert!(held.iter().any(|h| h == l), "{l} not in {held:?}");
    }
    let services = || -> Value {
        serde_json::from_str(&ok(idcentral(
            config,
            &["--json", "ca", "services", "--operator", "admin"],
            pw,
        )))
        .unwrap()
    };
    let replaced = &services()["ocsp_replaced_keys"];
    assert_eq!(replaced[0]["key"], "ocsp-esign-ca-1", "{replaced}");
    assert!(replaced[0]["destroyed_at"].is_null(), "{replaced}");

    // The old key's certificate ends; a replaced key of the root's that the HSM does not have
    // (its removal not recorded, as after a crash) ended yesterday.
    rt.block_on(db.batch_execute(
        "UPDATE ocsp_responders SET not_after = now() - interval '1 second'
           WHERE key_label = 'ocsp-esign-ca-1';
         INSERT INTO ocsp_responders (ca_key, key_label, serial, cert_der, not_after)
           SELECT ca_key, 'ocsp-root-ca-1-k9', '\x4242', cert_der, now() - interval '1 day'
           FROM ocsp_responders WHERE ca_key = 'root-ca-1'",
    ))
    .unwrap();
    let (mut only, addr) = start_public_only(config, Stdio::inherit());
    let destroyed = |rt: &tokio::runtime::Runtime| -> Vec<Value> {
        rt.block_on(db.query(
            "SELECT details FROM audit_log WHERE action = 'ocsp.responder-key-destroyed'
             ORDER BY seq",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(r.get(0)).unwrap())
        .collect()
    };
    let start = Instant::now();
    while destroyed(rt).len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            destroyed(rt)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut events: Vec<(String, bool)> = destroyed(rt)
        .iter()
        .map(|d| {
            (
                d["key"].as_str().unwrap().to_owned(),
                d["removed_from_hsm"].as_bool().unwrap(),
            )
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            ("ocsp-esign-ca-1".to_owned(), true),
            ("ocsp-root-ca-1-k9".to_owned(), false)
        ]
    );
    let held = hsm_labels(dir);
    assert!(!held.iter().any(|h| h == "ocsp-esign-ca-1"), "{held:?}");
    assert!(held.iter().any(|h| h == "ocsp-esign-ca-1-k2"), "{held:?}");
    let left: i64 = rt
        .block_on(db.query_one(
            "SELECT count(*) FROM ocsp_responders WHERE destroyed_at IS NULL
               AND key_label IN ('ocsp-esign-ca-1', 'ocsp-root-ca-1-k9')",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    // The current responder signs an answer made on demand; verified through its certificate.
    let (out, _) = ocsp_until(
        dir,
        &format!("http://{addr}/ocsp"),
        &["-serial", "0x4343434343434343"],
        "unknown",
        Duration::from_secs(5),
    );
    assert!(out.contains("Response verify OK"), "{out}");
    let _ = only.kill();
    let _ = only.wait();
    let replaced = &services()["ocsp_replaced_keys"];
    assert!(
        replaced
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["destroyed_at"].is_string()),
        "{replaced}"
    );
    let text = ok(idcentral(
        config,
        &["ca", "services", "--operator", "admin"],
        pw,
    ));
    assert!(
        text.contains("Replaced OCSP responder keys destroyed: 2")
            && text.contains("key ocsp-esign-ca-1-k2"),
        "{text}"
    );
}

/// The key deletion ceremony: a retired TSA key whose usage period is over is destroyed in the
/// HSM when a second ca-admin approves the first one's request; the active key, a key that may
/// still sign and an unknown key are refused (and the refusals audited); the token the destroyed
/// key signed still verifies with its certificate, which `ca services` keeps showing.
fn tsa_key_destroyed_under_dual_control(
    rt: &tokio::runtime::Runtime,
    db: &tokio_postgres::Client,
    dir: &Path,
    config: &Path,
) {
    let as_op = |args: &[&str], who: &str| as_operator(config, args, who, &[]);
    let destroy = |key: &str| as_op(&["--json", "ca", "destroy-tsa-key", "--key", key], "admin");
    refused(
        &destroy("centre-tsa-4"),
        5,
        "centre-tsa-4 is active: only a retired key",
    );
    refused(
        &destroy("centre-tsa-3"),
        5,
        "centre-tsa-3 may still sign until 20",
    );
    refused(
        &destroy("centre-tsa-9"),
        2,
        "no time-stamping key centre-tsa-9",
    );
    let attempts: i64 = rt
        .block_on(db.query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'ca.request.refused-attempt'
             AND object LIKE 'tsa:%'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(attempts, 3);

    // centre-tsa-3's usage period over: filed by admin, not approvable by admin, approved by
    // admin2, which destroys it.
    rt.block_on(db.execute(
        "UPDATE tsa_keys SET key_usage_until = now() - interval '1 second' WHERE label = 'centre-tsa-3'",
        &[],
    ))
    .unwrap();
    let (before, objects_before) = hsm_objects(dir);
    assert!(before.contains("label:      centre-tsa-3"), "{before}");
    let filed: Value = serde_json::from_str(&ok(destroy("centre-tsa-3"))).unwrap();
    assert_eq!(
        (
            filed["kind"].as_str(),
            filed["ca"].as_str(),
            filed["from_key"].as_str()
        ),
        (Some("destroy-tsa-key"), Some("tsa"), Some("centre-tsa-3")),
        "{filed}"
    );
    let id = filed["id"].as_i64().unwrap().to_string();
    refused(&as_op(&["ca", "approve", &id], "admin"), 6, "dual control");
    assert!(hsm_objects(dir).0.contains("label:      centre-tsa-3"));
    let done = ok(as_op(&["ca", "approve", &id], "admin2"));
    assert!(
        done.contains("time-stamping key centre-tsa-3 destroyed in the HSM")
            && done.contains("requested by admin, approved by admin2"),
        "{done}"
    );
    let (after, objects_after) = hsm_objects(dir);
    assert!(
        !after.contains("centre-tsa-3") && after.contains("label:      centre-tsa-4"),
        "{after}"
    );
    assert_eq!(
        objects_after + 2,
        objects_before,
        "its private and public key objects"
    );
    let details: String = rt
        .block_on(db.query_one(
            "SELECT details FROM audit_log WHERE action = 'tsa.key-destroyed'",
            &[],
        ))
        .unwrap()
        .get(0);
    let details: Value = serde_json::from_str(&details).unwrap();
    assert_eq!(
        (
            details["key"].as_str(),
            details["requested_by"].as_str(),
            details["approved_by"].as_str(),
            details["removed_from_hsm"].as_bool()
        ),
        (
            Some("centre-tsa-3"),
            Some("admin"),
            Some("admin2"),
            Some(true)
        ),
        "{details}"
    );
    refused(
        &destroy("centre-tsa-3"),
        5,
        "centre-tsa-3 was destroyed already",
    );
    // Its token verifies with the certificate kept (r4.tsr: centre-tsa-3's, tsa-new.pem).
    let (verified, out) = ts_verify(dir, "r4.tsr", "q3.tsq", Some("tsa-new.pem"));
    assert!(verified && out.contains("Verification: OK"), "{out}");
    let services = ok(as_op(&["ca", "services"], "admin2"));
    assert!(
        services.contains("centre-tsa-3  retired ")
            && services.contains(", key destroyed 20")
            && services.contains("key in the HSM: destroy it by 20"),
        "{services}"
    );
    let listed = ok(as_op(&["ca", "requests"], "admin"));
    assert!(
        listed.contains("executed destroy-tsa-key tsa  centre-tsa-3"),
        "{listed}"
    );

    // centre-tsa-2, its usage over, recorded with another key's certificate: the execution
    // finds the HSM's key is not the certificate's, destroys nothing and ends the request
    // `failed` (audited), so that another may be filed.
    let sql = |q: &str| rt.block_on(db.batch_execute(q)).unwrap();
    sql(
        "CREATE TABLE test_cert AS SELECT cert_der FROM tsa_keys WHERE label = 'centre-tsa-2';
         UPDATE tsa_keys SET key_usage_until = now() - interval '1 second',
             cert_der = (SELECT cert_der FROM tsa_keys WHERE label = 'centre-tsa-4')
         WHERE label = 'centre-tsa-2'",
    );
    let filed: Value = serde_json::from_str(&ok(destroy("centre-tsa-2"))).unwrap();
    let id = filed["id"].as_i64().unwrap().to_string();
    refused(
        &as_op(&["ca", "approve", &id], "admin2"),
        5,
        "the key centre-tsa-2 in the HSM is not the one its certificate certifies; nothing was destroyed",
    );
    assert!(hsm_objects(dir).0.contains("label:      centre-tsa-2"));
    let state = |q: &str| -> String { rt.block_on(db.query_one(q, &[])).unwrap().get(0) };
    assert_eq!(
        state(&format!("SELECT state FROM ca_requests WHERE id = {id}")),
        "failed"
    );
    assert!(
        state("SELECT details FROM audit_log WHERE action = 'ca.request.failed'")
            .contains("not the one its certificate certifies")
    );
    sql(
        "UPDATE tsa_keys SET cert_der = (SELECT cert_der FROM test_cert)
         WHERE label = 'centre-tsa-2'; DROP TABLE test_cert",
    );

    // A crash right after the HSM destroyed the key: `ca recover` finishes the record from the
    // request's journal, once (the HSM no longer has the key).
    let filed: Value = serde_json::from_str(&ok(destroy("centre-tsa-2"))).unwrap();
    let id = filed["id"].as_i64().unwrap().to_string();
    let killed = as_operator(
        config,
        &["ca", "approve", &id],
        "admin2",
        &[("IDCENTRAL_FAILPOINT", "destroy.hsm-done")],
    );
    assert_eq!(killed.status.code(), None, "killed: {}", text(&killed));
    assert!(!hsm_objects(dir).0.contains("centre-tsa-2"));
    assert_eq!(
        state(&format!("SELECT state FROM ca_requests WHERE id = {id}")),
        "approved"
    );
    let recovered = ok(as_op(&["ca", "recover"], "admin"));
    assert!(
        recovered.contains("time-stamping key centre-tsa-2 destroyed in the HSM")
            && recovered.contains("the HSM no longer had it"),
        "{recovered}"
    );
    assert_eq!(
        ok(as_op(&["ca", "recover"], "admin")),
        "Nothing to recover\n"
    );
    let events: Vec<Value> = rt
        .block_on(db.query(
            "SELECT details FROM audit_log WHERE action = 'tsa.key-destroyed' ORDER BY seq",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (
            events[1]["key"].as_str(),
            events[1]["removed_from_hsm"].as_bool()
        ),
        (Some("centre-tsa-2"), Some(false))
    );
}

#[test]
fn ocsp_crl_ca_and_tsa_answer_relying_parties_over_plain_http() {
    let public = free_port();
    let base = format!("http://{public}");
    let (tmp, cluster, config) = centre(&format!(
        "\n[server]\npublic_name = \"localhost\"\n\n[public]\nbase_url = \"{base}\"\nocsp_validity_seconds = 60\n"
    ));
    let dir = tmp.path();
    let pw = format!("{ADMIN_PASSWORD}\n");
    let init = ["init", "--admin", "admin", "--second-admin", "admin2"];
    ok(idcentral(
        &config,
        &init,
        &format!("{ADMIN_PASSWORD}\n{ADMIN2_PASSWORD}\n"),
    ));
    let code = add_station(&config, "tas01-st1");
    let rt = test_runtime();
    let db = rt.block_on(db(&cluster));
    let ca_cert = |ca: &str| -> Vec<u8> {
        rt.block_on(db.query_one(
            "SELECT cert_der FROM ca_keys WHERE ca = $1 AND state = 'active'",
            &[&ca],
        ))
        .unwrap()
        .get(0)
    };
    let (root, esign, station_ca) = (ca_cert("root"), ca_cert("esign"), ca_cert("station-ca"));
    // init made a responder for every CA key and the TSA, and audited them.
    let responders: i64 = rt
        .block_on(db.query_one("SELECT count(*) FROM ocsp_responders", &[]))
        .unwrap()
        .get(0);
    assert_eq!(responders, 4);
    let actions = rt.block_on(audit_actions(&db));
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "ocsp.responder-certified")
            .count(),
        4
    );
    assert!(actions.iter().any(|a| a == "tsa.certified"), "{actions:?}");

    // A centre that has the keys in its HSM but no certificates recorded for them (as after a
    // database restore) gets its responders certified again by `serve`, with the keys it has.
    rt.block_on(db.batch_execute("DELETE FROM ocsp_responders; DELETE FROM tsa_keys"))
        .unwrap();
    let server = Centre::start(&config, public);
    let count = |sql: &str| -> i64 { rt.block_on(db.query_one(sql, &[])).unwrap().get(0) };
    assert_eq!(count("SELECT count(*) FROM ocsp_responders"), 4);
    // The TSA key in the HSM without a row is not certified again (after a database restore it
    // may have signed tokens the registry no longer knows): centre-tsa-2 is made.
    assert_eq!(count("SELECT count(*) FROM tsa_keys"), 1);
    assert_eq!(
        count("SELECT count(*) FROM tsa_keys WHERE label = 'centre-tsa-2' AND state = 'active'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM audit_log WHERE action = 'ocsp.responder-certified'"),
        8
    );

    // A station enrols and issues a card: two holder certificates of the e-Signature CA.
    let station = Station::new("rp-st1");
    let anon = client_config(&station_ca, None);
    let call = |tls: &Arc<rustls::ClientConfig>, method: &str, path: &str, body: &Value| {
        let (status, v, _) = rt
            .block_on(https(
                server.api,
                "localhost",
                Arc::clone(tls),
                method,
                path,
                Some(body),
            ))
            .unwrap();
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    };
    let resp: EnrolResponse = serde_json::from_value(call(
        &anon,
        "POST",
        "/v1/enrol",
        &station.enrol_request("tas01-st1", &code),
    ))
    .unwrap();
    let id = identity(&station.store, "identity", der_of_pem(&resp.identity_cert));
    let tls = client_config(&station_ca, Some(id));
    let job = new_job();
    let holder = json!({ "pinfl": "31234567890123", "surname": "Karimova", "given_names": "Dilnoza",
        "patronymic": null, "surname_cyrillic": null, "given_names_cyrillic": null,
        "patronymic_cyrillic": null, "sex": "F", "date_of_birth": "1990-04-12",
        "place_of_birth": "Tashkent", "citizenship": "UZB", "photo_sha256": null });
    let address = json!({ "kind": "permanent", "region": "Toshkent", "district": "Yunusobod",
        "street": "Amir Temur 1", "house": "12", "apartment": null,
        "registered_on": "2015-06-01", "registered_until": null });
    let r: ReserveResponse = serde_json::from_value(call(
        &tls,
        "POST",
        "/v1/jobs/reserve",
        &json!({ "job": job, "operator": "clerk1", "holder": holder, "address": address,
                 "update_holder": false, "card_serial": testrig::egov::card_of(&job) }),
    ))
    .unwrap();
    let c: CertifyResponse = serde_json::from_value(call(
        &tls,
        "POST",
        &centre_api::paths::certify(&job),
        &json!({ "operator": "clerk1", "keys": [
            card_key(&job, &r.challenge, 0x9a, "holder-auth"),
            card_key(&job, &r.challenge, 0x9c, "holder-sign")] }),
    ))
    .unwrap();
    call(
        &tls,
        "POST",
        &centre_api::paths::complete(&job),
        &json!({ "operator": "clerk1", "card_serial": testrig::egov::card_of(&job),
                 "date_of_issue": "2026-12-02", "date_of_expiry": "2036-12-01" }),
    );
    let sign = c.certificates.iter().find(|x| x.slot == "9C").unwrap();
    std::fs::write(
        dir.join("holder.pem"),
        pem(&hex::decode(&sign.der).unwrap()),
    )
    .unwrap();
    std::fs::write(dir.join("esign.pem"), pem(&esign)).unwrap();
    std::fs::write(dir.join("root.pem"), pem(&root)).unwrap();
    std::fs::write(dir.join("chain.pem"), pem(&root) + &pem(&esign)).unwrap();

    // The holder certificate names the public services (AIA OCSP and caIssuers, CDP).
    let (_, text) = tool(
        dir,
        "openssl",
        &["x509", "-in", "holder.pem", "-noout", "-text"],
    );
    for url in [
        format!("OCSP - URI:{base}/ocsp"),
        format!("CA Issuers - URI:{base}/ca/esign-ca-1.cer"),
        format!("URI:{base}/crl/esign-ca-1.crl"),
    ] {
        assert!(text.contains(&url), "{url} not in\n{text}");
    }

    // OCSP over POST: good, the delegated responder's signature verified by openssl.
    let url = format!("{base}/ocsp");
    let (out, _) = ocsp_until(
        dir,
        &url,
        &["-cert", "holder.pem"],
        "holder.pem: good",
        Duration::from_secs(10),
    );
    assert!(out.contains("Response verify OK"), "{out}");
    // The response signed ahead of time is stored (the queue was drained).
    let serial = hex::decode(&sign.serial).unwrap();
    type Signed = (std::time::SystemTime, std::time::SystemTime);
    let stored_at = |db: &tokio_postgres::Client| -> Option<Signed> {
        rt.block_on(db.query_opt(
            "SELECT produced_at, next_update FROM ocsp_responses WHERE serial = $1 AND status = 'good'",
            &[&serial],
        ))
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
    };
    let start = Instant::now();
    let first_signed = loop {
        let queued: i64 = rt
            .block_on(db.query_one("SELECT count(*) FROM relying_party_queue", &[]))
            .unwrap()
            .get(0);
        if let Some(t) = stored_at(&db).filter(|_| queued == 0) {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no stored response"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        first_signed.1.duration_since(first_signed.0).unwrap(),
        Duration::from_secs(60),
        "nextUpdate = thisUpdate + ocsp_validity_seconds"
    );

    // OCSP over GET (RFC 5019 §5): the base64 of the DER request in the path, with the caching
    // headers of the response's validity.
    let (built, o) = tool(
        dir,
        "openssl",
        &[
            "ocsp",
            "-issuer",
            "esign.pem",
            "-cert",
            "holder.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
    );
    assert!(built, "{o}");
    let req = std::fs::read(dir.join("req.der")).unwrap();
    use base64ct::Encoding;
    let b64 = base64ct::Base64::encode_string(&req)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let (status, headers, body) =
        rt.block_on(http(public, "GET", &format!("/ocsp/{b64}"), None, vec![]));
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        "application/ocsp-response"
    );
    assert!(
        header(&headers, "cache-control").starts_with("max-age="),
        "{headers:?}"
    );
    assert!(header(&headers, "cache-control").contains("public, no-transform, must-revalidate"));
    assert!(header(&headers, "etag").starts_with('"'));
    assert!(header(&headers, "last-modified").ends_with(" GMT"));
    assert!(header(&headers, "expires").ends_with(" GMT"));
    std::fs::write(dir.join("get.der"), &body).unwrap();
    let (_, out) = tool(
        dir,
        "openssl",
        &[
            "ocsp",
            "-respin",
            "get.der",
            "-issuer",
            "esign.pem",
            "-cert",
            "holder.pem",
            "-CAfile",
            "chain.pem",
            "-no_nonce",
        ],
    );
    assert!(
        out.contains("holder.pem: good") && out.contains("Response verify OK"),
        "{out}"
    );
    // The same request answered twice is the same stored response.
    let (_, again, body2) = rt.block_on(http(public, "GET", &format!("/ocsp/{b64}"), None, vec![]));
    assert_eq!(
        (header(&again, "etag"), &body2),
        (header(&headers, "etag"), &body)
    );

    // A cache revalidates by the ETag: 304 without a body. A path that is not base64 is a
    // malformedRequest.
    let etag = header(&headers, "etag").to_owned();
    let (status, not_modified, body3) = rt.block_on(http_with(
        public,
        &format!("/ocsp/{b64}"),
        &[("if-none-match", etag.as_str())],
    ));
    assert_eq!((status, body3.len()), (304, 0));
    assert_eq!(header(&not_modified, "etag"), etag);
    let (status, _, body4) = rt.block_on(http(public, "GET", "/ocsp/not*base64", None, vec![]));
    assert_eq!(
        (status, body4.as_slice()),
        (200, &[0x30, 0x03, 0x0a, 0x01, 0x01][..])
    );

    // The responder certificate: OCSPSigning, ocsp-nocheck, issued by the e-Signature CA.
    let (_, text) = tool(
        dir,
        "openssl",
        &["ocsp", "-respin", "get.der", "-resp_text", "-noverify"],
    );
    assert!(
        text.contains("OCSP Signing") && text.contains("OCSP No Check"),
        "{text}"
    );
    assert!(
        text.contains("idstation OCSP responder esign-ca-1"),
        "{text}"
    );

    // A serial the CA never issued: unknown (never good).
    let (out, _) = ocsp_until(
        dir,
        &url,
        &["-serial", "0x4242424242424242"],
        "unknown",
        Duration::from_secs(5),
    );
    assert!(out.contains("Response verify OK"), "{out}");
    // A CA that is not the centre's: unauthorized. Garbage: malformedRequest.
    let (made, o) = tool(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-subj",
            "/CN=another CA",
            "-days",
            "2",
        ],
    );
    assert!(made, "{o}");
    let (_, out) = tool(
        dir,
        "openssl",
        &[
            "ocsp",
            "-issuer",
            "other.pem",
            "-serial",
            "7",
            "-url",
            &url,
            "-no_nonce",
        ],
    );
    assert!(out.contains("unauthorized"), "{out}");
    let (status, _, body) = rt.block_on(http(
        public,
        "POST",
        "/ocsp",
        Some("application/ocsp-request"),
        b"not an OCSP request".to_vec(),
    ));
    // OCSPResponse { responseStatus malformedRequest (1) }
    assert_eq!(
        (status, body.as_slice()),
        (200, &[0x30, 0x03, 0x0a, 0x01, 0x01][..])
    );

    // The CA certificate and the CRL (no entry yet) are served.
    let (status, headers, body) =
        rt.block_on(http(public, "GET", "/ca/esign-ca-1.cer", None, vec![]));
    assert_eq!((status, body), (200, esign.clone()));
    assert_eq!(header(&headers, "content-type"), "application/pkix-cert");
    let (status, _, body) = rt.block_on(http(public, "GET", "/ca/esign-ca-1.crt", None, vec![]));
    assert_eq!((status, body), (200, esign.clone()));
    let (status, _, _) = rt.block_on(http(public, "GET", "/ca/nobody.cer", None, vec![]));
    assert_eq!(status, 404);

    // Refreshed before nextUpdate: with 60 s of validity, the response is signed again once less
    // than 30 s are left (polled; the worker looks every 15 s).
    let start = Instant::now();
    loop {
        let now = stored_at(&db).expect("still stored, still good");
        if now.0 > first_signed.0 {
            assert!(now.1 > first_signed.1, "{now:?} after {first_signed:?}");
            assert!(now.0 < first_signed.1, "signed again only after nextUpdate");
            let age = now.0.duration_since(first_signed.0).unwrap();
            assert!(
                age >= Duration::from_secs(29),
                "signed again after {age:?}: not the refresh"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(75),
            "never signed again"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The stored response is answered from memory, and memory follows the database.
    let auth = c.certificates.iter().find(|x| x.slot == "9A").unwrap();
    let auth_serial = hex::decode(&auth.serial).unwrap();
    memory_follows_the_database(&rt, &db, public, &b64, &serial, &auth_serial);

    // A CA key this instance cannot load (its HSM key missing: left out of the issuers, so it
    // has no responder) with more urgent items queued than one batch takes: they are put back
    // at the end of the queue, not urgent, and neither block the revocation below nor are
    // dropped while the CA certificate is valid.
    rt.block_on(db.batch_execute(
        "INSERT INTO ca_keys (label, ca, state, cert_der)
           SELECT 'ghost-ca', 'esign', 'retired', cert_der FROM ca_keys WHERE label = 'esign-ca-1';
         INSERT INTO relying_party_queue (kind, issuer_key, serial, urgent, queued_at)
           SELECT 'ocsp', 'ghost-ca', int4send(n), true, clock_timestamp() - interval '1 hour'
           FROM generate_series(1, 70) n",
    ))
    .unwrap();
    let ghosts = |urgent: bool| -> i64 {
        rt.block_on(db.query_one(
            "SELECT count(*) FROM relying_party_queue
             WHERE issuer_key = 'ghost-ca' AND kind = 'ocsp' AND urgent = $1",
            &[&urgent],
        ))
        .unwrap()
        .get(0)
    };

    // Revocation: `revoked` (with the reason) within 2 seconds, asked for as a relying party
    // would, and the CRL lists the serial within seconds too.
    let revoked_at = Instant::now();
    call(
        &tls,
        "POST",
        "/v1/documents/AA0000001/revoke",
        &json!({ "operator": "clerk1", "reason": "lost" }),
    );
    let (out, _) = ocsp_until(
        dir,
        &url,
        &["-cert", "holder.pem"],
        "holder.pem: revoked",
        Duration::from_secs(10),
    );
    let took = revoked_at.elapsed();
    eprintln!("OCSP answered revoked {took:?} after the revoke request was sent");
    assert!(took < Duration::from_secs(2), "revoked only after {took:?}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ghosts(true) > 0 {
        assert!(
            Instant::now() < deadline,
            "the unsignable items were not deferred"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ghosts(false), 70, "deferred, not dropped");
    let mut cleared = false;
    for _ in 0..5 {
        cleared = rt
            .block_on(db.batch_execute(
                "BEGIN; DELETE FROM relying_party_queue WHERE issuer_key = 'ghost-ca';
                 DELETE FROM ca_keys WHERE label = 'ghost-ca'; COMMIT;",
            ))
            .is_ok();
        if cleared {
            break;
        }
        rt.block_on(db.batch_execute("ROLLBACK")).ok();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cleared, "the test's ghost CA key removed");
    let start = Instant::now();
    let crl_text = loop {
        let (status, headers, body) =
            rt.block_on(http(public, "GET", "/crl/esign-ca-1.crl", None, vec![]));
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-type"), "application/pkix-crl");
        // Kept by caches an hour at most, though valid 48 hours: a revocation re-signs it.
        let max_age: u64 = header(&headers, "cache-control")
            .strip_prefix("max-age=")
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!((3500..=3600).contains(&max_age), "{headers:?}");
        std::fs::write(dir.join("esign.crl"), &body).unwrap();
        let (verified, text) = tool(
            dir,
            "openssl",
            &[
                "crl",
                "-in",
                "esign.crl",
                "-inform",
                "DER",
                "-CAfile",
                "chain.pem",
                "-noout",
                "-text",
            ],
        );
        assert!(verified && text.contains("verify OK"), "{text}");
        if text.contains(&sign.serial.to_uppercase()) {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the CRL never listed the serial:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(crl_text.contains("Key Compromise"), "{crl_text}");

    // Time-stamps: openssl ts -verify accepts the token against the National Root.
    std::fs::write(dir.join("data.txt"), b"a signed PDF's signature value").unwrap();
    let (made, o) = tool(
        dir,
        "openssl",
        &[
            "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "q.tsq",
        ],
    );
    assert!(made, "{o}");
    let (status, headers, body) = post_tsa(&rt, public, dir, "q.tsq");
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        "application/timestamp-reply"
    );
    std::fs::write(dir.join("r.tsr"), &body).unwrap();
    let (verified, out) = ts_verify(dir, "r.tsr", "q.tsq", None);
    assert!(verified && out.contains("Verification: OK"), "{out}");
    let (_, text) = tool(dir, "openssl", &["ts", "-reply", "-in", "r.tsr", "-text"]);
    assert!(text.contains("1.3.6.1.4.1.32473.1.5.1"), "{text}");
    assert!(text.contains("Accuracy: 0x01 seconds"), "{text}");
    // A second token has another serial number; both are recorded.
    let (_, _, body2) = post_tsa(&rt, public, dir, "q.tsq");
    std::fs::write(dir.join("r2.tsr"), &body2).unwrap();
    let (_, text2) = tool(dir, "openssl", &["ts", "-reply", "-in", "r2.tsr", "-text"]);
    let serial_of = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("Serial number:"))
            .unwrap()
            .to_owned()
    };
    assert_ne!(serial_of(&text), serial_of(&text2));
    let tokens: i64 = rt
        .block_on(db.query_one("SELECT count(*) FROM tsa_tokens", &[]))
        .unwrap()
        .get(0);
    assert_eq!(tokens, 2);
    // Another data file does not verify against the token; a request of another kind is refused.
    std::fs::write(dir.join("other.txt"), b"something else").unwrap();
    let (verified, out) = tool(
        dir,
        "openssl",
        &[
            "ts",
            "-verify",
            "-in",
            "r.tsr",
            "-data",
            "other.txt",
            "-CAfile",
            "root.pem",
        ],
    );
    assert!(!verified, "{out}");
    let (status, _, body) = rt.block_on(http(
        public,
        "POST",
        "/tsa",
        Some("application/json"),
        b"{}".to_vec(),
    ));
    std::fs::write(dir.join("bad.tsr"), &body).unwrap();
    let (_, text) = tool(dir, "openssl", &["ts", "-reply", "-in", "bad.tsr", "-text"]);
    assert_eq!(status, 200);
    assert!(
        text.contains("Status: Rejected")
            && text.contains("Content-Type")
            && text.contains("transaction not permitted or supported"),
        "{text}"
    );
    // A request carrying an extension the TSA does not know (any; here one under the RFC 5612
    // documentation arc): refused unacceptedExtension, no token recorded (RFC 3161 §2.4.1).
    {
        use x509_cert_02::der::{Decode, Encode};
        let mut req =
            x509_tsp::TimeStampReq::from_der(&std::fs::read(dir.join("q.tsq")).unwrap()).unwrap();
        req.extensions = Some(vec![x509_cert_02::ext::Extension {
            extn_id: "1.3.6.1.4.1.32473.1.99".parse().unwrap(),
            critical: false,
            extn_value: x509_cert_02::der::asn1::OctetString::new(vec![0x05, 0x00]).unwrap(),
        }]);
        std::fs::write(dir.join("ext.tsq"), req.to_der().unwrap()).unwrap();
    }
    let (status, _, body) = post_tsa(&rt, public, dir, "ext.tsq");
    std::fs::write(dir.join("ext.tsr"), &body).unwrap();
    let (_, text) = tool(dir, "openssl", &["ts", "-reply", "-in", "ext.tsr", "-text"]);
    assert_eq!(status, 200);
    assert!(
        text.contains("Status: Rejected")
            && text.contains("the requested extension is not supported by the TSA"),
        "{text}"
    );
    let tokens: i64 = rt
        .block_on(db.query_one("SELECT count(*) FROM tsa_tokens", &[]))
        .unwrap()
        .get(0);
    assert_eq!(tokens, 2, "a refused request records no token");

    // pkilint finds nothing at WARNING or above in the responder and TSA certificates, the CRL
    // and the OCSP responses (good and revoked).
    let stored = |sql: &str| -> Vec<u8> { rt.block_on(db.query_one(sql, &[])).unwrap().get(0) };
    std::fs::write(
        dir.join("responder.pem"),
        pem(&stored(
            "SELECT cert_der FROM ocsp_responders WHERE ca_key = 'esign-ca-1'",
        )),
    )
    .unwrap();
    std::fs::write(
        dir.join("tsa.pem"),
        pem(&stored(
            "SELECT cert_der FROM tsa_keys WHERE state = 'active'",
        )),
    )
    .unwrap();
    let revoked_der: Vec<u8> = rt
        .block_on(db.query_one(
            "SELECT response_der FROM ocsp_responses WHERE serial = $1",
            &[&serial],
        ))
        .unwrap()
        .get(0);
    std::fs::write(dir.join("revoked.der"), revoked_der).unwrap();
    for (lint, args, file) in [
        ("lint_pkix_cert", &[][..], "responder.pem"),
        ("lint_pkix_cert", &[][..], "tsa.pem"),
        ("lint_crl", &["-t", "CRL", "-p", "PKIX"][..], "esign.crl"),
        ("lint_ocsp_response", &[][..], "get.der"),
        ("lint_ocsp_response", &[][..], "revoked.der"),
    ] {
        let mut all = vec!["lint"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-s", "WARNING", file]);
        let (clean, out) = tool(dir, lint, &all);
        assert!(clean, "{lint} {file}: findings at WARNING or above:\n{out}");
    }

    // `serve --public-only` (a host of its own on the same database and HSM) answers the same.
    // Its start rolls a responder with less than a third of its validity left: the e-Signature
    // CA's, recorded to end tomorrow, gets a new certificate for a new key (checked, with the
    // old key's destruction, in `responder_key_replaced_then_destroyed`).
    rt.block_on(db.execute(
        "UPDATE ocsp_responders SET not_after = now() + interval '1 day' WHERE ca_key = 'esign-ca-1'",
        &[],
    ))
    .unwrap();
    // It also rolls the time-stamping key over when a twelfth of its usage period is left: the
    // key's period recorded to end tomorrow.
    rt.block_on(db.execute(
        "UPDATE tsa_keys SET key_usage_until = now() + interval '1 day' WHERE state = 'active'",
        &[],
    ))
    .unwrap();
    let (mut only, addr) = start_public_only(&config, Stdio::inherit());
    assert_eq!(
        count("SELECT count(*) FROM ocsp_responders WHERE ca_key = 'esign-ca-1'"),
        2
    );
    tsa_rolled_over(&rt, &db, dir, addr);
    // `ca services` shows it to a ca-admin: the active key with when it rolls, the retired one.
    let services: Value = serde_json::from_str(&ok(idcentral(
        &config,
        &["--json", "ca", "services", "--operator", "admin"],
        &pw,
    )))
    .unwrap();
    let tsa = services["tsa_keys"].as_array().unwrap();
    assert_eq!(
        (tsa[0]["key"].as_str(), tsa[0]["state"].as_str()),
        (Some("centre-tsa-3"), Some("active"))
    );
    assert!(tsa[0]["rolls_from"].as_str().unwrap() < tsa[0]["key_usage_until"].as_str().unwrap());
    assert_eq!(
        (tsa[1]["key"].as_str(), tsa[1]["rolls_from"].as_str()),
        (Some("centre-tsa-2"), None)
    );
    assert!(tsa[1]["retired_at"].is_string(), "{services}");
    assert_eq!(services["ocsp_responders"].as_array().unwrap().len(), 4);
    let text = ok(idcentral(
        &config,
        &["ca", "services", "--operator", "admin"],
        &pw,
    ));
    assert!(
        text.contains("centre-tsa-3  active, rolls over from") && text.contains("OCSP responders"),
        "{text}"
    );
    assert_eq!(
        count("SELECT count(*) FROM audit_log WHERE action = 'ocsp.responder-certified'"),
        9
    );
    let only_url = format!("http://{addr}/ocsp");
    let (out, _) = ocsp_until(
        dir,
        &only_url,
        &["-cert", "holder.pem"],
        "holder.pem: revoked",
        Duration::from_secs(10),
    );
    assert!(out.contains("Response verify OK"), "{out}");
    let (status, _, body) = rt.block_on(http(addr, "GET", "/ca/root-ca-1.cer", None, vec![]));
    assert_eq!((status, body), (200, root.clone()));
    // Both processes keep the revoked response in memory; a change to the row reaches both.
    for a in [public, addr] {
        get_until_stored(&rt, &db, a, &b64, &serial, Duration::from_secs(5));
    }
    rt.block_on(db.execute(
        "UPDATE ocsp_responses SET response_der =
           (SELECT response_der FROM ocsp_responses WHERE serial = $2) WHERE serial = $1",
        &[&serial, &auth_serial],
    ))
    .unwrap();
    for a in [public, addr] {
        get_until_stored(&rt, &db, a, &b64, &serial, Duration::from_secs(2));
    }
    let _ = only.kill();
    let _ = only.wait();
    drop(server);
    // With no other instance running (whose worker would try the same rollover).
    tsa_rollover_fails_softly(&rt, &db, dir, &config, &pw);
    tsa_key_destroyed_under_dual_control(&rt, &db, dir, &config);
    responder_key_replaced_then_destroyed(&rt, &db, dir, &config, &pw);
}

/// The CSCA Master List (ICAO Doc 9303-12 §9): `init` signs one with a Master List Signer the
/// CSCA certified; `/ca/csca-master-list.ml` serves it and `openssl cms -verify` accepts it
/// against the CSCA; `ca master-list --out` writes the same bytes (0600, never over a file).
/// After a CSCA rotation the next `serve` certifies a new signer under the new CSCA key and
/// signs a list of both CSCA certificates and their link certificate, which verifies to the new
/// CSCA and, through the link, to the old; an unchanged list is not signed again; a replaced
/// signer key leaves the HSM once its certificate has ended; a CSCA key withdrawn under dual
/// control leaves the list.
#[test]
fn the_csca_master_list_follows_the_cscas() {
    let (tmp, cluster, config) = centre("");
    let dir = tmp.path();
    ok(idcentral(
        &config,
        &["init", "--admin", "admin", "--second-admin", "admin2"],
        &format!("{ADMIN_PASSWORD}\n{ADMIN2_PASSWORD}\n"),
    ));
    let rt = test_runtime();
    let db = rt.block_on(db(&cluster));
    let count = |sql: &str| -> i64 { rt.block_on(db.query_one(sql, &[])).unwrap().get(0) };
    let csca = |label: &str| -> Vec<u8> {
        rt.block_on(db.query_one("SELECT cert_der FROM ca_keys WHERE label = $1", &[&label]))
            .unwrap()
            .get(0)
    };
    let csca1 = csca("csca-1");
    std::fs::write(dir.join("csca1.pem"), pem(&csca1)).unwrap();
    assert_eq!(count("SELECT count(*) FROM master_lists"), 1);
    assert_eq!(
        count(
            "SELECT count(*) FROM master_list_signers
             WHERE label = 'centre-mls-1' AND csca_key = 'csca-1'"
        ),
        1
    );
    let fetch = |addr: SocketAddr, file: &str| -> Vec<u8> {
        let (status, headers, body) =
            rt.block_on(http(addr, "GET", "/ca/csca-master-list.ml", None, vec![]));
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-type"), "application/octet-stream");
        assert!(header(&headers, "etag").starts_with('"'));
        std::fs::write(dir.join(file), &body).unwrap();
        body
    };
    let verify = |file: &str, args: &[&str]| -> (bool, String) {
        let mut all = vec![
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            file,
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ];
        all.extend_from_slice(args);
        tool(dir, "openssl", &all)
    };
    let (only, addr) = start_public_only(&config, Stdio::inherit());
    let mut only = Killed(only);
    let first = fetch(addr, "first.ml");
    let (good, out) = verify("first.ml", &["-CAfile", "csca1.pem"]);
    assert!(good && out.contains("Verification successful"), "{out}");
    let listed = ca::master_list::verify(&first, std::slice::from_ref(&csca1)).unwrap();
    assert_eq!(listed.certificates, std::slice::from_ref(&csca1));
    std::fs::write(dir.join("mls.pem"), pem(&listed.signer)).unwrap();
    let (clean, lint) = tool(dir, "lint_pkix_cert", &["lint", "-s", "WARNING", "mls.pem"]);
    assert!(clean, "pkilint on the Master List Signer:\n{lint}");
    // The offline copy: the same bytes, private, never over an existing file.
    let out_file = dir.join("export.ml");
    let export = ["ca", "master-list", "--out", out_file.to_str().unwrap()];
    let said = ok(as_operator(&config, &export, "admin", &[]));
    assert!(said.contains("(1 CSCA certificates"), "{said}");
    assert_eq!(std::fs::read(&out_file).unwrap(), first);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_ne!(
        as_operator(&config, &export, "admin", &[]).status.code(),
        Some(0)
    );

    // A CSCA rotation under dual control, with no serve running (one would destroy the old
    // signer's key at its next refresh, every 30 s, at a moment the test does not choose); the
    // next serve signs the new list at its start.
    let _ = only.0.kill();
    let _ = only.0.wait();
    let filed: Value = serde_json::from_str(&ok(as_operator(
        &config,
        &["--json", "ca", "rotate", "--ca", "csca"],
        "admin",
        &[],
    )))
    .unwrap();
    let id = filed["id"].as_i64().unwrap().to_string();
    ok(as_operator(&config, &["ca", "approve", &id], "admin2", &[]));
    let csca2 = csca("csca-2");
    std::fs::write(dir.join("csca2.pem"), pem(&csca2)).unwrap();
    let link: Vec<u8> = rt
        .block_on(db.query_one(
            "SELECT cert_der FROM ca_links WHERE certified_key = 'csca-2' AND kind = 'new-with-old'",
            &[],
        ))
        .unwrap()
        .get(0);
    std::fs::write(dir.join("link.pem"), pem(&link)).unwrap();
    let restart = |only: &mut Killed| -> SocketAddr {
        let _ = only.0.kill();
        let _ = only.0.wait();
        let (c, a) = start_public_only(&config, Stdio::inherit());
        only.0 = c;
        a
    };
    // The approval signed the new list at once; the old signer's key is still in the HSM until a
    // serve's refresh destroys it.
    assert_eq!(count("SELECT count(*) FROM master_lists"), 2);
    assert!(hsm_labels(dir).iter().any(|l| l == "centre-mls-1"));
    // A destroy cut short (the process killed between the key pair's two objects) left the
    // private key without its public half: the next refresh destroys what is left.
    let objects = hsm_objects(dir).1;
    delete_public_half(dir, "centre-mls-1");
    assert_eq!(hsm_objects(dir).1, objects - 1);
    let addr = restart(&mut only);
    let second = fetch(addr, "second.ml");
    assert_ne!(second, first);
    let listed = ca::master_list::verify(&second, std::slice::from_ref(&csca2)).unwrap();
    let mut want = vec![csca1.clone(), csca2.clone(), link.clone()];
    want.sort();
    let mut got = listed.certificates.clone();
    got.sort();
    assert_eq!(got, want);
    assert!(ca::issued_by(&listed.signer, &csca2).unwrap());
    let (good, out) = verify("second.ml", &["-CAfile", "csca2.pem"]);
    assert!(good, "{out}");
    // A verifier that still trusts only the old CSCA takes the new one through the link
    // certificate the list carries (the new key under the old), then the list verifies to it.
    let (good, out) = tool(
        dir,
        "openssl",
        &["verify", "-CAfile", "csca1.pem", "link.pem"],
    );
    assert!(good && out.contains("link.pem: OK"), "{out}");
    let (good, _) = verify("second.ml", &["-CAfile", "csca1.pem"]);
    assert!(
        !good,
        "the new signer does not chain to the old CSCA directly"
    );
    let replaced = last_details(&rt, &db, "master-list.signer-certified");
    assert_eq!(
        (
            replaced["key"].as_str(),
            replaced["csca_key"].as_str(),
            replaced["replaces"].as_str()
        ),
        (Some("centre-mls-2"), Some("csca-2"), Some("centre-mls-1"))
    );
    // Nothing changed: a restart signs no new list.
    let addr = restart(&mut only);
    assert_eq!(fetch(addr, "third.ml"), second);
    assert_eq!(count("SELECT count(*) FROM master_lists"), 2);

    // The replaced signer never signs again: the serve's first refresh destroyed its key.
    let start = Instant::now();
    while count("SELECT count(*) FROM audit_log WHERE action = 'master-list.signer-key-destroyed'")
        == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "centre-mls-1 not destroyed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let destroyed = last_details(&rt, &db, "master-list.signer-key-destroyed");
    assert_eq!(
        (
            destroyed["key"].as_str(),
            destroyed["removed_from_hsm"].as_bool()
        ),
        (Some("centre-mls-1"), Some(true))
    );
    let held = hsm_labels(dir);
    assert!(!held.iter().any(|l| l == "centre-mls-1"), "{held:?}");
    assert!(held.iter().any(|l| l == "centre-mls-2"), "{held:?}");
    // The private half went too: two objects fewer than before the public one was deleted, and
    // two more for the new CSCA's OCSP responder key the restart made.
    assert!(held.iter().any(|l| l == "ocsp-csca-2"), "{held:?}");
    assert_eq!(
        hsm_objects(dir).1,
        objects - 2 + 2,
        "centre-mls-1's private key is left"
    );

    // csca-1 withdrawn from the list under dual control (a self-signed CSCA is not revoked):
    // the active key is refused, the requester cannot approve, the second ca-admin does, and
    // the next list lists csca-2 only.
    let withdraw = |key: &str| {
        as_operator(
            &config,
            &[
                "--json",
                "ca",
                "withdraw-csca",
                "--key",
                key,
                "--reason",
                "keyCompromise",
            ],
            "admin",
            &[],
        )
    };
    refused(&withdraw("csca-2"), 5, "rotate the CSCA first");
    refused(&withdraw("csca-9"), 2, "key: no CA key csca-9");
    refused(&withdraw("esign-ca-1"), 2, "only a CSCA key is withdrawn");
    refused(
        &as_operator(
            &config,
            &["ca", "withdraw-csca", "--key", "csca-1", "--reason", "lost"],
            "admin",
            &[],
        ),
        2,
        "reason",
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM audit_log WHERE action = 'ca.request.refused-attempt'
             AND details::jsonb ->> 'attempt' = 'file withdraw-csca'"
        ),
        4
    );
    refused(
        &as_operator(
            &config,
            &[
                "ca",
                "revoke-ca",
                "--ca",
                "csca",
                "--reason",
                "keyCompromise",
            ],
            "admin",
            &[],
        ),
        2,
        "ca withdraw-csca",
    );
    let filed: Value = serde_json::from_str(&ok(withdraw("csca-1"))).unwrap();
    let id = filed["id"].as_i64().unwrap().to_string();
    refused(
        &as_operator(&config, &["ca", "approve", &id], "admin", &[]),
        6,
        "dual control",
    );
    let done = ok(as_operator(&config, &["ca", "approve", &id], "admin2", &[]));
    assert!(
        done.contains("CSCA key csca-1 withdrawn from the Master List (keyCompromise)"),
        "{done}"
    );
    refused(&withdraw("csca-1"), 5, "withdrawn already");
    let list = ok(as_operator(&config, &["ca", "list"], "admin", &[]));
    assert!(list.contains("withdrawn from the Master List"), "{list}");
    // The approval signed the list without csca-1 at once: the export is current. A list that
    // no longer says what the CSCAs are is not exported.
    let export2 = dir.join("after-withdrawal.ml");
    let export = ["ca", "master-list", "--out", export2.to_str().unwrap()];
    let said = ok(as_operator(&config, &export, "admin", &[]));
    assert!(said.contains("(1 CSCA certificates"), "{said}");
    rt.block_on(db.execute(
        "UPDATE ca_keys SET withdrawn_at = NULL WHERE label = 'csca-1'",
        &[],
    ))
    .unwrap();
    let stale = dir.join("stale.ml");
    let export = ["ca", "master-list", "--out", stale.to_str().unwrap()];
    refused(
        &as_operator(&config, &export, "admin", &[]),
        5,
        "the centre's CSCAs are 3 now",
    );
    assert!(!stale.exists());
    rt.block_on(db.execute(
        "UPDATE ca_keys SET withdrawn_at = now() WHERE label = 'csca-1'",
        &[],
    ))
    .unwrap();
    assert_eq!(
        count("SELECT count(*) FROM audit_log WHERE action = 'ca.csca-withdrawn'"),
        1
    );
    let addr = restart(&mut only);
    let fourth = fetch(addr, "fourth.ml");
    let listed = ca::master_list::verify(&fourth, std::slice::from_ref(&csca2)).unwrap();
    assert_eq!(listed.certificates, std::slice::from_ref(&csca2));
    let text = ok(as_operator(&config, &["ca", "services"], "admin", &[]));
    assert!(
        text.contains("CSCA Master List 3: 1 CSCA certificates, signed by centre-mls-2")
            && text.contains("centre-mls-1  certified by csca-1")
            && text.contains("replaced, key destroyed"),
        "{text}"
    );
}

/// A child process killed when dropped (also when a test panics).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
