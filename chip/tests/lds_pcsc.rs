//! The LDS application end to end through real pcscd + vpcd: personalize a `vchip` card over
//! PC/SC (CREATE FILE, UPDATE BINARY, SET BAC KEY SEED, LOCK), then read it back as an
//! inspection system does, with BAC and secure messaging (ICAO Doc 9303 Part 11 §4.3, §9.7,
//! §9.8). The reader here is written in this file from the standard (on the `des`, `cbc` and
//! `sha1` crates), not taken from the chip crate nor from `personalization`, and is itself
//! checked against the Appendix D worked example first. Fails (never skips) without pcscd/vpcd.

use std::ffi::CString;
use std::process::Command;

use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit,
};
use sha1::{Digest, Sha1};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("hex")
}

// ----------------------------------------------------------------- reader ---

/// Padding method 2 of ISO/IEC 9797-1.
fn pad(d: &[u8]) -> Vec<u8> {
    let mut v = d.to_vec();
    v.push(0x80);
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
    v
}

fn unpad(d: &[u8]) -> Vec<u8> {
    let end = d.iter().rposition(|b| *b == 0x80).expect("padding");
    d[..end].to_vec()
}

/// Part 11 §9.7.1.1: SHA-1(seed ‖ counter), first 16 bytes, odd parity.
fn kdf(seed: &[u8], counter: u8) -> [u8; 16] {
    let mut hsh = Sha1::new();
    hsh.update(seed);
    hsh.update([0, 0, 0, counter]);
    let d = hsh.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    for b in &mut k {
        *b = (*b & 0xFE) | u8::from((*b & 0xFE).count_ones() % 2 == 0);
    }
    k
}

fn enc3(k: &[u8; 16], d: &[u8]) -> Vec<u8> {
    cbc::Encryptor::<des::TdesEde2>::new_from_slices(k, &[0; 8])
        .unwrap()
        .encrypt_padded_vec::<NoPadding>(d)
}

fn dec3(k: &[u8; 16], d: &[u8]) -> Vec<u8> {
    cbc::Decryptor::<des::TdesEde2>::new_from_slices(k, &[0; 8])
        .unwrap()
        .decrypt_padded_vec::<NoPadding>(d)
        .unwrap()
}

/// ISO/IEC 9797-1 MAC algorithm 3 (DES, padding method 2).
fn mac(k: &[u8; 16], msg: &[u8]) -> Vec<u8> {
    let ka = des::Des::new_from_slice(&k[..8]).unwrap();
    let kb = des::Des::new_from_slice(&k[8..]).unwrap();
    let mut y = [0u8; 8];
    for block in pad(msg).chunks(8) {
        for i in 0..8 {
            y[i] ^= block[i];
        }
        let mut b = y.into();
        ka.encrypt_block(&mut b);
        y = b.into();
    }
    let mut b = y.into();
    kb.decrypt_block(&mut b);
    ka.encrypt_block(&mut b);
    let out: [u8; 8] = b.into();
    out.to_vec()
}

/// BER length of a DO.
fn do_bytes(tag: u8, v: &[u8]) -> Vec<u8> {
    let mut o = vec![tag];
    match v.len() {
        n if n < 0x80 => o.push(n as u8),
        n if n <= 0xFF => o.extend([0x81, n as u8]),
        n => o.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    o.extend(v);
    o
}

/// Split concatenated BER-TLV DOs with one-byte tags (all SM DOs are).
fn dos(mut d: &[u8]) -> Vec<(u8, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let tag = d[0];
        let (len, hl) = match d[1] {
            0x81 => (usize::from(d[2]), 3),
            0x82 => (usize::from(d[2]) << 8 | usize::from(d[3]), 4),
            n => (usize::from(n), 2),
        };
        out.push((tag, d[hl..hl + len].to_vec(), d[..hl + len].to_vec()));
        d = &d[hl + len..];
    }
    out
}

struct Sm {
    ks_enc: [u8; 16],
    ks_mac: [u8; 16],
    ssc: u64,
}

