//! The clerk's look-up on a station enrolled with the national centre (docs/gui.md "Clerk
//! workspace"), with real parts: a PostgreSQL cluster, `idcentral serve`, a station enrolled in
//! this process. A document this station did not issue is the centre's: the look-up says so and
//! the clerk declares it lost there; the CA administrator revokes another one from the CA
//! workspace. (A file of its own: one station per test process, as
//! SoftHSM2 reads its token directory once per process.)
//!
//! Needs `idcentral` built in the same target dir as the tests build it (`cargo test -p central
//! --no-run`).

mod common;
#[path = "../../station/tests/common/egov_centre.rs"]
mod egov_centre;

use common::*;
use egov_centre::*;
use egui_kittest::kittest::{NodeT, Queryable};
use gui::i18n::{tr, Lang};
use gui::GuiOptions;

const CLERK: &str = "centre-clerk-pw-51c2";

/// A holder declares a card of another office lost here: the look-up says the document was not
/// issued at this station and offers the declaration; confirmed, the national centre revokes
/// it (its record says lost) and the screen says so. Then the CA administrator revokes another
/// document (damaged) from the CA workspace; the centre's record says revoked.
#[test]
fn another_offices_card_is_declared_lost_from_the_look_up_and_a_ca_admin_revokes_a_document() {
    let rig = EgovRig::start("tas01-gui-lost", 5);
    rig.add_clerk(CLERK);
    // Issued through the centre's protocol without this station's registry: to the station it
    // is another office's document.
    let pinfl = "31234567890141";
    let number = rig.issue(pinfl);
    let mut opts = GuiOptions::new(rig.data.clone());
    opts.poll_readers = false;
    let mut h = harness(opts, [1280.0, 1100.0]);
    log_in(&mut h, "clerk", CLERK, "Clerk workspace");
    type_into(&mut h, "Document number", &number);
    click(&mut h, "Find document");
    let elsewhere = format!("Document {number} was not issued at this station.");
    wait_for(&mut h, "not issued here", SERVICE_SHORT, |h| {
        has_label_containing(h, &elsewhere)
    });
    // Whose it is, from the national registry, before anything is declared.
    assert!(has_label_containing(&h, &format!("PINFL {pinfl}")));
    assert!(has_label_containing(
        &h,
        "The document is active; issued by office TAS01"
    ));
    // The read of the holder's data, audited here (and at the centre: document.looked-up).
    let reads = registry::Registry::open_read_only(rig.data.join("registry.sqlite"))
        .expect("registry")
        .audit_events(1, u64::MAX)
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "holder.read" && e.details.contains(&number))
        .count();
    assert_eq!(reads, 1);
    click(&mut h, "Declare lost");
    click(&mut h, "Confirm: lost");
    wait_for(&mut h, "revoked at the centre", SERVICE_SHORT, |h| {
        has_label_containing(h, "is now lost")
    });
    assert_eq!(rig.document_state(pinfl, &number), "lost");
    // Shown again from the centre: lost now, nothing more to declare.
    wait_for(&mut h, "the centre's record again", SERVICE_SHORT, |h| {
        has_label_containing(h, "The document is lost")
    });
    assert!(!has_label(&h, "Declare lost"));
    // Recorded at this station too, although it mirrors nothing of that document.
    let actions = |object: &str| -> Vec<String> {
        registry::Registry::open_read_only(rig.data.join("registry.sqlite"))
            .expect("registry")
            .audit_events(1, u64::MAX)
            .expect("audit")
            .into_iter()
            .filter(|e| e.object == object)
            .map(|e| e.action)
            .collect()
    };
    let object = format!("document:{number}");
    assert_eq!(actions(&object), ["document.revoked"]);
    // Looked up again: lost, and the desk offers no declaration. A declaration that still
    // reaches the core (another window that showed the document active before) is refused: the
    // centre has it lost already and changes nothing, and the refusal is audited.
    click(&mut h, "Find document");
    wait_for(&mut h, "looked up again", SERVICE_SHORT, |h| {
        has_label_containing(h, "The document is lost") && !h.state().clerk.busy()
    });
    assert!(!has_label(&h, "Declare stolen"));
    {
        let mut st = station::Station::open(&rig.data).expect("open the station");
        let clerk = st
            .authorize(
                "clerk",
                &zeroize::Zeroizing::new(CLERK.into()),
                "revoke documents",
                &[registry::Role::Clerk],
            )
            .expect("clerk log-in");
        let e = station::records::revoke(&mut st, &clerk, &number, "stolen")
            .expect_err("already out of use at the centre");
        assert!(e.to_string().contains("lost"), "{e}");
    }
    assert_eq!(
        actions(&object),
        ["document.revoked", "document.revoke-refused"]
    );
    assert_eq!(rig.document_state(pinfl, &number), "lost");

    // The CA administrator revokes another document at the centre from the CA workspace,
    // where the station's own certificate revocation is not offered (the clerk's window closed
    // first, as at a desk: one station window at a time).
    drop(h);
    let other_pinfl = "31234567890142";
    let other = rig.issue(other_pinfl);
    let mut opts = GuiOptions::new(rig.data.clone());
    opts.poll_readers = false;
    let mut h = harness(opts, [1280.0, 1400.0]);
    log_in(
        &mut h,
        "admin",
        EGOV_ADMIN_PASSWORD,
        &tr(Lang::En, "workspace-ca"),
    );
    // The form, once what the workspace loads above it (the hierarchy, the CA requests, the
    // deliveries) is there: a click aimed before the layout settles would miss.
    wait_for(&mut h, "the document form", SERVICE_SHORT, |h| {
        has_label(h, "Revoke a document at the national centre") && !h.state().busy()
    });
    assert!(!has_label(&h, "Revoke certificate"));
    // The form in view (it is at the foot of the workspace), then each step seen to land.
    h.get_by_label("Revoke document").scroll_to_me();
    h.step();
    h.step();
    type_into(&mut h, "Document number", &other);
    assert_eq!(
        h.get_by_label("Document number").value().as_deref(),
        Some(other.as_str())
    );
    pick(&mut h, "Reason", "Damaged");
    click(&mut h, "I have checked the number: revoke the document");
    wait_for(&mut h, "the revocation enabled", SERVICE_SHORT, |h| {
        !h.get_by_label("Revoke document")
            .accesskit_node()
            .is_disabled()
    });
    click(&mut h, "Revoke document");
    wait_for(&mut h, "revoked at the centre", SERVICE_SHORT, |h| {
        has_label_containing(h, &format!("Document {other} is now revoked"))
    });
    assert_eq!(rig.document_state(other_pinfl, &other), "revoked");
}
