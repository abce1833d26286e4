//! APDU vectors for every instruction the card knows, well-formed and malformed, run against
//! the in-process card (`Card::transmit`). Expected values come from SP 800-73-4, ISO 7816-4
//! and the card contract (docs/card.md); signatures are checked with the p256 verifier.
//!
//! By subject: [`card_os`], [`vendor`], [`data_objects`], [`pin`], [`keys`], [`lifecycle`] and
//! [`randomized`]; this file holds the host side they share.

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

mod card_os;
mod data_objects;
mod keys;
mod lifecycle;
mod pin;
mod randomized;
mod vendor;
