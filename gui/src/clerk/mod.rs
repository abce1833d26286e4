//! The clerk's workspace: the look-up panel (`lookup`) and the reader panel beside the holder
//! form (`form_view`, with the card preview of `card_preview`), validation as you type, the
//! Issue bar (or the replacement being prepared), the holder's PIN window, progress and
//! result.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use egui::{Color32, RichText};
use station::holder::{FieldError, ValidHolder, ValidationPolicy};
use station::issuance::IssueReport;
use station::journal::JobStep;
use zeroize::{Zeroize, Zeroizing};

pub use self::form_view::decode_photo;
use self::lookup::LookupState;
use crate::form::{HolderForm, FIELDS};
use crate::i18n::{self, t, ta, tr, tr_args, Lang};
use crate::notation::card_serial;
use crate::options::GuiOptions;
use crate::readers::ReaderSnapshot;
use crate::worker::{Command, Event, Failure, SessionInfo, StepReport};

pub mod form_view;
pub mod lookup;

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
    /// The issuance replaces this document.
    replace: Option<Replacing>,
}

/// A replacement being prepared: the holder's active document and why it is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacing {
    pub document: String,
    pub reason: &'static str,
}

pub struct ClerkState {
    pub form: HolderForm,
    pub(crate) errors: BTreeMap<String, Vec<String>>,
    pub(crate) valid: Option<ValidHolder>,
    pub(crate) validated_form: Option<HolderForm>,
    pub lookup: LookupState,
    /// The next card replaces the holder's active document (chosen in the look-up panel).
    pub replacing: Option<Replacing>,
    /// The replacement just issued: (old document, its status now).
    replaced: Option<(String, String)>,
    pub(crate) photo_path: String,
    pub(crate) photo: Option<(egui::TextureHandle, [usize; 2])>,
    pub(crate) photo_rx: Option<Receiver<Result<(PathBuf, egui::ColorImage), String>>>,
    pub(crate) photo_error: Option<String>,
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
    pub(crate) focus_field: Option<String>,
    /// Transliterations offered for a name field (key → suggestion), for the clerk to confirm.
    pub(crate) suggestion: BTreeMap<String, Result<String, String>>,
    /// The width of a form column in this frame.
    pub(crate) col_width: f32,
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
            lookup: LookupState::default(),
            replacing: None,
            replaced: None,
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
        self.issuing() || self.lookup.busy()
    }

    /// An issuance (or replacement) is running: its form and look-up are not to be changed.
    pub fn issuing(&self) -> bool {
        matches!(self.view, IssueView::Running { .. })
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

    /// Another holder's form in place of the one shown (another office's card to replace
    /// here): nothing of the previous holder stays — photo and its preview, a photo still
    /// loading, problems, suggestions, the PIN fields.
    fn new_form(&mut self, form: HolderForm) {
        self.form = form;
        self.errors.clear();
        self.valid = None;
        self.validated_form = None;
        self.photo_path.clear();
        self.photo = None;
        self.photo_rx = None;
        self.photo_error = None;
        self.suggestion.clear();
        self.clear_secrets();
    }

    fn clear_secrets(&mut self) {
        self.pin.zeroize();
        self.pin2.zeroize();
        self.holder_pin_open = false;
    }

    pub fn handle(&mut self, ev: &Event, lang: Lang) {
        if let Some(rec) = self.lookup.handle(ev, lang) {
            self.form.prefill(&rec);
            self.replacing = None;
        }
        match ev {
            Event::IssueStep(s) => {
                if let IssueView::Running { steps } = &mut self.view {
                    steps.push(s.clone());
                }
            }
            Event::Issued(r) => self.finished(r.as_ref().map(|r| (**r).clone()), None),
            Event::Replaced(r) => {
                let replaced = r
                    .as_ref()
                    .ok()
                    .map(|r| (r.old_document.clone(), r.old_status.clone()));
                self.finished(r.as_ref().map(|r| r.new.clone()), replaced);
            }
            _ => {}
        }
    }

    /// An issuance (or a replacement's) ended: the result or the failure, and the look-up
    /// asked again so it shows the registry as it is now.
    fn finished(&mut self, r: Result<IssueReport, &Failure>, replaced: Option<(String, String)>) {
        let steps = match std::mem::replace(&mut self.view, IssueView::Form) {
            IssueView::Running { steps } => steps,
            _ => Vec::new(),
        };
        self.lookup.refresh();
        self.view = match r {
            Ok(rep) => {
                self.letter_saved = self.last.take().map(|p| p.pin_letter);
                self.pin_letter.clear();
                self.replacing = None;
                self.replaced = replaced;
                IssueView::Done(Box::new(rep))
            }
            Err(f) => IssueView::Failed {
                failure: f.clone(),
                steps,
            },
        };
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
    form_view::poll_photo(ui.ctx(), st);
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
                let replacing = st.replacing.as_ref().map(|r| r.document.as_str());
                match lookup::panel(ui, &mut st.lookup, replacing, session.centre, cmds) {
                    Some(lookup::Action::Replace { document, reason }) => {
                        st.replacing = Some(Replacing { document, reason });
                    }
                    Some(lookup::Action::ReplaceElsewhere {
                        document,
                        reason,
                        holder,
                    }) => {
                        let form = HolderForm::with_identity(&st.default_nationality, &holder);
                        st.new_form(form);
                        st.replacing = Some(Replacing { document, reason });
                    }
                    None => {}
                }
                ui.separator();
                reader_panel(ui, readers);
            });
        });
    egui::CentralPanel::default_margins().show(ui, |ui| {
        document_signer_notice(ui, session);
        if matches!(st.view, IssueView::Form) {
            // The form scrolls; the Issue bar under it stays at the bottom whatever the form's
            // length, and comes after the form in the Tab order.
            let bar = ISSUE_BAR_HEIGHT
                + if st.secret_error.is_some() { 20.0 } else { 0.0 }
                + if st.replacing.is_some() { 24.0 } else { 0.0 };
            egui::ScrollArea::vertical()
                .id_salt("main")
                .max_height((ui.available_height() - bar).max(100.0))
                .auto_shrink([false, false])
                .show(ui, |ui| form_view::form_ui(ui, st, session));
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

/// From how many days of Document Signer key usage left the clerk is told to have it renewed.
pub const DS_NOTICE_DAYS: i64 = 14;

/// What the clerk is told about a Document Signer whose key usage ends at `until` (RFC 3339)
/// with `days_left`, in `lang`: nothing while more than [`DS_NOTICE_DAYS`] are left; else the
/// text and whether it has ended (no card can be issued then).
pub fn document_signer_notice_text(
    lang: Lang,
    until: &str,
    days_left: i64,
) -> Option<(String, bool)> {
    let id = match days_left {
        d if d < 0 => "clerk-ds-ended",
        d if d <= DS_NOTICE_DAYS => "clerk-ds-ending",
        _ => return None,
    };
    let args = [
        ("until", i18n::s(i18n::date(until))),
        ("days", i18n::s(days_left.to_string())),
    ];
    Some((tr_args(lang, id, &args), days_left < 0))
}

/// The Document Signer's key usage ending soon (amber) or ended (red), as it was at log-in.
fn document_signer_notice(ui: &mut egui::Ui, session: &SessionInfo) {
    let Some((until, days)) = &session.document_signer else {
        return;
    };
    let lang = i18n::current(ui.ctx());
    let Some((text, ended)) = document_signer_notice_text(lang, until, *days) else {
        return;
    };
    let color = if ended {
        Color32::RED
    } else {
        Color32::from_rgb(170, 100, 0)
    };
    ui.add(egui::Label::new(RichText::new(text).color(color)).wrap());
    ui.separator();
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
                &[
                    ("serial", i18n::s(card_serial(serial))),
                    ("state", i18n::s(word)),
                ],
            )
        }
        _ => state.to_owned(),
    }
}

