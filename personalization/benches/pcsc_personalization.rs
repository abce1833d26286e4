//! Benchmark (bench binary, `harness = false`): in one run, on the same virtual chip through
//! pcscd + vpcd, our full personalization (keys in 9A and 9C, two certificates, CHUID, CCC,
//! Discovery, Printed Information, Key History, PIN, PUK, management key, read-back, two test
//! signatures, lock) against `yubico-piv-tool` doing the eSign subset the way an administrator
//! scripts it (one invocation per action: generate 9C, import certificate, set CHUID, change PIN,
//! change PUK, set management key). Certificate making (openssl) is outside both timings.
//!
//! Run: `cargo bench -p personalization --bench pcsc_personalization` (env ROUNDS, default 10).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use personalization::executor::{CompleteInput, Personalizer};
use personalization::secret::{Pin, PinKind};
use personalization::transport::pcsc::Pcsc;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs yubico-piv-tool with `-v 2` and counts the C-APDUs it prints (lines starting "> ").
fn ykpiv(reader: &str, args: &[&str], elapsed: &mut Duration, apdus: &mut u64) {
    let start = Instant::now();
    let out = Command::new("yubico-piv-tool")
        .args(["-r", reader, "--verbose=2"])
        .args(args)
        .output()
        .expect("yubico-piv-tool runs");
    *elapsed += start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), err);
    assert!(
        out.status.success(),
        "yubico-piv-tool {args:?} failed:\n{text}"
    );
    if let Some(log) = std::env::var_os("YKPIV_LOG") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("YKPIV_LOG is writable");
        writeln!(f, "### yubico-piv-tool {args:?}\n{text}").expect("YKPIV_LOG is writable");
    }
    *apdus += text.lines().filter(|l| l.starts_with("> ")).count() as u64;
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("pcsc_personalization: bench");
        return;
    }
    let rounds: u32 = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    testrig::ensure_pcscd().expect("pcscd with vpcd readers");
    let dir = tempfile::tempdir().unwrap();
    let mut ca = OpensslCa::new(dir.path());
    let slot = testrig::Slot::lease();
    let reader = slot.reader_name.clone();
    let pcsc = Pcsc::establish().unwrap();
    let prof = profile();
    let p = Personalizer::new(&prof);

    let mut ours = Vec::new();
    let mut ours_apdus = 0;
    let mut ours_bytes = (0, 0);
    let mut theirs = Vec::new();
    let mut theirs_apdus = 0;
    for round in 0..rounds {
        // Ours: connect + prepare + complete + disconnect (the CA sits outside the timer).
        let img = blank_image(dir.path(), 0x00B0_0000 + round, false);
        let card = slot.insert(&img, &[]);
        // Timed from connect (T=1, exclusive) + transaction start, like each yubico-piv-tool run.
        let t0 = Instant::now();
        let mut c = pcsc.connect(&reader).unwrap();
        let mut tx = c.begin().unwrap();
        let prepared = p.prepare(&mut tx, &card_key(), &mut |_| {}).unwrap();
        let mut elapsed = t0.elapsed();
        let certificates = ca.certs(&prepared);
        let pin = Pin::new(PinKind::Pin, HOLDER_PIN).unwrap();
        let puk = Pin::new(PinKind::Puk, HOLDER_PUK).unwrap();
        let h = holder();
        let input = CompleteInput {
            certificates: &certificates,
            holder: &h,
            pin: &pin,
            puk: &puk,
        };
        let t1 = Instant::now();
        let report = p
            .complete(&mut tx, &prepared, &card_key(), &input, &mut |_| {})
            .unwrap();
        tx.end().unwrap();
        drop(c);
        elapsed += t1.elapsed();
        card.pull();
        ours.push(elapsed);
        ours_apdus = prepared.stats.apdus + report.stats.apdus;
        ours_bytes = (
            prepared.stats.bytes_sent + report.stats.bytes_sent,
            prepared.stats.bytes_received + report.stats.bytes_received,
        );

        // yubico-piv-tool: the eSign subset, one invocation per action.
        let img = blank_image(dir.path(), 0x00C0_0000 + round, false);
        let card = slot.insert(&img, &[]);
        let key = "010203040506070801020304050607080102030405060708";
        let newkey = "0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a09080";
        let keyarg = format!("--key={key}");
        let pubpem = dir.path().join(format!("yk{round}.pem"));
        let certpem = dir.path().join(format!("ykc{round}.pem"));
        let mut t = Duration::ZERO;
        let mut apdus = 0;
        ykpiv(
            &reader,
            &[
                &keyarg,
                "-a",
                "generate",
                "-s",
                "9c",
                "-A",
                "ECCP256",
                "-o",
                pubpem.to_str().unwrap(),
            ],
            &mut t,
            &mut apdus,
        );
        // Certificate by the test CA (outside the timer, like ours).
        let spki = run(Command::new("openssl")
            .args(["pkey", "-pubin", "-outform", "DER", "-in"])
            .arg(&pubpem))
        .stdout;
        let der = ca.issue(&spki, "yubico-piv-tool holder");
        let derf = dir.path().join(format!("ykc{round}.der"));
        std::fs::write(&derf, der).unwrap();
        run(Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(&derf)
            .arg("-out")
            .arg(&certpem));
        ykpiv(
            &reader,
            &[
                &keyarg,
                "-a",
                "import-certificate",
                "-s",
                "9c",
                "-i",
                certpem.to_str().unwrap(),
            ],
            &mut t,
            &mut apdus,
        );
        ykpiv(&reader, &[&keyarg, "-a", "set-chuid"], &mut t, &mut apdus);
        ykpiv(
            &reader,
            &["-a", "change-pin", "-P", "123456", "-N", HOLDER_PIN],
            &mut t,
            &mut apdus,
        );
        ykpiv(
            &reader,
            &["-a", "change-puk", "-P", "12345678", "-N", HOLDER_PUK],
            &mut t,
            &mut apdus,
        );
        ykpiv(
            &reader,
            &[&keyarg, "-a", "set-mgm-key", "-n", newkey],
            &mut t,
            &mut apdus,
        );
        card.pull();
        theirs.push(t);
        theirs_apdus = apdus;
    }
    let o = median(ours.clone());
    let y = median(theirs.clone());
    println!("rounds: {rounds}, reader: {reader}");
    println!(
        "ours (full personalization): median {:.1} ms, min {:.1} ms, {} APDUs, {} bytes sent, {} bytes received",
        o.as_secs_f64() * 1e3,
        ours.iter().min().unwrap().as_secs_f64() * 1e3,
        ours_apdus,
        ours_bytes.0,
        ours_bytes.1
    );
    println!(
        "yubico-piv-tool (eSign subset, 6 invocations): median {:.1} ms, min {:.1} ms, {} APDUs",
        y.as_secs_f64() * 1e3,
        theirs.iter().min().unwrap().as_secs_f64() * 1e3,
        theirs_apdus
    );
    let mut per_round: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
        .collect();
    per_round.sort_by(f64::total_cmp);
    println!(
        "ratio ours / yubico-piv-tool: {:.2} (medians); per-round ratio median {:.2}",
        o.as_secs_f64() / y.as_secs_f64(),
        per_round[per_round.len() / 2]
    );
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at the end: {}", l.trim());
    }
}
