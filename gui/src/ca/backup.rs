//! The CA administrator's registry backup (docs/gui.md "CA-admin workspace"): the file to
//! create, "Back up the registry", and what the copy holds — `station::backup::create` on the
//! worker (a consistent private copy, checked with the station's audit key and audited), its
//! refusals in plain words with the station's sentence under "Details".

use egui::{Color32, RichText};
use station::backup::BackupReport;

use crate::error::{self as gerr, Shown};
use crate::i18n::{self, t, ta};
use crate::worker::{Command, Event};

#[derive(Default)]
pub struct BackupState {
    /// The backup file to create.
    pub out: String,
    pending: bool,
    result: Option<Result<BackupReport, Shown>>,
}

impl BackupState {
    pub fn busy(&self) -> bool {
        self.pending
    }

    pub fn handle(&mut self, ev: &Event) {
        if let (Event::BackedUp(r), true) = (ev, self.pending) {
            self.pending = false;
            self.result = Some(r.as_ref().map(|b| (**b).clone()).map_err(Clone::clone));
        }
    }
}

/// The section: what a backup is, the file, the button and the outcome.
pub fn ui(ui: &mut egui::Ui, st: &mut BackupState, cmds: &mut Vec<Command>) {
    ui.heading(t(ui, "backup-heading"));
    ui.add(egui::Label::new(t(ui, "backup-note")).wrap());
    ui.horizontal_wrapped(|ui| {
        let l = ui.label(t(ui, "backup-file"));
        ui.add(egui::TextEdit::singleline(&mut st.out).desired_width(320.0))
            .labelled_by(l.id);
        let ready = !st.pending && !st.out.trim().is_empty();
        if ui
            .add_enabled(ready, egui::Button::new(t(ui, "backup-button")))
            .clicked()
        {
            st.pending = true;
            st.result = None;
            cmds.push(Command::Backup {
                out: st.out.trim().into(),
            });
        }
        if st.pending {
            ui.spinner();
        }
    });
    match &st.result {
        Some(Ok(r)) => {
            let args = [
                ("file", i18n::s(r.file.display().to_string())),
                ("bytes", i18n::n(r.bytes as f64)),
                ("holders", i18n::n(r.holders as f64)),
                ("documents", i18n::n(r.documents as f64)),
                ("seq", i18n::n(r.last_seq as f64)),
            ];
            ui.colored_label(Color32::from_rgb(0, 140, 60), ta(ui, "backup-done", &args));
            ui.label(
                RichText::new(format!("SHA-256 {}", r.sha256))
                    .monospace()
                    .small(),
            );
        }
        Some(Err(e)) => gerr::ui(ui, e),
        None => {}
    }
}
