//! An auditor filters the audit log, sees the chain verified, exports it to a folder and
//! verifies the export folder, all from the GUI.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn an_auditor_exports_the_log_and_verifies_the_export_folder() {
    let mut h = harness(options(None, false), [1280.0, 1000.0]);
    log_in(&mut h, "auditor", AUDITOR_PASSWORD, "Audit");
    wait_for(&mut h, "chain status", Duration::from_secs(30), |h| {
        has_label_containing(h, "Chain verified: ")
    });
    wait_for(&mut h, "table", Duration::from_secs(30), |h| {
        has_label_containing(h, "events shown")
    });
    // The operators added at set-up are in the log; the action filter narrows the table.
    assert!(has_label(&h, "operator.added"));
    type_into(&mut h, "Action filter", "operator.login");
    assert!(!has_label(&h, "operator.added"), "filtered out");
    assert!(has_label(&h, "operator.login"));

    let out = rig().dir.join(format!("export-{}", std::process::id()));
    type_into(&mut h, "Export folder", &out.display().to_string());
    click(&mut h, "Export");
    wait_for(&mut h, "export result", Duration::from_secs(60), |h| {
        has_label_containing(h, "Exported ") || has_label_containing(h, "Export failed")
    });
    assert!(has_label(&h, "Export complete"), "progress bar at its end");
    assert!(out.join("manifest.json").is_file(), "manifest written");

    // Offline check, independent of the GUI: the station's verifier accepts the folder.
    let root = rig().data.join("ca/root-ca-1.pem");
    let v = station::audit::verify(&out, &root).expect("export verifies");
    assert!(v.export.count > 0);

    // The verify field was filled with the export folder.
    click(&mut h, "Verify folder");
    wait_for(&mut h, "verification", Duration::from_secs(30), |h| {
        has_label_containing(h, "Export verified: ") || has_label_containing(h, "NOT verified")
    });
    assert!(has_label_containing(
        &h,
        &format!("Export verified: {} events", v.export.count)
    ));

    // A tampered copy is refused.
    let events = out.join("events.jsonl");
    let text = std::fs::read_to_string(&events).expect("events");
    std::fs::write(
        &events,
        text.replacen("operator.added", "operator.adde_", 1),
    )
    .expect("tamper");
    click(&mut h, "Verify folder");
    wait_for(&mut h, "refusal", Duration::from_secs(30), |h| {
        has_label_containing(h, "Export NOT verified")
    });
}
