//! The clerk's workspace: holder form with validation as you type, name preview, photo,
//! look-ups by PINFL and document number, the reader panel, issuance with PIN/PUK, progress
//! and result, and declaring a card lost or stolen.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};

use egui::{Color32, RichText};
use station::holder::{FieldError, ValidHolder, ValidationPolicy};
use station::issuance::IssueReport;
use station::journal::JobStep;
use station::records::{DocumentView, HolderView, RevokeReport};
use zeroize::{Zeroize, Zeroizing};

use crate::form::{self, HolderForm, Input, FIELDS, NAME_PAIRS};
use crate::i18n::{self, t, ta, tr, tr_args, Lang};
use crate::options::GuiOptions;
use crate::readers::ReaderSnapshot;
use crate::worker::{Command, Event, Failure, SessionInfo, StepReport};

/// The job steps in the order an issuance runs them, with the catalogue ids of the words the
/// clerk sees.
pub const JOB_STEPS: &[(JobStep, &str)] = &[
    (JobStep::CardReset, "step-card-reset"),
    (JobStep::CardPrepare, "step-card-prepare"),
    (JobStep::CaIssue, "step-ca-issue"),
    (JobStep::CardComplete, "step-card-complete"),
    (JobStep::RegistryComplete, "step-registry-complete"),
];

pub enum IssueView {
    /// The form.
    Form,
    Running {
        steps: Vec<StepReport>,
    },
    Done(Box<IssueReport>),
    Failed {
        failure: Failure,
        steps: Vec<StepReport>,
    },
}

/// The inputs of the last issuance, kept (zeroizing) for Retry.
struct PendingIssue {
    holder: ValidHolder,
    pin: Zeroizing<String>,
    /// Where the PIN letter (with the PUK the station draws) is written.
    pin_letter: PathBuf,
    /// The clerk confirmed the registered holder's changed data.
    update_holder: bool,
}

pub struct ClerkState {
    pub form: HolderForm,
    errors: BTreeMap<String, Vec<String>>,
    valid: Option<ValidHolder>,
    validated_form: Option<HolderForm>,
    pinfl_lookup: String,
    doc_lookup: String,
    lookup_msg: Option<(bool, String)>,
    lookup_pending: bool,
    found_document: Option<Box<(HolderView, DocumentView)>>,
    revoke_pending: bool,
    revoke_confirm: Option<&'static str>,
    revoke_result: Option<Result<RevokeReport, String>>,
    photo_path: String,
    photo: Option<(egui::TextureHandle, [usize; 2])>,
    photo_rx: Option<Receiver<Result<(PathBuf, egui::ColorImage), String>>>,
    photo_error: Option<String>,
    /// The holder's PIN, typed by the holder in the holder PIN window (never in the form).
    pin: String,
    pin2: String,
    /// The holder PIN window is open (the form is validated and the letter path chosen).
    holder_pin_open: bool,
    /// Entry attempts in the holder PIN window: the fields are new widgets after a refusal
    /// (their text was zeroized; a widget keeping its old cursor would not take new text).
    pin_attempt: u32,
    /// Put the keyboard focus on the first PIN field in the next frame (when the window opens
    /// and after a refusal), so the holder can type at once.
    focus_holder_pin: bool,
    /// Where the clerk saves the PIN letter.
    pin_letter: String,
    /// The PIN letter of the card just issued.
    letter_saved: Option<PathBuf>,
    secret_error: Option<String>,
    pub view: IssueView,
    last: Option<PendingIssue>,
    /// The document profile's default nationality: a new form starts with it.
    default_nationality: String,
    /// Put the keyboard focus on this field in the next frame (after log-in: PINFL; "go to
    /// first" problem).
    focus_field: Option<String>,
    /// Transliterations offered for a name field (key → suggestion), for the clerk to confirm.
    suggestion: BTreeMap<String, Result<String, String>>,
    /// The width of a form column in this frame.
    col_width: f32,
}

impl ClerkState {
    /// The clerk's workspace after log-in: a new form with the document profile's default
    /// nationality.
    pub fn for_document(doc: &station::DocumentProfile) -> Self {
        Self::with_nationality(doc.default_nationality.clone())
    }

    fn with_nationality(nationality: String) -> Self {
        let mut st = ClerkState::default();
        st.form = HolderForm::new(&nationality);
        st.default_nationality = nationality;
        st
    }
}

impl Default for ClerkState {
    fn default() -> Self {
        ClerkState {
            form: HolderForm::new(""),
            default_nationality: String::new(),
            errors: BTreeMap::new(),
            valid: None,
            validated_form: None,
            pinfl_lookup: String::new(),
            doc_lookup: String::new(),
            lookup_msg: None,
            lookup_pending: false,
            found_document: None,
            revoke_pending: false,
            revoke_confirm: None,
            revoke_result: None,
            photo_path: String::new(),
            photo: None,
            photo_rx: None,
            photo_error: None,
            pin: String::new(),
            pin2: String::new(),
            holder_pin_open: false,
            pin_attempt: 0,
            focus_holder_pin: false,
            pin_letter: String::new(),
            letter_saved: None,
            secret_error: None,
            view: IssueView::Form,
            last: None,
            focus_field: None,
            suggestion: BTreeMap::new(),
            col_width: COL_WIDTH,
        }
    }
}

impl Drop for ClerkState {
    fn drop(&mut self) {
        self.clear_secrets();
    }
}

impl ClerkState {
    /// The form holds something the clerk typed or loaded (log-out asks first).
    pub fn has_data(&self) -> bool {
        let mut fresh = HolderForm::new(&self.default_nationality);
        fresh.touched = self.form.touched.clone();
        self.form != fresh
            || !self.photo_path.trim().is_empty()
            || !self.pin_letter.trim().is_empty()
            || !matches!(self.view, IssueView::Form)
    }

