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

use crate::form::{self, HolderForm, FIELDS, NAME_PAIRS};
use crate::options::GuiOptions;
use crate::readers::ReaderSnapshot;
use crate::worker::{Command, Event, Failure, SessionInfo, StepReport};

/// The job steps in the order an issuance runs them, with the words the clerk sees.
pub const JOB_STEPS: &[(JobStep, &str)] = &[
    (
        JobStep::CardReset,
        "Reset the card left by an interrupted job",
    ),
    (
        JobStep::CardPrepare,
        "Prepare the card (keys generated on the card)",
    ),
    (JobStep::CaIssue, "CA issues the holder certificates"),
    (JobStep::CardComplete, "Write, check and lock the card"),
    (
        JobStep::RegistryComplete,
        "Record the document in the registry",
    ),
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
        }
    }
}

impl Drop for ClerkState {
    fn drop(&mut self) {
        self.clear_secrets();
    }
}

impl ClerkState {
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

    pub fn handle(&mut self, ev: &Event) {
        match ev {
            Event::Holder(r) => {
                self.lookup_pending = false;
                match r {
                    Ok(Some(rec)) => {
                        self.form.prefill(rec);
                        self.lookup_msg =
                            Some((true, format!("Holder {} loaded into the form.", rec.pinfl)));
                    }
                    Ok(None) => {
                        self.lookup_msg = Some((
                            false,
                            "No holder with this PINFL: enter a new holder.".into(),
                        ))
                    }
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

    fn revalidate(&mut self, policy: &ValidationPolicy) {
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
        self.validated_form = Some(self.form.clone());
    }
}

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
    egui::Panel::left("clerk-side")
        .default_size(330.0)
        .resizable(true)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().id_salt("side").show(ui, |ui| {
                reader_panel(ui, readers);
                ui.separator();
                lookup_panel(ui, st, cmds);
            });
        });
    egui::CentralPanel::default_margins().show(ui, |ui| {
        egui::ScrollArea::vertical().id_salt("main").show(ui, |ui| {
            if matches!(st.view, IssueView::Form) {
                form_ui(ui, st, session, opts, cmds);
            } else {
                issue_view(ui, st, opts, cmds);
            }
        });
    });
}

fn reader_panel(ui: &mut egui::Ui, readers: Option<&ReaderSnapshot>) {
    ui.heading("Readers");
    match readers {
        None => {
            ui.label("Reader polling is off.");
        }
        Some(r) if !r.polled => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Asking PC/SC for readers…");
            });
        }
        Some(r) => {
            if let Some(e) = &r.error {
                ui.colored_label(Color32::RED, format!("PC/SC: {e}"));
            }
            if r.rows.is_empty() && r.error.is_none() {
                ui.label("No reader connected.");
            }
            for row in &r.rows {
                ui.label(RichText::new(&row.reader).strong());
                let color = if row.card_present {
                    Color32::from_rgb(0, 140, 60)
                } else {
                    Color32::GRAY
                };
                ui.colored_label(color, format!("{}: {}", row.reader, row.state));
            }
        }
    }
}

