//! The GUI re-checks the account before every action (issue 13 items 5 and 6): a clerk logged
//! in to the window is disabled by a ca-admin; their next look-up is refused with the log-in's
//! answer and the refusal is in the audit log, as a CLI refusal would be. Its own test binary:
//! it disables the rig's clerk.

mod common;

use std::time::Duration;

use common::*;
use zeroize::Zeroizing;

fn refusals(reason: &str) -> usize {
    let reg =
        registry::Registry::open_read_only(rig().data.join("registry.sqlite")).expect("registry");
    reg.audit_events(1, u64::MAX)
        .expect("events")
        .iter()
        .filter(|e| e.action == "operator.refused" && e.operator == "clerk")
        .filter(|e| e.details.contains(reason))
        .count()
}

#[test]
fn a_clerk_disabled_while_logged_in_is_refused_at_the_next_action_and_it_is_audited() {
    let mut h = harness(options(None, false), [1400.0, 1000.0]);
    log_in(&mut h, "clerk", CLERK_PASSWORD, "Clerk workspace");
    // While the account is as it was, a look-up works (and is an audited read when it finds one).
    type_into(&mut h, "Holder PINFL", "41505852610128");
    click(&mut h, "Find holder");
    wait_for(&mut h, "look-up answer", Duration::from_secs(30), |h| {
        has_label_containing(h, "No holder with this PINFL")
    });

    // A ca-admin disables the clerk (as `idstation operator disable`).
    let mut st = station::Station::open_read_only(&rig().data).expect("open");
    let admin = st
        .authorize(
            "admin",
            &Zeroizing::new(ADMIN_PASSWORD.into()),
            "disable operators",
            &[registry::Role::CaAdmin],
        )
        .expect("admin");
    station::operators::disable(&mut st, &admin, "clerk").expect("disable");
    assert_eq!(refusals("session ended: operator is disabled"), 0);

    click(&mut h, "Find holder");
    // The refusal in plain words, the station's own text under Details.
    wait_for(&mut h, "refusal", Duration::from_secs(30), |h| {
        has_label(h, "The station does not allow this for your account.")
    });
    assert!(has_label(
        &h,
        "Log out and ask the administrator to check your account and role."
    ));
    click(&mut h, "Details");
    h.step();
    assert!(has_label_containing(
        &h,
        "clerk: operator name or password is wrong"
    ));
    assert_eq!(refusals("session ended: operator is disabled"), 1);
}