/// Above the Issue bar: the replacement being prepared (with a way out), or — for a holder
/// looked up with an active card — why there is no Issue button. Returns true when the
/// issuance is stopped.
fn replace_line(ui: &mut egui::Ui, st: &mut ClerkState) -> bool {
    if let Some(r) = &st.replacing {
        let mut cancel = false;
        ui.horizontal_wrapped(|ui| {
            let reason = lookup::reason_word(ui, r.reason);
            ui.colored_label(
                ORANGE,
                ta(
                    ui,
                    "replace-preparing",
                    &[
                        ("number", i18n::s(r.document.as_str())),
                        ("reason", i18n::s(reason)),
                    ],
                ),
            );
            if r.reason == "name-change" {
                ui.label(t(ui, "replace-name-change-hint"));
            }
            cancel = ui.button(t(ui, "replace-cancel")).clicked();
        });
        if cancel {
            st.replacing = None;
        }
        return false;
    }
    let Some(d) = st.lookup.active_document(&st.form.pinfl) else {
        return false;
    };
    ui.add(
        egui::Label::new(
            RichText::new(ta(
                ui,
                "replace-stopped",
                &[("number", i18n::s(d.document.as_str()))],
            ))
            .color(ORANGE)
            .strong(),
        )
        .wrap(),
    );
    true
}

