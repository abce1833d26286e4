//! The issuer's rights on a LOCKED card (docs/card.md "Operational state"), APDU by APDU
//! against the in-process card: with the per-card management key authenticated after the LOCK
//! the issuer generates new keys in 9A/9C, writes their certificates and the Key History
//! object, sets a new PIN (resetting its retry counter) and a new PUK; everything else stays as
//! issued, and without the key the LOCKED card answers as it always did.

use chip::mgmt::{MgmtAlgorithm, MgmtKey};
use chip::Card;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("test vector hex")
}

fn pin_block(pin: &str) -> Vec<u8> {
    let mut p = pin.as_bytes().to_vec();
    p.resize(8, 0xFF);
    p
}

struct Host {
    card: Card,
}

impl Host {
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

    /// Mutual authentication with `key` (SP 800-73-4 Part 2 A.3); the status word of the
    /// step that failed, or 9000.
    fn mgmt_auth(&mut self, key: &MgmtKey) -> u16 {
        let bl = key.alg.block_len();
        let p1 = key.alg.id();
        let (d, sw) = self.tx(&[0x00, 0x87, p1, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00]);
        if sw != 0x9000 {
            return sw;
        }
        let mut witness = d[4..4 + bl].to_vec();
        key.crypt_block(&mut witness, false).unwrap();
        let mut body = vec![0x80, bl as u8];
        body.extend(&witness);
        body.extend([0x81, bl as u8]);
        body.extend(vec![0x5Au8; bl]);
        let mut apdu = vec![0x00, 0x87, p1, 0x9B, (body.len() + 2) as u8, 0x7C];
        apdu.push(body.len() as u8);
        apdu.extend(&body);
        self.tx(&apdu).1
    }

    fn verify_pin(&mut self, pin: &str) -> u16 {
        let mut apdu = vec![0x00, 0x20, 0x00, 0x80, 0x08];
        apdu.extend(pin_block(pin));
        self.tx(&apdu).1
    }

    fn generate(&mut self, slot: u8) -> (Vec<u8>, u16) {
        self.tx(&[
            0x00, 0x47, 0x00, slot, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00,
        ])
    }

    fn put_object(&mut self, tag: u32, value: &[u8]) -> u16 {
        let t = tag.to_be_bytes();
        let mut data = vec![0x5C, 0x03, t[1], t[2], t[3], 0x53, value.len() as u8];
        data.extend(value);
        let mut apdu = vec![0x00, 0xDB, 0x3F, 0xFF, data.len() as u8];
        apdu.extend(data);
        self.tx(&apdu).1
    }

    fn get_object(&mut self, tag: u32) -> (Vec<u8>, u16) {
        let t = tag.to_be_bytes();
        self.tx(&[
            0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, t[1], t[2], t[3], 0x00,
        ])
    }

    fn sign(&mut self, slot: u8, hash: &[u8; 32]) -> (Vec<u8>, u16) {
        let mut apdu = vec![
            0x00, 0x87, 0x11, slot, 0x26, 0x7C, 0x24, 0x82, 0x00, 0x81, 0x20,
        ];
        apdu.extend(hash);
        apdu.push(0x00);
        self.tx(&apdu)
    }

    fn lifecycle(&mut self) -> u8 {
        let (d, sw) = self.get_object(0x5FFF20);
        assert_eq!(sw, 0x9000);
        d[2]
    }

    /// Power cycle: a new card session (selection and every authentication forgotten).
    fn new_session(&mut self) {
        self.card.power_on();
        self.select();
    }
}

fn card_key() -> MgmtKey {
    MgmtKey::new(MgmtAlgorithm::Aes128, &[0x4B; 16]).unwrap()
}

