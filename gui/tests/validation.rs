//! The holder form validates as the clerk types, with the station's own messages (the CLI
//! prints the same "field: rule" text), and previews the printed name.

mod common;

use common::*;

fn clerk() -> H {
    let mut h = harness(options(None, false), [1280.0, 1400.0]);
    log_in(&mut h, "clerk", CLERK_PASSWORD, "Clerk workspace");
    h
}

#[test]
fn a_pinfl_that_is_not_14_digits_is_named_with_the_rule() {
    let mut h = clerk();
    type_into(&mut h, "PINFL", "12345");
    assert!(
        has_label(&h, "pinfl: \"12345\" must be exactly 14 digits"),
        "message shown as the CLI prints it"
    );
    // Typing on until the number is well-formed removes that message.
    type_into(&mut h, "PINFL", "678901234");
    assert!(!has_label_containing(&h, "must be exactly 14 digits"));
}

#[test]
fn an_impossible_date_of_birth_is_not_a_calendar_date() {
    let mut h = clerk();
    type_into(&mut h, "Date of birth", "1985-02-30");
    assert!(has_label(
        &h,
        "date_of_birth: 1985-02-30 is not a calendar date"
    ));
    type_into(&mut h, "Registered on", "01.03.2019");
    assert!(has_label(
        &h,
        "address.registered_on: \"01.03.2019\" is not a date in the form YYYY-MM-DD"
    ));
}

#[test]
fn a_name_with_digits_is_refused_and_an_uzbek_name_is_accepted() {
    let mut h = clerk();
    type_into(&mut h, "Surname", "Smith2");
    assert!(has_label_containing(&h, "surname: "), "surname error shown");
    let rule = station::holder::check_latin_name("Smith2").expect_err("digits are refused");
    assert!(
        has_label(&h, &format!("surname: {rule}")),
        "the station's rule, named by field"
    );

    let mut h = clerk();
    type_into(&mut h, "Surname", "Toʻxtayeva");
    assert!(
        !has_label_containing(&h, "surname: "),
        "Oʻ is an Uzbek letter"
    );
}

#[test]
fn a_complete_form_previews_the_printed_name() {
    let mut h = clerk();
    let fields = [
        ("PINFL", "41505852610128"),
        ("Sex", "F"),
        ("Date of birth", "1985-05-15"),
        ("Surname", "Toʻxtayeva"),
        ("Surname (Cyrillic)", "Тўхтаева"),
        ("Given names", "Gʻulnora"),
        ("Place of birth", "Toshkent shahri"),
        ("Region", "Toshkent shahri"),
        ("District", "Yunusobod tumani"),
        ("Street", "Amir Temur shoh koʻchasi"),
        ("House", "108"),
        ("Registered on", "2019-03-01"),
    ];
    for (label, text) in fields {
        type_into(&mut h, label, text);
    }
    assert!(
        has_label(&h, "Printed name: Toʻxtayeva Gʻulnora"),
        "preview from station::holder_views::printed_name"
    );
    assert!(has_label_containing(&h, "is a placeholder"));
}

#[test]
fn a_complete_form_previews_the_td1_mrz() {
    let mut h = clerk();
    assert!(has_label(&h, "MRZ: shown when the form is valid"));
    let fields = [
        ("PINFL", "41505852610128"),
        ("Sex", "F"),
        ("Date of birth", "1985-05-15"),
        ("Surname", "Karimova"),
        ("Given names", "Dilnoza"),
        ("Place of birth", "Toshkent shahri"),
        ("Region", "Toshkent shahri"),
        ("District", "Yunusobod tumani"),
        ("Street", "Amir Temur shoh koʻchasi"),
        ("House", "108"),
        ("Registered on", "2019-03-01"),
    ];
    for (label, text) in fields {
        type_into(&mut h, label, text);
    }
    // TD1 line 3 is the name field, 30 characters, filled with '<'.
    let name_line = format!("{:<<30}", "KARIMOVA<<DILNOZA");
    assert!(has_label(&h, &name_line), "MRZ name line {name_line} shown");
    // Line 2 carries birth date 850515, its check digit (8·7+5·3+0+5·7+1·3+5 = 114 -> 4) and
    // sex F (ICAO 9303 Part 5 §4.2.2, Part 3 §4.9).
    assert!(has_label_containing(&h, "8505154F"));
    assert!(!has_label(&h, "MRZ: shown when the form is valid"));
}
