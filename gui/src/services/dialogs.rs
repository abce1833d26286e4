//! The services' dialogs: what the clerk confirms before a service runs (the holder's identity
//! checked in person, a new PUK and where its letter goes, the address). One at a time, in the
//! middle of the screen; Enter confirms, Escape cancels, the first field takes the focus.

use std::path::PathBuf;

use egui::{Color32, RichText};
use station::holder::AddressRecord;

use super::{Plan, ServicesState};
use crate::i18n::{self, t, ta};
use crate::worker::Command;

/// An address as typed: dates DD.MM.YYYY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressDraft {
    pub temporary: bool,
    pub region: String,
    pub district: String,
    pub street: String,
    pub house: String,
    pub apartment: String,
    pub registered_on: String,
    pub registered_until: String,
}

impl Default for AddressDraft {
    fn default() -> Self {
        AddressDraft {
            temporary: false,
            region: String::new(),
            district: String::new(),
            street: String::new(),
            house: String::new(),
            apartment: String::new(),
            registered_on: i18n::date_of(station::time_util::today_utc()),
            registered_until: String::new(),
        }
    }
}

impl AddressDraft {
    /// The record `address set` takes, or the label of the first field to correct.
    pub fn record(&self) -> Result<AddressRecord, &'static str> {
        let need = |s: &str, id: &'static str| {
            if s.trim().is_empty() {
                Err(id)
            } else {
                Ok(s.trim().to_owned())
            }
        };
        let date = |s: &str, id: &'static str| i18n::iso_from_typed(s).ok_or(id);
        let until = if self.temporary {
            Some(date(&self.registered_until, "field-registered-until")?)
        } else {
            None
        };
        Ok(AddressRecord {
            kind: if self.temporary {
                "temporary"
            } else {
                "permanent"
            }
            .into(),
            region: need(&self.region, "field-region")?,
            district: need(&self.district, "field-district")?,
            street: need(&self.street, "field-street")?,
            house: need(&self.house, "field-house")?,
            apartment: Some(self.apartment.trim().to_owned()).filter(|a| !a.is_empty()),
            registered_on: date(&self.registered_on, "field-registered-on")?,
            registered_until: until,
        })
    }
}

/// The dialog open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialog {
    Unblock {
        identity: bool,
        new_puk: bool,
        letter: String,
        error: Option<String>,
    },
    Suspend,
    Resume {
        identity: bool,
        error: Option<String>,
    },
    Returned,
    AddressSet {
        draft: Box<AddressDraft>,
        error: Option<String>,
    },
    AddressEnd {
        ended_on: String,
        error: Option<String>,
    },
}

/// What the clerk did in the dialog this frame.
enum Choice {
    None,
    Cancel,
    Confirm,
}

/// Draw the open dialog; a confirmed one goes on (to the PIN window or the worker).
pub fn show(ctx: &egui::Context, st: &mut ServicesState, cmds: &mut Vec<Command>) {
    let Some(mut dialog) = st.dialog.take() else {
        return;
    };
    let lang = i18n::current(ctx);
    let (number, name) = match &st.identity {
        Some(id) => (
            id.document.number.clone(),
            format!("{} {}", id.holder.surname, id.holder.given_names),
        ),
        None => return,
    };
    let title = i18n::tr(lang, title_id(&dialog));
    let mut choice = Choice::None;
    let first = std::mem::take(&mut st.focus_dialog);
    let list_open = egui::Popup::is_any_open(ctx);
    egui::Window::new(title)
        .id(egui::Id::unique("svc-dialog"))
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
        .show(ctx, |ui| {
            ui.set_width(480.0);
            let args = [
                ("number", i18n::s(number.as_str())),
                ("name", i18n::s(name.as_str())),
            ];
            choice = body(ui, &mut dialog, &args, first);
        });
    // Escape closes an open list first; only with none open does it cancel the dialog.
    if !list_open && ctx.input(|i| i.key_pressed(egui::Key::Escape)) {
        choice = Choice::Cancel;
    }
    match choice {
        Choice::None => st.dialog = Some(dialog),
        Choice::Cancel => {}
        Choice::Confirm => match plan(lang, &mut dialog) {
            Ok(plan) => st.go(plan, cmds),
            Err(()) => st.dialog = Some(dialog),
        },
    }
}

fn title_id(d: &Dialog) -> &'static str {
    match d {
        Dialog::Unblock { .. } => "svc-unblock",
        Dialog::Suspend => "svc-suspend",
        Dialog::Resume { .. } => "svc-resume",
        Dialog::Returned => "svc-returned",
        Dialog::AddressSet { .. } => "svc-address-set",
        Dialog::AddressEnd { .. } => "svc-address-end",
    }
}

