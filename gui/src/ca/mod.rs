//! The CA administrator's workspace: the CA hierarchy as the registry records it (certificate
//! subject, SHA-256 fingerprint, validity, HSM key label, key state), publishing the CRL of
//! every CA key that must publish one, revoking one certificate by serial (RFC 5280 §5.3.1
//! reason, shown in words), and CA key rotation under dual control ([`requests`]:
//! `station::rotation`, docs/rotation.md). On a station enrolled to the national centre, whose
//! CAs the centre holds, it shows the hierarchy, the Document Signer renewal
//! (`station::document_signer`) and the dual-control requests that remain (operators). Last,
//! the registry backup ([`backup`]). Station errors are shown in plain words with the
//! technical text under "Details" (`crate::error`).

pub mod backup;
pub mod requests;

use egui::{Color32, RichText};
use station::ca_admin::CrlReport;
use station::hierarchy::CaSummary;

use crate::error::{self as gerr, Shown};
use crate::i18n::{self, t, ta};
use crate::worker::{Command, Event, RotationLists, SessionInfo};

pub use requests::{RolloverForm, ROTATIONS};

/// RFC 5280 §5.3.1 reason names offered for a single certificate (shown in words: the
/// catalogue's `reason-<name>`).
pub const REASONS: &[&str] = &[
    "keyCompromise",
    "cessationOfOperation",
    "superseded",
    "affiliationChanged",
    "privilegeWithdrawn",
];

#[derive(Default)]
pub struct CaState {
    requested: bool,
    summaries: Option<Result<Vec<CaSummary>, Shown>>,
    crl_pending: bool,
    crl: Option<Result<Vec<CrlReport>, Shown>>,
    serial: String,
    reason: usize,
    confirm: bool,
    revoke_pending: bool,
    revoked: Option<Result<String, Shown>>,
    rotation: Option<Result<Box<RotationLists>, Shown>>,
    rotation_pending: bool,
    rotation_result: Option<Result<String, Shown>>,
    /// The root rollover's confirmation, open after "Request root rollover".
    pub rollover: Option<RolloverForm>,
    /// An enrolled station's revocation of a document at the centre.
    doc: DocRevocation,
    /// The registry backup.
    pub backup: backup::BackupState,
}

/// The form revoking a document at the national centre (an enrolled station's CA workspace).
#[derive(Default)]
struct DocRevocation {
    number: String,
    reason: usize,
    confirm: bool,
    pending: bool,
    result: Option<Result<station::records::RevokeReport, Shown>>,
}

/// The reasons `station::records::revoke` takes, in the order offered.
const DOC_REASONS: &[&str] = &[
    "lost",
    "stolen",
    "damaged",
    "deceased",
    "replaced",
    "data-changed",
];

impl CaState {
    pub fn busy(&self) -> bool {
        self.crl_pending
            || self.revoke_pending
            || self.doc.pending
            || self.rotation_pending
            || self.backup.busy()
            || (self.requested && (self.summaries.is_none() || self.rotation.is_none()))
    }

    pub fn handle(&mut self, ev: &Event) {
        self.backup.handle(ev);
        match ev {
            Event::CaSummaries(r) => self.summaries = Some(r.clone()),
            Event::DocumentRevoked(r) if self.doc.pending => {
                self.doc.pending = false;
                self.doc.confirm = false;
                self.doc.result = Some(r.clone());
            }
            Event::CrlPublished(r) => {
                self.crl_pending = false;
                self.crl = Some(r.clone());
            }
            Event::CaRequests(r) => self.rotation = Some(r.clone()),
            Event::CaRequestDone(r) => {
                self.rotation_pending = false;
                self.rotation_result = Some(r.clone());
            }
            Event::CertificateRevoked(r) => {
                self.revoke_pending = false;
                self.confirm = false;
                self.revoked = Some(r.clone());
            }
            _ => {}
        }
    }
}

