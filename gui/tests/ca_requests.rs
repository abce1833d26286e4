//! Dual-control requests in the CA workspace, beyond the e-Signature rotation (rotation.rs):
//! a root rollover is filed only with a confirmation and a reason, and the reason is kept with
//! the request (read back from the registry); a request its requester withdraws is listed as
//! withdrawn, one another administrator refuses as refused. Own process: request numbers and
//! the "No CA requests." start are this file's.

mod common;

use std::time::Duration;

use common::*;
use egui_kittest::kittest::Queryable;

fn registry() -> registry::Registry {
    registry::Registry::open_read_only(rig().data.join("registry.sqlite")).expect("registry")
}

fn log_out(h: &mut H) {
    click(h, "Log out");
    wait_for(h, "log-in form", Duration::from_secs(10), |h| {
        has_label(h, "Log in")
    });
    // The form keeps the last operator name: erase it.
    h.get_by_label("Operator").click();
    h.step();
    h.key_press(egui::Key::End);
    for _ in 0..32 {
        h.key_press(egui::Key::Backspace);
    }
    h.step();
}

/// Click, and draw the frame that shows what the click changed.
fn click_then_draw(h: &mut H, label: &str) {
    click(h, label);
    h.step();
    h.step();
}

#[test]
fn a_root_rollover_needs_a_reason_and_withdrawn_is_not_refused() {
    let mut h = harness(options(None, false), [1600.0, 1400.0]);
    log_in(&mut h, "admin", ADMIN_PASSWORD, "CA administration");
    wait_for(&mut h, "request list", Duration::from_secs(30), |h| {
        has_label(h, "No CA requests.")
    });

    // Without a reason and a confirmation, nothing is filed; each missing part is named.
    click_then_draw(&mut h, "Request root rollover");
    click_then_draw(&mut h, "File the rollover request");
    assert!(has_label_containing(
        &h,
        "Reason for the rollover: write why the root is replaced"
    ));
    assert!(has_label(&h, "Tick the confirmation to file the request."));
    type_into(&mut h, "Reason for the rollover", "   ");
    click_then_draw(&mut h, "I confirm the root rollover");
    click_then_draw(&mut h, "File the rollover request");
    assert!(
        has_label_containing(&h, "Reason for the rollover: write why"),
        "blank is no reason"
    );
    h.step();
    assert!(has_label(&h, "No CA requests."), "nothing filed");
    assert!(registry().ca_requests(None).expect("list").is_empty());

    // With both, the request is filed and keeps the reason.
    let reason = "The root key reaches the end of its planned life";
    type_into(&mut h, "Reason for the rollover", reason);
    click_then_draw(&mut h, "File the rollover request");
    wait_for(&mut h, "request filed", Duration::from_secs(30), |h| {
        has_label_containing(h, "Request 1 filed: rotate CA root")
    });
    wait_for(&mut h, "request listed", Duration::from_secs(30), |h| {
        has_label(h, "Request 1") && has_label(h, reason)
    });
    let reqs = registry().ca_requests(None).expect("list");
    assert_eq!(reqs.len(), 1);
    let payload: serde_json::Value = serde_json::from_str(&reqs[0].payload).expect("json");
    assert_eq!(
        payload["note"], reason,
        "the reason is recorded with the request"
    );
    assert_eq!(reqs[0].ca, "root");

    // The requester withdraws it: listed as withdrawn, not refused.
    click_then_draw(&mut h, "Withdraw");
    wait_for(&mut h, "withdrawn", Duration::from_secs(30), |h| {
        has_label(h, "Request 1 withdrawn.")
    });
    wait_for(&mut h, "listed withdrawn", Duration::from_secs(30), |h| {
        has_label(h, "withdrawn by admin")
    });
    assert!(
        !has_label_containing(&h, "refused"),
        "withdrawn is not refused"
    );

    // Another administrator's refusal of a request is a refusal.
    click_then_draw(&mut h, "Request e-Signature CA rotation");
    wait_for(&mut h, "request filed", Duration::from_secs(30), |h| {
        has_label_containing(h, "Request 2 filed: rotate CA esign")
    });
    log_out(&mut h);
    log_in(&mut h, "admin2", ADMIN2_PASSWORD, "CA administration");
    wait_for(&mut h, "request listed", Duration::from_secs(30), |h| {
        has_label(h, "Request 2") && has_label(h, "waiting for approval")
    });
    click_then_draw(&mut h, "Refuse");
    wait_for(&mut h, "refused", Duration::from_secs(30), |h| {
        has_label(h, "refused by admin2")
    });
    assert!(
        has_label(&h, "withdrawn by admin"),
        "request 1 still withdrawn"
    );
    // The audit log tells them apart too.
    let events = registry().audit_events(1, u64::MAX).expect("audit");
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"ca.request.withdrawn"), "{actions:?}");
    assert!(actions.contains(&"ca.request.refused"), "{actions:?}");
    let created = events
        .iter()
        .find(|e| e.action == "ca.request.created" && e.object == "ca-request:1")
        .expect("created");
    assert!(created.details.contains(reason), "{}", created.details);
}
