//! The card as it will be printed, front and back, beside the clerk's form and redrawn as the
//! form changes: photo, names in both scripts (the Cyrillic form from `station::translit` when
//! the clerk typed none), document number, dates DD.MM.YYYY, the CAN's place, and on the back
//! the TD1 machine-readable zone in OCR-B — the lines the chip's DG1 gets, from the station's
//! MRZ builder (`station::holder_views::record_mrz_lines`), never a second one.

use egui::{Color32, FontFamily, FontId, RichText};
use station::holder::ValidHolder;

use crate::form::HolderForm;
use crate::i18n::{self, t, ta};
use crate::worker::SessionInfo;

/// ID-1 card proportions (ISO/IEC 7810: 85.60 × 53.98 mm).
const ID1_RATIO: f32 = 53.98 / 85.60;
/// The widest a card side is drawn.
const CARD_MAX_WIDTH: f32 = 340.0;
/// Below this width the two sides are drawn one under the other.
const CARD_MIN_WIDTH: f32 = 250.0;
const INK: Color32 = Color32::from_rgb(20, 30, 60);
const CAPTION: Color32 = Color32::from_rgb(80, 95, 120);
const CARD_FILL: Color32 = Color32::from_rgb(226, 238, 246);

/// What the preview is drawn from.
pub struct PreviewInput<'a> {
    pub form: &'a HolderForm,
    /// The form as the station accepts it (the MRZ needs a valid holder).
    pub valid: Option<&'a ValidHolder>,
    pub photo: Option<&'a (egui::TextureHandle, [usize; 2])>,
    pub session: &'a SessionInfo,
}

/// The document number the preview shows: the next number is handed out only when the card is
/// issued, so the preview uses the office's series with seven zeros.
pub fn placeholder_number(session: &SessionInfo) -> String {
    format!("{}0000000", session.series.as_deref().unwrap_or("AA"))
}

/// The three TD1 MRZ lines (ICAO 9303 Part 5) the card and its DG1 will carry, with the
/// placeholder number; `None` while the form is not valid.
pub fn mrz_lines(
    valid: Option<&ValidHolder>,
    session: &SessionInfo,
) -> Option<Result<[String; 3], String>> {
    let v = valid?;
    Some(
        station::holder_views::record_mrz_lines(
            &station::holder_views::MrzRecord::from_record(&v.record),
            &session.document,
            &placeholder_number(session),
            session.expiry,
        )
        .map_err(|e| e.to_string()),
    )
}

/// A name in the other script: as the clerk typed it, else transliterated (the MRZ's rules).
fn both_scripts(latin: &str, cyrillic: &str) -> (String, String) {
    let (l, c) = (latin.trim(), cyrillic.trim());
    let other = |r: Result<String, String>| r.unwrap_or_default();
    match (l.is_empty(), c.is_empty()) {
        (false, true) => (
            l.to_owned(),
            other(station::translit::cyrillic_from_latin(l)),
        ),
        (true, false) => (
            other(station::translit::latin_from_cyrillic(c)),
            c.to_owned(),
        ),
        _ => (l.to_owned(), c.to_owned()),
    }
}

/// Draw the preview: the heading, the printed name, then front and back side by side (or one
/// under the other when the space is narrow).
pub fn ui(ui: &mut egui::Ui, p: &PreviewInput<'_>) {
    ui.heading(t(ui, "preview-heading"));
    match p.valid {
        Some(v) => ui.label(ta(
            ui,
            "preview-printed-name",
            &[("name", i18n::s(station::holder_views::printed_name(v)))],
        )),
        None => ui.label(t(ui, "preview-printed-name-later")),
    };
    ui.add(
        egui::Label::new(
            RichText::new(ta(
                ui,
                "preview-mrz",
                &[
                    ("number", i18n::s(placeholder_number(p.session))),
                    ("expiry", i18n::s(i18n::date_of(p.session.expiry))),
                ],
            ))
            .weak(),
        )
        .wrap(),
    );
    let gap = ui.spacing().item_spacing.x;
    let avail = ui.available_width();
    let side = ((avail - gap) / 2.0).min(CARD_MAX_WIDTH);
    if side >= CARD_MIN_WIDTH {
        ui.horizontal_top(|ui| {
            card_side(ui, side, |ui, w| front(ui, w, p));
            card_side(ui, side, |ui, w| back(ui, w, p));
        });
    } else {
        let side = avail.min(CARD_MAX_WIDTH);
        card_side(ui, side, |ui, w| front(ui, w, p));
        card_side(ui, side, |ui, w| back(ui, w, p));
    }
}

/// One side of the card: a rounded frame of ID-1 proportions `width` wide.
fn card_side(ui: &mut egui::Ui, width: f32, draw: impl FnOnce(&mut egui::Ui, f32)) {
    let margin = 8.0;
    let inner = width - 2.0 * margin;
    egui::Frame::new()
        .fill(CARD_FILL)
        .stroke(egui::Stroke::new(1.0, CAPTION))
        .corner_radius(10.0)
        .inner_margin(margin)
        .show(ui, |ui| {
            // Top to bottom inside the card, whatever the layout around it.
            ui.vertical(|ui| {
                ui.set_width(inner);
                ui.set_height(width * ID1_RATIO - 2.0 * margin);
                ui.spacing_mut().item_spacing.y = 1.0;
                draw(ui, inner);
            });
        });
}

fn caption(ui: &mut egui::Ui, id: &str) {
    ui.add(egui::Label::new(RichText::new(t(ui, id)).size(8.5).color(CAPTION)).truncate());
}

