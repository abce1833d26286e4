//! Bench binary: how many APDUs per second the virtual card serves. A loop of GET DATA
//! (Discovery object, 20 bytes) three ways: in-process `Card::transmit`; through pcscd + vpcd
//! with `vchip` as shipped (TCP_NODELAY + TCP_QUICKACK); and, as the peer figure from the same
//! run, through pcscd with `vchip --no-tcp-tuning` (plain sockets, as the Nitrokey
//! piv-authenticator ran in NOTES.md).
//!
//! Run: `cargo build -p chip --release --bin vchip && cargo run -p chip --release --example apdu_rate`

use std::time::{Duration, Instant};

const SELECT: [u8; 10] = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
const GET_DISCOVERY: [u8; 9] = [0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x00];

fn in_process(n: u32) -> f64 {
    let mut card = chip::Card::new_blank(1).expect("card");
    card.power_on();
    card.transmit(&SELECT);
    let t = Instant::now();
    for _ in 0..n {
        let r = card.transmit(&GET_DISCOVERY);
        assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
    }
    f64::from(n) / t.elapsed().as_secs_f64()
}

/// Authenticate with the transport 3DES management key (mutual, SP 800-73-4 appendix A.1).
fn mgmt_auth(card: &pcsc::Card) {
    use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
    let key = des::TdesEde3::new_from_slice(&chip::mgmt::TRANSPORT_MGMT_KEY).expect("key");
    let mut buf = [0u8; 300];
    let r = card
        .transmit(
            &[0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00],
            &mut buf,
        )
        .expect("witness")
        .to_vec();
    let mut witness = des::cipher::Array::try_from(&r[4..12]).expect("8 bytes");
    key.decrypt_block(&mut witness);
    let mut apdu = vec![0x00, 0x87, 0x03, 0x9B, 0x16, 0x7C, 0x14, 0x80, 0x08];
    apdu.extend_from_slice(&witness);
    apdu.extend_from_slice(&[0x81, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]);
    let r = card.transmit(&apdu, &mut buf).expect("auth");
    assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
    let mut expect = des::cipher::Array::from([1u8, 2, 3, 4, 5, 6, 7, 8]);
    key.encrypt_block(&mut expect);
    assert_eq!(&r[4..12], &expect[..], "card proved the key");
}

/// PUT DATA of a 100-byte object in a loop: every one rewrites and fsyncs the image.
fn put_data_rate(extra: &[&str], duration: Duration) -> (f64, u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("bench.img");
    chip::Card::new_blank(3)
        .expect("card")
        .save(&img)
        .expect("save");
    let slot = testrig::Slot::lease();
    let _inserted = slot.insert(&img, extra);
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcsc context");
    let name = std::ffi::CString::new(slot.reader_name.clone()).expect("reader name");
    let card = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
        .expect("connect");
    let mut buf = [0u8; 300];
    card.transmit(&SELECT, &mut buf).expect("select");
    mgmt_auth(&card);
    let mut apdu = vec![
        0x00, 0xDB, 0x3F, 0xFF, 107, 0x5C, 0x03, 0x5F, 0xC1, 0x09, 0x53, 100,
    ];
    apdu.extend([0x42u8; 100]);
    let t = Instant::now();
    let mut n = 0u32;
    while t.elapsed() < duration {
        apdu[12] = n as u8;
        let r = card.transmit(&apdu, &mut buf).expect("put data");
        assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
        n += 1;
    }
    (f64::from(n) / t.elapsed().as_secs_f64(), n)
}

fn through_pcscd(extra: &[&str], duration: Duration) -> (f64, u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("bench.img");
    chip::Card::new_blank(2)
        .expect("card")
        .save(&img)
        .expect("save");
    let slot = testrig::Slot::lease();
    let _inserted = slot.insert(&img, extra);
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcsc context");
    let name = std::ffi::CString::new(slot.reader_name.clone()).expect("reader name");
    let card = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
        .expect("connect");
    let mut buf = [0u8; 300];
    card.transmit(&SELECT, &mut buf).expect("select");
    // warm-up
    for _ in 0..20 {
        card.transmit(&GET_DISCOVERY, &mut buf).expect("get data");
    }
    let t = Instant::now();
    let mut n = 0u32;
    while t.elapsed() < duration {
        let r = card.transmit(&GET_DISCOVERY, &mut buf).expect("get data");
        assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
        n += 1;
    }
    (f64::from(n) / t.elapsed().as_secs_f64(), n)
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let inproc = in_process(200_000);
    println!("in-process Card::transmit GET DATA: {inproc:.0} APDU/s");
    let (tuned, n1) = through_pcscd(&[], Duration::from_secs(secs));
    println!("pcscd + vpcd + vchip (NODELAY+QUICKACK): {tuned:.0} APDU/s ({n1} APDUs in {secs} s), {:.2} ms/APDU", 1000.0 / tuned);
    let (plain, n2) = through_pcscd(&["--no-tcp-tuning"], Duration::from_secs(secs));
    println!("pcscd + vpcd + vchip --no-tcp-tuning (peer): {plain:.0} APDU/s ({n2} APDUs in {secs} s), {:.2} ms/APDU", 1000.0 / plain);
    let (put, n3) = put_data_rate(&[], Duration::from_secs(secs));
    println!("pcscd + vpcd + vchip PUT DATA 100 B (atomic image write + fsync each): {put:.0} APDU/s ({n3} in {secs} s), {:.2} ms/APDU", 1000.0 / put);
}
