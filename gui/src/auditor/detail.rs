//! The selected audit event in words: each field under its label in the operator's language
//! (the event's own fields, then the keys of its details), readable times, and the raw JSON
//! only under an expander.

use egui::RichText;
use station::AuditEvent;

use crate::i18n::{self, Lang};
use crate::notation::card_serial;

/// An RFC 3339 time of the audit log (always UTC, `…Z`) as `DD.MM.YYYY HH:MM:SS UTC`; the
/// fraction of a second is dropped. Text of another shape comes back as it is.
pub fn timestamp(rfc3339: &str) -> String {
    let b = rfc3339.as_bytes();
    let (Some(day), Some(clock)) = (rfc3339.get(..10), rfc3339.get(11..19)) else {
        return rfc3339.to_owned();
    };
    if b[10] != b'T' || b[13] != b':' || b[16] != b':' || i18n::date(day) == day {
        return rfc3339.to_owned();
    }
    let zone = if rfc3339.ends_with('Z') || rfc3339.ends_with("+00:00") {
        "UTC".to_owned()
    } else {
        // An offset other than UTC is stated as it is written.
        let off = rfc3339.get(rfc3339.len().saturating_sub(6)..).unwrap_or("");
        format!("UTC{off}")
    };
    format!("{} {clock} {zone}", i18n::date(day))
}

/// The words for catalogue id `id`, or `None` when no catalogue has it.
fn words(lang: Lang, id: &str) -> Option<String> {
    i18n::has(id).then(|| i18n::tr(lang, id))
}

/// A label for details key `key`: the catalogue's `audit-key-<key>`, else the key with its
/// underscores as spaces.
fn key_label(lang: Lang, key: &str) -> String {
    words(lang, &format!("audit-key-{key}")).unwrap_or_else(|| key.replace('_', " "))
}

/// A details value in words: strings as they are (dates and times readable), lists one
/// per line, nested objects as compact JSON.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) if s.len() >= 19 && s.as_bytes()[10] == b'T' => timestamp(s),
        serde_json::Value::String(s) => i18n::date(s),
        serde_json::Value::Null => "-".into(),
        serde_json::Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join("\n"),
        other => other.to_string(),
    }
}

/// The action in words (`audit-action-<action>` with the dots as dashes), with its name.
pub fn action_text(lang: Lang, action: &str) -> String {
    match words(lang, &format!("audit-action-{}", action.replace('.', "-"))) {
        Some(w) => format!("{w} ({action})"),
        None => action.to_owned(),
    }
}

/// The named fields of `e`, (label, value), in `lang`: the event's own fields, then each key
/// of its details.
pub fn fields(lang: Lang, e: &AuditEvent) -> Vec<(String, String)> {
    let role = words(lang, &format!("role-{}", e.role)).unwrap_or_else(|| e.role.clone());
    let mut out = vec![
        (i18n::tr(lang, "audit-field-seq"), e.seq.to_string()),
        (i18n::tr(lang, "audit-field-time"), timestamp(&e.time)),
        (i18n::tr(lang, "audit-field-operator"), e.operator.clone()),
        (i18n::tr(lang, "audit-field-role"), role),
        (i18n::tr(lang, "audit-field-station"), e.station.clone()),
        (
            i18n::tr(lang, "audit-field-action"),
            action_text(lang, &e.action),
        ),
        (i18n::tr(lang, "audit-field-object"), e.object.clone()),
    ];
    match serde_json::from_str::<serde_json::Value>(&e.details) {
        Ok(serde_json::Value::Object(map)) => {
            out.extend(map.iter().map(|(k, v)| {
                let text = match (k.as_str(), v) {
                    // A card serial in the desk's one notation, whatever form it was logged in.
                    ("card" | "card_serial", serde_json::Value::String(s)) => card_serial(s),
                    _ => value_text(v),
                };
                (key_label(lang, k), text)
            }));
        }
        Ok(serde_json::Value::Null) | Err(_) => {}
        Ok(other) => out.push((i18n::tr(lang, "audit-col-details"), value_text(&other))),
    }
    out
}

