//! libFuzzer target for the chip's PACE and Chip Authentication command parsers (ICAO 9303-11
//! §4.4 MSE:Set AT, the four chained GENERAL AUTHENTICATE steps; §6.2 MSE:Set AT for CA): a
//! LOCKED card with PACE passwords (MRZ and CAN) and its CA/AA keys is built once; each input
//! runs on a fresh copy of it. The input is a sequence of commands: one byte picks the header
//! (MSE:Set AT for PACE or CA, GENERAL AUTHENTICATE chained or last, a secure-messaging command,
//! SELECT of the ICAO application, READ BINARY of EF.CardAccess, a cold reset), one byte the
//! length of the data that follows. Every answer must carry a status word; the card state must
//! still serialize and load. At most two PACE runs are started per input, so the card's
//! guessing delay (from the third consecutive failure) never slows the fuzzer down.
#![no_main]

use std::sync::OnceLock;

use chip::mgmt::MgmtKey;
use libfuzzer_sys::fuzz_target;

fn h(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn ok(card: &mut chip::Card, apdu: &[u8]) -> Vec<u8> {
    let r = card.transmit(apdu);
    assert_eq!(r[r.len() - 2..], [0x90, 0x00], "setup APDU {apdu:02X?}");
    r[..r.len() - 2].to_vec()
}

/// The issued card's image: PIV authenticated with the transport key, EF.COM and DG1, the MRZ
/// password (K = SHA-1 of App. G.1's MRZ information, precomputed), a CAN, CA and AA keys,
/// LOCKED.
fn issued_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let mut card = chip::Card::new_blank(0x0F22_0017).unwrap();
        card.power_on();
        ok(&mut card, &h("00A4040005A000000308"));
        let d = ok(&mut card, &h("0087039B047C028100"));
        let mut challenge = d[4..12].to_vec();
        MgmtKey::transport().crypt_block(&mut challenge, true).unwrap();
        let mut apdu = h("0087039B0C7C0A8208");
        apdu.extend(&challenge);
        ok(&mut card, &apdu);
        ok(&mut card, &h("00DB3FFF085C035FC102530101"));
        ok(&mut card, &h("00A4040C07A0000002471001"));
        ok(&mut card, &h("00E000000A620880020017830201 1E".replace(' ', "").as_str()));
        ok(&mut card, &h("00D600001760155F0104303130365F36063034303030305C036175 6E".replace(' ', "").as_str()));
        ok(&mut card, &h("00E000000A62088002000583020101"));
        ok(&mut card, &h("00D60000056103313233"));
        // SHA-1("T22000129364081251010318")
        ok(&mut card, &h("00DA010E147E2D2A41C74EA0B38CD36F863939BFA8E9032AAD"));
        ok(&mut card, &h("00DA010F06343832393137"));
        ok(&mut card, &h("0046000100"));
        ok(&mut card, &h("0046000200"));
        ok(&mut card, &h("00440000"));
        card.to_image_bytes().unwrap()
    })
}

/// Headers the first byte of each command picks from.
const HEADERS: [[u8; 4]; 8] = [
    [0x00, 0x22, 0xC1, 0xA4], // MSE:Set AT, PACE
    [0x10, 0x86, 0x00, 0x00], // GENERAL AUTHENTICATE, chained (steps 1-3)
    [0x00, 0x86, 0x00, 0x00], // GENERAL AUTHENTICATE, last (step 4)
    [0x0C, 0x22, 0x41, 0xA4], // MSE:Set AT, CA (inside secure messaging)
    [0x0C, 0x86, 0x00, 0x00], // GENERAL AUTHENTICATE, CA (inside secure messaging)
    [0x0C, 0xB0, 0x00, 0x00], // READ BINARY inside secure messaging
    [0x00, 0xA4, 0x04, 0x0C], // SELECT (of the ICAO application with the right data)
    [0x00, 0xB0, 0x9C, 0x00], // READ BINARY EF.CardAccess by SFI
];

fuzz_target!(|data: &[u8]| {
    let mut card = chip::Card::from_image_bytes(issued_image()).unwrap();
    card.power_on();
    let mut pace_runs = 0;
    let mut rest = data;
    while let [pick, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        if *pick == 0xFF {
            card.power_on();
            continue;
        }
        let header = HEADERS[usize::from(pick % 8)];
        if header[1] == 0x22 && header[0] == 0x00 {
            pace_runs += 1;
            if pace_runs > 2 {
                continue;
            }
        }
        let mut apdu = header.to_vec();
        if header[1] == 0xA4 && pick & 0x80 == 0 {
            apdu.extend([0x07, 0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01]);
        } else if !body.is_empty() {
            apdu.push(body.len() as u8);
            apdu.extend_from_slice(body);
        }
        if pick & 0x40 != 0 {
            apdu.push(0x00); // Le
        }
        let r = card.transmit(&apdu);
        assert!(r.len() >= 2 && r.len() <= 258, "response {r:02X?}");
    }
    let img = card.to_image_bytes().expect("image serializes");
    chip::Card::from_image_bytes(&img).expect("image loads");
});
