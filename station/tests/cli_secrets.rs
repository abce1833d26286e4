//! Secrets never come from the environment (project rule; docs/security.md): an operator's
//! password set in `idstation`'s environment is not used, the secrets are read one per line
//! from standard input in each command's documented order, a station.toml whose HSM PIN
//! comes from an environment variable is refused naming the field, and `init` draws the HSM
//! user PIN into a 0600 file of the data dir unless given one.

#[path = "common/holder_pin.rs"]
mod holder_pin;
#[path = "common/rotation.rs"]
mod rig;
#[path = "common/software_profiles.rs"]
mod software_profiles;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use rig::{password, text, Station};

fn idstation(data: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
    c.arg("--data-dir").arg(data).args(args);
    c
}

/// Exit 2 and the last line of stderr, the message a user sees.
fn refused_with(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(2), "{}", text(o));
    let err = String::from_utf8_lossy(&o.stderr);
    err.lines().last().unwrap_or("").to_owned()
}

#[test]
fn a_password_in_the_environment_is_not_used() {
    let st = Station::new();
    let list = ["operator", "list", "--operator", "admin"];
    // The right password, but only in the environment: standard input is empty.
    let mut c = idstation(&st.data, &list);
    c.env("IDSTATION_PASSWORD", password("admin"))
        .env("IDSTATION_NEW_PASSWORD", password("admin"));
    let o = holder_pin::with_stdin(c, &[]);
    let err = refused_with(&o);
    assert!(err.contains("operator password"), "{err}");
    assert!(err.contains("standard input ended"), "{err}");
    assert!(err.contains("never from the environment"), "{err}");
    assert!(!text(&o).contains(password("admin")), "{}", text(&o));
    // A wrong password on standard input is not rescued by the right one in the environment.
    let mut c = idstation(&st.data, &list);
    c.env("IDSTATION_PASSWORD", password("admin"));
    let o = holder_pin::with_stdin(c, &["not-the-admin-password"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    // The same on standard input is taken.
    let o = holder_pin::with_stdin(idstation(&st.data, &list), &[password("admin")]);
    assert!(o.status.success(), "{}", text(&o));
}

/// `operator add --name NAME --role auditor --operator admin` with `lines` on standard input.
fn add_auditor(st: &Station, name: &str, lines: &[&str]) -> Output {
    let args = [
        "operator",
        "add",
        "--name",
        name,
        "--role",
        "auditor",
        "--operator",
        "admin",
    ];
    holder_pin::with_stdin(idstation(&st.data, &args), lines)
}

#[test]
fn operator_add_reads_the_operators_password_then_the_new_one() {
    let st = Station::new();
    let o = add_auditor(&st, "aud2", &[password("admin"), "aud2-password-on-line-2"]);
    assert!(o.status.success(), "{}", text(&o));
    let list = ["operator", "list", "--operator", "aud2"];
    let o = holder_pin::with_stdin(idstation(&st.data, &list), &["aud2-password-on-line-2"]);
    assert!(o.status.success(), "{}", text(&o));
    // Only one line: the new password is missing, nothing is added.
    let err = refused_with(&add_auditor(&st, "aud3", &[password("admin")]));
    assert!(err.contains("new operator's password"), "{err}");
}

#[test]
fn init_reads_admin_second_admin_and_so_pin_in_order_and_draws_the_hsm_pin_into_a_0600_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let args = [
        "init",
        "--admin",
        "ann",
        "--second-admin",
        "ben",
        "--hsm-so-pin-stdin",
    ];
    // The SO PIN line is missing: refused naming it, and nothing is left behind.
    let o = holder_pin::with_stdin(
        idstation(&data, &args),
        &["ann-password-1234", "ben-password-5678"],
    );
    let err = refused_with(&o);
    assert!(err.contains("hsm SO PIN"), "{err}");
    assert!(!data.join("station.toml").exists());
    let mut c = idstation(&data, &args);
    c.env("IDSTATION_HSM_PIN", "not-used-hsm-pin")
        .env("IDSTATION_HSM_SO_PIN", "not-used-so-pin");
    let o = holder_pin::with_stdin(
        c,
        &["ann-password-1234", "ben-password-5678", "so-pin-9d2c41"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let pin_file = data.join("secrets/hsm-pin");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("HSM user PIN drawn at random into"), "{out}");
    let mode = std::fs::metadata(&pin_file)
        .expect("hsm-pin")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let pin = std::fs::read_to_string(&pin_file).expect("hsm-pin");
    assert_eq!(pin.trim().len(), 32, "128 random bits in hex");
    assert_ne!(pin.trim(), "not-used-hsm-pin");
    let toml = std::fs::read_to_string(data.join("station.toml")).expect("station.toml");
    assert!(toml.contains(&pin_file.display().to_string()), "{toml}");
    assert!(!toml.contains("env = \"IDSTATION"), "{toml}");
    // Both admins log in with the password from their own line.
    for (who, pw) in [("ann", "ann-password-1234"), ("ben", "ben-password-5678")] {
        let list = ["operator", "list", "--operator", who];
        let o = holder_pin::with_stdin(idstation(&data, &list), &[pw]);
        assert!(o.status.success(), "{who}: {}", text(&o));
    }
}

#[test]
fn a_station_toml_taking_the_hsm_pin_from_the_environment_is_refused_naming_the_field() {
    let st = Station::new();
    let path = st.data.join("station.toml");
    let mut doc: toml::Table = std::fs::read_to_string(&path)
        .expect("station.toml")
        .parse()
        .expect("toml");
    let hsm = doc
        .get_mut("hsm")
        .and_then(|h| h.as_table_mut())
        .expect("[hsm]");
    let mut env = toml::Table::new();
    env.insert("env".into(), "IDSTATION_HSM_PIN".into());
    hsm.insert("pin".into(), env.into());
    std::fs::write(&path, doc.to_string()).expect("write station.toml");
    let mut c = idstation(&st.data, &["operator", "list", "--operator", "admin"]);
    c.env("IDSTATION_HSM_PIN", st.hsm_pin());
    let o = holder_pin::with_stdin(c, &[password("admin")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        err.contains("[hsm] pin = { env = ... } is refused"),
        "{err}"
    );
    assert!(
        err.contains("never come from environment variables"),
        "{err}"
    );
    assert!(err.contains("chmod 600"), "{err}");
}
