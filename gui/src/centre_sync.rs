//! The registry kept up to date with the national centre while a clerk or ca-admin works
//! (docs/gui.md "Kept up to date with the centre"): on an enrolled station the workspace asks
//! the worker for `idstation centre sync` (`station::services::mirror`: what other offices
//! changed at the centre about this station's documents — a suspension, a resume, a loss or a
//! revocation — brought into this station's registry, each audited) at the log-in and then
//! every `[centre] sync_every_seconds`, and sooner again (after a minute at most) when it
//! failed. A bar at the bottom of the workspace says when the registry was last brought up to
//! date, what changed, what failed and when the next sync is, with "Sync now". The sync does
//! not count as work in progress: it neither keeps the operator from an idle log-out nor waits
//! for the operator; an answer that arrives after a log-out is dropped.

use std::time::{Duration, Instant, SystemTime};

use egui::{Color32, RichText};
use station::services::mirror::SyncReport;

use crate::error::{self as gerr, Shown};
use crate::i18n::{self, t, ta};
use crate::worker::{Command, Event, SessionInfo};

/// After a failed sync the next one is due after this at most.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// The last sync's outcome.
struct Last {
    /// When it ended (RFC 3339, UTC).
    at: String,
    result: Result<SyncReport, Shown>,
    /// When the next automatic one is due (RFC 3339), if any.
    next: Option<String>,
}

#[derive(Default)]
pub struct CentreSyncState {
    pending: bool,
    /// When the next automatic sync is due; `None` before the first (due at once).
    due: Option<Instant>,
    last: Option<Last>,
}

/// Whether `s` may sync: a clerk or ca-admin of an enrolled station.
fn shown_to(s: &SessionInfo) -> bool {
    s.centre && station::services::mirror::ROLES.contains(&s.role)
}

impl CentreSyncState {
    /// A sync asked of the worker has not answered yet.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// The last sync's report, when it succeeded.
    pub fn last_report(&self) -> Option<&SyncReport> {
        self.last.as_ref().and_then(|l| l.result.as_ref().ok())
    }

    fn ask(&mut self, cmds: &mut Vec<Command>) {
        self.pending = true;
        cmds.push(Command::SyncWithCentre);
    }

    /// Ask for the automatic sync when it is due (every frame of the workspace).
    fn tick(&mut self, every: Option<Duration>, cmds: &mut Vec<Command>) {
        if every.is_some() && !self.pending && self.due.is_none_or(|d| Instant::now() >= d) {
            self.ask(cmds);
        }
    }

    /// The worker's answer to a sync this session asked for.
    pub fn handle(&mut self, ev: &Event, every: Option<Duration>) {
        let (Event::CentreSynced(r), true) = (ev, self.pending) else {
            return;
        };
        self.pending = false;
        let clean = matches!(r, Ok(rep) if rep.failed.is_empty());
        let next = every.map(|e| if clean { e } else { e.min(RETRY_AFTER) });
        self.due = next.map(|n| Instant::now() + n);
        self.last = Some(Last {
            at: station::time_util::format_rfc3339(SystemTime::now()),
            result: r.clone(),
            next: next.map(|n| station::time_util::format_rfc3339(SystemTime::now() + n)),
        });
    }
}

/// The bar at the bottom of the workspace (drawn before the workspace's central panel);
/// nothing for an auditor or on a standalone station.
pub fn bar(ui: &mut egui::Ui, st: &mut CentreSyncState, s: &SessionInfo, cmds: &mut Vec<Command>) {
    if !shown_to(s) {
        return;
    }
    st.tick(s.centre_sync, cmds);
    egui::Panel::bottom("centre-sync").show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            if ui
                .add_enabled(!st.pending, egui::Button::new(t(ui, "sync-now")))
                .clicked()
            {
                st.ask(cmds);
            }
            if st.pending {
                ui.spinner();
                ui.label(t(ui, "sync-running"));
            }
            match &st.last {
                None if s.centre_sync.is_none() => {
                    ui.label(RichText::new(t(ui, "sync-off")).weak());
                }
                None => {}
                Some(last) => outcome_ui(ui, last),
            }
        });
        if let Some(Last { result: Ok(r), .. }) = &st.last {
            changes_ui(ui, r);
        }
        if let Some(Last { result: Err(e), .. }) = &st.last {
            gerr::details_ui(ui, &format!("{} {}\n{}", e.message, e.next, e.details));
        }
    });
}

/// When, what and the next time, on one line.
fn outcome_ui(ui: &mut egui::Ui, last: &Last) {
    let when = [("time", i18n::s(crate::auditor::detail::timestamp(&last.at)))];
    match &last.result {
        Ok(r) => {
            ui.label(ta(ui, "sync-done", &when));
            match r.mirrored.len() {
                0 => ui.label(t(ui, "sync-unchanged")),
                n => ui.label(ta(ui, "sync-changed", &[("count", i18n::n(n as f64))])),
            };
            if !r.failed.is_empty() {
                let failed = [("count", i18n::n(r.failed.len() as f64))];
                ui.colored_label(
                    Color32::from_rgb(200, 120, 0),
                    ta(ui, "sync-failed-some", &failed),
                );
            }
        }
        Err(_) => {
            ui.colored_label(Color32::RED, ta(ui, "sync-failed", &when));
        }
    }
    if let Some(next) = &last.next {
        let next = [("time", i18n::s(crate::auditor::detail::timestamp(next)))];
        ui.label(RichText::new(ta(ui, "sync-next", &next)).weak());
    }
}

/// The documents the last sync changed here, and those it could not, under an expander.
fn changes_ui(ui: &mut egui::Ui, r: &SyncReport) {
    if r.mirrored.is_empty() && r.failed.is_empty() {
        return;
    }
    let lang = i18n::current(ui.ctx());
    egui::CollapsingHeader::new(t(ui, "sync-what-changed"))
        .id_salt("centre-sync-changes")
        .show(ui, |ui| {
            for m in &r.mirrored {
                let args = [
                    ("document", i18n::s(m.document.as_str())),
                    ("was", i18n::s(i18n::status_word(lang, &m.was))),
                    ("now", i18n::s(i18n::status_word(lang, &m.now))),
                    (
                        "when",
                        i18n::s(crate::auditor::detail::timestamp(&m.changed_at)),
                    ),
                    ("by", i18n::s(m.changed_by.as_deref().unwrap_or("—"))),
                ];
                ui.label(ta(ui, "sync-document", &args));
            }
            for (document, error) in &r.failed {
                let args = [("document", i18n::s(document.as_str()))];
                ui.colored_label(
                    Color32::from_rgb(200, 120, 0),
                    ta(ui, "sync-document-failed", &args),
                );
                ui.label(RichText::new(error).monospace().small());
            }
        });
}
