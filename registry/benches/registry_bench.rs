//! Registry benchmark binary (one run, figures printed as a Markdown table for
//! docs/BENCHMARKS.md): on a registry holding 1,000,000 issuance audit events and 1,000,000
//! documents it measures audit verification rate, export of all events against the `sqlite3`
//! CLI's `-csv` dump of the same rows from the same file, document-number lookup latency and one
//! durable (`synchronous=FULL`) issuance commit.
//!
//! Run: `cargo bench -p registry --bench registry_bench` (env `REGISTRY_BENCH_EVENTS` to change
//! the size; the fixture is built once under the target dir and reused).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use p256::ecdsa::{DerSignature, SigningKey};
use registry::jobs::Completion;
use registry::{
    Actor, AuditEntry, DocumentNumber, ExportFormat, ExportRange, ExportRequest, NewCertificate,
    NewJob, Registry, VerifyOptions,
};
use rusqlite::params;
use serde_json::json;

fn sign(k: &SigningKey) -> impl Fn(&[u8]) -> Result<Vec<u8>, String> + '_ {
    move |m: &[u8]| {
        use signature::Signer;
        let s: DerSignature = k.try_sign(m).map_err(|e| e.to_string())?;
        Ok(s.to_bytes().to_vec())
    }
}

fn bench_dir() -> PathBuf {
    // target/release/deps/registry_bench-… → target/registry-bench
    let exe = std::env::current_exe().expect("current exe");
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("registry-bench")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// Tiny deterministic generator (xorshift) for fixture data and lookup order.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const SURNAMES: &[&str] = &[
    "Karimov",
    "Karimova",
    "Tursunov",
    "Yusupova",
    "Rahimov",
    "Abdullayeva",
    "Oʻrinov",
    "Gʻulomova",
];

