//! A clerk issues a card from the GUI against a real virtual chip (`vchip`) through pcscd and
//! vpcd, SoftHSM2 and the registry file; and a card pulled mid-issuance shows what to do, and
//! Retry after re-inserting it finishes the job.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use egui_kittest::kittest::Queryable;

const PIN: &str = "48291637";

fn blank_card(serial: u32) -> PathBuf {
    blank_card_in(&rig().dir, serial)
}

/// Type the fixture holder into the form, field by field, and load its photo.
fn enter_holder(h: &mut H, file: &str) {
    enter_holder_from(h, &fixture(file));
}

/// Type the holder file at `path` into the form (its photo path is relative to the file).
fn enter_holder_from(h: &mut H, path: &Path) {
    let path = path.to_path_buf();
    let rec: station::holder::HolderRecord =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    let a = &rec.address;
    let mut fields = vec![
        ("PINFL", rec.pinfl.clone()),
        ("Date of birth", gui::i18n::date(&rec.date_of_birth)),
        ("Surname", rec.surname.clone()),
        ("Given names", rec.given_names.clone()),
        ("Place of birth", rec.place_of_birth.clone()),
        ("Region", a.region.clone()),
        ("District", a.district.clone()),
        ("Street", a.street.clone()),
        ("House", a.house.clone()),
        ("Registered on", gui::i18n::date(&a.registered_on)),
    ];
    for (label, v) in [
        ("Patronymic", &rec.patronymic),
        ("Surname (Cyrillic)", &rec.surname_cyrillic),
        ("Given names (Cyrillic)", &rec.given_names_cyrillic),
        ("Patronymic (Cyrillic)", &rec.patronymic_cyrillic),
        ("Apartment", &a.apartment),
    ] {
        if let Some(v) = v {
            fields.push((label, v.clone()));
        }
    }
    if let Some(until) = &a.registered_until {
        fields.push(("Registered until", gui::i18n::date(until)));
    }
    // Sex and address kind are choices.
    click(h, if rec.sex == "F" { "Female" } else { "Male" });
    h.step();
    if a.kind != "permanent" {
        click(h, "Temporary");
        h.step();
    }
    assert_eq!(h.state().clerk.form.address_kind, a.kind);
    for (label, v) in fields {
        type_into(h, label, &v);
    }
    let photo = path
        .parent()
        .unwrap_or(Path::new("."))
        .join(rec.photo.as_deref().expect("fixture has a photo"));
    type_into(h, "Photo file", &photo.display().to_string());
    click(h, "Load photo");
    wait_for(h, "photo preview", Duration::from_secs(10), |h| {
        has_label_containing(h, "Photo loaded: ")
    });
    assert!(
        !has_label_containing(h, ": is required") && !has_label_containing(h, "must be"),
        "the fixture is valid"
    );
}

