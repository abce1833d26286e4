//! The centre's Station CA rollover through the `idstation` binary (docs/centre.md "Station CA
//! rollover"): a station enrolled before keeps answering `centre status` after the switch,
//! stores the new Station CA (checked to its root, 0600), renews its identity under it and
//! still works; a station enrolled after gets its identity from the new key. A real centre
//! (testrig::centre: PostgreSQL, SoftHSM2, two `idcentral serve` instances). Needs
//! `cargo build -p central --bin idcentral` in the same target dir.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use testrig::centre::{Centre, CENTRE_ADMIN2_PASSWORD, CENTRE_ADMIN_PASSWORD};

const ADMIN_PASSWORD: &str = "station-admin-pw-4d1a";

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `idstation --data-dir DATA ARGS` with `stdin` lines; no password may appear in its output.
fn idstation(data: &Path, args: &[&str], stdin: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idstation"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run idstation");
    let input: String = stdin.iter().map(|l| format!("{l}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    for s in [
        ADMIN_PASSWORD,
        CENTRE_ADMIN_PASSWORD,
        CENTRE_ADMIN2_PASSWORD,
    ] {
        assert!(
            !text(&out).contains(s),
            "a password appeared:\n{}",
            text(&out)
        );
    }
    out
}

fn ok(o: Output) -> serde_json::Value {
    assert!(o.status.success(), "idstation failed:\n{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", text(&o)))
}

fn enrol(t: &tempfile::TempDir, centre: &Centre, station: &str) -> PathBuf {
    let data = t.path().join(station);
    let code = centre.add_station("TAS01", station);
    let url = centre.url();
    let args = [
        "--json",
        "init",
        "--centre",
        &url,
        "--centre-fingerprint",
        centre.fingerprint(),
        "--enrolment-code",
        "-",
        "--station",
        station,
        "--admin",
        "admin",
    ];
    ok(idstation(&data, &args, &[ADMIN_PASSWORD, &code]));
    data
}

fn status(data: &Path) -> serde_json::Value {
    let s = ok(idstation(data, &["--json", "centre", "status"], &[]));
    assert_eq!(s["reachable"], true, "{s}");
    assert_eq!(s["centre"]["state"], "enrolled", "{s}");
    s
}

/// `openssl verify -x509_strict -CAfile root.pem -untrusted CA -purpose sslclient LEAF` in `d`.
fn verifies(d: &Path, ca: &str, leaf: &Path) -> bool {
    Command::new("openssl")
        .args([
            "verify",
            "-x509_strict",
            "-CAfile",
            "root.pem",
            "-untrusted",
            ca,
        ])
        .args(["-purpose", "sslclient"])
        .arg(leaf)
        .current_dir(d)
        .status()
        .unwrap()
        .success()
}

fn station_actions(data: &Path) -> Vec<String> {
    let reg = registry::Registry::open_read_only(data.join("registry.sqlite")).unwrap();
    reg.audit_events(1, u64::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// Rotate the centre's Station CA (admin files, admin2 approves) and write the root and both
/// Station CA certificates into `d`.
fn rotate(centre: &Centre, d: &Path) {
    let rotate = ["ca", "rotate", "--ca", "station", "--operator", "admin"];
    centre.ok(&rotate);
    centre.ok_as(
        &["ca", "approve", "1", "--operator", "admin2"],
        CENTRE_ADMIN2_PASSWORD,
    );
    for key in ["root-ca-1", "station-ca-1", "station-ca-2"] {
        let out = d.join(key);
        centre.ok(&[
            "ca",
            "certs",
            "--key",
            key,
            "--out",
            out.to_str().unwrap(),
            "--operator",
            "admin",
        ]);
        std::fs::copy(out.join(format!("{key}.pem")), d.join(format!("{key}.pem"))).unwrap();
    }
    std::fs::copy(d.join("root-ca-1.pem"), d.join("root.pem")).unwrap();
}

#[test]
fn a_station_keeps_working_through_a_station_ca_rollover_and_renews_its_identity() {
    let mut centre = Centre::start();
    centre.serve();
    let _second = centre.another_instance();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let before = enrol(&t, &centre, "tas01-st1");
    let s = status(&before);
    assert_eq!(
        s["anchors"]["centre_keys"],
        serde_json::json!(["station-ca-1"]),
        "{s}"
    );
    assert!(!before.join("centre/station-cas.pem").exists());

    rotate(&centre, d);
    // Still served with the anchor of enrolment; the new key stored, 0600, once.
    let s = status(&before);
    assert_eq!(
        s["anchors"]["added"],
        serde_json::json!(["station-ca-2"]),
        "{s}"
    );
    assert_eq!(s["anchors"]["server_issuer"], "station-ca-1", "{s}");
    let stored = before.join("centre/station-cas.pem");
    let mode = std::fs::metadata(&stored).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "station-cas.pem mode {mode:o}");
    assert_eq!(
        std::fs::read_to_string(&stored).unwrap(),
        std::fs::read_to_string(d.join("station-ca-2.pem")).unwrap()
    );
    let s = status(&before);
    assert_eq!(s["anchors"]["added"], serde_json::json!([]), "{s}");

    // The identity renewed under station-ca-2 (a ca-admin; the same HSM key), then still served.
    let identity = before.join("centre/identity-1.pem");
    assert!(verifies(d, "station-ca-1.pem", &identity));
    let renew = ["--json", "centre", "renew-identity", "--operator", "admin"];
    let r = ok(idstation(&before, &renew, &[ADMIN_PASSWORD]));
    assert_eq!(r["issuer"], "station-ca-2", "{r}");
    assert!(verifies(d, "station-ca-2.pem", &identity));
    assert!(!verifies(d, "station-ca-1.pem", &identity));
    let mode = std::fs::metadata(&identity).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "identity-1.pem mode {mode:o}");
    status(&before);
    let actions = station_actions(&before);
    for a in ["centre.anchors-updated", "centre.identity-renewed"] {
        assert!(actions.iter().any(|x| x == a), "no {a} in {actions:?}");
    }
    // A wrong password is refused before anything is asked of the centre.
    let o = idstation(&before, &renew, &["not-the-password-1"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));

    // A station enrolled after the rollover: its identity from station-ca-2.
    let after = enrol(&t, &centre, "tas01-st2");
    assert!(verifies(
        d,
        "station-ca-2.pem",
        &after.join("centre/identity-1.pem")
    ));
    let s = status(&after);
    assert_eq!(
        s["anchors"]["added"],
        serde_json::json!(["station-ca-2"]),
        "{s}"
    );
}
