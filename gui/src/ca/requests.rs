//! Dual-control CA requests in the CA workspace: filing a rotation (a root rollover only after
//! a confirmation and a reason, kept with the request), approving or refusing another
//! administrator's request, withdrawing one's own, the states in words (`withdrawn` is not
//! `refused`), and the re-issuance list.

use egui::{Color32, RichText};
use station::rotation::RequestView;

use super::CaState;
use crate::error as gerr;
use crate::i18n::{self, t, ta};
use crate::worker::{Command, RotationLists};

/// The rotation requests an administrator can file: (catalogue id of the button, CA name for
/// `request_rotation`). The root's opens [`RolloverForm`] first.
pub const ROTATIONS: &[(&str, &str)] = &[
    ("ca-request-esign", "esign"),
    ("ca-request-root", "root"),
    ("ca-request-document-signer", "document-signer"),
];

/// The root rollover's confirmation: why, and a tick; both are needed to file it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RolloverForm {
    pub reason: String,
    pub confirmed: bool,
    /// "File" was pressed: missing parts are named under their field.
    pub tried: bool,
}

impl RolloverForm {
    /// The catalogue ids of what is missing (the reason, the confirmation).
    pub fn problems(&self) -> Vec<&'static str> {
        let mut p = Vec::new();
        if self.reason.trim().is_empty() {
            p.push("ca-rollover-reason-missing");
        }
        if !self.confirmed {
            p.push("ca-rollover-confirm-missing");
        }
        p
    }
}

/// Send a rotation command; afterwards the lists and the hierarchy are read again.
fn rotation_cmd(st: &mut CaState, cmds: &mut Vec<Command>, cmd: Command) {
    st.rotation_pending = true;
    st.rotation_result = None;
    cmds.push(cmd);
    cmds.push(Command::CaRequests);
    cmds.push(Command::CaSummaries);
}

/// An enrolled station's Document Signer renewal: what it does, the button; the outcome shows
/// with the requests' (below).
pub fn document_signer_ui(ui: &mut egui::Ui, st: &mut CaState, cmds: &mut Vec<Command>) {
    ui.heading(t(ui, "ca-ds-heading"));
    ui.add(egui::Label::new(t(ui, "ca-ds-note")).wrap());
    let active = match &st.summaries {
        Some(Ok(list)) => list
            .iter()
            .find(|c| c.ca == "document-signer" && c.state == "active"),
        _ => None,
    };
    if let Some((key, until)) =
        active.and_then(|c| Some((c.key_label.as_str(), c.key_usage_until.as_deref()?)))
    {
        let args = [("key", i18n::s(key)), ("until", i18n::s(i18n::date(until)))];
        let ended =
            time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339)
                .is_ok_and(|t| t <= time::OffsetDateTime::now_utc());
        if ended {
            let text = ta(ui, "ca-ds-ended", &args);
            ui.add(egui::Label::new(RichText::new(text).color(Color32::RED)).wrap());
        } else {
            ui.label(ta(ui, "ca-ds-until", &args));
        }
    }
    if ui
        .add_enabled(
            !st.rotation_pending,
            egui::Button::new(t(ui, "ca-ds-renew")),
        )
        .clicked()
    {
        rotation_cmd(st, cmds, Command::RenewDocumentSigner);
    }
}

/// The rotation section: buttons (`rotations`: the station's own CAs, not on an enrolled
/// station), the rollover form, the outcome, the lists.
pub fn ui(ui: &mut egui::Ui, st: &mut CaState, me: &str, rotations: bool, cmds: &mut Vec<Command>) {
    ui.heading(t(ui, "ca-rotation-heading"));
    ui.label(t(ui, "ca-rotation-note"));
    ui.horizontal_wrapped(|ui| {
        for (button, ca) in ROTATIONS.iter().filter(|_| rotations) {
            let form_open = *ca == "root" && st.rollover.is_some();
            let enabled = !(st.rotation_pending || form_open);
            if ui
                .add_enabled(enabled, egui::Button::new(t(ui, button)))
                .clicked()
            {
                if *ca == "root" {
                    st.rollover = Some(RolloverForm::default());
                } else {
                    let cmd = Command::RequestRotation {
                        ca: ca.to_string(),
                        note: None,
                    };
                    rotation_cmd(st, cmds, cmd);
                }
            }
        }
    });
    rollover_ui(ui, st, cmds);
    if st.rotation_pending {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(t(ui, "ca-rotation-working"));
        });
    }
    match &st.rotation_result {
        Some(Ok(m)) => {
            ui.colored_label(Color32::from_rgb(0, 140, 60), m);
        }
        Some(Err(e)) => gerr::ui(ui, e),
        None => {}
    }
    let mut action = None;
    match &st.rotation {
        None => {
            ui.spinner();
        }
        Some(Err(e)) => gerr::ui(ui, e),
        Some(Ok(lists)) => {
            action = requests_table(ui, lists, me, !st.rotation_pending);
            ui.add_space(6.0);
            reissue_ui(ui, lists);
        }
    }
    if let Some(cmd) = action {
        rotation_cmd(st, cmds, cmd);
    }
}

