//! Issue 15, end to end: a station enrols with a real national centre (`idcentral serve` on
//! 127.0.0.1 over TLS 1.3, PostgreSQL, both SoftHSM2 tokens: testrig::centre) through the
//! `idstation` binary, then asks `centre status`. Needs `cargo test -p central --no-run`
//! in the same target dir.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testrig::centre::{Centre, CENTRE_ADMIN_PASSWORD};

const ADMIN_PASSWORD: &str = "station-admin-pw-4d1a";

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `idstation --data-dir DATA ARGS` with `stdin` lines; no secret may appear in its output.
fn idstation(data: &Path, args: &[&str], stdin: &[&str], secrets: &[&str]) -> Output {
    idstation_env(data, args, stdin, secrets, &[])
}

/// [`idstation`] with `env` set (a failpoint; never a secret).
fn idstation_env(
    data: &Path,
    args: &[&str],
    stdin: &[&str],
    secrets: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idstation"))
        .envs(env.iter().copied())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("IDSTATION_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run idstation");
    let mut input = String::new();
    for l in stdin {
        input.push_str(l);
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let all = text(&out);
    for s in secrets
        .iter()
        .chain([&ADMIN_PASSWORD, &CENTRE_ADMIN_PASSWORD])
    {
        assert!(!all.contains(s), "a secret appeared in the output:\n{all}");
    }
    out
}

/// `idstation init --centre` for `station` with `code` on standard input (`--enrolment-code -`).
fn enrol(data: &Path, centre: &Centre, station: &str, fingerprint: &str, code: &str) -> Output {
    enrol_env(data, centre, station, fingerprint, code, &[])
}

fn enrol_env(
    data: &Path,
    centre: &Centre,
    station: &str,
    fingerprint: &str,
    code: &str,
    env: &[(&str, &str)],
) -> Output {
    idstation_env(
        data,
        &[
            "--json",
            "init",
            "--centre",
            &centre.url(),
            "--centre-fingerprint",
            fingerprint,
            "--enrolment-code",
            "-",
            "--station",
            station,
            "--admin",
            "admin",
        ],
        &[ADMIN_PASSWORD, code],
        &[code],
        env,
    )
}

fn ok(o: Output) -> serde_json::Value {
    assert!(o.status.success(), "idstation failed:\n{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", text(&o)))
}

fn refused(o: &Output, code: i32, part: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(part), "wanted {part:?}:\n{}", text(o));
}

/// A data dir path inside a new temporary directory (the data dir itself does not exist).
fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    (t, d)
}

