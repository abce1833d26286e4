//! The auditor's workspace: the audit log (docs/audit-format.md) as a table with filters,
//! the chain's verification status (hash chain and HSM-signed checkpoints), export of a range
//! to a folder signed by the audit key, and offline verification of an export folder.

use std::path::PathBuf;

use egui::{Color32, RichText};
use station::audit::{ExportOutcome, Range, VerifyLogOutcome, VerifyOutcome};
use station::{AuditEvent, ExportFormat};

use crate::i18n::{self, t, ta};
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
        // Typed DD.MM.YYYY; compared as the log writes it, YYYY-MM-DD.
        let from = i18n::iso_from_typed(&self.from).unwrap_or_default();
        let to = i18n::iso_from_typed(&self.to).unwrap_or_default();
        let has = |hay: &str, needle: &str| {
            needle.trim().is_empty() || hay.to_lowercase().contains(&needle.trim().to_lowercase())
        };
        (from.is_empty() || day >= from.as_str())
            && (to.is_empty() || day <= to.as_str())
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

fn text_filter(ui: &mut egui::Ui, label_id: &str, value: &mut String, width: f32) {
    let l = ui.label(t(ui, label_id));
    ui.add(egui::TextEdit::singleline(value).desired_width(width))
        .labelled_by(l.id);
}

/// A date filter: typed DD.MM.YYYY through the mask.
fn date_filter(ui: &mut egui::Ui, label_id: &str, value: &mut String) {
    let l = ui.label(t(ui, label_id));
    let r = ui
        .add(
            egui::TextEdit::singleline(value)
                .hint_text(t(ui, "hint-date"))
                .desired_width(90.0),
        )
        .labelled_by(l.id);
    if r.changed() {
        *value = i18n::mask_date(value);
    }
}

impl Filters {
    /// A date filter that is neither empty nor DD.MM.YYYY.
    pub fn bad_date(&self) -> bool {
        [&self.from, &self.to]
            .iter()
            .any(|d| !d.trim().is_empty() && i18n::iso_from_typed(d).is_none())
    }
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
            ui.heading(t(ui, "audit-log"));
            if ui.button(t(ui, "refresh")).clicked() {
                st.refresh(cmds);
            }
        });
        match &st.chain {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(t(ui, "audit-verifying"));
                });
            }
            Some(Ok(v)) => {
                ui.colored_label(
                    Color32::from_rgb(0, 140, 60),
                    ta(
                        ui,
                        if v.checkpoint_signatures_checked {
                            "audit-chain-verified-signed"
                        } else {
                            "audit-chain-verified"
                        },
                        &[
                            ("events", i18n::n(v.events as f64)),
                            ("checkpoints", i18n::n(v.checkpoints as f64)),
                            ("last", i18n::s(v.last_seq.to_string())),
                        ],
                    ),
                );
            }
            Some(Err(e)) => {
                ui.colored_label(
                    Color32::RED,
                    ta(
                        ui,
                        "audit-chain-not-verified",
                        &[("detail", i18n::s(e.as_str()))],
                    ),
                );
            }
        }
        ui.horizontal_wrapped(|ui| {
            date_filter(ui, "audit-from", &mut st.filters.from);
            date_filter(ui, "audit-to", &mut st.filters.to);
            text_filter(ui, "audit-operator", &mut st.filters.operator, 90.0);
            text_filter(ui, "audit-action", &mut st.filters.action, 110.0);
            text_filter(ui, "audit-document", &mut st.filters.document, 110.0);
        });
        if st.filters.bad_date() {
            ui.colored_label(Color32::RED, t(ui, "audit-date-shape"));
        }
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
                ui.label(ta(
                    ui,
                    "audit-shown",
                    &[
                        ("shown", i18n::n(shown.len() as f64)),
                        ("total", i18n::n(events.len() as f64)),
                    ],
                ));
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
                    for h in [
                        "audit-col-seq",
                        "audit-col-time",
                        "audit-col-operator",
                        "audit-col-action",
                        "audit-col-object",
                        "audit-col-details",
                    ] {
                        ui.label(RichText::new(t(ui, h)).strong());
                    }
                    ui.end_row();
                    for e in rows
                        .iter()
                        .skip(range.start.saturating_sub(1))
                        .take(range.len())
                    {
                        ui.label(e.seq.to_string());
                        ui.label(i18n::date(&e.time));
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
    ui.heading(t(ui, "audit-export-heading"));
    ui.horizontal(|ui| {
        text_filter(ui, "audit-export-folder", &mut st.export_dir, 300.0);
        ui.checkbox(&mut st.csv, t(ui, "audit-csv"));
        let enabled =
            !st.export_pending && !st.export_dir.trim().is_empty() && !st.filters.bad_date();
        if ui
            .add_enabled(enabled, egui::Button::new(t(ui, "audit-export")))
            .clicked()
        {
            let f = &st.filters;
            let from = i18n::iso_from_typed(&f.from);
            let to = i18n::iso_from_typed(&f.to);
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
                ta(
                    ui,
                    "audit-export-failed",
                    &[("detail", i18n::s(e.as_str()))],
                ),
            );
        }
        None => {}
    }
    ui.separator();
    ui.heading(t(ui, "audit-verify-heading"));
    ui.horizontal(|ui| {
        text_filter(ui, "audit-verify-folder", &mut st.verify_dir, 300.0);
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
                    &[("detail", i18n::s(e.as_str()))],
                ),
            );
        }
        None => {}
    }
    ui.add_space(4.0);
}
