//! A masked single-line field for a secret — an operator's password, a holder's PIN — that
//! leaves nothing of it in egui's memory.
//!
//! egui keeps, besides the text it edits, an undo history in the field's `TextEditState`
//! (egui 0.37 `text_edit/builder.rs`: "We feed state to the undoer both before and after
//! handling input so that the undoer creates automatic saves even when there are no events for
//! a while"), password mode or not, for as long as the context lives. Wiping the `String` (the
//! log-in's, a PIN window's) therefore left a copy there, and Ctrl+Z in the same field — the
//! log-in screen after a log-out, the next holder's PIN window — typed the previous secret back,
//! masked. [`secret_field`] clears that history each frame, after egui fed it.

/// A masked single-line text field for `text`, `width` points wide, its state kept under
/// `id_salt`, with no undo history (see the module documentation).
pub fn secret_field(
    ui: &mut egui::Ui,
    text: &mut String,
    id_salt: impl std::hash::Hash + std::fmt::Debug,
    width: f32,
) -> egui::Response {
    let mut out = egui::TextEdit::singleline(text)
        .id_salt(id_salt)
        .password(true)
        .desired_width(width)
        .show(ui);
    out.state.clear_undoer();
    out.state.store(ui.ctx(), out.response.response.id);
    out.response.response
}

#[cfg(test)]
mod tests {
    use super::secret_field;
    use egui::{Key, Modifiers};
    use egui_kittest::kittest::Queryable as _;

    /// Typed, left alone long enough for egui to save an undo point, then wiped as the log-in
    /// wipes its password: Ctrl+Z in the same field brings nothing back.
    #[test]
    fn a_wiped_secret_cannot_be_undone_back() {
        let mut h = egui_kittest::Harness::new_ui_state(
            |ui, s: &mut String| {
                let l = ui.label("Secret");
                secret_field(ui, s, "secret", 120.0).labelled_by(l.id);
            },
            String::new(),
        );
        h.run();
        h.get_by_role(egui::accesskit::Role::PasswordInput).focus();
        h.run();
        h.get_by_role(egui::accesskit::Role::PasswordInput)
            .type_text("pa55word-1");
        // Past egui's one-second automatic undo save.
        for _ in 0..150 {
            h.step();
        }
        assert_eq!(h.state(), "pa55word-1");
        h.state_mut().clear();
        h.run();
        h.key_combination_modifiers(Modifiers::COMMAND, &[Key::Z]);
        for _ in 0..5 {
            h.step();
        }
        assert_eq!(h.state(), "", "Ctrl+Z typed the wiped secret back");
    }
}
