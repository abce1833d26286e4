//! PACE, Chip Authentication and Active Authentication through the real PC/SC stack: pcscd +
//! vsmartcard vpcd + `vchip` (via `testrig`), the host side of `personalization` as the
//! inspection system. Also the same-run comparison of PACE + CA + AA + DG1/DG2 against BAC +
//! the same reads (time and APDUs), printed for docs/BENCHMARKS.md.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use personalization::apdu::{Channel, Command};
use personalization::lds::{self, LdsFiles};
use personalization::pace::{ca, Access, IcaoReader};
use personalization::piv::objects::tags;
use personalization::piv::Piv;
use personalization::secret::ManagementKey;
use personalization::tlv;
use personalization::transport::pcsc::Pcsc;

const CAN: &str = "730512";
const MRZ_INFO: &str = "L898902C<369080619406236";

fn files() -> LdsFiles {
    let mut dgs = BTreeMap::new();
    dgs.insert(1, tlv::encode(0x61, &tlv::encode(0x5F1F, &[b'I'; 90])));
    // A DG2 of the size of a real facial image (about 15 kB).
    let face: Vec<u8> = (0..15_000u32).map(|i| (i * 31 % 251) as u8).collect();
    dgs.insert(2, tlv::encode(0x75, &face));
    LdsFiles {
        dgs,
        sod: tlv::encode(0x77, &[0x30; 200]),
    }
}

#[test]
fn pace_ca_aa_through_pcscd_and_the_comparison_with_bac() {
    testrig::ensure_pcscd().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = blank_image(dir.path(), 0x00E2_0017, false);
    let slot = testrig::Slot::lease();
    let pcsc = Pcsc::establish().unwrap();

    // Personalization: keys on the chip, DG14/DG15, PACE passwords and the BAC seed, lock.
    let card = slot.insert(&img, &[]);
    pcsc.wait_for_card(&slot.reader_name, Duration::from_secs(10))
        .unwrap();
    let mut f = files();
    let keys = {
        let mut c = pcsc.connect(&slot.reader_name).unwrap();
        let mut tx = c.begin().unwrap();
        let keys = {
            let mut piv = Piv::new(&mut tx);
            piv.select().unwrap();
            piv.authenticate(&ManagementKey::transport_default())
                .unwrap();
            piv.put_data(tags::CHUID, &[0x53, 0x01, 0x01]).unwrap();
            let ch = piv.channel();
            ch.ok(&Command::new(
                "SELECT LDS1",
                0xA4,
                0x04,
                0x0C,
                personalization::bac::LDS1_AID.to_vec(),
            ))
            .unwrap();
            let keys = ca::generate_chip_keys(ch).unwrap();
            f.dgs.insert(14, ca::dg14(&keys.ca));
            f.dgs.insert(15, ca::dg15(&keys.aa));
            lds::write_lds(ch, &f, &personalization::bac::kseed(MRZ_INFO)).unwrap();
            lds::write_pace_passwords(ch, MRZ_INFO, CAN).unwrap();
            ch.ok(&Command::new("LOCK", 0x44, 0, 0, vec![])).unwrap();
            keys
        };
        tx.end().unwrap();
        keys
    };
    card.pull();

    // The issued card, as an inspection system meets it.
    let card = slot.insert(&img, &[]);
    pcsc.wait_for_card(&slot.reader_name, Duration::from_secs(10))
        .unwrap();
    let mut c = pcsc.connect(&slot.reader_name).unwrap();
    let mut tx = c.begin().unwrap();
    let mut ch = Channel::new(&mut tx);

    // PACE-CAN + CA + AA + DG1 + DG2.
    let (t0, a0) = (Instant::now(), ch.stats().apdus);
    {
        let mut r = IcaoReader::open(&mut ch, &Access::can(CAN).unwrap()).unwrap();
        let d14 = ca::parse_dg14(&r.read_ef(0x010E).unwrap()).unwrap();
        assert_eq!(d14.ca_public, keys.ca);
        r.chip_authenticate(&d14).unwrap();
        let aa = ca::parse_dg15(&r.read_ef(0x010F).unwrap()).unwrap();
        r.active_authenticate(&aa).unwrap();
        assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
        assert_eq!(r.read_ef(0x0102).unwrap(), f.dgs[&2]);
    }
    let (pace_time, pace_apdus) = (t0.elapsed(), ch.stats().apdus - a0);

    // BAC + DG1 + DG2 on the same card, same session.
    let (t0, a0) = (Instant::now(), ch.stats().apdus);
    {
        let mut r = IcaoReader::open(&mut ch, &Access::bac(MRZ_INFO)).unwrap();
        assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
        assert_eq!(r.read_ef(0x0102).unwrap(), f.dgs[&2]);
    }
    let (bac_time, bac_apdus) = (t0.elapsed(), ch.stats().apdus - a0);
    println!(
        "BENCH pace_can+ca+aa+dg1+dg2: {:.1} ms, {pace_apdus} APDUs (DG14/DG15 reads included); \
         bac+dg1+dg2: {:.1} ms, {bac_apdus} APDUs",
        pace_time.as_secs_f64() * 1e3,
        bac_time.as_secs_f64() * 1e3
    );

    // PACE with the MRZ.
    let mut r = IcaoReader::open(&mut ch, &Access::pace_mrz(MRZ_INFO)).unwrap();
    assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
    drop(r);

    // A wrong CAN fails mutual authentication; the card stays usable.
    let err = IcaoReader::open(&mut ch, &Access::can("730513").unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("(6300"), "{err}");
    let mut r = IcaoReader::open(&mut ch, &Access::can(CAN).unwrap()).unwrap();
    assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
    drop(r);

    // Repeated wrong CANs are slowed down: the third consecutive failure makes the next run
    // wait 250 ms before the nonce, the fourth 500 ms; a success clears the counter.
    for _ in 0..3 {
        assert!(IcaoReader::open(&mut ch, &Access::can("000000").unwrap()).is_err());
    }
    let t0 = Instant::now();
    assert!(IcaoReader::open(&mut ch, &Access::can("000001").unwrap()).is_err());
    let slowed = t0.elapsed();
    assert!(slowed >= Duration::from_millis(250), "{slowed:?}");
    tx.end().unwrap();
    drop(c);

    // The counter is in the image: pulling the card does not reset it.
    card.pull();
    let _card = slot.insert(&img, &[]);
    pcsc.wait_for_card(&slot.reader_name, Duration::from_secs(10))
        .unwrap();
    let mut c = pcsc.connect(&slot.reader_name).unwrap();
    let mut tx = c.begin().unwrap();
    let mut ch = Channel::new(&mut tx);
    let t0 = Instant::now();
    let mut r = IcaoReader::open(&mut ch, &Access::can(CAN).unwrap()).unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
    drop(r);
    let t0 = Instant::now();
    IcaoReader::open(&mut ch, &Access::can(CAN).unwrap()).unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    tx.end().unwrap();
}
