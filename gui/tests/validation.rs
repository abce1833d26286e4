//! The holder form validates as the clerk types, with the station's own rules shown under the
//! field they concern, dates typed DD.MM.YYYY through a mask, choices from the lists, and
//! previews the printed name and the MRZ.

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
        has_label(&h, "\"12345\" must be exactly 14 digits"),
        "the station's rule, under the PINFL field"
    );
    // Typing on until the number is well-formed removes that message.
    type_into(&mut h, "PINFL", "678901234");
    assert!(!has_label_containing(&h, "must be exactly 14 digits"));
}

#[test]
fn an_impossible_date_of_birth_is_not_a_calendar_date() {
    let mut h = clerk();
    // The mask writes the dots: 30021985 is 30.02.1985.
    type_into(&mut h, "Date of birth", "30021985");
    assert_eq!(h.state().clerk.form.date_of_birth, "30.02.1985");
    assert!(has_label(&h, "1985-02-30 is not a calendar date"));
    // A date not yet complete is not DD.MM.YYYY: the form says how to type it.
    type_into(&mut h, "Registered on", "0103");
    assert_eq!(h.state().clerk.form.registered_on, "01.03");
    assert!(has_label(
        &h,
        "Type the date as DD.MM.YYYY, e.g. 15.05.1985."
    ));
    type_into(&mut h, "Registered on", "2019");
    assert_eq!(h.state().clerk.form.registered_on, "01.03.2019");
    assert!(!has_label_containing(&h, "Type the date as"));
}

#[test]
fn a_name_with_digits_is_refused_and_an_uzbek_name_is_accepted() {
    let mut h = clerk();
    type_into(&mut h, "Surname", "Smith2");
    let rule = station::holder::check_latin_name("Smith2").expect_err("digits are refused");
    assert!(has_label(&h, &rule), "the station's rule, under Surname");

    let mut h = clerk();
    type_into(&mut h, "Surname", "Toʻxtayeva");
    let rule = station::holder::check_latin_name("Toʻxtayeva");
    assert!(rule.is_ok(), "Oʻ is an Uzbek letter");
    assert!(h
        .state()
        .clerk
        .problems()
        .iter()
        .all(|(k, _)| k != "surname"));
}

#[test]
fn a_complete_form_previews_the_printed_name() {
    let mut h = clerk();
    let fields = [
        ("PINFL", "41505852610128"),
        ("Date of birth", "15051985"),
        ("Surname", "Toʻxtayeva"),
        ("Surname (Cyrillic)", "Тўхтаева"),
        ("Given names", "Gʻulnora"),
        ("Place of birth", "Toshkent shahri"),
        ("Region", "Toshkent shahri"),
        ("District", "Yunusobod tumani"),
        ("Street", "Amir Temur shoh koʻchasi"),
        ("House", "108"),
        ("Registered on", "01.03.2019"),
    ];
    click(&mut h, "Female");
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
        ("Date of birth", "15051985"),
        ("Surname", "Karimova"),
        ("Given names", "Dilnoza"),
        ("Place of birth", "Toshkent shahri"),
        ("Region", "Toshkent shahri"),
        ("District", "Yunusobod tumani"),
        ("Street", "Amir Temur shoh koʻchasi"),
        ("House", "108"),
        ("Registered on", "01.03.2019"),
    ];
    click(&mut h, "Female");
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

#[test]
fn region_district_and_citizenship_come_from_the_lists() {
    let mut h = clerk();
    type_into(&mut h, "Region", "Atlantis");
    assert!(has_label(&h, "Choose a region from the list."));
    // Typing part of a name offers the matching entries; one click takes it.
    let mut h = clerk();
    type_into(&mut h, "Region", "Fargʻ");
    click(&mut h, "Fargʻona viloyati");
    assert_eq!(h.state().clerk.form.region, "Fargʻona viloyati");
    // Typed without the mark, an exact name is taken as the listed one.
    type_into(&mut h, "District", "margilon shahri");
    assert_eq!(h.state().clerk.form.district, "Margʻilon shahri");
    assert!(!has_label_containing(&h, "Choose a district"));
    // A district of another region is refused with the region's name.
    let _ = h
        .state_mut()
        .clerk
        .form
        .field_mut("address.district")
        .map(|d| *d = "Yunusobod tumani".into());
    h.state_mut()
        .clerk
        .form
        .touched
        .insert("address.district".into());
    h.step();
    h.step();
    assert!(has_label(
        &h,
        "Choose a district of Fargʻona viloyati from the list."
    ));
    // Citizenship: the default is UZB; a code not on the list is refused.
    assert_eq!(h.state().clerk.form.citizenship, "UZB");
    type_into(&mut h, "Citizenship", "Q");
    assert!(has_label_containing(
        &h,
        "Choose a citizenship from the list"
    ));
}

#[test]
fn a_cyrillic_name_is_offered_from_the_latin_one_and_the_clerk_confirms() {
    let mut h = clerk();
    type_into(&mut h, "Surname", "Toʻxtayeva");
    click(&mut h, "Write in Cyrillic");
    assert!(has_label(&h, "Suggested: Тўхтаева"));
    // Nothing is written until the clerk takes it.
    assert_eq!(h.state().clerk.form.surname_cyrillic, "");
    click(&mut h, "Use it");
    // The offer's row is gone: the fields below move up.
    h.step();
    assert_eq!(h.state().clerk.form.surname_cyrillic, "Тўхтаева");
    // The other way: a Cyrillic given name offers its Latin form.
    type_into(&mut h, "Given names (Cyrillic)", "Ғулнора");
    click(&mut h, "Write in Latin");
    assert!(has_label(&h, "Suggested: Gʻulnora"));
    click(&mut h, "Leave it");
    h.step();
    assert_eq!(h.state().clerk.form.given_names, "");
    assert!(!has_label_containing(&h, "Suggested:"));
}

#[test]
fn a_photo_that_cannot_be_read_is_explained_in_the_photo_section() {
    let mut h = clerk();
    type_into(&mut h, "Photo file", "/nonexistent/photo.jpg");
    click(&mut h, "Load photo");
    wait_for(
        &mut h,
        "photo error",
        std::time::Duration::from_secs(10),
        |h| has_label_containing(h, "cannot be used"),
    );
    assert!(has_label_containing(
        &h,
        "The photo /nonexistent/photo.jpg cannot be used ("
    ));
    assert!(has_label_containing(&h, "Choose a JPEG photo file."));
    assert!(
        !has_label_containing(&h, "photo: /nonexistent"),
        "no internal form"
    );
}