    /// Put the focus on the first field of the form (PINFL) in the next frame.
    pub fn focus_first_field(&mut self) {
        self.focus_field = Some("pinfl".into());
    }

    /// The problems that stop an issuance: (field key, message), in form order.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for f in FIELDS {
            for e in self.errors.get(f.key).into_iter().flatten() {
                out.push((f.key.to_string(), e.clone()));
            }
        }
        for e in self.errors.get("photo").into_iter().flatten() {
            out.push(("photo".to_string(), e.clone()));
        }
        out
    }

    pub fn busy(&self) -> bool {
        matches!(self.view, IssueView::Running { .. }) || self.lookup_pending || self.revoke_pending
    }

    /// The document number of the issuance on the result screen.
    pub fn issued_document(&self) -> Option<String> {
        match &self.view {
            IssueView::Done(r) => Some(r.document.clone()),
            _ => None,
        }
    }

    /// The issuance view in words (for test failure messages and logs; no secrets).
    pub fn view_text(&self) -> String {
        match &self.view {
            IssueView::Form => match (&self.secret_error, self.holder_pin_open) {
                (Some(e), open) => format!("form (holder PIN window open: {open}; {e})"),
                (None, true) => "form (holder PIN window open)".into(),
                (None, false) => "form".into(),
            },
            IssueView::Running { steps } => format!("running {steps:?}"),
            IssueView::Done(r) => format!("issued {}", r.document),
            IssueView::Failed { failure, .. } => {
                format!("failed: {} / {}", failure.message, failure.next)
            }
        }
    }

    fn clear_secrets(&mut self) {
        self.pin.zeroize();
        self.pin2.zeroize();
        self.holder_pin_open = false;
    }

    pub fn handle(&mut self, ev: &Event, lang: Lang) {
        match ev {
            Event::Holder(r) => {
                self.lookup_pending = false;
                match r {
                    Ok(Some(rec)) => {
                        self.form.prefill(rec);
                        self.lookup_msg = Some((
                            true,
                            tr_args(
                                lang,
                                "lookup-holder-loaded",
                                &[("pinfl", i18n::s(rec.pinfl.as_str()))],
                            ),
                        ));
                    }
                    Ok(None) => self.lookup_msg = Some((false, tr(lang, "lookup-holder-none"))),
                    Err(e) => self.lookup_msg = Some((false, e.clone())),
                }
            }
            Event::Document(r) => {
                self.lookup_pending = false;
                match r {
                    Ok(d) => {
                        self.lookup_msg = None;
                        self.found_document = Some(d.clone());
                        self.revoke_result = None;
                        self.revoke_confirm = None;
                    }
                    Err(e) => {
                        self.found_document = None;
                        self.lookup_msg = Some((false, e.clone()));
                    }
                }
            }
            Event::DocumentRevoked(r) => {
                self.revoke_pending = false;
                self.revoke_confirm = None;
                if let (Ok(rep), Some(found)) = (r, self.found_document.as_mut()) {
                    found.1.status = rep.status.clone();
                }
                self.revoke_result = Some(r.clone());
            }
            Event::IssueStep(s) => {
                if let IssueView::Running { steps } = &mut self.view {
                    steps.push(s.clone());
                }
            }
            Event::Issued(r) => {
                let steps = match std::mem::replace(&mut self.view, IssueView::Form) {
                    IssueView::Running { steps } => steps,
                    _ => Vec::new(),
                };
                self.view = match r {
                    Ok(rep) => {
                        self.letter_saved = self.last.take().map(|p| p.pin_letter);
                        self.pin_letter.clear();
                        IssueView::Done(rep.clone())
                    }
                    Err(f) => IssueView::Failed {
                        failure: f.clone(),
                        steps,
                    },
                };
            }
            _ => {}
        }
    }

    fn revalidate(&mut self, policy: &ValidationPolicy, lang: Lang) {
        if self.validated_form.as_ref() == Some(&self.form) {
            return;
        }
        self.errors.clear();
        match self.form.validate(policy) {
            Ok(v) => self.valid = Some(v),
            Err(errs) => {
                self.valid = None;
                for FieldError { field, rule } in errs {
                    self.errors.entry(field).or_default().push(rule);
                }
            }
        }
        // A date not typed DD.MM.YYYY: the form's own message replaces the station's (which
        // speaks of the registry's YYYY-MM-DD).
        for key in self.form.date_shape_errors() {
            self.valid = None;
            self.errors
                .insert(key.to_string(), vec![tr(lang, "error-date-shape")]);
        }
        // Region, district and citizenship come from the lists.
        let regions = station::regions::uz_regions();
        let region = regions.region(&self.form.region);
        if !self.form.region.trim().is_empty() && region.is_none() {
            self.valid = None;
            self.errors.insert(
                "address.region".into(),
                vec![tr(lang, "error-region-not-listed")],
            );
        }
        if let Some(r) = region {
            if !self.form.district.trim().is_empty() && r.district(&self.form.district).is_none() {
                self.valid = None;
                self.errors.insert(
                    "address.district".into(),
                    vec![tr_args(
                        lang,
                        "error-district-not-listed",
                        &[("region", i18n::s(r.name.as_str()))],
                    )],
                );
            }
        }
        if !self.form.citizenship.trim().is_empty()
            && station::regions::citizenships()
                .get(&self.form.citizenship)
                .is_none()
        {
            self.valid = None;
            self.errors.insert(
                "citizenship".into(),
                vec![tr(lang, "error-citizenship-not-listed")],
            );
        }
        self.validated_form = Some(self.form.clone());
    }
}