fn lookup_panel(ui: &mut egui::Ui, st: &mut ClerkState, cmds: &mut Vec<Command>) {
    ui.heading("Look up");
    ui.horizontal(|ui| {
        let l = ui.label("Holder PINFL");
        ui.add(egui::TextEdit::singleline(&mut st.pinfl_lookup).desired_width(150.0))
            .labelled_by(l.id);
    });
    if ui
        .add_enabled(!st.lookup_pending, egui::Button::new("Find holder"))
        .clicked()
    {
        st.lookup_pending = true;
        st.lookup_msg = None;
        cmds.push(Command::LookupHolder {
            pinfl: st.pinfl_lookup.clone(),
        });
    }
    ui.horizontal(|ui| {
        let l = ui.label("Document number");
        ui.add(egui::TextEdit::singleline(&mut st.doc_lookup).desired_width(120.0))
            .labelled_by(l.id);
    });
    if ui
        .add_enabled(!st.lookup_pending, egui::Button::new("Find document"))
        .clicked()
    {
        st.lookup_pending = true;
        st.lookup_msg = None;
        cmds.push(Command::LookupDocument {
            number: st.doc_lookup.clone(),
        });
    }
    if st.lookup_pending {
        ui.spinner();
    }
    if let Some((ok, m)) = &st.lookup_msg {
        ui.colored_label(
            if *ok {
                Color32::from_rgb(0, 140, 60)
            } else {
                Color32::RED
            },
            m,
        );
    }
    let Some(found) = &st.found_document else {
        return;
    };
    let (h, d) = &**found;
    ui.separator();
    ui.label(RichText::new(format!("Document {}", d.document)).strong());
    ui.label(format!(
        "Holder: {} {} ({})",
        h.surname, h.given_names, h.pinfl
    ));
    ui.label(format!("Status: {}", d.status));
    ui.label(format!("Valid {} to {}", d.date_of_issue, d.date_of_expiry));
    if let Some(c) = &d.card_serial {
        ui.label(format!("Card {c}"));
    }
    for c in &d.certificates {
        ui.label(format!(
            "Certificate {} {} {}",
            c.profile, c.serial, c.status
        ));
    }
    let number = d.document.clone();
    if d.status == "active" || d.status == "suspended" {
        ui.add_space(6.0);
        ui.label("Declare this card:");
        ui.horizontal(|ui| {
            if ui.button("Declare lost").clicked() {
                st.revoke_confirm = Some("lost");
            }
            if ui.button("Declare stolen").clicked() {
                st.revoke_confirm = Some("stolen");
            }
        });
        if let Some(reason) = st.revoke_confirm {
            ui.colored_label(
                Color32::from_rgb(200, 120, 0),
                format!("Document {number} will be marked {reason} and its certificates revoked. This cannot be undone."),
            );
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(
                        !st.revoke_pending,
                        egui::Button::new(format!("Confirm: {reason}")),
                    )
                    .clicked()
                {
                    st.revoke_pending = true;
                    cmds.push(Command::RevokeDocument {
                        number: number.clone(),
                        reason: reason.to_string(),
                    });
                }
                if ui.button("Cancel").clicked() {
                    st.revoke_confirm = None;
                }
            });
        }
    }
    match &st.revoke_result {
        Some(Ok(r)) => {
            ui.colored_label(
                Color32::from_rgb(0, 140, 60),
                format!(
                    "Document {} is now {}; {} certificate(s) revoked ({}).",
                    r.document,
                    r.status,
                    r.revoked_certificates.len(),
                    r.crl_reason
                ),
            );
        }
        Some(Err(e)) => {
            ui.colored_label(Color32::RED, e);
        }
        None => {}
    }
}

fn field_ui(ui: &mut egui::Ui, st: &mut ClerkState, key: &str) {
    let Some(f) = form::field(key) else { return };
    ui.vertical(|ui| {
        let l = ui.label(f.label);
        let Some(text) = st.form.field_mut(key) else {
            return;
        };
        let r = ui
            .add(
                egui::TextEdit::singleline(text)
                    .hint_text(f.hint)
                    .desired_width(230.0),
            )
            .labelled_by(l.id);
        if r.changed() {
            st.form.touched.insert(key.to_string());
        }
        if st.form.touched.contains(key) {
            if let Some(errs) = st.errors.get(key) {
                for e in errs {
                    ui.colored_label(Color32::RED, format!("{key}: {e}"));
                }
            }
        }
    });
}