/// The Issue bar, pinned at the bottom: where the PIN letter goes, Issue card, and the count of
/// problems with a button to the first.
fn issue_bar(ui: &mut egui::Ui, st: &mut ClerkState) {
    ui.add_space(4.0);
    if replace_line(ui, st) {
        return;
    }
    ui.horizontal_wrapped(|ui| {
        let l = ui.label(t(ui, "issue-letter"));
        ui.add(egui::TextEdit::singleline(&mut st.pin_letter).desired_width(220.0))
            .labelled_by(l.id)
            .on_hover_text(t(ui, "issue-letter-help"));
        let button = if st.replacing.is_some() {
            "replace-issue-button"
        } else {
            "issue-button"
        };
        if ui.button(t(ui, button)).clicked() {
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
                    let r =
                        crate::secret_field::secret_field(ui, text, (id, st.pin_attempt), 160.0)
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
            // A name change is the holder's new name: the clerk chose it, so the registry
            // takes it.
            update_holder: st
                .replacing
                .as_ref()
                .is_some_and(|r| r.reason == "name-change"),
            replace: st.replacing.clone(),
        };
        st.clear_secrets();
        start_issue(st, pending, opts, cmds);
    }
}

fn start_issue(st: &mut ClerkState, p: PendingIssue, opts: &GuiOptions, cmds: &mut Vec<Command>) {
    cmds.push(match &p.replace {
        None => Command::Issue {
            holder: Box::new(p.holder.clone()),
            reader: opts.reader.clone(),
            pin: p.pin.clone(),
            pin_letter: p.pin_letter.clone(),
            update_holder: p.update_holder,
        },
        Some(r) => Command::Replace {
            document: r.document.clone(),
            reason: r.reason.to_owned(),
            holder: Box::new(p.holder.clone()),
            reader: opts.reader.clone(),
            pin: p.pin.clone(),
            pin_letter: p.pin_letter.clone(),
            update_holder: p.update_holder,
        },
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
            copyable(ui, t(ui, "issue-card-serial"), &card_serial(&r.card_serial));
            if let Some((old, status)) = &st.replaced {
                ui.label(ta(
                    ui,
                    "replace-done",
                    &[
                        ("old", i18n::s(old.as_str())),
                        ("status", i18n::s(lookup::status_word(ui, status))),
                    ],
                ));
            }
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
            crate::error::details_ui(ui, &failure.details);
            ui.horizontal(|ui| {
                if failure.retry && st.last.is_some() {
                    retry = ui.button(t(ui, "issue-retry")).clicked();
                }
                if failure.confirm_update && st.last.is_some() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clerks_are_told_from_fourteen_days_before_the_document_signer_ends_and_after() {
        let until = "2026-12-18T10:00:00Z";
        for lang in Lang::ALL {
            assert_eq!(document_signer_notice_text(lang, until, 15), None);
            let (soon, ended) = document_signer_notice_text(lang, until, 14).unwrap();
            assert!(
                !ended && soon.contains("18.12.2026") && soon.contains("14"),
                "{soon}"
            );
            let (gone, ended) = document_signer_notice_text(lang, until, -1).unwrap();
            assert!(
                ended && gone.contains("18.12.2026") && !gone.contains("clerk-ds"),
                "{gone}"
            );
        }
    }
}
