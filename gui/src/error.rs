//! The GUI's errors: what can go wrong outside the station core (window, photo file), and the
//! station's errors as the operator reads them ([`Shown`]): plain words in the operator's
//! language from the catalogue (one message per [`StationError`] kind, the field named by its
//! label), what to do next, the technical text only under "Details", and whether Retry is
//! offered ([`retry_can_succeed`], the one place that decides it).

use std::path::PathBuf;

use egui::{Color32, RichText};
use station::error::{ErrorKind as K, StationError};

use crate::i18n::{self, tr, tr_args, Lang};

#[derive(Debug, thiserror::Error)]
pub enum GuiError {
    /// The photo file could not be read or decoded.
    #[error("photo: {path}: {reason}")]
    Photo { path: PathBuf, reason: String },
    /// The native window could not be opened.
    #[error("window: {0}")]
    Window(String),
    /// The station worker thread is gone (it panicked or was never started).
    #[error("the station worker stopped; restart the GUI")]
    WorkerGone,
}

/// A station error as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shown {
    /// What happened, in plain words (the field by its label, no internal names).
    pub message: String,
    /// What to do now.
    pub next: String,
    /// The station's own technical text (English, with internal names): under "Details".
    pub details: String,
    /// Repeating the same action may succeed (a card pulled, a network down, a busy file).
    pub retry: bool,
}

impl Shown {
    /// Message and next step as one line (where only text can be shown).
    pub fn text(&self) -> String {
        format!("{} {}", self.message, self.next)
    }
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

/// Whether repeating the action that failed with `e` can succeed. Not for validation errors,
/// refusals by a rule (conflicts, dual control, a centre's refusal) or authorization: the same
/// input is refused again. A card or reader, the network, a file or the database (busy,
/// locked) can change.
pub fn retry_can_succeed(e: &StationError) -> bool {
    match e.kind() {
        K::Card | K::CentreUnreachable | K::Io | K::Database | K::Other => true,
        K::Invalid
        | K::NotInitialised
        | K::AlreadyInitialised
        | K::Config
        | K::Insecure
        | K::Hsm
        | K::Ca
        | K::Profile
        | K::NotFound
        | K::NotPermitted
        | K::Conflict
        | K::HolderDiffers
        | K::CentreRefused => false,
    }
}

/// The catalogue id (without `-next`) of the message for `e`'s kind.
pub fn message_id(e: &StationError) -> &'static str {
    match e.kind() {
        K::Invalid => "station-error-invalid",
        K::NotInitialised => "station-error-not-initialised",
        K::AlreadyInitialised => "station-error-already-initialised",
        K::Config => "station-error-config",
        K::Io => "station-error-io",
        K::Insecure => "station-error-insecure",
        K::Hsm => "station-error-hsm",
        K::Ca => "station-error-ca",
        K::Profile => "station-error-profile",
        K::Card => "station-error-card",
        K::Database => "station-error-database",
        K::NotFound => "station-error-not-found",
        K::NotPermitted => "station-error-not-permitted",
        K::Conflict => "station-error-conflict",
        K::HolderDiffers => "station-error-holder-differs",
        K::CentreUnreachable => "station-error-centre-unreachable",
        K::CentreRefused => "station-error-centre-refused",
        K::Other => "station-error-other",
    }
}

/// The catalogue id of a refusal of the national centre a clerk can act on, by its rule
/// (centre_api::rules); others keep the general words.
fn centre_rule_id(rule: &str) -> Option<&'static str> {
    use centre_api::rules as r;
    Some(match rule {
        r::HOLDER_HAS_ACTIVE_CARD => "centre-refused-active-card",
        r::HOLDER_HAS_PENDING_ISSUANCE => "centre-refused-pending-issuance",
        r::STATION_DISABLED => "centre-refused-station-disabled",
        r::NO_NUMBERS_LEFT => "centre-refused-no-numbers",
        r::DOCUMENT_NOT_ACTIVE | r::DOCUMENT_SUSPENDED => "centre-refused-document-not-active",
        r::SUSPENSION_LIMIT_EXCEEDED => "centre-refused-suspension-limit",
        r::DOCUMENT_HELD_FOR_REPLACEMENT => "centre-refused-held-for-replacement",
        r::DOCUMENT_NOT_FOUND => "centre-refused-document-not-found",
        r::LOOKUP_LIMIT => "centre-refused-lookup-limit",
        // A route the centre does not have (an empty 404, `station::centre::client`): it is
        // older. A proxy's 404 page keeps `http-404` and the general words.
        station::centre::client::ROUTE_UNKNOWN => "centre-refused-older",
        _ => return None,
    })
}

