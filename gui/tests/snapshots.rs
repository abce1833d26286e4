//! Snapshot images of the log-in screen and of each workspace, rendered by wgpu (Mesa's
//! software Vulkan/GL on machines without a GPU) and compared with the images kept under
//! `gui/tests/snapshots/`. Values that change from run to run (times, fingerprints, serials,
//! counts, the temporary data dir) are masked: every text containing a digit or a `/`.
//! `UPDATE_SNAPSHOTS=1 cargo test -p gui --test snapshots` writes new images.

mod common;

use std::time::Duration;

use common::*;
use egui_kittest::kittest::{NodeT, Queryable};

/// Times, serials, fingerprints, counts and the temporary data dir's path.
fn volatile(text: &str) -> bool {
    text.chars().any(|c| c.is_ascii_digit()) || text.contains('/')
}

fn mask_volatile(h: &mut H) {
    let rects: Vec<egui::Rect> = h
        .query_all_by(|n| {
            n.label().is_some_and(|l| volatile(&l)) || n.value().is_some_and(|v| volatile(&v))
        })
        // To the right edge: a volatile text's width varies with its glyphs.
        .map(|n| n.rect().with_max_x(1280.0))
        .collect();
    for r in rects {
        h.mask(r);
    }
}

fn settle(h: &mut H) {
    h.remove_cursor();
    for _ in 0..5 {
        h.step();
    }
    mask_volatile(h);
}

#[test]
fn each_workspace_looks_as_recorded() {
    let mut results = egui_kittest::SnapshotResults::new();
    for (name, pw, heading, file, ready) in [
        (
            "clerk",
            CLERK_PASSWORD,
            "Clerk workspace",
            "clerk",
            "Holder",
        ),
        (
            "admin",
            ADMIN_PASSWORD,
            "CA administration",
            "ca-admin",
            "root-ca-1",
        ),
        ("auditor", AUDITOR_PASSWORD, "Audit", "auditor", "Seq"),
    ] {
        let mut h = harness(options(None, false), [1280.0, 800.0]);
        if name == "clerk" {
            settle(&mut h);
            results.add(h.try_snapshot("login"));
        }
        log_in(&mut h, name, pw, heading);
        wait_for(&mut h, ready, Duration::from_secs(30), |h| {
            has_label(h, ready)
        });
        if name == "auditor" {
            wait_for(&mut h, "chain", Duration::from_secs(30), |h| {
                has_label_containing(h, "Chain verified")
            });
        }
        settle(&mut h);
        // The CA grid's masked cells end on a sub-pixel boundary that moves by a few pixels
        // between runs; 16 pixels cannot hide a moved widget or a changed word.
        let opts = egui_kittest::SnapshotOptions::new().max_failed_pixels(16usize);
        results.add(h.try_snapshot_options(file, &opts));
    }
}

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
        let over: Vec<String> = h
            .query_all_by(|n| n.label().is_some_and(|l| !l.is_empty()))
            .filter(|n| n.rect().max.x > 1024.5 || n.rect().max.y > 768.5)
            .map(|n| {
                format!(
                    "{:?} ends at {:?}",
                    n.accesskit_node().label(),
                    n.rect().max
                )
            })
            .collect();
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