fn value(ui: &mut egui::Ui, text: &str) {
    let text = if text.trim().is_empty() { "—" } else { text };
    ui.add(egui::Label::new(RichText::new(text).size(11.0).strong().color(INK)).truncate());
}

fn front(ui: &mut egui::Ui, width: f32, p: &PreviewInput<'_>) {
    let f = p.form;
    ui.add(
        egui::Label::new(
            RichText::new(t(ui, "card-print-state"))
                .size(9.5)
                .strong()
                .color(INK),
        )
        .truncate(),
    );
    ui.add(
        egui::Label::new(
            RichText::new(t(ui, "card-print-title"))
                .size(8.5)
                .color(INK),
        )
        .truncate(),
    );
    ui.add_space(3.0);
    let photo_w = (width * 0.27).round();
    ui.horizontal_top(|ui| {
        photo(ui, p, egui::vec2(photo_w, photo_w * 4.0 / 3.0));
        ui.vertical(|ui| {
            ui.set_width(width - photo_w - 8.0);
            for (id, latin, cyr) in [
                ("card-print-surname", &f.surname, &f.surname_cyrillic),
                ("card-print-given", &f.given_names, &f.given_names_cyrillic),
                (
                    "card-print-patronymic",
                    &f.patronymic,
                    &f.patronymic_cyrillic,
                ),
            ] {
                let (l, c) = both_scripts(latin, cyr);
                caption(ui, id);
                value(ui, &format!("{l} / {c}"));
            }
            ui.columns(2, |cols| {
                caption(&mut cols[0], "card-print-sex");
                value(&mut cols[0], &f.sex);
                caption(&mut cols[1], "card-print-birth");
                value(&mut cols[1], &f.date_of_birth);
                caption(&mut cols[0], "card-print-number");
                value(&mut cols[0], &placeholder_number(p.session));
                caption(&mut cols[1], "card-print-expiry");
                value(&mut cols[1], &i18n::date_of(p.session.expiry));
            });
            caption(ui, "card-print-nationality");
            value(ui, &f.citizenship);
        });
    });
    // The CAN (card access number) is printed here once the card is personalised.
    ui.add_space((ui.available_height() - 18.0).max(0.0));
    ui.with_layout(egui::Layout::right_to_left(egui::Align::Min), |ui| {
        egui::Frame::new()
            .stroke(egui::Stroke::new(1.0, CAPTION))
            .inner_margin(2.0)
            .show(ui, |ui| {
                ui.label(RichText::new(t(ui, "card-print-can")).size(9.0).color(INK));
            });
    });
}

/// The holder's photo, or the place it goes.
fn photo(ui: &mut egui::Ui, p: &PreviewInput<'_>, size: egui::Vec2) {
    match p.photo {
        Some((tex, _)) => {
            ui.add(
                egui::Image::new(tex)
                    .fit_to_exact_size(size)
                    .alt_text(t(ui, "photo-preview")),
            );
        }
        None => {
            egui::Frame::new()
                .fill(Color32::from_rgb(205, 215, 225))
                .show(ui, |ui| {
                    ui.set_min_size(size);
                    ui.set_max_size(size);
                    ui.centered_and_justified(|ui| {
                        ui.label(
                            RichText::new(t(ui, "card-print-photo"))
                                .size(9.0)
                                .color(INK),
                        );
                    });
                });
        }
    }
}

fn back(ui: &mut egui::Ui, width: f32, p: &PreviewInput<'_>) {
    let f = p.form;
    ui.columns(2, |cols| {
        caption(&mut cols[0], "card-print-pinfl");
        value(&mut cols[0], &f.pinfl);
        caption(&mut cols[1], "card-print-issued");
        value(
            &mut cols[1],
            &i18n::date_of(station::time_util::today_utc()),
        );
    });
    caption(ui, "card-print-place-of-birth");
    value(ui, &f.place_of_birth);
    caption(ui, "card-print-authority");
    value(ui, &p.session.document.issuing_state);
    // The MRZ band at the bottom edge, as ICAO 9303 Part 5 places it.
    let size = mrz_size(width - 8.0);
    ui.add_space((ui.available_height() - 3.0 * size * 1.25 - 10.0).max(0.0));
    egui::Frame::new()
        .fill(Color32::WHITE)
        .inner_margin(4.0)
        .show(ui, |ui| {
            ui.set_width(width - 8.0);
            ui.spacing_mut().item_spacing.y = 0.0;
            mrz_band(ui, size, p);
        });
}

/// The MRZ's font size for a band `width` wide: OCR-B advances about 0.6 em a character, and
/// a TD1 line has 30.
fn mrz_size(width: f32) -> f32 {
    (width / 30.0 / 0.62).clamp(7.0, 16.0)
}

/// The MRZ in OCR-B.
fn mrz_band(ui: &mut egui::Ui, size: f32, p: &PreviewInput<'_>) {
    let font = FontId::new(size, FontFamily::Name(crate::fonts::OCR_B.into()));
    match mrz_lines(p.valid, p.session) {
        Some(Ok(lines)) => {
            for l in lines {
                ui.label(RichText::new(l).font(font.clone()).color(Color32::BLACK));
            }
        }
        Some(Err(e)) => {
            ui.add(
                egui::Label::new(
                    RichText::new(ta(ui, "preview-mrz-error", &[("detail", i18n::s(e))]))
                        .size(9.0)
                        .color(Color32::RED),
                )
                .wrap(),
            );
        }
        None => {
            ui.add(
                egui::Label::new(
                    RichText::new(t(ui, "preview-mrz-later"))
                        .size(9.0)
                        .color(CAPTION),
                )
                .wrap(),
            );
        }
    }
}
