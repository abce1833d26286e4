//! libFuzzer target for the card's APDU entry point (`Card::transmit`). The input is split
//! into C-APDUs (first byte = length of the next APDU); every answer must carry a status word
//! and the card state must still serialize and load. Run: see docs/card.md "Fuzzing".
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut card) = chip::Card::new_blank(1) else {
        return;
    };
    card.power_on();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (apdu, next) = tail.split_at(n);
        let r = card.transmit(apdu);
        assert!(r.len() >= 2 && r.len() <= 258, "response {r:02X?}");
        if apdu.first() == Some(&0xFF) {
            // occasionally a cold reset between commands
            card.power_on();
        }
        rest = next;
    }
    let img = card.to_image_bytes().expect("image serializes");
    chip::Card::from_image_bytes(&img).expect("image loads");
});
