//! Cost of the LDS application in process (no pcscd): BAC (GET CHALLENGE + MUTUAL
//! AUTHENTICATE, ICAO 9303 Part 11 §4.3) and reading a 16 KB data group through secure
//! messaging (§9.8), each with its peer from the same run: the same file read with plain READ
//! BINARY, and the image serialization that follows every UPDATE BINARY, with and without the
//! LDS. Both sides (chip and terminal) are in the timings. Figures: docs/BENCHMARKS.md.

use chip::bac;
use chip::Card;
use criterion::{criterion_group, criterion_main, Criterion};

const MRZ: &[u8] = b"L898902C<369080619406236";
const DG2_LEN: usize = 16_000;

fn tx(card: &mut Card, apdu: &[u8]) -> (Vec<u8>, u16) {
    let r = card.transmit(apdu);
    let n = r.len();
    (
        r[..n - 2].to_vec(),
        u16::from_be_bytes([r[n - 2], r[n - 1]]),
    )
}

fn ok(card: &mut Card, apdu: &[u8]) -> Vec<u8> {
    let (d, sw) = tx(card, apdu);
    assert_eq!(sw, 0x9000, "{}", hex::encode(apdu));
    d
}

/// A card in PERSONALIZING with the management key, the LDS application selected, a 16 KB DG2
/// and the key seed; `lock` locks it and power-cycles it.
fn card(lock: bool) -> Card {
    let mut c = Card::new_blank(1).unwrap();
    c.power_on();
    ok(&mut c, &hex::decode("00A4040005A000000308").unwrap());
    let (d, _) = tx(&mut c, &hex::decode("0087039B047C028100").unwrap());
    let key = chip::mgmt::MgmtKey::transport();
    let mut challenge = d[4..12].to_vec();
    key.crypt_block(&mut challenge, true).unwrap();
    let mut apdu = hex::decode("0087039B0C7C0A8208").unwrap();
    apdu.extend(challenge);
    ok(&mut c, &apdu);
    ok(&mut c, &hex::decode("00DB3FFF085C035FC102530101").unwrap());
    ok(&mut c, &hex::decode("00A4040C07A0000002471001").unwrap());
    let mut create = hex::decode("00E000000A62088002").unwrap();
    create.extend((DG2_LEN as u16).to_be_bytes());
    create.extend([0x83, 0x02, 0x01, 0x02]);
    ok(&mut c, &create);
    let content: Vec<u8> = (0..DG2_LEN).map(|i| i as u8).collect();
    for (i, chunk) in content.chunks(223).enumerate() {
        let mut upd = vec![0x00, 0xD6];
        upd.extend(((i * 223) as u16).to_be_bytes());
        upd.push(chunk.len() as u8);
        upd.extend(chunk);
        ok(&mut c, &upd);
    }
    let mut seed = hex::decode("00DA010B10").unwrap();
    seed.extend(bac::key_seed_from_mrz_information(MRZ).iter());
    ok(&mut c, &seed);
    if lock {
        ok(&mut c, &[0x00, 0x44, 0x00, 0x00]);
        c.power_on();
        ok(&mut c, &hex::decode("00A4040C07A0000002471001").unwrap());
    }
    c
}

struct Sm {
    enc: bac::Key16,
    mac: bac::Key16,
    ssc: u64,
}