/// The widest a form column gets. Columns have a fixed width for the window's size (a third of
/// the form's width, at most this), so a message under a field wraps instead of widening the
/// form, and three columns fit a 1024 px wide window.
pub const COL_WIDTH: f32 = 250.0;
/// The narrowest a form column gets.
pub const COL_MIN_WIDTH: f32 = 160.0;
const GREEN: Color32 = Color32::from_rgb(0, 140, 60);
/// The height kept for the Issue bar under the form.
const ISSUE_BAR_HEIGHT: f32 = 52.0;
const ORANGE: Color32 = Color32::from_rgb(200, 120, 0);

/// Draw the clerk workspace.
pub fn ui(
    ui: &mut egui::Ui,
    st: &mut ClerkState,
    session: &SessionInfo,
    readers: Option<&ReaderSnapshot>,
    opts: &GuiOptions,
    cmds: &mut Vec<Command>,
) {
    poll_photo(ui.ctx(), st);
    let lang = i18n::current(ui.ctx());
    if matches!(st.view, IssueView::Form) {
        st.revalidate(
            &station::interactive::holder_policy(&session.document),
            lang,
        );
    }
    egui::Panel::left("clerk-side")
        .default_size(270.0)
        .resizable(true)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().id_salt("side").show(ui, |ui| {
                lookup_panel(ui, st, cmds);
                ui.separator();
                reader_panel(ui, readers);
            });
        });
    egui::CentralPanel::default_margins().show(ui, |ui| {
        if matches!(st.view, IssueView::Form) {
            // The form scrolls; the Issue bar under it stays at the bottom whatever the form's
            // length, and comes after the form in the Tab order.
            let bar = ISSUE_BAR_HEIGHT + if st.secret_error.is_some() { 20.0 } else { 0.0 };
            egui::ScrollArea::vertical()
                .id_salt("main")
                .max_height((ui.available_height() - bar).max(100.0))
                .auto_shrink([false, false])
                .show(ui, |ui| form_ui(ui, st, session));
            ui.separator();
            issue_bar(ui, st);
        } else {
            egui::ScrollArea::vertical()
                .id_salt("main")
                .show(ui, |ui| issue_view(ui, st, opts, cmds));
        }
    });
    holder_pin_window(ui.ctx(), st, opts, cmds);
}

/// A value with a copy button beside it (serials, fingerprints, document numbers).
pub fn copyable(ui: &mut egui::Ui, label: String, value: &str) {
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("{label} {value}"));
        let b = ui.small_button(t(ui, "copy")).on_hover_text(ta(
            ui,
            "copy-value",
            &[("what", i18n::s(label.as_str()))],
        ));
        if b.clicked() {
            ui.ctx().copy_text(value.to_owned());
        }
    });
}

fn reader_panel(ui: &mut egui::Ui, readers: Option<&ReaderSnapshot>) {
    ui.heading(t(ui, "readers-heading"));
    match readers {
        None => {
            ui.label(t(ui, "readers-off"));
        }
        Some(r) if !r.polled => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(t(ui, "readers-asking"));
            });
        }
        Some(r) => {
            if let Some(e) = &r.error {
                ui.colored_label(
                    Color32::RED,
                    ta(ui, "readers-error", &[("detail", i18n::s(e.as_str()))]),
                );
            }
            if r.rows.is_empty() && r.error.is_none() {
                ui.label(t(ui, "readers-none"));
            }
            for row in &r.rows {
                ui.label(RichText::new(&row.reader).strong());
                let color = if row.card_present {
                    GREEN
                } else {
                    Color32::GRAY
                };
                ui.colored_label(
                    color,
                    format!("{}: {}", row.reader, reader_state(ui, &row.state)),
                );
            }
        }
    }
}

/// A reader's state (`readers.rs`, `station::interactive::inspect_card`) in the operator's
/// language: "no card", "card 2C000001 BLANK", the station at work, or a card not readable.
fn reader_state(ui: &egui::Ui, state: &str) -> String {
    if state == "no card" {
        return t(ui, "reader-no-card");
    }
    if state.starts_with("card present (") {
        return t(ui, "reader-busy");
    }
    if let Some(detail) = state.strip_prefix("card present, not readable: ") {
        return ta(ui, "reader-unreadable", &[("detail", i18n::s(detail))]);
    }
    let mut parts = state.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("card"), Some(serial), Some(life), None) => {
            let id = format!("reader-lifecycle-{}", life.to_lowercase());
            let word = t(ui, &id);
            let word = if word == id { life.to_owned() } else { word };
            ta(
                ui,
                "reader-card",
                &[("serial", i18n::s(serial)), ("state", i18n::s(word))],
            )
        }
        _ => state.to_owned(),
    }
}

