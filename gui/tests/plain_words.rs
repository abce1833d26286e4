//! A refusal by the station reaches a clerk in plain words from the catalogue, in the clerk's
//! language, with no internal names and no Retry: the clerk's account is disabled (by a
//! ca-admin, through the station) while they are logged in, and their next look-up is refused
//! by the station's rule (audited `operator.refused`).

mod common;

use std::time::Duration;

use common::*;
use gui::i18n::{tr, Lang};
use zeroize::Zeroizing;

fn admin(st: &mut station::Station) -> station::session::Session {
    st.authorize(
        "admin",
        &Zeroizing::new(ADMIN_PASSWORD.into()),
        "add operators",
        &[registry::Role::CaAdmin],
    )
    .expect("admin")
}

#[test]
fn a_station_refusal_is_shown_to_a_clerk_in_plain_words_in_two_languages_without_retry() {
    for (lang, name) in [(Lang::En, "clerk-plain-en"), (Lang::Ru, "clerk-plain-ru")] {
        {
            let mut st = station::Station::open(&rig().data).expect("open");
            let a = admin(&mut st);
            let pw = Zeroizing::new(CLERK_PASSWORD.to_owned());
            station::operators::add(&mut st, &a, name, registry::Role::Clerk, &pw).expect("add");
        }
        let mut h = harness(options(None, false), [1280.0, 1000.0]);
        click(&mut h, lang.native_name());
        h.step();
        type_into(&mut h, &tr(lang, "login-operator"), name);
        type_into(&mut h, &tr(lang, "login-password"), CLERK_PASSWORD);
        click(&mut h, &tr(lang, "login-button"));
        let heading = tr(lang, "workspace-clerk");
        wait_for(&mut h, &heading, Duration::from_secs(30), |h| {
            has_label(h, &heading)
        });
        {
            let mut st = station::Station::open(&rig().data).expect("open");
            let a = admin(&mut st);
            station::operators::disable(&mut st, &a, name).expect("disable");
        }
        type_into(&mut h, &tr(lang, "lookup-document"), "AA0000001");
        click(&mut h, &tr(lang, "lookup-find-document"));
        // What happened, and what to do next, each on its own line.
        let (message, next) = (
            tr(lang, "station-error-not-permitted"),
            tr(lang, "station-error-not-permitted-next"),
        );
        wait_for(&mut h, "the refusal", Duration::from_secs(30), |h| {
            has_label(h, &message) && has_label(h, &next)
        });
        // Plain words: not the station's English rule, not its internal names.
        for internal in ["not permitted", "disabled", "look up documents"] {
            assert!(
                !has_label_containing(&h, internal),
                "{}: {internal:?} shown",
                lang.tag()
            );
        }
        assert!(
            !has_label(&h, &tr(lang, "issue-retry")),
            "{}: no Retry for a refusal",
            lang.tag()
        );
        // The station's own sentence is kept under Details.
        click(&mut h, &tr(lang, "station-error-details"));
        h.step();
        assert!(
            has_label_containing(&h, &format!("{name}: operator name or password is wrong")),
            "{}: the station's words under Details",
            lang.tag()
        );
        // The station did refuse it, by its rule (the audit log is the oracle).
        let reg = registry::Registry::open_read_only(rig().data.join("registry.sqlite"))
            .expect("registry");
        let refused = reg
            .audit_events(1, u64::MAX)
            .expect("audit")
            .into_iter()
            .any(|e| e.action == "operator.refused" && e.operator == name);
        assert!(refused, "{name}'s look-up refused by the station");
    }
}