/// A card personalized as the station does it (per-card AES-128 key, keys in 9A and 9C,
/// their certificate objects, holder PIN 135790, PUK 24681357), then LOCKED, in a new session.
fn issued_card() -> Host {
    let mut card = Card::new_blank(0x0A0B0C0D).unwrap();
    card.power_on();
    let mut c = Host { card };
    c.select();
    assert_eq!(c.mgmt_auth(&MgmtKey::transport()), 0x9000);
    let mut set = h("00FFFFFF13089B10");
    set.extend([0x4B; 16]);
    assert_eq!(c.tx(&set).1, 0x9000);
    assert_eq!(c.mgmt_auth(&card_key()), 0x9000);
    for slot in [0x9A, 0x9C] {
        assert_eq!(c.generate(slot).1, 0x9000);
    }
    assert_eq!(c.put_object(0x5FC105, b"old 9A certificate"), 0x9000);
    assert_eq!(c.put_object(0x5FC10A, b"old 9C certificate"), 0x9000);
    assert_eq!(c.put_object(0x5FC102, b"chuid"), 0x9000);
    let mut pin = h("0024008010");
    pin.extend(pin_block("123456"));
    pin.extend(pin_block("135790"));
    assert_eq!(c.tx(&pin).1, 0x9000);
    let mut puk = h("0024008110");
    puk.extend(b"12345678");
    puk.extend(b"24681357");
    assert_eq!(c.tx(&puk).1, 0x9000);
    assert_eq!(c.sw("00440000"), 0x9000);
    assert_eq!(c.lifecycle(), 2);
    c.new_session();
    c
}

fn public_point(generated: &[u8]) -> VerifyingKey {
    // 7F49 43 86 41 <04 X Y>
    assert_eq!(&generated[..5], &[0x7F, 0x49, 0x43, 0x86, 0x41]);
    VerifyingKey::from_sec1_bytes(&generated[5..]).unwrap()
}

fn signature_verifies(key: &VerifyingKey, hash: &[u8; 32], answer: &[u8]) -> bool {
    // 7C L 82 L <DER>
    let der = &answer[4..];
    let sig = Signature::from_der(der).unwrap();
    key.verify_prehash(hash, &sig).is_ok()
}

#[test]
fn issuer_renews_both_keys_and_their_certificates_on_a_locked_card() {
    let mut c = issued_card();
    assert_eq!(c.mgmt_auth(&card_key()), 0x9000);
    let (g9a, sw) = c.generate(0x9A);
    assert_eq!(sw, 0x9000, "GENERATE 9A with the issuer's key");
    let (g9c, sw) = c.generate(0x9C);
    assert_eq!(sw, 0x9000, "GENERATE 9C with the issuer's key");
    assert_eq!(c.put_object(0x5FC105, b"new 9A certificate"), 0x9000);
    assert_eq!(c.put_object(0x5FC10A, b"new 9C certificate"), 0x9000);
    // Key History (SP 800-73-4 Part 1 table 19): no retired keys on the card.
    assert_eq!(c.put_object(0x5FC10C, &h("C10100C20100FE00")), 0x9000);
    assert_eq!(c.lifecycle(), 2, "still LOCKED");
    let (obj, sw) = c.get_object(0x5FC10A);
    assert_eq!(sw, 0x9000);
    assert_eq!(&obj[2..], b"new 9C certificate");

    // The holder's PIN signs with the new keys (9C: one VERIFY per signature).
    let hash = [0x33; 32];
    assert_eq!(c.verify_pin("135790"), 0x9000);
    let (sig, sw) = c.sign(0x9A, &hash);
    assert_eq!(sw, 0x9000);
    assert!(signature_verifies(&public_point(&g9a), &hash, &sig));
    assert_eq!(c.verify_pin("135790"), 0x9000);
    let (sig, sw) = c.sign(0x9C, &hash);
    assert_eq!(sw, 0x9000);
    assert!(signature_verifies(&public_point(&g9c), &hash, &sig));

    // The renewal survives the image (saved and loaded like vchip does).
    let img = c.card.to_image_bytes().unwrap();
    let mut again = Host {
        card: Card::from_image_bytes(&img).unwrap(),
    };
    again.new_session();
    assert_eq!(again.lifecycle(), 2);
    assert_eq!(again.verify_pin("135790"), 0x9000);
    let (sig, sw) = again.sign(0x9C, &hash);
    assert_eq!(sw, 0x9000);
    assert!(signature_verifies(&public_point(&g9c), &hash, &sig));
}

