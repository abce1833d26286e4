//! PACE through `Card::transmit`: EF.CardAccess without access control, the ICAO Doc 9303
//! Part 11 Appendix G.1 APDU transcript answered byte for byte by a personalized and locked
//! card, AES secure messaging after it, wrong passwords, the persistent failure counter and
//! the guessing delay. The terminal here is a small one built on [`crate::pace`]'s primitives
//! (pinned to App. G.1 in `pace_tests`); the host crate has its own independent terminal.

use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use super::*;
use crate::mgmt::MgmtKey;
use crate::Card;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).expect("test vector hex")
}

fn up(b: &[u8]) -> String {
    hex::encode_upper(b)
}

const SELECT_LDS: &str = "00A4040C07A0000002471001";
const SELECT_PIV: &str = "00A4040005A000000308";
/// App. G.1's specimen MRZ information.
const MRZ_INFORMATION: &[u8] = b"T22000129364081251010318";
const CAN: &[u8] = b"482917";

fn split(r: &[u8]) -> (Vec<u8>, u16) {
    (
        r[..r.len() - 2].to_vec(),
        u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]),
    )
}

fn tx(card: &mut Card, apdu: &[u8]) -> (Vec<u8>, u16) {
    split(&card.transmit(apdu))
}

fn sw(card: &mut Card, apdu: &str) -> u16 {
    tx(card, &h(apdu)).1
}

/// A locked card with EF.COM, DG1, the PACE MRZ password of App. G.1 and a CAN; no BAC seed.
fn issued() -> Card {
    let mut card = Card::new_blank(0x1717_1717).unwrap();
    card.power_on();
    assert_eq!(sw(&mut card, SELECT_PIV), 0x9000);
    let (d, s) = tx(&mut card, &h("0087039B047C028100"));
    assert_eq!(s, 0x9000);
    let mut challenge = d[4..12].to_vec();
    MgmtKey::transport()
        .crypt_block(&mut challenge, true)
        .unwrap();
    let mut apdu = h("0087039B0C7C0A8208");
    apdu.extend(&challenge);
    assert_eq!(tx(&mut card, &apdu).1, 0x9000);
    assert_eq!(sw(&mut card, "00DB3FFF085C035FC102530101"), 0x9000);
    assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    for (fid, content) in [
        ("011E", h("60145F0104303130365F36063034303030305C026175")),
        ("0101", b"DG1 fixture".to_vec()),
    ] {
        let mut create = h(&format!("00E000000A62088002{:04X}8302{fid}", content.len()));
        assert_eq!(tx(&mut card, &create).1, 0x9000);
        create.clear();
        let mut upd = h("00D60000");
        upd.push(content.len() as u8);
        upd.extend(&content);
        assert_eq!(tx(&mut card, &upd).1, 0x9000);
    }
    // Before a PACE password is set, EF.CardAccess does not exist.
    assert_eq!(sw(&mut card, "00A4020C02011C"), 0x6A82);
    let mut mrz = h("00DA010E14");
    mrz.extend(Sha1::digest(MRZ_INFORMATION));
    assert_eq!(tx(&mut card, &mrz).1, 0x9000);
    let mut can = h("00DA010F06");
    can.extend(CAN);
    assert_eq!(tx(&mut card, &can).1, 0x9000);
    assert_eq!(
        sw(&mut card, "00DA010F06313233343541"),
        0x6A80,
        "CAN with a letter"
    );
    assert_eq!(sw(&mut card, "00DA010F053132333435"), 0x6700, "5-digit CAN");
    assert_eq!(sw(&mut card, "00440000"), 0x9000);
    card.power_on();
    card
}

fn failures(card: &Card) -> u64 {
    let body = card.public_description().unwrap();
    let apps = body["applications"].as_object().unwrap();
    apps["lds"]["public"]["pace_failures"]
        .as_u64()
        .or_else(|| apps["lds"]["pace_failures"].as_u64())
        .expect("pace_failures in the image")
}

/// A terminal for tests: PACE with the given password, then AES secure messaging.
struct Terminal {
    ks_enc: [u8; 16],
    ks_mac: [u8; 16],
    ssc: u128,
}