/// The centre's list of stations as JSON.
fn station_state(centre: &Centre, station: &str) -> String {
    let out = centre.ok(&["--json", "station", "list", "--operator", "admin"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let list = v
        .as_array()
        .or_else(|| v["stations"].as_array())
        .unwrap_or_else(|| panic!("station list: {out}"))
        .clone();
    list.iter()
        .find(|s| s["name"] == station)
        .unwrap_or_else(|| panic!("{station} not in {out}"))["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_station_enrols_then_centre_status_and_ca_show_report_it_and_the_code_works_once() {
    let mut centre = Centre::start();
    centre.serve();
    let code = centre.add_station("TAS01", "tas01-st1");
    let (_t, data) = data_dir();
    let r = ok(enrol(
        &data,
        &centre,
        "tas01-st1",
        centre.fingerprint(),
        &code,
    ));
    assert_eq!(r["office"], "TAS01", "{r}");
    assert_eq!(r["station"], "tas01-st1", "{r}");
    assert_eq!(r["centre_fingerprint_sha256"], centre.fingerprint(), "{r}");
    assert!(
        r["number_block"]["last"].as_u64().unwrap() >= r["number_block"]["first"].as_u64().unwrap()
    );
    assert_eq!(station_state(&centre, "tas01-st1"), "enrolled");

    // station.toml names the centre; the answer file is gone; files are private.
    let toml = std::fs::read_to_string(data.join("station.toml")).unwrap();
    assert!(
        toml.contains("[centre]") && toml.contains(&centre.url()),
        "{toml}"
    );
    assert!(!data.join("centre/enrolment.json").exists());
    for f in ["centre/station-ca.pem", "centre/identity-1.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(data.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o077, 0, "{f} mode {m:o}");
    }

    // centre status: reachable, enrolled, the identity's validity, numbers left.
    let s = ok(idstation(&data, &["--json", "centre", "status"], &[], &[]));
    assert_eq!(s["reachable"], true, "{s}");
    assert_eq!(s["centre"]["station"], "tas01-st1", "{s}");
    assert_eq!(s["centre"]["office"], "TAS01", "{s}");
    assert_eq!(s["centre"]["state"], "enrolled", "{s}");
    assert!(
        s["local"]["identity"]["days_left"].as_i64().unwrap() > 0,
        "{s}"
    );
    assert!(
        s["local"]["identity"]["subject"]
            .as_str()
            .unwrap()
            .contains("tas01-st1"),
        "{s}"
    );
    assert!(s["local"]["numbers_left"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["centre"]["source"], "status", "{s}");
    assert_eq!(
        s["centre"]["numbers_left"], s["local"]["numbers_left"],
        "{s}"
    );
    // The Document Signer the centre's CSCA certified at enrolment states a key usage period
    // of 92 days (ICAO Doc 9303-12 Table 1: up to 3 months): 91 whole days are left.
    let ds = &s["local"]["document_signer"];
    assert_eq!(ds["days_left"], 91, "{s}");
    assert!(
        ds["key_usage_until"].as_str().unwrap().ends_with('Z'),
        "{s}"
    );
    let text_out = idstation(&data, &["centre", "status"], &[], &[]);
    assert!(text_out.status.success(), "{}", text(&text_out));
    let t = String::from_utf8_lossy(&text_out.stdout);
    assert!(
        t.contains("reachable") && t.contains("valid") && t.contains("Numbers left"),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "Document Signer {} (serial {}) signs EF.SOD until {} (91 days left)",
            ds["key"].as_str().unwrap(),
            ds["serial"].as_str().unwrap(),
            ds["key_usage_until"].as_str().unwrap()
        )),
        "{t}"
    );

    // ca show lists the centre's CAs and the station's own audit and DS certificates; the
    // station's HSM holds no CA key.
    let cas = idstation(&data, &["--json", "ca", "show"], &[], &[]);
    assert!(cas.status.success(), "{}", text(&cas));
    let cas = String::from_utf8_lossy(&cas.stdout);
    for label in [
        "centre-root-ca",
        "centre-esign-ca",
        "centre-csca",
        "audit-1",
        "ds-1",
    ] {
        assert!(cas.contains(label), "{label} missing from ca show:\n{cas}");
    }
    for label in ["root-ca-1", "esign-ca-1", "csca-1"] {
        assert!(
            !cas.contains(&format!("\"{label}\"")),
            "{label} in ca show:\n{cas}"
        );
    }

    // The code works once: a second station with the same code is refused (409 → exit 5),
    // and its data dir is left as it was.
    let (_t2, data2) = data_dir();
    let o = enrol(&data2, &centre, "tas01-st1", centre.fingerprint(), &code);
    refused(&o, 5, "enrolment-code-used");
    assert!(
        !data2.exists(),
        "a refused enrolment left {}",
        data2.display()
    );
}

#[test]
fn a_wrong_fingerprint_is_refused_before_anything_is_sent_and_the_code_still_works() {
    let mut centre = Centre::start();
    centre.serve();
    let code = centre.add_station("TAS01", "tas01-st2");
    let (_t, data) = data_dir();
    let wrong = "00:".repeat(31) + "00";
    let t0 = Instant::now();
    let o = enrol(&data, &centre, "tas01-st2", &wrong, &code);
    refused(&o, 2, "centre-fingerprint");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(centre.fingerprint()),
        "names what it saw:\n{err}"
    );
    assert!(err.contains("not spent"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert!(!data.exists(), "the refused init left {}", data.display());
    assert_eq!(station_state(&centre, "tas01-st2"), "awaiting-enrolment");
    // A malformed fingerprint is refused naming the field, before any connection.
    let o = enrol(&data, &centre, "tas01-st2", "AB:CD", &code);
    refused(&o, 2, "centre-fingerprint");
    // The right one, typed without colons in lower case, enrols.
    let fp = centre.fingerprint().replace(':', "").to_lowercase();
    let r = ok(enrol(&data, &centre, "tas01-st2", &fp, &code));
    assert_eq!(r["station"], "tas01-st2");
    assert_eq!(station_state(&centre, "tas01-st2"), "enrolled");

    // After enrolment only a chain to the Station CA received then is accepted: another
    // centre (its own Station CA) at the configured URL ends the handshake, exit 7.
    let mut other = Centre::start();
    other.serve();
    let toml = std::fs::read_to_string(data.join("station.toml")).unwrap();
    std::fs::write(
        data.join("station.toml"),
        toml.replace(&centre.url(), &other.url()),
    )
    .unwrap();
    let o = idstation(&data, &["centre", "status"], &[], &[]);
    refused(&o, 7, "TLS");
}

#[test]
fn centre_status_exits_7_at_once_when_the_centre_is_stopped_and_6_once_the_station_is_disabled() {
    let mut centre = Centre::start();
    centre.serve();
    let code = centre.add_station("TAS01", "tas01-st3");
    let (_t, data) = data_dir();
    ok(enrol(
        &data,
        &centre,
        "tas01-st3",
        centre.fingerprint(),
        &code,
    ));

    centre.stop();
    let t0 = Instant::now();
    let o = idstation(&data, &["centre", "status"], &[], &[]);
    let took = t0.elapsed();
    refused(&o, 7, "cannot be reached");
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} (connect timeout is 5 s)"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("NOT reachable") && out.contains("tas01-st3"),
        "prints what it knows:\n{out}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing was changed"));

    // Back on the same port with a renewed server certificate (another public name, so the
    // centre issues a new one): the chain to the Station CA is verified, not the fingerprint
    // typed at enrolment, so status works again.
    let old = centre.fingerprint().to_owned();
    centre.set_public_name("centre.test");
    centre.serve();
    assert_ne!(
        centre.fingerprint(),
        old,
        "the server certificate was renewed"
    );
    let s = ok(idstation(&data, &["--json", "centre", "status"], &[], &[]));
    assert_eq!(s["reachable"], true, "{s}");

    centre.disable_station("tas01-st3");
    let o = idstation(&data, &["centre", "status"], &[], &[]);
    refused(&o, 6, "station-disabled");
}

