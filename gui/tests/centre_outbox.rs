//! The national centre's e-government deliveries in the GUI (issue 21; docs/gui.md
//! "E-government deliveries"), with real parts: a PostgreSQL cluster, `idcentral serve` with
//! its publisher, an e-government receiver refusing and then accepting (testrig::egov), and a
//! station enrolled in this process that the GUI's worker opens. The auditor sees the dead
//! letter with what failed and no Retry; the CA administrator retries it through the
//! confirmation, sees it pending, and delivered after a refresh — the receiver took it once;
//! another dead letter's row fits a 1024×768 window in Russian and Uzbek; with the centre stopped the tab says in plain words that it cannot be reached. Every wait
//! polls with a deadline.
//!
//! Needs `idcentral` built in the same target dir as the tests build it (`cargo test -p central --no-run`).

mod common;
#[path = "../../station/tests/common/egov_centre.rs"]
mod egov_centre;

use std::time::Duration;

use common::*;
use egov_centre::*;
use egui_kittest::kittest::Queryable;
use gui::i18n::{tr, Lang};
use gui::GuiOptions;
use station::centre::outbox::OutboxStatus;

fn window(rig: &EgovRig) -> H {
    let mut opts = GuiOptions::new(rig.data.clone());
    opts.poll_readers = false;
    harness(opts, [1280.0, 900.0])
}

/// Log in as `name`, open the deliveries tab and wait until the list shows `label`.
fn deliveries(rig: &EgovRig, name: &str, password: &str, heading: &str, label: &str) -> H {
    let mut h = window(rig);
    log_in(&mut h, name, password, heading);
    click(&mut h, &tr(Lang::En, "tab-deliveries"));
    wait_for(&mut h, label, Duration::from_secs(30), |h| {
        has_label(h, label)
    });
    h
}

/// The CA administrator's deliveries tab in `lang` at 1024×768 shows `document`'s dead letter
/// with Retry, and no label reaches past the window's edges.
fn fits_1024(rig: &EgovRig, lang: Lang, document: &str) {
    let mut opts = GuiOptions::new(rig.data.clone());
    opts.poll_readers = false;
    let mut h = harness(opts, [1024.0, 768.0]);
    log_in_in(&mut h, lang, "admin", EGOV_ADMIN_PASSWORD);
    let heading = tr(lang, "workspace-ca");
    wait_for(&mut h, &heading, Duration::from_secs(30), |h| {
        has_label(h, &heading)
    });
    click(&mut h, &tr(lang, "tab-deliveries"));
    wait_for(&mut h, document, Duration::from_secs(30), |h| {
        has_label(h, document)
    });
    assert!(
        has_label(&h, &tr(lang, "deliveries-retry")),
        "{}",
        lang.tag()
    );
    let past = labels_past(&h, 1024.0, 768.0, true);
    assert!(past.is_empty(), "{}: {past:?}", lang.tag());
}

#[test]
fn a_dead_letter_is_shown_retried_by_the_ca_admin_only_and_delivered() {
    let mut rig = EgovRig::start("tas01-gui", 2);
    let document = rig.issue("31234567890131");
    let dead = rig.dead_letter(&document);
    assert_eq!(dead.status, OutboxStatus::Failed);

    // The auditor: the dead letter, what failed, and no Retry.
    let auditor = tr(Lang::En, "workspace-auditor");
    let h = deliveries(&rig, "auditor", EGOV_AUDITOR_PASSWORD, &auditor, &document);
    assert!(has_label(&h, "Failed"), "the state in words");
    assert!(has_label_containing(&h, "HTTP 500"), "what failed");
    assert!(has_label_containing(&h, "Failed since"), "when");
    assert!(has_label(&h, &tr(Lang::En, "deliveries-read-only")));
    assert!(!has_label(&h, "Retry"), "an auditor has no Retry");
    drop(h);

    // The CA administrator: Retry, the confirmation, pending at once.
    rig.recv.set(testrig::egov::Mode::Accept);
    let ca = tr(Lang::En, "workspace-ca");
    let mut h = deliveries(&rig, "admin", EGOV_ADMIN_PASSWORD, &ca, &document);
    click(&mut h, "Retry");
    h.step();
    assert!(
        has_label(&h, "Send the message again?"),
        "a confirmation first"
    );
    assert_eq!(rig.recv.accepted(dead.id), 0, "nothing sent before it");
    click(&mut h, "Send again");
    let queued = format!(
        "Message {} is queued again at the centre: Pending.",
        dead.id
    );
    wait_for(&mut h, "the retry", Duration::from_secs(30), |h| {
        has_label(h, &queued)
    });

    // Every message, refreshed until the centre says delivered.
    click(&mut h, "All messages");
    wait_for(&mut h, "delivered", Duration::from_secs(30), |h| {
        if !has_label(h, "Delivered") && !h.state().busy() {
            h.get_by_label("Refresh").click();
        }
        has_label(h, "Delivered") && has_label(h, &document)
    });
    assert_eq!(rig.recv.accepted(dead.id), 1, "the receiver took it once");
    assert!(!has_label(&h, "Retry"), "nothing left to retry");

    // Another dead letter: at 1024×768 in Russian and Uzbek its row, Retry included, stays
    // inside the window.
    rig.recv.set(testrig::egov::Mode::Refuse);
    let second = rig.issue("31234567890132");
    rig.dead_letter(&second);
    for lang in [Lang::Ru, Lang::UzLatn] {
        fits_1024(&rig, lang, &second);
    }

    // The centre stopped: plain words, the station's sentence under Details.
    rig.centre.stop();
    click(&mut h, "Refresh");
    let plain = tr(Lang::En, "station-error-centre-unreachable");
    wait_for(
        &mut h,
        "the unreachable centre",
        Duration::from_secs(30),
        |h| has_label(h, &plain),
    );
    assert!(has_label(&h, &tr(Lang::En, "station-error-details")));
}
