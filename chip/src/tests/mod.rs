//! APDU vectors for every instruction the card knows, well-formed and malformed, run against
//! the in-process card (`Card::transmit`). Expected values come from SP 800-73-4, ISO 7816-4
//! and the card contract (docs/card.md); signatures are checked with the p256 verifier.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};

use crate::mgmt::{MgmtAlgorithm, MgmtKey};
use crate::Card;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("test vector hex")
}

struct Host {
    card: Card,
}

impl Host {
    fn new() -> Host {
        let mut card = Card::new_blank(0x11223344).unwrap();
        card.power_on();
        Host { card }
    }

    /// Send, return (data, sw).
    fn tx(&mut self, apdu: &[u8]) -> (Vec<u8>, u16) {
        let r = self.card.transmit(apdu);
        assert!(r.len() >= 2, "response without status word");
        let sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
        (r[..r.len() - 2].to_vec(), sw)
    }

    fn sw(&mut self, hexstr: &str) -> u16 {
        self.tx(&h(hexstr)).1
    }

    fn select(&mut self) {
        assert_eq!(self.sw("00A4040005A000000308"), 0x9000);
    }

    fn mgmt_auth(&mut self, key: &MgmtKey) -> u16 {
        let bl = key.alg.block_len();
        let p1 = key.alg.id();
        let (d, sw) = self.tx(&[0x00, 0x87, p1, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00]);
        if sw != 0x9000 {
            return sw;
        }
        assert_eq!(d[0], 0x7C);
        assert_eq!(d[2], 0x80);
        let mut witness = d[4..4 + bl].to_vec();
        key.crypt_block(&mut witness, false).unwrap();
        let challenge = vec![0x5Au8; bl];
        let mut body = vec![0x80, bl as u8];
        body.extend(&witness);
        body.extend([0x81, bl as u8]);
        body.extend(&challenge);
        let mut apdu = vec![
            0x00,
            0x87,
            p1,
            0x9B,
            (body.len() + 2) as u8,
            0x7C,
            body.len() as u8,
        ];
        apdu.extend(&body);
        let (d, sw) = self.tx(&apdu);
        if sw != 0x9000 {
            return sw;
        }
        let mut expect = challenge.clone();
        key.crypt_block(&mut expect, true).unwrap();
        assert_eq!(&d[4..], &expect[..], "card proved the wrong key");
        sw
    }

    fn verify_pin(&mut self, pin: &str) -> u16 {
        let mut apdu = vec![0x00, 0x20, 0x00, 0x80, 0x08];
        let mut p = pin.as_bytes().to_vec();
        p.resize(8, 0xFF);
        apdu.extend(p);
        self.tx(&apdu).1
    }

    fn generate(&mut self, slot: u8) -> (Vec<u8>, u16) {
        self.tx(&[0x00, 0x47, 0x00, slot, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11])
    }

    fn sign(&mut self, slot: u8, hash: &[u8; 32]) -> (Vec<u8>, u16) {
        let mut apdu = vec![
            0x00, 0x87, 0x11, slot, 0x26, 0x7C, 0x24, 0x82, 0x00, 0x81, 0x20,
        ];
        apdu.extend(hash);
        self.tx(&apdu)
    }

    fn lifecycle(&mut self) -> u8 {
        let (d, sw) = self.tx(&h("00CB3FFF055C035FFF20"));
        assert_eq!(sw, 0x9000);
        assert_eq!(&d[..2], &[0x53, 0x01]);
        d[2]
    }
}

fn pin_block(pin: &str) -> Vec<u8> {
    let mut p = pin.as_bytes().to_vec();
    p.resize(8, 0xFF);
    p
}

// ---------------------------------------------------------------- card OS ---

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

// ---------------------------------------------------------------- vendor ---

#[test]
fn get_version_and_serial() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.tx(&h("00FD000000")), (vec![5, 4, 3], 0x9000));
    assert_eq!(c.tx(&h("00F8000000")), (h("11223344"), 0x9000));
    assert_eq!(c.sw("00F8010000"), 0x6A86);
    assert_eq!(c.sw("00FD000100"), 0x6A86);
}

