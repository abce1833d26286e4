//! The clerk's "Cards to replace" tab on a station enrolled with the national centre (docs/gui.md
//! "Cards to replace"), with real parts: a PostgreSQL cluster, `idcentral serve`, a station
//! enrolled in this process. Two cards issued through the centre's protocol, then the centre's
//! CSCA rotated and its old key withdrawn from the CSCA Master List under dual control: the
//! centre flags both cards, and the clerk sees them, with the centre's reason, in the tab; the
//! read is audited at the station. (A file of its own: one station per test process, as
//! SoftHSM2 reads its token directory once per process.)
//!
//! Needs `idcentral` built in the same target dir as the tests build it (`cargo test -p central
//! --no-run`).

mod common;
#[path = "../../station/tests/common/egov_centre.rs"]
mod egov_centre;

use common::*;
use egov_centre::*;
use egui_kittest::kittest::Queryable;
use gui::i18n::{tr, Lang};
use gui::GuiOptions;

const CLERK: &str = "replace-clerk-pw-3e71";

#[test]
fn a_clerk_sees_the_offices_cards_the_centre_flagged_after_a_csca_withdrawal() {
    let rig = EgovRig::start("tas01-gui-rpl", 2);
    rig.add_clerk(CLERK);
    let first = rig.issue("31234567890151");
    let second = rig.issue("31234567890152");

    // The centre's CSCA rolls over, then csca-1 is withdrawn (each under dual control): the
    // cards its Document Signer signed are flagged.
    rig.centre.rotate_csca("1");
    let done = rig.centre.withdraw_csca("csca-1", "2");
    assert!(
        done.contains("2 cards whose EF.SOD they signed are flagged for replacement"),
        "{done}"
    );

    let mut opts = GuiOptions::new(rig.data.clone());
    opts.poll_readers = false;
    let mut h = harness(opts, [1280.0, 900.0]);
    log_in(&mut h, "clerk", CLERK, "Clerk workspace");
    let tab = tr(Lang::En, "tab-to-replace");
    assert!(has_label(&h, &tab), "the tab of an enrolled station");
    // Alt+3 opens it from anywhere.
    h.key_press_modifiers(egui::Modifiers::ALT, egui::Key::Num3);
    h.step();
    let count = "2 cards of office TAS01 to replace, oldest flag first:";
    wait_for(&mut h, "the flagged cards", SERVICE_SHORT, |h| {
        has_label(h, count) && !h.state().busy()
    });
    assert!(has_label(&h, &tr(Lang::En, "replace-heading")));
    for number in [&first, &second] {
        assert!(has_label(&h, number), "{number} listed");
    }
    assert!(has_label_containing(
        &h,
        "the CSCA key csca-1 that certified its Document Signer was withdrawn from the CSCA \
         Master List (keyCompromise)"
    ));
    assert!(has_label_containing(&h, "PINFL 31234567890151"));

    // The read of the holders' data, audited here with the documents (and at the centre).
    let reads: Vec<String> = registry::Registry::open_read_only(rig.data.join("registry.sqlite"))
        .expect("registry")
        .audit_events(1, u64::MAX)
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "documents.replacement-listed" && e.operator == "clerk")
        .map(|e| e.details)
        .collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert!(
        reads[0].contains(&first) && reads[0].contains(&second),
        "{reads:?}"
    );
    // "Look up" on the first card: the Issuance tab, with the holder looked up there (where a
    // card is replaced).
    h.get_all_by_label("Look up")
        .next()
        .expect("a Look up button per card")
        .click();
    h.step();
    h.step();
    assert_eq!(h.state().clerk_tab, gui::app::ClerkTab::Issuance);
    assert_eq!(h.state().clerk.lookup.pinfl, "31234567890151");
    wait_for(&mut h, "the holder's look-up", SERVICE_SHORT, |h| {
        !h.state().clerk.lookup.busy()
    });
    drop(h);

    // In the languages with the longest words, the tab bar and the table stay inside a
    // 1024×768 window.
    for lang in [Lang::Ru, Lang::UzLatn, Lang::UzCyrl] {
        fits_1024(&rig, lang, &first);
    }
}

/// The clerk's tab in `lang` at 1024×768: nothing that starts inside the window reaches past it.
fn fits_1024(rig: &EgovRig, lang: Lang, document: &str) {
    let mut opts = GuiOptions::new(rig.data.clone());
    opts.poll_readers = false;
    let mut h = harness(opts, [1024.0, 768.0]);
    log_in_in(&mut h, lang, "clerk", CLERK);
    let tab = tr(lang, "tab-to-replace");
    wait_for(&mut h, &tab, std::time::Duration::from_secs(30), |h| {
        has_label(h, &tab)
    });
    click(&mut h, &tab);
    wait_for(&mut h, document, SERVICE_SHORT, |h| {
        has_label(h, document) && !h.state().busy()
    });
    let past = labels_past(&h, 1024.0, 768.0, true);
    assert!(past.is_empty(), "{}: {past:?}", lang.tag());
}
