//! Shared helpers for the centre's end-to-end tests: a private PostgreSQL cluster
//! (scripts/pg-up.sh), a centre configuration with its own SoftHSM2 token, and running
//! `idcentral` with a password on standard input.
#![allow(dead_code)]

pub mod serve;
#[allow(unused_imports)]
pub use serve::*;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const ADMIN_PASSWORD: &str = "centre-admin-pw-71c2";
/// The second ca-admin's password (`init --admin admin --second-admin admin2`).
pub const ADMIN2_PASSWORD: &str = "centre-second-admin-pw-5e91";
pub const HSM_PIN: &str = "centre-hsm-pin-5e9a";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A private cluster under `dir/pg`, stopped when dropped.
pub struct Cluster {
    pub dir: PathBuf,
}

impl Cluster {
    pub fn start(dir: &Path) -> Cluster {
        let out = Command::new("bash")
            .arg(workspace().join("scripts/pg-up.sh"))
            .arg(dir.join("pg"))
            .output()
            .expect("run scripts/pg-up.sh");
        assert!(
            out.status.success(),
            "pg-up.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Cluster {
            dir: dir.join("pg"),
        }
    }
    pub fn url(&self) -> String {
        std::fs::read_to_string(self.dir.join("url"))
            .unwrap()
            .trim()
            .to_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(workspace().join("scripts/pg-down.sh"))
            .arg(&self.dir)
            .status();
    }
}

pub fn idcentral(config: &Path, args: &[&str], stdin: &str) -> Output {
    idcentral_env(config, args, stdin, &[])
}

/// [`idcentral`] with more environment (a failpoint).
pub fn idcentral_env(config: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idcentral"))
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .env("IDCENTRAL_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run idcentral");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("wait");
    let all = text(&out);
    for secret in [ADMIN_PASSWORD, HSM_PIN] {
        assert!(
            !all.contains(secret),
            "a secret appeared in the output:\n{all}"
        );
    }
    out
}

/// `idcentral ARGS --operator WHO` as `admin` or `admin2` (the password on standard input),
/// with `env`; neither password may appear in the output.
pub fn as_operator(config: &Path, args: &[&str], who: &str, env: &[(&str, &str)]) -> Output {
    let pw = if who == "admin" {
        ADMIN_PASSWORD
    } else {
        ADMIN2_PASSWORD
    };
    let mut all = args.to_vec();
    all.extend(["--operator", who]);
    let out = idcentral_env(config, &all, &format!("{pw}\n"), env);
    assert!(!text(&out).contains(ADMIN2_PASSWORD), "{}", text(&out));
    out
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "idcentral failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn refused(o: &Output, code: i32, part: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(part),
        "wanted {part:?}:\n{}",
        text(o)
    );
}

pub fn private_file(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

/// A multi-thread tokio runtime for a test's database and HTTPS calls.
pub fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The active Station CA certificate: what a station trusts before it enrols (the real
/// station pins its fingerprint instead).
pub async fn station_ca_cert(db: &tokio_postgres::Client) -> Vec<u8> {
    db.query_one("SELECT cert_der FROM ca_keys WHERE ca = 'station-ca'", &[])
        .await
        .unwrap()
        .get(0)
}

pub async fn db(cluster: &Cluster) -> tokio_postgres::Client {
    let mut cfg: tokio_postgres::Config = cluster.url().parse().unwrap();
    cfg.password(
        std::fs::read_to_string(cluster.dir.join("password"))
            .unwrap()
            .trim(),
    );
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// A temporary directory with a running cluster and `centre.toml` (with `extra` appended).
pub fn centre(extra: &str) -> (tempfile::TempDir, Cluster, PathBuf) {
    // The server runs as the `postgres` user when we are root: it must be able to pass through.
    let tmp = tempfile::Builder::new()
        .prefix("idcentral-test-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let cluster = Cluster::start(tmp.path());
    let pin = tmp.path().join("hsm-pin");
    private_file(&pin, &format!("{HSM_PIN}\n"));
    let config = tmp.path().join("centre.toml");
    std::fs::write(
        &config,
        format!(
            r#"[centre]
name = "centre"

[database]
url = "{url}"
password_file = "{pw}"

[hsm]
backend = "pkcs11"
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "idcentral"
pin = {{ file = "{pin}" }}
env = {{ SOFTHSM2_CONF = "{hsm}/softhsm2.conf" }}
{extra}"#,
            url = cluster.url(),
            pw = cluster.dir.join("password").display(),
            pin = pin.display(),
            hsm = tmp.path().join("hsm").display(),
            extra = extra,
        ),
    )
    .unwrap();
    (tmp, cluster, config)
}

/// `idcentral station disable --station STATION --operator admin`, which must succeed.
pub fn disable_station(config: &Path, station: &str) {
    ok(idcentral(
        config,
        &[
            "station",
            "disable",
            "--station",
            station,
            "--operator",
            "admin",
        ],
        &format!("{ADMIN_PASSWORD}\n"),
    ));
}

/// The actions of the audit log, in order.
pub async fn audit_actions(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query("SELECT action FROM audit_log ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `idcentral station add` for office TAS01; the enrolment code.
pub fn add_station(config: &Path, station: &str) -> String {
    add_station_at(config, "TAS01", station)
}

/// `idcentral --json station add --office OFFICE --station STATION --operator admin`, as run.
pub fn station_add(config: &Path, office: &str, station: &str) -> Output {
    let args = [
        "--json",
        "station",
        "add",
        "--office",
        office,
        "--station",
        station,
    ];
    idcentral(
        config,
        &[&args[..], &["--operator", "admin"]].concat(),
        &format!("{ADMIN_PASSWORD}\n"),
    )
}

/// `idcentral station add --office OFFICE`; the enrolment code.
pub fn add_station_at(config: &Path, office: &str, station: &str) -> String {
    let out = ok(station_add(config, office, station));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["enrolment_code"].as_str().unwrap().to_owned()
}