#[test]
fn get_metadata_reports_pin_puk_management_key_and_slots() {
    let mut c = Host::new();
    c.select();
    assert_eq!(
        c.tx(&h("00F7008000")),
        (h("0101FF 050101 06020303"), 0x9000)
    );
    assert_eq!(
        c.tx(&h("00F7008100")),
        (h("0101FF 050101 06020A0A"), 0x9000)
    );
    assert_eq!(
        c.tx(&h("00F7009B00")),
        (h("010103 02020001 050101"), 0x9000)
    );
    assert_eq!(c.sw("00F7009A00"), 0x6A88, "empty slot");
    assert_eq!(c.sw("00F7004200"), 0x6A88);
    assert_eq!(c.sw("00F7019A00"), 0x6A86);
    c.mgmt_auth(&MgmtKey::transport());
    let (g, _) = c.generate(0x9C);
    let (d, sw) = c.tx(&h("00F7009C00"));
    assert_eq!(sw, 0x9000);
    assert_eq!(&d[..11], &h("010111 02020301 030101 04")[..]);
    assert_eq!(
        &d[12..],
        &g[3..],
        "public key in metadata = GENERATE answer"
    );
}

// -------------------------------------------------------------- GET DATA ---

#[test]
fn get_data_discovery_lifecycle_and_missing_objects() {
    let mut c = Host::new();
    c.select();
    let (d, sw) = c.tx(&h("00CB3FFF035C017E00"));
    assert_eq!(sw, 0x9000);
    assert_eq!(d, h("7E124F0BA0000003080000100001005F2F024000"));
    assert_eq!(c.lifecycle(), 0);
    assert_eq!(c.sw("00CB3FFF055C035FC10200"), 0x6A82);
    assert_eq!(
        c.sw("00CB3FFF055C035FC10900"),
        0x6982,
        "printed info needs the PIN"
    );
    assert_eq!(c.sw("00CB3FFE055C035FC10200"), 0x6A86);
    assert_eq!(c.sw("00CB3FFF045C025FC100"), 0x6A82);
    assert_eq!(
        c.sw("00CB3FFF065C045FC1020100"),
        0x6A80,
        "tag longer than 3 bytes"
    );
    assert_eq!(c.sw("00CB3FFF035C055F00"), 0x6A80, "truncated TLV");
    assert_eq!(c.sw("00CB3FFF0553035FC102"), 0x6A80, "not a tag list");
    assert_eq!(c.sw("00CB3FFF00"), 0x6A80, "no data");
}

// -------------------------------------------------------------- PUT DATA ---

#[test]
fn put_data_needs_the_management_key_and_moves_blank_to_personalizing() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.sw("00DB3FFF085C035FC102530101"), 0x6982);
    assert_eq!(c.lifecycle(), 0);
    assert_eq!(c.mgmt_auth(&MgmtKey::transport()), 0x9000);
    assert_eq!(c.sw("00DB3FFF085C035FC102530101"), 0x9000);
    assert_eq!(c.lifecycle(), 1);
    assert_eq!(c.tx(&h("00CB3FFF055C035FC10200")), (h("530101"), 0x9000));
    // delete with an empty 53
    assert_eq!(c.sw("00DB3FFF075C035FC1025300"), 0x9000);
    assert_eq!(c.sw("00CB3FFF055C035FC10200"), 0x6A82);
    // malformed
    assert_eq!(
        c.sw("00DB3FFF085C035FFF20530101"),
        0x6A80,
        "lifecycle object is read-only"
    );
    assert_eq!(
        c.sw("00DB3FFF085C03123456530101"),
        0x6A80,
        "not a PIV object"
    );
    assert_eq!(c.sw("00DB3FFF075C025FC1530101"), 0x6A80, "2-byte tag");
    assert_eq!(c.sw("00DB3FFF085C035FC102530201"), 0x6A80, "truncated 53");
    assert_eq!(
        c.sw("00DB3FFF0A5C035FC1025301010000"),
        0x6A80,
        "trailing bytes"
    );
    assert_eq!(c.sw("00DB3FFE085C035FC102530101"), 0x6A86);
    assert_eq!(c.sw("00DB3FFF04 7E027F00"), 0x9000, "discovery template");
    assert_eq!(c.tx(&h("00CB3FFF035C017E00")), (h("7E027F00"), 0x9000));
}