pub fn ui(ui: &mut egui::Ui, st: &mut CaState, session: &SessionInfo, cmds: &mut Vec<Command>) {
    if !st.requested {
        st.requested = true;
        cmds.push(Command::CaSummaries);
        cmds.push(Command::CaRequests);
    }
    egui::CentralPanel::default_margins().show(ui, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| {
            hierarchy_ui(ui, st, cmds);
            ui.separator();
            if session.centre {
                // The centre holds the root, e-Signature CA and CSCA keys: their CRLs,
                // revocations and rotations are made there; the station renews its own
                // Document Signer.
                ui.add(egui::Label::new(t(ui, "ca-centre-held")).wrap());
                ui.separator();
                requests::document_signer_ui(ui, st, cmds);
                ui.separator();
                revoke_document_ui(ui, &mut st.doc, cmds);
                ui.separator();
            } else {
                crl_ui(ui, st, cmds);
                ui.separator();
                revoke_ui(ui, st, cmds);
                ui.separator();
            }
            requests::ui(ui, st, &session.operator, !session.centre, cmds);
            ui.separator();
            backup::ui(ui, &mut st.backup, cmds);
        });
    });
}

/// The CA keys with their certificates.
fn hierarchy_ui(ui: &mut egui::Ui, st: &mut CaState, cmds: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        ui.heading(t(ui, "ca-hierarchy"));
        if ui.button(t(ui, "refresh")).clicked() {
            st.summaries = None;
            cmds.push(Command::CaSummaries);
        }
    });
    let list = match &st.summaries {
        None => {
            ui.spinner();
            return;
        }
        Some(Err(e)) => return gerr::ui(ui, e),
        Some(Ok(list)) => list,
    };
    egui::Grid::new("ca-keys")
        .striped(true)
        .num_columns(6)
        .show(ui, |ui| {
            for h in [
                "ca-col-ca",
                "ca-col-key",
                "ca-col-state",
                "ca-col-subject",
                "ca-col-valid",
                "ca-col-fingerprint",
            ] {
                ui.label(RichText::new(t(ui, h)).strong());
            }
            ui.end_row();
            for c in list {
                ui.label(&c.ca);
                ui.label(RichText::new(&c.key_label).monospace());
                let color = match c.state.as_str() {
                    "active" => Color32::from_rgb(0, 140, 60),
                    "revoked" | "destroyed" => Color32::RED,
                    _ => Color32::GRAY,
                };
                ui.colored_label(color, &c.state);
                ui.label(&c.subject);
                // Monospace: dates of equal length keep the column, and so the fingerprint
                // column after it, at the same x every time.
                ui.label(
                    RichText::new(format!(
                        "{}\n{}",
                        i18n::date(&c.not_before),
                        i18n::date(&c.not_after)
                    ))
                    .monospace(),
                );
                ui.horizontal(|ui| {
                    ui.label(RichText::new(fingerprint_lines(&c.fingerprint_sha256)).monospace());
                    if ui
                        .small_button(t(ui, "copy"))
                        .on_hover_text(t(ui, "copy"))
                        .clicked()
                    {
                        ui.ctx().copy_text(c.fingerprint_sha256.clone());
                    }
                });
                ui.end_row();
            }
        });
}

/// "Publish CRL" and the table of what it signed.
fn crl_ui(ui: &mut egui::Ui, st: &mut CaState, cmds: &mut Vec<Command>) {
    ui.heading(t(ui, "crl-heading"));
    if ui
        .add_enabled(!st.crl_pending, egui::Button::new(t(ui, "crl-publish")))
        .clicked()
    {
        st.crl_pending = true;
        cmds.push(Command::PublishCrl);
    }
    if st.crl_pending {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(t(ui, "crl-signing"));
        });
    }
    match &st.crl {
        Some(Ok(reports)) => {
            ui.colored_label(
                Color32::from_rgb(0, 140, 60),
                ta(
                    ui,
                    "crl-published",
                    &[("count", i18n::n(reports.len() as f64))],
                ),
            );
            egui::Grid::new("crls").striped(true).show(ui, |ui| {
                for h in [
                    "crl-col-key",
                    "crl-col-number",
                    "crl-col-revoked",
                    "crl-col-this-update",
                    "crl-col-next-update",
                ] {
                    ui.strong(t(ui, h));
                }
                ui.end_row();
                for r in reports {
                    ui.label(RichText::new(&r.issuer_key).monospace());
                    ui.label(r.crl_number.to_string());
                    ui.label(r.revoked.to_string());
                    ui.label(&r.this_update);
                    ui.label(&r.next_update);
                    ui.end_row();
                }
            });
        }
        Some(Err(e)) => gerr::ui(ui, e),
        None => {}
    }
}

