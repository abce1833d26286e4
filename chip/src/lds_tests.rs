//! The LDS1 application and BAC through `Card::transmit`: personalization per the card
//! contract (coord/LDS-CONTRACT.md), then a reader that opens the chip with BAC (ICAO Doc 9303
//! Part 11 §4.3) and reads through secure messaging (§9.8). The reader side here is a small
//! terminal built on the BAC primitives, which are pinned to the Appendix D worked example in
//! `bac` and `sm`.

use crate::bac::{self, Key16};
use crate::mgmt::MgmtKey;
use crate::Card;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("test vector hex")
}

const MRZ_INFO: &[u8] = b"L898902C<369080619406236";
const SELECT_LDS: &str = "00A4040C07A0000002471001";
const SELECT_PIV: &str = "00A4040005A000000308";

/// An EF.COM as in Appendix D.4 (LDS version 0106, Unicode 040000, DG1 and DG2 present).
fn ef_com() -> Vec<u8> {
    h("60145F0104303130365F36063034303030305C026175")
}

fn dg2_like(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn split(r: &[u8]) -> (Vec<u8>, u16) {
    assert!(r.len() >= 2, "response without status word");
    (
        r[..r.len() - 2].to_vec(),
        u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]),
    )
}

struct Host {
    card: Card,
}

impl Host {
    fn new() -> Host {
        let mut card = Card::new_blank(0x0909_0909).unwrap();
        card.power_on();
        Host { card }
    }

    fn tx(&mut self, apdu: &[u8]) -> (Vec<u8>, u16) {
        split(&self.card.transmit(apdu))
    }

    fn sw(&mut self, hexstr: &str) -> u16 {
        self.tx(&h(hexstr)).1
    }

    /// External authentication with the transport management key in the PIV application.
    fn mgmt_auth(&mut self) {
        assert_eq!(self.sw(SELECT_PIV), 0x9000);
        let key = MgmtKey::transport();
        let (d, sw) = self.tx(&h("0087039B047C028100"));
        assert_eq!(sw, 0x9000);
        let mut challenge = d[4..12].to_vec();
        key.crypt_block(&mut challenge, true).unwrap();
        let mut apdu = h("0087039B0C7C0A8208");
        apdu.extend(&challenge);
        assert_eq!(self.tx(&apdu).1, 0x9000);
    }

    /// BLANK → PERSONALIZING with a PIV step (PUT DATA of a CHUID), management key kept.
    fn personalizing() -> Host {
        let mut c = Host::new();
        c.mgmt_auth();
        assert_eq!(c.sw("00DB3FFF085C035FC102530101"), 0x9000);
        assert_eq!(c.sw(SELECT_LDS), 0x9000);
        c
    }

    fn create(&mut self, fid: u16, size: usize) -> u16 {
        let mut apdu = vec![0x00, 0xE0, 0x00, 0x00, 0x0A, 0x62, 0x08, 0x80, 0x02];
        apdu.extend((size as u16).to_be_bytes());
        apdu.extend([0x83, 0x02]);
        apdu.extend(fid.to_be_bytes());
        self.tx(&apdu).1
    }

    fn write(&mut self, fid: u16, content: &[u8]) {
        let mut sel = h("00A4020C02");
        sel.extend(fid.to_be_bytes());
        assert_eq!(self.tx(&sel).1, 0x9000);
        for (i, chunk) in content.chunks(223).enumerate() {
            let off = (i * 223) as u16;
            let mut apdu = vec![0x00, 0xD6];
            apdu.extend(off.to_be_bytes());
            apdu.push(chunk.len() as u8);
            apdu.extend(chunk);
            assert_eq!(self.tx(&apdu).1, 0x9000, "UPDATE BINARY at {off}");
        }
    }

    fn set_seed(&mut self, mrz_information: &[u8]) -> u16 {
        let mut apdu = h("00DA010B10");
        apdu.extend(bac::key_seed_from_mrz_information(mrz_information).iter());
        self.tx(&apdu).1
    }