/// The clerk chooses where the PIN letter goes and presses Issue card; the holder types the PIN
/// twice in the holder PIN window and starts the issuance. Returns the letter's path.
fn issue_with_holder_pin(h: &mut H) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let letter = rig().dir.join(format!(
        "gui-pin-letter-{}-{}.pdf",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    type_into(h, "Save the PIN letter to", &letter.display().to_string());
    click(h, "Issue card");
    // The window is laid out in the frame after it opens.
    h.step();
    assert!(
        has_label(
            h,
            "For the holder: choose the PIN of your card and type it twice."
        ),
        "the holder PIN window is open: {} {:?} {:?}",
        h.state().clerk.view_text(),
        h.state().clerk.problems(),
        h.state().clerk.form
    );
    type_into(h, "Holder PIN", PIN);
    type_into(h, "Holder PIN again", PIN);
    click(h, "Start issuance");
    letter
}

fn document_status(number: &str) -> String {
    let reg =
        registry::Registry::open_read_only(rig().data.join("registry.sqlite")).expect("registry");
    let d = reg
        .document(number.parse().expect("document number"))
        .expect("read")
        .expect("document recorded");
    d.status.as_str().to_string()
}

/// The document number the result screen shows (it is also checked in the registry).
fn issued_document(h: &H) -> String {
    let number = h
        .state()
        .clerk
        .issued_document()
        .expect("an issued document");
    assert!(
        has_label(h, &format!("Document number {number}")),
        "shown on screen"
    );
    number
}

#[test]
fn a_clerk_issues_a_card_from_the_form_and_sees_the_result() {
    let slot = testrig::Slot::lease();
    let img = blank_card(0x6E00_0001);
    let card = slot.insert(&img, &[]);
    let mut h = harness(options(Some(&slot.reader_name), true), [1280.0, 1600.0]);
    log_in(&mut h, "clerk", CLERK_PASSWORD, "Clerk workspace");
    let blank = format!("{}: card 6E000001 BLANK", slot.reader_name);
    wait_for(
        &mut h,
        "blank card in the reader panel",
        Duration::from_secs(20),
        |h| has_label(h, &blank),
    );
    enter_holder(&mut h, "holder-01.json");
    assert!(has_label(&h, "Printed name: Toʻxtayeva Gʻulnora"));
    // The clerk's form has no PIN or PUK field: the holder types the PIN in a window of their
    // own, and a PIN that is easy to guess is refused there.
    assert!(h.query_by_label("PUK").is_none() && h.query_by_label("PIN").is_none());
    let letter = rig().dir.join("gui-first-letter.pdf");
    type_into(
        &mut h,
        "Save the PIN letter to",
        &letter.display().to_string(),
    );
    click(&mut h, "Issue card");
    h.step();
    type_into(&mut h, "Holder PIN", "15051985");
    type_into(&mut h, "Holder PIN again", "15051985");
    click(&mut h, "Start issuance");
    h.step();
    assert!(
        has_label_containing(&h, "is the holder's date of birth"),
        "a weak PIN is refused in the holder window"
    );
    type_into(&mut h, "Holder PIN", PIN);
    type_into(&mut h, "Holder PIN again", PIN);
    click(&mut h, "Start issuance");
    h.step();
    assert!(
        has_label(&h, "Issuing…") || has_label(&h, "Card issued"),
        "progress view: {}",
        h.state().clerk.view_text()
    );
    wait_for(&mut h, "result screen", Duration::from_secs(180), |h| {
        has_label(h, "Card issued") || has_label(h, "The card was not issued")
    });
    assert!(
        has_label(&h, "Card issued"),
        "issued: {:?}",
        h.state().clerk.view_text()
    );
    let number = issued_document(&h);
    assert!(has_label(&h, "Card serial 6E000001"));
    assert!(has_label_containing(&h, "PIN letter saved to"));
    let pdf = std::fs::read(&letter).expect("the PIN letter was written");
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(has_label_containing(&h, "Certificate 9A ("));
    assert!(has_label_containing(&h, "Certificate 9C ("));
    // Independent of the GUI: the registry records the document as active.
    assert_eq!(document_status(&number), "active");
    let locked = format!("{}: card 6E000001 LOCKED", slot.reader_name);
    wait_for(
        &mut h,
        "LOCKED in the reader panel",
        Duration::from_secs(20),
        |h| has_label(h, &locked),
    );

    // Declare it lost from the look-up.
    click(&mut h, "Next holder");
    type_into(&mut h, "Document number", &number);
    click(&mut h, "Find document");
    wait_for(&mut h, "document found", Duration::from_secs(20), |h| {
        has_label(h, "Status: active")
    });
    click(&mut h, "Declare lost");
    click(&mut h, "Confirm: lost");
    wait_for(&mut h, "revoked", Duration::from_secs(20), |h| {
        has_label_containing(h, "is now lost")
    });
    assert_eq!(document_status(&number), "lost");
    card.pull();
}

#[test]
fn a_card_pulled_during_issuance_asks_to_insert_it_again_and_retry_finishes() {
    let slot = testrig::Slot::lease();
    let img = blank_card(0x6E00_0002);
    let torn = slot.insert(&img, &["--tear-after", "40"]);
    let mut h = harness(options(Some(&slot.reader_name), true), [1280.0, 1600.0]);
    log_in(&mut h, "clerk", CLERK_PASSWORD, "Clerk workspace");
    let blank = format!("{}: card 6E000002 BLANK", slot.reader_name);
    wait_for(&mut h, "blank card", Duration::from_secs(20), |h| {
        has_label(h, &blank)
    });
    enter_holder(&mut h, "holder-02.json");
    issue_with_holder_pin(&mut h);
    wait_for(&mut h, "failure screen", Duration::from_secs(120), |h| {
        has_label(h, "The card was not issued") || has_label(h, "Card issued")
    });
    assert!(
        has_label(&h, "The card was not issued"),
        "the tear stops the job"
    );
    assert!(has_label_containing(
        &h,
        "The card was removed while the station was working on it"
    ));
    assert!(has_label_containing(&h, "Insert it again and press Retry."));
    let _ = torn.wait_removed(Duration::from_secs(10));

    let card = slot.insert(&img, &[]);
    click(&mut h, "Retry");
    wait_for(
        &mut h,
        "result after retry",
        Duration::from_secs(180),
        |h| has_label(h, "Card issued") || has_label(h, "The card was not issued"),
    );
    if has_label(&h, "Card issued") {
        let number = issued_document(&h);
        assert_eq!(document_status(&number), "active");
    } else {
        // Recovery found the card LOCKED with the torn job's certificates and completed it.
        assert!(
            has_label_containing(&h, "recovery just completed"),
            "{:?}",
            h.state().clerk.view_text()
        );
    }
    card.pull();
}

/// The holder comes back with a new surname: the GUI stops before the card and lists what
/// differs (registry → form); the clerk confirms against the documents and the card is issued,
/// the registry taking the new surname.
#[test]
fn a_changed_holder_is_shown_old_and_new_and_issued_after_the_clerk_confirms() {
    let slot = testrig::Slot::lease();
    let first = slot.insert(&blank_card(0x6E00_0003), &[]);
    let mut h = harness(options(Some(&slot.reader_name), true), [1280.0, 1600.0]);
    log_in(&mut h, "clerk", CLERK_PASSWORD, "Clerk workspace");
    wait_for(&mut h, "blank card", Duration::from_secs(20), |h| {
        has_label(h, &format!("{}: card 6E000003 BLANK", slot.reader_name))
    });
    enter_holder(&mut h, "holder-03.json");
    issue_with_holder_pin(&mut h);
    wait_for(&mut h, "first result", Duration::from_secs(180), |h| {
        has_label(h, "Card issued") || has_label(h, "The card was not issued")
    });
    let number = issued_document(&h);
    first.pull();
    click(&mut h, "Next holder");
    type_into(&mut h, "Document number", &number);
    click(&mut h, "Find document");
    wait_for(&mut h, "document found", Duration::from_secs(20), |h| {
        has_label(h, "Status: active")
    });
    click(&mut h, "Declare lost");
    click(&mut h, "Confirm: lost");
    wait_for(&mut h, "revoked", Duration::from_secs(20), |h| {
        has_label_containing(h, "is now lost")
    });

    // The same PINFL with another surname.
    let mut rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("holder-03.json")).expect("fixture"))
            .expect("json");
    let old_surname = rec["surname"].as_str().expect("surname").to_owned();
    rec["surname"] = "Qodirova".into();
    let photo = fixture(rec["photo"].as_str().expect("photo"));
    rec["photo"] = photo.to_str().expect("utf-8").into();
    let changed = rig().dir.join("holder-03-changed.json");
    std::fs::write(&changed, rec.to_string()).expect("write");
    let second = slot.insert(&blank_card(0x6E00_0004), &[]);
    wait_for(&mut h, "second blank card", Duration::from_secs(20), |h| {
        has_label(h, &format!("{}: card 6E000004 BLANK", slot.reader_name))
    });
    enter_holder_from(&mut h, &changed);
    issue_with_holder_pin(&mut h);
    wait_for(&mut h, "refusal", Duration::from_secs(60), |h| {
        has_label(h, "The card was not issued") || has_label(h, "Card issued")
    });
    assert!(
        has_label_containing(&h, "registered with other personal data"),
        "{:?}",
        h.state().clerk.view_text()
    );
    assert!(has_label(&h, "In the registry") && has_label(&h, "Entered now"));
    assert!(has_label(&h, &old_surname) && has_label(&h, "Qodirova"));
    let reg =
        registry::Registry::open_read_only(rig().data.join("registry.sqlite")).expect("registry");
    let pinfl = rec["pinfl"].as_str().expect("pinfl");
    let before = reg.holder_by_pinfl(pinfl).expect("read").expect("holder");
    assert_eq!(before.data.surname, old_surname, "nothing changed yet");

    click(
        &mut h,
        "The documents confirm it: update the registry and issue",
    );
    wait_for(&mut h, "confirmed result", Duration::from_secs(180), |h| {
        has_label(h, "Card issued") || has_label(h, "The card was not issued")
    });
    let number = issued_document(&h);
    assert_eq!(document_status(&number), "active");
    let after = reg.holder_by_pinfl(pinfl).expect("read").expect("holder");
    assert_eq!(after.data.surname, "Qodirova");
    second.pull();
}
