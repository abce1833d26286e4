//! The HSM module's environment reaches `idstation` before it starts, never from inside it:
//! SoftHSM2 reads `SOFTHSM2_CONF` once, at `C_Initialize`, and the binary restarts itself with
//! its data dir's configuration (`station::hsm_env`, `hsm::process_env`), whatever environment
//! it was started with.

use std::path::Path;
use std::process::{Command, Output};

const HSM_PIN: &str = "hsm-pin-5d0c2b71e9";
const ADMIN_PASSWORD: &str = "admin-password-8c3e";

#[path = "common/holder_pin.rs"]
mod holder_pin;

fn idstation(data_dir: &Path, args: &[&str], softhsm2_conf: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
    c.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("IDSTATION_LOG", "debug");
    match softhsm2_conf {
        Some(conf) => c.env("SOFTHSM2_CONF", conf),
        None => c.env_remove("SOFTHSM2_CONF"),
    };
    holder_pin::with_stdin(c, &[ADMIN_PASSWORD])
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn idstation_started_without_or_with_another_softhsm2_conf_uses_its_data_dirs_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let pin = tmp.path().join("hsm-pin");
    std::fs::write(&pin, format!("{HSM_PIN}\n")).expect("pin file");
    std::fs::set_permissions(&pin, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");

    // Started with no SoftHSM2 configuration at all: init creates the token under data/hsm.
    let init = idstation(
        &data,
        &[
            "init",
            "--admin",
            "admin",
            "--hsm-pin-file",
            pin.to_str().unwrap(),
        ],
        None,
    );
    assert!(init.status.success(), "{}", text(&init));
    let tokens: Vec<_> = std::fs::read_dir(data.join("hsm/tokens"))
        .expect("token dir under the data dir")
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(tokens.len(), 1, "one token in data/hsm/tokens");
    assert!(
        String::from_utf8_lossy(&init.stderr)
            .contains("restarting with the HSM module's environment"),
        "{}",
        text(&init)
    );

    // Started with another station's configuration (an empty token dir): it still signs with
    // its own token.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("tokens")).expect("other token dir");
    let other_conf = elsewhere.join("softhsm2.conf");
    std::fs::write(
        &other_conf,
        format!(
            "directories.tokendir = {}\n",
            elsewhere.join("tokens").display()
        ),
    )
    .expect("other conf");
    let crl = tmp.path().join("esign.crl");
    let o = idstation(
        &data,
        &[
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            crl.to_str().unwrap(),
            "--operator",
            "admin",
        ],
        Some(&other_conf),
    );
    assert!(o.status.success(), "{}", text(&o));
    let verify = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(&crl)
        .output()
        .expect("openssl");
    assert!(verify.status.success(), "openssl reads the CRL: {verify:?}");
    assert_eq!(
        std::fs::read_dir(elsewhere.join("tokens"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .count(),
        0,
        "nothing was created in the other configuration's token dir"
    );

    // Started with the data dir's own configuration: no restart.
    let own = data.join("hsm/softhsm2.conf");
    let crl2 = tmp.path().join("esign-2.crl");
    let o = idstation(
        &data,
        &[
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            crl2.to_str().unwrap(),
            "--operator",
            "admin",
        ],
        Some(&own),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !String::from_utf8_lossy(&o.stderr)
            .contains("restarting with the HSM module's environment"),
        "{}",
        text(&o)
    );
}
