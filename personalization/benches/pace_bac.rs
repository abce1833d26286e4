//! Benchmark (bench binary, `harness = false`): how an inspection system reads an issued card,
//! through pcscd + vpcd + `vchip`, in one run on the same card and the same PC/SC session:
//!
//! - PACE with the CAN (ICAO Doc 9303 Part 11 §4.4), Chip Authentication (§6.2, keys from
//!   DG14), Active Authentication (§6.1, key from DG15), then DG1 and a 15 kB DG2;
//! - the peer: BAC (§4.3) and the same DG1 and DG2.
//!
//! Per path: the median, minimum and maximum time over ROUNDS runs and the C-APDUs of one run
//! (chained parts and GET RESPONSEs each count; the DG14/DG15 reads are in the PACE path).
//! Figures: docs/BENCHMARKS.md.
//!
//! Run: `cargo build -p chip --bin vchip && cargo bench -p personalization --bench pace_bac`
//! (env ROUNDS, default 20).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use personalization::apdu::Channel;
use personalization::pace::{ca, Access, IcaoReader};
use personalization::transport::pcsc::Pcsc;

struct Path {
    name: &'static str,
    times: Vec<Duration>,
    apdus: u64,
}

impl Path {
    fn row(&mut self) -> String {
        self.times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "| {} | {:.1} ms | {:.1} – {:.1} ms | {} |",
            self.name,
            ms(self.times[self.times.len() / 2]),
            ms(self.times[0]),
            ms(self.times[self.times.len() - 1]),
            self.apdus
        )
    }
}

/// One timed read: `read` on `ch`, its time and its C-APDUs.
fn timed(ch: &mut Channel<'_>, read: impl FnOnce(&mut Channel<'_>)) -> (Duration, u64) {
    let (t0, a0) = (Instant::now(), ch.stats().apdus);
    read(ch);
    (t0.elapsed(), ch.stats().apdus - a0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("pace_bac: bench");
        return;
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    testrig::ensure_pcscd().expect("pcscd with vpcd readers");
    let dir = tempfile::tempdir().unwrap();
    let img = blank_image(dir.path(), 0x00E2_0B0B, false);
    let slot = testrig::Slot::lease();
    let pcsc = Pcsc::establish().unwrap();
    let (keys, f) = icao_card(&pcsc, &slot, &img);

    let _card = slot.insert(&img, &[]);
    pcsc.wait_for_card(&slot.reader_name, Duration::from_secs(10))
        .unwrap();
    let mut c = pcsc.connect(&slot.reader_name).unwrap();
    let mut tx = c.begin().unwrap();
    let mut ch = Channel::new(&mut tx);
    let mut pace = Path {
        name: "PACE-CAN + CA + AA + DG1 + DG2 (DG14, DG15 read)",
        times: Vec::new(),
        apdus: 0,
    };
    let mut bac = Path {
        name: "peer: BAC + DG1 + DG2",
        times: Vec::new(),
        apdus: 0,
    };
    // One untimed run of each first (the chip's image is cached by the OS, pcscd is warm).
    for round in 0..=rounds {
        let (t, n) = timed(&mut ch, |ch| {
            let mut r = IcaoReader::open(ch, &Access::can(CAN).unwrap()).unwrap();
            let d14 = ca::parse_dg14(&r.read_ef(0x010E).unwrap()).unwrap();
            assert_eq!(d14.ca_public, keys.ca, "DG14 names the chip's CA key");
            r.chip_authenticate(&d14).unwrap();
            let aa = ca::parse_dg15(&r.read_ef(0x010F).unwrap()).unwrap();
            r.active_authenticate(&aa).unwrap();
            assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
            assert_eq!(r.read_ef(0x0102).unwrap(), f.dgs[&2]);
        });
        if round > 0 {
            pace.times.push(t);
            pace.apdus = n;
        }
        let (t, n) = timed(&mut ch, |ch| {
            let mut r = IcaoReader::open(ch, &Access::bac(MRZ_INFO)).unwrap();
            assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
            assert_eq!(r.read_ef(0x0102).unwrap(), f.dgs[&2]);
        });
        if round > 0 {
            bac.times.push(t);
            bac.apdus = n;
        }
    }
    tx.end().unwrap();
    println!("pace_bac: {rounds} rounds, DG2 {} bytes", f.dgs[&2].len());
    println!("| path | median | min – max | C-APDUs |");
    println!("|---|---|---|---|");
    println!("{}", pace.row());
    println!("{}", bac.row());
}