/// Runs PACE; `Err(sw)` with the status word of the first step that failed.
fn pace(card: &mut Card, password_ref: u8, secret: &[u8], param: u8) -> Result<Terminal, u16> {
    let c = Curve::from_param_id(param).unwrap();
    let mse = format!("0022C1A412800A04007F0007020204020283010{password_ref}8401{param:02X}");
    let s = sw(card, &mse);
    if s != 0x9000 {
        return Err(s);
    }
    let (r, s) = tx(card, &h("10860000027C0000"));
    if s != 0x9000 {
        return Err(s);
    }
    let nonce = aes_cbc_decrypt(&password_key(secret), &r[4..]).unwrap();
    let sk_map = c.random_scalar().unwrap();
    let mut ga = h("1086000045");
    ga.extend(tlv::encode(
        0x7C,
        &tlv::encode(0x81, &c.mul(&sk_map, None).unwrap()),
    ));
    ga.push(0);
    let (r, s) = tx(card, &ga);
    assert_eq!(s, 0x9000);
    let hp = c.mul(&sk_map, Some(&r[4..])).unwrap();
    let g_hat = c.map_generator(&nonce, &hp).unwrap();
    let sk = c.random_scalar().unwrap();
    let pk = c.mul(&sk, Some(&g_hat)).unwrap();
    let mut ga = h("1086000045");
    ga.extend(tlv::encode(0x7C, &tlv::encode(0x83, &pk)));
    ga.push(0);
    let (r, s) = tx(card, &ga);
    assert_eq!(s, 0x9000);
    let pk_ic = r[4..].to_vec();
    let k = x_coordinate(&c.mul(&sk, Some(&pk_ic)).unwrap()).unwrap();
    let ks_enc = kdf_aes128(&k, KDF_ENC);
    let ks_mac = kdf_aes128(&k, KDF_MAC);
    let mut ga = h("008600000C");
    ga.extend(tlv::encode(
        0x7C,
        &tlv::encode(0x85, &auth_token(&ks_mac, &pk_ic)),
    ));
    ga.push(0);
    let (r, s) = tx(card, &ga);
    if s != 0x9000 {
        return Err(s);
    }
    assert_eq!(r[4..], auth_token(&ks_mac, &pk), "chip token");
    Ok(Terminal {
        ks_enc: *ks_enc,
        ks_mac: *ks_mac,
        ssc: 0,
    })
}

fn pad16(d: &[u8]) -> Vec<u8> {
    let mut v = d.to_vec();
    v.push(0x80);
    while !v.len().is_multiple_of(16) {
        v.push(0);
    }
    v
}

impl Terminal {
    fn iv(&self) -> Vec<u8> {
        use aes::cipher::{BlockCipherEncrypt, KeyInit};
        let mut b = self.ssc.to_be_bytes().into();
        aes::Aes128::new(&self.ks_enc.into()).encrypt_block(&mut b);
        b.to_vec()
    }

    fn cbc(&self, data: &[u8], encrypt: bool) -> Vec<u8> {
        use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
        let iv = self.iv();
        if encrypt {
            cbc::Encryptor::<aes::Aes128>::new_from_slices(&self.ks_enc, &iv)
                .unwrap()
                .encrypt_padded_vec::<NoPadding>(data)
        } else {
            cbc::Decryptor::<aes::Aes128>::new_from_slices(&self.ks_enc, &iv)
                .unwrap()
                .decrypt_padded_vec::<NoPadding>(data)
                .unwrap()
        }
    }

    /// Protect, send, check and open the answer; returns data and status word.
    fn send(
        &mut self,
        card: &mut Card,
        ins: u8,
        p1: u8,
        p2: u8,
        data: &[u8],
        le: Option<u8>,
    ) -> (Vec<u8>, u16) {
        let apdu = self.protect(ins, p1, p2, data, le);
        let (r, sw) = tx(card, &apdu);
        self.open(&r, sw)
    }

