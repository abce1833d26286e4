//! The interface in each language: chosen on the log-in screen, the log-in and clerk screens
//! drawn from that language's catalogue, and the choice remembered for the operator.

mod common;

use std::time::Duration;

use common::*;
use gui::i18n::{tr, Lang};

#[test]
fn log_in_and_clerk_screens_in_each_language_and_the_choice_is_remembered() {
    for lang in Lang::ALL {
        let mut h = harness(options(None, false), [1280.0, 1000.0]);
        // The log-in screen starts in English; the operator picks a language by its own name.
        click(&mut h, lang.native_name());
        h.step();
        for id in [
            "login-heading",
            "login-operator",
            "login-password",
            "login-button",
        ] {
            let text = tr(lang, id);
            assert!(
                has_label(&h, &text),
                "{}: {id} = {text:?} shown",
                lang.tag()
            );
        }
        type_into(&mut h, &tr(lang, "login-operator"), L10N_CLERK);
        type_into(&mut h, &tr(lang, "login-password"), CLERK_PASSWORD);
        click(&mut h, &tr(lang, "login-button"));
        let heading = tr(lang, "workspace-clerk");
        wait_for(&mut h, &heading, Duration::from_secs(30), |h| {
            has_label(h, &heading)
        });
        for id in [
            "field-pinfl",
            "field-surname",
            "field-surname-cyrillic",
            "field-date-of-birth",
            "field-region",
            "field-district",
            "sex-male",
            "sex-female",
            "address-permanent",
            "lookup-find-holder",
            "photo-load",
            "issue-button",
            "logout",
        ] {
            let text = tr(lang, id);
            assert!(
                has_label(&h, &text),
                "{}: {id} = {text:?} shown",
                lang.tag()
            );
        }
        if lang != Lang::En {
            assert!(
                !has_label(&h, "Issue card"),
                "{}: no English left",
                lang.tag()
            );
        }
        // A date typed in this language's screen is DD.MM.YYYY too.
        type_into(&mut h, &tr(lang, "field-date-of-birth"), "15051985");
        assert_eq!(h.state().clerk.form.date_of_birth, "15.05.1985");
        // The form holds data: Log out asks first (Enter confirms).
        click(&mut h, &tr(lang, "logout"));
        // A window is measured in its first frame and shown in the next.
        h.step();
        assert!(has_label(&h, &tr(lang, "logout-confirm-text")));
        h.key_press(egui::Key::Enter);
        wait_for(&mut h, "log-in screen", Duration::from_secs(10), |h| {
            h.state().session().is_none()
        });

        // The next log-in, without choosing, opens in the remembered language.
        let mut h = harness(options(None, false), [1280.0, 1000.0]);
        assert!(has_label(&h, "Log in"), "a new window starts in English");
        type_into(&mut h, "Operator", L10N_CLERK);
        type_into(&mut h, "Password", CLERK_PASSWORD);
        click(&mut h, "Log in");
        wait_for(&mut h, &heading, Duration::from_secs(30), |h| {
            has_label(h, &heading)
        });
        assert_eq!(h.state().lang, lang, "remembered for the operator");
        assert_eq!(
            station::preferences::language(&rig().data, L10N_CLERK).as_deref(),
            Some(lang.tag())
        );
    }
}
