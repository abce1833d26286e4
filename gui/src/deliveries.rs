//! The national centre's e-government deliveries (issue 21; docs/gui.md "E-government
//! deliveries"), a tab of the CA-admin's and the auditor's workspaces on an enrolled station:
//! the centre's dead letters by default, every message on a toggle, each row with what failed
//! and when; a CA administrator sends a failed message again (Retry, after a confirmation), an
//! auditor only reads. The lists and the retry run on the worker thread
//! (`station::centre::outbox`, which checks the role and audits); refusals and an unreachable
//! centre are shown in plain words with the station's sentence under "Details". A standalone
//! station has no centre and says so: its own outbox has no delivery state to show.

use egui::{Color32, RichText};
use station::centre::outbox::{OutboxList, OutboxMessage, OutboxStatus};
use station::Role;

use crate::error::{self as gerr, Shown};
use crate::i18n::{self, t, ta};
use crate::worker::{Command, Event, SessionInfo};

/// The width of the "What failed" column: the centre's last error wraps inside it.
const ERROR_WIDTH: f32 = 200.0;

#[derive(Default)]
pub struct DeliveriesState {
    requested: bool,
    /// Every message, not only the dead letters.
    pub show_all: bool,
    list: Option<Result<OutboxList, Shown>>,
    /// The message whose retry is being confirmed.
    confirm: Option<OutboxMessage>,
    retry_pending: bool,
    retried: Option<Result<OutboxMessage, Shown>>,
}

impl DeliveriesState {
    pub fn busy(&self) -> bool {
        self.retry_pending || (self.requested && self.list.is_none())
    }

    pub fn handle(&mut self, ev: &Event, cmds: &mut Vec<Command>) {
        match ev {
            Event::CentreOutbox(r) => self.list = Some(r.clone()),
            Event::CentreOutboxRetried(r) => {
                self.retry_pending = false;
                self.retried = Some(r.clone());
                // The list as the centre holds it now: the message pending again.
                if r.is_ok() {
                    self.refresh(cmds);
                }
            }
            _ => {}
        }
    }

    fn refresh(&mut self, cmds: &mut Vec<Command>) {
        self.requested = true;
        self.list = None;
        cmds.push(Command::CentreOutbox {
            failed_only: !self.show_all,
        });
    }
}

/// The tab: the standalone sentence, or the toolbar, the result of a retry, and the table.
pub fn ui(
    ui: &mut egui::Ui,
    st: &mut DeliveriesState,
    session: &SessionInfo,
    cmds: &mut Vec<Command>,
) {
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.heading(t(ui, "deliveries-heading"));
        if !session.centre {
            ui.add(egui::Label::new(t(ui, "deliveries-standalone")).wrap());
            return;
        }
        if !st.requested {
            st.refresh(cmds);
        }
        toolbar(ui, st, cmds);
        retried_ui(ui, st);
        let admin = session.role == Role::CaAdmin;
        if !admin {
            ui.label(RichText::new(t(ui, "deliveries-read-only")).weak());
        }
        egui::ScrollArea::both()
            .id_salt("deliveries-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| table_ui(ui, st, admin));
        confirm_ui(ui, st, cmds);
    });
}

/// Failed only / All messages, and Refresh.
fn toolbar(ui: &mut egui::Ui, st: &mut DeliveriesState, cmds: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        let before = st.show_all;
        ui.selectable_value(&mut st.show_all, false, t(ui, "deliveries-failed-only"));
        ui.selectable_value(&mut st.show_all, true, t(ui, "deliveries-all"));
        let refresh = ui.button(t(ui, "refresh")).clicked();
        if refresh || before != st.show_all {
            // What the last retry said is old news once the operator asks again.
            st.retried = None;
            st.refresh(cmds);
        }
    });
}

/// What the last retry did.
fn retried_ui(ui: &mut egui::Ui, st: &DeliveriesState) {
    if st.retry_pending {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(t(ui, "deliveries-retrying"));
        });
    }
    match &st.retried {
        Some(Ok(m)) => {
            let args = [
                ("id", i18n::s(m.id.to_string())),
                ("status", i18n::s(status_word(ui, m.status))),
            ];
            ui.colored_label(
                Color32::from_rgb(0, 140, 60),
                ta(ui, "deliveries-retried", &args),
            );
        }
        Some(Err(e)) => gerr::ui(ui, e),
        None => {}
    }
}

fn table_ui(ui: &mut egui::Ui, st: &mut DeliveriesState, admin: bool) {
    let list = match &st.list {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(t(ui, "deliveries-loading"));
            });
            return;
        }
        Some(Err(e)) => return gerr::ui(ui, e),
        Some(Ok(list)) => list,
    };
    if list.more {
        let args = [(
            "count",
            i18n::n(u32::try_from(list.messages.len()).unwrap_or(u32::MAX)),
        )];
        ui.label(RichText::new(ta(ui, "deliveries-more", &args)).weak());
    }
    let list = &list.messages;
    if list.is_empty() {
        let id = if st.show_all {
            "deliveries-none"
        } else {
            "deliveries-none-failed"
        };
        ui.label(t(ui, id));
        return;
    }
    let mut retry = None;
    egui::Grid::new("deliveries")
        .striped(true)
        .num_columns(8)
        .show(ui, |ui| {
            header(ui);
            for m in list {
                if row(ui, m, admin && !st.retry_pending) {
                    retry = Some(m.clone());
                }
            }
        });
    if retry.is_some() {
        st.confirm = retry;
    }
}

