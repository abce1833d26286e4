//! The centre's high availability end to end (docs/centre-ha.md): real PostgreSQL clusters
//! (scripts/pg-up.sh, a synchronous streaming standby from scripts/pg-replica.sh, promotion by
//! scripts/pg-promote.sh), the centre's SoftHSM2 token, and real TLS 1.3 on 127.0.0.1. The test
//! plays a station whose keys are in a SoftHSM2 token of its own.
//!
//! - The primary killed (SIGKILL) after an acknowledged enrolment: the same `idcentral serve`
//!   refuses at once while no primary answers, then serves the station again once the standby is
//!   promoted; the enrolment is there, and new writes go to the promoted node.
//! - Two `idcentral serve` instances on one database, one killed: a station that knows both
//!   carries on with the other.
//!
//! The helpers are copied from tests/centre_serve.rs and tests/common/ so that this file stands
//! alone, but for the HTTPS exchange itself (`common::https`, with its bound on a hung call);
//! otherwise only the HTTP wire format and the CLI are shared with the centre.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testrig::centre::{kill_postmaster, script};

use rustls::pki_types::CertificateDer;
use zeroize::Zeroizing;

const ADMIN_PASSWORD: &str = "centre-admin-pw-ha-3b81";
const HSM_PIN: &str = "centre-hsm-pin-ha-77d0";
const STATION_PIN: &str = "station-pin-ha-4c19";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_owned()
}

/// The private clusters of a test (primary first), stopped when dropped.
struct Clusters {
    dirs: Vec<PathBuf>,
}

impl Clusters {
    fn up(dir: &Path) -> Clusters {
        script("pg-up.sh", &[dir]);
        Clusters {
            dirs: vec![dir.to_owned()],
        }
    }

    /// A synchronous standby of the first cluster under `dir`; the multi-host URL.
    fn add_standby(&mut self, dir: &Path) -> String {
        self.dirs.push(dir.to_owned());
        script("pg-replica.sh", &[&self.dirs[0], dir])
    }

