//! The clerk's look-up panel: a holder by PINFL (their documents with status, dates, office,
//! card and certificates, the numbers spoiled in their issuances, and — for a holder with an
//! active card — the replacement reasons instead of a new issuance), a document by number (a
//! spoiled number said so), and declaring a card lost or stolen. What it shows is asked for
//! again after every action, so no screen keeps a status the registry no longer has.

use egui::{Color32, RichText};
use station::holder::HolderRecord;
use station::interactive::{HolderLookup, SpoiledNumber};
use station::records::{DocumentView, HolderView, RevokeReport};

use super::copyable;
use crate::error::Shown;
use crate::i18n::{self, t, ta, tr, tr_args, Lang};
use crate::notation::card_serial;
use crate::worker::{Command, Event};

const GREEN: Color32 = Color32::from_rgb(0, 140, 60);
const ORANGE: Color32 = Color32::from_rgb(200, 120, 0);

/// The replacement reasons the clerk chooses from, with the catalogue ids of their buttons
/// (`station::services::replace::REASONS`).
pub const REPLACE_REASONS: &[(&str, &str)] = &[
    ("lost", "replace-lost"),
    ("stolen", "replace-stolen"),
    ("damaged", "replace-damaged"),
    ("name-change", "replace-name-change"),
    // Offered on an enrolled station only: a card the national centre flagged.
    ("recalled", "replace-recalled"),
];

/// What another workspace asks the look-up to find for a replacement: the holder of a card of
/// this station's (their record fills the form), or another station's document (the national
/// registry's record, with the replacement reasons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Find {
    Holder(String),
    Document(String),
}

/// What the clerk chose in the panel for the clerk's workspace to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Replace the active document `document` for `reason` (one of [`REPLACE_REASONS`]).
    Replace {
        document: String,
        reason: &'static str,
    },
    /// Replace another office's active document `document` here for `reason`, the form
    /// prefilled with the holder's identity as the national registry has it.
    ReplaceElsewhere {
        document: String,
        reason: &'static str,
        holder: Box<centre_api::HolderAtCentre>,
    },
}

#[derive(Default)]
pub struct LookupState {
    pub pinfl: String,
    pub number: String,
    msg: Option<(bool, String)>,
    /// The last look-up failed: in plain words, its details under "Details".
    failure: Option<Shown>,
    /// Look-ups sent and not answered yet.
    pending: u32,
    /// The answers on their way come from the clerk's own look-up (a holder's record fills
    /// the form, messages are replaced); a refresh after an action only renews what is shown.
    asked: bool,
    holder: Option<Box<HolderLookup>>,
    document: Option<Box<(HolderView, DocumentView)>>,
    spoiled: Option<SpoiledNumber>,
    /// A document this enrolled station did not issue, as the national registry has it.
    elsewhere: Option<Box<centre_api::CardAtCentre>>,
    revoke_pending: bool,
    revoke_confirm: Option<&'static str>,
    revoke_result: Option<Result<RevokeReport, Shown>>,
    /// Ask for what is shown again in the next frame.
    refresh: bool,
    /// Look up the PINFL (`true`) or the document number (`false`) in the field once nothing
    /// is pending ([`LookupState::find`]).
    find_typed: Option<bool>,
}

impl LookupState {
    pub fn busy(&self) -> bool {
        self.pending > 0 || self.revoke_pending || self.find_typed.is_some()
    }

    /// Ask the registry again for the holder and the document shown (after an issuance, a
    /// replacement or a revocation).
    pub fn refresh(&mut self) {
        self.refresh = true;
    }

    /// The active document of the holder looked up, when the form is for that holder: a new
    /// card for them is a replacement, not an issuance.
    pub fn active_document(&self, form_pinfl: &str) -> Option<&DocumentView> {
        let h = self.holder.as_ref()?;
        (h.view.pinfl == form_pinfl.trim())
            .then(|| h.active_document())
            .flatten()
    }

