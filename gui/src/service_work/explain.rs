//! A failed card service in plain words for the clerk, in their language: what happened, what
//! to do next, whether pressing Retry can help, and the station's own sentence (with its field
//! names and status words) kept for a "Details" expander only.

use station::error::StationError;
use station::services::identify::{Blocker, Service};

use crate::i18n::{self, tr, tr_args, Lang};

/// A failed request, for the screen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceFailure {
    pub message: String,
    pub next: String,
    /// Repeating the same request can succeed (the card was pulled, the reader was busy, a
    /// PIN was mistyped).
    pub retry: bool,
    /// The station's words, for the Details expander.
    pub details: String,
}

/// `e` as `message` and `next`; whether Retry is offered is the desk's one policy for the
/// error's kind ([`crate::error::retry_can_succeed`]).
fn failure(lang: Lang, message: &str, next: &str, e: &StationError) -> ServiceFailure {
    words(tr(lang, message), tr(lang, next), e)
}

fn words(message: String, next: String, e: &StationError) -> ServiceFailure {
    ServiceFailure {
        message,
        next,
        retry: crate::error::retry_can_succeed(e),
        details: e.to_string(),
    }
}

/// A card fault that repeating cannot mend (a blocked PIN, pcscd itself).
fn final_failure(lang: Lang, message: &str, next: &str, e: &StationError) -> ServiceFailure {
    ServiceFailure {
        retry: false,
        ..failure(lang, message, next, e)
    }
}

/// Plain words for `e`.
pub fn explain(lang: Lang, e: &StationError) -> ServiceFailure {
    match e {
        StationError::Card { message, .. } => card(lang, message, e),
        StationError::Conflict(m) => conflict(lang, m, e),
        StationError::Invalid { field, rule } => invalid(lang, field, rule, e),
        StationError::NotFound(_) => failure(lang, "svc-err-not-found", "svc-next-read-again", e),
        StationError::NotPermitted(_) => {
            failure(lang, "svc-err-not-permitted", "svc-next-clerk", e)
        }
        StationError::Hsm(_) => failure(lang, "svc-err-hsm", "svc-next-admin", e),
        StationError::CentreRefused { .. } => {
            let s = crate::error::shown(lang, e);
            words(s.message, s.next, e)
        }
        StationError::CentreUnreachable { .. } => failure(
            lang,
            "svc-err-centre-unreachable",
            "svc-next-retry-later",
            e,
        ),
        _ => failure(lang, "svc-err-other", "svc-next-admin", e),
    }
}

/// Plain words for `e` ending `service`: [`explain`], except that a renewal which lost the
/// national centre is not said to have changed nothing — the card may already hold its new keys
/// and the journaled job goes on at the next try.
pub fn explain_service(lang: Lang, service: Service, e: &StationError) -> ServiceFailure {
    match (service, e) {
        (Service::Renew, StationError::CentreUnreachable { .. }) => {
            failure(lang, "svc-err-renew-centre", "svc-next-renew-retry", e)
        }
        _ => explain(lang, e),
    }
}

/// The card or the reader failed: the pcsc and personalization errors' words.
fn card(lang: Lang, message: &str, e: &StationError) -> ServiceFailure {
    let has = |w: &str| message.contains(w);
    if has("wrong PIN") {
        let tries = message
            .split("wrong PIN: ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?");
        return words(
            tr_args(lang, "svc-err-wrong-pin", &[("tries", i18n::s(tries))]),
            tr(lang, "svc-next-pin-again"),
            e,
        );
    }
    if has("PIN is blocked") {
        return final_failure(lang, "svc-err-pin-blocked", "svc-next-unblock", e);
    }
    if has("card removed") || has("card was reset") {
        return failure(lang, "svc-err-card-removed", "svc-next-insert-retry", e);
    }
    if has("no card in reader") || has("no reader named") || has("reader") && has("is gone") {
        return failure(lang, "svc-err-no-card", "svc-next-insert-retry", e);
    }
    if has("in use by another application") {
        return failure(lang, "svc-err-card-busy", "svc-next-retry", e);
    }
    if has("pcscd") {
        return final_failure(lang, "svc-err-pcsc", "svc-next-admin", e);
    }
    failure(lang, "svc-err-card", "svc-next-card-retry", e)
}