fn lookup_panel(ui: &mut egui::Ui, st: &mut ClerkState, cmds: &mut Vec<Command>) {
    ui.heading(t(ui, "lookup-heading"));
    let enter = |ui: &egui::Ui, r: &egui::Response| {
        r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))
    };
    ui.horizontal(|ui| {
        let l = ui.label(t(ui, "lookup-pinfl"));
        let r = ui
            .add(egui::TextEdit::singleline(&mut st.pinfl_lookup).desired_width(150.0))
            .labelled_by(l.id);
        let go = enter(ui, &r);
        let b = ui.add_enabled(
            !st.lookup_pending,
            egui::Button::new(t(ui, "lookup-find-holder")),
        );
        if (b.clicked() || go) && !st.lookup_pending {
            st.lookup_pending = true;
            st.lookup_msg = None;
            cmds.push(Command::LookupHolder {
                pinfl: st.pinfl_lookup.clone(),
            });
        }
    });
    ui.horizontal(|ui| {
        let l = ui.label(t(ui, "lookup-document"));
        let r = ui
            .add(egui::TextEdit::singleline(&mut st.doc_lookup).desired_width(150.0))
            .labelled_by(l.id);
        let go = enter(ui, &r);
        let b = ui.add_enabled(
            !st.lookup_pending,
            egui::Button::new(t(ui, "lookup-find-document")),
        );
        if (b.clicked() || go) && !st.lookup_pending {
            st.lookup_pending = true;
            st.lookup_msg = None;
            cmds.push(Command::LookupDocument {
                number: st.doc_lookup.clone(),
            });
        }
    });
    if st.lookup_pending {
        ui.spinner();
    }
    if let Some((ok, m)) = &st.lookup_msg {
        ui.colored_label(if *ok { GREEN } else { Color32::RED }, m);
    }
    let Some(found) = &st.found_document else {
        return;
    };
    let (h, d) = &**found;
    ui.separator();
    copyable(ui, t(ui, "doc-document"), &d.document);
    ui.label(ta(
        ui,
        "doc-holder",
        &[
            ("surname", i18n::s(h.surname.as_str())),
            ("given", i18n::s(h.given_names.as_str())),
            ("pinfl", i18n::s(h.pinfl.as_str())),
        ],
    ));
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
    if let Some(c) = &d.card_serial {
        copyable(ui, t(ui, "doc-card"), c);
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
    let number = d.document.clone();
    if d.status == "active" || d.status == "suspended" {
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
        if let Some(reason) = st.revoke_confirm {
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
    }
    match &st.revoke_result {
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
        Some(Err(e)) => {
            ui.colored_label(Color32::RED, e);
        }
        None => {}
    }
}

/// A registry status in words ("active", "lost", "revoked" …); an unknown one as it is.
fn status_word(ui: &egui::Ui, status: &str) -> String {
    let id = format!("status-{status}");
    let w = t(ui, &id);
    if w == id {
        status.to_owned()
    } else {
        w
    }
}

/// The choices of a list field: (value stored, text shown).
fn choices(ui: &egui::Ui, st: &ClerkState, key: &str) -> Vec<(String, String)> {
    let lang = i18n::current(ui.ctx());
    match key {
        "sex" => vec![
            ("M".into(), t(ui, "sex-male")),
            ("F".into(), t(ui, "sex-female")),
        ],
        "address.kind" => vec![
            ("permanent".into(), t(ui, "address-permanent")),
            ("temporary".into(), t(ui, "address-temporary")),
        ],
        // The registry keeps the Uzbek Latin name; a Russian or Cyrillic screen also shows the
        // Russian one (and finds it when typed).
        "address.region" => station::regions::uz_regions()
            .regions
            .iter()
            .map(|r| (r.name.clone(), place_name(lang, &r.name, &r.name_ru)))
            .collect(),
        "address.district" => station::regions::uz_regions()
            .region(&st.form.region)
            .map(|r| {
                r.districts
                    .iter()
                    .map(|d| (d.name.clone(), place_name(lang, &d.name, &d.name_ru)))
                    .collect()
            })
            .unwrap_or_default(),
        "citizenship" => station::regions::citizenships()
            .countries
            .iter()
            .map(|c| {
                let name = match lang {
                    Lang::Ru | Lang::UzCyrl => &c.name_ru,
                    _ => &c.name,
                };
                (c.code.clone(), format!("{} — {name}", c.code))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A place as the list shows it: the Uzbek Latin name, with the Russian one beside it on a
/// Russian or Uzbek Cyrillic screen.
fn place_name(lang: Lang, name: &str, name_ru: &str) -> String {
    match lang {
        Lang::Ru | Lang::UzCyrl => format!("{name} — {name_ru}"),
        _ => name.to_owned(),
    }
}

/// Letters only, lower case, Uzbek marks and apostrophes dropped: "Margʻilon" and "margilon"
/// match.
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| {
            !matches!(
                c,
                '\u{2BB}' | '\u{2BC}' | '\u{2018}' | '\u{2019}' | '\'' | '`'
            )
        })
        .filter(|c| c.is_alphanumeric() || *c == ' ')
        .flat_map(char::to_lowercase)
        .collect()
}

fn field_ui(ui: &mut egui::Ui, st: &mut ClerkState, key: &str) {
    let Some(f) = form::field(key) else { return };
    let focus = st.focus_field.as_deref() == Some(key);
    let label = t(ui, f.label);
    let opts = if f.input == Input::Choice {
        choices(ui, st, key)
    } else {
        Vec::new()
    };
    let col = st.col_width;
    ui.vertical(|ui| {
        ui.set_width(col);
        let l = ui.label(&label);
        let hint = t(ui, f.hint);
        let Some(text) = st.form.field_mut(key) else {
            return;
        };
        let before = text.clone();
        let mut focus_target = None;
        if opts.len() == 2 {
            // Two choices (sex, address kind): buttons, reached by Tab, chosen by Space/Enter.
            ui.horizontal(|ui| {
                for (i, (value, shown)) in opts.iter().enumerate() {
                    let r = ui.selectable_label(*text == *value, shown);
                    if r.clicked() {
                        *text = value.clone();
                    }
                    if i == 0 {
                        focus_target = Some(r);
                    }
                }
            });
        } else {
            let r = ui
                .add(
                    egui::TextEdit::singleline(text)
                        .hint_text(hint)
                        .desired_width(col - 8.0),
                )
                .labelled_by(l.id);
            if f.input == Input::Date && r.changed() {
                *text = i18n::mask_date(text);
            }
            if f.input == Input::Choice && !text.is_empty() && !opts.iter().any(|(v, _)| v == text)
            {
                // A name typed without its marks or capitals ("margilon shahri") is the listed
                // one ("Margʻilon shahri") when exactly one entry matches.
                let typed = fold(text);
                let exact: Vec<&(String, String)> = opts
                    .iter()
                    .filter(|(v, s)| fold(v) == typed || fold(s) == typed)
                    .collect();
                if let [only] = exact.as_slice() {
                    *text = only.0.clone();
                }
            }
            focus_target = Some(r);
        }
        if f.input == Input::Choice && opts.len() > 2 {
            let typed = fold(text);
            let listed = opts.iter().any(|(v, _)| v == text);
            if !typed.is_empty() && !listed {
                let hits: Vec<&(String, String)> = opts
                    .iter()
                    .filter(|(v, s)| fold(v).contains(&typed) || fold(s).contains(&typed))
                    .take(6)
                    .collect();
                for (v, shown) in hits {
                    if ui.small_button(shown).clicked() {
                        *text = v.clone();
                    }
                }
            }
        }
        let changed = *text != before;
        if let Some(r) = focus_target {
            if focus {
                r.request_focus();
                r.scroll_to_me(Some(egui::Align::Center));
            }
        }
        if changed {
            st.form.touched.insert(key.to_string());
            if key == "address.region" {
                st.form.district.clear();
            }
        }
        if st.form.touched.contains(key) {
            if let Some(errs) = st.errors.get(key) {
                for e in errs {
                    // Wraps within the column: the grid keeps its width.
                    ui.add(egui::Label::new(RichText::new(e).color(Color32::RED)).wrap());
                }
            }
        }
    });
    if focus {
        st.focus_field = None;
    }
}

/// "Transliterate" beside a Cyrillic name: the Latin form in Cyrillic (or back), with the
/// MRZ's correspondences (`station::translit`); the clerk takes it or leaves it.
fn translit_ui(ui: &mut egui::Ui, st: &mut ClerkState, latin: &str, cyr: &str) {
    let (Some(l), Some(c)) = (
        st.form.field_mut(latin).cloned(),
        st.form.field_mut(cyr).cloned(),
    ) else {
        return;
    };
    ui.horizontal(|ui| {
        if !l.trim().is_empty()
            && c.trim().is_empty()
            && ui.small_button(t(ui, "translit-to-cyrillic")).clicked()
        {
            st.suggestion
                .insert(cyr.to_owned(), station::translit::cyrillic_from_latin(&l));
        }
        if l.trim().is_empty()
            && !c.trim().is_empty()
            && ui.small_button(t(ui, "translit-to-latin")).clicked()
        {
            st.suggestion
                .insert(latin.to_owned(), station::translit::latin_from_cyrillic(&c));
        }
    });
    for key in [latin, cyr] {
        let Some(s) = st.suggestion.get(key).cloned() else {
            continue;
        };
        match s {
            Ok(text) => {
                let mut take = false;
                let mut drop = false;
                ui.horizontal_wrapped(|ui| {
                    ui.label(ta(
                        ui,
                        "translit-offer",
                        &[("text", i18n::s(text.as_str()))],
                    ));
                    take = ui.button(t(ui, "translit-take")).clicked();
                    drop = ui.button(t(ui, "translit-leave")).clicked();
                });
                if take {
                    if let Some(f) = st.form.field_mut(key) {
                        *f = text;
                        st.form.touched.insert(key.to_owned());
                    }
                }
                if take || drop {
                    st.suggestion.remove(key);
                }
            }
            Err(e) => {
                ui.colored_label(
                    Color32::RED,
                    ta(ui, "translit-failed", &[("detail", i18n::s(e.as_str()))]),
                );
                st.suggestion.remove(key);
            }
        }
    }
}

fn form_ui(ui: &mut egui::Ui, st: &mut ClerkState, session: &SessionInfo) {
    let gap = ui.spacing().item_spacing.x;
    st.col_width = ((ui.available_width() - 2.0 * gap) / 3.0).clamp(COL_MIN_WIDTH, COL_WIDTH);
    ui.heading(t(ui, "holder-heading"));
    ui.horizontal_top(|ui| {
        field_ui(ui, st, "pinfl");
        field_ui(ui, st, "sex");
        field_ui(ui, st, "date_of_birth");
    });
    ui.add_space(4.0);
    ui.label(RichText::new(t(ui, "names-hint")).weak());
    for (latin, cyr) in NAME_PAIRS {
        ui.horizontal_top(|ui| {
            field_ui(ui, st, latin);
            field_ui(ui, st, cyr);
            ui.vertical(|ui| {
                ui.add_space(18.0);
                translit_ui(ui, st, latin, cyr);
            });
        });
    }
    ui.horizontal_top(|ui| {
        field_ui(ui, st, "place_of_birth");
        field_ui(ui, st, "citizenship");
    });
    ui.add_space(4.0);
    ui.heading(t(ui, "address-heading"));
    ui.horizontal_top(|ui| {
        field_ui(ui, st, "address.kind");
        field_ui(ui, st, "address.region");
        field_ui(ui, st, "address.district");
    });
    ui.horizontal_top(|ui| {
        field_ui(ui, st, "address.street");
        field_ui(ui, st, "address.house");
        field_ui(ui, st, "address.apartment");
    });
    ui.horizontal_top(|ui| {
        field_ui(ui, st, "address.registered_on");
        field_ui(ui, st, "address.registered_until");
    });
    if st.validated_form.as_ref() != Some(&st.form) {
        // An edit in this frame: show its validation in the next one.
        ui.ctx().request_repaint();
    }

    ui.separator();
    ui.heading(t(ui, "photo-heading"));
    let focus_photo = st.focus_field.as_deref() == Some("photo");
    ui.horizontal(|ui| {
        let l = ui.label(t(ui, "photo-file"));
        let r = ui
            .add(
                egui::TextEdit::singleline(&mut st.photo_path)
                    .hint_text(t(ui, "photo-file-hint"))
                    .desired_width(320.0),
            )
            .labelled_by(l.id);
        if focus_photo {
            r.request_focus();
            r.scroll_to_me(Some(egui::Align::Center));
            st.focus_field = None;
        }
        let go = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let b = ui.add_enabled(
            st.photo_rx.is_none(),
            egui::Button::new(t(ui, "photo-load")),
        );
        if (b.clicked() || go) && st.photo_rx.is_none() {
            load_photo(st);
        }
    });
    // The photo's problems sit in the Photo section.
    if let Some(e) = &st.photo_error {
        ui.add(egui::Label::new(RichText::new(e).color(Color32::RED)).wrap());
    }
    if st.form.touched.contains("photo") || st.form.touched.len() >= FIELDS.len() {
        for e in st.errors.get("photo").into_iter().flatten() {
            ui.add(egui::Label::new(RichText::new(e).color(Color32::RED)).wrap());
        }
    }
    if let Some(p) = &st.form.photo {
        ui.label(ta(
            ui,
            "photo-loaded",
            &[(
                "file",
                i18n::s(
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
            )],
        ));
    }
    if let Some((tex, [w, h])) = &st.photo {
        let scale = 160.0 / (*h as f32).max(1.0);
        ui.add(
            egui::Image::new(tex)
                .fit_to_exact_size(egui::vec2(*w as f32 * scale, 160.0))
                .alt_text(t(ui, "photo-preview")),
        );
    }

    ui.separator();
    ui.heading(t(ui, "preview-heading"));
    match &st.valid {
        Some(v) => {
            ui.label(ta(
                ui,
                "preview-printed-name",
                &[("name", i18n::s(station::holder_views::printed_name(v)))],
            ));
        }
        None => {
            ui.label(t(ui, "preview-printed-name-later"));
        }
    }
    mrz_preview(ui, st, session);
}

/// The Issue bar, pinned at the bottom: where the PIN letter goes, Issue card, and the count of
/// problems with a button to the first.
fn issue_bar(ui: &mut egui::Ui, st: &mut ClerkState) {
    ui.add_space(4.0);
    ui.horizontal_wrapped(|ui| {
        let l = ui.label(t(ui, "issue-letter"));
        ui.add(egui::TextEdit::singleline(&mut st.pin_letter).desired_width(220.0))
            .labelled_by(l.id)
            .on_hover_text(t(ui, "issue-letter-help"));
        if ui.button(t(ui, "issue-button")).clicked() {
            st.form.touch_all();
            st.secret_error = if st.pin_letter.trim().is_empty() {
                Some(t(ui, "issue-letter-missing"))
            } else {
                None
            };
            if st.secret_error.is_none() && st.valid.is_some() {
                // The holder types the PIN in a window of their own.
                st.pin.zeroize();
                st.pin2.zeroize();
                st.holder_pin_open = true;
                st.focus_holder_pin = true;
            }
        }
        let problems = st.problems();
        let shown = st.form.touched.len() >= FIELDS.len();
        if shown && !problems.is_empty() {
            ui.colored_label(
                Color32::RED,
                ta(
                    ui,
                    "issue-problems",
                    &[("count", i18n::n(problems.len() as f64))],
                ),
            );
            if ui.button(t(ui, "issue-go-to-first")).clicked() {
                st.focus_field = problems.first().map(|(k, _)| k.clone());
            }
        }
    });
    if let Some(e) = &st.secret_error {
        if !st.holder_pin_open {
            ui.colored_label(Color32::RED, e);
        }
    }
    ui.add_space(4.0);
}

/// The document number the preview shows: the next number is handed out only when the card is
/// issued, so the preview uses the office's series with seven zeros.
pub fn placeholder_number(session: &SessionInfo) -> String {
    format!("{}0000000", session.series.as_deref().unwrap_or("AA"))
}

/// The TD1 MRZ (ICAO 9303 Part 5) the card will carry, from
/// `station::holder_views::record_mrz_lines`.
fn mrz_preview(ui: &mut egui::Ui, st: &ClerkState, session: &SessionInfo) {
    let Some(v) = &st.valid else {
        ui.label(RichText::new(t(ui, "preview-mrz-later")).weak());
        return;
    };
    let number = placeholder_number(session);
    match station::holder_views::record_mrz_lines(
        &station::holder_views::MrzRecord::from_record(&v.record),
        &session.document,
        &number,
        session.expiry,
    ) {
        Ok(lines) => {
            ui.add(
                egui::Label::new(ta(
                    ui,
                    "preview-mrz",
                    &[
                        ("number", i18n::s(number.as_str())),
                        ("expiry", i18n::s(i18n::date_of(session.expiry))),
                    ],
                ))
                .wrap(),
            );
            for l in lines {
                ui.label(RichText::new(l).monospace());
            }
        }
        Err(e) => {
            ui.colored_label(
                Color32::RED,
                ta(
                    ui,
                    "preview-mrz-error",
                    &[("detail", i18n::s(e.to_string()))],
                ),
            );
        }
    }
}

/// The holder's own PIN entry: a window apart from the clerk's form, for the holder to type
/// the new PIN twice (turn the screen, or put this window on the holder-facing display). The
/// entries never reach the form and are zeroized as soon as the issuance has them. Enter in
/// the second field starts the issuance.
fn holder_pin_window(
    ctx: &egui::Context,
    st: &mut ClerkState,
    opts: &GuiOptions,
    cmds: &mut Vec<Command>,
) {
    if !st.holder_pin_open {
        return;
    }
    let lang = i18n::current(ctx);
    let mut start = false;
    let mut cancel = false;
    egui::Window::new(tr(lang, "pin-window-title"))
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
        .show(ctx, |ui| {
            ui.set_width(420.0);
            ui.label(RichText::new(t(ui, "pin-window-intro")).strong());
            ui.add(egui::Label::new(t(ui, "pin-window-rules")).wrap());
            let focus = std::mem::take(&mut st.focus_holder_pin);
            egui::Grid::new("holder-pin").num_columns(2).show(ui, |ui| {
                for (i, text) in [&mut st.pin, &mut st.pin2].into_iter().enumerate() {
                    let id = if i == 0 { "pin-first" } else { "pin-second" };
                    let l = ui.label(t(ui, id));
                    let r = ui
                        .add(
                            egui::TextEdit::singleline(text)
                                .id_salt((id, st.pin_attempt))
                                .password(true)
                                .desired_width(160.0),
                        )
                        .labelled_by(l.id);
                    if focus && i == 0 {
                        r.request_focus();
                    }
                    if i == 1 && r.lost_focus() && ui.input(|x| x.key_pressed(egui::Key::Enter)) {
                        start = true;
                    }
                    ui.end_row();
                }
            });
            // The error line is always there (empty when there is none), so the window keeps
            // its size and nothing moves under the holder's finger after a refusal.
            ui.colored_label(Color32::RED, st.secret_error.as_deref().unwrap_or(" "));
            ui.horizontal(|ui| {
                start |= ui.button(t(ui, "pin-start")).clicked();
                cancel = ui.button(t(ui, "cancel")).clicked();
            });
        });
    if cancel {
        st.clear_secrets();
        st.secret_error = None;
        return;
    }
    if !start {
        return;
    }
    st.secret_error = if st.pin.is_empty() {
        Some(tr(lang, "pin-empty"))
    } else if st.pin != st.pin2 {
        Some(tr(lang, "pin-differ"))
    } else {
        st.valid.as_ref().and_then(|v| {
            station::pin_letter::check_holder_pin(&st.pin, v.date_of_birth)
                .err()
                .map(|e| {
                    tr_args(
                        lang,
                        "pin-refused",
                        &[(
                            "rule",
                            i18n::s(e.to_string().trim_start_matches("invalid input: pin: ")),
                        )],
                    )
                })
        })
    };
    if st.secret_error.is_some() {
        st.pin.zeroize();
        st.pin2.zeroize();
        st.pin_attempt += 1;
        st.focus_holder_pin = true;
        return;
    }
    if let Some(holder) = st.valid.clone() {
        let pending = PendingIssue {
            holder,
            pin: Zeroizing::new(st.pin.clone()),
            pin_letter: PathBuf::from(st.pin_letter.trim()),
            update_holder: false,
        };
        st.clear_secrets();
        start_issue(st, pending, opts, cmds);
    }
}

fn start_issue(st: &mut ClerkState, p: PendingIssue, opts: &GuiOptions, cmds: &mut Vec<Command>) {
    cmds.push(Command::Issue {
        holder: Box::new(p.holder.clone()),
        reader: opts.reader.clone(),
        pin: p.pin.clone(),
        pin_letter: p.pin_letter.clone(),
        update_holder: p.update_holder,
    });
    st.last = Some(p);
    st.view = IssueView::Running { steps: Vec::new() };
}

fn steps_ui(ui: &mut egui::Ui, steps: &[StepReport], running: bool) {
    let current = steps.last().map(|s| s.step);
    let reached = |step: JobStep| steps.iter().any(|s| s.step == step);
    for &(step, id) in JOB_STEPS {
        if step == JobStep::CardReset && !reached(step) {
            continue;
        }
        let words = t(ui, id);
        let is_current = current == Some(step);
        let text = if is_current && running {
            RichText::new(format!("▶ {words}"))
                .strong()
                .color(Color32::from_rgb(0, 90, 200))
        } else if is_current {
            RichText::new(format!("✖ {words}"))
                .strong()
                .color(Color32::RED)
        } else if reached(step) {
            RichText::new(format!("✔ {words}")).color(GREEN)
        } else {
            RichText::new(format!("· {words}")).weak()
        };
        ui.label(text);
        if is_current {
            if let Some(card) = steps.last().and_then(|s| s.card_step.as_ref()) {
                ui.label(
                    RichText::new(ta(ui, "step-card", &[("step", i18n::s(card.as_str()))]))
                        .monospace(),
                );
            }
        }
    }
}

fn issue_view(ui: &mut egui::Ui, st: &mut ClerkState, opts: &GuiOptions, cmds: &mut Vec<Command>) {
    let mut back = false;
    let mut retry = false;
    let mut confirm_update = false;
    match &st.view {
        IssueView::Form => {}
        IssueView::Running { steps } => {
            ui.heading(t(ui, "issue-running"));
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(t(ui, "issue-keep-card"));
            });
            steps_ui(ui, steps, true);
        }
        IssueView::Done(r) => {
            ui.heading(t(ui, "issue-done"));
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(ta(
                        ui,
                        "issue-document",
                        &[("number", i18n::s(r.document.as_str()))],
                    ))
                    .size(20.0)
                    .strong(),
                );
                if ui
                    .small_button(t(ui, "copy"))
                    .on_hover_text(t(ui, "copy"))
                    .clicked()
                {
                    ui.ctx().copy_text(r.document.clone());
                }
            });
            copyable(ui, t(ui, "issue-card-serial"), &r.card_serial);
            ui.label(ta(
                ui,
                "issue-reader",
                &[("reader", i18n::s(r.reader.as_str()))],
            ));
            for c in &r.certificates {
                copyable(
                    ui,
                    ta(
                        ui,
                        "issue-certificate",
                        &[
                            ("slot", i18n::s(c.slot.to_string())),
                            ("profile", i18n::s(c.profile.as_str())),
                        ],
                    ),
                    &c.serial,
                );
            }
            if let Some(letter) = &st.letter_saved {
                ui.label(
                    RichText::new(ta(
                        ui,
                        "issue-letter-saved",
                        &[("path", i18n::s(letter.display().to_string()))],
                    ))
                    .strong(),
                );
            }
            ui.label(
                RichText::new(ta(
                    ui,
                    "issue-job",
                    &[
                        ("job", i18n::s(r.job_id.to_string())),
                        ("ms", i18n::s(format!("{:.0}", r.timings.total_ms))),
                    ],
                ))
                .weak(),
            );
            let b = ui.button(t(ui, "issue-next-holder"));
            if !ui.ctx().memory(|m| m.focused().is_some()) {
                b.request_focus();
            }
            back = b.clicked();
        }
        IssueView::Failed { failure, steps } => {
            ui.heading(t(ui, "issue-failed"));
            steps_ui(ui, steps, false);
            ui.add(egui::Label::new(RichText::new(&failure.message).color(Color32::RED)).wrap());
            ui.add(egui::Label::new(RichText::new(&failure.next).strong()).wrap());
            if !failure.holder_changes.is_empty() {
                holder_changes_ui(ui, &failure.holder_changes);
            }
            ui.horizontal(|ui| {
                if failure.retry && st.last.is_some() {
                    retry = ui.button(t(ui, "issue-retry")).clicked();
                }
                if !failure.holder_changes.is_empty() && st.last.is_some() {
                    confirm_update = ui.button(t(ui, "issue-confirm-update")).clicked();
                }
                back = ui.button(t(ui, "issue-back")).clicked();
            });
        }
    }
    if retry || confirm_update {
        if let Some(mut p) = st.last.take() {
            p.update_holder |= confirm_update;
            start_issue(st, p, opts, cmds);
        }
    } else if back {
        if matches!(st.view, IssueView::Done(_)) {
            *st = ClerkState::with_nationality(std::mem::take(&mut st.default_nationality));
            st.focus_first_field();
        } else {
            st.last = None;
            st.view = IssueView::Form;
        }
    }
}

