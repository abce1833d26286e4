//! The clerk's desk at 1024×768 in each language (snapshot images kept under
//! `gui/tests/snapshots/`, masked as in `snapshots.rs`). A process of its own, so that its
//! log-ins never show in the auditor screen `snapshots.rs` records.
//! `UPDATE_SNAPSHOTS=1 cargo test -p gui --test snapshots_1024` writes new images.

mod common;

use std::time::Duration;

use common::*;
use egui_kittest::kittest::Queryable;

/// The clerk's desk at 1024×768 in each language: recorded as images, and no text or control
/// reaches past the window's right or bottom edge (nothing is cut off; the form scrolls above
/// the Issue bar).
#[test]
fn the_clerk_desk_fits_1024x768_in_each_language() {
    let mut results = egui_kittest::SnapshotResults::new();
    for lang in gui::i18n::Lang::ALL {
        let mut h = harness(options(None, false), [1024.0, 768.0]);
        click(&mut h, lang.native_name());
        h.step();
        settle(&mut h);
        results.add(h.try_snapshot(format!("login-1024-{}", lang.tag())));
        let heading = gui::i18n::tr(lang, "workspace-clerk");
        type_into(&mut h, &gui::i18n::tr(lang, "login-operator"), L10N_CLERK);
        type_into(
            &mut h,
            &gui::i18n::tr(lang, "login-password"),
            CLERK_PASSWORD,
        );
        click(&mut h, &gui::i18n::tr(lang, "login-button"));
        wait_for(&mut h, &heading, Duration::from_secs(30), |h| {
            has_label(h, &heading)
        });
        for _ in 0..3 {
            h.step();
        }
        let over = labels_past(&h, 1024.0, 768.0, false);
        assert!(
            over.is_empty(),
            "{}: cut off at 1024 px: {over:?}",
            lang.tag()
        );
        settle(&mut h);
        let opts = egui_kittest::SnapshotOptions::new().max_failed_pixels(16usize);
        results.add(h.try_snapshot_options(format!("clerk-1024-{}", lang.tag()), &opts));
    }
}

/// The auditor's screen at 1024×768 in English and Russian: the filters with a rejected date's
/// rule under its field, the table with the detail pane of a selected event, and the charts —
/// nothing reaches past the window's edges.
#[test]
fn the_auditor_screen_fits_1024x768() {
    for lang in [gui::i18n::Lang::En, gui::i18n::Lang::Ru] {
        let tr = |id: &str| gui::i18n::tr(lang, id);
        let mut h = harness(options(None, false), [1024.0, 768.0]);
        click(&mut h, lang.native_name());
        h.step();
        type_into(&mut h, &tr("login-operator"), "auditor");
        type_into(&mut h, &tr("login-password"), AUDITOR_PASSWORD);
        click(&mut h, &tr("login-button"));
        let heading = tr("audit-log");
        wait_for(&mut h, "table", Duration::from_secs(30), |h| {
            has_label(h, &heading) && h.state().auditor.shown().is_some()
        });
        type_into(&mut h, &tr("audit-from"), "31022026");
        type_into(&mut h, &tr("audit-to"), "0112");
        assert!(has_label(&h, &tr("audit-date-no-such-day")));
        assert!(has_label(&h, &tr("audit-date-shape")));
        click(&mut h, "1");
        h.step();
        assert!(has_label(&h, &tr("audit-field-seq")), "detail pane");
        for _ in 0..3 {
            h.step();
        }
        let over = labels_past(&h, 1024.0, 768.0, true);
        assert!(over.is_empty(), "{}: events: {over:?}", lang.tag());
        click(&mut h, &tr("audit-view-charts"));
        for _ in 0..3 {
            h.step();
        }
        assert!(has_label(&h, &tr("audit-plot-refusals")));
        let over = labels_past(&h, 1024.0, 768.0, true);
        assert!(over.is_empty(), "{}: charts: {over:?}", lang.tag());
    }
}

/// The card preview under the clerk's form at 1024×768, in English and Uzbek (Cyrillic): the
/// names typed in Latin shown in both scripts on the front, and nothing past the window's
/// edges with the form scrolled to the preview.
#[test]
fn the_card_preview_fits_1024x768_in_two_languages() {
    let mut results = egui_kittest::SnapshotResults::new();
    for lang in [gui::i18n::Lang::En, gui::i18n::Lang::UzCyrl] {
        let tr = |id: &str| gui::i18n::tr(lang, id);
        let mut h = harness(options(None, false), [1024.0, 768.0]);
        click(&mut h, lang.native_name());
        h.step();
        type_into(&mut h, &tr("login-operator"), L10N_CLERK);
        type_into(&mut h, &tr("login-password"), CLERK_PASSWORD);
        click(&mut h, &tr("login-button"));
        let heading = tr("workspace-clerk");
        wait_for(&mut h, &heading, Duration::from_secs(30), |h| {
            has_label(h, &heading)
        });
        type_into(&mut h, &tr("field-surname"), "Toʻxtayeva");
        type_into(&mut h, &tr("field-given-names"), "Gʻulnora");
        // Both scripts on the front: the Cyrillic form from the MRZ's transliteration rules.
        assert!(has_label(&h, "Toʻxtayeva / Тўхтаева"), "{}", lang.tag());
        assert!(has_label(&h, "Gʻulnora / Ғулнора"), "{}", lang.tag());
        assert!(has_label(
            &h,
            "OʻZBEKISTON RESPUBLIKASI · REPUBLIC OF UZBEKISTAN"
        ));
        h.get_by_label(&tr("preview-heading")).scroll_to_me();
        for _ in 0..4 {
            h.step();
        }
        assert!(
            h.get_by_label(&tr("preview-mrz-later")).rect().max.y < 768.5,
            "{}: the MRZ band is on screen",
            lang.tag()
        );
        let over = labels_past(&h, 1024.0, f32::INFINITY, false);
        assert!(
            over.is_empty(),
            "{}: cut off at 1024 px: {over:?}",
            lang.tag()
        );
        settle(&mut h);
        let opts = egui_kittest::SnapshotOptions::new().max_failed_pixels(16usize);
        results.add(h.try_snapshot_options(format!("clerk-preview-1024-{}", lang.tag()), &opts));
    }
}