#[test]
fn printed_information_is_readable_after_pin() {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    assert_eq!(c.sw("00DB3FFF095C035FC10953020102"), 0x9000);
    assert_eq!(c.sw("00CB3FFF055C035FC10900"), 0x6982);
    assert_eq!(c.verify_pin("123456"), 0x9000);
    assert_eq!(c.tx(&h("00CB3FFF055C035FC10900")), (h("53020102"), 0x9000));
}

#[test]
fn oversized_object_is_6a84() {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    let mut data = h("5C035FC10A");
    data.extend(crate::tlv::encode(
        0x53,
        &vec![1u8; crate::piv::MAX_OBJECT_LEN + 1],
    ));
    let mut last = 0;
    for (i, chunk) in data.chunks(255).enumerate() {
        let more = (i + 1) * 255 < data.len();
        let mut a = vec![
            if more { 0x10 } else { 0x00 },
            0xDB,
            0x3F,
            0xFF,
            chunk.len() as u8,
        ];
        a.extend(chunk);
        last = c.tx(&a).1;
    }
    assert_eq!(last, 0x6A84);
}

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

// -------------------------------------------------------------- GENERATE ---

#[test]
fn generate_p256_returns_the_public_point_and_signatures_verify() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.generate(0x9A).1, 0x6982, "management key first");
    c.mgmt_auth(&MgmtKey::transport());
    let (d, sw) = c.generate(0x9A);
    assert_eq!(sw, 0x9000);
    assert_eq!(&d[..5], &[0x7F, 0x49, 0x43, 0x86, 0x41]);
    assert_eq!(d[5], 0x04);
    let vk = VerifyingKey::from_sec1_bytes(&d[5..]).unwrap();
    let hash = [0x42u8; 32];
    assert_eq!(c.sign(0x9A, &hash).1, 0x6982, "9A needs the PIN");
    c.verify_pin("123456");
    let (s, sw) = c.sign(0x9A, &hash);
    assert_eq!(sw, 0x9000);
    let der = crate::tlv::parse_single(crate::tlv::parse_single(&s, 0x7C).unwrap(), 0x82).unwrap();
    let sig = Signature::from_der(der).unwrap();
    vk.verify_prehash(&hash, &sig).unwrap();
    assert_eq!(c.sign(0x9A, &hash).1, 0x9000, "9A: PIN once per session");
}

#[test]
fn generate_rejects_other_algorithms_and_bad_templates() {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    assert_eq!(
        c.sw("004700 9A 05 AC03800107"),
        0x6A80,
        "RSA 2048 not offered"
    );
    assert_eq!(c.sw("004700 9A 05 AC03800114"), 0x6A80, "P-384 not offered");
    assert_eq!(c.sw("004700 9A 03 AC0180"), 0x6A80, "truncated template");
    assert_eq!(c.sw("004700 9A 02 AC00"), 0x6A80, "no algorithm");
    assert_eq!(
        c.sw("004700 9B 05 AC03800111"),
        0x6A86,
        "9B is not a key pair slot"
    );
    assert_eq!(c.sw("004701 9A 05 AC03800111"), 0x6A86);
    assert_eq!(
        c.sw("004700 9A 08 AC06800111AA0102"),
        0x9000,
        "Yubico PIN policy accepted"
    );
}

// ------------------------------------------------- GENERAL AUTHENTICATE ---

#[test]
fn slot_9c_needs_a_pin_verify_before_every_signature() {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    c.generate(0x9C);
    let hash = [7u8; 32];
    assert_eq!(c.sign(0x9C, &hash).1, 0x6982);
    c.verify_pin("123456");
    assert_eq!(c.sign(0x9C, &hash).1, 0x9000);
    assert_eq!(
        c.sign(0x9C, &hash).1,
        0x6982,
        "second signature without a new VERIFY"
    );
    c.verify_pin("123456");
    assert_eq!(c.sign(0x9C, &hash).1, 0x9000);
}

#[test]
fn slot_9e_signs_without_pin_and_empty_slots_are_6a88() {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    assert_eq!(c.sign(0x9E, &[1; 32]).1, 0x6A88);
    c.generate(0x9E);
    assert_eq!(c.sign(0x9E, &[1; 32]).1, 0x9000);
}

