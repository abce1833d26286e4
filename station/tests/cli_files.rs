//! Issue 13, items 11 and 12, end to end through the `idstation` binary: the data dir and
//! everything `init` writes are owner-only whatever the umask; start-up refuses a data dir or
//! an HSM PIN file that group or others can read; no output file is written over an existing
//! file or through a planted symbolic link, and nothing outside is touched.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HSM_PIN: &str = "hsm-pin-90c2e71b55";
const ADMIN_PASSWORD: &str = "admin-password-c41f";
const AUDITOR_PASSWORD: &str = "auditor-password-2b7e";

#[path = "common/holder_pin.rs"]
mod holder_pin;
/// `idstation` under `umask`, through sh so that the umask is the child's own.
#[path = "common/software_profiles.rs"]
mod software_profiles;

/// `idstation ARGS` under `umask`, with `password` and then AUDITOR_PASSWORD (a new
/// operator's) on standard input.
fn idstation_umask(umask: &str, data: &Path, args: &[&str], password: &str) -> Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_idstation"))
        .arg("--data-dir")
        .arg(data)
        .args(args);
    holder_pin::with_stdin(c, &[password, AUDITOR_PASSWORD])
}

fn idstation(data: &Path, args: &[&str], password: &str) -> Output {
    idstation_umask("022", data, args, password)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "idstation failed:\n{}", text(&o));
    o
}