/// The root rollover's form, while open: reason, confirmation, File and Cancel.
fn rollover_ui(ui: &mut egui::Ui, st: &mut CaState, cmds: &mut Vec<Command>) {
    let Some(form) = st.rollover.as_mut() else {
        return;
    };
    let mut file = None;
    let mut cancel = false;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.label(RichText::new(t(ui, "ca-rollover-heading")).strong());
        ui.add(egui::Label::new(t(ui, "ca-rollover-note")).wrap());
        let problems = if form.tried { form.problems() } else { vec![] };
        let red = |ui: &mut egui::Ui, id: &str| {
            ui.add(egui::Label::new(RichText::new(t(ui, id)).color(Color32::RED)).wrap());
        };
        let l = ui.label(t(ui, "ca-rollover-reason"));
        ui.add(
            egui::TextEdit::multiline(&mut form.reason)
                .desired_rows(2)
                .desired_width(480.0),
        )
        .labelled_by(l.id);
        if problems.contains(&"ca-rollover-reason-missing") {
            red(ui, "ca-rollover-reason-missing");
        }
        ui.checkbox(&mut form.confirmed, t(ui, "ca-rollover-confirm"));
        if problems.contains(&"ca-rollover-confirm-missing") {
            red(ui, "ca-rollover-confirm-missing");
        }
        ui.horizontal(|ui| {
            if ui.button(t(ui, "ca-rollover-file")).clicked() {
                form.tried = true;
                if form.problems().is_empty() {
                    file = Some(form.reason.trim().to_owned());
                }
            }
            cancel = ui.button(t(ui, "ca-rollover-cancel")).clicked();
        });
    });
    if let Some(reason) = file {
        st.rollover = None;
        let cmd = Command::RequestRotation {
            ca: "root".into(),
            note: Some(reason),
        };
        rotation_cmd(st, cmds, cmd);
    } else if cancel {
        st.rollover = None;
    }
}

/// A request's state in words: `withdrawn` (refused by its own requester) is not `refused`.
pub fn state_words(ui: &egui::Ui, r: &RequestView) -> String {
    let id = format!("ca-state-{}", r.state);
    let words = if i18n::has(&id) {
        t(ui, &id)
    } else {
        r.state.clone()
    };
    // The outcome names who refused or withdrew it ("refused by NAME").
    let by = r.outcome.as_deref().and_then(|o| {
        o.strip_prefix("refused by ")
            .or(o.strip_prefix("withdrawn by "))
    });
    match by {
        Some(name) if r.state == "refused" || r.state == station::rotation::WITHDRAWN => {
            format!("{words} {}", ta(ui, "ca-by", &[("name", i18n::s(name))]))
        }
        _ => words,
    }
}

/// Every request; the buttons that apply to each pending one: Approve and Refuse another's,
/// Withdraw one's own (the station refuses a requester's approval: dual control).
fn requests_table(
    ui: &mut egui::Ui,
    lists: &RotationLists,
    me: &str,
    enabled: bool,
) -> Option<Command> {
    if lists.requests.is_empty() {
        ui.label(t(ui, "ca-no-requests"));
        return None;
    }
    let mut action = None;
    egui::Grid::new("ca-requests")
        .striped(true)
        .num_columns(9)
        .show(ui, |ui| {
            for h in [
                "ca-col-request",
                "ca-col-ca",
                "ca-col-kind",
                "ca-col-requested-by",
                "ca-col-approvals",
                "ca-col-state",
                "ca-col-note",
                "ca-col-expires",
            ] {
                ui.label(RichText::new(t(ui, h)).strong());
            }
            ui.label("");
            ui.end_row();
            for r in &lists.requests {
                ui.label(ta(ui, "ca-request", &[("id", i18n::s(r.id.to_string()))]));
                ui.label(&r.ca);
                ui.label(&r.kind);
                ui.label(&r.requested_by);
                ui.label(format!(
                    "{}/{} {}",
                    r.approvals.len(),
                    r.quorum,
                    r.approvals.join(", ")
                ));
                ui.label(state_words(ui, r));
                ui.add(egui::Label::new(r.note.as_deref().unwrap_or("")).wrap());
                ui.label(i18n::date(&r.expires_at));
                if r.state == "pending" {
                    ui.horizontal(|ui| {
                        let button = |ui: &mut egui::Ui, id: &str| {
                            ui.add_enabled(enabled, egui::Button::new(t(ui, id)))
                                .clicked()
                        };
                        if r.requested_by == me {
                            if button(ui, "ca-withdraw") {
                                action = Some(Command::RefuseRequest { id: r.id });
                            }
                        } else {
                            if button(ui, "ca-approve") {
                                action = Some(Command::ApproveRequest { id: r.id });
                            }
                            if button(ui, "ca-refuse") {
                                action = Some(Command::RefuseRequest { id: r.id });
                            }
                        }
                    });
                } else {
                    ui.label("");
                }
                ui.end_row();
            }
        });
    action
}

/// Holder certificates whose issuing CA was revoked.
fn reissue_ui(ui: &mut egui::Ui, lists: &RotationLists) {
    ui.label(RichText::new(t(ui, "ca-reissue-heading")).strong());
    if lists.reissue.is_empty() {
        ui.label(t(ui, "ca-reissue-none"));
        return;
    }
    egui::Grid::new("reissue")
        .striped(true)
        .num_columns(6)
        .show(ui, |ui| {
            for h in [
                "ca-col-holder",
                "field-pinfl",
                "ca-col-document",
                "ca-col-certificate",
                "ca-col-purpose",
                "ca-col-issuer-key",
            ] {
                ui.label(RichText::new(t(ui, h)).strong());
            }
            ui.end_row();
            for i in &lists.reissue {
                ui.label(format!("{} {}", i.surname, i.given_names));
                ui.label(&i.pinfl);
                ui.label(i.document.as_deref().unwrap_or("-"));
                ui.label(RichText::new(&i.serial).monospace());
                ui.label(format!("{} ({})", i.purpose, i.status));
                ui.label(&i.issuer_key);
                ui.end_row();
            }
        });
}