/// Revoke one certificate by serial, for a reason in words, after a confirmation.
fn revoke_ui(ui: &mut egui::Ui, st: &mut CaState, cmds: &mut Vec<Command>) {
    ui.heading(t(ui, "ca-revoke-heading"));
    ui.horizontal(|ui| {
        let l = ui.label(t(ui, "ca-revoke-serial"));
        ui.add(egui::TextEdit::singleline(&mut st.serial).desired_width(320.0))
            .labelled_by(l.id);
    });
    let reason = reason_picker(ui, "ca-revoke-reason", "reason-", REASONS, &mut st.reason);
    ui.checkbox(&mut st.confirm, t(ui, "ca-revoke-confirm"));
    if ui
        .add_enabled(
            st.confirm && !st.revoke_pending && !st.serial.trim().is_empty(),
            egui::Button::new(t(ui, "ca-revoke-button")),
        )
        .clicked()
    {
        st.revoke_pending = true;
        cmds.push(Command::RevokeCertificate {
            serial: st.serial.clone(),
            reason: reason.to_string(),
        });
    }
    match &st.revoked {
        Some(Ok(s)) => {
            ui.colored_label(
                Color32::from_rgb(0, 140, 60),
                ta(ui, "ca-revoked", &[("serial", i18n::s(s.as_str()))]),
            );
        }
        Some(Err(e)) => gerr::ui(ui, e),
        None => {}
    }
}

/// Revoke a document by number at the national centre (an enrolled station), for a reason in
/// words, after a confirmation: `station::records::revoke`, which the centre's record decides.
fn revoke_document_ui(ui: &mut egui::Ui, d: &mut DocRevocation, cmds: &mut Vec<Command>) {
    ui.heading(t(ui, "ca-doc-heading"));
    ui.add(egui::Label::new(t(ui, "ca-doc-note")).wrap());
    ui.horizontal(|ui| {
        let l = ui.label(t(ui, "ca-doc-number"));
        ui.add(egui::TextEdit::singleline(&mut d.number).desired_width(200.0))
            .labelled_by(l.id);
    });
    let reason = reason_picker(
        ui,
        "ca-doc-reason",
        "ca-doc-reason-",
        DOC_REASONS,
        &mut d.reason,
    );
    ui.checkbox(&mut d.confirm, t(ui, "ca-doc-confirm"));
    if ui
        .add_enabled(
            d.confirm && !d.pending && !d.number.trim().is_empty(),
            egui::Button::new(t(ui, "ca-doc-button")),
        )
        .clicked()
    {
        d.pending = true;
        cmds.push(Command::RevokeDocument {
            number: d.number.trim().to_owned(),
            reason: reason.to_owned(),
        });
    }
    crate::clerk::lookup::revoke_result_ui(ui, &d.result);
}

/// A combo box labelled `label` choosing one of `reasons` (each in words: catalogue id
/// `prefix` + reason) into `chosen`; the list closes once a reason is taken, from the keyboard
/// too. The reason chosen.
fn reason_picker<'r>(
    ui: &mut egui::Ui,
    label: &str,
    prefix: &str,
    reasons: &[&'r str],
    chosen: &mut usize,
) -> &'r str {
    let word = |ui: &egui::Ui, r: &str| t(ui, &format!("{prefix}{r}"));
    let reason = reasons[(*chosen).min(reasons.len() - 1)];
    egui::ComboBox::from_label(t(ui, label))
        .selected_text(word(ui, reason))
        .show_ui(ui, |ui| {
            for (i, r) in reasons.iter().enumerate() {
                let w = word(ui, r);
                if ui.selectable_value(chosen, i, w).clicked() {
                    ui.close();
                }
            }
        });
    reasons[(*chosen).min(reasons.len() - 1)]
}

/// A SHA-256 fingerprint (hex, with or without colons) as two lines of colon-separated pairs.
fn fingerprint_lines(fp: &str) -> String {
    let hex: String = fp.chars().filter(|c| *c != ':').collect();
    let pairs: Vec<&str> = hex
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap_or("??"))
        .collect();
    let half = pairs.len().div_ceil(2);
    format!("{}\n{}", pairs[..half].join(":"), pairs[half..].join(":"))
}
