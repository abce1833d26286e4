//! Benchmark: one certificate renewal on an issued (LOCKED) card end to end (the station
//! library's renewal job, `idstation renew`'s, through pcscd + vpcd + vchip, SoftHSM2 and the
//! registry file): one card issued, then renewed RENEWALS times; median broken down into card
//! I/O (matching the card, BAC, key generation, writing, read-back, test signatures), HSM
//! (management-key derivation, the two certificate signatures) and the rest (registry journal
//! and commits, matching), with the APDU count.
//!
//! `cargo bench -p station --bench renewal` (builds vchip first: `cargo build --release -p chip`).

use station::holder::{load, ValidationPolicy};
use station::init::{init, InitOptions};
use station::issuance::{issue, IssueInput};
use station::services::{renew, RenewInput};
use zeroize::Zeroizing;

const RENEWALS: usize = 20;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("renewal: bench");
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
    let holder = load(&fixtures.join("holder-02.json"), &policy).expect("holder");
    let slot = testrig::Slot::lease();
    let vchip = testrig::vchip_bin().expect("vchip");
    let img = tmp.path().join("card.img");
    let ok = std::process::Command::new(&vchip)
        .args(["create", "--out"])
        .arg(&img)
        .args(["--serial", &0xBE10_0000u32.to_string()])
        .status()
        .expect("vchip create");
    assert!(ok.success());
    let _inserted = slot.insert(&img, &[]);
    let pin = "48291637";
    let issued = issue(
        &mut st,
        &clerk,
        &IssueInput {
            holder,
            reader: Some(slot.reader_name.clone()),
            pin: Zeroizing::new(pin.into()),
            pin_letter: tmp.path().join("pin-letter.pdf"),
            update_holder: false,
        },
        &mut |_| {},
    )
    .expect("issue");
    let (mut total, mut card, mut hsm_ms, mut rest, mut apdus) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..RENEWALS {
        let input = RenewInput {
            document: issued.document.clone(),
            reader: Some(slot.reader_name.clone()),
            pin: Zeroizing::new(pin.into()),
        };
        let r = renew(&mut st, &clerk, &input, &mut |_| {}).expect("renew");
        assert!(!r.resumed);
        total.push(r.total_ms);
        card.push(r.card_ms);
        hsm_ms.push(r.hsm_ms);
        rest.push(r.total_ms - r.card_ms - r.hsm_ms);
        apdus.push(r.apdus as f64);
    }
    println!("renewal end to end, median over {RENEWALS} renewals of one card (ms):");
    println!("  total     {:8.1}", median(&mut total));
    println!("  card I/O  {:8.1}", median(&mut card));
    println!("  HSM       {:8.1}", median(&mut hsm_ms));
    println!("  registry and other {:8.1}", median(&mut rest));
    println!("  APDUs     {:8.0}", median(&mut apdus));
}
