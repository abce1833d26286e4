//! Fonts for Uzbek names. egui's bundled font (Ubuntu-Light) has Latin and Cyrillic, but not the
//! modifier letter turned comma U+02BB of Oʻ and Gʻ, nor the apostrophe U+02BC; DejaVu Sans
//! (Debian `fonts-dejavu-core`) has both and is added as a fallback when installed.

use egui::epaint::text::{FontInsert, InsertFontFamily};
use egui::{FontData, FontFamily};

/// Where Debian installs DejaVu Sans.
pub const FALLBACK_FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Add DejaVu Sans as the last fallback of both families. Returns whether a font was found
/// (without one, Oʻ and Gʻ are drawn as boxes).
pub fn install(ctx: &egui::Context) -> bool {
    for path in FALLBACK_FONTS {
        if let Ok(bytes) = std::fs::read(path) {
            ctx.add_font(FontInsert::new(
                "dejavu-sans",
                FontData::from_owned(bytes),
                vec![
                    InsertFontFamily {
                        family: FontFamily::Proportional,
                        priority: egui::epaint::text::FontPriority::Lowest,
                    },
                    InsertFontFamily {
                        family: FontFamily::Monospace,
                        priority: egui::epaint::text::FontPriority::Lowest,
                    },
                ],
            ));
            return true;
        }
    }
    tracing::warn!(
        "no DejaVu Sans font found (install fonts-dejavu-core): Oʻ and Gʻ will show as boxes"
    );
    false
}