/// Registered → entered, one row per field that differs.
fn holder_changes_ui(ui: &mut egui::Ui, changes: &[station::holder_update::FieldChange]) {
    let lang = i18n::current(ui.ctx());
    let shown = |v: &Option<String>, field: &str| match v {
        None => tr(lang, "changes-none"),
        Some(_) if field == "photo" => tr(lang, "changes-a-photo"),
        Some(v) => v.clone(),
    };
    egui::Grid::new("holder-changes")
        .striped(true)
        .show(ui, |ui| {
            ui.label(RichText::new(t(ui, "changes-field")).strong());
            ui.label(RichText::new(t(ui, "changes-registry")).strong());
            ui.label(RichText::new(t(ui, "changes-entered")).strong());
            ui.end_row();
            for c in changes {
                ui.label(crate::form::label_of(lang, c.field));
                ui.label(shown(&c.old, c.field));
                let new = if c.field == "photo" && c.new.is_some() && c.old.is_some() {
                    tr(lang, "changes-another-photo")
                } else {
                    shown(&c.new, c.field)
                };
                ui.label(new);
                ui.end_row();
            }
        });
}

fn load_photo(st: &mut ClerkState) {
    let path = PathBuf::from(st.photo_path.trim());
    let (tx, rx) = mpsc::channel();
    st.photo_rx = Some(rx);
    st.photo_error = None;
    std::thread::spawn(move || {
        let r = decode_photo(&path).map(|img| (path, img));
        let _ = tx.send(r);
    });
}

