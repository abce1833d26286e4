//! The card's lifecycle (docs/card.md): LOCK and what a LOCKED card still does, RESET TO BLANK
//! (with the management key, or without it when PIN and PUK are blocked), and the card image:
//! a round trip that keeps the state and drops the session, corrupt or edited images refused
//! with a reason, atomic saves.

use super::*;

// ------------------------------------------------------ lifecycle: LOCK ---

fn personalized_locked_card() -> Host {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    c.generate(0x9C);
    assert_eq!(c.sw("00DB3FFF085C035FC10A530101"), 0x9000);
    assert_eq!(c.sw("00440000"), 0x9000);
    assert_eq!(c.lifecycle(), 2);
    c
}

#[test]
fn lock_needs_management_key_and_personalizing_state() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.sw("00440000"), 0x6982);
    c.mgmt_auth(&MgmtKey::transport());
    assert_eq!(c.sw("00440000"), 0x6985, "blank cards cannot be locked");
    assert_eq!(c.sw("00440100"), 0x6A86);
    assert_eq!(c.sw("0044000001AA"), 0x6700);
    let mut c = personalized_locked_card();
    assert_eq!(c.sw("00440000"), 0x6985, "already locked");
}

#[test]
fn locked_card_refuses_personalization_but_pin_and_signing_work() {
    let mut c = personalized_locked_card();
    assert_eq!(c.sw("00DB3FFF085C035FC102530101"), 0x6985, "PUT DATA");
    assert_eq!(c.generate(0x9A).1, 0x6985, "GENERATE");
    assert_eq!(
        c.sw("00FFFFFF13089B10000102030405060708090A0B0C0D0E0F"),
        0x6985,
        "SET MGMT KEY"
    );
    assert_eq!(c.sw("00FE119D03060100"), 0x6985, "IMPORT");
    assert_eq!(c.sw("00FB0000"), 0x6985, "RESET");
    // holder operations
    let mut apdu = h("0024008010");
    apdu.extend(pin_block("123456"));
    apdu.extend(pin_block("777777"));
    assert_eq!(c.tx(&apdu).1, 0x9000, "PIN change");
    assert_eq!(c.verify_pin("777777"), 0x9000);
    assert_eq!(c.sign(0x9C, &[9; 32]).1, 0x9000, "signing");
    assert_eq!(c.sw("00CB3FFF055C035FC10A00"), 0x9000, "GET DATA");
    let mut rrc = h("002C008010");
    rrc.extend(b"12345678");
    rrc.extend(pin_block("888888"));
    assert_eq!(c.tx(&rrc).1, 0x9000, "RESET RETRY COUNTER");
    assert_eq!(c.lifecycle(), 2);
}

// ----------------------------------------------------- RESET TO BLANK ---

#[test]
fn reset_to_blank_restores_transport_state_and_keeps_the_serial() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.sw("00FB0000"), 0x6982);
    c.mgmt_auth(&MgmtKey::transport());
    c.generate(0x9A);
    let mut apdu = h("00FFFFFF13089B10"); // Lc = 3 + 16
    apdu.extend([0x44u8; 16]);
    c.tx(&apdu);
    assert_eq!(c.sw("00FB0000"), 0x9000);
    assert_eq!(c.lifecycle(), 0);
    assert_eq!(c.tx(&h("00F8000000")).0, h("11223344"));
    assert_eq!(c.sw("00F7009A00"), 0x6A88, "keys destroyed");
    assert_eq!(
        c.mgmt_auth(&MgmtKey::transport()),
        0x9000,
        "transport key back"
    );
    assert_eq!(c.verify_pin("123456"), 0x9000);
    assert_eq!(c.sw("00FB0100"), 0x6A86);
}

#[test]
fn reset_to_blank_without_key_when_pin_and_puk_are_blocked() {
    let mut c = Host::new();
    c.select();
    for _ in 0..3 {
        c.verify_pin("000000");
    }
    assert_eq!(c.sw("00FB0000"), 0x6982, "PUK still usable");
    let mut wrong = h("002C008010");
    wrong.extend(b"00000000");
    wrong.extend(pin_block("112233"));
    for _ in 0..10 {
        c.tx(&wrong);
    }
    assert_eq!(c.sw("00FB0000"), 0x9000);
    assert_eq!(c.verify_pin("123456"), 0x9000);
}

// ------------------------------------------------------------ the image ---

#[test]
fn image_round_trip_keeps_state_and_drops_the_session() {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    let (g, _) = c.generate(0x9C);
    c.verify_pin("000000");
    assert!(c.card.take_dirty());
    let bytes = c.card.to_image_bytes().unwrap();
    let mut card2 = Card::from_image_bytes(&bytes).unwrap();
    card2.power_on();
    let mut c2 = Host { card: card2 };
    c2.select();
    assert_eq!(c2.sw("0020008000"), 0x63C2, "retry counter persisted");
    assert_eq!(c2.lifecycle(), 1);
    let (d, _) = c2.tx(&h("00F7009C00"));
    assert_eq!(&d[12..], &g[3..]);
    assert_eq!(
        c2.sw("00DB3FFF085C035FC102530101"),
        0x6982,
        "auth is not persisted"
    );
}

#[test]
fn corrupt_or_edited_images_are_refused_with_a_reason() {
    let card = Card::new_blank(1).unwrap();
    let bytes = card.to_image_bytes().unwrap();
    assert!(Card::from_image_bytes(&bytes[..bytes.len() / 2]).is_err());
    let text = String::from_utf8(bytes.clone()).unwrap();
    let edited = text.replace("\"blank\"", "\"locked\"");
    let err = Card::from_image_bytes(edited.as_bytes()).err().unwrap();
    assert!(matches!(err, crate::ChipError::Integrity), "{err}");
    let err = Card::from_image_bytes(b"{}").err().unwrap();
    assert!(err.to_string().contains("not an image file"), "{err}");
    assert!(Card::new_blank_with(1, 0, 10).is_err());
    assert!(Card::new_blank_with(1, 3, 16).is_err());
}

#[test]
fn save_is_atomic_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.img");
    let card = Card::new_blank(9).unwrap();
    card.save(&p).unwrap();
    card.save(&p).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1);
    assert_eq!(Card::load(&p).unwrap().serial(), 9);
}