    /// Take a look-up's answer. Returns the holder record to fill the form with (the clerk's
    /// own holder look-up only).
    pub fn handle(&mut self, ev: &Event, lang: Lang) -> Option<HolderRecord> {
        match ev {
            Event::Holder(r) => {
                self.pending = self.pending.saturating_sub(1);
                match r {
                    Ok(Some(found)) => {
                        self.failure = None;
                        let fill = std::mem::take(&mut self.asked);
                        let record = found.record.clone();
                        self.holder = Some(found.clone());
                        if fill {
                            self.msg = Some((
                                true,
                                tr_args(
                                    lang,
                                    "lookup-holder-loaded",
                                    &[("pinfl", i18n::s(record.pinfl.as_str()))],
                                ),
                            ));
                            return Some(record);
                        }
                    }
                    Ok(None) => {
                        self.failure = None;
                        self.holder = None;
                        self.msg = Some((false, tr(lang, "lookup-holder-none")));
                    }
                    Err(e) => self.failure = Some(e.clone()),
                }
            }
            Event::Document(r) => {
                self.pending = self.pending.saturating_sub(1);
                self.spoiled = None;
                self.elsewhere = None;
                match r {
                    Ok(d) => {
                        if std::mem::take(&mut self.asked) {
                            self.msg = None;
                            self.failure = None;
                            self.revoke_result = None;
                            self.revoke_confirm = None;
                        }
                        self.document = Some(d.clone());
                    }
                    Err(e) => {
                        self.document = None;
                        self.failure = Some(e.clone());
                    }
                }
            }
            Event::SpoiledNumber(s) => {
                self.pending = self.pending.saturating_sub(1);
                self.document = None;
                self.elsewhere = None;
                self.msg = None;
                self.failure = None;
                self.spoiled = Some((**s).clone());
            }
            Event::DocumentElsewhere(found) => {
                self.pending = self.pending.saturating_sub(1);
                if std::mem::take(&mut self.asked) {
                    self.msg = None;
                    self.revoke_result = None;
                    self.revoke_confirm = None;
                }
                self.document = None;
                self.spoiled = None;
                self.failure = None;
                self.elsewhere = Some(found.clone());
            }
            Event::DocumentRevoked(r) => {
                self.revoke_pending = false;
                self.revoke_confirm = None;
                self.revoke_result = Some(r.clone());
                self.refresh = true;
            }
            _ => {}
        }
        None
    }

    fn send_refresh(&mut self, cmds: &mut Vec<Command>) {
        if !std::mem::take(&mut self.refresh) {
            return;
        }
        self.asked = false;
        if let Some(h) = &self.holder {
            self.pending += 1;
            cmds.push(Command::LookupHolder {
                pinfl: h.view.pinfl.clone(),
            });
        }
        if let Some(d) = &self.document {
            self.pending += 1;
            cmds.push(Command::LookupDocument {
                number: d.1.document.clone(),
            });
        }
        // Another office's document: the centre's record again (after a declaration, lost).
        if let Some(found) = &self.elsewhere {
            self.pending += 1;
            cmds.push(Command::LookupDocument {
                number: found.document.clone(),
            });
        }
    }
}

/// Draw the look-up panel. `replacing` is the document a replacement is being prepared for.
pub fn panel(
    ui: &mut egui::Ui,
    st: &mut LookupState,
    replacing: Option<&str>,
    centre: bool,
    cmds: &mut Vec<Command>,
) -> Option<Action> {
    if st.pending == 0 {
        if let Some(holder) = st.find_typed.take() {
            st.refresh = false;
            st.ask(holder, cmds);
        }
    }
    if st.pending == 0 {
        st.send_refresh(cmds);
    }
    ui.heading(t(ui, "lookup-heading"));
    search_ui(ui, st, cmds);
    if st.pending > 0 {
        ui.spinner();
    }
    if let Some((ok, m)) = &st.msg {
        ui.colored_label(if *ok { GREEN } else { Color32::RED }, m);
    }
    if let Some(f) = &st.failure {
        crate::error::ui(ui, f);
    }
    if let Some(s) = &st.spoiled {
        ui.separator();
        spoiled_ui(ui, s);
    }
    let mut action = None;
    if st.holder.is_some() {
        ui.separator();
        action = holder_ui(ui, st, replacing, centre);
    }
    if st.document.is_some() {
        ui.separator();
        found_document_ui(ui, st, cmds);
    }
    if let Some(found) = st.elsewhere.clone() {
        ui.separator();
        let number = found.document.clone();
        elsewhere_ui(ui, &found);
        let declared = matches!(st.revoke_result, Some(Ok(_)));
        if found.state == "active" && !declared && replacing != Some(number.as_str()) {
            action = replace_elsewhere_ui(ui, &found).or(action);
        }
        if matches!(found.state.as_str(), "active" | "suspended") && !declared {
            declare_ui(ui, st, number, cmds);
        }
        revoke_result_ui(ui, &st.revoke_result);
    }
    // A declaration went through but the record could not be read again (the centre or the
    // registry away): what was declared stays on screen, with the failure above it.
    if st.document.is_none() && st.elsewhere.is_none() {
        revoke_result_ui(ui, &st.revoke_result);
    }
    action
}