    /// The protected C-APDU (SSC + 1).
    fn protect(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8], le: Option<u8>) -> Vec<u8> {
        self.ssc += 1;
        let mut body = Vec::new();
        if !data.is_empty() {
            let mut v = vec![0x01];
            v.extend(self.cbc(&pad16(data), true));
            tlv::push(&mut body, 0x87, &v);
        }
        if let Some(le) = le {
            tlv::push(&mut body, 0x97, &[le]);
        }
        let mut n = self.ssc.to_be_bytes().to_vec();
        n.extend(pad16(&[0x0C, ins, p1, p2]));
        n.extend(&body);
        tlv::push(&mut body, 0x8E, &cmac8(&self.ks_mac, &pad16(&n)));
        let mut apdu = vec![0x0C, ins, p1, p2, body.len() as u8];
        apdu.extend(&body);
        apdu.push(0);
        apdu
    }

    /// Check and open a protected answer (SSC + 1).
    fn open(&mut self, r: &[u8], sw: u16) -> (Vec<u8>, u16) {
        self.ssc += 1;
        let mac_at = r.len() - 10;
        let mut k = self.ssc.to_be_bytes().to_vec();
        k.extend(&r[..mac_at]);
        assert_eq!(r[mac_at..mac_at + 2], [0x8E, 0x08]);
        assert_eq!(
            r[mac_at + 2..],
            cmac8(&self.ks_mac, &pad16(&k)),
            "response MAC"
        );
        let objs = tlv::parse_all(&r[..mac_at]).unwrap();
        let mut out = Vec::new();
        for o in &objs {
            if o.tag == 0x87 {
                let plain = self.cbc(&o.value[1..], false);
                let end = plain.iter().rposition(|b| *b == 0x80).unwrap();
                out = plain[..end].to_vec();
            }
        }
        (out, sw)
    }
}

#[test]
fn ef_card_access_is_readable_without_access_control_on_a_locked_card() {
    let mut card = issued();
    assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    // By short EF identifier 1C (READ BINARY P1 = 9C), then by SELECT and READ BINARY.
    let (d, s) = tx(&mut card, &h("00B09C0000"));
    assert_eq!((up(&d), s), (up(&CARD_ACCESS), 0x9000));
    assert_eq!(sw(&mut card, "00A4020C02011C"), 0x9000);
    let (d, s) = tx(&mut card, &h("00B0000000"));
    assert_eq!((up(&d), s), (up(&CARD_ACCESS), 0x9000));
    // The data groups stay closed in plain.
    assert_eq!(sw(&mut card, "00A4020C020101"), 0x6982);
    assert_eq!(sw(&mut card, "00B0810000"), 0x6982);
}