/// The label of a field the station names: the form's label, else the catalogue's
/// `station-field-<key>`, else "a value" — never the internal key.
pub fn field_label(lang: Lang, key: &str) -> String {
    if let Some(id) = crate::form::label_id_of(key) {
        return tr(lang, id);
    }
    let last = key.rsplit('.').next().unwrap_or(key).replace('_', "-");
    let id = format!("station-field-{last}");
    if i18n::has(&id) {
        tr(lang, &id)
    } else {
        tr(lang, "station-field-unknown")
    }
}

/// `e` in plain words, in `lang`.
pub fn shown(lang: Lang, e: &StationError) -> Shown {
    if let StationError::CentreRefused { refusal, .. } = e {
        if let Some(id) = centre_rule_id(&refusal.rule) {
            let office = refusal.office.clone().unwrap_or_else(|| "?".into());
            let args = [("office", i18n::s(office))];
            return Shown {
                message: tr_args(lang, id, &args),
                next: tr_args(lang, &format!("{id}-next"), &args),
                details: e.to_string(),
                retry: retry_can_succeed(e),
            };
        }
    }
    let id = message_id(e);
    let field = e.field().map(|f| field_label(lang, f)).unwrap_or_default();
    let args = [("field", i18n::s(field))];
    Shown {
        message: tr_args(lang, id, &args),
        next: tr_args(lang, &format!("{id}-next"), &args),
        details: e.to_string(),
        retry: retry_can_succeed(e),
    }
}

/// `s` in red with its next step, and the technical text under a "Details" expander.
pub fn ui(ui: &mut egui::Ui, s: &Shown) {
    ui.add(egui::Label::new(RichText::new(&s.message).color(Color32::RED)).wrap());
    ui.add(egui::Label::new(RichText::new(&s.next).strong()).wrap());
    details_ui(ui, &s.details);
}