fn search_ui(ui: &mut egui::Ui, st: &mut LookupState, cmds: &mut Vec<Command>) {
    let enter = |ui: &egui::Ui, r: &egui::Response| {
        r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))
    };
    for holder in [true, false] {
        ui.horizontal(|ui| {
            let (label, button, text) = if holder {
                ("lookup-pinfl", "lookup-find-holder", &mut st.pinfl)
            } else {
                ("lookup-document", "lookup-find-document", &mut st.number)
            };
            let l = ui.label(t(ui, label));
            let r = ui
                .add(egui::TextEdit::singleline(text).desired_width(150.0))
                .labelled_by(l.id);
            let go = enter(ui, &r);
            let b = ui.add_enabled(st.pending == 0, egui::Button::new(t(ui, button)));
            if (b.clicked() || go) && st.pending == 0 {
                st.ask(holder, cmds);
            }
        });
    }
}

impl LookupState {
    /// The clerk's own look-up of the PINFL (`holder`) or the document number typed in.
    fn ask(&mut self, holder: bool, cmds: &mut Vec<Command>) {
        self.pending += 1;
        self.asked = true;
        self.msg = None;
        self.failure = None;
        // A new look-up: the last declaration's result is not this one's.
        self.revoke_result = None;
        self.revoke_confirm = None;
        cmds.push(if holder {
            Command::LookupHolder {
                pinfl: self.pinfl.clone(),
            }
        } else {
            Command::LookupDocument {
                number: self.number.clone(),
            }
        });
    }

    /// Look up `what` as if the clerk had typed it (from the cards to replace or a flagged card
    /// in Card services): sent by the panel once no other look-up is on its way, so that the
    /// answer shown is this one.
    pub fn find(&mut self, what: &Find) {
        match what {
            Find::Holder(pinfl) => {
                pinfl.clone_into(&mut self.pinfl);
                self.find_typed = Some(true);
            }
            Find::Document(number) => {
                number.clone_into(&mut self.number);
                self.find_typed = Some(false);
            }
        }
    }
}