fn build_fixture(path: &Path, n: u64, key: &SigningKey) {
    eprintln!(
        "building fixture with {n} events at {} (once)",
        path.display()
    );
    let t0 = Instant::now();
    let tmp = path.with_extension("building");
    let _ = std::fs::remove_file(&tmp);
    let mut reg = Registry::open(&tmp).expect("open fixture");
    let clerk = Actor::new("clerk-01", "clerk", "TAS01-ST1");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let batch = 50_000u64;
    let mut i = 0u64;
    reg.write(|tx| {
        tx.add_number_block("TAS01", "AA", 1, 9_999_999)?;
        tx.insert_ca_key("esign-1", "esign", "issuing", b"bench-spki", &clerk)
            .map(|_| ())
    })
    .expect("setup");
    while i < n {
        let tx = reg.transaction().expect("tx");
        {
            // Bulk records through prepared SQL (fixture speed); audit events through the
            // real append path.
            let c = tx_conn(&tx);
            let mut ins_h = c
                .prepare_cached(
                    "INSERT INTO holders (pinfl, surname, given_names, sex, date_of_birth, place_of_birth, citizenship, created_at, created_by)
                     VALUES (?1, ?2, 'Dilnoza', 'F', '1985-02-14', 'Toshkent', 'UZB', '2026-01-01T00:00:00.000000Z', 'clerk-01')",
                )
                .expect("prepare");
            let mut ins_n = c
                .prepare_cached(
                    "INSERT INTO document_numbers VALUES ('AA', ?1, 1, 'TAS01', 'used', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', NULL)",
                )
                .expect("prepare");
            let mut ins_d = c
                .prepare_cached(
                    "INSERT INTO documents (series, number, holder_id, office, date_of_issue, date_of_expiry, status)
                     VALUES ('AA', ?1, ?2, 'TAS01', '2026-01-01', '2036-01-01', 'active')",
                )
                .expect("prepare");
            for _ in 0..batch.min(n - i) {
                i += 1;
                let pinfl = format!("3{:013}", i);
                ins_h
                    .execute(params![pinfl, SURNAMES[(rng.next() % 8) as usize]])
                    .expect("holder");
                let hid = c.last_insert_rowid();
                ins_n.execute(params![i as i64]).expect("number");
                ins_d.execute(params![i as i64, hid]).expect("document");
                tx.audit(&AuditEntry {
                    actor: &clerk,
                    action: "issuance.completed",
                    object: &format!("document:AA{i:07}"),
                    details: &json!({
                        "job": i,
                        "card": format!("VCHIP-{:08X}", rng.next() as u32),
                        "certificates": [2 * i - 1, 2 * i],
                        "pinfl": pinfl,
                    }),
                })
                .expect("audit");
            }
        }
        tx.audit_checkpoint(&sign(key)).expect("checkpoint");
        tx.commit().expect("commit");
        eprint!("\r  {i}/{n}");
    }
    reg.connection()
        .execute_batch("UPDATE number_blocks SET next = (SELECT max(number) + 1 FROM document_numbers); PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("finish");
    drop(reg);
    std::fs::rename(&tmp, path).expect("rename fixture");
    for ext in ["building-wal", "building-shm"] {
        let _ = std::fs::remove_file(path.with_extension(ext));
    }
    eprintln!("\n  fixture built in {:.1} s", t0.elapsed().as_secs_f64());
}

/// The fixture builder bulk-loads holders and documents through the transaction's connection.
fn tx_conn<'a>(tx: &'a registry::Tx<'_>) -> &'a rusqlite::Connection {
    tx.raw_connection()
}

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore harness flags.
    let n: u64 = std::env::var("REGISTRY_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).expect("bench dir");
    let fixture = dir.join(format!("fixture-{n}.sqlite"));
    let key = SigningKey::from_slice(&[0x42; 32]).expect("key");
    if !fixture.exists() {
        build_fixture(&fixture, n, &key);
    }
    let reg = Registry::open(&fixture).expect("open fixture");
    let events: i64 = reg
        .connection()
        .query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0))
        .expect("count");
    println!(
        "registry bench: {events} audit events, fixture {}",
        fixture.display()
    );
    let mut rows: Vec<(String, String, String)> = Vec::new();

    // 1. Audit verification (with checkpoint signatures checked).
    let opts = VerifyOptions {
        checkpoint_key: Some(*key.verifying_key()),
        anchor: None,
    };
    reg.verify_audit(&opts).expect("warm-up verify");
    let mut rates = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let r = reg.verify_audit(&opts).expect("verify");
        rates.push(r.events as f64 / t.elapsed().as_secs_f64());
    }
    let verify_rate = median(&mut rates);
    // Peers: the SQLite scan alone (same rows, same columns touched, no hashing), and SHA-256
    // alone over the same encodings held in memory.
    let mut scan = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let mut st = reg
            .connection()
            .prepare("SELECT seq, time, operator, role, station, action, object, details, prev_hash, hash FROM audit_events ORDER BY seq")
            .expect("prepare");
        let mut rows = st.query([]).expect("query");
        let mut bytes = 0usize;
        while let Some(r) = rows.next().expect("row") {
            for i in 1..8 {
                bytes += r.get_ref(i).expect("col").as_str().expect("text").len();
            }
            bytes += r.get_ref(9).expect("col").as_blob().expect("blob").len();
        }
        scan.push(events as f64 / t.elapsed().as_secs_f64());
        std::hint::black_box(bytes);
    }
    let scan_rate = median(&mut scan);
    let encodings: Vec<registry::AuditEvent> = reg.audit_events(1, events as u64).expect("read");
    let mut hasher = registry::audit::EventHasher::default();
    let t = Instant::now();
    let mut acc = 0u8;
    for e in &encodings {
        acc ^= hasher.hash(
            e.seq,
            [
                e.time.as_bytes(),
                e.operator.as_bytes(),
                e.role.as_bytes(),
                e.station.as_bytes(),
                e.action.as_bytes(),
                e.object.as_bytes(),
                e.details.as_bytes(),
            ],
            &e.prev_hash,
        )[0];
    }
    let sha_rate = encodings.len() as f64 / t.elapsed().as_secs_f64();
    std::hint::black_box(acc);
    drop(encodings);
    rows.push((
        "audit verification (chain + checkpoint signatures; 2 threads), median of 3".into(),
        format!("{:.2} M events/s", verify_rate / 1e6),
        format!(
            "target >= 1.00 M/s; one-thread SQLite scan of the same rows, no hashing: {:.2} M/s; one-thread SHA-256 of the same encodings in memory: {:.2} M/s",
            scan_rate / 1e6,
            sha_rate / 1e6
        ),
    ));
    if std::env::var("REGISTRY_BENCH_ONLY").as_deref() == Ok("verify") {
        print_rows(&rows);
        return;
    }

    // 2. Export all events vs sqlite3 -csv of the same rows.
    let auditor = Actor::new("auditor-01", "auditor", "TAS01-ST1");
    let audit_cert = test_audit_cert(&key);
    let mut ours = Vec::new();
    let mut ours_csv = Vec::new();
    let mut peer = Vec::new();
    let sql = "SELECT seq, time, operator, role, station, action, object, details, lower(hex(prev_hash)), lower(hex(hash)) FROM audit_events ORDER BY seq";
    for run in 0..3 {
        for (fmt, acc) in [
            (ExportFormat::Jsonl, &mut ours),
            (ExportFormat::Csv, &mut ours_csv),
        ] {
            let out = dir.join(format!("export-{run}-{}", fmt.as_str()));
            let _ = std::fs::remove_dir_all(&out);
            let t = Instant::now();
            reg.export_audit(
                &ExportRequest {
                    out_dir: &out,
                    range: ExportRange::All,
                    format: fmt,
                    exporter: &auditor,
                    chain_der: std::slice::from_ref(&audit_cert),
                },
                &sign(&key),
            )
            .expect("export");
            acc.push(t.elapsed().as_secs_f64());
            let _ = std::fs::remove_dir_all(&out);
        }
        let out = dir.join(format!("sqlite3-{run}.csv"));
        let t = Instant::now();
        let f = std::fs::File::create(&out).expect("create");
        let st = Command::new("sqlite3")
            .arg("-csv")
            .arg(&fixture)
            .arg(sql)
            .stdout(f)
            .status()
            .expect("run sqlite3 (Debian package sqlite3)");
        peer.push(t.elapsed().as_secs_f64());
        assert!(st.success(), "sqlite3 failed");
        let _ = std::fs::remove_file(&out);
    }
    let (o, oc, p) = (median(&mut ours), median(&mut ours_csv), median(&mut peer));
    rows.push((
        "export all events, JSON Lines (verifies chain, hashes file, fsyncs), median of 3".into(),
        format!("{o:.2} s ({:.2}x sqlite3)", o / p),
        format!("`sqlite3 -csv` same rows, same file: {p:.2} s; target <= 1.5x"),
    ));
    rows.push((
        "export all events, CSV, median of 3".into(),
        format!("{oc:.2} s ({:.2}x sqlite3)", oc / p),
        format!("`sqlite3 -csv`: {p:.2} s"),
    ));

    // 3. Document-number lookup latency.
    let mut rng = Rng(42);
    let ndocs: i64 = reg
        .connection()
        .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
        .expect("count docs");
    let mut lat = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        let num = DocumentNumber::new("AA", 1 + (rng.next() % ndocs as u64) as u32).expect("num");
        let t = Instant::now();
        let d = reg.document(num).expect("lookup");
        lat.push(t.elapsed());
        assert!(d.is_some());
    }
    let p50 = pct(&mut lat, 0.50);
    let p99 = pct(&mut lat, 0.99);
    rows.push((
        format!("document lookup by series+number, 100,000 random of {ndocs}"),
        format!(
            "p50 {:.1} us, p99 {:.1} us",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        ),
        "target p99 < 1 ms".into(),
    ));
    drop(reg);

    // 4. One durable issuance commit, on a copy of the fixture.
    let work = dir.join("commit-work.sqlite");
    let _ = std::fs::remove_file(&work);
    let _ = std::fs::remove_file(work.with_extension("sqlite-wal"));
    std::fs::copy(&fixture, &work).expect("copy fixture");
    let mut reg = Registry::open(&work).expect("open copy");
    let clerk = Actor::new("clerk-02", "clerk", "TAS01-ST1");
    let key_id: i64 = reg
        .connection()
        .query_row("SELECT id FROM ca_keys LIMIT 1", [], |r| r.get(0))
        .expect("key");
    let mut commits = Vec::new();
    let mut floor = Vec::new();
    for i in 0..200u32 {
        let pinfl = format!("4{:013}", i);
        let h = reg
            .write(|tx| {
                tx.insert_holder(
                    &registry::NewHolder {
                        pinfl: pinfl.clone(),
                        surname: "Karimova".into(),
                        given_names: "Dilnoza".into(),
                        sex: "F".into(),
                        date_of_birth: "1985-02-14".into(),
                        place_of_birth: "Toshkent".into(),
                        citizenship: "UZB".into(),
                        photo_sha256: None,
                        ..Default::default()
                    },
                    &registry::NewAddress {
                        kind: registry::AddressKind::Permanent,
                        region: "Toshkent".into(),
                        district: "Yunusobod".into(),
                        street: "Amir Temur".into(),
                        house: "1".into(),
                        apartment: None,
                        registered_on: "2010-01-01".into(),
                        registered_until: None,
                    },
                    &clerk,
                )
            })
            .expect("holder");
        let num = reg.allocate_document_number("TAS01").expect("number");
        let job = reg
            .create_job(
                &NewJob {
                    holder_id: h,
                    office: "TAS01".into(),
                    document: Some(num),
                },
                &clerk,
            )
            .expect("job");
        let cert = reg
            .write(|tx| {
                tx.insert_certificate(&NewCertificate {
                    issuer_key_id: key_id,
                    serial: format!("b{i:07x}"),
                    subject: "CN=KARIMOVA DILNOZA".into(),
                    purpose: "holder-sign".into(),
                    not_before: "2026-01-01T00:00:00Z".into(),
                    not_after: "2031-01-01T00:00:00Z".into(),
                    holder_id: Some(h),
                    card_id: None,
                    job_id: Some(job),
                    der: vec![0x30; 600],
                })
            })
            .expect("cert");
        let t = Instant::now();
        let tx = reg.transaction().expect("tx");
        tx.complete_issuance(
            &Completion {
                job_id: job,
                date_of_issue: "2026-11-25".into(),
                date_of_expiry: "2036-11-24".into(),
                card_serial: format!("BENCH-{i:06}"),
                certificate_ids: vec![cert],
                document_signer: None,
            },
            &clerk,
        )
        .expect("complete");
        tx.commit().expect("commit");
        commits.push(t.elapsed());
        // Floor: one audit event alone, committed durably.
        let t = Instant::now();
        reg.audit(&AuditEntry {
            actor: &clerk,
            action: "bench.floor",
            object: "-",
            details: &json!({}),
        })
        .expect("floor");
        floor.push(t.elapsed());
    }
    let c50 = pct(&mut commits, 0.5);
    let c99 = pct(&mut commits, 0.99);
    let f50 = pct(&mut floor, 0.5);
    rows.push((
        "one durable issuance commit (complete_issuance: document, number, card, certificate, outbox, job, audit event; synchronous=FULL), 200 runs".into(),
        format!("median {:.2} ms, p99 {:.2} ms", c50.as_secs_f64() * 1e3, c99.as_secs_f64() * 1e3),
        format!("a single audit-event commit on the same file: median {:.2} ms", f50.as_secs_f64() * 1e3),
    ));
    drop(reg);
    let _ = std::fs::remove_file(&work);
    let _ = std::fs::remove_file(work.with_extension("sqlite-wal"));
    let _ = std::fs::remove_file(work.with_extension("sqlite-shm"));

    print_rows(&rows);
}