#[test]
fn the_rest_of_a_locked_card_stays_as_issued_even_for_the_issuer() {
    let mut c = issued_card();
    assert_eq!(c.mgmt_auth(&card_key()), 0x9000);
    for slot in [0x9D, 0x9E, 0x82, 0x95] {
        assert_eq!(c.generate(slot).1, 0x6985, "GENERATE {slot:02X}");
    }
    for tag in [0x5FC102, 0x5FC107, 0x5FC109, 0x5FC10B, 0x5FC101, 0x5FFF00] {
        assert_eq!(c.put_object(tag, b"x"), 0x6985, "PUT DATA {tag:06X}");
    }
    assert_eq!(
        c.sw("00DB3FFF0C7E0A4F08A000000308000010"),
        0x6985,
        "Discovery"
    );
    let mut set = h("00FFFFFF13089B10");
    set.extend([0x11; 16]);
    assert_eq!(c.tx(&set).1, 0x6985, "SET MANAGEMENT KEY");
    assert_eq!(
        c.sw("00FE119A2206200102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F20"),
        0x6985,
        "IMPORT"
    );
    assert_eq!(c.sw("00FB0000"), 0x6985, "RESET TO BLANK");
    // The LDS application refuses every write on a LOCKED card (its data is signed in EF.SOD).
    assert_eq!(c.sw("00A4040C07A0000002471001"), 0x9000);
    assert_eq!(
        c.sw("00E000000962078002000A8302011E"),
        0x6985,
        "CREATE FILE"
    );
    assert_eq!(
        c.sw("00DA010B10000102030405060708090A0B0C0D0E0F"),
        0x6985,
        "SET BAC KEY SEED"
    );
    c.select();
    assert_eq!(c.lifecycle(), 2);
    let (obj, _) = c.get_object(0x5FC102);
    assert_eq!(&obj[2..], b"chuid", "CHUID unchanged");
}

#[test]
fn without_the_issuers_key_a_locked_card_answers_as_it_always_did() {
    let mut c = issued_card();
    // No authentication: 6985, as before the operational-state rights existed.
    assert_eq!(c.generate(0x9A).1, 0x6985);
    assert_eq!(c.put_object(0x5FC105, b"forged"), 0x6985);
    assert_eq!(c.put_object(0x5FC10C, &h("C10100C20100FE00")), 0x6985);
    // The transport (default) key and a wrong key are refused, and change nothing.
    assert_eq!(
        c.mgmt_auth(&MgmtKey::transport()),
        0x6A86,
        "wrong algorithm"
    );
    assert_eq!(
        c.mgmt_auth(&MgmtKey::new(MgmtAlgorithm::Aes128, &[0x4C; 16]).unwrap()),
        0x6982
    );
    assert_eq!(c.generate(0x9C).1, 0x6985);
    assert_eq!(c.put_object(0x5FC10A, b"forged"), 0x6985);
    let mut reset = h("002C028008");
    reset.extend(pin_block("000000"));
    assert_eq!(c.tx(&reset).1, 0x6982, "new PIN without the key");
    let mut puk = h("002C028108");
    puk.extend(b"00000000");
    assert_eq!(c.tx(&puk).1, 0x6982, "new PUK without the key");
    let (obj, _) = c.get_object(0x5FC10A);
    assert_eq!(&obj[2..], b"old 9C certificate");
    assert_eq!(c.verify_pin("135790"), 0x9000, "PIN unchanged");
}

#[test]
fn the_personalization_authentication_ends_with_the_lock() {
    let mut card = Card::new_blank(7).unwrap();
    card.power_on();
    let mut c = Host { card };
    c.select();
    assert_eq!(c.mgmt_auth(&MgmtKey::transport()), 0x9000);
    let mut set = h("00FFFFFF13089B10");
    set.extend([0x4B; 16]);
    assert_eq!(c.tx(&set).1, 0x9000);
    assert_eq!(c.mgmt_auth(&card_key()), 0x9000);
    assert_eq!(c.generate(0x9A).1, 0x9000);
    assert_eq!(c.sw("00440000"), 0x9000);
    // Same session, key authenticated before the LOCK: not the issuer's authentication.
    assert_eq!(c.generate(0x9A).1, 0x6985);
    assert_eq!(c.put_object(0x5FC105, b"x"), 0x6985);
    // A new authentication on the LOCKED card opens the issuer's rights.
    assert_eq!(c.mgmt_auth(&card_key()), 0x9000);
    assert_eq!(c.generate(0x9A).1, 0x9000);
    // A failed attempt closes them again.
    assert_eq!(
        c.mgmt_auth(&MgmtKey::new(MgmtAlgorithm::Aes128, &[0x01; 16]).unwrap()),
        0x6982
    );
    assert_eq!(c.generate(0x9A).1, 0x6985);
}