#[test]
fn appendix_g1_transcript_on_the_card_then_aes_secure_messaging() {
    // ICAO 9303-11 App. G.1: the terminal's APDUs and the chip's answers, verbatim.
    let mut card = issued();
    assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    Randomness::set_next(Randomness::Fixed {
        nonce: h("3F00C4D39D153F2B2A214A078D899B22"),
        sk_map: h("498FF49756F2DC1587840041839A85982BE7761D14715FB091EFA7BCE9058560"),
        sk_dh: h("107CF58696EF6155053340FD633392BA81909DF7B9706F226F32086C7AFF974A"),
    });
    assert_eq!(
        sw(&mut card, "0022C1A40F800A04007F00070202040202830101"),
        0x9000
    );
    let transcript = [
        (
            "10860000027C0000",
            "7C12801095A3A016522EE98D01E76CB6B98B42C3",
        ),
        (
            "10860000457C438141047ACF3EFC982EC45565A4B155129EFBC74650DCBFA6362D896FC70262E0C2CC5E\
             544552DCB6725218799115B55C9BAA6D9F6BC3A9618E70C25AF71777A9C4922D00",
            "7C43824104824FBA91C9CBE26BEF53A0EBE7342A3BF178CEA9F45DE0B70AA601651FBA3F57\
             30D8C879AAA9C9F73991E61B58F4D52EB87A0A0C709A49DC63719363CCD13C54",
        ),
        (
            "10860000457C438341042DB7A64C0355044EC9DF190514C625CBA2CEA48754887122F3A5EF0D5EDD301C\
             3556F3B3B186DF10B857B58F6A7EB80F20BA5DC7BE1D43D9BF850149FBB3646200",
            "7C438441049E880F842905B8B3181F7AF7CAA9F0EFB743847F44A306D2D28C1D9EC65DF6DB\
             7764B22277A2EDDC3C265A9F018F9CB852E111B768B326904B59A0193776F094",
        ),
        (
            "008600000C7C0A8508C2B0BD78D94BA86600",
            "7C0A86083ABB9674BCE93C08",
        ),
    ];
    for (cmd, answer) in transcript {
        let (d, s) = tx(&mut card, &h(cmd));
        assert_eq!((up(&d), s), (up(&h(answer)), 0x9000), "answer to {cmd}");
    }
    assert_eq!(failures(&card), 0);
    // The first protected command with App. G.1's KS_ENC / KS_MAC and SSC 0 → 1: SELECT of
    // the eMRTD application. ICAO publishes no AES secure-messaging example; this APDU and its
    // answer are those computed by an independent implementation (jcexpress's
    // IcaoAppendixG1PaceTest, from its own Python reference of §9.8), a cross-check only.
    let (d, s) = tx(
        &mut card,
        &h("0CA4040C1D871101752F676B09FAC86A87D632749A49C7CC8E08C18BA1FCE707BD9F00"),
    );
    assert_eq!(
        (up(&d), s),
        ("990290008E08BEA7B381C494A079".to_string(), 0x9000)
    );
    // Then our test terminal continues the session (SSC = 2) and reads EF.COM.
    let mut t = Terminal {
        ks_enc: h("F5F0E35C0D7161EE6724EE513A0D9A7F").try_into().unwrap(),
        ks_mac: h("FE251C7858B356B24514B3BD5F4297D1").try_into().unwrap(),
        ssc: 2,
    };
    assert_eq!(
        t.send(&mut card, 0xA4, 0x02, 0x0C, &[0x01, 0x1E], None).1,
        0x9000
    );
    let (d, s) = t.send(&mut card, 0xB0, 0x00, 0x00, &[], Some(0));
    assert_eq!(
        (up(&d), s),
        (
            "60145F0104303130365F36063034303030305C026175".into(),
            0x9000
        )
    );
}

#[test]
fn pace_with_can_and_mrz_on_both_curves_opens_the_data_groups() {
    let mut card = issued();
    let k_mrz = Sha1::digest(MRZ_INFORMATION).to_vec();
    for (pwd, secret, param) in [
        (2, CAN.to_vec(), PARAM_BP256),
        (1, k_mrz.clone(), PARAM_BP256),
        (2, CAN.to_vec(), PARAM_P256),
        (1, k_mrz.clone(), PARAM_P256),
    ] {
        assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
        let mut t = pace(&mut card, pwd, &secret, param).expect("PACE");
        assert_eq!(
            t.send(&mut card, 0xA4, 0x02, 0x0C, &[0x01, 0x01], None).1,
            0x9000
        );
        let (d, s) = t.send(&mut card, 0xB0, 0x00, 0x00, &[], Some(0));
        assert_eq!((d, s), (b"DG1 fixture".to_vec(), 0x9000));
        // A tampered protected command ends the session (6988), like BAC's.
        let (_, s) = tx(&mut card, &h("0CB000000D9701008E080000000000000000"));
        assert_eq!(s, 0x6988);
        let (_, s) = tx(&mut card, &h("0CB000000D9701008E080000000000000000"));
        assert_eq!(s, 0x6988, "no session any more");
    }
}

#[test]
fn a_wrong_can_fails_mutual_authentication_and_the_card_stays_usable() {
    let mut card = issued();
    assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    assert_eq!(
        pace(&mut card, 2, b"482918", PARAM_BP256).err(),
        Some(0x6300)
    );
    assert_eq!(failures(&card), 1);
    // The failure survives a power cycle (it is in the image).
    let mut card = Card::from_image_bytes(&card.to_image_bytes().unwrap()).unwrap();
    card.power_on();
    assert_eq!(failures(&card), 1);
    assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    let mut t = pace(&mut card, 2, CAN, PARAM_BP256).expect("right CAN");
    assert_eq!(failures(&card), 0);
    assert_eq!(
        t.send(&mut card, 0xA4, 0x02, 0x0C, &[0x01, 0x1E], None).1,
        0x9000
    );
    // The MRZ is not the CAN.
    assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    assert_eq!(
        pace(&mut card, 2, &Sha1::digest(MRZ_INFORMATION), PARAM_BP256).err(),
        Some(0x6300)
    );
}

