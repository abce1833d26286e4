//! Random APDU sequences (proptest) against a blank card with PIV selected: every command gets
//! a status word of an expected class, no response is longer than 258 bytes, and the state
//! still serializes and loads afterwards.

use proptest::prelude::*;

use crate::Card;

fn interesting_ins() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(0xA4u8),
        Just(0xCB),
        Just(0xDB),
        Just(0x20),
        Just(0x24),
        Just(0x2C),
        Just(0x47),
        Just(0x87),
        Just(0xFE),
        Just(0xFF),
        Just(0xFB),
        Just(0x44),
        Just(0xF7),
        Just(0xFD),
        Just(0xF8),
        Just(0xC0),
        // LDS application and BAC
        Just(0xB0),
        Just(0xD6),
        Just(0xE0),
        Just(0xDA),
        Just(0x84),
        Just(0x82),
        any::<u8>()
    ]
}

fn apdu() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // arbitrary bytes
        proptest::collection::vec(any::<u8>(), 0..300),
        // select the LDS application
        Just(vec![
            0x00, 0xA4, 0x04, 0x0C, 0x07, 0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01
        ]),
        // well-formed header, random body
        (
            prop_oneof![Just(0x00u8), Just(0x10), Just(0x0C), any::<u8>()],
            interesting_ins(),
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..260),
        )
            .prop_map(|(cla, ins, p1, p2, body)| {
                let mut v = vec![cla, ins, p1, p2];
                if !body.is_empty() {
                    v.push(body.len().min(255) as u8);
                    v.extend(&body[..body.len().min(255)]);
                }
                v
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_apdu_sequences_always_get_a_status_word(seq in proptest::collection::vec(apdu(), 1..24)) {
        let mut card = Card::new_blank(1).unwrap();
        card.power_on();
        // start with PIV selected (sequences may select the LDS application themselves)
        card.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]);
        for a in &seq {
            let r = card.transmit(a);
            prop_assert!(r.len() >= 2);
            prop_assert!(r.len() <= 258);
            let sw1 = r[r.len() - 2];
            prop_assert!(matches!(sw1, 0x90 | 0x61 | 0x63 | 0x67 | 0x68 | 0x69 | 0x6A | 0x6B | 0x6D | 0x6E | 0x6F),
                "unexpected SW1 {sw1:02X}");
        }
        // the state still serializes and loads
        let img = card.to_image_bytes().unwrap();
        prop_assert!(Card::from_image_bytes(&img).is_ok());
    }
}
