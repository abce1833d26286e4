//! Log-in per role, refusal, idle log-out, and the clerk who cannot reach another workspace.

mod common;

use std::time::Duration;

use common::*;
use egui_kittest::kittest::{NodeT, Queryable};

#[test]
fn each_role_opens_its_own_workspace_and_only_that() {
    for (name, pw, heading, absent) in [
        (
            "clerk",
            CLERK_PASSWORD,
            "Clerk workspace",
            ["CA hierarchy", "Audit log"],
        ),
        (
            "admin",
            ADMIN_PASSWORD,
            "CA administration",
            ["Holder", "Audit log"],
        ),
        (
            "auditor",
            AUDITOR_PASSWORD,
            "Audit",
            ["Holder", "CA hierarchy"],
        ),
    ] {
        let mut h = harness(options(None, false), [1280.0, 900.0]);
        log_in(&mut h, name, pw, heading);
        let role = match h.state().session().expect("session").role {
            station::Role::Clerk => "clerk",
            station::Role::CaAdmin => "CA administrator",
            station::Role::Auditor => "auditor",
        };
        let who = format!("Operator {name} ({role})");
        assert!(has_label(&h, &who), "{who} shown");
        for a in absent {
            assert!(!has_label(&h, a), "{name} must not see {a}");
        }
        click(&mut h, "Log out");
        wait_for(&mut h, "log-in form", Duration::from_secs(10), |h| {
            has_label(h, "Log in")
        });
    }
}

#[test]
fn a_wrong_password_is_refused_without_saying_which_part_was_wrong() {
    let mut h = harness(options(None, false), [1280.0, 900.0]);
    type_into(&mut h, "Operator", "clerk");
    type_into(&mut h, "Password", "not-the-password");
    click(&mut h, "Log in");
    wait_for(&mut h, "refusal", Duration::from_secs(30), |h| {
        has_label_containing(h, "Log-in refused")
    });
    assert!(has_label_containing(
        &h,
        "operator name or password is wrong"
    ));
    assert!(h.state().session().is_none());
    assert!(!has_label_containing(&h, "not-the-password"));
}

#[test]
fn an_idle_operator_is_logged_out() {
    let mut opts = options(None, false);
    opts.idle_timeout = Duration::from_secs(2);
    let mut h = harness(opts, [1280.0, 900.0]);
    log_in(&mut h, "auditor", AUDITOR_PASSWORD, "Audit");
    h.remove_cursor();
    wait_for(&mut h, "idle log-out", Duration::from_secs(20), |h| {
        has_label(h, "Log in")
    });
    assert!(has_label_containing(
        &h,
        "logged out after 2 s without activity"
    ));
    assert!(h.state().session().is_none());
}

/// Every widget a keyboard user can reach with Tab, by accessible name.
fn tab_through(h: &mut H, presses: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..presses {
        h.key_press(egui::Key::Tab);
        h.step();
        if let Some(n) = h.query_by(|n| n.is_focused()) {
            seen.push(n.accesskit_node().label().unwrap_or_default());
        }
    }
    seen
}

#[test]
fn a_clerk_never_reaches_the_ca_or_audit_workspace_even_by_keyboard() {
    let mut h = harness(options(None, false), [1280.0, 1400.0]);
    log_in(&mut h, "clerk", CLERK_PASSWORD, "Clerk workspace");
    let reached = tab_through(&mut h, 60);
    assert!(
        reached.iter().any(|l| l == "PINFL"),
        "Tab reaches the form: {reached:?}"
    );
    assert!(reached.iter().any(|l| l == "Issue card"), "{reached:?}");
    for forbidden in [
        "Publish CRL",
        "Revoke certificate",
        "Export",
        "Verify folder",
        "Export folder",
        "From date",
    ] {
        assert!(
            !reached.iter().any(|l| l == forbidden),
            "clerk reached {forbidden}: {reached:?}"
        );
        assert!(
            h.query_by_label(forbidden).is_none(),
            "{forbidden} exists for a clerk"
        );
    }
}

#[test]
fn a_ca_admin_publishes_a_crl() {
    let mut h = harness(options(None, false), [1280.0, 1200.0]);
    log_in(&mut h, "admin", ADMIN_PASSWORD, "CA administration");
    wait_for(&mut h, "CA hierarchy", Duration::from_secs(30), |h| {
        has_label(h, "root-ca-1")
    });
    click(&mut h, "Publish CRL");
    wait_for(&mut h, "CRLs published", Duration::from_secs(30), |h| {
        has_label_containing(h, "CRLs published, one per CA key")
    });
    // One CRL per CA key that publishes (root, e-Signature, CSCA), each with its next update.
    for key in ["root-ca-1", "esign-ca-1", "csca-1"] {
        assert!(has_label(&h, key), "{key}");
        assert!(rig().data.join(format!("crl/{key}.crl")).is_file(), "{key}");
    }
}

#[test]
fn idle_log_out_warns_first_and_keeps_the_clerks_draft_for_the_same_clerk() {
    let mut opts = options(None, false);
    opts.idle_timeout = Duration::from_secs(3);
    let mut h = harness(opts.clone(), [1280.0, 900.0]);
    log_in(&mut h, "clerk", CLERK_PASSWORD, "Clerk workspace");
    type_into(&mut h, "PINFL", "41505852610128");
    h.remove_cursor();
    // The last second of a 3 s time-out counts down, with a way to stay.
    wait_for(&mut h, "idle warning", Duration::from_secs(10), |h| {
        has_label(h, "Stay logged in")
    });
    assert!(has_label_containing(&h, "You will be logged out in "));
    click(&mut h, "Stay logged in");
    h.step();
    assert!(h.state().session().is_some(), "staying keeps the session");
    h.remove_cursor();
    wait_for(&mut h, "idle log-out", Duration::from_secs(20), |h| {
        h.state().session().is_none()
    });
    assert!(
        !has_label_containing(&h, "41505852610128"),
        "nothing left on screen"
    );
    // The same clerk finds the draft again (the log-in form keeps the operator's name).
    type_into(&mut h, "Password", CLERK_PASSWORD);
    click(&mut h, "Log in");
    wait_for(&mut h, "clerk workspace", Duration::from_secs(30), |h| {
        has_label(h, "Clerk workspace")
    });
    assert_eq!(h.state().clerk.form.pinfl, "41505852610128");
}
