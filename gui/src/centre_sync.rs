//! The registry kept up to date with the national centre while a clerk or ca-admin works
//! (docs/gui.md "Kept up to date with the centre"): on an enrolled station the workspace asks
//! the worker for `idstation centre sync` (`station::services::mirror`: what other offices
//! changed at the centre about this station's documents — a suspension, a resume, a loss or a
//! revocation — brought into this station's registry, each audited) at the log-in and then
//! every `[centre] sync_every_seconds`. A bar at the bottom of the workspace says when the registry was last brought up to
//! date, what changed, what failed and when the next sync is, with "Sync now". After a failure
//! the next try waits a minute, doubled with each failure in a row up to the interval; a
//! refusal a repeat does not change stops the automatic sync until "Sync now". The sync does
//! not count as work in progress (it does not keep the operator from an idle log-out), but it
//! runs on the worker: the operator's next action waits for it (at most 15 s a page). An
//! answer that arrives after a log-out is dropped.

use std::time::{Duration, Instant, SystemTime};

use egui::{Color32, RichText};
use station::document_signer::DocumentSignerRenewal;
use station::services::mirror::SyncReport;

use crate::error::{self as gerr, Shown};
use crate::i18n::{self, t, ta};
use crate::worker::{Command, Event, SessionInfo};

/// After a failed sync the next one is due after this, doubled with each failure in a row up
/// to the configured interval.
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
    /// Failed syncs in a row.
    failures: u32,
    /// The last sync was refused in a way a repeat does not change (the operator's account, the
    /// station at the centre): no automatic sync until "Sync now" (nor a refusal audited each
    /// minute).
    stopped: bool,
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

    /// The Document Signer that the sync answered by `ev` renewed (the station renews it by
    /// itself once its key usage is about to end).
    pub fn renewed(ev: &Event) -> Option<&DocumentSignerRenewal> {
        match ev {
            Event::CentreSynced(Ok(r)) => r.document_signer_renewed.as_ref(),
            _ => None,
        }
    }

    fn ask(&mut self, cmds: &mut Vec<Command>) {
        self.pending = true;
        self.stopped = false;
        cmds.push(Command::SyncWithCentre);
    }

    /// Ask for the automatic sync when it is due (every frame of the workspace).
    fn tick(&mut self, every: Option<Duration>, cmds: &mut Vec<Command>) {
        if every.is_some()
            && !self.pending
            && !self.stopped
            && self.due.is_none_or(|d| Instant::now() >= d)
        {
            self.ask(cmds);
        }
    }

    /// The worker's answer to a sync this session asked for.
    pub fn handle(&mut self, ev: &Event, every: Option<Duration>) {
        let (Event::CentreSynced(r), true) = (ev, self.pending) else {
            return;
        };
        self.pending = false;
        let clean = matches!(r, Ok(rep) if rep.clean());
        self.failures = if clean {
            0
        } else {
            self.failures.saturating_add(1)
        };
        self.stopped = matches!(r, Err(e) if !e.retry);
        let backoff = RETRY_AFTER.saturating_mul(1 << self.failures.saturating_sub(1).min(10));
        let next = every
            .filter(|_| !self.stopped)
            .map(|e| if clean { e } else { e.min(backoff) });
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
            if let Some(d) = &r.document_signer_renewed {
                let until = d.key_usage_until.as_deref().unwrap_or("");
                let args = [
                    ("key", i18n::s(d.key.as_str())),
                    ("until", i18n::s(i18n::date(until))),
                ];
                ui.label(ta(ui, "sync-ds-renewed", &args));
            }
            if r.document_signer_failed.is_some() {
                ui.colored_label(Color32::from_rgb(200, 120, 0), t(ui, "sync-ds-failed"));
            }
        }
        Err(e) => {
            ui.colored_label(Color32::RED, ta(ui, "sync-failed", &when));
            if !e.retry {
                ui.label(t(ui, "sync-stopped"));
            }
        }
    }
    if let Some(next) = &last.next {
        let next = [("time", i18n::s(crate::auditor::detail::timestamp(next)))];
        ui.label(RichText::new(ta(ui, "sync-next", &next)).weak());
    }
}