#[test]
fn general_authenticate_malformed_templates() {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    c.generate(0x9A);
    c.verify_pin("123456");
    assert_eq!(c.sw("0087119A0482008100"), 0x6A80, "no 7C");
    assert_eq!(c.sw("0087119A057C05820081"), 0x6A80, "truncated");
    assert_eq!(
        c.sw("0087119A087C0682008103010203"),
        0x6A80,
        "hash not 32 bytes"
    );
    assert_eq!(c.sw("0087119A047C028200"), 0x6A80, "no challenge");
    assert_eq!(
        c.sw("0087079A047C028200"),
        0x6A86,
        "RSA algorithm for an EC key"
    );
    assert_eq!(
        c.sw("008711420A7C0882008104000000 00"),
        0x6A88,
        "no such key reference"
    );
    assert_eq!(
        c.sw("0087119A087C0682008502AAAA"),
        0x6A80,
        "ECDH not offered"
    );
    assert_eq!(c.sw("0087119A067C04AA02BBBB"), 0x6A80, "unknown tag");
}

#[test]
fn ecdh_key_agreement_with_slot_9d_matches_the_peer_side() {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    let (g, _) = c.generate(0x9D);
    let card_pub = p256::PublicKey::from_sec1_bytes(&g[5..]).unwrap();
    let peer = p256::SecretKey::from_slice(&[0x17; 32]).unwrap();
    let peer_point = p256::ecdsa::VerifyingKey::from(peer.public_key()).to_sec1_point(false);
    let mut apdu = vec![
        0x00, 0x87, 0x11, 0x9D, 0x47, 0x7C, 0x45, 0x82, 0x00, 0x85, 0x41,
    ];
    apdu.extend(peer_point.as_bytes());
    assert_eq!(c.tx(&apdu).1, 0x6982, "9D needs the PIN");
    c.verify_pin("123456");
    let (d, sw) = c.tx(&apdu);
    assert_eq!(sw, 0x9000);
    let z = crate::tlv::parse_single(crate::tlv::parse_single(&d, 0x7C).unwrap(), 0x82).unwrap();
    let expect = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), card_pub.as_affine());
    assert_eq!(z, expect.raw_secret_bytes().as_slice());
    let mut bad = apdu.clone();
    bad[12] ^= 0x01; // not on the curve
    assert_eq!(c.tx(&bad).1, 0x6A80);
}

#[test]
fn management_key_mutual_and_external_authentication() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.mgmt_auth(&MgmtKey::transport()), 0x9000);
    // wrong key: the decrypted witness does not match
    let wrong = MgmtKey::new(MgmtAlgorithm::Tdes, &[9u8; 24]).unwrap();
    assert_eq!(c.mgmt_auth(&wrong), 0x6982);
    assert_eq!(
        c.sw("00DB3FFF085C035FC102530101"),
        0x6982,
        "auth was dropped"
    );
    // external: challenge, then its encryption
    let (d, sw) = c.tx(&h("0087039B047C028100"));
    assert_eq!(sw, 0x9000);
    assert_eq!(&d[..4], &[0x7C, 0x0A, 0x81, 0x08]);
    let mut resp = d[4..12].to_vec();
    MgmtKey::transport().crypt_block(&mut resp, true).unwrap();
    let mut apdu = h("0087039B0C7C0A8208");
    apdu.extend(&resp);
    assert_eq!(c.tx(&apdu).1, 0x9000);
    assert_eq!(c.sw("00DB3FFF085C035FC102530101"), 0x9000);
    // a response with no challenge outstanding
    assert_eq!(c.tx(&apdu).1, 0x6985);
    // wrong algorithm in P1
    assert_eq!(c.sw("0087089B047C028000"), 0x6A86);
    // witness of the wrong length
    c.tx(&h("0087039B047C028000"));
    assert_eq!(c.sw("0087039B0A7C088002AAAA8102BBBB"), 0x6A80);
}

// ------------------------------------------------- SET MANAGEMENT KEY ---