fn open_bac(c: &mut Card) -> Sm {
    let seed = bac::key_seed_from_mrz_information(MRZ);
    let (k_enc, k_mac) = (
        bac::derive_key(&seed, bac::KDF_ENC),
        bac::derive_key(&seed, bac::KDF_MAC),
    );
    let rnd_icc = ok(c, &[0x00, 0x84, 0x00, 0x00, 0x08]);
    let rnd_ifd = [0x11u8; 8];
    let k_ifd = [0x22u8; 16];
    let mut s = rnd_ifd.to_vec();
    s.extend(&rnd_icc);
    s.extend(k_ifd);
    let e = bac::tdes_encrypt(&k_enc, &s).unwrap();
    let mut apdu = vec![0x00, 0x82, 0x00, 0x00, 0x28];
    apdu.extend(&e);
    apdu.extend(bac::retail_mac(&k_mac, &e));
    apdu.push(0x28);
    let r = ok(c, &apdu);
    let plain = bac::tdes_decrypt(&k_enc, &r[..32]).unwrap();
    let mut kseed = [0u8; 16];
    for i in 0..16 {
        kseed[i] = k_ifd[i] ^ plain[16 + i];
    }
    let mut ssc = rnd_icc[4..].to_vec();
    ssc.extend(&rnd_ifd[4..]);
    Sm {
        enc: bac::derive_key(&kseed, bac::KDF_ENC),
        mac: bac::derive_key(&kseed, bac::KDF_MAC),
        ssc: u64::from_be_bytes(ssc.try_into().unwrap()),
    }
}

fn sm_cmd(
    c: &mut Card,
    sm: &mut Sm,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &[u8],
    le: Option<u8>,
) -> Vec<u8> {
    sm.ssc += 1;
    let mut body = Vec::new();
    if !data.is_empty() {
        let mut v = vec![0x01];
        v.extend(bac::tdes_encrypt(&sm.enc, &bac::pad(data)).unwrap());
        chip::tlv::push(&mut body, 0x87, &v);
    }
    if let Some(le) = le {
        chip::tlv::push(&mut body, 0x97, &[le]);
    }
    let mut n = sm.ssc.to_be_bytes().to_vec();
    n.extend(bac::pad(&[0x0C, ins, p1, p2]));
    n.extend(&body);
    chip::tlv::push(&mut body, 0x8E, &bac::retail_mac(&sm.mac, &n));
    let mut apdu = vec![0x0C, ins, p1, p2, body.len() as u8];
    apdu.extend(body);
    apdu.push(0);
    let resp = ok(c, &apdu);
    sm.ssc += 1;
    let dos = chip::tlv::parse_all(&resp).unwrap();
    let mac_input_len = resp.len() - 10;
    let mut k = sm.ssc.to_be_bytes().to_vec();
    k.extend(&resp[..mac_input_len]);
    assert_eq!(bac::retail_mac(&sm.mac, &k), dos.last().unwrap().value);
    match dos.iter().find(|d| d.tag == 0x87) {
        Some(d) => {
            let p = bac::tdes_decrypt(&sm.enc, &d.value[1..]).unwrap();
            bac::unpad(&p).unwrap().to_vec()
        }
        None => Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("lds");
    let mut locked = card(true);
    g.bench_function("bac_mutual_authentication", |b| {
        b.iter(|| open_bac(&mut locked))
    });
    g.bench_function("sm_read_16k_dg2_chunks_of_223", |b| {
        let mut sm = open_bac(&mut locked);
        b.iter(|| {
            sm_cmd(&mut locked, &mut sm, 0xA4, 0x02, 0x0C, &[0x01, 0x02], None);
            let mut got = 0usize;
            while got < DG2_LEN {
                let d = sm_cmd(
                    &mut locked,
                    &mut sm,
                    0xB0,
                    (got >> 8) as u8,
                    got as u8,
                    &[],
                    Some(0xDF),
                );
                got += d.len();
            }
            got
        })
    });
    let mut open = card(false);
    g.bench_function("peer_plain_read_16k_dg2_chunks_of_223", |b| {
        b.iter(|| {
            ok(&mut open, &[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x01, 0x02]);
            let mut got = 0usize;
            while got < DG2_LEN {
                let d = ok(&mut open, &[0x00, 0xB0, (got >> 8) as u8, got as u8, 0xDF]);
                got += d.len();
            }
            got
        })
    });
    g.bench_function("image_bytes_with_16k_lds", |b| {
        b.iter(|| open.to_image_bytes().unwrap().len())
    });
    let blank = Card::new_blank(2).unwrap();
    g.bench_function("peer_image_bytes_blank_card", |b| {
        b.iter(|| blank.to_image_bytes().unwrap().len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