/// The documents the last sync changed here, and those it could not, under an expander.
fn changes_ui(ui: &mut egui::Ui, r: &SyncReport) {
    if r.mirrored.is_empty() && r.failed.is_empty() && r.document_signer_failed.is_none() {
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
                let key = if m.reason.as_deref() == Some("renewed") {
                    "sync-document-renewed"
                } else {
                    "sync-document"
                };
                ui.label(ta(ui, key, &args));
            }
            for (document, error) in &r.failed {
                let args = [("document", i18n::s(document.as_str()))];
                ui.colored_label(
                    Color32::from_rgb(200, 120, 0),
                    ta(ui, "sync-document-failed", &args),
                );
                ui.label(RichText::new(error).monospace().small());
            }
            if let Some(error) = &r.document_signer_failed {
                ui.colored_label(Color32::from_rgb(200, 120, 0), t(ui, "sync-ds-failed"));
                ui.label(RichText::new(error).monospace().small());
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(retry: bool) -> Event {
        Event::CentreSynced(Err(Shown {
            message: "the centre could not be reached".into(),
            next: "try again".into(),
            details: String::new(),
            retry,
        }))
    }

    /// Seconds from now to the next automatic sync.
    fn due_in(st: &CentreSyncState) -> Option<u64> {
        st.due.map(|d| {
            d.saturating_duration_since(Instant::now())
                .as_secs_f64()
                .round() as u64
        })
    }

    #[test]
    fn a_failure_backs_off_to_the_interval_and_a_refusal_stops_until_sync_now() {
        let every = Some(Duration::from_secs(300));
        let mut st = CentreSyncState::default();
        let mut cmds = Vec::new();
        st.tick(every, &mut cmds);
        st.tick(every, &mut cmds);
        assert_eq!(cmds.len(), 1, "asked once at the start, then pending");
        // 60, 120, 240, then the interval.
        for want in [60, 120, 240, 300, 300] {
            st.handle(&failure(true), every);
            assert_eq!(due_in(&st), Some(want));
            st.pending = true;
        }
        // A refusal that a repeat does not change: nothing automatic, even once due.
        st.handle(&failure(false), every);
        assert_eq!(due_in(&st), None);
        st.due = Some(Instant::now());
        let mut cmds = Vec::new();
        st.tick(every, &mut cmds);
        assert!(cmds.is_empty());
        // Sync now asks, and a clean answer brings back the interval.
        st.ask(&mut cmds);
        assert_eq!(cmds.len(), 1);
        let clean = station::services::mirror::SyncReport {
            listed: 0,
            mirrored: Vec::new(),
            skipped: Vec::new(),
            failed: Vec::new(),
            until: "2026-12-05T14:00:00Z".into(),
            document_signer_renewed: None,
            document_signer_failed: None,
        };
        st.handle(&Event::CentreSynced(Ok(clean)), every);
        assert_eq!((st.failures, due_in(&st)), (0, Some(300)));
        // An answer nobody asked for (after a log-out) changes nothing.
        st.handle(&failure(true), every);
        assert_eq!((st.failures, due_in(&st)), (0, Some(300)));
    }

    /// A sync whose due Document Signer renewal failed is retried as a failed one (after a
    /// minute), and a renewal it made is what the workspace learns of the new Document Signer.
    #[test]
    fn a_failed_document_signer_renewal_is_retried_and_a_renewal_is_passed_on() {
        let every = Some(Duration::from_secs(300));
        let report = |failed: Option<&str>, renewed: Option<DocumentSignerRenewal>| {
            Event::CentreSynced(Ok(SyncReport {
                listed: 0,
                mirrored: Vec::new(),
                skipped: Vec::new(),
                failed: Vec::new(),
                until: "2026-12-05T14:00:00Z".into(),
                document_signer_renewed: renewed,
                document_signer_failed: failed.map(str::to_owned),
            }))
        };
        let mut st = CentreSyncState::default();
        st.ask(&mut Vec::new());
        st.handle(
            &report(Some("the centre could not be reached"), None),
            every,
        );
        assert_eq!((st.failures, due_in(&st)), (1, Some(60)));
        assert!(CentreSyncState::renewed(&report(Some("x"), None)).is_none());
        let renewal = DocumentSignerRenewal {
            key: "ds-2".into(),
            serial: "01".into(),
            csca: "csca-1".into(),
            key_usage_until: Some("2027-03-07T12:00:00Z".into()),
            days_left: Some(91),
            previous_key: Some("ds-1".into()),
            csca_learnt: None,
            issued_now: true,
            automatic: true,
        };
        st.ask(&mut Vec::new());
        let done = report(None, Some(renewal));
        st.handle(&done, every);
        assert_eq!((st.failures, due_in(&st)), (0, Some(300)));
        let d = CentreSyncState::renewed(&done).expect("the renewal");
        assert_eq!((d.key.as_str(), d.days_left), ("ds-2", Some(91)));
    }

    /// What a sync changed, listed in words: a state change as "here / at the centre", a
    /// renewal at another office as renewed certificates recorded here.
    #[test]
    fn the_changes_of_a_sync_say_what_changed_and_a_renewal_in_its_own_words() {
        use egui_kittest::kittest::Queryable as _;
        use station::services::mirror::Mirrored;
        let mirrored = |now: &str, reason: &str| Mirrored {
            document: "AA0000042".into(),
            was: "active".into(),
            now: now.into(),
            reason: Some(reason.into()),
            changed_at: "2026-12-05T10:11:12Z".into(),
            changed_by: Some("sam01-st1/clerk2".into()),
            certificates: vec!["0A".into()],
        };
        let report = SyncReport {
            listed: 2,
            mirrored: vec![
                mirrored("suspended", "suspended"),
                mirrored("active", "renewed"),
            ],
            skipped: Vec::new(),
            failed: Vec::new(),
            until: "2026-12-05T14:00:00Z".into(),
            document_signer_renewed: None,
            document_signer_failed: None,
        };
        let mut harness = egui_kittest::Harness::new_ui_state(
            |ui, r: &mut SyncReport| {
                crate::i18n::set(ui.ctx(), crate::i18n::Lang::En);
                changes_ui(ui, r);
            },
            report,
        );
        harness.run();
        harness.get_by_label("What changed").click();
        harness.run();
        harness.get_by_label_contains("Document AA0000042: active here, suspended at the centre");
        harness.get_by_label_contains(
            "Document AA0000042: its certificates were renewed at 05.12.2026 10:11:12 UTC \
             (sam01-st1/clerk2); the new ones are recorded here",
        );
        assert!(harness
            .query_by_label_contains("active here, active at the centre")
            .is_none());
    }
}