    /// A personalized and locked card: EF.COM, DG1, a 5000-byte DG2, EF.SOD, key seed.
    fn issued() -> Host {
        let mut c = Host::personalizing();
        for (fid, content) in [
            (0x011E, ef_com()),
            (0x0101, b"DG1 fixture".to_vec()),
            (0x0102, dg2_like(5000)),
            (0x011D, vec![0x77; 300]),
        ] {
            assert_eq!(c.create(fid, content.len()), 0x9000);
            c.write(fid, &content);
        }
        assert_eq!(c.set_seed(MRZ_INFO), 0x9000);
        assert_eq!(c.sw("00440000"), 0x9000, "LOCK from the LDS application");
        assert_eq!(c.card.lifecycle(), crate::Lifecycle::Locked);
        c.card.power_on();
        c
    }

    /// BAC as an inspection system does it (Part 11 §4.3.3.1); `None` if the chip refused.
    fn bac(&mut self, mrz_information: &[u8]) -> Result<Terminal, u16> {
        assert_eq!(self.sw(SELECT_LDS), 0x9000);
        let seed = bac::key_seed_from_mrz_information(mrz_information);
        let k_enc = bac::derive_key(&seed, bac::KDF_ENC);
        let k_mac = bac::derive_key(&seed, bac::KDF_MAC);
        let (rnd_icc, sw) = self.tx(&h("0084000008"));
        if sw != 0x9000 {
            return Err(sw);
        }
        assert_eq!(rnd_icc.len(), 8);
        let rnd_ifd = h("781723860C06C226");
        let k_ifd = h("0B795240CB7049B01C19B33E32804F0B");
        let mut s = rnd_ifd.clone();
        s.extend(&rnd_icc);
        s.extend(&k_ifd);
        let e_ifd = bac::tdes_encrypt(&k_enc, &s).unwrap();
        let m_ifd = bac::retail_mac(&k_mac, &e_ifd);
        let mut apdu = h("0082000028");
        apdu.extend(&e_ifd);
        apdu.extend(m_ifd);
        apdu.push(0x28);
        let (resp, sw) = self.tx(&apdu);
        if sw != 0x9000 {
            return Err(sw);
        }
        assert_eq!(resp.len(), 40);
        assert_eq!(
            bac::retail_mac(&k_mac, &resp[..32]),
            resp[32..],
            "M_ICC verifies"
        );
        let r = bac::tdes_decrypt(&k_enc, &resp[..32]).unwrap();
        assert_eq!(&r[..8], &rnd_icc[..], "chip echoes RND.ICC");
        assert_eq!(&r[8..16], &rnd_ifd[..], "chip echoes RND.IFD");
        let mut kseed = [0u8; 16];
        for i in 0..16 {
            kseed[i] = k_ifd[i] ^ r[16 + i];
        }
        let mut ssc = [0u8; 8];
        ssc[..4].copy_from_slice(&rnd_icc[4..]);
        ssc[4..].copy_from_slice(&rnd_ifd[4..]);
        Ok(Terminal {
            ks_enc: bac::derive_key(&kseed, bac::KDF_ENC),
            ks_mac: bac::derive_key(&kseed, bac::KDF_MAC),
            ssc: u64::from_be_bytes(ssc),
        })
    }

    /// Send a protected command, follow 61xx with GET RESPONSE, unprotect the answer.
    fn sm(
        &mut self,
        t: &mut Terminal,
        ins: u8,
        p1: u8,
        p2: u8,
        data: &[u8],
        le: Option<u8>,
    ) -> (Vec<u8>, u16) {
        let apdu = t.protect(ins, p1, p2, data, le);
        let (mut resp, mut sw) = self.tx(&apdu);
        while sw >> 8 == 0x61 {
            let (more, sw2) = self.tx(&[0x00, 0xC0, 0x00, 0x00, sw as u8]);
            resp.extend(more);
            sw = sw2;
        }
        t.unprotect(&resp, sw)
    }

    /// Read a whole EF through SM: SELECT, then READ BINARY in chunks of `chunk` bytes.
    fn sm_read_ef(&mut self, t: &mut Terminal, fid: u16, chunk: u8) -> Vec<u8> {
        let (_, sw) = self.sm(t, 0xA4, 0x02, 0x0C, &fid.to_be_bytes(), None);
        assert_eq!(sw, 0x9000, "SELECT {fid:04X}");
        let mut out = Vec::new();
        loop {
            let off = out.len() as u16;
            let (d, sw) = self.sm(t, 0xB0, (off >> 8) as u8, off as u8, &[], Some(chunk));
            match sw {
                0x9000 => {
                    let n = d.len();
                    out.extend(d);
                    let want = if chunk == 0 { 256 } else { usize::from(chunk) };
                    if n < want {
                        return out;
                    }
                }
                0x6B00 => return out,
                other => panic!("READ BINARY at {off}: {other:04X}"),
            }
        }
    }
}

