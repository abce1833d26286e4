//! Benchmark: full issuance of one card end to end (the station library's issuance job through
//! pcscd + vpcd + vchip, SoftHSM2 and the registry file), median over 20 cards, broken down
//! into card I/O, HSM, registry and everything else, with the APDU count.
//!
//! `cargo bench -p station --bench issuance` (builds vchip first: `cargo build --release -p chip`).

use std::time::SystemTime;

use station::holder::{load, ValidationPolicy};
use station::init::{init, InitOptions};
use station::issuance::{issue, IssueInput};
use zeroize::Zeroizing;

const CARDS: usize = 20;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("issuance: bench");
        return;
    }
    testrig::ensure_pcscd().expect("pcscd");
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    // The HSM PIN from an owner-only file, as a real station keeps it (never the environment).
    let pin_file = tmp.path().join("hsm-pin");
    std::fs::write(&pin_file, "bench-hsm-pin-1\n").expect("pin file");
    std::fs::set_permissions(
        &pin_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod 600");
    init(
        &data,
        &InitOptions {
            station_name: "bench".into(),
            office: "TAS01".into(),
            series: "AA".into(),
            admin_name: "admin".into(),
            admin_password: Zeroizing::new("bench-admin-password".into()),
            second_admin: None,
            hsm_pin: Some(hsm::SecretSource::File(pin_file)),
            hsm_so_pin: None,
            module: hsm::pkcs11::SOFTHSM2_MODULE.into(),
            softhsm_dir: Some(
                hsm::pkcs11::SoftHsm2Token::process_dir()
                    .expect("run through cargo bench (scripts/cargo-runner.sh)"),
            ),
        },
    )
    .expect("init");
    let mut st = station::Station::open(&data).expect("open");
    let clerk_pw = Zeroizing::new("bench-clerk-password".to_string());
    let admin = st
        .authorize(
            "admin",
            &Zeroizing::new("bench-admin-password".into()),
            "bench",
            &[registry::Role::CaAdmin],
        )
        .expect("admin");
    station::operators::add(&mut st, &admin, "clerk", registry::Role::Clerk, &clerk_pw)
        .expect("clerk");
    let clerk = st
        .authorize("clerk", &clerk_pw, "bench", &[registry::Role::Clerk])
        .expect("clerk");

    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/holders");
    let policy = ValidationPolicy::new(station::time_util::today_utc());
    let template = load(&fixtures.join("holder-02.json"), &policy).expect("holder");
    let slot = testrig::Slot::lease();
    let vchip = testrig::vchip_bin().expect("vchip");
    let (mut total, mut card, mut hsm_ms, mut reg, mut other, mut apdus) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..CARDS {
        // A new holder per card (distinct PINFL with a valid check digit, same birth date).
        let mut holder = template.clone();
        let mut digits: Vec<u32> = holder
            .record
            .pinfl
            .bytes()
            .map(|c| u32::from(c - b'0'))
            .collect();
        let seq = 100 + i as u32;
        digits[10] = seq / 100 % 10;
        digits[11] = seq / 10 % 10;
        digits[12] = seq % 10;
        digits[13] = station::holder::pinfl_check_digit(&digits[..13]);
        holder.record.pinfl = digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
        let img = tmp.path().join(format!("card-{i}.img"));
        let st_ok = std::process::Command::new(&vchip)
            .args(["create", "--out"])
            .arg(&img)
            .args(["--serial", &(0xBE00_0000u32 + i as u32).to_string()])
            .status()
            .expect("vchip create");
        assert!(st_ok.success());
        let inserted = slot.insert(&img, &[]);
        let input = IssueInput {
            holder,
            reader: Some(slot.reader_name.clone()),
            pin: Zeroizing::new("48291637".into()),
            pin_letter: tmp.path().join(format!("pin-letter-{i}.pdf")),
            update_holder: false,
        };
        let t0 = SystemTime::now();
        let r = issue(&mut st, &clerk, &input, &mut |_| {}).expect("issue");
        let _ = t0;
        inserted.pull();
        let t = &r.timings;
        total.push(t.total_ms);
        card.push(t.card_ms);
        hsm_ms.push(t.hsm_ms);
        reg.push(t.registry_ms);
        other.push(t.total_ms - t.card_ms - t.hsm_ms - t.registry_ms);
        apdus.push(r.apdus as f64);
    }
    println!("issuance end to end, median over {CARDS} cards (ms):");
    println!("  total     {:8.1}", median(&mut total));
    println!("  card I/O  {:8.1}", median(&mut card));
    println!("  HSM       {:8.1}", median(&mut hsm_ms));
    println!("  registry  {:8.1}", median(&mut reg));
    println!("  other     {:8.1}", median(&mut other));
    println!("  APDUs     {:8.0}", median(&mut apdus));
}