impl Sm {
    /// Part 11 §9.8.4 (as in Appendix D.4 steps a–f).
    fn protect(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8], le: Option<u8>) -> Vec<u8> {
        self.ssc += 1;
        let mut body = Vec::new();
        if !data.is_empty() {
            let mut v = vec![0x01];
            v.extend(enc3(&self.ks_enc, &pad(data)));
            body.extend(do_bytes(0x87, &v));
        }
        if let Some(le) = le {
            body.extend(do_bytes(0x97, &[le]));
        }
        let mut n = self.ssc.to_be_bytes().to_vec();
        n.extend(pad(&[0x0C, ins, p1, p2]));
        n.extend(&body);
        body.extend(do_bytes(0x8E, &mac(&self.ks_mac, &n)));
        let mut apdu = vec![0x0C, ins, p1, p2, body.len() as u8];
        apdu.extend(body);
        apdu.push(0);
        apdu
    }

    /// Part 11 §9.8.6 (Appendix D.4 steps h–k). Returns the plain data; panics on a bad MAC.
    fn unprotect(&mut self, resp: &[u8], sw: u16) -> Vec<u8> {
        self.ssc += 1;
        let objs = dos(resp);
        let mut k = self.ssc.to_be_bytes().to_vec();
        let mut data = Vec::new();
        let mut checked = false;
        for (tag, value, raw) in &objs {
            match tag {
                0x87 => {
                    k.extend(raw);
                    assert_eq!(value[0], 0x01);
                    data = unpad(&dec3(&self.ks_enc, &value[1..]));
                }
                0x99 => {
                    k.extend(raw);
                    assert_eq!(u16::from_be_bytes([value[0], value[1]]), sw, "DO'99'");
                }
                0x8E => {
                    assert_eq!(&mac(&self.ks_mac, &k), value, "response MAC");
                    checked = true;
                }
                other => panic!("unexpected DO {other:02X}"),
            }
        }
        assert!(checked, "response without DO'8E'");
        data
    }
}

#[test]
fn reader_reproduces_the_appendix_d_worked_example() {
    let mut s = Sha1::new();
    s.update(b"L898902C<369080619406236");
    let seed = s.finalize()[..16].to_vec();
    assert_eq!(hex::encode_upper(&seed), "239AB9CB282DAF66231DC5A4DF6BFBAE");
    let (k_enc, k_mac) = (kdf(&seed, 1), kdf(&seed, 2));
    assert_eq!(hex::encode_upper(k_enc), "AB94FDECF2674FDFB9B391F85D7F76F2");
    assert_eq!(hex::encode_upper(k_mac), "7962D9ECE03D1ACD4C76089DCE131543");
    let e_ifd = enc3(
        &k_enc,
        &h("781723860C06C226 4608F91988702212 0B795240CB7049B01C19B33E32804F0B"),
    );
    assert_eq!(
        hex::encode_upper(&e_ifd),
        "72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2"
    );
    assert_eq!(hex::encode_upper(mac(&k_mac, &e_ifd)), "5F1448EEA8AD90A7");
    let mut sm = Sm {
        ks_enc: h("979EC13B1CBFE9DCD01AB0FED307EAE5").try_into().unwrap(),
        ks_mac: h("F1CB1F1FB5ADF208806B89DC579DC1F8").try_into().unwrap(),
        ssc: 0x887022120C06C226,
    };
    assert_eq!(
        sm.protect(0xA4, 0x02, 0x0C, &h("011E"), None),
        h("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")
    );
    assert!(sm
        .unprotect(&h("990290008E08FA855A5D4C50A8ED"), 0x9000)
        .is_empty());
    assert_eq!(
        sm.protect(0xB0, 0x00, 0x00, &[], Some(4)),
        h("0CB000000D9701048E08ED6705417E96BA5500")
    );
    assert_eq!(
        sm.unprotect(
            &h("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED"),
            0x9000
        ),
        h("60145F01")
    );
}

// --------------------------------------------------------------- the card ---

struct Pcsc {
    card: pcsc::Card,
}

impl Pcsc {
    fn connect(reader: &str) -> Pcsc {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcscd");
        let name = CString::new(reader).unwrap();
        let card = ctx
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
            .expect("connect to the vchip card");
        Pcsc { card }
    }

