//! The holder's own PIN entry as a window apart from the clerk's screen (turn the screen, or
//! put it on the holder-facing display): a new PIN typed twice (unblock), or the card's PIN
//! typed once (renewal's test signatures). Its texts, sizes and keys are the issuance's holder
//! PIN window's (clerk.rs): the same catalogue entries, password fields 160 points wide, the
//! focus on the first field when it opens and after a refusal, Enter in the last field starts,
//! a fixed error line so nothing moves under the holder's finger. The entries are zeroized as
//! soon as they are handed on or refused.

use egui::{Color32, RichText};
use zeroize::{Zeroize, Zeroizing};

use crate::i18n::{self, t, tr, tr_args};

/// What the window asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinAsk {
    /// A new PIN, twice, checked against the weak-PIN rules and the holder's birth date.
    NewPin { date_of_birth: time::Date },
    /// The card's current PIN, once.
    CurrentPin,
}

/// The window's state; closed when `ask` is `None`.
#[derive(Default)]
pub struct PinWindow {
    ask: Option<PinAsk>,
    pin: String,
    pin2: String,
    attempt: u32,
    focus: bool,
    error: Option<String>,
}

/// What the holder did in this frame.
pub enum PinOutcome {
    Nothing,
    Cancelled,
    Entered(Zeroizing<String>),
}

impl Drop for PinWindow {
    fn drop(&mut self) {
        self.clear();
    }
}

impl PinWindow {
    pub fn open(&mut self, ask: PinAsk) {
        self.clear();
        self.ask = Some(ask);
        self.focus = true;
        self.error = None;
    }

    pub fn is_open(&self) -> bool {
        self.ask.is_some()
    }

    pub fn close(&mut self) {
        self.clear();
        self.ask = None;
        self.error = None;
    }

    fn clear(&mut self) {
        self.pin.zeroize();
        self.pin2.zeroize();
    }

    /// Draw the window (when open) and report what the holder did.
    pub fn show(&mut self, ctx: &egui::Context) -> PinOutcome {
        let Some(ask) = self.ask else {
            return PinOutcome::Nothing;
        };
        let lang = i18n::current(ctx);
        let twice = matches!(ask, PinAsk::NewPin { .. });
        let (mut start, mut cancel) = (false, false);
        egui::Window::new(tr(lang, "pin-window-title"))
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                ui.set_width(420.0);
                let intro = if twice {
                    "svc-pin-intro-new"
                } else {
                    "svc-pin-intro-current"
                };
                ui.label(RichText::new(t(ui, intro)).strong());
                if twice {
                    ui.add(egui::Label::new(t(ui, "pin-window-rules")).wrap());
                }
                let focus = std::mem::take(&mut self.focus);
                let fields = if twice { 2 } else { 1 };
                egui::Grid::new("svc-holder-pin")
                    .num_columns(2)
                    .show(ui, |ui| {
                        for (i, text) in [&mut self.pin, &mut self.pin2]
                            .into_iter()
                            .take(fields)
                            .enumerate()
                        {
                            let id = if i == 0 { "pin-first" } else { "pin-second" };
                            let l = ui.label(t(ui, id));
                            let r = crate::secret_field::secret_field(
                                ui,
                                text,
                                ("svc", id, self.attempt),
                                160.0,
                            )
                            .labelled_by(l.id);
                            if focus && i == 0 {
                                r.request_focus();
                            }
                            let enter =
                                r.lost_focus() && ui.input(|x| x.key_pressed(egui::Key::Enter));
                            if i + 1 == fields && enter {
                                start = true;
                            }
                            ui.end_row();
                        }
                    });
                ui.colored_label(Color32::RED, self.error.as_deref().unwrap_or(" "));
                ui.horizontal(|ui| {
                    start |= ui.button(t(ui, "svc-pin-start")).clicked();
                    cancel = ui.button(t(ui, "cancel")).clicked();
                });
            });
        if cancel {
            self.close();
            return PinOutcome::Cancelled;
        }
        if !start {
            return PinOutcome::Nothing;
        }
        self.error = self.refusal(lang, ask);
        if self.error.is_some() {
            self.clear();
            self.attempt += 1;
            self.focus = true;
            return PinOutcome::Nothing;
        }
        let pin = Zeroizing::new(std::mem::take(&mut self.pin));
        self.close();
        PinOutcome::Entered(pin)
    }

    /// Why the entry cannot be used, in `lang` (the issuance window's words).
    fn refusal(&self, lang: i18n::Lang, ask: PinAsk) -> Option<String> {
        match ask {
            _ if self.pin.is_empty() => Some(tr(lang, "pin-empty")),
            PinAsk::CurrentPin => None,
            PinAsk::NewPin { .. } if self.pin != self.pin2 => Some(tr(lang, "pin-differ")),
            PinAsk::NewPin { date_of_birth } => {
                station::pin_letter::check_holder_pin(&self.pin, date_of_birth)
                    .err()
                    .map(|e| {
                        let rule = e.to_string();
                        let rule = rule.trim_start_matches("invalid input: pin: ");
                        tr_args(lang, "pin-refused", &[("rule", i18n::s(rule))])
                    })
            }
        }
    }
}