#[test]
fn set_management_key_to_aes128_as_the_contract_says() {
    let mut c = Host::new();
    c.select();
    let key: Vec<u8> = (0x10..0x20).collect();
    let mut apdu = h("00FFFFFF13089B10"); // Lc = 3 + 16
    apdu.extend(&key);
    assert_eq!(c.tx(&apdu).1, 0x6982);
    c.mgmt_auth(&MgmtKey::transport());
    assert_eq!(c.tx(&apdu).1, 0x9000);
    assert_eq!(c.lifecycle(), 1);
    c.card.power_on();
    c.select();
    assert_eq!(
        c.mgmt_auth(&MgmtKey::transport()),
        0x6A86,
        "P1 03 no longer matches"
    );
    let aes = MgmtKey::new(MgmtAlgorithm::Aes128, &key).unwrap();
    assert_eq!(c.mgmt_auth(&aes), 0x9000);
    for (alg, len) in [(0x0A, 24), (0x0C, 32), (0x03, 24)] {
        let mut a = vec![
            0x00,
            0xFF,
            0xFF,
            0xFE,
            (3 + len) as u8,
            alg,
            0x9B,
            len as u8,
        ];
        a.extend(vec![0x33u8; len]);
        assert_eq!(c.tx(&a).1, 0x9000, "algorithm {alg:02X}");
        let k = MgmtKey::new(MgmtAlgorithm::from_id(alg).unwrap(), &vec![0x33u8; len]).unwrap();
        assert_eq!(c.mgmt_auth(&k), 0x9000);
    }
    assert_eq!(
        c.sw("00FFFFFF13089B0F000102030405060708090A0B0C0D0E0F"),
        0x6A80,
        "length byte lies"
    );
    assert_eq!(
        c.sw("00FFFFFF13119B10000102030405060708090A0B0C0D0E0F"),
        0x6A80,
        "unknown algorithm"
    );
    assert_eq!(
        c.sw("00FFFFFF13089A10000102030405060708090A0B0C0D0E0F"),
        0x6A80,
        "not 9B"
    );
    assert_eq!(c.sw("00FFFFFF0A089B0700010203040506"), 0x6A80, "short key");
    assert_eq!(c.sw("00FF0000020800"), 0x6A86);
    assert_eq!(c.sw("00FFFFFF0108"), 0x6A80);
}

// ---------------------------------------------------------------- IMPORT ---

#[test]
fn import_p256_private_key_then_sign_with_it() {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    let scalar = h("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");
    let mut apdu = h("00FE119D220620");
    apdu.extend(&scalar);
    assert_eq!(c.tx(&apdu).1, 0x9000);
    let sk = p256::ecdsa::SigningKey::from_slice(&scalar).unwrap();
    c.verify_pin("123456");
    let (s, sw) = c.sign(0x9D, &[3; 32]);
    assert_eq!(sw, 0x9000);
    let der = crate::tlv::parse_single(crate::tlv::parse_single(&s, 0x7C).unwrap(), 0x82).unwrap();
    sk.verifying_key()
        .verify_prehash(&[3; 32], &Signature::from_der(der).unwrap())
        .unwrap();
    assert_eq!(c.sw("00FE119D03060100"), 0x6A80, "short scalar");
    assert_eq!(c.sw("00FE079D03060100"), 0x6A86, "RSA");
    assert_eq!(c.sw("00FE119B03060100"), 0x6A86, "not a key slot");
    let mut zero = h("00FE119D220620");
    zero.extend([0u8; 32]);
    assert_eq!(c.tx(&zero).1, 0x6A80, "scalar 0 is not a key");
}

#[test]
fn no_command_returns_a_private_key() {
    // The image of a card with keys must not contain the scalar in clear, and no APDU answer
    // contains it (checked over every instruction with a generated key present).
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    let scalar = h("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");
    let mut apdu = h("00FE119A220620");
    apdu.extend(&scalar);
    assert_eq!(c.tx(&apdu).1, 0x9000);
    c.verify_pin("123456");
    for ins in 0u8..=255 {
        for p2 in [0x9A, 0x00, 0x80] {
            let (d, _) = c.tx(&[0x00, ins, 0x00, p2, 0x00]);
            assert!(
                !d.windows(32).any(|w| w == &scalar[..]),
                "INS {ins:02X} leaked the key"
            );
        }
    }
    let img = c.card.to_image_bytes().unwrap();
    let text = String::from_utf8(img).unwrap();
    assert!(!text.contains(&hex::encode(&scalar)));
    assert!(!text.contains("313233343536"), "PIN in clear");
}

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

// ------------------------------------------------------ random APDUs ---

mod randomized {
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
}