    /// Transmit; follows 61xx with GET RESPONSE.
    fn tx(&self, apdu: &[u8]) -> (Vec<u8>, u16) {
        let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
        let r = self
            .card
            .transmit(apdu, &mut buf)
            .expect("transmit")
            .to_vec();
        assert!(r.len() >= 2, "no status word");
        let mut data = r[..r.len() - 2].to_vec();
        let mut sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
        while sw >> 8 == 0x61 {
            let r = self
                .card
                .transmit(&[0x00, 0xC0, 0x00, 0x00, sw as u8], &mut buf)
                .expect("GET RESPONSE")
                .to_vec();
            data.extend(&r[..r.len() - 2]);
            sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
        }
        (data, sw)
    }

    fn sw(&self, s: &str) -> u16 {
        self.tx(&h(s)).1
    }

    /// BAC (Part 11 §4.3.3.1) with our RND.IFD / K.IFD; Err(sw) when the chip refuses.
    fn bac(&self, mrz_information: &str) -> Result<Sm, u16> {
        assert_eq!(self.sw("00A4040C07A0000002471001"), 0x9000);
        let seed = Sha1::digest(mrz_information.as_bytes())[..16].to_vec();
        let (k_enc, k_mac) = (kdf(&seed, 1), kdf(&seed, 2));
        let (rnd_icc, sw) = self.tx(&h("0084000008"));
        if sw != 0x9000 {
            return Err(sw);
        }
        let mut rnd_ifd = [0u8; 8];
        let mut k_ifd = [0u8; 16];
        getrandom::fill(&mut rnd_ifd).unwrap();
        getrandom::fill(&mut k_ifd).unwrap();
        let mut s = rnd_ifd.to_vec();
        s.extend(&rnd_icc);
        s.extend(k_ifd);
        let e_ifd = enc3(&k_enc, &s);
        let mut apdu = h("0082000028");
        apdu.extend(&e_ifd);
        apdu.extend(mac(&k_mac, &e_ifd));
        apdu.push(0x28);
        let (resp, sw) = self.tx(&apdu);
        if sw != 0x9000 {
            return Err(sw);
        }
        assert_eq!(mac(&k_mac, &resp[..32]), resp[32..], "M_ICC");
        let r = dec3(&k_enc, &resp[..32]);
        assert_eq!(&r[..8], &rnd_icc[..]);
        assert_eq!(&r[8..16], &rnd_ifd[..]);
        let kseed: Vec<u8> = k_ifd.iter().zip(&r[16..]).map(|(a, b)| a ^ b).collect();
        let mut ssc = rnd_icc[4..].to_vec();
        ssc.extend(&rnd_ifd[4..]);
        Ok(Sm {
            ks_enc: kdf(&kseed, 1),
            ks_mac: kdf(&kseed, 2),
            ssc: u64::from_be_bytes(ssc.try_into().unwrap()),
        })
    }

    fn sm(
        &self,
        sm: &mut Sm,
        ins: u8,
        p1: u8,
        p2: u8,
        data: &[u8],
        le: Option<u8>,
    ) -> (Vec<u8>, u16) {
        let (resp, sw) = self.tx(&sm.protect(ins, p1, p2, data, le));
        if resp.is_empty() {
            sm.ssc += 1;
            return (resp, sw);
        }
        (sm.unprotect(&resp, sw), sw)
    }

    /// SELECT + READ BINARY in chunks of 0xDF bytes through secure messaging.
    fn read_ef(&self, sm: &mut Sm, fid: u16) -> Vec<u8> {
        let (_, sw) = self.sm(sm, 0xA4, 0x02, 0x0C, &fid.to_be_bytes(), None);
        assert_eq!(sw, 0x9000, "SELECT {fid:04X}");
        let mut out = Vec::new();
        loop {
            let off = out.len() as u16;
            let (d, sw) = self.sm(sm, 0xB0, (off >> 8) as u8, off as u8, &[], Some(0xDF));
            match sw {
                0x9000 if d.len() == 0xDF => out.extend(d),
                0x9000 => {
                    out.extend(d);
                    return out;
                }
                0x6B00 => return out,
                other => panic!("READ BINARY {fid:04X} at {off}: {other:04X}"),
            }
        }
    }
}