/// The plan a confirmed dialog stands for, or its error shown in it.
fn plan(lang: i18n::Lang, d: &mut Dialog) -> Result<Plan, ()> {
    let tr = |id: &str| i18n::tr(lang, id);
    match d {
        Dialog::Unblock {
            identity,
            new_puk,
            letter,
            error,
        } => {
            *error = if !*identity {
                Some(tr("svc-identity-missing"))
            } else if *new_puk && letter.trim().is_empty() {
                Some(tr("issue-letter-missing"))
            } else {
                None
            };
            match error {
                Some(_) => Err(()),
                None => Ok(Plan::Unblock {
                    identity_confirmed: *identity,
                    new_puk_letter: new_puk.then(|| PathBuf::from(letter.trim())),
                }),
            }
        }
        Dialog::Suspend => Ok(Plan::Suspend),
        Dialog::Resume { identity, error } => {
            *error = (!*identity).then(|| tr("svc-identity-missing"));
            match error {
                Some(_) => Err(()),
                None => Ok(Plan::Resume {
                    identity_confirmed: true,
                }),
            }
        }
        Dialog::Returned => Ok(Plan::CardReturned),
        Dialog::AddressSet { draft, error } => match draft.record() {
            Ok(r) => Ok(Plan::AddressSet(r)),
            Err(label) => {
                *error = Some(i18n::tr_args(
                    lang,
                    "svc-field-needed",
                    &[("field", i18n::s(tr(label)))],
                ));
                Err(())
            }
        },
        Dialog::AddressEnd { ended_on, error } => match i18n::iso_from_typed(ended_on) {
            Some(d) => Ok(Plan::AddressEnd(Some(d))),
            None => {
                *error = Some(i18n::tr_args(
                    lang,
                    "svc-field-needed",
                    &[("field", i18n::s(tr("svc-ended-on")))],
                ));
                Err(())
            }
        },
    }
}

/// The dialog's text, fields and buttons.
fn body(
    ui: &mut egui::Ui,
    d: &mut Dialog,
    args: &[(&str, fluent_bundle::FluentValue<'_>)],
    first: bool,
) -> Choice {
    let enter = |ui: &egui::Ui, r: &egui::Response| {
        r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))
    };
    let mut submitted = false;
    let error = match d {
        Dialog::Unblock {
            identity,
            new_puk,
            letter,
            error,
        } => {
            let text = ta(ui, "svc-unblock-text", args);
            wrap(ui, text);
            let r = ui.checkbox(identity, t(ui, "svc-identity-confirmed"));
            if first {
                r.request_focus();
            }
            ui.checkbox(new_puk, t(ui, "svc-new-puk"));
            if *new_puk {
                ui.horizontal(|ui| {
                    let l = ui.label(t(ui, "issue-letter"));
                    let r = ui
                        .add(egui::TextEdit::singleline(letter).desired_width(300.0))
                        .labelled_by(l.id);
                    submitted |= enter(ui, &r);
                });
                let text = t(ui, "issue-letter-help");
                wrap(ui, text);
            }
            error.clone()
        }
        Dialog::Suspend => {
            let text = ta(ui, "svc-suspend-text", args);
            wrap(ui, text);
            None
        }
        Dialog::Resume { identity, error } => {
            let text = ta(ui, "svc-resume-text", args);
            wrap(ui, text);
            let r = ui.checkbox(identity, t(ui, "svc-identity-confirmed"));
            if first {
                r.request_focus();
            }
            error.clone()
        }
        Dialog::Returned => {
            let text = ta(ui, "svc-returned-text", args);
            wrap(ui, text);
            None
        }
        Dialog::AddressSet { draft, error } => {
            let text = ta(ui, "svc-address-set-text", args);
            wrap(ui, text);
            submitted |= super::view::address_form(ui, draft, first);
            error.clone()
        }
        Dialog::AddressEnd { ended_on, error } => {
            let text = ta(ui, "svc-address-end-text", args);
            wrap(ui, text);
            ui.horizontal(|ui| {
                let l = ui.label(t(ui, "svc-ended-on"));
                let r = ui
                    .add(egui::TextEdit::singleline(ended_on).desired_width(110.0))
                    .labelled_by(l.id);
                *ended_on = i18n::mask_date(ended_on);
                submitted |= enter(ui, &r);
                if first {
                    r.request_focus();
                }
            });
            error.clone()
        }
    };
    ui.colored_label(Color32::RED, error.as_deref().unwrap_or(" "));
    let mut choice = if submitted {
        Choice::Confirm
    } else {
        Choice::None
    };
    ui.horizontal(|ui| {
        let confirm = ui.button(RichText::new(t(ui, "svc-confirm")).strong());
        if first && matches!(d, Dialog::Suspend | Dialog::Returned) {
            confirm.request_focus();
        }
        if confirm.clicked() {
            choice = Choice::Confirm;
        }
        if ui.button(t(ui, "cancel")).clicked() {
            choice = Choice::Cancel;
        }
    });
    choice
}

/// A paragraph that wraps at the dialog's width.
fn wrap(ui: &mut egui::Ui, text: String) {
    ui.add(egui::Label::new(text).wrap());
}
