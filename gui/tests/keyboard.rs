//! The clerk's form by keyboard only: focus on PINFL after log-in, Tab through the form in its
//! order, choices by Space, dates through the mask, Enter for look-ups, Log out last.

mod common;

use std::time::Duration;

use common::*;
use egui_kittest::kittest::{NodeT, Queryable};

fn focused(h: &H) -> String {
    h.query_by(|n| n.is_focused())
        .map(|n| n.accesskit_node().label().unwrap_or_default())
        .unwrap_or_default()
}

/// Press Tab until the focus is on `label` (at most `max` presses); the labels passed on the way.
fn tab_to(h: &mut H, label: &str, max: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..max {
        if focused(h) == label {
            return seen;
        }
        h.key_press(egui::Key::Tab);
        h.step();
        seen.push(focused(h));
    }
    panic!("Tab never reached {label}: {seen:?}");
}

fn type_here(h: &mut H, text: &str) {
    h.event(egui::Event::Text(text.to_owned()));
    h.step();
    h.step();
}

#[test]
fn a_clerk_fills_the_form_by_keyboard_only() {
    let mut h = harness(options(None, false), [1280.0, 1000.0]);
    // The log-in form takes the keyboard at once: name, Tab, password, Enter.
    h.step();
    assert_eq!(focused(&h), "Operator");
    type_here(&mut h, "clerk");
    h.key_press(egui::Key::Tab);
    h.step();
    type_here(&mut h, CLERK_PASSWORD);
    h.key_press(egui::Key::Enter);
    wait_for(&mut h, "clerk workspace", Duration::from_secs(30), |h| {
        has_label(h, "Clerk workspace")
    });
    h.step();
    assert_eq!(focused(&h), "PINFL", "focus on PINFL after log-in");
    // Issue card on the empty form (Enter on the button): the bar counts the problems and
    // "Go to the first" takes the focus back to the first of them.
    tab_to(&mut h, "Issue card", 60);
    h.key_press(egui::Key::Enter);
    h.step();
    h.step();
    assert!(
        has_label_containing(&h, "problems"),
        "the bar counts the problems"
    );
    tab_to(&mut h, "Go to the first", 3);
    h.key_press(egui::Key::Enter);
    h.step();
    h.step();
    assert_eq!(focused(&h), "PINFL", "PINFL is the first problem");
    type_here(&mut h, "41505852610128");
    // Tab order follows the form: PINFL, sex, date of birth, names, …
    let path = tab_to(&mut h, "Female", 4);
    assert_eq!(path, ["Male", "Female"], "sex comes right after PINFL");
    h.key_press(egui::Key::Space);
    h.step();
    tab_to(&mut h, "Date of birth", 2);
    type_here(&mut h, "15051985");
    tab_to(&mut h, "Surname", 2);
    type_here(&mut h, "Karimova");
    tab_to(&mut h, "Given names", 6);
    type_here(&mut h, "Dilnoza");
    tab_to(&mut h, "Place of birth", 12);
    type_here(&mut h, "Toshkent shahri");
    tab_to(&mut h, "Region", 6);
    type_here(&mut h, "Toshkent shahri");
    tab_to(&mut h, "District", 3);
    type_here(&mut h, "Yunusobod tumani");
    tab_to(&mut h, "Street", 3);
    type_here(&mut h, "Amir Temur shoh koʻchasi");
    tab_to(&mut h, "House", 2);
    type_here(&mut h, "108");
    tab_to(&mut h, "Registered on", 3);
    type_here(&mut h, "01032019");
    let f = &h.state().clerk.form;
    assert_eq!(
        (
            f.sex.as_str(),
            f.date_of_birth.as_str(),
            f.registered_on.as_str()
        ),
        ("F", "15.05.1985", "01.03.2019")
    );
    assert_eq!(f.region, "Toshkent shahri");
    assert_eq!(f.district, "Yunusobod tumani");
    // Only the photo is missing; the MRZ preview shows, so the rest is valid.
    assert!(has_label_containing(&h, "KARIMOVA<<DILNOZA"));
    // After the form: the photo, the Issue bar, and Log out last of all.
    let rest = tab_to(&mut h, "Issue card", 12);
    assert!(rest.iter().any(|l| l == "Photo file"), "{rest:?}");
    let rest = tab_to(&mut h, "Log out", 6);
    assert_eq!(rest.last().map(String::as_str), Some("Log out"));
    // Past Log out the focus wraps round to the workspace's tabs (Issuance first), then the
    // look-up.
    h.key_press(egui::Key::Tab);
    h.step();
    assert_eq!(focused(&h), "Issuance");
    let rest = tab_to(&mut h, "Holder PINFL", 3);
    assert_eq!(
        rest.first().map(String::as_str),
        Some("Card services"),
        "{rest:?}"
    );
    // A standalone station has no centre, so no cards-to-replace tab.
    assert!(!has_label(&h, "Cards to replace"));

    // Enter submits a look-up: a PINFL nobody has.
    type_here(&mut h, "31234567890123");
    h.key_press(egui::Key::Enter);
    wait_for(&mut h, "look-up answer", Duration::from_secs(30), |h| {
        has_label_containing(h, "No holder with this PINFL")
    });
}