/// Exit code `code`, and stderr containing every one of `needles`; no secret anywhere.
fn refused(o: &Output, code: i32, needles: &[&str]) {
    let all = text(o);
    assert_eq!(o.status.code(), Some(code), "{all}");
    let err = String::from_utf8_lossy(&o.stderr);
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{all}");
    }
    for secret in [HSM_PIN, ADMIN_PASSWORD, AUDITOR_PASSWORD] {
        assert!(!all.contains(secret), "a secret in the output:\n{all}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).expect("stat").mode() & 0o7777
}

/// Every path under `root` (root included) with its mode.
fn modes(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = vec![(root.to_path_buf(), true, mode(root))];
    for e in std::fs::read_dir(root).expect("ls") {
        let p = e.expect("entry").path();
        let m = std::fs::symlink_metadata(&p).expect("stat");
        if m.is_dir() {
            out.extend(modes(&p));
        } else {
            out.push((p, false, m.mode() & 0o7777));
        }
    }
    out
}

fn assert_owner_only(root: &Path) {
    let all = modes(root);
    let wrong: Vec<_> = all
        .iter()
        .filter(|(_, dir, m)| *m != if *dir { 0o700 } else { 0o600 })
        .map(|(p, _, m)| format!("{} {m:04o}", p.display()))
        .collect();
    assert!(
        wrong.is_empty(),
        "not owner-only (dirs 0700, files 0600): {wrong:#?}"
    );
}

fn init(data: &Path, extra: &[&str], umask: &str) -> Output {
    let mut args = vec!["init", "--admin", "admin", "--station", "files-test"];
    args.extend_from_slice(extra);
    idstation_umask(umask, data, &args, ADMIN_PASSWORD)
}

#[test]
fn init_under_umask_000_leaves_only_owner_only_files_and_dirs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    ok(init(&data, &[], "000"));
    // The registry, its WAL, the config, the CA certificates, the HSM token: all of it.
    for f in [
        "station.toml",
        "registry.sqlite",
        "ca/root-ca-1.pem",
        "ca/audit-1.pem",
        "hsm/softhsm2.conf",
    ] {
        assert!(data.join(f).is_file(), "{f} missing");
    }
    assert_owner_only(&data);
    // Later writes under the same umask: an operator (the registry's -wal/-shm), a published
    // CRL in the data dir and a CRL at a path the admin names.
    ok(idstation_umask(
        "000",
        &data,
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
        ADMIN_PASSWORD,
    ));
    let out = tmp.path().join("esign.crl");
    ok(idstation_umask(
        "000",
        &data,
        &[
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            s(&out),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    assert!(data.join("crl/esign-ca-1.crl").is_file());
    assert_owner_only(&data);
    assert_eq!(mode(&out), 0o600, "{}", out.display());
}

#[test]
fn start_up_refuses_a_data_dir_or_hsm_pin_file_that_others_can_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pin = tmp.path().join("hsm.pin");
    std::fs::write(&pin, format!("{HSM_PIN}\n")).expect("pin file");
    let set = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };

    // init itself refuses a PIN file others can read, and creates nothing.
    set(&pin, 0o644);
    let data = tmp.path().join("data");
    let o = init(&data, &["--hsm-pin-file", s(&pin)], "022");
    let fix = format!("fix: chmod 600 {}", pin.display());
    refused(
        &o,
        2,
        &[s(&pin), "HSM PIN file has mode 0644", "mode 0600", &fix],
    );
    assert!(!data.exists(), "a refused init left {}", data.display());

    set(&pin, 0o600);
    ok(init(&data, &["--hsm-pin-file", s(&pin)], "022"));
    ok(idstation(&data, &["--json", "ca", "show"], ""));

    // The data dir opened to the group (as a careless `chmod -R g+rX` or a restore would).
    set(&data, 0o750);
    let o = idstation(&data, &["--json", "ca", "show"], "");
    let fix = format!("fix: chmod 700 {}", data.display());
    refused(
        &o,
        2,
        &[
            s(&data),
            "data dir has mode 0750",
            "group and others must have no access",
            &fix,
        ],
    );
    set(&data, 0o700);
    ok(idstation(&data, &["--json", "ca", "show"], ""));

    // The PIN file readable by others.
    set(&pin, 0o604);
    let o = idstation(&data, &["--json", "ca", "show"], "");
    let fix = format!("fix: chmod 600 {}", pin.display());
    refused(&o, 2, &[s(&pin), "HSM PIN file has mode 0604", &fix]);
    set(&pin, 0o600);
    ok(idstation(&data, &["--json", "ca", "show"], ""));
}

#[test]
fn outputs_are_never_written_over_a_file_or_through_a_planted_link() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let data = t.join("data");
    ok(init(&data, &[], "022"));
    software_profiles::install(&data);
    ok(idstation(
        &data,
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
        ADMIN_PASSWORD,
    ));
    // What an insider wants overwritten, and a place a dangling link points to.
    let victim = t.join("victim");
    std::fs::write(&victim, b"precious").expect("victim");
    let nowhere = t.join("nowhere");
    let crl_number = |o: &Output| -> u64 {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        v["crl_number"].as_u64().expect("crl_number")
    };
    let first = t.join("first.crl");
    let n1 = crl_number(&ok(idstation(
        &data,
        &[
            "--json",
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            s(&first),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    )));

    // CRL and certificate outputs: an existing file, a link to a file, a dangling link.
    let link = t.join("link.crl");
    symlink(&victim, &link).expect("symlink");
    let dangling = t.join("dangling.pem");
    symlink(&nowhere, &dangling).expect("symlink");
    for (out, what) in [
        (&first, "already exists"),
        (&link, "a symbolic link is in the way"),
        (&dangling, "a symbolic link is in the way"),
    ] {
        let o = idstation(
            &data,
            &[
                "ca",
                "crl",
                "--key",
                "esign-ca-1",
                "--out",
                s(out),
                "--operator",
                "admin",
            ],
            ADMIN_PASSWORD,
        );
        refused(&o, 2, &["invalid input: out", s(out), what]);
    }
    let key = t.join("k.key");
    let spki = t.join("k.spki.pem");
    let sh = |c: &mut Command| assert!(c.status().expect("openssl").success());
    sh(Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&key));
    sh(Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&spki));
    let subject = t.join("subject.json");
    std::fs::write(
        &subject,
        r#"{"pinfl":"41505852610128","surname":"Toxtayeva","given_names":"Gulnora"}"#,
    )
    .expect("subject");
    let o = idstation(
        &data,
        &[
            "ca",
            "issue",
            "--spki",
            s(&spki),
            "--subject",
            s(&subject),
            "--profile",
            "software-holder-auth",
            "--out",
            s(&dangling),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    );
    refused(
        &o,
        2,
        &["invalid input: out", "a symbolic link is in the way"],
    );

    // Audit export: the folder itself a link to another folder, and a link planted at the
    // events file's name inside a fresh folder.
    let elsewhere = t.join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let exp_link = t.join("export-link");
    symlink(&elsewhere, &exp_link).expect("symlink");
    let export = |out: &Path| {
        idstation(
            &data,
            &["audit", "export", "--out", s(out), "--operator", "aud1"],
            AUDITOR_PASSWORD,
        )
    };
    let o = export(&exp_link);
    assert!(!o.status.success(), "{}", text(&o));
    refused(
        &o,
        o.status.code().unwrap_or(-1),
        &[s(&exp_link), "symbolic link"],
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).expect("ls").count(),
        0,
        "written through the link"
    );
    let exp = t.join("export");
    std::fs::create_dir(&exp).expect("mkdir");
    symlink(&nowhere, exp.join("events.jsonl")).expect("symlink");
    let o = export(&exp);
    refused(&o, 5, &["events.jsonl", "a symbolic link is in the way"]);
    assert_eq!(
        std::fs::read_dir(&exp).expect("ls").count(),
        1,
        "only the planted link"
    );

    // Nothing outside was touched, and no CRL number was spent on a refused output.
    assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
    assert!(
        std::fs::symlink_metadata(&nowhere).is_err(),
        "created behind a dangling link"
    );
    let second = t.join("second.crl");
    let n2 = crl_number(&ok(idstation(
        &data,
        &[
            "--json",
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            s(&second),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    )));
    assert_eq!(n2, n1 + 1, "refused CRL outputs spent a CRL number");
    // A clean export into a new folder works, files 0600.
    let good = t.join("good-export");
    ok(export(&good));
    assert_owner_only(&good);

    // The data dir's own published CRL replaced by a link: republishing replaces the link
    // with a file and leaves its target alone.
    let published = data.join("crl/esign-ca-1.crl");
    std::fs::remove_file(&published).expect("rm");
    symlink(&victim, &published).expect("symlink");
    let third = t.join("third.crl");
    ok(idstation(
        &data,
        &[
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            s(&third),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    assert!(std::fs::symlink_metadata(&published)
        .expect("stat")
        .is_file());
    assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
}