fn form_ui(
    ui: &mut egui::Ui,
    st: &mut ClerkState,
    session: &SessionInfo,
    opts: &GuiOptions,
    cmds: &mut Vec<Command>,
) {
    st.revalidate(&station::interactive::holder_policy(&session.document));
    ui.heading("Holder");
    ui.horizontal(|ui| {
        field_ui(ui, st, "pinfl");
        field_ui(ui, st, "sex");
        field_ui(ui, st, "date_of_birth");
    });
    ui.add_space(4.0);
    ui.label(RichText::new("Names: Latin (left) and Cyrillic (right)").weak());
    for (latin, cyr) in NAME_PAIRS {
        ui.horizontal(|ui| {
            field_ui(ui, st, latin);
            field_ui(ui, st, cyr);
        });
    }
    ui.horizontal(|ui| {
        field_ui(ui, st, "place_of_birth");
        field_ui(ui, st, "citizenship");
    });
    ui.add_space(4.0);
    ui.heading("Address");
    ui.horizontal(|ui| {
        field_ui(ui, st, "address.kind");
        field_ui(ui, st, "address.region");
        field_ui(ui, st, "address.district");
    });
    ui.horizontal(|ui| {
        field_ui(ui, st, "address.street");
        field_ui(ui, st, "address.house");
        field_ui(ui, st, "address.apartment");
    });
    ui.horizontal(|ui| {
        field_ui(ui, st, "address.registered_on");
        field_ui(ui, st, "address.registered_until");
    });
    // Errors of fields not on the form (e.g. "photo") and of untouched fields stay hidden
    // until Issue is pressed; then every error shows.
    if let Some(errs) = st.errors.get("photo") {
        for e in errs {
            ui.colored_label(Color32::RED, format!("photo: {e}"));
        }
    }
    if st.validated_form.as_ref() != Some(&st.form) {
        // An edit in this frame: show its validation in the next one.
        ui.ctx().request_repaint();
    }

    ui.separator();
    ui.heading("Photo");
    ui.horizontal(|ui| {
        let l = ui.label("Photo file");
        ui.add(
            egui::TextEdit::singleline(&mut st.photo_path)
                .hint_text("/path/to/photo.jpg")
                .desired_width(320.0),
        )
        .labelled_by(l.id);
        if ui
            .add_enabled(st.photo_rx.is_none(), egui::Button::new("Load photo"))
            .clicked()
        {
            load_photo(st);
        }
    });
    if let Some(e) = &st.photo_error {
        ui.colored_label(Color32::RED, e);
    }
    if let Some(p) = &st.form.photo {
        ui.label(format!(
            "Photo loaded: {}",
            p.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
    }
    if let Some((tex, [w, h])) = &st.photo {
        let scale = 160.0 / (*h as f32).max(1.0);
        ui.add(
            egui::Image::new(tex)
                .fit_to_exact_size(egui::vec2(*w as f32 * scale, 160.0))
                .alt_text("Holder photo preview"),
        );
    }

    ui.separator();
    ui.heading("Card preview");
    match &st.valid {
        Some(v) => {
            ui.label(format!(
                "Printed name: {}",
                station::holder_views::printed_name(v)
            ));
        }
        None => {
            ui.label("Printed name: (shown when the form is valid)");
        }
    }
    mrz_preview(ui, st, session);

    ui.separator();
    ui.heading("Issue");
    ui.horizontal(|ui| {
        let l = ui.label("Save the PIN letter to");
        ui.add(egui::TextEdit::singleline(&mut st.pin_letter).desired_width(360.0))
            .labelled_by(l.id)
            .on_hover_text(
                "A new PDF file: the letter with the PUK the station draws for this card. \
                 Print it for the holder; the station keeps no copy.",
            );
    });
    if let Some(e) = &st.secret_error {
        ui.colored_label(Color32::RED, e);
    }
    if ui.button("Issue card").clicked() {
        st.form.touch_all();
        st.secret_error = if st.pin_letter.trim().is_empty() {
            Some("PIN letter: choose the file the PIN letter is saved to".into())
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
    holder_pin_window(ui.ctx(), st, opts, cmds);
    if st.valid.is_none() && !st.errors.is_empty() && st.form.touched.len() >= FIELDS.len() {
        ui.colored_label(
            Color32::RED,
            "Correct the fields marked in red before issuing.",
        );
    }
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
        ui.label(RichText::new("MRZ: shown when the form is valid").weak());
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
            ui.label(format!(
                "MRZ (document number {number} is a placeholder: the real number is assigned at issuance; expiry {}):",
                session.expiry
            ));
            for l in lines {
                ui.label(RichText::new(l).monospace());
            }
        }
        Err(e) => {
            ui.colored_label(Color32::RED, format!("MRZ: {e}"));
        }
    }
}

/// The holder's own PIN entry: a window apart from the clerk's form, for the holder to type
/// the new PIN twice (turn the screen, or put this window on the holder-facing display). The
/// entries never reach the form and are zeroized as soon as the issuance has them.
fn holder_pin_window(
    ctx: &egui::Context,
    st: &mut ClerkState,
    opts: &GuiOptions,
    cmds: &mut Vec<Command>,
) {
    if !st.holder_pin_open {
        return;
    }
    let mut start = false;
    let mut cancel = false;
    egui::Window::new("Holder PIN entry")
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
        .show(ctx, |ui| {
            ui.label(
                RichText::new("For the holder: choose the PIN of your card and type it twice.")
                    .strong(),
            );
            ui.label("6 to 8 digits; not one digit repeated, not a run like 123456, not your birth date.");
            let focus = std::mem::take(&mut st.focus_holder_pin);
            egui::Grid::new("holder-pin").num_columns(2).show(ui, |ui| {
                for (label, text) in [
                    ("Holder PIN", &mut st.pin),
                    ("Holder PIN again", &mut st.pin2),
                ] {
                    let l = ui.label(label);
                    let r = ui
                        .add(
                            egui::TextEdit::singleline(text)
                                .id_salt((label, st.pin_attempt))
                                .password(true)
                                .desired_width(160.0),
                        )
                        .labelled_by(l.id);
                    if focus && label == "Holder PIN" {
                        r.request_focus();
                    }
                    ui.end_row();
                }
            });
            // The error line is always there (empty when there is none), so the window keeps
            // its size and nothing moves under the holder's finger after a refusal.
            ui.colored_label(
                Color32::RED,
                st.secret_error.as_deref().unwrap_or(" "),
            );
            ui.horizontal(|ui| {
                start = ui.button("Start issuance").clicked();
                cancel = ui.button("Cancel").clicked();
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
        Some("PIN: type the PIN twice".into())
    } else if st.pin != st.pin2 {
        Some("PIN: the two entries differ; type them again".into())
    } else {
        st.valid.as_ref().and_then(|v| {
            station::pin_letter::check_holder_pin(&st.pin, v.date_of_birth)
                .err()
                .map(|e| {
                    format!(
                        "PIN {}",
                        e.to_string().trim_start_matches("invalid input: pin: ")
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
    for &(step, words) in JOB_STEPS {
        if step == JobStep::CardReset && !reached(step) {
            continue;
        }
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
            RichText::new(format!("✔ {words}")).color(Color32::from_rgb(0, 140, 60))
        } else {
            RichText::new(format!("· {words}")).weak()
        };
        ui.label(text);
        if is_current {
            if let Some(card) = steps.last().and_then(|s| s.card_step.as_ref()) {
                ui.label(RichText::new(format!("    card step {card}")).monospace());
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
            ui.heading("Issuing…");
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Do not remove the card.");
            });
            steps_ui(ui, steps, true);
        }
        IssueView::Done(r) => {
            ui.heading("Card issued");
            ui.label(
                RichText::new(format!("Document number {}", r.document))
                    .size(20.0)
                    .strong(),
            );
            ui.label(format!("Card serial {}", r.card_serial));
            ui.label(format!("Reader {}", r.reader));
            for c in &r.certificates {
                ui.label(format!(
                    "Certificate {} ({}) serial {}",
                    c.slot, c.profile, c.serial
                ));
            }
            if let Some(letter) = &st.letter_saved {
                ui.label(
                    RichText::new(format!(
                        "PIN letter saved to {}: print it for the holder, then delete the file.",
                        letter.display()
                    ))
                    .strong(),
                );
            }
            ui.label(
                RichText::new(format!("Job {} · {:.0} ms", r.job_id, r.timings.total_ms)).weak(),
            );
            back = ui.button("Next holder").clicked();
        }
        IssueView::Failed { failure, steps } => {
            ui.heading("The card was not issued");
            steps_ui(ui, steps, false);
            ui.colored_label(Color32::RED, &failure.message);
            ui.label(RichText::new(&failure.next).strong());
            if !failure.holder_changes.is_empty() {
                holder_changes_ui(ui, &failure.holder_changes);
            }
            ui.horizontal(|ui| {
                if failure.retry && st.last.is_some() {
                    retry = ui.button("Retry").clicked();
                }
                if !failure.holder_changes.is_empty() && st.last.is_some() {
                    confirm_update = ui
                        .button("The documents confirm it: update the registry and issue")
                        .clicked();
                }
                back = ui.button("Back to the form").clicked();
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
        } else {
            st.last = None;
            st.view = IssueView::Form;
        }
    }
}

/// Registered → entered, one row per field that differs.
fn holder_changes_ui(ui: &mut egui::Ui, changes: &[station::holder_update::FieldChange]) {
    let shown = |v: &Option<String>, field: &str| match v {
        None => "(none)".to_owned(),
        Some(_) if field == "photo" => "a photo".to_owned(),
        Some(v) => v.clone(),
    };
    egui::Grid::new("holder-changes")
        .striped(true)
        .show(ui, |ui| {
            ui.label(RichText::new("Field").strong());
            ui.label(RichText::new("In the registry").strong());
            ui.label(RichText::new("Entered now").strong());
            ui.end_row();
            for c in changes {
                ui.label(crate::form::label_of(c.field));
                ui.label(shown(&c.old, c.field));
                let new = if c.field == "photo" && c.new.is_some() && c.old.is_some() {
                    "another photo".to_owned()
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
            st.photo_error = Some(e);
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
