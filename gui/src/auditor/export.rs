//! The auditor's bottom bar: export of the date range to a folder signed by the audit key,
//! and offline verification of an export folder.

use std::path::PathBuf;

use egui::{Color32, RichText};
use station::audit::Range;
use station::ExportFormat;

use super::AuditorState;
use crate::i18n::{self, t, ta};
use crate::worker::Command;

/// A folder field, label to its left.
fn folder_field(ui: &mut egui::Ui, label_id: &str, value: &mut String, width: f32) {
    let l = ui.label(t(ui, label_id));
    ui.add(egui::TextEdit::singleline(value).desired_width(width))
        .labelled_by(l.id);
}

/// The export and verify bar.
pub fn ui(ui: &mut egui::Ui, st: &mut AuditorState, cmds: &mut Vec<Command>) {
    ui.add_space(4.0);
    ui.heading(t(ui, "audit-export-heading"));
    ui.horizontal(|ui| {
        folder_field(ui, "audit-export-folder", &mut st.export_dir, 300.0);
        ui.checkbox(&mut st.csv, t(ui, "audit-csv"));
        let enabled =
            !st.export_pending && !st.export_dir.trim().is_empty() && !st.filters.bad_date();
        if ui
            .add_enabled(enabled, egui::Button::new(t(ui, "audit-export")))
            .clicked()
        {
            let f = &st.filters;
            let from = f.from_iso();
            let to = f.to_iso();
            let range = if from.is_none() && to.is_none() {
                Range::All
            } else {
                Range::Time { from, to }
            };
            st.export_pending = true;
            st.exported = None;
            cmds.push(Command::Export {
                dir: PathBuf::from(st.export_dir.trim()),
                range,
                format: if st.csv {
                    ExportFormat::Csv
                } else {
                    ExportFormat::Jsonl
                },
            });
        }
    });
    ui.label(RichText::new(t(ui, "audit-export-note")).weak());
    if st.export_pending {
        // The station's export reports no intermediate progress: the bar runs until it ends.
        ui.add(
            egui::ProgressBar::new(0.5)
                .animate(true)
                .text(t(ui, "audit-exporting")),
        );
    }
    match &st.exported {
        Some(Ok(o)) => {
            ui.add(egui::ProgressBar::new(1.0).text(t(ui, "audit-export-complete")));
            ui.colored_label(
                Color32::from_rgb(0, 140, 60),
                ta(
                    ui,
                    "audit-exported",
                    &[
                        ("count", i18n::n(o.count as f64)),
                        ("dir", i18n::s(o.out_dir.display().to_string())),
                        ("format", i18n::s(o.format.to_string())),
                        ("signer", i18n::s(o.signer_key.to_string())),
                    ],
                ),
            );
        }
        Some(Err(e)) => {
            ui.colored_label(
                Color32::RED,
                ta(ui, "audit-export-failed", &[("detail", i18n::s(e.text()))]),
            );
        }
        None => {}
    }
    ui.separator();
    verify_ui(ui, st, cmds);
    ui.add_space(4.0);
}

/// Offline verification of an export folder.
fn verify_ui(ui: &mut egui::Ui, st: &mut AuditorState, cmds: &mut Vec<Command>) {
    ui.heading(t(ui, "audit-verify-heading"));
    ui.horizontal(|ui| {
        folder_field(ui, "audit-verify-folder", &mut st.verify_dir, 300.0);
        let enabled = !st.verify_pending && !st.verify_dir.trim().is_empty();
        if ui
            .add_enabled(enabled, egui::Button::new(t(ui, "audit-verify")))
            .clicked()
        {
            st.verify_pending = true;
            st.verified = None;
            cmds.push(Command::VerifyExport {
                dir: PathBuf::from(st.verify_dir.trim()),
                root: None,
            });
        }
        if st.verify_pending {
            ui.spinner();
        }
    });
    match &st.verified {
        Some(Ok(v)) => {
            ui.colored_label(
                Color32::from_rgb(0, 140, 60),
                ta(
                    ui,
                    "audit-export-verified",
                    &[
                        ("count", i18n::n(v.export.count as f64)),
                        ("first", i18n::s(v.export.first_seq.to_string())),
                        ("last", i18n::s(v.export.last_seq.to_string())),
                        ("checkpoints", i18n::n(v.export.checkpoints as f64)),
                        ("signer", i18n::s(v.export.signer_subject.to_string())),
                        ("root", i18n::s(v.root_sha256.to_string())),
                    ],
                ),
            );
        }
        Some(Err(e)) => {
            ui.colored_label(
                Color32::RED,
                ta(
                    ui,
                    "audit-export-not-verified",
                    &[("detail", i18n::s(e.text()))],
                ),
            );
        }
        None => {}
    }
}
