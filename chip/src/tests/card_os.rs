//! The card OS through `Card::transmit`: the ATR, malformed APDUs, instructions without an
//! application, SELECT by full and partial AID (the PIV property template) and of unknown AIDs
//! and files, command chaining and its limit, GET RESPONSE, and power-on clearing the security
//! state (ISO 7816-4 status words).

use super::*;

#[test]
fn atr_advertises_t1_and_has_a_valid_tck() {
    let atr = crate::os::atr();
    assert_eq!(atr[0], 0x3B);
    assert_eq!(atr[2..4], [0x80, 0x01], "TD1 -> TD2 = T=1");
    assert_eq!(atr[1..].iter().fold(0u8, |a, b| a ^ b), 0, "TCK");
    assert_ne!(atr, h("3B80800101"), "not the PIVKEY ATR");
}

#[test]
fn malformed_apdus_get_status_words_not_panics() {
    let mut c = Host::new();
    assert_eq!(c.sw(""), 0x6700);
    assert_eq!(c.sw("00"), 0x6700);
    assert_eq!(c.sw("00A404"), 0x6700);
    assert_eq!(c.sw("00A4040005A0"), 0x6700, "Lc larger than data");
    assert_eq!(c.sw("00A4040001A0A0A0"), 0x6700, "Lc smaller than data");
    assert_eq!(c.sw("00A40400000005"), 0x6700, "extended length");
    assert_eq!(c.sw("80A4040005A000000308"), 0x6E00, "proprietary class");
    assert_eq!(c.sw("0CA4040005A000000308"), 0x6E00, "secure messaging");
    assert_eq!(c.sw("01A4040005A000000308"), 0x6E00, "logical channel 1");
}

#[test]
fn unknown_instruction_and_no_application_is_6d00() {
    let mut c = Host::new();
    assert_eq!(c.sw("00CB3FFF03 5C017E"), 0x6D00, "nothing selected");
    c.select();
    assert_eq!(c.sw("00E0000000"), 0x6D00);
    assert_eq!(c.sw("00F9009A00"), 0x6D00, "attestation not offered");
}

#[test]
fn select_by_full_and_partial_aid_answers_the_property_template() {
    let mut c = Host::new();
    let (d, sw) = c.tx(&h("00A4040009A0000003080000100000"));
    assert_eq!(sw, 0x9000);
    assert_eq!(d[0], 0x61);
    let inner = crate::tlv::parse_single(&d, 0x61).unwrap();
    let objs = crate::tlv::parse_all(inner).unwrap();
    assert_eq!(objs[0].tag, 0x4F);
    assert_eq!(objs[0].value, &h("000010000100")[..]);
    assert_eq!(objs[1].tag, 0x79);
    assert_eq!(objs[1].value, &h("4F05A000000308")[..]);
    let (_, sw) = c.tx(&h("00A404000BA000000308000010000100"));
    assert_eq!(sw, 0x9000);
    let (d, sw) = c.tx(&h("00A4040C05A000000308"));
    assert_eq!((d.len(), sw), (0, 0x9000), "P2=0C: no response data");
}

#[test]
fn select_of_unknown_aid_or_file_is_6a82_and_keeps_the_selection() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.sw("00A4040007A0000000031010"), 0x6A82);
    assert_eq!(c.sw("00A40000023F00"), 0x6A82, "no file system in PIV");
    assert_eq!(c.sw("00A4040403A00000"), 0x6A86, "bad P2");
    assert_eq!(c.sw("00F8000000"), 0x9000, "PIV still selected");
}

#[test]
fn card_without_piv_answers_6a82_to_the_piv_aid() {
    let mut card = Card::new_without_piv(5).unwrap();
    card.power_on();
    let r = card.transmit(&h("00A4040005A000000308"));
    assert_eq!(r, vec![0x6A, 0x82]);
}

#[test]
fn command_chaining_reassembles_put_data_and_rejects_a_broken_chain() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.mgmt_auth(&MgmtKey::transport()), 0x9000);
    // PUT DATA CHUID (5FC102) with 300 bytes, sent in two parts.
    let value = vec![0xA5u8; 300];
    let mut data = h("5C035FC102");
    data.extend(crate::tlv::encode(0x53, &value));
    let (first, second) = data.split_at(200);
    let mut a = vec![0x10, 0xDB, 0x3F, 0xFF, first.len() as u8];
    a.extend(first);
    assert_eq!(c.tx(&a).1, 0x9000);
    let mut b = vec![0x00, 0xDB, 0x3F, 0xFF, second.len() as u8];
    b.extend(second);
    assert_eq!(c.tx(&b).1, 0x9000);
    // read back: 304 bytes -> 61xx + GET RESPONSE
    let (d, sw) = c.tx(&h("00CB3FFF055C035FC10200"));
    assert_eq!(sw, 0x6130, "304 bytes: 256 now, 48 announced");
    assert_eq!(d.len(), 256);
    let (d2, sw) = c.tx(&h("00C0000030"));
    assert_eq!(sw, 0x9000);
    let mut all = d;
    all.extend(d2);
    assert_eq!(all, crate::tlv::encode(0x53, &value));
    // a chain interrupted by another instruction: 6883, chain dropped
    assert_eq!(c.tx(&a).1, 0x9000);
    assert_eq!(c.sw("00F8000000"), 0x6883);
    assert_eq!(
        c.tx(&b).1,
        0x6A80,
        "second half alone is not a valid object"
    );
    // chaining SELECT and GET RESPONSE is not supported
    assert_eq!(c.sw("10A4040005A000000308"), 0x6884);
    assert_eq!(c.sw("10C0000000"), 0x6884);
}

#[test]
fn endless_chain_is_cut_at_the_limit_with_6700() {
    let mut c = Host::new();
    c.select();
    let mut part = vec![0x10, 0xDB, 0x3F, 0xFF, 0xFF];
    part.extend(vec![0u8; 255]);
    let mut last = 0;
    for _ in 0..40 {
        last = c.tx(&part).1;
        if last != 0x9000 {
            break;
        }
    }
    assert_eq!(last, 0x6700);
}

#[test]
fn get_response_without_pending_data_is_6985_and_bad_p1p2_6a86() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.sw("00C0000000"), 0x6985);
    assert_eq!(c.sw("00C0010000"), 0x6A86);
}

#[test]
fn power_on_clears_the_security_state() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.verify_pin("123456"), 0x9000);
    assert_eq!(c.sw("0020008000"), 0x9000);
    c.card.power_on();
    c.select();
    assert_eq!(c.sw("0020008000"), 0x63C3);
}
