//! PIN and PUK (SP 800-73-4): VERIFY with its retry counter, blocking and status query, and
//! its refusal of malformed PINs; CHANGE REFERENCE DATA of the PIN and the PUK; RESET RETRY
//! COUNTER with the PUK.

use super::*;

// ---------------------------------------------------------------- VERIFY ---

#[test]
fn verify_counts_down_blocks_and_status_query_reports() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.sw("0020008000"), 0x63C3);
    assert_eq!(c.verify_pin("000000"), 0x63C2);
    assert_eq!(c.verify_pin("000000"), 0x63C1);
    assert_eq!(
        c.verify_pin("123456"),
        0x9000,
        "a right PIN resets the counter"
    );
    assert_eq!(c.sw("0020008000"), 0x9000);
    assert_eq!(c.sw("0020FF8000"), 0x9000, "reset security status");
    assert_eq!(c.sw("0020008000"), 0x63C3);
    for left in [2, 1, 0] {
        assert_eq!(c.verify_pin("999999"), 0x63C0 | left);
    }
    assert_eq!(c.verify_pin("123456"), 0x6983, "blocked");
    assert_eq!(c.sw("0020008000"), 0x6983);
}

#[test]
fn verify_rejects_malformed_pins_without_counting() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.sw("00200080063132333435FF"), 0x6A80, "not 8 bytes");
    assert_eq!(c.sw("002000800831323334FFFFFFFF"), 0x6A80, "4 digits");
    assert_eq!(
        c.sw("0020008008313233343536FF37"),
        0x6A80,
        "digit after padding"
    );
    assert_eq!(c.sw("0020008008414243444546FFFF"), 0x6A80, "not digits");
    assert_eq!(c.sw("0020008000"), 0x63C3, "nothing counted");
    assert_eq!(
        c.sw("0020008108313233343536FFFF"),
        0x6A88,
        "PUK cannot be verified"
    );
    assert_eq!(c.sw("0020000008313233343536FFFF"), 0x6A88, "no global PIN");
    assert_eq!(c.sw("0020018008313233343536FFFF"), 0x6A86);
    assert_eq!(c.sw("0020FF800131"), 0x6700);
}

// ------------------------------------------------ CHANGE REFERENCE / RRC ---

#[test]
fn change_pin_and_puk() {
    let mut c = Host::new();
    c.select();
    let mut apdu = h("0024008010");
    apdu.extend(pin_block("123456"));
    apdu.extend(pin_block("24681357"));
    assert_eq!(c.tx(&apdu).1, 0x9000);
    assert_eq!(c.lifecycle(), 1);
    assert_eq!(c.verify_pin("123456"), 0x63C2);
    assert_eq!(c.verify_pin("24681357"), 0x9000);
    let mut apdu = h("0024008110");
    apdu.extend(b"12345678");
    apdu.extend([0x00, 0x01, 0x02, 0xFE, 0xFF, 0x80, 0x7F, 0x10]);
    assert_eq!(c.tx(&apdu).1, 0x9000, "PUK: any 8 bytes");
    let mut wrong = h("0024008110");
    wrong.extend(b"12345678");
    wrong.extend(b"12345678");
    assert_eq!(c.tx(&wrong).1, 0x63C9);
    assert_eq!(c.sw("002400800831323334353637FF"), 0x6A80, "not 16 bytes");
    assert_eq!(c.sw("0024008210313233343536FFFF313233343536FFFF"), 0x6A88);
    let mut bad_new = h("0024008010");
    bad_new.extend(pin_block("24681357"));
    bad_new.extend(pin_block("12"));
    assert_eq!(c.tx(&bad_new).1, 0x6A80, "new PIN too short");
}

#[test]
fn puk_unblocks_a_blocked_pin_and_a_blocked_puk_stays_blocked() {
    let mut c = Host::new();
    c.select();
    for _ in 0..3 {
        c.verify_pin("000000");
    }
    assert_eq!(c.verify_pin("123456"), 0x6983);
    let mut rrc = h("002C008010");
    rrc.extend(b"12345678");
    rrc.extend(pin_block("112233"));
    assert_eq!(c.tx(&rrc).1, 0x9000);
    assert_eq!(c.verify_pin("112233"), 0x9000);
    let mut wrong = h("002C008010");
    wrong.extend(b"00000000");
    wrong.extend(pin_block("112233"));
    for left in (0..10).rev() {
        assert_eq!(c.tx(&wrong).1, 0x63C0 | left);
    }
    assert_eq!(c.tx(&rrc).1, 0x6983);
    assert_eq!(c.sw("002C008108"), 0x6A88);
    assert_eq!(c.sw("002C00800831323334353637FF"), 0x6A80);
}