/// A refusal: the station's sentence starts with the thing it is about (`document status:`).
fn conflict(lang: Lang, m: &str, e: &StationError) -> ServiceFailure {
    let about = m.split(':').next().unwrap_or_default();
    let (message, next) = match about {
        "document status" => ("svc-err-document-status", "svc-next-read-again"),
        "card serial" | "document number" => ("svc-err-not-this-card", "svc-next-other-card"),
        "card lifecycle" => ("svc-err-not-locked", "svc-next-other-card"),
        a if a.starts_with("certificate ") => ("svc-err-certificates", "svc-next-admin"),
        "pin" => ("svc-err-pin-blocked", "svc-next-unblock"),
        "suspension_limit_days" => ("svc-err-limit", "svc-next-revoke"),
        "date_of_expiry" => ("svc-err-expired", "svc-next-replace"),
        "esign CA" => ("svc-err-esign-expiring", "svc-next-admin"),
        "kind" => ("svc-err-no-temporary", "svc-next-read-again"),
        "card" => ("svc-err-already-returned", "svc-next-read-again"),
        _ => ("svc-err-refused", "svc-next-read-again"),
    };
    failure(lang, message, next, e)
}

/// Input the station did not take: named by the field's label.
fn invalid(lang: Lang, field: &str, rule: &str, e: &StationError) -> ServiceFailure {
    let id = match field {
        "identity_confirmed" => "svc-err-identity",
        "pin" => "svc-err-pin-rule",
        "address.registered_on" => "svc-err-registered-on",
        "ended_on" => "svc-err-ended-on",
        "pin_letter" | "puk" => "svc-err-letter",
        f if f.starts_with("address") => "svc-err-address",
        _ => "svc-err-invalid",
    };
    words(
        tr_args(lang, id, &[("rule", i18n::s(rule))]),
        tr(lang, "svc-next-correct"),
        e,
    )
}

