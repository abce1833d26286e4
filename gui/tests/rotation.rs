//! CA key rotation under dual control from the CA workspace: one administrator files an
//! e-Signature CA rotation and is offered only Withdraw on it (dual control), a second
//! administrator approves, and the request runs (new key esign-ca-2 active). A
//! certificate of the retired key revoked afterwards is on the CRL "Publish CRL" signs with the
//! retired key (openssl reads it).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use egui_kittest::kittest::{NodeT, Queryable};

/// Log in, and on a refusal fail with the message the window shows.
fn admin_log_in(h: &mut H, name: &str, pw: &str) {
    // The form keeps the last operator name: erase it first.
    h.get_by_label("Operator").click();
    h.step();
    h.key_press(egui::Key::End);
    for _ in 0..32 {
        h.key_press(egui::Key::Backspace);
    }
    h.step();
    type_into(h, "Operator", name);
    type_into(h, "Password", pw);
    click(h, "Log in");
    wait_for(h, "workspace or refusal", Duration::from_secs(60), |h| {
        has_label(h, "CA administration") || has_label_containing(h, "refused")
    });
    let refusal: Vec<String> = h
        .query_all_by(|_| true)
        .filter_map(|n| n.accesskit_node().label())
        .collect();
    assert!(has_label(h, "CA administration"), "{name}: {refusal:?}");
}

fn sh(cmd: &mut Command) -> std::process::Output {
    let o = cmd.output().expect("run");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The admin's session on the rig's station (outside the GUI).
fn admin_session(st: &mut station::Station) -> station::session::Session {
    st.authorize(
        "admin",
        &zeroize::Zeroizing::new(ADMIN_PASSWORD.into()),
        "issue certificates",
        &[registry::Role::CaAdmin],
    )
    .expect("admin")
}

/// A certificate of the active e-Signature CA key for an openssl key (the test profile
/// `software-holder-sign`, which certifies keys made off a card); its serial.
fn software_certificate(data: &Path) -> String {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../station/tests/fixtures/profiles/cert");
    let dir = data.join("test-profiles/cert");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixtures.join("software-holder-sign.toml"),
        dir.join("software-holder-sign.toml"),
    )
    .unwrap();
    let cfg = data.join("station.toml");
    let toml = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        toml.replace("[profiles]\n", "[profiles]\ndir = \"test-profiles\"\n"),
    )
    .unwrap();
    let key = data.join("../soft.key");
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
    let spki = sh(Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key))
    .stdout;
    let mut st = station::Station::open(data).expect("open");
    let session = admin_session(&mut st);
    let subject = ca::holder_subject("31234567890123", "Karimova", "Dilnoza", "UZ");
    let r = station::ca_admin::issue(
        &mut st,
        &session,
        "software-holder-sign",
        station::ca_admin::KeySource::Spki(spki),
        &subject,
        &data.join("../soft.pem"),
    )
    .expect("ca issue");
    assert_eq!(r.issuer_key, "esign-ca-1");
    r.serial
}

#[test]
fn an_esign_rotation_needs_a_second_administrator_and_then_runs() {
    let serial = software_certificate(&rig().data);
    let mut h = harness(options(None, false), [1600.0, 1400.0]);
    admin_log_in(&mut h, "admin", ADMIN_PASSWORD);
    wait_for(&mut h, "request list", Duration::from_secs(30), |h| {
        has_label(h, "No CA requests.")
    });

    click(&mut h, "Request e-Signature CA rotation");
    wait_for(&mut h, "request filed", Duration::from_secs(30), |h| {
        has_label_containing(h, "Request 1 filed: rotate CA esign")
    });
    wait_for(&mut h, "request listed", Duration::from_secs(30), |h| {
        has_label(h, "Request 1") && has_label(h, "waiting for approval")
    });

    // The requester cannot approve their own request (dual control; the station refuses it
    // too, station/tests/cli_rotation.rs): it is offered Withdraw, not Approve.
    assert!(!has_label(&h, "Approve"), "no Approve on one's own request");
    assert!(has_label(&h, "Withdraw"));
    assert!(!has_label(&h, "esign-ca-2"), "no new key yet");

    click(&mut h, "Log out");
    wait_for(&mut h, "log-in form", Duration::from_secs(10), |h| {
        has_label(h, "Log in")
    });
    admin_log_in(&mut h, "admin2", ADMIN2_PASSWORD);
    wait_for(&mut h, "request listed", Duration::from_secs(30), |h| {
        has_label(h, "Request 1") && has_label(h, "waiting for approval")
    });
    assert!(
        !has_label(&h, "Withdraw"),
        "another's request: Approve or Refuse"
    );
    click(&mut h, "Approve");
    wait_for(&mut h, "execution", Duration::from_secs(120), |h| {
        has_label_containing(
            h,
            "Request 1 approved and executed: CA esign now signs with esign-ca-2",
        )
    });
    wait_for(
        &mut h,
        "executed in the list",
        Duration::from_secs(30),
        |h| has_label(h, "done"),
    );
    wait_for(&mut h, "hierarchy", Duration::from_secs(30), |h| {
        has_label(h, "esign-ca-2")
    });
    // The registry (read directly, an oracle independent of the GUI) has esign-ca-2 active.
    let reg =
        registry::Registry::open_read_only(rig().data.join("registry.sqlite")).expect("registry");
    let active = reg
        .active_ca_key("esign")
        .expect("query")
        .expect("an active esign key");
    assert_eq!(active.label, "esign-ca-2");
    assert!(has_label(&h, "retired"), "the old esign key shows retired");

    // A certificate of the retired key revoked now; "Publish CRL" signs every key's CRL, and the
    // retired key's lists it (openssl), the active key's does not.
    let mut st = station::Station::open(&rig().data).expect("open");
    let session = admin_session(&mut st);
    station::interactive::revoke_certificate(&mut st, &session, &serial, "keyCompromise")
        .expect("revoke");
    click(&mut h, "Publish CRL");
    wait_for(&mut h, "CRLs published", Duration::from_secs(60), |h| {
        has_label_containing(h, "CRLs published, one per CA key")
    });
    let listed = |label: &str| {
        let o = sh(Command::new("openssl")
            .args(["crl", "-noout", "-text", "-inform", "DER", "-in"])
            .arg(rig().data.join(format!("crl/{label}.crl"))));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
            .any(|s| s.trim().eq_ignore_ascii_case(&serial))
    };
    assert!(listed("esign-ca-1"), "the retired key's CRL lists {serial}");
    assert!(!listed("esign-ca-2"), "the active key's CRL does not");
}