/// The inspection system's half of secure messaging (Part 11 §9.8).
struct Terminal {
    ks_enc: Key16,
    ks_mac: Key16,
    ssc: u64,
}

impl Terminal {
    fn protect(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8], le: Option<u8>) -> Vec<u8> {
        self.ssc += 1;
        let mut dos = Vec::new();
        if !data.is_empty() {
            let mut v = vec![0x01];
            v.extend(bac::tdes_encrypt(&self.ks_enc, &bac::pad(data)).unwrap());
            crate::tlv::push(&mut dos, 0x87, &v);
        }
        if let Some(le) = le {
            crate::tlv::push(&mut dos, 0x97, &[le]);
        }
        let mut n = self.ssc.to_be_bytes().to_vec();
        n.extend(bac::pad(&[0x0C, ins, p1, p2]));
        n.extend(&dos);
        let mac = bac::retail_mac(&self.ks_mac, &n);
        crate::tlv::push(&mut dos, 0x8E, &mac);
        let mut apdu = vec![0x0C, ins, p1, p2, dos.len() as u8];
        apdu.extend(dos);
        apdu.push(0x00);
        apdu
    }

    fn unprotect(&mut self, resp: &[u8], sw: u16) -> (Vec<u8>, u16) {
        self.ssc += 1;
        if resp.is_empty() {
            return (Vec::new(), sw); // unprotected error (SM error)
        }
        let objs = crate::tlv::parse_all(resp).expect("response DOs");
        let mac_at = resp.len() - 10;
        let mut k = self.ssc.to_be_bytes().to_vec();
        k.extend(&resp[..mac_at]);
        let last = objs.last().unwrap();
        assert_eq!(last.tag, 0x8E);
        assert_eq!(
            bac::retail_mac(&self.ks_mac, &k),
            last.value,
            "response MAC"
        );
        let do99 = objs.iter().find(|o| o.tag == 0x99).expect("DO'99'");
        assert_eq!(u16::from_be_bytes([do99.value[0], do99.value[1]]), sw);
        let data = match objs.iter().find(|o| o.tag == 0x87) {
            None => Vec::new(),
            Some(o) => {
                assert_eq!(o.value[0], 0x01);
                let p = bac::tdes_decrypt(&self.ks_enc, &o.value[1..]).unwrap();
                bac::unpad(&p).unwrap().to_vec()
            }
        };
        (data, sw)
    }
}

// ------------------------------------------------------------ personalization ---

#[test]
fn personalization_then_bac_reads_every_file_back() {
    let mut c = Host::issued();
    let mut t = c.bac(MRZ_INFO).expect("BAC with the right MRZ");
    assert_eq!(c.sm_read_ef(&mut t, 0x011E, 0x04), ef_com());
    assert_eq!(c.sm_read_ef(&mut t, 0x0101, 0xDF), b"DG1 fixture".to_vec());
    assert_eq!(c.sm_read_ef(&mut t, 0x0102, 0xDF), dg2_like(5000));
    // Le = 00 (256 bytes): the protected answer is longer than 256 bytes and comes in two
    // parts through 61xx / GET RESPONSE; its MAC still verifies.
    assert_eq!(c.sm_read_ef(&mut t, 0x0102, 0x00), dg2_like(5000));
    assert_eq!(c.sm_read_ef(&mut t, 0x011D, 0x80), vec![0x77; 300]);
}

#[test]
fn read_binary_by_short_ef_identifier_plain_and_protected() {
    let mut c = Host::personalizing();
    assert_eq!(c.create(0x011E, 22), 0x9000);
    c.write(0x011E, &ef_com());
    assert_eq!(c.set_seed(MRZ_INFO), 0x9000);
    // plain, during personalization: SFI 1E, offset 2
    assert_eq!(c.tx(&h("00B09E0204")), (h("5F010430"), 0x9000));
    assert_eq!(c.sw("00B0810000"), 0x6A82, "no DG1 yet");
    let mut t = c.bac(MRZ_INFO).unwrap();
    let (d, sw) = c.sm(&mut t, 0xB0, 0x9E, 0x00, &[], Some(0x00));
    assert_eq!((d, sw), (ef_com(), 0x9000));
    // offset past the end, protected status word
    let (d, sw) = c.sm(&mut t, 0xB0, 0x9E, 22, &[], Some(1));
    assert_eq!((d.len(), sw), (0, 0x6B00));
}