    fn url(dir: &Path) -> String {
        read(&dir.join("url"))
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            let _ = Command::new("bash")
                .arg(workspace().join("scripts/pg-down.sh"))
                .arg(dir)
                .status();
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// A query as the cluster's superuser over its unix socket (as root through `runuser`, as
/// scripts/pg-up.sh runs the server); one row, the columns joined by `|`.
fn psql_super(dir: &Path, sql: &str) -> String {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let psql = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.exists())
        .max()
        .expect("PostgreSQL is installed");
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(psql);
        c
    } else {
        Command::new(psql)
    };
    let out = cmd
        .args(["-qAt", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-h"])
        .arg(dir.join("socket"))
        .args(["-p", &read(&dir.join("port")), "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The role `idcentral` on the cluster under `dir` alone.
async fn db(dir: &Path, password_file: &Path) -> tokio_postgres::Client {
    let mut cfg: tokio_postgres::Config = Clusters::url(dir).parse().unwrap();
    cfg.password(read(password_file));
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// A temporary directory the server's `postgres` user can pass through (0711).
fn tempdir() -> tempfile::TempDir {
    let tmp = tempfile::Builder::new()
        .prefix("idcentral-ha-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    tmp
}

/// `centre.toml` under `dir` for the database at `url`, with its own SoftHSM2 token.
fn centre_config(dir: &Path, url: &str, password_file: &Path) -> PathBuf {
    let pin = dir.join("hsm-pin");
    std::fs::write(&pin, format!("{HSM_PIN}\n")).unwrap();
    std::fs::set_permissions(&pin, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = dir.join("centre.toml");
    std::fs::write(
        &config,
        format!(
            r#"[centre]
name = "centre"

[database]
url = "{url}"
password_file = "{pw}"
pool_size = 4

[hsm]
backend = "pkcs11"
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "idcentral"
pin = {{ file = "{pin}" }}
env = {{ SOFTHSM2_CONF = "{hsm}/softhsm2.conf" }}

[server]
public_name = "localhost"
"#,
            pw = password_file.display(),
            pin = pin.display(),
            hsm = dir.join("hsm").display(),
        ),
    )
    .unwrap();
    config
}

/// `idcentral --config CONFIG ARGS` with the admin password on standard input; no secret (the
/// admin password, the HSM PIN, the database password) may appear in its output.
fn idcentral(config: &Path, args: &[&str], db_password: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idcentral"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run idcentral");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{ADMIN_PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("wait");
    let all = text(&out);
    for secret in [ADMIN_PASSWORD, HSM_PIN, db_password] {
        assert!(
            !all.contains(secret),
            "a secret appeared in the output:\n{all}"
        );
    }
    out
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "idcentral failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `idcentral station add`; the enrolment code.
fn add_station(config: &Path, station: &str, db_password: &str) -> String {
    let out = ok(idcentral(
        config,
        &[
            "--json",
            "station",
            "add",
            "--office",
            "TAS01",
            "--station",
            station,
            "--operator",
            "admin",
        ],
        db_password,
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["enrolment_code"].as_str().unwrap().to_owned()
}

/// An `idcentral serve --listen 127.0.0.1:0` child, killed (SIGKILL) and reaped when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(config: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_idcentral"))
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("IDCENTRAL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start idcentral serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .and_then(|l| l.ok())
            .unwrap_or_else(|| panic!("idcentral serve stopped before it listened"));
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .unwrap();
        // Keep reading its standard output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The station side: keys in its own SoftHSM2 token.
struct Station {
    store: Arc<dyn hsm::KeyStore>,
}

impl Station {
    fn new(label: &str) -> Station {
        use hsm::KeyStore;
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

    fn csr(&self, key: &str) -> String {
        hex::encode(ca::csr_for_hsm_key(self.store.as_ref(), key, "station request").unwrap())
    }

    fn enrol_request(&self, station: &str, code: &str) -> serde_json::Value {
        serde_json::json!({
            "station": station, "enrolment_code": code,
            "identity_csr": self.csr("identity"), "audit_csr": self.csr("audit"),
            "document_signer_csr": self.csr("ds"),
        })
    }

    /// A TLS client presenting the identity certificate `pem` (its signature made in the
    /// station's token) and trusting `anchor_pem`.
    fn tls(&self, pem: &str, anchor_pem: &str) -> Arc<rustls::ClientConfig> {
        let ck = hsm::tls::certified_key(Arc::clone(&self.store), "identity", &[der_of_pem(pem)])
            .unwrap();
        client_config(&der_of_pem(anchor_pem), Some(ck))
    }
}

fn der_of_pem(pem: &str) -> Vec<u8> {
    use der::DecodePem;
    let cert = x509_cert::Certificate::from_pem(pem.as_bytes()).unwrap();
    der::Encode::to_der(&cert).unwrap()
}

/// A TLS 1.3 client trusting `anchor` (DER), optionally presenting `identity`.
fn client_config(
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

type Answer = Result<(u16, serde_json::Value), String>;

/// One HTTPS request to `addr` (as `localhost`); `Err` when no TLS connection was made. The
/// shared helper ([`common::https`]), bounded like the station's own client.
async fn https(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Answer {
    common::https(addr, "localhost", tls, method, path, body)
        .await
        .map(|(status, json, _)| (status, json))
}

/// A station's request to the first of `centres` it can connect to, in order: what a station
/// that lists several centre instances does.
async fn https_any(
    centres: &[SocketAddr],
    tls: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (SocketAddr, Answer) {
    let mut last = Err("no centre listed".to_owned());
    for addr in centres {
        last = https(*addr, Arc::clone(tls), method, path, body).await;
        if last.is_ok() {
            return (*addr, last);
        }
    }
    (centres[centres.len() - 1], last)
}

/// The Station CA certificate (DER), the anchor a station trusts before it enrols (the
/// station side pins the centre's fingerprint instead).
async fn station_ca(client: &tokio_postgres::Client) -> Vec<u8> {
    client
        .query_one("SELECT cert_der FROM ca_keys WHERE ca = 'station-ca'", &[])
        .await
        .unwrap()
        .get(0)
}

/// Enrol `name` with `code` through `addr`; the station's identity TLS client.
async fn enrol(
    addr: SocketAddr,
    anon: &Arc<rustls::ClientConfig>,
    station: &Station,
    name: &str,
    code: &str,
) -> Arc<rustls::ClientConfig> {
    let req = station.enrol_request(name, code);
    let (status, body) = https(addr, Arc::clone(anon), "POST", "/v1/enrol", Some(&req))
        .await
        .unwrap();
    assert_eq!(status, 200, "enrol {name}: {body}");
    station.tls(
        body["identity_cert"].as_str().unwrap(),
        body["trust_anchors"]["station_ca"].as_str().unwrap(),
    )
}

fn whoami(name: &str) -> serde_json::Value {
    serde_json::json!({ "station": name, "office": "TAS01", "state": "enrolled" })
}

async fn audit_count(client: &tokio_postgres::Client, action: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = $1",
            &[&action],
        )
        .await
        .unwrap()
        .get(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_same_centre_carries_on_after_the_primary_is_killed_and_the_standby_promoted() {
    let tmp = tempdir();
    let (primary, standby) = (tmp.path().join("pg"), tmp.path().join("standby"));
    let mut clusters = Clusters::up(&primary);
    let multi = clusters.add_standby(&standby);
    let pr = read(&primary.join("port"));
    let sb = read(&standby.join("port"));
    assert_eq!(
        multi,
        format!(
            "postgres://idcentral@127.0.0.1:{pr},127.0.0.1:{sb}/idcentral?target_session_attrs=read-write"
        )
    );
    assert_eq!(read(&standby.join("url-multi")), multi);
    // The standby is the synchronous one: a commit is acknowledged once it has it.
    let name = format!("standby_{}", "standby");
    assert_eq!(
        psql_super(
            &primary,
            "SELECT application_name, state, sync_state FROM pg_stat_replication"
        ),
        format!("{name}|streaming|sync")
    );
    assert_eq!(
        psql_super(&primary, "SHOW synchronous_standby_names"),
        format!("\"{name}\"")
    );
    assert_eq!(psql_super(&standby, "SHOW synchronous_standby_names"), "");
    // Running it again changes nothing.
    assert_eq!(script("pg-replica.sh", &[&primary, &standby]), multi);

    let pw_file = primary.join("password");
    let db_pw = read(&pw_file);
    let config = centre_config(tmp.path(), &multi, &pw_file);
    ok(idcentral(&config, &["init", "--admin", "admin"], &db_pw));
    let code1 = add_station(&config, "tas01-ha1", &db_pw);
    let mut server = Server::start(&config);
    let rt = runtime();

    let anchor = rt.block_on(async { station_ca(&db(&primary, &pw_file).await).await });
    let anon = client_config(&anchor, None);
    let st1 = Station::new("ha-st1");
    let id1 = rt.block_on(enrol(server.addr, &anon, &st1, "tas01-ha1", &code1));
    let addr = server.addr;
    let call = |tls: &Arc<rustls::ClientConfig>| {
        rt.block_on(https(addr, Arc::clone(tls), "GET", "/v1/whoami", None))
    };
    assert_eq!(call(&id1).unwrap(), (200, whoami("tas01-ha1")));

    // The standby alone is read-only: a centre pointed at it refuses to use it (exit 7, the
    // database), naming why, instead of failing later in the middle of a write.
    let standby_only = tmp.path().join("standby-only");
    std::fs::create_dir(&standby_only).unwrap();
    let so_config = centre_config(&standby_only, &Clusters::url(&standby), &pw_file);
    let out = idcentral(
        &so_config,
        &["station", "list", "--operator", "admin"],
        &db_pw,
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the server is read-only"),
        "{}",
        text(&out)
    );

    // The primary dies at once after the enrolment was acknowledged.
    kill_postmaster(&primary);

    // No primary: the centre answers at once that it could not do it (the standby is
    // read-only, the old primary refuses connections), and keeps running.
    let t = Instant::now();
    let (status, body) = call(&id1).expect("the centre still accepts connections");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["rule"], "database-unavailable", "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the refusal took {:?}",
        t.elapsed()
    );
    assert!(server.running());

    // Promoted, the standby takes writes and waits for no standby of its own.
    let promoted = script("pg-promote.sh", &[&standby]);
    assert!(promoted.starts_with("promoted: "), "{promoted}");
    assert_eq!(psql_super(&standby, "SELECT pg_is_in_recovery()"), "f");
    assert_eq!(psql_super(&standby, "SHOW synchronous_standby_names"), "");

    // The same serve process reconnects by itself (the pool drops the dead connections and the
    // multi-host URL finds the new primary): poll, bounded.
    let t = Instant::now();
    let deadline = t + Duration::from_secs(30);
    let again = loop {
        let r = call(&id1);
        if matches!(r, Ok((200, _))) || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        again.unwrap(),
        (200, whoami("tas01-ha1")),
        "after {:?}",
        t.elapsed()
    );
    assert!(server.running(), "the serve process was restarted");
    eprintln!(
        "centre_ha: whoami answered again {:?} after the promotion",
        t.elapsed()
    );

    // Nothing acknowledged was lost: the enrolment and its audit event are on the new primary.
    let newdb = rt.block_on(db(&standby, &pw_file));
    assert_eq!(rt.block_on(audit_count(&newdb, "station.enrolled")), 1);

    // New writes through the same centre go to the promoted node: a station added (the CLI on
    // the same multi-host URL) and enrolled.
    let code2 = add_station(&config, "tas01-ha2", &db_pw);
    let st2 = Station::new("ha-st2");
    let id2 = rt.block_on(enrol(server.addr, &anon, &st2, "tas01-ha2", &code2));
    assert_eq!(call(&id2).unwrap(), (200, whoami("tas01-ha2")));
    assert_eq!(rt.block_on(audit_count(&newdb, "station.enrolled")), 2);
    ok(idcentral(
        &config,
        &["audit", "verify-log", "--operator", "admin"],
        &db_pw,
    ));

    // The old primary comes back as the new primary's synchronous standby (docs/centre-ha.md):
    // its data removed, pg-replica.sh the other way round. The centre's URL needs no change
    // (read-write picks the primary), and commits are acknowledged by two nodes again.
    script("pg-down.sh", &[&primary]);
    std::fs::remove_dir_all(primary.join("data")).unwrap();
    let reversed = script("pg-replica.sh", &[&standby, &primary]);
    assert_eq!(
        reversed,
        format!(
            "postgres://idcentral@127.0.0.1:{sb},127.0.0.1:{pr}/idcentral?target_session_attrs=read-write"
        )
    );
    assert_eq!(
        psql_super(
            &standby,
            "SELECT application_name, state, sync_state FROM pg_stat_replication"
        ),
        "standby_pg|streaming|sync"
    );
    add_station(&config, "tas01-ha3", &db_pw);
    assert_eq!(psql_super(&primary, "SELECT pg_is_in_recovery()"), "t");
    assert_eq!(
        psql_super(
            &primary,
            "SELECT count(*) FROM pg_catalog.pg_stat_wal_receiver WHERE status = 'streaming'"
        ),
        "1"
    );
    assert_eq!(call(&id2).unwrap(), (200, whoami("tas01-ha2")));
    drop(server);
    drop(clusters);
}

#[test]
fn a_station_carries_on_with_the_other_instance_when_one_is_killed() {
    let tmp = tempdir();
    let dir = tmp.path().join("pg");
    let clusters = Clusters::up(&dir);
    let pw_file = dir.join("password");
    let db_pw = read(&pw_file);
    let config = centre_config(tmp.path(), &Clusters::url(&dir), &pw_file);
    ok(idcentral(&config, &["init", "--admin", "admin"], &db_pw));
    let code1 = add_station(&config, "tas01-two1", &db_pw);
    let code2 = add_station(&config, "tas01-two2", &db_pw);
    // One after the other: the first makes the TLS key and certificate, the second reuses them.
    let mut a = Server::start(&config);
    let b = Server::start(&config);
    let centres = [a.addr, b.addr];
    let rt = runtime();

    let client = rt.block_on(db(&dir, &pw_file));
    let anchor = rt.block_on(station_ca(&client));
    let anon = client_config(&anchor, None);
    let st1 = Station::new("two-st1");
    let id1 = rt.block_on(enrol(a.addr, &anon, &st1, "tas01-two1", &code1));
    // Either instance knows the station: the state is in the database.
    for addr in centres {
        let r = rt.block_on(https(addr, Arc::clone(&id1), "GET", "/v1/whoami", None));
        assert_eq!(r.unwrap(), (200, whoami("tas01-two1")), "through {addr}");
    }
    let (used, r) = rt.block_on(https_any(&centres, &id1, "GET", "/v1/whoami", None));
    assert_eq!((used, r.unwrap().0), (a.addr, 200));

    a.kill();
    let gone = rt.block_on(https(a.addr, Arc::clone(&id1), "GET", "/v1/whoami", None));
    assert!(gone.is_err(), "the killed instance answered: {gone:?}");

    // The station, listing both, carries on with the other: its own requests and a new
    // station's enrolment.
    let (used, r) = rt.block_on(https_any(&centres, &id1, "GET", "/v1/whoami", None));
    assert_eq!((used, r.unwrap()), (b.addr, (200, whoami("tas01-two1"))));
    let st2 = Station::new("two-st2");
    let req = st2.enrol_request("tas01-two2", &code2);
    let (used, r) = rt.block_on(https_any(&centres, &anon, "POST", "/v1/enrol", Some(&req)));
    let (status, body) = r.unwrap();
    assert_eq!((used, status), (b.addr, 200), "{body}");
    let id2 = st2.tls(
        body["identity_cert"].as_str().unwrap(),
        body["trust_anchors"]["station_ca"].as_str().unwrap(),
    );
    let (_, r) = rt.block_on(https_any(&centres, &id2, "GET", "/v1/whoami", None));
    assert_eq!(r.unwrap(), (200, whoami("tas01-two2")));

    // Both enrolments are audited once, and the chain holds.
    assert_eq!(rt.block_on(audit_count(&client, "station.enrolled")), 2);
    ok(idcentral(
        &config,
        &["audit", "verify-log", "--operator", "admin"],
        &db_pw,
    ));
    drop(b);
    drop(a);
    drop(clusters);
}