fn header(ui: &mut egui::Ui) {
    for h in [
        "deliveries-col-id",
        "deliveries-col-topic",
        "deliveries-col-document",
        "deliveries-col-status",
        "deliveries-col-attempts",
        "deliveries-col-when",
    ] {
        ui.label(RichText::new(t(ui, h)).strong());
    }
    // Retry before what failed: the button stays inside a 1024-pixel window.
    ui.label("");
    ui.label(RichText::new(t(ui, "deliveries-col-error")).strong());
    ui.end_row();
}

/// One message; `true` when its Retry was clicked.
fn row(ui: &mut egui::Ui, m: &OutboxMessage, can_retry: bool) -> bool {
    ui.label(m.id.to_string());
    ui.label(topic_word(ui, &m.topic));
    ui.label(RichText::new(m.document.as_deref().unwrap_or("–")).monospace());
    let color = match m.status {
        OutboxStatus::Delivered => Color32::from_rgb(0, 140, 60),
        OutboxStatus::Pending => Color32::from_rgb(200, 120, 0),
        OutboxStatus::Failed => Color32::RED,
    };
    ui.colored_label(color, status_word(ui, m.status));
    ui.label(m.attempts.to_string());
    ui.label(when(ui, m));
    let clicked = m.status == OutboxStatus::Failed
        && can_retry
        && ui.button(t(ui, "deliveries-retry")).clicked();
    if m.status != OutboxStatus::Failed || !can_retry {
        ui.label("");
    }
    let error = match m.status {
        OutboxStatus::Delivered => "",
        _ => m.last_error.as_deref().unwrap_or(""),
    };
    ui.vertical(|ui| {
        ui.set_width(ERROR_WIDTH);
        ui.add(egui::Label::new(RichText::new(error).small()).wrap());
    });
    ui.end_row();
    clicked
}

/// Delivered at, next try at, or failed since, as DD.MM.YYYY hh:mm:ss UTC.
fn when(ui: &egui::Ui, m: &OutboxMessage) -> String {
    let (id, time) = match m.status {
        OutboxStatus::Delivered => ("deliveries-when-delivered", &m.delivered_at),
        OutboxStatus::Pending => ("deliveries-when-pending", &m.next_attempt_at),
        OutboxStatus::Failed => ("deliveries-when-failed", &m.dead_since),
    };
    let time = time.as_deref().map(i18n::date).unwrap_or_default();
    ta(ui, id, &[("time", i18n::s(time))])
}

fn status_word(ui: &egui::Ui, s: OutboxStatus) -> String {
    t(
        ui,
        match s {
            OutboxStatus::Pending => "deliveries-status-pending",
            OutboxStatus::Delivered => "deliveries-status-delivered",
            OutboxStatus::Failed => "deliveries-status-failed",
        },
    )
}

/// A topic in words (`document.issued` → "Card issued"); an unknown one as it is.
fn topic_word(ui: &egui::Ui, topic: &str) -> String {
    let id = format!("deliveries-topic-{}", topic.replace('.', "-"));
    if i18n::has(&id) {
        t(ui, &id)
    } else {
        topic.to_owned()
    }
}

/// "Send the message again?" for the row whose Retry was clicked (Escape cancels).
fn confirm_ui(ui: &mut egui::Ui, st: &mut DeliveriesState, cmds: &mut Vec<Command>) {
    let Some(m) = st.confirm.clone() else {
        return;
    };
    let (mut yes, mut no) = (false, false);
    egui::Window::new(t(ui, "deliveries-confirm-title"))
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
        .show(ui.ctx(), |ui| {
            let args = [
                ("id", i18n::s(m.id.to_string())),
                ("document", i18n::s(m.document.clone().unwrap_or_default())),
                ("attempts", i18n::n(m.attempts)),
            ];
            ui.add(egui::Label::new(ta(ui, "deliveries-confirm-text", &args)).wrap());
            ui.horizontal(|ui| {
                yes = ui.button(t(ui, "deliveries-confirm-yes")).clicked();
                no = ui.button(t(ui, "deliveries-confirm-no")).clicked();
            });
        });
    if yes {
        st.confirm = None;
        st.retry_pending = true;
        st.retried = None;
        cmds.push(Command::RetryCentreOutbox { id: m.id });
    } else if no || ui.input(|i| i.key_pressed(egui::Key::Escape)) {
        st.confirm = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list the centre cut at its limit says so above the table.
    #[test]
    fn a_list_cut_at_the_centre_says_older_messages_are_left_out() {
        use egui_kittest::kittest::Queryable as _;
        let message = OutboxMessage {
            id: 1001,
            topic: "document.issued".into(),
            document: Some("AA0001001".into()),
            status: OutboxStatus::Delivered,
            attempts: 0,
            created_at: "2026-12-06T10:00:00Z".into(),
            next_attempt_at: None,
            last_attempt_at: Some("2026-12-06T10:00:01Z".into()),
            last_error: None,
            dead_since: None,
            delivered_at: Some("2026-12-06T10:00:01Z".into()),
            receipt_status: Some(200),
            receipt: None,
        };
        for (more, shown) in [(true, true), (false, false)] {
            let st = DeliveriesState {
                requested: true,
                show_all: true,
                list: Some(Ok(OutboxList {
                    messages: vec![message.clone()],
                    more,
                })),
                ..Default::default()
            };
            let mut harness = egui_kittest::Harness::new_ui_state(
                |ui, st: &mut DeliveriesState| {
                    crate::i18n::set(ui.ctx(), crate::i18n::Lang::En);
                    table_ui(ui, st, false);
                },
                st,
            );
            harness.run();
            harness.get_by_label("AA0001001");
            let note = harness.query_by_label_contains(
                "Showing the newest 1 messages; the centre holds older ones",
            );
            assert_eq!(note.is_some(), shown, "more: {more}");
        }
    }
}