#[test]
fn personalization_commands_follow_lifecycle_and_management_key() {
    // BLANK: 6985 even with the management key.
    let mut c = Host::new();
    c.mgmt_auth();
    assert_eq!(c.sw(SELECT_LDS), 0x9000);
    assert_eq!(c.create(0x0101, 10), 0x6985);
    assert_eq!(c.set_seed(MRZ_INFO), 0x6985);
    assert_eq!(
        c.sw("00A4020C020101"),
        0x6982,
        "plain SELECT outside personalization"
    );

    // PERSONALIZING without the management key in this session: 6982.
    let mut c = Host::personalizing();
    assert_eq!(c.create(0x0101, 10), 0x9000);
    c.card.power_on();
    assert_eq!(c.sw(SELECT_LDS), 0x9000);
    assert_eq!(c.create(0x0102, 10), 0x6982);
    assert_eq!(c.sw("00D600000101"), 0x6982);
    assert_eq!(c.set_seed(MRZ_INFO), 0x6982);
    assert_eq!(c.sw("00A4020C020101"), 0x6982);
    assert_eq!(c.sw("00B0000001"), 0x6982);
    // The flag is card-wide: authenticated in PIV, used in the LDS application.
    c.mgmt_auth();
    assert_eq!(c.sw(SELECT_LDS), 0x9000);
    assert_eq!(c.create(0x0102, 10), 0x9000);
    assert_eq!(c.sw("00D600000101"), 0x9000, "the new file is selected");
}

#[test]
fn locked_card_refuses_writes_and_plain_reads() {
    let mut c = Host::issued();
    assert_eq!(c.sw(SELECT_LDS), 0x9000);
    assert_eq!(c.sw("00A4020C02011E"), 0x6982, "plain SELECT");
    assert_eq!(c.sw("00B09E0000"), 0x6982, "plain READ BINARY by SFI");
    assert_eq!(c.sw("00B0000004"), 0x6982, "plain READ BINARY");
    c.mgmt_auth();
    assert_eq!(c.sw(SELECT_LDS), 0x9000);
    assert_eq!(c.sw("00A4020C02011E"), 0x6982, "still 6982 with the key");
    assert_eq!(c.create(0x0103, 10), 0x6985);
    assert_eq!(c.sw("00D600000101"), 0x6985);
    assert_eq!(c.set_seed(MRZ_INFO), 0x6985);
    assert_eq!(c.sw("00440000"), 0x6985, "already locked");
    assert_eq!(c.sw(SELECT_PIV), 0x9000);
    assert_eq!(c.sw("00FB0000"), 0x6985, "RESET TO BLANK after lock");
}