#[test]
fn repeated_failures_slow_the_card_down_until_a_success() {
    let mut card = issued();
    assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    // Three runs abandoned after the encrypted nonce count like three wrong passwords.
    for _ in 0..3 {
        assert_eq!(
            sw(&mut card, "0022C1A40F800A04007F00070202040202830102"),
            0x9000
        );
        let started = Instant::now();
        assert_eq!(sw(&mut card, "10860000027C0000"), 0x9000);
        assert!(started.elapsed() < Duration::from_millis(200));
        card.power_on();
        assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    }
    assert_eq!(failures(&card), 3);
    // The fourth run waits guess_delay(3) = 250 ms before the nonce, the fifth 500 ms.
    for expected in [250, 500] {
        assert_eq!(
            sw(&mut card, "0022C1A40F800A04007F00070202040202830102"),
            0x9000
        );
        let started = Instant::now();
        assert_eq!(sw(&mut card, "10860000027C0000"), 0x9000);
        assert!(started.elapsed() >= Duration::from_millis(expected));
    }
    assert_eq!(failures(&card), 5);
    // Another encoding of the empty 7C (long-form length) is counted and delayed too.
    assert_eq!(
        sw(&mut card, "0022C1A40F800A04007F00070202040202830102"),
        0x9000
    );
    let started = Instant::now();
    let (_, s) = tx(&mut card, &h("10860000037C810000"));
    assert_eq!(s, 0x9000);
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_eq!(failures(&card), 6);
    let started = Instant::now();
    pace(&mut card, 2, CAN, PARAM_P256).expect("right CAN, after the delay");
    assert!(started.elapsed() >= Duration::from_millis(2000));
    assert_eq!(failures(&card), 0);
    let started = Instant::now();
    pace(&mut card, 2, CAN, PARAM_P256).expect("no delay after a success");
    // (an uncleared counter would make this run wait guess_delay(7) = 4 s)
    assert!(started.elapsed() < Duration::from_millis(1000));
}

#[test]
fn pace_commands_are_refused_out_of_order_or_without_a_password() {
    let mut card = issued();
    assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    // GENERAL AUTHENTICATE without MSE:Set AT.
    assert_eq!(sw(&mut card, "10860000027C0000"), 0x6985);
    // MSE:Set AT, then another command: the run is gone.
    assert_eq!(
        sw(&mut card, "0022C1A40F800A04007F00070202040202830102"),
        0x9000
    );
    assert_eq!(sw(&mut card, "00B09C0000"), 0x9000);
    assert_eq!(sw(&mut card, "10860000027C0000"), 0x6985);
    // Wrong P1-P2, unknown password reference (PIN = 03).
    assert_eq!(
        sw(&mut card, "0022C1B60F800A04007F00070202040202830102"),
        0x6A86
    );
    assert_eq!(
        sw(&mut card, "0022C1A40F800A04007F00070202040202830103"),
        0x6A88
    );
    // Steps 1 to 3 are chained (CLA 10); an unchained one ends the run.
    assert_eq!(
        sw(&mut card, "0022C1A40F800A04007F00070202040202830102"),
        0x9000
    );
    assert_eq!(sw(&mut card, "00860000027C0000"), 0x6A80);
    assert_eq!(sw(&mut card, "10860000027C0000"), 0x6985);
    // A blank card offers no PACE.
    let mut blank = Card::new_blank(5).unwrap();
    blank.power_on();
    assert_eq!(sw(&mut blank, SELECT_LDS), 0x9000);
    assert_eq!(
        sw(&mut blank, "0022C1A40F800A04007F00070202040202830102"),
        0x6985
    );
    assert_eq!(sw(&mut blank, "00B09C0000"), 0x6982);
}