#[test]
fn a_card_locked_with_the_transport_key_grants_nobody_the_issuers_rights() {
    let mut card = Card::new_blank(8).unwrap();
    card.power_on();
    let mut c = Host { card };
    c.select();
    assert_eq!(c.mgmt_auth(&MgmtKey::transport()), 0x9000);
    assert_eq!(c.generate(0x9C).1, 0x9000);
    assert_eq!(c.sw("00440000"), 0x9000);
    c.new_session();
    // The key everybody knows authenticates, but opens nothing on a LOCKED card.
    assert_eq!(c.mgmt_auth(&MgmtKey::transport()), 0x9000);
    assert_eq!(c.generate(0x9C).1, 0x6985);
    assert_eq!(c.put_object(0x5FC10A, b"forged"), 0x6985);
    let mut reset = h("002C028008");
    reset.extend(pin_block("000000"));
    assert_eq!(c.tx(&reset).1, 0x6982);
}

#[test]
fn issuer_unblocks_a_blocked_pin_and_sets_a_new_puk() {
    let mut c = issued_card();
    for left in [0x63C2, 0x63C1, 0x63C0] {
        assert_eq!(c.verify_pin("000000"), left);
    }
    assert_eq!(c.verify_pin("135790"), 0x6983, "blocked");
    assert_eq!(c.mgmt_auth(&card_key()), 0x9000);
    // Malformed: a PIN not in PIN format, wrong lengths, unknown reference.
    let mut bad = h("002C028008");
    bad.extend(b"12ab5678");
    assert_eq!(c.tx(&bad).1, 0x6A80);
    assert_eq!(c.sw("002C028004313233FF"), 0x6A80);
    let mut other = h("002C029B08");
    other.extend(pin_block("975310"));
    assert_eq!(c.tx(&other).1, 0x6A88);
    assert_eq!(c.sw("002C010000"), 0x6A86, "P1 01 is not offered");
    // New PIN: counter back to 3, old PIN gone.
    let mut reset = h("002C028008");
    reset.extend(pin_block("975310"));
    assert_eq!(c.tx(&reset).1, 0x9000);
    assert_eq!(c.sw("0020008000"), 0x63C3, "retry counter reset");
    assert_eq!(c.verify_pin("135790"), 0x63C2);
    assert_eq!(c.verify_pin("975310"), 0x9000);
    assert_eq!(c.sign(0x9C, &[1; 32]).1, 0x9000, "the new PIN signs");
    // New PUK: the old one no longer unblocks, the new one does.
    let mut puk = h("002C028108");
    puk.extend(b"86420975");
    assert_eq!(c.tx(&puk).1, 0x9000);
    c.new_session();
    let mut with_old = h("002C008010");
    with_old.extend(b"24681357");
    with_old.extend(pin_block("111333"));
    assert_eq!(c.tx(&with_old).1, 0x63C9, "old PUK refused");
    let mut with_new = h("002C008010");
    with_new.extend(b"86420975");
    with_new.extend(pin_block("111333"));
    assert_eq!(
        c.tx(&with_new).1,
        0x9000,
        "new PUK unblocks, PUK counter reset"
    );
    assert_eq!(c.verify_pin("111333"), 0x9000);
    assert_eq!(c.lifecycle(), 2);
}

#[test]
fn issuer_rights_end_with_the_card_session() {
    let mut c = issued_card();
    assert_eq!(c.mgmt_auth(&card_key()), 0x9000);
    c.new_session();
    assert_eq!(c.generate(0x9A).1, 0x6985);
    let mut reset = h("002C028008");
    reset.extend(pin_block("975310"));
    assert_eq!(c.tx(&reset).1, 0x6982);
}