#[test]
fn create_file_update_and_read_errors() {
    let mut c = Host::personalizing();
    assert_eq!(c.create(0x0101, 90), 0x9000);
    assert_eq!(c.create(0x0101, 90), 0x6A89, "exists");
    assert_eq!(c.create(0x0102, 32768), 0x6A84, "too big");
    assert_eq!(c.create(0x0102, 32767), 0x9000, "largest");
    assert_eq!(c.create(0x0111, 10), 0x6A80, "not an LDS1 FID");
    assert_eq!(c.create(0x3F00, 10), 0x6A80, "not an LDS1 FID");
    assert_eq!(c.create(0x0103, 0), 0x6A80, "empty file");
    assert_eq!(c.sw("00E0000006620480020010"), 0x6A80, "no FID");
    assert_eq!(c.sw("00E000000A6308800200108302010C"), 0x6A80, "not an FCP");
    assert_eq!(
        c.sw("00E000000D620B8002001083020105840100"),
        0x6A80,
        "unknown tag"
    );
    assert_eq!(
        c.sw("00E000000D620B80020010830201058201 01"),
        0x9000,
        "descriptor 01"
    );
    assert_eq!(c.sw("00E000000E620C800200108302010E82020121"), 0x6A80);
    assert_eq!(c.sw("00E000000A620780020010830201"), 0x6700, "Lc mismatch");
    assert_eq!(c.sw("00E001000A620880020010830201 0C"), 0x6A86);
    // UPDATE BINARY bounds on DG5 (16 bytes, selected by CREATE FILE)
    assert_eq!(c.sw("00D6000F01AA"), 0x9000, "last byte");
    assert_eq!(c.sw("00D6000F02AAAA"), 0x6B00, "past the end");
    assert_eq!(c.sw("00D6001001AA"), 0x6B00, "offset past the end");
    assert_eq!(c.sw("00D60000"), 0x6700, "no data");
    // SELECT and READ BINARY
    assert_eq!(c.sw("00A4020C020109"), 0x6A82, "DG9 not created");
    assert_eq!(c.sw("00A4020C03010101"), 0x6700);
    assert_eq!(c.sw("00A4020102 0101"), 0x6A86);
    let (fcp, sw) = c.tx(&h("00A4020002010500"));
    assert_eq!(sw, 0x9000);
    assert_eq!(fcp, h("620E 80020010 820101 83020105 880128"));
    assert_eq!(
        c.tx(&h("00B0000F05")),
        (h("AA"), 0x9000),
        "short read at the end"
    );
    assert_eq!(c.sw("00B0001001"), 0x6B00);
    assert_eq!(c.sw("00B00000"), 0x6700, "no Le");
    assert_eq!(c.sw("00B0E10000"), 0x6A86, "b7-b6 of an SFI P1 must be 0");
    // no current EF after reselecting the application
    assert_eq!(c.sw(SELECT_LDS), 0x9000);
    assert_eq!(c.sw("00B0000001"), 0x6986);
    assert_eq!(c.sw("00D600000101"), 0x6986);
    // key seed length
    assert_eq!(c.sw("00DA010B0F000102030405060708090A0B0C0D0E"), 0x6700);
    assert_eq!(c.sw("00DA010C10000102030405060708090A0B0C0D0E0F"), 0x6A86);
    assert_eq!(c.sw("00CA000000"), 0x6D00, "unknown INS");
}

// ------------------------------------------------------------------- BAC ---

#[test]
fn wrong_mrz_fails_mutual_authentication_with_6300() {
    let mut c = Host::issued();
    assert_eq!(c.bac(b"L898902C<369080619406237").err(), Some(0x6300));
    // no session: a protected command is an SM error
    let mut t = Terminal {
        ks_enc: bac::derive_key(&[0; 16], 1),
        ks_mac: bac::derive_key(&[0; 16], 2),
        ssc: 0,
    };
    let (_, sw) = c.sm(&mut t, 0xA4, 0x02, 0x0C, &h("011E"), None);
    assert_eq!(sw, 0x6988);
    // the challenge was used up: MUTUAL AUTHENTICATE without a new one
    let mut apdu = h("0082000028");
    apdu.extend([0u8; 40]);
    apdu.push(0x28);
    assert_eq!(c.tx(&apdu).1, 0x6985);
    // and the right MRZ still works afterwards
    assert!(c.bac(MRZ_INFO).is_ok());
}

#[test]
fn bac_needs_a_key_seed_and_well_formed_commands() {
    let mut c = Host::personalizing();
    assert_eq!(c.sw("0084000008"), 0x6985, "no key seed yet");
    assert_eq!(c.set_seed(MRZ_INFO), 0x9000);
    assert_eq!(c.sw("0084000004"), 0x6700);
    assert_eq!(c.sw("0084010008"), 0x6A86);
    assert_eq!(c.sw("0084000008"), 0x9000);
    assert_eq!(c.sw("008200000400000000"), 0x6700, "40 bytes expected");
    assert_eq!(c.sw("0084000008"), 0x9000);
    assert_eq!(c.sw("00B0000001"), 0x6986, "any other command...");
    let mut apdu = h("0082000028");
    apdu.extend([0u8; 40]);
    assert_eq!(c.tx(&apdu).1, 0x6985, "...uses up the challenge");
    // BAC also works while PERSONALIZING (the host checks its work)
    assert!(c.bac(MRZ_INFO).is_ok());
}

#[test]
fn bad_mac_is_6988_and_ends_the_session() {
    let mut c = Host::issued();
    let mut t = c.bac(MRZ_INFO).unwrap();
    let mut apdu = t.protect(0xA4, 0x02, 0x0C, &h("011E"), None);
    let n = apdu.len();
    apdu[n - 3] ^= 0x01; // inside DO'8E'
    assert_eq!(c.tx(&apdu), (vec![], 0x6988));
    t.ssc += 1;
    // the session is gone: a correct command is refused too
    let (_, sw) = c.sm(&mut t, 0xA4, 0x02, 0x0C, &h("011E"), None);
    assert_eq!(sw, 0x6988);
    // missing DO'8E'
    let mut t = c.bac(MRZ_INFO).unwrap();
    assert_eq!(c.sw("0CB000000397010400"), 0x6988);
    t.ssc += 2;
    let (_, sw) = c.sm(&mut t, 0xB0, 0x9E, 0x00, &[], Some(4));
    assert_eq!(sw, 0x6988);
}

