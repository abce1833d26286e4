//! Benchmark (issue 15): one card end to end through a station enrolled to the national centre
//! against a standalone station, in one run: median over `CARDS` cards each (default 20),
//! alternating the two stations card by card (the order swapped every round) so that both see
//! the same load.
//!
//! ```text
//! cargo build --release -p chip --bin vchip -p central --bin idcentral
//! cargo bench -p station --bench centre_issuance
//! ```
//!
//! Both stations run `station::issuance::issue` (what `idstation issue` runs) through pcscd +
//! vpcd + `vchip` in a reader of their own, with their own data dir and SoftHSM2 token. The
//! enrolled one was made by `station::init_centre::init_centre` (what `idstation init --centre`
//! runs) against `testrig::centre` (PostgreSQL, `idcentral serve` over TLS 1.3 with mutual TLS on
//! 127.0.0.1): its issuance asks the centre for the station's status, reserves the holder and
//! number there, has the centre certify the two card keys (with the card's proofs of
//! possession) and completes there, each call a new HTTPS connection. The standalone one issues
//! with its own CAs and registry.
//!
//! A SoftHSM2 configuration is read once per process, and every station keeps its token under
//! the same label, so each station runs in a worker process of its own (this executable again,
//! `--worker`), started with its own `SOFTHSM2_CONF`; the parent holds the centre and hands the
//! workers one card at a time. The figures are the job's own timings (`IssueReport::timings`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use station::holder::{load, ValidationPolicy};
use station::issuance::{issue, IssueInput};
use zeroize::Zeroizing;

const ADMIN_PASSWORD: &str = "bench-admin-password";
const CLERK_PASSWORD: &str = "bench-clerk-password";
const HSM_PIN: &str = "bench-hsm-pin-1";
/// The mark of a worker's answer line.
const RESULT: &str = "RESULT ";

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("centre_issuance: bench");
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--worker") {
        let kind = args.get(i + 1).expect("--worker standalone|enrolled DIR");
        let dir = PathBuf::from(args.get(i + 2).expect("--worker KIND DIR"));
        worker(kind, &dir, &args[i + 3..]);
        return;
    }
    parent();
}

// ---------------------------------------------------------------------------------------------
// The parent: the centre and the two workers