/// Why a service does not apply to the card now, in plain words.
pub fn blocker(lang: Lang, b: &Blocker) -> String {
    let st = |s: &str| ("status", i18n::s(i18n::status_word(lang, s)));
    match b {
        Blocker::DocumentStatus(s) => tr_args(lang, "svc-why-status", &[st(s)]),
        Blocker::CardNotLocked(_) => tr(lang, "svc-why-not-locked"),
        Blocker::PinBlocked => tr(lang, "svc-why-pin-blocked"),
        Blocker::Expired(d) => {
            tr_args(lang, "svc-why-expired", &[("date", i18n::s(i18n::date(d)))])
        }
        Blocker::SuspensionLimit { days, since } => tr_args(
            lang,
            "svc-why-limit",
            &[
                ("days", i18n::n(*days)),
                (
                    "since",
                    i18n::s(i18n::date(since.get(..10).unwrap_or(since))),
                ),
            ],
        ),
        Blocker::DocumentInUse(s) => tr_args(lang, "svc-why-in-use", &[st(s)]),
        Blocker::AlreadyReturned(at) => tr_args(
            lang,
            "svc-why-returned",
            &[("date", i18n::s(i18n::date(at.get(..10).unwrap_or(at))))],
        ),
        Blocker::NoTemporaryAddress => tr(lang, "svc-why-no-temporary"),
        Blocker::IssuedElsewhere(office) => tr_args(
            lang,
            "svc-why-elsewhere",
            &[("office", i18n::s(office.clone()))],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict_of(m: &str) -> ServiceFailure {
        explain(Lang::En, &StationError::Conflict(m.into()))
    }

    #[test]
    fn refusals_are_plain_words_without_retry_and_keep_the_station_words_as_details() {
        let m = "suspension_limit_days: document AA0000001 was suspended at 2026-01-01T00:00:00Z, \
                 40 day(s) ago; a suspension can be resumed within 30 day(s)";
        let f = conflict_of(m);
        assert_eq!(f.message, "The suspension is older than the allowed limit.");
        assert!(f.next.contains("Revoke the document"), "{f:?}");
        assert!(!f.retry, "repeating cannot succeed");
        assert!(f.details.contains("suspension_limit_days"));
        for internal in ["suspension_limit_days", "_", "AA0000001"] {
            assert!(!f.message.contains(internal) && !f.next.contains(internal));
        }
        let f = conflict_of(
            "card serial: the card in the reader is 5C000001, document AA1 is on card 5C000002",
        );
        assert!(f.message.contains("does not belong"), "{f:?}");
        assert!(!f.retry);
    }

    #[test]
    fn a_refusal_by_the_centre_says_why_without_retry_and_keeps_its_rule_as_details() {
        let e = StationError::CentreRefused {
            status: 409,
            refusal: centre_api::Refusal {
                error: "document AA0000007 is not active at the centre (suspended)".into(),
                rule: "document-not-active".into(),
                office: None,
            },
        };
        for l in Lang::ALL {
            let f = explain(l, &e);
            assert_eq!(f.message, tr(l, "centre-refused-document-not-active"));
            assert_eq!(f.next, tr(l, "centre-refused-document-not-active-next"));
            assert!(!f.retry, "repeating the same request gets the same refusal");
            assert!(f.details.contains("document-not-active") || f.details.contains("suspended"));
        }
    }

    #[test]
    fn a_renewal_that_lost_the_centre_asks_to_keep_the_holder_and_retry() {
        let e = StationError::CentreUnreachable {
            url: "https://centre.example:8443".into(),
            reason: "connection refused".into(),
        };
        for l in Lang::ALL {
            let f = explain_service(l, Service::Renew, &e);
            assert_eq!(f.message, tr(l, "svc-err-renew-centre"));
            assert_eq!(f.next, tr(l, "svc-next-renew-retry"));
            assert!(f.retry, "the journaled renewal goes on at the next try");
            let other = explain_service(l, Service::Suspend, &e);
            assert_eq!(other.message, tr(l, "svc-err-centre-unreachable"));
        }
    }

    #[test]
    fn card_faults_offer_retry_when_it_can_succeed() {
        let card = |m: &str| {
            explain(
                Lang::Ru,
                &StationError::Card {
                    step: Some("card.install".into()),
                    message: m.into(),
                },
            )
        };
        let f = card("card removed");
        assert!(f.retry);
        assert_eq!(f.message, tr(Lang::Ru, "svc-err-card-removed"));
        let f = card("verify the holder's PIN: wrong PIN: 2 tries left");
        assert!(f.retry);
        assert!(f.message.contains('2'), "{f:?}");
        assert!(!f.message.contains("63C"), "no status words: {f:?}");
        let f = card("PIN is blocked");
        assert!(!f.retry, "a blocked PIN needs an unblock, not a retry");
    }

    #[test]
    fn a_service_of_the_issuing_office_names_it_in_each_language() {
        let b = Blocker::IssuedElsewhere("SAM02".into());
        let en = blocker(Lang::En, &b);
        assert!(en.contains("SAM02") && en.contains("issued"), "{en}");
        for l in Lang::ALL {
            let t = blocker(l, &b);
            assert!(t.contains("SAM02"), "{}: {t}", l.tag());
            if l != Lang::En {
                assert_ne!(t, en, "{} is translated", l.tag());
            }
        }
    }

    #[test]
    fn a_resume_beyond_the_limit_says_why_in_each_language() {
        let b = Blocker::SuspensionLimit {
            days: 30,
            since: "2026-01-02T10:00:00Z".into(),
        };
        let en = blocker(Lang::En, &b);
        assert!(
            en.contains("02.01.2026") && en.contains("30") && en.contains("revoked"),
            "{en}"
        );
        for l in Lang::ALL {
            let t = blocker(l, &b);
            assert!(t.contains("02.01.2026"), "{}: {t}", l.tag());
            if l != Lang::En {
                assert_ne!(t, en, "{} is translated", l.tag());
            }
        }
    }
}
