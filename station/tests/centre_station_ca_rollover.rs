//! The centre's Station CA rollover through the `idstation` binary (docs/centre.md "Station CA
//! rollover"): a station enrolled before issues a card (vpcd + vchip) before the switch, after
//! it with the identity it enrolled with, and after it renewed its identity under the new key;
//! `centre status` stores the new Station CA (checked to its root, 0600); a station enrolled
//! after gets its identity from the new key. A real centre (testrig::centre: PostgreSQL,
//! SoftHSM2, two `idcentral serve` instances). Needs `cargo test -p central --no-run`
//! in the same target dir.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use testrig::centre::{Centre, CENTRE_ADMIN2_PASSWORD};

#[path = "common/enrolled.rs"]
mod enrolled;
use enrolled::*;

fn ok(o: std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "idstation failed:\n{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", text(&o)))
}

fn status(st: &Station) -> serde_json::Value {
    let s = ok(st.run(&["--json", "centre", "status"], &[], &[]));
    assert_eq!(s["reachable"], true, "{s}");
    assert_eq!(s["centre"]["state"], "enrolled", "{s}");
    s
}

/// Issue `holder` on a blank card with `serial` in a leased reader.
fn issues(st: &Station, slot: &testrig::Slot, holder: &str, serial: u32) {
    let card = slot.insert(&st.blank_card(serial), &[]);
    let o = st.issue(holder, &slot.reader_name, &[]);
    assert!(o.status.success(), "{holder}:\n{}", text(&o));
    card.pull();
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

/// Rotate the centre's Station CA (admin files, admin2 approves) and write the root and both
/// Station CA certificates into `d`.
fn rotate(centre: &Centre, d: &Path) {
    centre.ok(&["ca", "rotate", "--ca", "station", "--operator", "admin"]);
    let approve = ["ca", "approve", "1", "--operator", "admin2"];
    centre.ok_as(&approve, CENTRE_ADMIN2_PASSWORD);
    for key in ["root-ca-1", "station-ca-1", "station-ca-2"] {
        let out = d.join(key);
        let args = ["ca", "certs", "--key", key, "--out", out.to_str().unwrap()];
        centre.ok(&[&args[..], &["--operator", "admin"]].concat());
        let pem = out.join(format!("{key}.pem"));
        std::fs::copy(pem, d.join(format!("{key}.pem"))).unwrap();
    }
    std::fs::copy(d.join("root-ca-1.pem"), d.join("root.pem")).unwrap();
}

/// After the switch: served with the anchor of enrolment, the new key stored, 0600, once.
fn learns_the_new_key(st: &Station, d: &Path) {
    let s = status(st);
    assert_eq!(
        s["anchors"]["added"],
        serde_json::json!(["station-ca-2"]),
        "{s}"
    );
    assert_eq!(s["anchors"]["server_issuer"], "station-ca-1", "{s}");
    let stored = st.data.join("centre/station-cas.pem");
    let mode = std::fs::metadata(&stored).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "station-cas.pem mode {mode:o}");
    let pem = |p: &Path| std::fs::read_to_string(p).unwrap();
    assert_eq!(pem(&stored), pem(&d.join("station-ca-2.pem")));
    let s = status(st);
    assert_eq!(s["anchors"]["added"], serde_json::json!([]), "{s}");
}

/// `centre renew-identity` (a ca-admin; the same HSM key): the identity under station-ca-2.
fn renews(st: &Station, d: &Path) {
    let identity = st.data.join("centre/identity-1.pem");
    assert!(verifies(d, "station-ca-1.pem", &identity));
    let renew = ["--json", "centre", "renew-identity", "--operator", "admin"];
    let wrong = st.run(&renew, &["not-the-password-1"], &[]);
    assert_eq!(wrong.status.code(), Some(6), "{}", text(&wrong));
    let r = ok(st.run(&renew, &[ADMIN_PASSWORD], &[]));
    assert_eq!(r["issuer"], "station-ca-2", "{r}");
    assert!(verifies(d, "station-ca-2.pem", &identity));
    assert!(!verifies(d, "station-ca-1.pem", &identity));
    let mode = std::fs::metadata(&identity).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "identity-1.pem mode {mode:o}");
    let actions = st.audit_actions();
    for a in ["centre.anchors-updated", "centre.identity-renewed"] {
        assert!(actions.iter().any(|x| x == a), "no {a} in {actions:?}");
    }
}

#[test]
fn a_station_keeps_issuing_through_a_station_ca_rollover_and_renews_its_identity() {
    let mut centre = Centre::start();
    centre.serve();
    let second = centre.another_instance();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let url = centre.url();
    let before = Station::enrol_at(&centre, "TAS01", "tas01-st1", &second.url(), &[&url]);
    let s = status(&before);
    assert_eq!(
        s["anchors"]["centre_keys"],
        serde_json::json!(["station-ca-1"]),
        "{s}"
    );
    assert!(!before.data.join("centre/station-cas.pem").exists());
    let slot = testrig::Slot::lease();
    issues(&before, &slot, "holder-01.json", 0x5D00_0001);

    rotate(&centre, d);
    issues(&before, &slot, "holder-02.json", 0x5D00_0002);
    learns_the_new_key(&before, d);
    renews(&before, d);
    issues(&before, &slot, "holder-03.json", 0x5D00_0003);
    status(&before);

    // A station enrolled after the rollover: its identity from station-ca-2.
    let after = Station::enrol(&centre, "TAS02", "tas02-st1");
    let identity = after.data.join("centre/identity-1.pem");
    assert!(verifies(d, "station-ca-2.pem", &identity));
    let s = status(&after);
    assert_eq!(
        s["anchors"]["added"],
        serde_json::json!(["station-ca-2"]),
        "{s}"
    );
}

