//! Fonts for Uzbek names and the four interface languages. egui's bundled font (Ubuntu-Light)
//! has Latin and Cyrillic, but not the modifier letter turned comma U+02BB of Oʻ and Gʻ, nor the
//! apostrophe U+02BC; DejaVu Sans (2.37, from Debian's `fonts-dejavu-core`; licence in
//! `gui/fonts/DejaVuSans-LICENSE.txt`) has both and every Uzbek Cyrillic letter (Ўў Ққ Ғғ Ҳҳ).
//! It is embedded in the binary and added as a fallback of both families: nothing depends on
//! the fonts installed on the station. OCR-B (Debian's `fonts-ocr-b`, public domain; licence in
//! `gui/fonts/OCRB-LICENSE.txt`), the typeface ICAO 9303 Part 3 prescribes for the MRZ, is
//! embedded as the family [`OCR_B`] for the card preview.

use egui::epaint::text::{FontInsert, InsertFontFamily};
use egui::{FontData, FontFamily};

/// DejaVu Sans, embedded.
pub const DEJAVU_SANS: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// OCR-B, embedded.
pub const OCR_B_FONT: &[u8] = include_bytes!("../fonts/OCRB.otf");

/// The font family of the MRZ on the card preview.
pub const OCR_B: &str = "ocr-b";

/// Add the embedded DejaVu Sans as the last fallback of both families, and OCR-B as a family
/// of its own (DejaVu Sans behind it for any character OCR-B lacks).
pub fn install(ctx: &egui::Context) {
    let ocr = FontFamily::Name(OCR_B.into());
    ctx.add_font(FontInsert::new(
        OCR_B,
        FontData::from_static(OCR_B_FONT),
        vec![InsertFontFamily {
            family: ocr.clone(),
            priority: egui::epaint::text::FontPriority::Highest,
        }],
    ));
    ctx.add_font(FontInsert::new(
        "dejavu-sans",
        FontData::from_static(DEJAVU_SANS),
        vec![
            InsertFontFamily {
                family: FontFamily::Proportional,
                priority: egui::epaint::text::FontPriority::Lowest,
            },
            InsertFontFamily {
                family: FontFamily::Monospace,
                priority: egui::epaint::text::FontPriority::Lowest,
            },
            InsertFontFamily {
                family: ocr,
                priority: egui::epaint::text::FontPriority::Lowest,
            },
        ],
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded font has a glyph for every letter the interface and Uzbek names need.
    #[test]
    fn the_embedded_font_covers_uzbek_latin_and_cyrillic() {
        let face = ttf_parser_face();
        for c in "OʻoʻGʻgʻʼЎўҚқҒғҲҳЁёЖжЩщЪъЫыЭэЮюЯя".chars() {
            assert!(face(c), "no glyph for {c} (U+{:04X})", c as u32);
        }
    }

    /// Whether the font's cmap maps `c` (format 4 subtables, BMP), read directly.
    fn ttf_parser_face() -> impl Fn(char) -> bool {
        let f = DEJAVU_SANS;
        let u16_at = |o: usize| u16::from_be_bytes([f[o], f[o + 1]]) as usize;
        let u32_at = |o: usize| u32::from_be_bytes([f[o], f[o + 1], f[o + 2], f[o + 3]]) as usize;
        let tables = u16_at(4);
        let cmap = (0..tables)
            .map(|i| 12 + 16 * i)
            .find(|&r| &f[r..r + 4] == b"cmap")
            .map(|r| u32_at(r + 8))
            .expect("cmap table");
        let sub = (0..u16_at(cmap + 2))
            .map(|i| cmap + 4 + 8 * i)
            .find(|&r| u16_at(r) == 3 && u16_at(r + 2) == 1)
            .map(|r| cmap + u32_at(r + 4))
            .expect("Unicode BMP cmap");
        assert_eq!(u16_at(sub), 4, "format 4");
        move |c: char| {
            let c = c as usize;
            let segs = u16_at(sub + 6) / 2;
            let ends = sub + 14;
            let starts = ends + 2 * segs + 2;
            let deltas = starts + 2 * segs;
            let offsets = deltas + 2 * segs;
            for s in 0..segs {
                let (end, start) = (u16_at(ends + 2 * s), u16_at(starts + 2 * s));
                if c <= end {
                    if c < start {
                        return false;
                    }
                    let ro = u16_at(offsets + 2 * s);
                    let glyph = if ro == 0 {
                        (c + u16_at(deltas + 2 * s)) & 0xFFFF
                    } else {
                        let g = u16_at(offsets + 2 * s + ro + 2 * (c - start));
                        if g == 0 {
                            0
                        } else {
                            (g + u16_at(deltas + 2 * s)) & 0xFFFF
                        }
                    };
                    return glyph != 0;
                }
            }
            false
        }
    }
}