/// The LDS files of the test card: an EF.COM listing DG1, DG2, DG11, DG12, and bodies.
fn lds_files() -> Vec<(u16, Vec<u8>)> {
    let dg = |tag: u8, n: usize| -> Vec<u8> {
        let mut v = vec![tag, 0x82, (n >> 8) as u8, n as u8];
        v.extend((0..n).map(|i| (i % 253) as u8));
        v
    };
    vec![
        (
            0x011E,
            h("6016 5F010430313037 5F3606303430303030 5C0461756B6C"),
        ),
        (0x0101, dg(0x61, 93)),
        (0x0102, dg(0x75, 12_000)),
        (0x010B, dg(0x6B, 150)),
        (0x010C, dg(0x6C, 60)),
        (0x011D, dg(0x77, 1_800)),
    ]
}

const MRZ_INFO: &str = "L898902C<369080619406236";

/// Personalization through PC/SC, as the contract describes it.
fn personalize(c: &Pcsc) {
    // PIV: management key 9B (transport 3DES key, external authentication), one PIV step.
    assert_eq!(c.sw("00A4040005A000000308"), 0x9000);
    let (d, sw) = c.tx(&h("0087039B047C028100"));
    assert_eq!(sw, 0x9000);
    let key = des::TdesEde3::new_from_slice(&h("010203040506070801020304050607080102030405060708"))
        .unwrap();
    let mut block: [u8; 8] = d[4..12].try_into().unwrap();
    let mut b = block.into();
    key.encrypt_block(&mut b);
    block = b.into();
    let mut apdu = h("0087039B0C7C0A8208");
    apdu.extend(block);
    assert_eq!(c.tx(&apdu).1, 0x9000, "management key");
    assert_eq!(c.sw("00DB3FFF085C035FC102530101"), 0x9000, "PUT DATA");
    // LDS
    assert_eq!(c.sw("00A4040C07A0000002471001"), 0x9000);
    for (fid, content) in lds_files() {
        let mut create = h("00E000000A62088002");
        create.extend((content.len() as u16).to_be_bytes());
        create.extend([0x83, 0x02]);
        create.extend(fid.to_be_bytes());
        assert_eq!(c.tx(&create).1, 0x9000, "CREATE FILE {fid:04X}");
        assert_eq!(c.tx(&create).1, 0x6A89, "exists");
        for (i, chunk) in content.chunks(223).enumerate() {
            let mut upd = vec![0x00, 0xD6];
            upd.extend(((i * 223) as u16).to_be_bytes());
            upd.push(chunk.len() as u8);
            upd.extend(chunk);
            assert_eq!(c.tx(&upd).1, 0x9000, "UPDATE BINARY {fid:04X}");
        }
        // plain read-back while personalizing
        let mut sel = h("00A4020C02");
        sel.extend(fid.to_be_bytes());
        assert_eq!(c.tx(&sel).1, 0x9000);
        let (head, sw) = c.tx(&h("00B0000004"));
        assert_eq!((head, sw), (content[..4].to_vec(), 0x9000));
    }
    let mut seed = h("00DA010B10");
    seed.extend(&Sha1::digest(MRZ_INFO.as_bytes())[..16]);
    assert_eq!(c.tx(&seed).1, 0x9000, "SET BAC KEY SEED");
    // LOCK in the PIV application (the management key flag is card-wide)
    assert_eq!(c.sw("00A4040005A000000308"), 0x9000);
    assert_eq!(c.sw("00440000"), 0x9000, "LOCK");
}

