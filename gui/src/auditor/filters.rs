//! The auditor's filters: two dates typed DD.MM.YYYY through the clerk form's mask, checked
//! as they are typed (a rejected date is not applied and says which rule it breaks, under its
//! field), and three case-insensitive text filters.

use egui::Color32;
use station::AuditEvent;

use crate::i18n::{self, t};

#[derive(Default)]
pub struct Filters {
    pub from: String,
    pub to: String,
    pub operator: String,
    pub action: String,
    pub document: String,
}

/// Why a typed date filter cannot be used: the catalogue id of the rule it breaks, or `None`
/// for an empty filter or a real day.
pub fn date_problem(typed: &str) -> Option<&'static str> {
    let typed = typed.trim();
    if typed.is_empty() {
        return None;
    }
    let Some(iso) = i18n::iso_from_typed(typed) else {
        return Some("audit-date-shape");
    };
    let num = |r: std::ops::Range<usize>| iso[r].parse::<u16>().unwrap_or(0);
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let real = time::Month::try_from(m as u8)
        .ok()
        .and_then(|m| time::Date::from_calendar_date(i32::from(y), m, d as u8).ok());
    if real.is_none() {
        return Some("audit-date-no-such-day");
    }
    None
}

impl Filters {
    /// The rule each date filter breaks: (from, to). "To" before "From" is the To field's.
    pub fn date_problems(&self) -> (Option<&'static str>, Option<&'static str>) {
        let from = date_problem(&self.from);
        let mut to = date_problem(&self.to);
        if from.is_none() && to.is_none() {
            if let (Some(f), Some(t)) = (self.from_iso(), self.to_iso()) {
                if f > t {
                    to = Some("audit-date-order");
                }
            }
        }
        (from, to)
    }

    /// Some date filter is rejected: it is not applied, and Export waits for it.
    pub fn bad_date(&self) -> bool {
        let (f, t) = self.date_problems();
        f.is_some() || t.is_some()
    }

    /// The From date as `YYYY-MM-DD`, when it is a usable date.
    pub fn from_iso(&self) -> Option<String> {
        date_problem(&self.from)
            .is_none()
            .then(|| i18n::iso_from_typed(&self.from))
            .flatten()
    }

    /// The To date as `YYYY-MM-DD`, when it is a usable date.
    pub fn to_iso(&self) -> Option<String> {
        date_problem(&self.to)
            .is_none()
            .then(|| i18n::iso_from_typed(&self.to))
            .flatten()
    }

    /// Is `e` inside the date range (inclusive days; a rejected date is not applied)? This is
    /// the range Export writes.
    pub fn in_range(&self, e: &AuditEvent) -> bool {
        let day = e.time.get(..10).unwrap_or(&e.time);
        let (bad_from, bad_to) = self.date_problems();
        let from = self.from_iso().filter(|_| bad_from.is_none());
        let to = self.to_iso().filter(|_| bad_to.is_none());
        from.is_none_or(|f| day >= f.as_str()) && to.is_none_or(|t| day <= t.as_str())
    }

    /// Does `e` pass every filter? Dates compare the event time's `YYYY-MM-DD` prefix
    /// (inclusive); the text filters are case-insensitive substrings.
    pub fn matches(&self, e: &AuditEvent) -> bool {
        let has = |hay: &str, needle: &str| {
            needle.trim().is_empty() || hay.to_lowercase().contains(&needle.trim().to_lowercase())
        };
        self.in_range(e)
            && has(&e.operator, &self.operator)
            && has(&e.action, &self.action)
            && (self.document.trim().is_empty()
                || has(&e.object, &self.document)
                || has(&e.details, &self.document))
    }

    /// The filter row: each field with its label above and its rule, if broken, under it.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let (bad_from, bad_to) = self.date_problems();
        ui.horizontal_wrapped(|ui| {
            date_filter(ui, "audit-from", &mut self.from, bad_from);
            date_filter(ui, "audit-to", &mut self.to, bad_to);
            text_filter(ui, "audit-operator", &mut self.operator, 100.0);
            text_filter(ui, "audit-action", &mut self.action, 120.0);
            text_filter(ui, "audit-document", &mut self.document, 120.0);
        });
    }
}

/// A labelled text field, label above.
pub fn text_filter(ui: &mut egui::Ui, label_id: &str, value: &mut String, width: f32) {
    ui.vertical(|ui| {
        ui.set_width(width);
        let l = ui.label(t(ui, label_id));
        ui.add(egui::TextEdit::singleline(value).desired_width(width))
            .labelled_by(l.id);
    });
}

/// A date filter typed DD.MM.YYYY through the mask; the rule it breaks wraps under it.
fn date_filter(ui: &mut egui::Ui, label_id: &str, value: &mut String, problem: Option<&str>) {
    const WIDTH: f32 = 150.0;
    ui.vertical(|ui| {
        ui.set_width(WIDTH);
        let l = ui.label(t(ui, label_id));
        let r = ui
            .add(
                egui::TextEdit::singleline(value)
                    .hint_text(t(ui, "hint-date"))
                    .desired_width(100.0),
            )
            .labelled_by(l.id);
        if r.changed() {
            *value = i18n::mask_date(value);
        }
        if let Some(id) = problem {
            ui.add(
                egui::Label::new(egui::RichText::new(t(ui, id)).color(Color32::RED).small()).wrap(),
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time: &str) -> AuditEvent {
        AuditEvent {
            seq: 1,
            time: time.into(),
            operator: "clerk".into(),
            role: "clerk".into(),
            station: "s".into(),
            action: "issuance.completed".into(),
            object: "document:AA0000001".into(),
            details: "{}".into(),
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    #[test]
    fn a_date_filter_names_the_rule_it_breaks() {
        assert_eq!(date_problem(""), None);
        assert_eq!(date_problem("01.12.2026"), None);
        assert_eq!(date_problem("29.02.2024"), None);
        assert_eq!(date_problem("01.12"), Some("audit-date-shape"));
        assert_eq!(date_problem("2026-12-01"), Some("audit-date-shape"));
        assert_eq!(date_problem("31.02.2026"), Some("audit-date-no-such-day"));
        assert_eq!(date_problem("01.13.2026"), Some("audit-date-no-such-day"));
        assert_eq!(date_problem("29.02.2026"), Some("audit-date-no-such-day"));
        let f = Filters {
            from: "02.12.2026".into(),
            to: "01.12.2026".into(),
            ..Filters::default()
        };
        assert_eq!(f.date_problems(), (None, Some("audit-date-order")));
        assert!(f.bad_date());
    }

    #[test]
    fn dates_are_inclusive_days_and_a_rejected_date_is_not_applied() {
        let mut f = Filters {
            from: "01.12.2026".into(),
            to: "01.12.2026".into(),
            ..Filters::default()
        };
        assert!(f.matches(&event("2026-12-01T23:59:59.000000Z")));
        assert!(!f.matches(&event("2026-12-02T00:00:00.000000Z")));
        assert!(!f.matches(&event("2026-11-30T23:59:59.000000Z")));
        f.to = "31.11.2026".into();
        assert!(
            f.matches(&event("2026-12-02T00:00:00.000000Z")),
            "bad To ignored"
        );
        assert!(
            !f.matches(&event("2026-11-30T00:00:00.000000Z")),
            "From still applies"
        );
        f.action = "ISSUANCE".into();
        assert!(f.matches(&event("2026-12-05T00:00:00.000000Z")));
        f.action = "revoked".into();
        assert!(!f.matches(&event("2026-12-05T00:00:00.000000Z")));
    }
}