fn print_rows(rows: &[(String, String, String)]) {
    println!();
    println!("| measurement | result | peer / target |");
    println!("|---|---|---|");
    for (a, b, c) in rows {
        println!("| {a} | {b} | {c} |");
    }
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("\nload average at the end (2 cores): {}", l.trim());
    }
}

/// A self-signed certificate for the audit key (only its DER shape matters for export timing).
fn test_audit_cert(key: &SigningKey) -> Vec<u8> {
    use der::{Decode, Encode};
    use p256::pkcs8::EncodePublicKey;
    use std::str::FromStr;
    use x509_cert::builder::{profile::cabf::Root, Builder, CertificateBuilder};
    let spki_der = key.verifying_key().to_public_key_der().expect("spki");
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes()).expect("spki");
    let name =
        x509_cert::name::Name::from_str("CN=Bench audit,O=idstation bench,C=UZ").expect("name");
    let validity =
        x509_cert::time::Validity::from_now(Duration::from_secs(86_400)).expect("validity");
    let cert = CertificateBuilder::new(
        Root::new(false, name).expect("profile"),
        x509_cert::serial_number::SerialNumber::from(1u32),
        validity,
        spki,
    )
    .expect("builder")
    .build::<_, DerSignature>(key)
    .expect("build");
    cert.to_der().expect("der")
}