/// The technical text under a collapsed "Details" header.
pub fn details_ui(ui: &mut egui::Ui, details: &str) {
    if details.is_empty() {
        return;
    }
    egui::CollapsingHeader::new(i18n::t(ui, "station-error-details"))
        .id_salt(("station-error-details", details))
        .show(ui, |ui| {
            ui.add(egui::Label::new(RichText::new(details).monospace().small()).wrap());
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> Vec<StationError> {
        vec![
            StationError::invalid("address.registered_until", "must be after registered_on"),
            StationError::NotInitialised {
                data_dir: "/d".into(),
            },
            StationError::AlreadyInitialised {
                data_dir: "/d".into(),
            },
            StationError::Config {
                path: "/d/station.toml".into(),
                reason: "bad".into(),
            },
            StationError::Io {
                path: "/d/x".into(),
                reason: "disk full".into(),
            },
            StationError::Insecure {
                path: "/d".into(),
                rule: "mode 0755".into(),
            },
            StationError::Card {
                step: Some("write EF 011D".into()),
                message: "6A82".into(),
            },
            StationError::NotFound("document AA0000001".into()),
            StationError::NotPermitted("clerk: account disabled".into()),
            StationError::Conflict("holder 1 has an active card".into()),
            StationError::HolderDiffers {
                pinfl: "31405850000012".into(),
                changes: vec![],
            },
            StationError::CentreUnreachable {
                url: "https://c".into(),
                reason: "timeout".into(),
            },
            StationError::Other("keyCompromise FF D8 FF".into()),
        ]
    }

    #[test]
    fn retry_is_offered_only_where_repeating_can_succeed() {
        let retry: Vec<bool> = kinds().iter().map(retry_can_succeed).collect();
        assert_eq!(
            retry,
            [
                false, false, false, false, true, false, true, false, false, false, false, true,
                true
            ]
        );
        // Validation, a rule and authorization: never.
        for e in [
            StationError::invalid("pinfl", "must be 14 digits"),
            StationError::Conflict("x".into()),
            StationError::NotPermitted("x".into()),
        ] {
            assert!(!shown(Lang::En, &e).retry, "{e}");
        }
    }

    #[test]
    fn each_kind_has_plain_words_in_each_language_and_the_technical_text_only_in_details() {
        let internal = [
            "address.registered_until",
            "registered_on",
            "write EF 011D",
            "FF D8 FF",
            "keyCompromise",
            "holder 1",
            "station-error",
        ];
        for lang in Lang::ALL {
            for e in kinds() {
                let s = shown(lang, &e);
                assert!(!s.message.is_empty() && !s.next.is_empty(), "{e}");
                for word in internal {
                    assert!(
                        !s.message.contains(word) && !s.next.contains(word),
                        "{}: {e}: {s:?}",
                        lang.tag()
                    );
                }
                assert_eq!(s.details, e.to_string());
            }
        }
        let s = shown(Lang::En, &kinds()[0]);
        assert!(s.message.contains("Registered until"), "{s:?}");
        let ru = shown(Lang::Ru, &kinds()[0]);
        assert_ne!(ru.message, s.message);
    }

    #[test]
    fn a_field_is_named_by_its_label() {
        assert_eq!(field_label(Lang::En, "pinfl"), "PINFL");
        assert_eq!(field_label(Lang::En, "serial"), "Certificate serial");
        assert_eq!(field_label(Lang::En, "no_such_key"), "A value");
    }

    #[test]
    fn the_centres_holder_data_refusal_offers_the_confirmed_update_and_no_other_refusal_does() {
        use crate::worker::explain_issue_error;
        let refused = |rule: &str| StationError::CentreRefused {
            status: 409,
            refusal: centre_api::Refusal {
                error: "holder 31234567890123 is registered with other data in: surname".into(),
                rule: rule.into(),
                office: None,
            },
        };
        for l in Lang::ALL {
            let f = explain_issue_error(l, &refused(centre_api::rules::HOLDER_DATA_DIFFERS));
            assert!(f.confirm_update && !f.retry, "{f:?}");
            assert_eq!(f.message, tr(l, "issue-holder-differs-centre"));
            assert!(
                f.details.contains("surname"),
                "the fields are in the details"
            );
            let f = explain_issue_error(l, &refused(centre_api::rules::HOLDER_HAS_ACTIVE_CARD));
            assert!(!f.confirm_update, "{f:?}");
        }
    }

    #[test]
    fn a_centre_refusal_a_clerk_can_act_on_is_said_in_its_own_words_naming_the_office() {
        let refused = |rule: &str, office: Option<&str>| StationError::CentreRefused {
            status: 409,
            refusal: centre_api::Refusal {
                error:
                    "holder 31234567890123 has an active card (AA0000003) issued by office SAM01"
                        .into(),
                rule: rule.into(),
                office: office.map(str::to_owned),
            },
        };
        let general = tr(Lang::En, "station-error-centre-refused");
        for l in Lang::ALL {
            let s = shown(
                l,
                &refused(centre_api::rules::HOLDER_HAS_ACTIVE_CARD, Some("SAM01")),
            );
            assert!(s.message.contains("SAM01"), "{}: {s:?}", l.tag());
            assert!(!s.retry);
            assert!(s.details.contains("holder-has-active-card"));
            for rule in [
                centre_api::rules::HOLDER_HAS_PENDING_ISSUANCE,
                centre_api::rules::STATION_DISABLED,
                centre_api::rules::NO_NUMBERS_LEFT,
                centre_api::rules::DOCUMENT_NOT_ACTIVE,
                centre_api::rules::SUSPENSION_LIMIT_EXCEEDED,
                centre_api::rules::DOCUMENT_HELD_FOR_REPLACEMENT,
            ] {
                let s = shown(l, &refused(rule, Some("SAM01")));
                assert!(
                    !s.message.is_empty() && s.message != general && !s.next.is_empty(),
                    "{rule}: {s:?}"
                );
            }
        }
        // A rule the clerk cannot act on keeps the general words.
        let s = shown(Lang::En, &refused(centre_api::rules::JOB_CONFLICT, None));
        assert_eq!(s.message, general);
        // A route the centre does not have is an older centre; a proxy's 404 page is not.
        let s = shown(
            Lang::En,
            &refused(station::centre::client::ROUTE_UNKNOWN, None),
        );
        assert_eq!(s.message, tr(Lang::En, "centre-refused-older"));
        let s = shown(Lang::En, &refused("http-404", None));
        assert_eq!(s.message, general);
    }

    #[test]
    fn a_recall_the_centre_did_not_flag_is_said_in_plain_words() {
        use crate::worker::explain_issue_error;
        let e = StationError::invalid(
            "reason",
            "document AA0000012 is not flagged for replacement at the national centre",
        );
        for l in Lang::ALL {
            let f = explain_issue_error(l, &e);
            assert_eq!(f.message, tr(l, "replace-recalled-refused"), "{}", l.tag());
            assert_eq!(f.next, tr(l, "replace-recalled-refused-next"));
            assert!(!f.retry);
            assert_eq!(f.details, e.to_string());
        }
    }

    #[test]
    fn an_issuance_refused_by_rule_or_authorization_offers_no_retry() {
        use crate::worker::explain_issue_error;
        let e = StationError::NotPermitted("clerk: session ended: operator is disabled".into());
        let f = explain_issue_error(Lang::En, &e);
        assert!(!f.retry);
        assert!(!f.message.contains("disabled"), "{f:?}");
        assert_eq!(f.details, e.to_string());
        let e = StationError::Conflict("holder 1 has an active card".into());
        let f = explain_issue_error(Lang::Ru, &e);
        assert!(!f.retry);
        assert!(!f.message.contains("holder 1"), "{f:?}");
        let e = StationError::Card {
            step: Some("write EF 011D".into()),
            message: "card removed".into(),
        };
        let f = explain_issue_error(Lang::En, &e);
        assert!(f.retry, "a pulled card may be inserted again");
        assert!(!f.message.contains("EF 011D") && !f.next.contains("EF 011D"));
        assert!(f.details.contains("write EF 011D"));
    }
}
