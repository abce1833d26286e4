//! The auditor's workspace: the audit log (docs/audit-format.md) as a table with filters,
//! the chain's verification status (hash chain and HSM-signed checkpoints), export of a range
//! to a folder signed by the audit key, and offline verification of an export folder.

use std::path::PathBuf;

use egui::{Color32, RichText};
use station::audit::{ExportOutcome, Range, VerifyLogOutcome, VerifyOutcome};
use station::{AuditEvent, ExportFormat};

use crate::options::GuiOptions;
use crate::worker::{Command, Event};

#[derive(Default)]
pub struct Filters {
    pub from: String,
    pub to: String,
    pub operator: String,
    pub action: String,
    pub document: String,
}

impl Filters {
    /// Does `e` pass every filter? Dates compare the event time's `YYYY-MM-DD` prefix
    /// (inclusive); the text filters are case-insensitive substrings.
    pub fn matches(&self, e: &AuditEvent) -> bool {
        let day = e.time.get(..10).unwrap_or(&e.time);
        let has = |hay: &str, needle: &str| {
            needle.trim().is_empty() || hay.to_lowercase().contains(&needle.trim().to_lowercase())
        };
        (self.from.trim().is_empty() || day >= self.from.trim())
            && (self.to.trim().is_empty() || day <= self.to.trim())
            && has(&e.operator, &self.operator)
            && has(&e.action, &self.action)
            && (self.document.trim().is_empty()
                || has(&e.object, &self.document)
                || has(&e.details, &self.document))
    }
}

#[derive(Default)]
pub struct AuditorState {
    requested: bool,
    events: Option<Result<Vec<AuditEvent>, String>>,
    chain: Option<Result<VerifyLogOutcome, String>>,
    pub filters: Filters,
    export_dir: String,
    csv: bool,
    export_pending: bool,
    exported: Option<Result<Box<ExportOutcome>, String>>,
    verify_dir: String,
    verify_pending: bool,
    verified: Option<Result<Box<VerifyOutcome>, String>>,
}

impl AuditorState {
    pub fn busy(&self) -> bool {
        self.export_pending
            || self.verify_pending
            || (self.requested && (self.events.is_none() || self.chain.is_none()))
    }

    pub fn handle(&mut self, ev: &Event) {
        match ev {
            Event::AuditEvents(r) => self.events = Some(r.clone()),
            Event::LogVerified(r) => self.chain = Some(r.clone()),
            Event::Exported(r) => {
                self.export_pending = false;
                if let Ok(o) = r {
                    if self.verify_dir.is_empty() {
                        self.verify_dir = o.out_dir.display().to_string();
                    }
                }
                self.exported = Some(r.clone());
            }
            Event::ExportVerified(r) => {
                self.verify_pending = false;
                self.verified = Some(r.clone());
            }
            _ => {}
        }
    }

    fn refresh(&mut self, cmds: &mut Vec<Command>) {
        self.requested = true;
        self.events = None;
        self.chain = None;
        cmds.push(Command::AuditEvents);
        cmds.push(Command::VerifyLog);
    }
}

fn text_filter(ui: &mut egui::Ui, label: &str, value: &mut String, width: f32) {
    let l = ui.label(label);
    ui.add(egui::TextEdit::singleline(value).desired_width(width))
        .labelled_by(l.id);
}

pub fn ui(ui: &mut egui::Ui, st: &mut AuditorState, _opts: &GuiOptions, cmds: &mut Vec<Command>) {
    if !st.requested {
        st.refresh(cmds);
    }
    egui::Panel::bottom("audit-actions")
        .resizable(false)
        .show(ui, |ui| actions_ui(ui, st, cmds));
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading("Audit log");
            if ui.button("Refresh").clicked() {
                st.refresh(cmds);
            }
        });
        match &st.chain {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Verifying the chain…");
                });
            }
            Some(Ok(v)) => {
                ui.colored_label(
                    Color32::from_rgb(0, 140, 60),
                    format!(
                        "Chain verified: {} events, {} signed checkpoints{} (last event {})",
                        v.events,
                        v.checkpoints,
                        if v.checkpoint_signatures_checked {
                            ", signatures checked"
                        } else {
                            ""
                        },
                        v.last_seq
                    ),
                );
            }
            Some(Err(e)) => {
                ui.colored_label(Color32::RED, format!("Chain NOT verified: {e}"));
            }
        }
        ui.horizontal_wrapped(|ui| {
            text_filter(ui, "From date", &mut st.filters.from, 90.0);
            text_filter(ui, "To date", &mut st.filters.to, 90.0);
            text_filter(ui, "Operator filter", &mut st.filters.operator, 90.0);
            text_filter(ui, "Action filter", &mut st.filters.action, 110.0);
            text_filter(ui, "Document filter", &mut st.filters.document, 110.0);
        });
        match &st.events {
            None => {
                ui.spinner();
            }
            Some(Err(e)) => {
                ui.colored_label(Color32::RED, e);
            }
            Some(Ok(events)) => {
                let shown: Vec<&AuditEvent> =
                    events.iter().filter(|e| st.filters.matches(e)).collect();
                ui.label(format!("{} of {} events shown", shown.len(), events.len()));
                table(ui, &shown);
            }
        }
    });
}

