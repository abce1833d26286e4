//! The test rig end to end: lease a slot, insert a vchip card, talk to it through pcscd,
//! pull it. Fails (never skips) when pcscd/vpcd cannot be used.

use std::time::Duration;

fn transmit(card: &pcsc::Card, apdu: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
    card.transmit(apdu, &mut buf).expect("transmit").to_vec()
}

#[test]
fn inserted_card_answers_through_pcscd_and_disappears_when_pulled() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("card.img");
    chip::Card::new_blank(0x00C0FFEE)
        .unwrap()
        .save(&img)
        .unwrap();
    let slot = testrig::Slot::lease();
    let inserted = slot.insert(&img, &[]);
    assert!(testrig::card_present(&slot.reader_name).unwrap());
    {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
        let name = std::ffi::CString::new(slot.reader_name.clone()).unwrap();
        let card = ctx
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
            .expect("connect to the vchip card");
        let (_, atr) = {
            let mut names = [0u8; 2048];
            let mut atr = [0u8; pcsc::MAX_ATR_SIZE];
            let st = card.status2(&mut names, &mut atr).unwrap();
            (st.protocol2(), st.atr().to_vec())
        };
        assert_eq!(atr, chip::os::atr());
        let r = transmit(
            &card,
            &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08],
        );
        assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
        let r = transmit(&card, &[0x00, 0xF8, 0x00, 0x00]);
        assert_eq!(r, vec![0x00, 0xC0, 0xFF, 0xEE, 0x90, 0x00]);
    }
    inserted.pull();
    assert!(!testrig::card_present(&slot.reader_name).unwrap());
}

#[test]
fn tear_after_ends_vchip_and_the_slot_empties() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("card.img");
    chip::Card::new_blank(7).unwrap().save(&img).unwrap();
    let slot = testrig::Slot::lease();
    let inserted = slot.insert(&img, &["--tear-after", "1"]);
    {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
        let name = std::ffi::CString::new(slot.reader_name.clone()).unwrap();
        let card = ctx
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
            .unwrap();
        let mut buf = [0u8; 300];
        let sel = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
        assert!(card.transmit(&sel, &mut buf).is_ok());
        let second = card
            .transmit(&[0x00, 0xF8, 0x00, 0x00], &mut buf)
            .map(|r| r.to_vec());
        // vpcd answers a command sent to a just-torn card with an EMPTY response and
        // SCARD_S_SUCCESS (no status word); hosts must treat < 2 bytes as "card removed".
        assert!(
            second.as_ref().map_or(true, |r| r.len() < 2),
            "after the tear: {second:?}"
        );
    }
    let status = inserted.wait_removed(Duration::from_secs(10)).unwrap();
    assert!(status.success());
}