/// The detail pane of the selected event, or a hint to select one.
pub fn ui(ui: &mut egui::Ui, event: Option<&AuditEvent>) {
    let lang = i18n::current(ui.ctx());
    ui.heading(i18n::t(ui, "audit-detail-heading"));
    let Some(e) = event else {
        ui.label(RichText::new(i18n::t(ui, "audit-detail-none")).weak());
        return;
    };
    egui::ScrollArea::vertical()
        .id_salt("audit-detail-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            egui::Grid::new("audit-detail")
                .num_columns(2)
                .striped(true)
                .show(ui, |ui| {
                    for (label, value) in fields(lang, e) {
                        ui.label(RichText::new(label).strong());
                        ui.add(egui::Label::new(value).wrap());
                        ui.end_row();
                    }
                });
            egui::CollapsingHeader::new(i18n::t(ui, "audit-detail-raw"))
                .id_salt("audit-detail-raw")
                .show(ui, |ui| {
                    let pretty = serde_json::from_str::<serde_json::Value>(&e.details)
                        .ok()
                        .and_then(|v| serde_json::to_string_pretty(&v).ok())
                        .unwrap_or_else(|| e.details.clone());
                    ui.add(egui::Label::new(RichText::new(pretty).monospace().small()).wrap());
                    ui.label(RichText::new(format!("SHA-256 {}", hex(&e.hash))).small());
                });
        });
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_dd_mm_yyyy_hh_mm_ss_utc() {
        assert_eq!(
            timestamp("2026-12-02T10:11:12.123456Z"),
            "02.12.2026 10:11:12 UTC"
        );
        assert_eq!(timestamp("2026-12-02T10:11:12Z"), "02.12.2026 10:11:12 UTC");
        assert_eq!(
            timestamp("2026-12-02T10:11:12+05:00"),
            "02.12.2026 10:11:12 UTC+05:00"
        );
        assert_eq!(timestamp("yesterday"), "yesterday");
    }

    /// The card services' events read in words too, in every language; an action without
    /// words keeps its name.
    #[test]
    fn card_service_actions_are_in_words_with_their_names() {
        assert_eq!(
            action_text(Lang::En, "renewal.rolled-back"),
            "Certificate renewal undone (renewal.rolled-back)"
        );
        assert_eq!(
            action_text(Lang::En, "certificates.mirrored"),
            "Certificates renewed at another office recorded (certificates.mirrored)"
        );
        for action in [
            "renewal.started",
            "renewal.completed",
            "card.unblocked",
            "document.mirrored",
            "address.ended",
        ] {
            for lang in [Lang::En, Lang::Ru, Lang::UzCyrl, Lang::UzLatn] {
                let text = action_text(lang, action);
                assert!(
                    text.ends_with(&format!(" ({action})")) && text.len() > action.len() + 3,
                    "{lang:?} {action}: {text}"
                );
            }
        }
        assert_eq!(action_text(Lang::En, "no.such-action"), "no.such-action");
    }

    #[test]
    fn an_issuance_event_has_named_fields_in_the_operators_language() {
        let e = AuditEvent {
            seq: 42,
            time: "2026-12-02T10:11:12.5Z".into(),
            operator: "clerk".into(),
            role: "clerk".into(),
            station: "tas-01".into(),
            action: "issuance.completed".into(),
            object: "document:AA1234567".into(),
            details:
                r#"{"card":"0x0000abcd","certificates":[3,4],"job":7,"pinfl":"31405850000012"}"#
                    .into(),
            prev_hash: [0; 32],
            hash: [1; 32],
        };
        let en = fields(Lang::En, &e);
        let get = |f: &[(String, String)], k: &str| {
            f.iter()
                .find(|(l, _)| l == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{k} in {f:?}"))
        };
        assert_eq!(get(&en, "Time (UTC)"), "02.12.2026 10:11:12 UTC");
        assert_eq!(get(&en, "PINFL"), "31405850000012");
        assert_eq!(get(&en, "Card serial"), "0000ABCD");
        assert_eq!(get(&en, "Certificates"), "3\n4");
        assert_eq!(get(&en, "Action"), "Card issued (issuance.completed)");
        let ru = fields(Lang::Ru, &e);
        assert_eq!(ru.len(), en.len());
        assert!(ru.iter().all(|(l, _)| !l.contains('_')), "{ru:?}");
        assert_ne!(ru[1].0, en[1].0, "labels translated");
        assert!(!en.iter().any(|(l, _)| l == "pinfl"), "no raw key names");
    }
}
