//! The interface language (issue 20): Uzbek (Latin), Uzbek (Cyrillic), Russian and English.
//! Every text the GUI shows comes from a Fluent catalogue, `gui/i18n/<tag>/gui.ftl`, embedded
//! in the binary; English is the reference catalogue that every other must match id for id
//! (tested). The language of a window lives in its egui context ([`set`], [`current`]), so
//! drawing code asks `t(ui, "id")`; the worker thread, which has no context, is told the
//! language with each log-in. Dates are shown and typed as DD.MM.YYYY in every language.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

/// An interface language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    UzLatn,
    UzCyrl,
    Ru,
    #[default]
    En,
}

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::UzLatn, Lang::UzCyrl, Lang::Ru, Lang::En];

    /// The BCP 47 tag, also the catalogue's directory name.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::UzLatn => "uz-Latn",
            Lang::UzCyrl => "uz-Cyrl",
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.tag() == tag)
    }

    /// The language's own name, as the log-in screen offers it.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::UzLatn => "Oʻzbekcha",
            Lang::UzCyrl => "Ўзбекча",
            Lang::Ru => "Русский",
            Lang::En => "English",
        }
    }

    fn index(self) -> usize {
        match self {
            Lang::UzLatn => 0,
            Lang::UzCyrl => 1,
            Lang::Ru => 2,
            Lang::En => 3,
        }
    }

    /// The catalogue's text.
    pub fn source(self) -> &'static str {
        match self {
            Lang::UzLatn => include_str!("../i18n/uz-Latn/gui.ftl"),
            Lang::UzCyrl => include_str!("../i18n/uz-Cyrl/gui.ftl"),
            Lang::Ru => include_str!("../i18n/ru/gui.ftl"),
            Lang::En => include_str!("../i18n/en/gui.ftl"),
        }
    }
}

type Bundle = FluentBundle<FluentResource>;

fn bundle(lang: Lang) -> &'static Bundle {
    static BUNDLES: OnceLock<Vec<Bundle>> = OnceLock::new();
    let all = BUNDLES.get_or_init(|| {
        Lang::ALL
            .into_iter()
            .map(|l| {
                let id: unic_langid::LanguageIdentifier = l.tag().parse().unwrap_or_default();
                let mut b = FluentBundle::new_concurrent(vec![id]);
                // No Unicode isolation marks around arguments: labels are matched and read as
                // plain text (screen readers, tests).
                b.set_use_isolating(false);
                match FluentResource::try_new(l.source().to_owned()) {
                    Ok(res) => {
                        if let Err(e) = b.add_resource(res) {
                            tracing::error!(lang = l.tag(), ?e, "catalogue has duplicate ids");
                        }
                    }
                    Err((res, e)) => {
                        tracing::error!(lang = l.tag(), ?e, "catalogue has syntax errors");
                        let _ = b.add_resource(res);
                    }
                }
                b
            })
            .collect()
    });
    &all[lang.index()]
}

/// The message ids of a catalogue, in file order.
pub fn message_ids(lang: Lang) -> Vec<String> {
    let res = match FluentResource::try_new(lang.source().to_owned()) {
        Ok(r) => r,
        Err((r, _)) => r,
    };
    res.entries()
        .filter_map(|e| match e {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
            _ => None,
        })
        .collect()
}

/// Syntax errors of a catalogue (empty when it parses).
pub fn syntax_errors(lang: Lang) -> Vec<String> {
    match FluentResource::try_new(lang.source().to_owned()) {
        Ok(_) => Vec::new(),
        Err((_, errs)) => errs.iter().map(|e| format!("{e:?}")).collect(),
    }
}

/// Message `id` with `args` in `lang`; English when the language lacks it, the id itself when
/// English lacks it too (a defect the catalogue test catches).
pub fn tr_args(lang: Lang, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
    let fargs = (!args.is_empty()).then(|| {
        let mut a = FluentArgs::new();
        for (k, v) in args {
            a.set(*k, v.clone());
        }
        a
    });
    for l in [lang, Lang::En] {
        let b = bundle(l);
        if let Some(pattern) = b.get_message(id).and_then(|m| m.value()) {
            let mut errs = Vec::new();
            let s = b.format_pattern(pattern, fargs.as_ref(), &mut errs);
            if !errs.is_empty() {
                tracing::warn!(id, lang = l.tag(), ?errs, "message formatted with errors");
            }
            return s.into_owned();
        }
    }
    tracing::warn!(id, "message missing from every catalogue");
    id.to_owned()
}

/// Whether the catalogues have message `id` (every catalogue has English's ids).
pub fn has(id: &str) -> bool {
    bundle(Lang::En).has_message(id)
}

/// Message `id` in `lang`.
pub fn tr(lang: Lang, id: &str) -> String {
    tr_args(lang, id, &[])
}

/// A registry status in words ("active", "suspended", "lost", …); an unknown one as it is.
pub fn status_word(lang: Lang, status: &str) -> String {
    let id = format!("status-{status}");
    let w = tr(lang, &id);
    if w == id {
        status.to_owned()
    } else {
        w
    }
}

/// A string argument.
pub fn s<'a>(v: impl Into<String>) -> FluentValue<'a> {
    FluentValue::String(v.into().into())
}

