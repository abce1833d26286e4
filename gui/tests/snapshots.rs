//! Snapshot images of the log-in screen and of each workspace, rendered by wgpu (Mesa's
//! software Vulkan/GL on machines without a GPU) and compared with the images kept under
//! `gui/tests/snapshots/`. Values that change from run to run (times, fingerprints, serials,
//! counts, the temporary data dir) are masked: every text containing a digit or a `/`.
//! `UPDATE_SNAPSHOTS=1 cargo test -p gui --test snapshots` writes new images. The 1024×768
//! language shots are `snapshots_1024.rs`, a process of their own: their log-ins would
//! otherwise add rows to the audit log this file's auditor screen shows.

mod common;

use std::time::Duration;

use common::*;

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
