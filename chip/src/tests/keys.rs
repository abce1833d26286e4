//! PIV keys (SP 800-73-4): GENERATE ASYMMETRIC KEY PAIR on P-256 with signatures checked by
//! the p256 verifier, GENERAL AUTHENTICATE (PIN policy per slot, malformed templates, ECDH,
//! management-key mutual and external authentication), SET MANAGEMENT KEY (AES-128 as the card
//! contract says), IMPORT, and that no command returns a private key.

use super::*;

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
