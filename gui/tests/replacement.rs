//! What the clerk must know up front (issue 20, item 7) and the card preview (item 10), against
//! a real virtual chip (`vchip`) through pcscd and vpcd, SoftHSM2 and the registry file: a
//! holder with an active card is stopped at look-up with the replacement reasons; a spoiled
//! number is said so; "Replace: lost" ends with the old document lost and its certificates
//! revoked, the new card issued and the look-up showing it; the preview's MRZ is the MRZ
//! builder's and the chip's DG1 carries the same lines for the number issued.
//! Run under `flock /tmp/idstation-pcsc.lock`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use egui_kittest::kittest::Queryable;

const PIN: &str = "48291637";
const HOLDER: &str = "holder-01.json";

fn blank_card(serial: u32) -> PathBuf {
    blank_card_in(&rig().dir, serial)
}

fn record() -> station::holder::HolderRecord {
    serde_json::from_str(&std::fs::read_to_string(fixture(HOLDER)).expect("fixture")).expect("json")
}

/// Type the fixture holder into the form field by field (as a clerk would) and load its photo.
fn enter_holder(h: &mut H) {
    let rec = record();
    let a = &rec.address;
    click(h, if rec.sex == "F" { "Female" } else { "Male" });
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
    for (label, v) in fields {
        type_into(h, label, &v);
    }
    load_photo(h);
}

fn load_photo(h: &mut H) {
    let photo = fixture(record().photo.as_deref().expect("fixture has a photo"));
    type_into(h, "Photo file", &photo.display().to_string());
    click(h, "Load photo");
    wait_for(h, "photo loaded", Duration::from_secs(10), |h| {
        has_label_containing(h, "Photo loaded: ")
    });
}

/// The PIN letter's path, the Issue button (`button`), the holder's PIN twice, and the result.
fn issue(h: &mut H, button: &str, name: &str) {
    let letter = rig().dir.join(format!("{name}-{}.pdf", std::process::id()));
    type_into(h, "Save the PIN letter to", &letter.display().to_string());
    click(h, button);
    h.step();
    type_into(h, "Holder PIN", PIN);
    type_into(h, "Holder PIN again", PIN);
    click(h, "Start issuance");
    wait_for(h, "result screen", Duration::from_secs(180), |h| {
        has_label(h, "Card issued") || has_label(h, "The card was not issued")
    });
    assert!(
        has_label(h, "Card issued"),
        "issued: {}",
        h.state().clerk.view_text()
    );
}

fn registry() -> registry::Registry {
    registry::Registry::open_read_only(rig().data.join("registry.sqlite")).expect("registry")
}