#[test]
fn chip_and_active_authentication_refusals() {
    let mut card = issued();
    assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    // No keys were generated on this card: CA's MSE:Set AT and AA are refused inside SM.
    let mut t = pace(&mut card, 2, CAN, PARAM_BP256).unwrap();
    let at = tlv::encode(0x80, &super::ca::OID_CA_ECDH_AES_128);
    assert_eq!(t.send(&mut card, 0x22, 0x41, 0xA4, &at, None).1, 0x6985);
    assert_eq!(
        t.send(&mut card, 0x88, 0x00, 0x00, b"12345678", Some(0)).1,
        0x6985
    );
    // GENERAL AUTHENTICATE inside SM without CA's MSE:Set AT.
    assert_eq!(
        t.send(&mut card, 0x86, 0x00, 0x00, &h("7C00"), Some(0)).1,
        0x6985
    );
    // Plain INTERNAL AUTHENTICATE and key generation on a locked card.
    assert_eq!(sw(&mut card, "00880000083132333435363738"), 0x6D00);
    assert_eq!(sw(&mut card, "0046000100"), 0x6985);
}

#[test]
fn generated_keys_stay_on_the_chip_and_drive_ca_and_aa() {
    // Personalizing card: generate both keys, lock, then CA and AA through the test terminal.
    let mut card = Card::new_blank(0x1717_0146).unwrap();
    card.power_on();
    assert_eq!(sw(&mut card, SELECT_PIV), 0x9000);
    let (d, s) = tx(&mut card, &h("0087039B047C028100"));
    assert_eq!(s, 0x9000);
    let mut challenge = d[4..12].to_vec();
    MgmtKey::transport()
        .crypt_block(&mut challenge, true)
        .unwrap();
    let mut apdu = h("0087039B0C7C0A8208");
    apdu.extend(&challenge);
    assert_eq!(tx(&mut card, &apdu).1, 0x9000);
    assert_eq!(sw(&mut card, "00DB3FFF085C035FC102530101"), 0x9000);
    assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    let (ca_pk, s) = tx(&mut card, &h("0046000100"));
    assert_eq!(s, 0x9000);
    let (aa_pk, s) = tx(&mut card, &h("0046000200"));
    assert_eq!(s, 0x9000);
    assert_eq!(sw(&mut card, "0046000300"), 0x6A86);
    let ca_pk = tlv::parse_single(tlv::parse_single(&ca_pk, 0x7F49).unwrap(), 0x86)
        .unwrap()
        .to_vec();
    let aa_pk = tlv::parse_single(tlv::parse_single(&aa_pk, 0x7F49).unwrap(), 0x86)
        .unwrap()
        .to_vec();
    let mut can = h("00DA010F06");
    can.extend(CAN);
    assert_eq!(tx(&mut card, &can).1, 0x9000);
    assert_eq!(sw(&mut card, "00440000"), 0x9000);
    // The image records that the keys exist; the private keys are only in the sealed part.
    let public = card.public_description().unwrap().to_string();
    assert!(public.contains("\"ca_key_set\":true"), "{public}");
    let reloaded = Card::from_image_bytes(&card.to_image_bytes().unwrap()).unwrap();
    assert_eq!(reloaded.lifecycle(), crate::Lifecycle::Locked);
    card.power_on();
    assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
    let mut t = pace(&mut card, 2, CAN, PARAM_P256).unwrap();
    // AA: r ‖ s over the challenge verifies with the generated key.
    let (sig, s) = t.send(&mut card, 0x88, 0x00, 0x00, b"chal8byt", Some(0));
    assert_eq!(s, 0x9000);
    {
        use p256::ecdsa::signature::Verifier;
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&aa_pk).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        assert!(vk.verify(b"chal8byt", &sig).is_ok());
    }
    // CA: 7C 00 under the PACE keys, then the new keys with SSC 0.
    let eph = Curve::P256.random_scalar().unwrap();
    let pk = Curve::P256.mul(&eph, None).unwrap();
    let at = tlv::encode(0x80, &super::ca::OID_CA_ECDH_AES_128);
    assert_eq!(t.send(&mut card, 0x22, 0x41, 0xA4, &at, None).1, 0x9000);
    let ga = tlv::encode(0x7C, &tlv::encode(0x80, &pk));
    let (d, s) = t.send(&mut card, 0x86, 0x00, 0x00, &ga, Some(0));
    assert_eq!((up(&d), s), ("7C00".to_string(), 0x9000));
    let k = x_coordinate(&Curve::P256.mul(&eph, Some(&ca_pk)).unwrap()).unwrap();
    let mut old = Terminal {
        ks_enc: t.ks_enc,
        ks_mac: t.ks_mac,
        ssc: t.ssc,
    };
    let mut t = Terminal {
        ks_enc: *kdf_aes128(&k, KDF_ENC),
        ks_mac: *kdf_aes128(&k, KDF_MAC),
        ssc: 0,
    };
    assert_eq!(
        t.send(&mut card, 0xA4, 0x04, 0x0C, &h("A0000002471001"), None)
            .1,
        0x9000
    );
    assert_eq!(
        t.send(&mut card, 0xA4, 0x02, 0x0C, &[0x01, 0x1C], None).1,
        0x9000
    );
    // The PACE keys no longer work: the card answers 6988 in plain and ends the session.
    let apdu = old.protect(0xB0, 0x00, 0x00, &[], Some(4));
    assert_eq!(tx(&mut card, &apdu), (vec![], 0x6988));
    assert_eq!(
        tx(&mut card, &t.protect(0xB0, 0x00, 0x00, &[], Some(4))).1,
        0x6988,
        "no session any more"
    );
}