fn table(ui: &mut egui::Ui, rows: &[&AuditEvent]) {
    let row_h = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    egui::ScrollArea::both()
        .auto_shrink([false, false])
        .show_rows(ui, row_h, rows.len() + 1, |ui, range| {
            egui::Grid::new("audit-table")
                .striped(true)
                .num_columns(6)
                .min_row_height(row_h)
                .show(ui, |ui| {
                    for h in ["Seq", "Time", "Operator", "Action", "Object", "Details"] {
                        ui.label(RichText::new(h).strong());
                    }
                    ui.end_row();
                    for e in rows
                        .iter()
                        .skip(range.start.saturating_sub(1))
                        .take(range.len())
                    {
                        ui.label(e.seq.to_string());
                        ui.label(&e.time);
                        ui.label(format!("{} ({})", e.operator, e.role));
                        ui.label(&e.action);
                        ui.label(&e.object);
                        let d: String = e.details.chars().take(80).collect();
                        ui.label(RichText::new(d).monospace().small());
                        ui.end_row();
                    }
                });
        });
}

fn actions_ui(ui: &mut egui::Ui, st: &mut AuditorState, cmds: &mut Vec<Command>) {
    ui.add_space(4.0);
    ui.heading("Export the log");
    ui.horizontal(|ui| {
        text_filter(ui, "Export folder", &mut st.export_dir, 300.0);
        ui.checkbox(&mut st.csv, "CSV instead of JSON lines");
        let enabled = !st.export_pending && !st.export_dir.trim().is_empty();
        if ui
            .add_enabled(enabled, egui::Button::new("Export"))
            .clicked()
        {
            let f = &st.filters;
            let range = if f.from.trim().is_empty() && f.to.trim().is_empty() {
                Range::All
            } else {
                Range::Time {
                    from: (!f.from.trim().is_empty()).then(|| f.from.trim().to_string()),
                    to: (!f.to.trim().is_empty()).then(|| f.to.trim().to_string()),
                }
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
    ui.label(
        RichText::new("The export uses the date range above; operator, action and document filters only narrow the table.")
            .weak(),
    );
    if st.export_pending {
        // The station's export reports no intermediate progress: the bar runs until it ends.
        ui.add(
            egui::ProgressBar::new(0.5)
                .animate(true)
                .text("Exporting and signing with the audit key…"),
        );
    }
    match &st.exported {
        Some(Ok(o)) => {
            ui.add(egui::ProgressBar::new(1.0).text("Export complete"));
            ui.colored_label(
                Color32::from_rgb(0, 140, 60),
                format!(
                    "Exported {} events to {} ({}), signed by {}",
                    o.count,
                    o.out_dir.display(),
                    o.format,
                    o.signer_key
                ),
            );
        }
        Some(Err(e)) => {
            ui.colored_label(Color32::RED, format!("Export failed: {e}"));
        }
        None => {}
    }
    ui.separator();
    ui.heading("Verify an export folder");
    ui.horizontal(|ui| {
        text_filter(ui, "Folder to verify", &mut st.verify_dir, 300.0);
        let enabled = !st.verify_pending && !st.verify_dir.trim().is_empty();
        if ui
            .add_enabled(enabled, egui::Button::new("Verify folder"))
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
                format!(
                    "Export verified: {} events ({}..{}), {} checkpoints, signed by {}, root SHA-256 {}",
                    v.export.count, v.export.first_seq, v.export.last_seq, v.export.checkpoints, v.export.signer_subject, v.root_sha256
                ),
            );
        }
        Some(Err(e)) => {
            ui.colored_label(Color32::RED, format!("Export NOT verified: {e}"));
        }
        None => {}
    }
    ui.add_space(4.0);
}