#[test]
fn protected_errors_writes_and_unknown_instructions() {
    let mut c = Host::issued();
    let mut t = c.bac(MRZ_INFO).unwrap();
    assert_eq!(c.sm(&mut t, 0xA4, 0x02, 0x0C, &h("0105"), None).1, 0x6A82);
    assert_eq!(
        c.sm(&mut t, 0xD6, 0x00, 0x00, &h("00"), None).1,
        0x6982,
        "no writes"
    );
    assert_eq!(c.sm(&mut t, 0xDA, 0x01, 0x0B, &[0; 16], None).1, 0x6982);
    assert_eq!(c.sm(&mut t, 0xCA, 0x00, 0x00, &[], Some(0)).1, 0x6D00);
    // the session survived the protected errors
    assert_eq!(c.sm_read_ef(&mut t, 0x011E, 0xDF), ef_com());
    // SELECT of the LDS application inside SM keeps the session
    let aid = h("A0000002471001");
    assert_eq!(c.sm(&mut t, 0xA4, 0x04, 0x0C, &aid, None).1, 0x9000);
    assert_eq!(c.sm_read_ef(&mut t, 0x0101, 0xDF), b"DG1 fixture".to_vec());
}

#[test]
fn a_plain_command_or_reset_ends_secure_messaging() {
    let mut c = Host::issued();
    let mut t = c.bac(MRZ_INFO).unwrap();
    assert_eq!(c.sw("00A4020C02011E"), 0x6982, "plain SELECT after lock");
    assert_eq!(c.sm(&mut t, 0xA4, 0x02, 0x0C, &h("011E"), None).1, 0x6988);
    let mut t = c.bac(MRZ_INFO).unwrap();
    c.card.power_on();
    assert_eq!(c.sw(SELECT_LDS), 0x9000);
    assert_eq!(c.sm(&mut t, 0xA4, 0x02, 0x0C, &h("011E"), None).1, 0x6988);
    // secure messaging in the PIV application is not offered
    let mut t = c.bac(MRZ_INFO).unwrap();
    assert_eq!(c.sw(SELECT_PIV), 0x9000);
    let apdu = t.protect(0xA4, 0x02, 0x0C, &h("011E"), None);
    assert_eq!(c.tx(&apdu).1, 0x6E00);
}

#[test]
fn corrupt_ef_flips_the_last_byte_only_when_read() {
    let mut c = Host::issued();
    c.card.corrupt_ef(0x0101);
    let mut t = c.bac(MRZ_INFO).unwrap();
    let mut expect = b"DG1 fixture".to_vec();
    *expect.last_mut().unwrap() ^= 1;
    assert_eq!(c.sm_read_ef(&mut t, 0x0101, 0xDF), expect);
    // a read that does not include the last byte is unchanged
    assert_eq!(
        c.sm(&mut t, 0xB0, 0x81, 0x00, &[], Some(3)).0,
        b"DG1".to_vec()
    );
    assert_eq!(
        c.sm_read_ef(&mut t, 0x011E, 0xDF),
        ef_com(),
        "other EFs intact"
    );
    // the stored file is unchanged, and the setting is not saved
    let img = c.card.to_image_bytes().unwrap();
    let mut again = Host {
        card: Card::from_image_bytes(&img).unwrap(),
    };
    again.card.power_on();
    let mut t = again.bac(MRZ_INFO).unwrap();
    assert_eq!(
        again.sm_read_ef(&mut t, 0x0101, 0xDF),
        b"DG1 fixture".to_vec()
    );
}

// ------------------------------------------------- image and RESET TO BLANK ---

