//! CA key rotation under dual control from the CA workspace: one administrator files an
//! e-Signature CA rotation, their own approval is refused with the station's dual-control rule,
//! a second administrator approves, and the request runs (new key esign-ca-2 active).

mod common;

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

#[test]
fn an_esign_rotation_needs_a_second_administrator_and_then_runs() {
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
        has_label(h, "Request 1") && has_label(h, "pending")
    });

    // The requester's own approval is refused with the station's rule.
    click(&mut h, "Approve");
    wait_for(&mut h, "refusal", Duration::from_secs(30), |h| {
        has_label_containing(h, "Refused: ") && has_label_containing(h, "dual control")
    });
    assert!(has_label(&h, "pending"), "the request is still pending");
    assert!(!has_label(&h, "esign-ca-2"), "no new key yet");

    click(&mut h, "Log out");
    wait_for(&mut h, "log-in form", Duration::from_secs(10), |h| {
        has_label(h, "Log in")
    });
    admin_log_in(&mut h, "admin2", ADMIN2_PASSWORD);
    wait_for(&mut h, "request listed", Duration::from_secs(30), |h| {
        has_label(h, "Request 1") && has_label(h, "pending")
    });
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
        |h| has_label_containing(h, "executed"),
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
}
