//! The auditor's workspace: the audit log (docs/audit-format.md) as a table with filters
//! ([`filters`]), the selected event in words ([`detail`]), charts of issuances per day and
//! refusals per operator ([`plots`]), the chain's verification status (hash chain and
//! HSM-signed checkpoints), export of a date range to a folder signed by the audit key and
//! offline verification of an export folder ([`export`]).

pub mod detail;
pub mod export;
pub mod filters;
pub mod plots;

use egui::{Color32, RichText};
use station::audit::{ExportOutcome, VerifyLogOutcome, VerifyOutcome};
use station::AuditEvent;

pub use filters::Filters;
pub use plots::PlotData;

use crate::error::Shown;
use crate::i18n::{self, t, ta};
use crate::options::GuiOptions;
use crate::worker::{Command, Event};

/// What the central area shows under the filters.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The table and the selected event's details.
    #[default]
    Events,
    /// The charts of the filtered events.
    Charts,
}

#[derive(Default)]
pub struct AuditorState {
    requested: bool,
    events: Option<Result<Vec<AuditEvent>, Shown>>,
    chain: Option<Result<VerifyLogOutcome, Shown>>,
    pub filters: Filters,
    /// The sequence number of the event shown in the detail pane.
    pub selected: Option<u64>,
    pub view: View,
    /// What the charts drew last (read back by tests).
    pub plots: PlotData,
    /// An export ended: read the log again, so the table has the export's own event.
    reload: bool,
    export_dir: String,
    csv: bool,
    export_pending: bool,
    exported: Option<Result<Box<ExportOutcome>, Shown>>,
    verify_dir: String,
    verify_pending: bool,
    verified: Option<Result<Box<VerifyOutcome>, Shown>>,
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
                    self.reload = true;
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
        self.reload = false;
        self.events = None;
        self.chain = None;
        cmds.push(Command::AuditEvents);
        cmds.push(Command::VerifyLog);
    }

    /// The events the filters let through, in log order (`None` until the log is read).
    pub fn shown(&self) -> Option<Vec<&AuditEvent>> {
        match &self.events {
            Some(Ok(events)) => Some(events.iter().filter(|e| self.filters.matches(e)).collect()),
            _ => None,
        }
    }
}

pub fn ui(ui: &mut egui::Ui, st: &mut AuditorState, _opts: &GuiOptions, cmds: &mut Vec<Command>) {
    if !st.requested || st.reload {
        st.refresh(cmds);
    }
    egui::Panel::bottom("audit-actions")
        .resizable(false)
        .show(ui, |ui| export::ui(ui, st, cmds));
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading(t(ui, "audit-log"));
            if ui.button(t(ui, "refresh")).clicked() {
                st.refresh(cmds);
            }
        });
        chain_status(ui, st);
        st.filters.ui(ui);
        events_ui(ui, st);
    });
}

fn chain_status(ui: &mut egui::Ui, st: &AuditorState) {
    match &st.chain {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(t(ui, "audit-verifying"));
            });
        }
        Some(Ok(v)) => {
            let id = if v.checkpoint_signatures_checked {
                "audit-chain-verified-signed"
            } else {
                "audit-chain-verified"
            };
            let args = [
                ("events", i18n::n(v.events as f64)),
                ("checkpoints", i18n::n(v.checkpoints as f64)),
                ("last", i18n::s(v.last_seq.to_string())),
            ];
            ui.colored_label(Color32::from_rgb(0, 140, 60), ta(ui, id, &args));
        }
        Some(Err(e)) => {
            let args = [("detail", i18n::s(e.message.as_str()))];
            ui.colored_label(Color32::RED, ta(ui, "audit-chain-not-verified", &args));
            crate::error::details_ui(ui, &e.details);
        }
    }
}

/// The counts, the Events/Charts switch, and the table with the detail pane or the charts.
fn events_ui(ui: &mut egui::Ui, st: &mut AuditorState) {
    let events = match &st.events {
        None => {
            ui.spinner();
            return;
        }
        Some(Err(e)) => {
            crate::error::ui(ui, e);
            return;
        }
        Some(Ok(events)) => events,
    };
    let shown: Vec<&AuditEvent> = events.iter().filter(|e| st.filters.matches(e)).collect();
    let in_range = events.iter().filter(|e| st.filters.in_range(e)).count();
    ui.horizontal_wrapped(|ui| {
        ui.selectable_value(&mut st.view, View::Events, t(ui, "audit-view-events"));
        ui.selectable_value(&mut st.view, View::Charts, t(ui, "audit-view-charts"));
        ui.separator();
        ui.label(ta(
            ui,
            "audit-shown",
            &[
                ("shown", i18n::n(shown.len() as f64)),
                ("total", i18n::n(events.len() as f64)),
            ],
        ));
        ui.label(
            RichText::new(ta(
                ui,
                "audit-in-range",
                &[("count", i18n::n(in_range as f64))],
            ))
            .weak(),
        );
    });
    match st.view {
        View::Charts => {
            st.plots = PlotData::of(&shown);
            egui::ScrollArea::vertical()
                .id_salt("audit-charts")
                .show(ui, |ui| plots::ui(ui, &st.plots));
        }
        View::Events => {
            let selected = st
                .selected
                .and_then(|s| shown.iter().copied().find(|e| e.seq == s));
            egui::Panel::right("audit-detail")
                .resizable(true)
                .default_size(320.0)
                .min_size(240.0)
                .show(ui, |ui| detail::ui(ui, selected));
            table(ui, &shown, &mut st.selected);
        }
    }
}

fn table(ui: &mut egui::Ui, rows: &[&AuditEvent], selected: &mut Option<u64>) {
    let row_h = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    egui::ScrollArea::both()
        .id_salt("audit-table-scroll")
        .auto_shrink([false, false])
        .show_rows(ui, row_h, rows.len() + 1, |ui, range| {
            egui::Grid::new("audit-table")
                .striped(true)
                .num_columns(5)
                .min_row_height(row_h)
                .show(ui, |ui| {
                    for h in [
                        "audit-col-seq",
                        "audit-col-time",
                        "audit-col-operator",
                        "audit-col-action",
                        "audit-col-object",
                    ] {
                        ui.label(RichText::new(t(ui, h)).strong());
                    }
                    ui.end_row();
                    for e in rows
                        .iter()
                        .skip(range.start.saturating_sub(1))
                        .take(range.len())
                    {
                        // The sequence number selects the row (a button: Tab and Enter too).
                        let is = *selected == Some(e.seq);
                        if ui.selectable_label(is, e.seq.to_string()).clicked() {
                            *selected = Some(e.seq);
                        }
                        ui.label(detail::timestamp(&e.time));
                        ui.label(format!("{} ({})", e.operator, e.role));
                        ui.label(&e.action);
                        ui.label(&e.object);
                        ui.end_row();
                    }
                });
        });
}
