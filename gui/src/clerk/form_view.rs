//! The clerk's holder form: fields in fixed columns with their messages under them, lists to
//! choose from (sex, address kind, region, district, citizenship), Latin ↔ Cyrillic names
//! offered, the photo (read and decoded off the UI thread), and the card preview under it.

use std::path::PathBuf;
use std::sync::mpsc;

use egui::{Color32, RichText};

use super::{ClerkState, COL_MIN_WIDTH, COL_WIDTH};
use crate::card_preview;
use crate::form::{self, Input, FIELDS, NAME_PAIRS};
use crate::i18n::{self, t, ta, tr_args, Lang};
use crate::worker::SessionInfo;

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

pub(crate) fn form_ui(ui: &mut egui::Ui, st: &mut ClerkState, session: &SessionInfo) {
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

    ui.separator();
    card_preview::ui(
        ui,
        &card_preview::PreviewInput {
            form: &st.form,
            valid: st.valid.as_ref(),
            photo: st.photo.as_ref(),
            session,
        },
    );
}

pub(crate) fn load_photo(st: &mut ClerkState) {
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

pub(crate) fn poll_photo(ctx: &egui::Context, st: &mut ClerkState) {
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