/// The chip's DG1 MRZ, read from the card image by `vchip show --json` (the chip's own
/// files, not the station's records): tag 61 { 5F1F MRZ }, three lines of 30.
fn chip_dg1_mrz(img: &Path) -> Vec<String> {
    let out = Command::new(testrig::vchip_bin().expect("vchip"))
        .args(["show", "--json"])
        .arg(img)
        .output()
        .expect("vchip show");
    assert!(out.status.success(), "vchip show: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let files = v["applications"]["lds"]["files"]
        .as_object()
        .expect("LDS files");
    let hex = files
        .iter()
        .find(|(fid, _)| fid.eq_ignore_ascii_case("0101"))
        .and_then(|(_, v)| v.as_str())
        .expect("DG1 on the chip");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let at = bytes
        .windows(2)
        .position(|w| w == [0x5F, 0x1F])
        .expect("5F1F in DG1");
    let len = bytes[at + 2] as usize;
    let mrz = std::str::from_utf8(&bytes[at + 3..at + 3 + len]).expect("ASCII MRZ");
    assert_eq!(len, 90, "a TD1 MRZ");
    (0..3)
        .map(|i| mrz[30 * i..30 * (i + 1)].to_owned())
        .collect()
}

/// The MRZ builder's lines for the fixture holder with document number `number`.
fn builder_mrz(h: &H, number: &str) -> [String; 3] {
    let session = h.state().session().expect("logged in");
    let policy = station::interactive::holder_policy(&session.document);
    let valid = station::holder::load(&fixture(HOLDER), &policy).expect("valid fixture");
    station::holder_views::record_mrz_lines(
        &station::holder_views::MrzRecord::from_record(&valid.record),
        &session.document,
        number,
        session.expiry,
    )
    .expect("MRZ")
}

/// A number spoiled in an issuance of holder-02 (its card written, then discarded): the
/// holder registered, a job with the number rolled back and the number spoiled, written with
/// the registry's own calls as an issuance and its recovery write them.
fn spoil_a_number(h: &H) -> (String, String) {
    let session = h.state().session().expect("logged in");
    let policy = station::interactive::holder_policy(&session.document);
    let valid = station::holder::load(&fixture("holder-02.json"), &policy).expect("valid fixture");
    let holder = registry::NewHolder::try_from(&valid).expect("holder");
    let address = registry::NewAddress::from(&valid);
    let mut reg =
        registry::Registry::open(rig().data.join("registry.sqlite")).expect("registry read-write");
    let actor = registry::Actor::new("clerk", "clerk", "gui-test");
    let number = reg
        .write(|tx| {
            let id = tx.insert_holder(&holder, &address, &actor)?;
            let num = tx.allocate_document_number("TAS01")?;
            let job = tx.create_job(
                &registry::NewJob {
                    holder_id: id,
                    office: "TAS01".into(),
                    document: Some(num),
                },
                &actor,
            )?;
            tx.mark_document_number(num, registry::NumberState::Spoiled, Some("card spoiled"))?;
            tx.end_job(job, registry::JobState::RolledBack, Some("card pulled"))?;
            Ok(num.to_string())
        })
        .expect("spoil a number");
    (valid.record.pinfl, number)
}

#[test]
fn a_holder_with_an_active_card_is_stopped_at_look_up_and_replaced_lost() {
    let slot = testrig::Slot::lease();
    let first_img = blank_card(0x6E00_0011);
    let first = slot.insert(&first_img, &[]);
    let mut h = harness(options(Some(&slot.reader_name), true), [1280.0, 1600.0]);
    log_in(&mut h, "clerk", CLERK_PASSWORD, "Clerk workspace");
    wait_for(&mut h, "blank card", Duration::from_secs(20), |h| {
        has_label(h, &format!("{}: card 6E000011 BLANK", slot.reader_name))
    });
    enter_holder(&mut h);
    // The preview shows the MRZ builder's lines for the placeholder number, in OCR-B.
    let placeholder = builder_mrz(&h, "AA0000000");
    for line in &placeholder {
        assert!(has_label(&h, line), "preview MRZ line {line}");
    }
    issue(&mut h, "Issue card", "first");
    let old = h.state().clerk.issued_document().expect("issued");
    first.pull();
    click(&mut h, "Next holder");

    // A spoiled number: in its holder's look-up, and looked up by itself.
    let (other, spoiled) = spoil_a_number(&h);
    type_into(&mut h, "Holder PINFL", &other);
    click(&mut h, "Find holder");
    wait_for(&mut h, "holder-02 found", Duration::from_secs(20), |h| {
        has_label_containing(h, "loaded into the form")
    });
    assert!(has_label(&h, "No documents yet."));
    assert!(has_label_containing(
        &h,
        &format!("Number {spoiled} was spoiled")
    ));
    type_into(&mut h, "Document number", &spoiled);
    click(&mut h, "Find document");
    wait_for(&mut h, "spoiled number", Duration::from_secs(20), |h| {
        has_label_containing(h, "is on no valid document")
    });

    // The holder with an active card: the documents, and no Issue button.
    let rec = record();
    h.get_by_label("Holder PINFL").click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label("Holder PINFL").type_text(&rec.pinfl);
    h.step();
    click(&mut h, "Find holder");
    wait_for(&mut h, "holder found", Duration::from_secs(20), |h| {
        has_label_containing(h, "loaded into the form")
    });
    assert!(has_label(&h, &format!("Document {old}")));
    assert!(has_label(&h, "Status: active"));
    assert!(has_label(&h, "Office: TAS01"));
    assert!(has_label(&h, "Card 6E000011"));
    assert!(has_label_containing(
        &h,
        &format!("This holder has an active card, document {old}")
    ));
    assert!(h.query_by_label("Issue card").is_none(), "no Issue button");
    for reason in ["lost", "stolen", "damaged", "name change"] {
        assert!(has_label(&h, &format!("Replace: {reason}")), "{reason}");
    }
    // A recall is the national centre's: a standalone station does not offer it.
    assert!(!has_label(&h, "Replace: recalled by the centre"));
    // Replace: lost, onto a new blank card.
    let second_img = blank_card(0x6E00_0012);
    let second = slot.insert(&second_img, &[]);
    wait_for(&mut h, "second blank card", Duration::from_secs(20), |h| {
        has_label(h, &format!("{}: card 6E000012 BLANK", slot.reader_name))
    });
    click(&mut h, "Replace: lost");
    assert!(has_label(
        &h,
        &format!("New card replacing document {old} (lost).")
    ));
    load_photo(&mut h);
    issue(&mut h, "Issue the replacement card", "replacement");
    let new = h.state().clerk.issued_document().expect("issued");
    assert_ne!(new, old);
    assert!(has_label(
        &h,
        &format!("Document {old} is now lost; this card replaces it.")
    ));
    // The registry, read apart from the GUI.
    let reg = registry();
    let doc = |n: &str| {
        reg.document(n.parse().expect("number"))
            .expect("read")
            .expect("on record")
    };
    assert_eq!(doc(&old).status.as_str(), "lost");
    assert_eq!(doc(&new).status.as_str(), "active");
    let old_card = reg
        .card_of_document(doc(&old).id)
        .expect("read")
        .expect("old card");
    let certs = reg.certificates_of_card(old_card.id).expect("certificates");
    assert_eq!(certs.len(), 2);
    for c in &certs {
        assert_eq!(c.status.as_str(), "revoked");
        assert_eq!(c.revocation_reason.as_deref(), Some("keyCompromise"));
    }
    // The look-up panel was asked again: the old document lost, only the new card's two
    // certificates active.
    wait_for(&mut h, "refreshed look-up", Duration::from_secs(20), |h| {
        has_label(h, "Status: lost") && has_label(h, &format!("Document {new}"))
    });
    assert_eq!(
        h.query_all_by_label_contains("(active)").count(),
        2,
        "only the new card's certificates are active"
    );
    // The chip's DG1 carries the builder's MRZ for the number issued; the preview showed the
    // same builder's lines for the placeholder.
    assert_eq!(chip_dg1_mrz(&second_img), builder_mrz(&h, &new).to_vec());
    assert_eq!(chip_dg1_mrz(&first_img), builder_mrz(&h, &old).to_vec());
    second.pull();
}