/// Another office's document as the national registry has it: whose it is, so that the clerk
/// can check the holder in front of them before declaring anything.
fn elsewhere_ui(ui: &mut egui::Ui, found: &centre_api::CardAtCentre) {
    let lang = i18n::current(ui.ctx());
    // The invitation to declare only while a declaration is offered (the document in use).
    let in_use = matches!(found.state.as_str(), "active" | "suspended");
    ui.label(ta(
        ui,
        if in_use {
            "doc-elsewhere"
        } else {
            "doc-elsewhere-out"
        },
        &[("number", i18n::s(found.document.as_str()))],
    ));
    let h = &found.holder;
    let name = [
        Some(h.surname.as_str()),
        Some(h.given_names.as_str()),
        h.patronymic.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    ui.label(
        egui::RichText::new(ta(
            ui,
            "doc-elsewhere-record",
            &[
                ("name", i18n::s(name)),
                ("pinfl", i18n::s(h.pinfl.as_str())),
                ("born", i18n::s(i18n::date(&h.date_of_birth))),
                ("status", i18n::s(i18n::status_word(lang, &found.state))),
                ("office", i18n::s(found.office.as_str())),
                ("issued", i18n::s(i18n::date(&found.date_of_issue))),
                ("expires", i18n::s(i18n::date(&found.date_of_expiry))),
            ],
        ))
        .strong(),
    );
}

/// The replacement reasons for another office's active card, replaced here through the
/// centre (`recalled` only for a card the centre flagged).
fn replace_elsewhere_ui(ui: &mut egui::Ui, found: &centre_api::CardAtCentre) -> Option<Action> {
    ui.add_space(6.0);
    ui.add(egui::Label::new(t(ui, "doc-elsewhere-replace")).wrap());
    let mut action = None;
    ui.horizontal_wrapped(|ui| {
        for &(reason, id) in REPLACE_REASONS {
            if reason == "recalled" && found.replacement_due.is_none() {
                continue;
            }
            if ui.button(t(ui, id)).clicked() {
                action = Some(Action::ReplaceElsewhere {
                    document: found.document.clone(),
                    reason,
                    holder: Box::new(found.holder.clone()),
                });
            }
        }
    });
    action
}

/// A spoiled number: no document carries it and it is never handed out again.
fn spoiled_ui(ui: &mut egui::Ui, s: &SpoiledNumber) {
    let text = ta(
        ui,
        "lookup-spoiled",
        &[
            ("number", i18n::s(s.document.as_str())),
            (
                "card",
                i18n::s(
                    s.card_serial
                        .as_deref()
                        .map(card_serial)
                        .unwrap_or_else(|| "—".into()),
                ),
            ),
            ("date", i18n::s(i18n::date(&s.when))),
        ],
    );
    ui.add(egui::Label::new(RichText::new(text).color(ORANGE)).wrap());
}

/// The holder looked up: documents, spoiled numbers, and the replacement reasons when they
/// have an active card (`recalled` only on a station enrolled with the national centre).
fn holder_ui(
    ui: &mut egui::Ui,
    st: &LookupState,
    replacing: Option<&str>,
    centre: bool,
) -> Option<Action> {
    let h = st.holder.as_ref()?;
    let v = &h.view;
    ui.label(
        RichText::new(ta(
            ui,
            "doc-holder",
            &[
                ("surname", i18n::s(v.surname.as_str())),
                ("given", i18n::s(v.given_names.as_str())),
                ("pinfl", i18n::s(v.pinfl.as_str())),
            ],
        ))
        .strong(),
    );
    if v.documents.is_empty() {
        ui.label(t(ui, "lookup-no-documents"));
    }
    for d in &v.documents {
        document_ui(ui, d);
    }
    for s in &h.spoiled {
        spoiled_ui(ui, s);
    }
    let active = h.active_document()?;
    ui.add_space(6.0);
    ui.add(
        egui::Label::new(
            RichText::new(ta(
                ui,
                "lookup-has-active",
                &[("number", i18n::s(active.document.as_str()))],
            ))
            .color(ORANGE)
            .strong(),
        )
        .wrap(),
    );
    if replacing == Some(active.document.as_str()) {
        return None;
    }
    let mut action = None;
    ui.horizontal_wrapped(|ui| {
        for &(reason, id) in REPLACE_REASONS {
            if reason == "recalled" && !centre {
                continue;
            }
            if ui.button(t(ui, id)).clicked() {
                action = Some(Action::Replace {
                    document: active.document.clone(),
                    reason,
                });
            }
        }
    });
    action
}

/// One document: number, status, dates, office, card, certificates.
fn document_ui(ui: &mut egui::Ui, d: &DocumentView) {
    ui.add_space(4.0);
    copyable(ui, t(ui, "doc-document"), &d.document);
    ui.label(ta(
        ui,
        "doc-status",
        &[("status", i18n::s(status_word(ui, &d.status)))],
    ));
    ui.label(ta(
        ui,
        "doc-valid",
        &[
            ("from", i18n::s(i18n::date(&d.date_of_issue))),
            ("to", i18n::s(i18n::date(&d.date_of_expiry))),
        ],
    ));
    ui.label(ta(
        ui,
        "doc-office",
        &[("office", i18n::s(d.office.as_str()))],
    ));
    if let Some(c) = &d.card_serial {
        copyable(ui, t(ui, "doc-card"), &card_serial(c));
    }
    for c in &d.certificates {
        copyable(
            ui,
            ta(
                ui,
                "doc-certificate",
                &[
                    ("profile", i18n::s(c.profile.as_str())),
                    ("status", i18n::s(status_word(ui, &c.status))),
                ],
            ),
            &c.serial,
        );
    }
}

/// The document looked up by number, with "Declare lost / stolen" while it is in use.
fn found_document_ui(ui: &mut egui::Ui, st: &mut LookupState, cmds: &mut Vec<Command>) {
    let Some(found) = &st.document else { return };
    let (h, d) = &**found;
    ui.label(ta(
        ui,
        "doc-holder",
        &[
            ("surname", i18n::s(h.surname.as_str())),
            ("given", i18n::s(h.given_names.as_str())),
            ("pinfl", i18n::s(h.pinfl.as_str())),
        ],
    ));
    document_ui(ui, d);
    let number = d.document.clone();
    if d.status == "active" || d.status == "suspended" {
        declare_ui(ui, st, number, cmds);
    }
    revoke_result_ui(ui, &st.revoke_result);
}

/// What the last document revocation ("Declare lost / stolen", the CA workspace's) did.
pub(crate) fn revoke_result_ui(ui: &mut egui::Ui, result: &Option<Result<RevokeReport, Shown>>) {
    match result {
        Some(Ok(r)) => {
            ui.colored_label(
                GREEN,
                ta(
                    ui,
                    "doc-revoked",
                    &[
                        ("number", i18n::s(r.document.as_str())),
                        ("status", i18n::s(status_word(ui, &r.status))),
                        ("count", i18n::n(r.revoked_certificates.len() as f64)),
                    ],
                ),
            );
        }
        Some(Err(e)) => crate::error::ui(ui, e),
        None => {}
    }
}

fn declare_ui(ui: &mut egui::Ui, st: &mut LookupState, number: String, cmds: &mut Vec<Command>) {
    ui.add_space(6.0);
    ui.label(t(ui, "doc-declare"));
    ui.horizontal(|ui| {
        if ui.button(t(ui, "doc-declare-lost")).clicked() {
            st.revoke_confirm = Some("lost");
        }
        if ui.button(t(ui, "doc-declare-stolen")).clicked() {
            st.revoke_confirm = Some("stolen");
        }
    });
    let Some(reason) = st.revoke_confirm else {
        return;
    };
    let reason_word = status_word(ui, reason);
    ui.colored_label(
        ORANGE,
        ta(
            ui,
            "doc-declare-warning",
            &[
                ("number", i18n::s(number.as_str())),
                ("reason", i18n::s(reason_word.as_str())),
            ],
        ),
    );
    ui.horizontal(|ui| {
        let b = ui.add_enabled(
            !st.revoke_pending,
            egui::Button::new(ta(
                ui,
                "doc-declare-confirm",
                &[("reason", i18n::s(reason_word.as_str()))],
            )),
        );
        if b.clicked() {
            st.revoke_pending = true;
            cmds.push(Command::RevokeDocument {
                number: number.clone(),
                reason: reason.to_string(),
            });
        }
        if ui.button(t(ui, "cancel")).clicked() {
            st.revoke_confirm = None;
        }
    });
}

/// Why a card is replaced, in words: "lost", "stolen", "damaged", "name change", "recalled by
/// the centre".
pub fn reason_word(ui: &egui::Ui, reason: &str) -> String {
    match reason {
        "name-change" => t(ui, "replace-reason-name-change"),
        "recalled" => t(ui, "replace-reason-recalled"),
        other => status_word(ui, other),
    }
}

/// A registry status in words ("active", "lost", "revoked" …) in the screen's language.
pub fn status_word(ui: &egui::Ui, status: &str) -> String {
    crate::i18n::status_word(crate::i18n::current(ui.ctx()), status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui_kittest::kittest::Queryable as _;

    /// A declaration that went through stays on screen when reading the record again fails
    /// (the centre stopped between the two): the clerk must not be left wondering whether the
    /// card is now lost.
    #[test]
    fn a_declaration_stays_shown_when_the_record_cannot_be_read_again() {
        let mut st = LookupState {
            revoke_pending: true,
            ..LookupState::default()
        };
        st.handle(
            &Event::DocumentRevoked(Ok(RevokeReport {
                document: "AA0000042".into(),
                status: "lost".into(),
                revoked_certificates: vec!["01".into(), "02".into()],
                crl_reason: "keyCompromise".into(),
            })),
            Lang::En,
        );
        assert!(st.refresh, "a declaration asks for the record again");
        st.handle(
            &Event::Document(Err(Shown {
                message: "The national centre cannot be reached.".into(),
                next: "Try again.".into(),
                details: "centre: unreachable".into(),
                retry: true,
            })),
            Lang::En,
        );
        let mut harness = egui_kittest::Harness::new_ui_state(
            |ui, st: &mut LookupState| {
                crate::i18n::set(ui.ctx(), Lang::En);
                let mut cmds = Vec::new();
                st.refresh = false;
                panel(ui, st, None, true, &mut cmds);
            },
            st,
        );
        harness.run();
        harness.get_by_label_contains("Document AA0000042 is now lost");
        harness.get_by_label_contains("The national centre cannot be reached.");
        // The clerk's next look-up is not about that declaration: its result goes.
        harness.get_by_label("Find document").click();
        // The look-up is on its way (a spinner keeps repainting): two frames, not until idle.
        harness.run_steps(2);
        assert!(harness.state().revoke_result.is_none());
        assert!(harness
            .query_by_label_contains("Document AA0000042 is now lost")
            .is_none());
    }
}