/// Read and decode a JPEG (or PNG) photo for the preview.
pub fn decode_photo(path: &std::path::Path) -> Result<egui::ColorImage, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        crate::GuiError::Photo {
            path: path.into(),
            reason: e.to_string(),
        }
        .to_string()
    })?;
    let img = image::load_from_memory(&bytes).map_err(|e| {
        crate::GuiError::Photo {
            path: path.into(),
            reason: e.to_string(),
        }
        .to_string()
    })?;
    let rgba = img.to_rgba8();
    let size = [rgba.width() as usize, rgba.height() as usize];
    Ok(egui::ColorImage::from_rgba_unmultiplied(
        size,
        rgba.as_raw(),
    ))
}

fn poll_photo(ctx: &egui::Context, st: &mut ClerkState) {
    let Some(rx) = &st.photo_rx else { return };
    match rx.try_recv() {
        Ok(Ok((path, img))) => {
            let size = img.size;
            let tex = ctx.load_texture("holder-photo", img, egui::TextureOptions::LINEAR);
            st.photo = Some((tex, size));
            st.form.photo = Some(path);
            st.form.touched.insert("photo".into());
            st.photo_rx = None;
        }
        Ok(Err(e)) => {
            // "photo: PATH: reason" (GuiError::Photo) in the operator's words.
            let reason = e.rsplit(": ").next().unwrap_or(&e).to_owned();
            let file = st.photo_path.trim().to_owned();
            st.photo_error = Some(tr_args(
                i18n::current(ctx),
                "photo-unreadable",
                &[("file", i18n::s(file)), ("reason", i18n::s(reason))],
            ));
            st.photo = None;
            st.form.photo = None;
            st.photo_rx = None;
        }
        Err(mpsc::TryRecvError::Empty) => {
            ctx.request_repaint_after(std::time::Duration::from_millis(50))
        }
        Err(mpsc::TryRecvError::Disconnected) => st.photo_rx = None,
    }
}