/// A number argument (plural rules use it).
pub fn n<'a>(v: impl Into<f64>) -> FluentValue<'a> {
    FluentValue::from(v.into())
}

fn lang_id() -> egui::Id {
    egui::Id::unique("idstation-interface-language")
}

/// Set the language of the windows of `ctx`.
pub fn set(ctx: &egui::Context, lang: Lang) {
    ctx.data_mut(|d| d.insert_temp(lang_id(), lang));
}

/// The language of the windows of `ctx` (English until one is set).
pub fn current(ctx: &egui::Context) -> Lang {
    ctx.data(|d| d.get_temp::<Lang>(lang_id()))
        .unwrap_or_default()
}

/// Message `id` in the language of `ui`'s window.
pub fn t(ui: &egui::Ui, id: &str) -> String {
    tr(current(ui.ctx()), id)
}

/// Message `id` with `args` in the language of `ui`'s window.
pub fn ta(ui: &egui::Ui, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
    tr_args(current(ui.ctx()), id, args)
}

/// A date as the clerk reads and types it, DD.MM.YYYY, from the registry's `YYYY-MM-DD` (or
/// from the start of an RFC 3339 time). Text that is not such a date is returned as it is.
pub fn date(iso: &str) -> String {
    let b = iso.as_bytes();
    if b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
    {
        // An RFC 3339 time reads "02.12.2026 10:11:12 UTC".
        let rest = iso[10..].strip_prefix('T').map(|r| format!(" {r}"));
        let rest = rest.unwrap_or_else(|| iso[10..].to_owned());
        let rest = rest
            .strip_suffix('Z')
            .map(|r| format!("{r} UTC"))
            .unwrap_or(rest);
        format!("{}.{}.{}{}", &iso[8..10], &iso[5..7], &iso[..4], rest)
    } else {
        iso.to_owned()
    }
}

/// A [`time::Date`] as DD.MM.YYYY.
pub fn date_of(d: time::Date) -> String {
    format!("{:02}.{:02}.{:04}", d.day(), u8::from(d.month()), d.year())
}

/// DD.MM.YYYY as typed → `YYYY-MM-DD` for the station; `None` when the text is not of that
/// shape (the calendar check is the station's).
pub fn iso_from_typed(typed: &str) -> Option<String> {
    let t = typed.trim();
    let b = t.as_bytes();
    (b.len() == 10
        && b[2] == b'.'
        && b[5] == b'.'
        && [0, 1, 3, 4, 6, 7, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit()))
    .then(|| format!("{}-{}-{}", &t[6..10], &t[3..5], &t[..2]))
}

/// The date mask: what the clerk typed, reduced to its digits (at most 8) and written
/// DD.MM.YYYY as far as it goes ("1505" → "15.05", "15051985" → "15.05.1985").
pub fn mask_date(typed: &str) -> String {
    let digits: String = typed.chars().filter(char::is_ascii_digit).take(8).collect();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i == 2 || i == 4 {
            out.push('.');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_parses_and_has_every_english_message() {
        let en = message_ids(Lang::En);
        assert!(en.len() > 100, "{} English messages", en.len());
        for l in Lang::ALL {
            assert!(
                syntax_errors(l).is_empty(),
                "{}: {:?}",
                l.tag(),
                syntax_errors(l)
            );
            let ids = message_ids(l);
            let missing: Vec<&String> = en.iter().filter(|i| !ids.contains(i)).collect();
            assert!(missing.is_empty(), "{} lacks {missing:?}", l.tag());
            let extra: Vec<&String> = ids.iter().filter(|i| !en.contains(i)).collect();
            assert!(
                extra.is_empty(),
                "{} has ids English lacks: {extra:?}",
                l.tag()
            );
            let mut sorted = ids.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), ids.len(), "{}: an id twice", l.tag());
        }
    }

    #[test]
    fn messages_are_translated_and_take_their_arguments() {
        assert_eq!(tr(Lang::En, "login-button"), "Log in");
        assert_ne!(tr(Lang::Ru, "login-button"), "Log in");
        let m = tr_args(
            Lang::Ru,
            "top-operator",
            &[("name", s("clerk")), ("role", s("clerk"))],
        );
        assert!(m.contains("clerk"), "{m}");
        assert!(!m.contains('\u{2068}'), "no isolation marks: {m:?}");
    }

    #[test]
    fn dates_are_dd_mm_yyyy() {
        assert_eq!(date("2026-12-02"), "02.12.2026");
        assert_eq!(date("2026-12-02T10:11:12Z"), "02.12.2026 10:11:12 UTC");
        assert_eq!(date("soon"), "soon");
        assert_eq!(iso_from_typed("15.05.1985").as_deref(), Some("1985-05-15"));
        assert_eq!(iso_from_typed("1985-05-15"), None);
        assert_eq!(mask_date("1505"), "15.05");
        assert_eq!(mask_date("15.05.19852"), "15.05.1985");
        assert_eq!(mask_date("15-05-1985"), "15.05.1985");
        assert_eq!(date_of(time::macros::date!(2026 - 01 - 09)), "09.01.2026");
    }
}
