//! What the centre's benchmarks share (`centre_load`, `ocsp_load`): duration settings, quantiles,
//! and the station side of the issuance protocol — HTTPS calls with the station's client
//! certificate, card keys with their proofs of possession, one card reserve → certify →
//! complete, and a station's enrolment.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use rustls::pki_types::ServerName;
use serde_json::{json, Value};

pub fn env_secs(name: &str, default: f64) -> Duration {
    let v = std::env::var(name)
        .ok()
        .map(|s| {
            s.parse::<f64>()
                .unwrap_or_else(|e| panic!("{name}={s:?}: {e}"))
        })
        .unwrap_or(default);
    assert!(v > 0.0 && v <= 600.0, "{name} must be in (0, 600] seconds");
    Duration::from_secs_f64(v)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `q`-quantile (nearest rank) of `v`, sorted in place.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    assert!(!v.is_empty(), "no samples");
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc

/// utime + stime of `pid` in clock ticks, with its parent pid.
pub fn proc_ticks(pid: u32) -> Option<(u64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime, ppid))
}

/// Every pid with its ticks and parent.
pub fn all_procs() -> Vec<(u32, u64, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| proc_ticks(pid).map(|(t, pp)| (pid, t, pp)))
        .collect()
}

/// Ticks of the postmaster `pg` and its children, by pid.
pub fn pg_ticks(pg: u32) -> std::collections::HashMap<u32, u64> {
    all_procs()
        .into_iter()
        .filter(|(pid, _, pp)| *pid == pg || *pp == pg)
        .map(|(pid, t, _)| (pid, t))
        .collect()
}

/// CPU seconds of the three parties between two snapshots.
pub struct CpuSnap {
    pub bench: u64,
    pub server: u64,
    pub pg: std::collections::HashMap<u32, u64>,
}

pub fn cpu_snap(server: u32, pg: u32) -> CpuSnap {
    CpuSnap {
        bench: proc_ticks(std::process::id()).map_or(0, |t| t.0),
        server: proc_ticks(server).map_or(0, |t| t.0),
        pg: pg_ticks(pg),
    }
}

/// (stations, centre, postgres) CPU seconds from `a` to `b`.
pub fn cpu_between(a: &CpuSnap, b: &CpuSnap) -> (f64, f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let pg: u64 =
        b.pg.iter()
            .map(|(pid, t)| t.saturating_sub(a.pg.get(pid).copied().unwrap_or(0)))
            .sum();
    (
        b.bench.saturating_sub(a.bench) as f64 / hz,
        b.server.saturating_sub(a.server) as f64 / hz,
        pg as f64 / hz,
    )
}

// ---------------------------------------------------------------------------------------------
// The stations' side

/// One HTTPS call: the time spent connecting (a new TCP connection and a full TLS 1.3
/// handshake with the station's client certificate; zero on a kept connection) and the
/// exchange (one HTTP/1.1 request and its answer), timed separately.
pub struct Call {
    pub handshake: Duration,
    pub exchange: Duration,
    pub body: Value,
}

