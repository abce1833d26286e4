//! Frame time of the GUI's busiest screens, measured as one egui pass (`Harness::step`: the
//! app's `ui` plus egui's layout and tessellation, no GPU): the clerk workspace with a full
//! holder form validated every frame and the reader panel polling PC/SC, and the auditor's
//! table over 5000 audit events with a filter typed in. Figures go to docs/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use criterion::{criterion_group, criterion_main, Criterion};
use egui_kittest::kittest::Queryable;

fn fill_clerk_form(h: &mut H) {
    for (label, text) in [
        ("PINFL", "41505852610128"),
        ("Sex", "F"),
        ("Date of birth", "1985-05-15"),
        ("Surname", "Toʻxtayeva"),
        ("Surname (Cyrillic)", "Тўхтаева"),
        ("Given names", "Gʻulnora"),
        ("Given names (Cyrillic)", "Ғулнора"),
        ("Patronymic", "Shavkat qizi"),
        ("Patronymic (Cyrillic)", "Шавкат қизи"),
        ("Place of birth", "Toshkent shahri"),
        ("Region", "Toshkent shahri"),
        ("District", "Yunusobod tumani"),
        ("Street", "Amir Temur shoh koʻchasi"),
        ("House", "108"),
        ("Registered on", "2019-03-01"),
    ] {
        type_into(h, label, text);
    }
}

fn frames(c: &mut Criterion) {
    let data = &rig().data;
    {
        // 5000 events for the auditor's table.
        let mut st = station::Station::open(data).expect("open");
        let actor = registry::Actor::new("bench", "auditor", "gui-bench");
        st.registry
            .write(|tx| {
                for i in 0..5000u32 {
                    tx.audit(&registry::AuditEntry {
                        actor: &actor,
                        action: "bench.event",
                        object: &format!("document:AA{i:07}"),
                        details: &serde_json::json!({ "i": i }),
                    })?;
                }
                Ok(())
            })
            .expect("events");
    }

    let mut g = c.benchmark_group("gui_frame");
    g.measurement_time(Duration::from_secs(8));

    // Peer in the same run: the log-in screen, the lightest screen of the same app.
    let mut h = harness(options(None, false), [1280.0, 800.0]);
    h.step();
    g.bench_function("login_screen_peer", |b| b.iter(|| h.step()));
    drop(h);

    let mut h = harness(options(None, true), [1280.0, 800.0]);
    log_in(&mut h, "clerk", CLERK_PASSWORD, "Clerk workspace");
    fill_clerk_form(&mut h);
    // Each iteration is two frames: a character typed and erased again, so validation and
    // layout run in every pass.
    g.bench_function("clerk_form_typing_2_frames", |b| {
        b.iter(|| {
            h.get_by_label("House").type_text("8");
            h.step();
            h.key_press(egui::Key::Backspace);
            h.step();
        })
    });
    drop(h);

    let mut h = harness(options(None, false), [1280.0, 800.0]);
    log_in(&mut h, "auditor", AUDITOR_PASSWORD, "Audit");
    wait_for(&mut h, "table", Duration::from_secs(60), |h| {
        has_label_containing(h, "events shown")
    });
    type_into(&mut h, "Action filter", "bench");
    g.bench_function("auditor_table_5000_events_filtered", |b| {
        b.iter(|| h.step())
    });
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