/// A station worker process.
struct Worker {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Worker {
    /// Start `--worker KIND DIR ARGS…` with a SoftHSM2 configuration under `DIR/softhsm`;
    /// `secret` (the enrolment code, or nothing) goes to its standard input.
    fn start(name: &'static str, dir: &Path, args: &[&str], secret: &str) -> Worker {
        let softhsm = dir.join("softhsm");
        std::fs::create_dir_all(&softhsm).expect("softhsm dir");
        std::fs::set_permissions(
            &softhsm,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod 700");
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .arg("--worker")
            .arg(name)
            .arg(dir)
            .args(args)
            .env("SOFTHSM2_CONF", softhsm.join("softhsm2.conf"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a station worker");
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{secret}").expect("worker stdin");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut w = Worker {
            name,
            child,
            stdin,
            lines,
        };
        let first = w.line();
        assert_eq!(first, "ready", "{name} worker: {first}");
        w
    }

    /// The worker's next answer (its line marked `RESULT `; what the card's `vchip` prints on
    /// the shared standard output is passed through).
    fn line(&mut self) -> String {
        loop {
            match self.lines.next() {
                Some(Ok(l)) => match l.strip_prefix(RESULT) {
                    Some(r) => return r.to_owned(),
                    None => eprintln!("{}: {l}", self.name),
                },
                _ => panic!("the {} worker stopped (its stderr is above)", self.name),
            }
        }
    }

    /// Issue card `seq`; the worker's figures.
    fn issue(&mut self, seq: u32) -> serde_json::Value {
        writeln!(self.stdin, "issue {seq}").expect("worker stdin");
        let l = self.line();
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{} worker: {e}: {l}", self.name))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

fn parent() {
    let cards: u32 = std::env::var("CARDS")
        .ok()
        .map(|s| s.parse().expect("CARDS: a number"))
        .unwrap_or(20);
    assert!((1..=200).contains(&cards), "CARDS must be 1..=200");
    println!(
        "centre_issuance: {cards} cards per station; load average {}",
        loadavg()
    );
    testrig::ensure_pcscd().expect("pcscd");
    let mut centre = testrig::centre::Centre::start();
    centre.serve();
    let code = centre.add_station("TAS01", "tas01-bench");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut standalone = Worker::start("standalone", &tmp.path().join("standalone"), &[], "");
    let mut enrolled = Worker::start(
        "enrolled",
        &tmp.path().join("enrolled"),
        &[&centre.url(), centre.fingerprint()],
        &code,
    );
    let mut rows: [Vec<serde_json::Value>; 2] = [Vec::new(), Vec::new()];
    for i in 0..cards {
        if i % 2 == 0 {
            rows[0].push(standalone.issue(i));
            rows[1].push(enrolled.issue(i));
        } else {
            rows[1].push(enrolled.issue(i));
            rows[0].push(standalone.issue(i));
        }
    }
    let load_end = loadavg();
    drop(standalone);
    drop(enrolled);
    let med = |rows: &[serde_json::Value], key: &str| -> f64 {
        let mut v: Vec<f64> = rows
            .iter()
            .map(|r| r[key].as_f64().expect("a figure"))
            .collect();
        median(&mut v)
    };
    println!("one card end to end, median of {cards} each (ms):");
    println!("                       standalone   enrolled");
    for (label, key) in [
        ("total", "total"),
        ("card I/O", "card"),
        ("HSM / certify", "hsm"),
        ("registry", "registry"),
        ("everything else", "other"),
        ("wall (issue call)", "wall"),
        ("APDUs", "apdus"),
    ] {
        println!(
            "  {label:<18} {:>10.1} {:>10.1}",
            med(&rows[0], key),
            med(&rows[1], key)
        );
    }
    let (a, b) = (med(&rows[0], "total"), med(&rows[1], "total"));
    println!(
        "  enrolled − standalone: {:.1} ms ({:.2} ×); load average at the end {load_end}",
        b - a,
        b / a
    );
    println!("  (enrolled: \"HSM / certify\" holds the centre's certify call, \"registry\" the reserve and complete calls, \"everything else\" the status call)");
    centre.stop();
}

// ---------------------------------------------------------------------------------------------
// A worker: one station

fn worker(kind: &str, dir: &Path, args: &[String]) {
    let mut stdin = std::io::stdin().lock().lines();
    let secret = Zeroizing::new(stdin.next().expect("secret line").expect("stdin"));
    let data = dir.join("data");
    let pin_file = dir.join("hsm-pin");
    std::fs::write(&pin_file, format!("{HSM_PIN}\n")).expect("pin file");
    std::fs::set_permissions(
        &pin_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod 600");
    let softhsm_dir =
        Some(hsm::pkcs11::SoftHsm2Token::process_dir().expect("the parent sets SOFTHSM2_CONF"));
    match kind {
        "standalone" => {
            station::init::init(
                &data,
                &station::init::InitOptions {
                    station_name: "bench".into(),
                    office: "TAS01".into(),
                    series: "AA".into(),
                    admin_name: "admin".into(),
                    admin_password: Zeroizing::new(ADMIN_PASSWORD.into()),
                    second_admin: None,
                    hsm_pin: Some(hsm::SecretSource::File(pin_file)),
                    hsm_so_pin: None,
                    module: hsm::pkcs11::SOFTHSM2_MODULE.into(),
                    softhsm_dir,
                },
            )
            .expect("init");
        }
        "enrolled" => {
            let [url, fingerprint] = args else {
                panic!("--worker enrolled DIR URL FINGERPRINT")
            };
            station::init_centre::init_centre(
                &data,
                &station::init_centre::CentreInitOptions {
                    other_urls: Vec::new(),
                    url: url.clone(),
                    fingerprint: fingerprint.clone(),
                    enrolment_code: Zeroizing::new(secret.trim().to_owned()),
                    station_name: "tas01-bench".into(),
                    admin_name: "admin".into(),
                    admin_password: Zeroizing::new(ADMIN_PASSWORD.into()),
                    second_admin: None,
                    hsm_pin: Some(hsm::SecretSource::File(pin_file)),
                    hsm_so_pin: None,
                    module: hsm::pkcs11::SOFTHSM2_MODULE.into(),
                    softhsm_dir,
                },
            )
            .expect("init --centre");
        }
        other => panic!("unknown worker {other:?}"),
    }
    let mut st = station::Station::open(&data).expect("open");
    let clerk_pw = Zeroizing::new(CLERK_PASSWORD.to_string());
    let admin = st
        .authorize(
            "admin",
            &Zeroizing::new(ADMIN_PASSWORD.into()),
            "bench",
            &[registry::Role::CaAdmin],
        )
        .expect("admin");
    station::operators::add(&mut st, &admin, "clerk", registry::Role::Clerk, &clerk_pw)
        .expect("clerk");
    let clerk = st
        .authorize("clerk", &clerk_pw, "bench", &[registry::Role::Clerk])
        .expect("clerk");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/holders");
    let policy = ValidationPolicy::new(station::time_util::today_utc());
    let template = load(&fixtures.join("holder-02.json"), &policy).expect("holder");
    let slot = testrig::Slot::lease();
    let vchip = testrig::vchip_bin().expect("vchip");
    let serial_base: u32 = if kind == "standalone" {
        0xBE00_0000
    } else {
        0xCE00_0000
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{RESULT}ready").unwrap();
    out.flush().unwrap();
    for line in stdin {
        let line = line.expect("stdin");
        let Some(seq) = line.strip_prefix("issue ") else {
            break;
        };
        let seq: u32 = seq.parse().expect("card number");
        // A new holder per card (distinct PINFL with a valid check digit, same birth date).
        let mut holder = template.clone();
        let mut digits: Vec<u32> = holder
            .record
            .pinfl
            .bytes()
            .map(|c| u32::from(c - b'0'))
            .collect();
        let n = 100 + seq;
        digits[10] = n / 100 % 10;
        digits[11] = n / 10 % 10;
        digits[12] = n % 10;
        digits[13] = station::holder::pinfl_check_digit(&digits[..13]);
        holder.record.pinfl = digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
        let img = dir.join(format!("card-{seq}.img"));
        let created = Command::new(&vchip)
            .args(["create", "--out"])
            .arg(&img)
            .args(["--serial", &(serial_base + seq).to_string()])
            .output()
            .expect("vchip create");
        assert!(created.status.success(), "vchip create: {created:?}");
        let inserted = slot.insert(&img, &[]);
        let input = IssueInput {
            holder,
            reader: Some(slot.reader_name.clone()),
            pin: Zeroizing::new("48291637".into()),
            pin_letter: dir.join(format!("pin-letter-{seq}.pdf")),
            update_holder: false,
        };
        let t0 = std::time::Instant::now();
        let r = issue(&mut st, &clerk, &input, &mut |_| {}).expect("issue");
        let wall = t0.elapsed().as_secs_f64() * 1e3;
        inserted.pull();
        let t = &r.timings;
        let row = serde_json::json!({
            "total": t.total_ms, "card": t.card_ms, "hsm": t.hsm_ms, "registry": t.registry_ms,
            "other": t.total_ms - t.card_ms - t.hsm_ms - t.registry_ms,
            "wall": wall, "apdus": r.apdus, "document": r.document,
        });
        writeln!(out, "{RESULT}{row}").unwrap();
        out.flush().unwrap();
    }
}