mod randomized {
    //! Random PACE / CA / AA commands (the parsers of MSE:Set AT, GENERAL AUTHENTICATE,
    //! INTERNAL AUTHENTICATE, GENERATE KEY PAIR and PUT DATA 01 0E / 01 0F) on a locked card:
    //! every answer is a status word, no session opens without the password, and the card
    //! still runs PACE afterwards. (cargo-fuzz needs nightly; this runs in plain cargo test.)
    use proptest::prelude::*;

    use super::*;

    fn pace_apdu() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![Just(0x00u8), Just(0x10), Just(0x0C)],
            prop_oneof![
                Just(0x22u8),
                Just(0x86),
                Just(0x88),
                Just(0x46),
                Just(0xDA),
                Just(0xB0)
            ],
            prop_oneof![
                Just(0x00u8),
                Just(0xC1),
                Just(0x41),
                Just(0x9C),
                any::<u8>()
            ],
            prop_oneof![
                Just(0x00u8),
                Just(0xA4),
                Just(0x0E),
                Just(0x0F),
                any::<u8>()
            ],
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..80),
                Just(h("800A04007F00070202040202830102")),
                Just(h("7C00")),
                (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..70)).prop_map(|(t, v)| {
                    tlv::encode(0x7C, &tlv::encode(u32::from(0x80 | (t & 0x07)), &v))
                }),
            ],
            proptest::option::of(any::<u8>()),
        )
            .prop_map(|(cla, ins, p1, p2, body, le)| {
                let mut v = vec![cla, ins, p1, p2];
                if !body.is_empty() {
                    v.push(body.len() as u8);
                    v.extend(&body);
                }
                if let Some(le) = le {
                    v.push(le);
                }
                v
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn random_pace_commands_get_a_status_word_and_open_nothing(
            seq in proptest::collection::vec(pace_apdu(), 1..24)
        ) {
            let mut card = issued();
            prop_assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
            for a in &seq {
                let r = card.transmit(a);
                prop_assert!(r.len() >= 2 && r.len() <= 258);
                let (_, s) = split(&r);
                prop_assert!(matches!(s >> 8, 0x90 | 0x61 | 0x63 | 0x67 | 0x68 | 0x69 | 0x6A | 0x6B | 0x6D | 0x6E | 0x6F),
                    "unexpected SW {s:04X} for {}", hex::encode(a));
                // Nothing random may open the data groups.
                // (6883: a random chained command left a chain open, which this ends.)
                let (_, s) = tx(&mut card, &h("00B0810000"));
                prop_assert!(s == 0x6982 || s == 0x6883, "plain READ BINARY of DG1: {s:04X}");
            }
            // Still a working card: PACE with the CAN (after the delay of any runs counted).
            card.power_on();
            prop_assert_eq!(sw(&mut card, SELECT_LDS), 0x9000);
            prop_assert!(pace(&mut card, 2, CAN, PARAM_P256).is_ok());
        }
    }
}