/// The active National Root in the station's registry: its label.
fn active_root(st: &Station) -> String {
    let reg = st.registry();
    reg.active_ca_key("root").unwrap().unwrap().label
}

#[test]
fn a_station_learns_a_new_root_through_its_link_and_keeps_issuing_under_it() {
    let mut centre = Centre::start();
    centre.serve();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let before = Station::enrol(&centre, "TAS01", "tas01-st1");
    let slot = testrig::Slot::lease();
    issues(&before, &slot, "holder-01.json", 0x5E00_0001);

    centre.ok(&["ca", "rotate", "--ca", "root", "--operator", "admin"]);
    let approve = ["ca", "approve", "1", "--operator", "admin2"];
    centre.ok_as(&approve, CENTRE_ADMIN2_PASSWORD);
    issues(&before, &slot, "holder-02.json", 0x5E00_0002);
    assert_eq!(active_root(&before), "centre-root-ca");

    // The e-Signature CA rotated under root-ca-2 before the station asked for anchors: the
    // issuance learns the new root (through NewWithOld) and goes on.
    centre.ok(&["ca", "rotate", "--ca", "esign", "--operator", "admin"]);
    let approve = ["ca", "approve", "2", "--operator", "admin2"];
    centre.ok_as(&approve, CENTRE_ADMIN2_PASSWORD);
    issues(&before, &slot, "holder-03.json", 0x5E00_0003);
    assert_eq!(active_root(&before), "centre-root-ca-2");
    let actions = before.audit_actions();
    assert!(
        actions.iter().any(|a| a == "centre.root-learnt"),
        "{actions:?}"
    );
    let s = status(&before);
    assert!(s["anchors"]["roots_learnt"].is_null(), "{s}");

    // The Station CA rotated under root-ca-2: stored, and the identity renewed under it.
    centre.ok(&["ca", "rotate", "--ca", "station", "--operator", "admin"]);
    let approve = ["ca", "approve", "3", "--operator", "admin2"];
    centre.ok_as(&approve, CENTRE_ADMIN2_PASSWORD);
    let s = status(&before);
    assert_eq!(
        s["anchors"]["added"],
        serde_json::json!(["station-ca-2"]),
        "{s}"
    );
    let renew = ["--json", "centre", "renew-identity", "--operator", "admin"];
    ok(before.run(&renew, &[ADMIN_PASSWORD], &[]));
    for key in ["root-ca-2", "station-ca-2"] {
        let out = d.join(key);
        let args = ["ca", "certs", "--key", key, "--out", out.to_str().unwrap()];
        centre.ok(&[&args[..], &["--operator", "admin"]].concat());
        std::fs::copy(out.join(format!("{key}.pem")), d.join(format!("{key}.pem"))).unwrap();
    }
    std::fs::copy(d.join("root-ca-2.pem"), d.join("root.pem")).unwrap();
    let identity = before.data.join("centre/identity-1.pem");
    assert!(verifies(d, "station-ca-2.pem", &identity));

    // A station enrolled after the root rollover trusts root-ca-2 alone: it accepts station-ca-1
    // (under root-ca-1) through OldWithNew and station-ca-2 directly.
    let after = Station::enrol(&centre, "TAS02", "tas02-st1");
    assert_eq!(active_root(&after), "centre-root-ca");
    let root = after.registry().active_ca_key("root").unwrap().unwrap();
    let pem = std::fs::read_to_string(d.join("root-ca-2.pem")).unwrap();
    assert_eq!(
        root.certificate.map(|c| ca::cert_pem(&c).unwrap()),
        Some(pem)
    );
    let s = status(&after);
    let keys = serde_json::json!(["station-ca-1", "station-ca-2"]);
    assert_eq!(s["anchors"]["centre_keys"], keys, "{s}");
    assert!(s["anchors"]["roots_learnt"].is_null(), "{s}");
    // It issues a card (another holder) under esign-ca-2, which root-ca-2 signed.
    let holder = holder_variant(&after, "holder-01.json", 7);
    let card = slot.insert(&after.blank_card(0x5E00_0004), &[]);
    let args = ["--json", "issue", "--holder", holder.to_str().unwrap()];
    let args = [
        &args[..],
        &["--reader", &slot.reader_name, "--operator", "clerk"],
    ]
    .concat();
    let o = after.run(&args, &[CLERK_PASSWORD], &[]);
    assert!(o.status.success(), "{}", text(&o));
    card.pull();
}

/// `base` with another PINFL (the registry's check digit: weights 7, 3, 1), its photo path
/// made absolute, written into the station's directory.
fn holder_variant(st: &Station, base: &str, seq: u32) -> std::path::PathBuf {
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(base)).unwrap()).unwrap();
    let pinfl = v["pinfl"].as_str().unwrap().to_owned();
    let mut digits: Vec<u32> = pinfl[..9]
        .chars()
        .map(|c| c.to_digit(10).unwrap())
        .collect();
    digits.extend(format!("{seq:04}").chars().map(|c| c.to_digit(10).unwrap()));
    let check = digits
        .iter()
        .zip([7, 3, 1].iter().cycle())
        .map(|(d, w)| d * w)
        .sum::<u32>()
        % 10;
    let new: String = digits
        .iter()
        .chain(std::iter::once(&check))
        .map(|d| char::from_digit(*d, 10).unwrap())
        .collect();
    v["pinfl"] = serde_json::json!(new);
    if let Some(p) = v["photo"].as_str() {
        v["photo"] = serde_json::json!(fixture(p).to_str().unwrap());
    }
    let path = st.dir.join(format!("holder-{new}.json"));
    std::fs::write(&path, v.to_string()).unwrap();
    path
}
