//! An auditor filters the audit log, sees the chain verified, exports it to a folder and
//! verifies the export folder, all from the GUI; reads an event's fields in words in the detail
//! pane; has a date filter that is not a day rejected with the rule under it; and sees charts
//! whose counts match the registry's events. The tests take turns (one audit log per process,
//! and each writes to it).

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::*;
use egui_kittest::kittest::{NodeT, Queryable};

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

fn registry_rw() -> registry::Registry {
    registry::Registry::open(rig().data.join("registry.sqlite")).expect("registry")
}

/// The registry's events (read directly: the oracle the GUI is compared with).
fn events() -> Vec<station::AuditEvent> {
    registry::Registry::open_read_only(rig().data.join("registry.sqlite"))
        .expect("registry")
        .audit_events(1, u64::MAX)
        .expect("events")
}

#[test]
fn an_auditor_exports_the_log_and_verifies_the_export_folder() {
    let _turn = turn();
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
    // In step with the export: the table read the log again and has the export's own event;
    // its date range (here: all) holds what the export holds.
    wait_for(&mut h, "table in step", Duration::from_secs(30), |h| {
        has_label_containing(h, &format!("{} in the date range", v.export.count))
    });
    assert_eq!(
        h.state().auditor.shown().map(|s| s.len()),
        Some(
            events()
                .iter()
                .filter(|e| e.action.contains("operator.login"))
                .count()
        ),
        "the action filter still applies"
    );

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

/// Write an event through the registry's own audit writer (hash chain included), as the
/// station does at the end of an issuance (registry `jobs`: `issuance.completed`).
fn issuance_event(document: &str, job: u64) -> u64 {
    let actor = registry::Actor::new("clerk", "clerk", "gui-test");
    registry_rw()
        .audit(&registry::AuditEntry {
            actor: &actor,
            action: "issuance.completed",
            object: &format!("document:{document}"),
            details: &serde_json::json!({
                "job": job,
                "card": "0000C0DE",
                "certificates": [901, 902],
                "pinfl": "31405850000012",
            }),
        })
        .expect("audit")
        .seq
}

#[test]
fn an_issuance_event_reads_in_named_fields_bad_dates_are_refused_and_charts_count() {
    let _turn = turn();
    let seq = issuance_event("AA7654321", 77);
    issuance_event("AA7654322", 78);
    // Two log-ins the station refuses, for a name no other test uses (`operator.refused`).
    {
        let mut st = station::Station::open(&rig().data).expect("open");
        for _ in 0..2 {
            let pw = zeroize::Zeroizing::new("not-the-password".to_owned());
            assert!(st
                .authorize("nobody-charts", &pw, "log in", &[registry::Role::Auditor])
                .is_err());
        }
    }
    let mut h = harness(options(None, false), [1280.0, 1000.0]);
    log_in(&mut h, "auditor", AUDITOR_PASSWORD, "Audit");
    wait_for(&mut h, "table", Duration::from_secs(30), |h| {
        has_label_containing(h, "events shown")
    });
    // Reading the log is a read of what it says about holders: audited.
    assert!(
        events()
            .iter()
            .any(|e| e.action == "audit.read" && e.operator == "auditor"),
        "the read of the log was not audited"
    );

    // The detail pane: the selected event's fields under their labels, no JSON keys.
    type_into(&mut h, "Document filter", "AA7654321");
    assert!(has_label(&h, "Select an event by its number in the table."));
    click(&mut h, &seq.to_string());
    // The pane is drawn before the table: the selection shows on the next frame.
    h.step();
    h.step();
    for (label, value) in [
        ("Event number", seq.to_string()),
        ("Action", "Card issued (issuance.completed)".into()),
        ("Operator", "clerk".into()),
        ("PINFL", "31405850000012".into()),
        ("Card serial", "0000C0DE".into()),
        ("Issuance job", "77".into()),
        ("Certificates", "901\n902".into()),
        ("Object", "document:AA7654321".into()),
    ] {
        assert!(has_label(&h, label), "label {label}");
        assert!(has_label(&h, &value), "{label}: {value}");
    }
    let time = &events()
        .into_iter()
        .find(|e| e.seq == seq)
        .expect("event")
        .time;
    // DD.MM.YYYY HH:MM:SS UTC, from the registry's RFC 3339 time.
    let readable = format!(
        "{}.{}.{} {} UTC",
        &time[8..10],
        &time[5..7],
        &time[..4],
        &time[11..19]
    );
    assert!(has_label(&h, "Time (UTC)"));
    assert!(has_label(&h, &readable), "{readable}");
    assert!(
        !has_label_containing(&h, "\"pinfl\""),
        "the JSON stays folded"
    );
    click(&mut h, "Details (JSON)");
    h.step();
    assert!(has_label_containing(&h, "\"pinfl\": \"31405850000012\""));

    // A date that is no day is refused under its field, with the rule, and not applied.
    type_into(&mut h, "Document filter", "");
    h.get_by_label("Document filter").click();
    h.step();
    h.key_press(egui::Key::End);
    for _ in 0..12 {
        h.key_press(egui::Key::Backspace);
    }
    h.step();
    type_into(&mut h, "From date", "31022026");
    assert!(has_label(
        &h,
        "There is no such day: check the day and the month (DD.MM.YYYY). This filter is not applied."
    ));
    assert!(h.state().auditor.filters.bad_date());
    let all = h.state().auditor.shown().map(|s| s.len());
    // Every event the view loaded: those before the read's own `audit.read`.
    let read_at = events()
        .iter()
        .rev()
        .find(|e| e.action == "audit.read")
        .map(|e| e.seq)
        .expect("the audited read");
    assert_eq!(
        all,
        Some(events().iter().filter(|e| e.seq < read_at).count()),
        "the rejected date is not applied"
    );
    assert!(
        h.get_by_label("Export").accesskit_node().is_disabled(),
        "no export of a range with a rejected date"
    );
    for _ in 0..10 {
        h.key_press(egui::Key::Backspace);
    }
    h.step();
    type_into(&mut h, "From date", "0112");
    assert!(has_label(
        &h,
        "Type the dates as DD.MM.YYYY, e.g. 01.12.2026."
    ));
    h.state_mut().auditor.filters.from.clear();
    h.step();
    assert!(!h.state().auditor.filters.bad_date());

    // The charts draw the counts the registry holds.
    click(&mut h, "Charts");
    h.step();
    h.step();
    let plots = h.state().auditor.plots.clone();
    let evs = events();
    let mut days: Vec<(String, usize)> = Vec::new();
    for e in evs.iter().filter(|e| e.action == "issuance.completed") {
        let day = e.time[..10].to_owned();
        match days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, n)) => *n += 1,
            None => days.push((day, 1)),
        }
    }
    days.sort();
    assert_eq!(plots.issuances_per_day, days);
    assert!(days.iter().map(|(_, n)| n).sum::<usize>() >= 2);
    let nobody = plots
        .refusals_per_operator
        .iter()
        .find(|(o, _)| o == "nobody-charts")
        .map(|(_, n)| *n);
    assert_eq!(nobody, Some(2), "{:?}", plots.refusals_per_operator);
    let refused_logins = evs
        .iter()
        .filter(|e| e.action == "operator.refused" && e.operator == "nobody-charts")
        .count();
    assert_eq!(refused_logins, 2, "the registry's count");
    assert!(has_label(&h, "Cards issued per day"));
    assert!(has_label(&h, "Refusals per operator"));
}

#[test]
fn a_standalone_station_says_its_deliveries_are_no_centres() {
    let _turn = turn();
    for (name, password, heading) in [
        ("auditor", AUDITOR_PASSWORD, "Audit"),
        ("admin", ADMIN_PASSWORD, "CA administration"),
    ] {
        let mut h = harness(options(None, false), [1280.0, 1000.0]);
        log_in(&mut h, name, password, heading);
        click(&mut h, "E-government deliveries");
        let sentence = gui::i18n::tr(gui::i18n::Lang::En, "deliveries-standalone");
        assert!(has_label(&h, &sentence), "{name}: the standalone sentence");
        assert!(
            !has_label(&h, "Retry") && !has_label(&h, "Refresh"),
            "{name}"
        );
    }
}