/// A station's connection to the centre as `station::centre::CentreClient` keeps it: opened
/// at the first call, kept open for the next ones (the station keeps it while it is used at
/// least every 30 s, which a loop of cards always does).
pub struct Link {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    open: Option<(
        hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Link {
    pub fn new(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Link {
        Link {
            addr,
            tls: Arc::clone(tls),
            open: None,
        }
    }

    /// One call, on the kept connection (a new one first when there is none or it closed).
    pub async fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> Call {
        let t0 = Instant::now();
        if self.open.as_ref().is_some_and(|(s, _)| s.is_closed()) {
            self.open = None;
        }
        if self.open.is_none() {
            let tcp = tokio::net::TcpStream::connect(self.addr)
                .await
                .expect("connect to idcentral");
            let stream = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .expect("TLS handshake with idcentral");
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("HTTP/1.1 handshake");
            let task = tokio::spawn(async move {
                let _ = conn.await;
            });
            self.open = Some((sender, task));
        }
        let t1 = Instant::now();
        let (sender, _) = self.open.as_mut().expect("a connection");
        sender.ready().await.expect("the kept connection");
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = sender.send_request(req).await.expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let t2 = Instant::now();
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }));
        assert_eq!(status, 200, "{method} {path}: {body}");
        Call {
            handshake: t1 - t0,
            exchange: t2 - t1,
            body,
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some((_, task)) = self.open.take() {
            task.abort();
        }
    }
}

/// One call on a new connection (a full handshake), closed afterwards.
pub async fn call(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Call {
    Link::new(addr, tls).call(method, path, body).await
}

/// A card key: a software P-256 key that signs the proof digest as a PIV card does (the
/// digest as the ECDSA hash value, DER signature).
pub fn card_key(job: &str, challenge: &[u8], slot: u8, profile: &str) -> Value {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    let key = p256::ecdsa::SigningKey::from_slice(&b).expect("a P-256 scalar");
    let spki = key
        .verifying_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let digest = centre_api::proof_digest(job, challenge, slot, &spki);
    let sig: p256::ecdsa::DerSignature = key.sign_prehash(&digest).unwrap();
    json!({ "slot": format!("{slot:02X}"), "profile": profile,
            "public_key": hex::encode(&spki), "proof": hex::encode(sig.as_bytes()) })
}

pub use testrig::egov::new_job;

/// One card's three calls and the card-side key work (key generation and proofs).
pub struct Card {
    /// The job (the document is the job's).
    pub job: String,
    pub end: Instant,
    pub reserve: (Duration, Duration),
    pub certify: (Duration, Duration),
    pub complete: (Duration, Duration),
    pub keys: Duration,
    pub total: Duration,
}

/// reserve → certify → complete for a new holder (PINFL from `station`, `seq`) on the
/// station's `link`.
pub async fn one_card(link: &mut Link, station: usize, seq: u64) -> Card {
    let start = Instant::now();
    let pinfl = format!("3{:02}{:011}", station, seq);
    let serial = format!("{:08X}", ((station as u64) << 24) | (seq & 0xff_ffff));
    let job = new_job();
    let holder = registry::NewHolder {
        pinfl,
        surname: "Karimova".into(),
        given_names: "Dilnoza".into(),
        sex: "F".into(),
        date_of_birth: "1990-04-12".into(),
        place_of_birth: "Tashkent".into(),
        citizenship: "UZB".into(),
        ..Default::default()
    };
    let address = registry::NewAddress {
        kind: registry::AddressKind::Permanent,
        region: "Toshkent".into(),
        district: "Yunusobod".into(),
        street: "Amir Temur".into(),
        house: "12".into(),
        apartment: None,
        registered_on: "2015-06-01".into(),
        registered_until: None,
    };
    let reserve = json!({
        "job": job, "operator": "clerk1", "holder": holder, "address": address,
        "update_holder": false, "card_serial": serial,
    });
    let r = link
        .call("POST", centre_api::paths::RESERVE, Some(&reserve))
        .await;
    let challenge = hex::decode(r.body["challenge"].as_str().expect("challenge")).unwrap();
    let t = Instant::now();
    let keys = vec![
        card_key(&job, &challenge, 0x9a, "holder-auth"),
        card_key(&job, &challenge, 0x9c, "holder-sign"),
    ];
    let key_work = t.elapsed();
    let c = link
        .call(
            "POST",
            &centre_api::paths::certify(&job),
            Some(&json!({ "operator": "clerk1", "keys": keys })),
        )
        .await;
    assert_eq!(
        c.body["certificates"].as_array().map(Vec::len),
        Some(2),
        "{}",
        c.body
    );
    let f = link
        .call(
            "POST",
            &centre_api::paths::complete(&job),
            Some(&json!({ "operator": "clerk1", "card_serial": serial,
                      "date_of_issue": "2026-12-02", "date_of_expiry": "2036-12-01" })),
        )
        .await;
    assert_eq!(f.body["state"], "completed", "{}", f.body);
    let end = Instant::now();
    Card {
        job,
        end,
        reserve: (r.handshake, r.exchange),
        certify: (c.handshake, c.exchange),
        complete: (f.handshake, f.exchange),
        keys: key_work,
        total: end - start,
    }
}

/// A current-thread runtime, as the station's client has.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Enrols `station` (its one-time `code`) at the centre on `addr` with a new identity key in a
/// SoftHSM2 token named `label`: the station and its mutual-TLS client configuration (no session
/// resumption, as the station's client: a new connection is a full handshake).
pub fn enrol(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    anon: &Arc<rustls::ClientConfig>,
    label: &str,
    station: &str,
    code: &str,
) -> (crate::common::Station, Arc<rustls::ClientConfig>) {
    use crate::common::*;
    let st = Station::new(label);
    let (status, v, _) = rt
        .block_on(https(
            addr,
            "localhost",
            Arc::clone(anon),
            "POST",
            centre_api::paths::ENROL,
            Some(&st.enrol_request(station, code)),
        ))
        .expect("enrol");
    assert_eq!(status, 200, "enrol {station}: {v}");
    let resp: centre_api::EnrolResponse = serde_json::from_value(v).unwrap();
    let id = identity(&st.store, "identity", der_of_pem(&resp.identity_cert));
    let mut cfg = client_config(&der_of_pem(&resp.trust_anchors.station_ca), Some(id));
    Arc::get_mut(&mut cfg).unwrap().resumption = rustls::client::Resumption::disabled();
    (st, cfg)
}

/// Enrols the stations `codes` (name, one-time code) at the centre on `addr`, identity keys in
/// tokens `{label}{i}`: the stations and their client configurations, in order.
pub fn enrol_all(
    rt: &tokio::runtime::Runtime,
    cluster: &crate::common::Cluster,
    addr: SocketAddr,
    codes: &[(String, String)],
    label: &str,
) -> (Vec<crate::common::Station>, Vec<Arc<rustls::ClientConfig>>) {
    let station_ca: Vec<u8> = rt.block_on(async {
        crate::common::db(cluster)
            .await
            .query_one("SELECT cert_der FROM ca_keys WHERE ca = 'station-ca'", &[])
            .await
            .unwrap()
            .get(0)
    });
    let anon = crate::common::client_config(&station_ca, None);
    codes
        .iter()
        .enumerate()
        .map(|(i, (name, code))| enrol(rt, addr, &anon, &format!("{label}{i}"), name, code))
        .unzip()
}

/// The cluster's postmaster pid (its children are the backends).
pub fn postmaster_pid(cluster: &crate::common::Cluster) -> u32 {
    std::fs::read_to_string(cluster.dir.join("data/postmaster.pid"))
        .expect("postmaster.pid")
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