#[test]
fn personalize_lock_and_read_back_through_bac_over_pcsc() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("card.img");
    chip::Card::new_blank(0x00DA_7A01)
        .unwrap()
        .save(&img)
        .unwrap();
    let slot = testrig::Slot::lease();
    {
        let inserted = slot.insert(&img, &[]);
        let c = Pcsc::connect(&slot.reader_name);
        personalize(&c);
        drop(c);
        inserted.pull();
    }
    // Re-inserted: the card is LOCKED, plain access is refused, BAC reads everything.
    {
        let inserted = slot.insert(&img, &[]);
        let c = Pcsc::connect(&slot.reader_name);
        assert_eq!(c.sw("00A4040C07A0000002471001"), 0x9000);
        assert_eq!(c.sw("00A4020C02011E"), 0x6982, "plain SELECT after lock");
        assert_eq!(c.sw("00B09E0000"), 0x6982, "plain READ BINARY after lock");
        assert_eq!(
            c.bac("L898902C<369080619406237").err(),
            Some(0x6300),
            "wrong MRZ"
        );
        let mut sm = c.bac(MRZ_INFO).expect("BAC");
        for (fid, content) in lds_files() {
            assert_eq!(c.read_ef(&mut sm, fid), content, "EF {fid:04X}");
        }
        // READ BINARY with a short EF identifier inside SM
        let (d, sw) = c.sm(&mut sm, 0xB0, 0x9E, 0x00, &[], Some(0x00));
        assert_eq!((d, sw), (lds_files()[0].1.clone(), 0x9000));
        // a tampered MAC ends the session with 6988
        let mut apdu = sm.protect(0xB0, 0x9E, 0x00, &[], Some(4));
        let n = apdu.len();
        apdu[n - 2] ^= 0x80;
        assert_eq!(c.tx(&apdu), (vec![], 0x6988));
        let (_, sw) = c.sm(&mut sm, 0xB0, 0x9E, 0x00, &[], Some(4));
        assert_eq!(sw, 0x6988, "session ended");
        drop(c);
        inserted.pull();
    }
    // Fault injection: DG2's last byte comes back flipped; the image keeps the real file.
    {
        let inserted = slot.insert(&img, &["--corrupt-ef", "0102"]);
        let c = Pcsc::connect(&slot.reader_name);
        let mut sm = c.bac(MRZ_INFO).expect("BAC");
        let mut want = lds_files()[2].1.clone();
        *want.last_mut().unwrap() ^= 1;
        assert_eq!(c.read_ef(&mut sm, 0x0102), want);
        assert_eq!(c.read_ef(&mut sm, 0x0101), lds_files()[1].1, "DG1 intact");
        drop(c);
        inserted.pull();
    }
    let card = chip::Card::load(&img).unwrap();
    let public = card.public_description().unwrap();
    assert_eq!(
        public["applications"]["lds"]["files"]["0102"],
        hex::encode(&lds_files()[2].1)
    );
    // vchip show lists the files and the seed status, never the seed.
    let out = Command::new(testrig::vchip_bin().unwrap())
        .arg("show")
        .arg(&img)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("LDS file 0102: 12004 bytes  EF.DG2"),
        "{text}"
    );
    assert!(text.contains("key seed set"), "{text}");
    let seed_hex = hex::encode(&Sha1::digest(MRZ_INFO.as_bytes())[..16]);
    assert!(!text.to_lowercase().contains(&seed_hex), "{text}");
}

/// A second, independent oracle: `pyscard_bac.py` (pyscard + the `cryptography` package,
/// installed by scripts/install-deps.sh) opens the locked card with BAC and reads it.
#[test]
fn pyscard_reader_reads_the_lds_through_bac() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("card.img");
    chip::Card::new_blank(0x00DA_7A02)
        .unwrap()
        .save(&img)
        .unwrap();
    let slot = testrig::Slot::lease();
    let inserted = slot.insert(&img, &[]);
    {
        let mut c = Pcsc::connect(&slot.reader_name);
        personalize(&c);
        // a fresh card session, as a border post would start one
        c.card
            .reconnect(
                pcsc::ShareMode::Shared,
                pcsc::Protocols::T1,
                pcsc::Disposition::ResetCard,
            )
            .unwrap();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pyscard_bac.py");
    let run = |mrz: &str, fids: &[&str]| {
        let out = Command::new("python3")
            .arg(script)
            .arg(&slot.reader_name)
            .arg(mrz)
            .args(fids)
            .output()
            .expect("python3 (with pyscard and cryptography: scripts/install-deps.sh)");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, stderr) = run("L898902C<369080619406237", &["011E"]);
    assert_eq!(code, Some(3), "wrong MRZ: {stdout} {stderr}");
    assert!(stdout.contains("6300"), "{stdout}");
    let fids = ["011E", "0101", "0102", "010B", "010C", "011D"];
    let (code, stdout, stderr) = run(MRZ_INFO, &fids);
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    let read: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for (fid, content) in lds_files() {
        assert_eq!(
            read[format!("{fid:04X}")],
            hex::encode(&content),
            "EF {fid:04X} as pyscard read it"
        );
    }
    inserted.pull();
}