#[test]
fn image_keeps_files_and_key_seed_sealed_and_show_lists_them() {
    let c = Host::issued();
    let img = c.card.to_image_bytes().unwrap();
    let text = String::from_utf8(img.clone()).unwrap();
    let seed = hex::encode(bac::key_seed_from_mrz_information(MRZ_INFO).as_slice());
    assert!(!text.to_lowercase().contains(&seed), "key seed in clear");
    let public = c.card.public_description().unwrap();
    assert_eq!(public["version"], 2);
    let lds = &public["applications"]["lds"];
    assert_eq!(lds["bac_key_seed_set"], true);
    assert_eq!(lds["files"]["011e"], hex::encode(ef_com()));
    assert_eq!(lds["files"].as_object().unwrap().len(), 4);
    let mut loaded = Host {
        card: Card::from_image_bytes(&img).unwrap(),
    };
    loaded.card.power_on();
    assert_eq!(loaded.card.lifecycle(), crate::Lifecycle::Locked);
    let mut t = loaded.bac(MRZ_INFO).expect("seed persisted");
    assert_eq!(loaded.sm_read_ef(&mut t, 0x0102, 0xDF), dg2_like(5000));
}

#[test]
fn version_1_images_load_without_the_lds_application() {
    // A version 1 image as the previous vchip wrote it: PIV only.
    let card = Card::new_with_applications(
        3,
        3,
        10,
        crate::Applications {
            piv: true,
            lds: false,
        },
    )
    .unwrap();
    let bytes = card.to_image_bytes().unwrap();
    let file: crate::image::ImageFile = serde_json::from_slice(&bytes).unwrap();
    let (secrets, salt) = crate::image::open(&file).unwrap();
    let mut body = file.body.clone();
    body["version"] = serde_json::json!(1);
    let v1 = crate::image::seal(body.clone(), &secrets, &salt).unwrap();
    let loaded = Card::from_image_bytes(&serde_json::to_vec(&v1).unwrap()).unwrap();
    assert_eq!(loaded.application_names(), vec!["piv"]);
    // an LDS in a version 1 image, or an unknown version, is refused with the field named
    let full = Card::new_blank(4).unwrap().to_image_bytes().unwrap();
    let file: crate::image::ImageFile = serde_json::from_slice(&full).unwrap();
    let (secrets, salt) = crate::image::open(&file).unwrap();
    for (version, needle) in [(1, "applications.lds"), (3, "version")] {
        let mut body = file.body.clone();
        body["version"] = serde_json::json!(version);
        let sealed = crate::image::seal(body, &secrets, &salt).unwrap();
        let err = Card::from_image_bytes(&serde_json::to_vec(&sealed).unwrap())
            .err()
            .unwrap();
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn reset_to_blank_deletes_every_lds_file_and_the_key_seed() {
    let mut c = Host::personalizing();
    assert_eq!(c.create(0x011E, 22), 0x9000);
    c.write(0x011E, &ef_com());
    assert_eq!(c.set_seed(MRZ_INFO), 0x9000);
    assert_eq!(c.sw(SELECT_PIV), 0x9000);
    assert_eq!(c.sw("00FB0000"), 0x9000);
    assert_eq!(c.card.lifecycle(), crate::Lifecycle::Blank);
    let public = c.card.public_description().unwrap();
    assert_eq!(public["applications"]["lds"]["bac_key_seed_set"], false);
    assert!(public["applications"]["lds"]["files"]
        .as_object()
        .unwrap()
        .is_empty());
    // personalize again: the FID is free, BAC has no seed, the key is needed again
    assert_eq!(c.sw(SELECT_LDS), 0x9000);
    assert_eq!(c.sw("0084000008"), 0x6985);
    c.mgmt_auth();
    assert_eq!(c.sw("00DB3FFF085C035FC102530101"), 0x9000);
    assert_eq!(c.sw(SELECT_LDS), 0x9000);
    assert_eq!(c.create(0x011E, 22), 0x9000);
}

#[test]
fn card_without_lds_answers_6a82_and_without_piv_cannot_be_personalized() {
    let mut card = Card::new_with_applications(
        1,
        3,
        10,
        crate::Applications {
            piv: true,
            lds: false,
        },
    )
    .unwrap();
    card.power_on();
    assert_eq!(split(&card.transmit(&h(SELECT_LDS))).1, 0x6A82);
    let mut card = Card::new_without_piv(2).unwrap();
    card.power_on();
    assert_eq!(split(&card.transmit(&h(SELECT_PIV))).1, 0x6A82);
    assert_eq!(split(&card.transmit(&h(SELECT_LDS))).1, 0x9000);
    assert_eq!(
        split(&card.transmit(&h("00E000000A6208800200108302011E"))).1,
        0x6985
    );
}