#[test]
fn a_crash_after_the_centre_answered_is_finished_by_running_the_same_command_again() {
    let mut centre = Centre::start();
    centre.serve();
    let code = centre.add_station("TAS01", "tas01-st4");
    let (_t, data) = data_dir();
    let fp = centre.fingerprint().to_owned();
    let o = enrol_env(
        &data,
        &centre,
        "tas01-st4",
        &fp,
        &code,
        &[("IDSTATION_FAILPOINT", "init-centre.answer-saved")],
    );
    assert_eq!(
        o.status.code(),
        None,
        "killed at the failpoint:\n{}",
        text(&o)
    );
    assert_eq!(station_state(&centre, "tas01-st4"), "enrolled");
    let pending = data.join("centre/enrolment.json");
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(&pending).unwrap().permissions().mode();
        assert_eq!(m & 0o777, 0o600, "mode {m:o}");
    }
    assert!(!data.join("station.toml").exists());
    // The centre is stopped: the rerun does not ask it (the code is spent anyway).
    centre.stop();
    let r = ok(enrol(&data, &centre, "tas01-st4", &fp, &code));
    assert_eq!(r["resumed"], true, "{r}");
    assert_eq!(r["office"], "TAS01", "{r}");
    assert!(!pending.exists());
    // The finished station opens and reports what it knows.
    let o = idstation(&data, &["centre", "status"], &[], &[]);
    refused(&o, 7, "cannot be reached");
    assert!(String::from_utf8_lossy(&o.stdout).contains("tas01-st4"));
}

#[test]
fn a_standalone_station_has_no_centre_status() {
    let (_t, data) = data_dir();
    let o = idstation(&data, &["init", "--admin", "admin"], &[ADMIN_PASSWORD], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = idstation(&data, &["centre", "status"], &[], &[]);
    refused(&o, 2, "not enrolled");
    // --office belongs to the standalone ceremony only.
    let (_t2, data2) = data_dir();
    let o = idstation(
        &data2,
        &[
            "init",
            "--centre",
            "https://127.0.0.1:1",
            "--centre-fingerprint",
            "AB",
            "--enrolment-code",
            "X",
            "--office",
            "TAS02",
        ],
        &[],
        &[],
    );
    refused(&o, 2, "--office is not taken with --centre");
}
