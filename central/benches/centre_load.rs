//! Benchmark (issue 15): certificates per second the centre issues to 8 concurrent stations,
//! against the raw SoftHSM2 P-256 signature rate with the same 8 threads, in one run.
//!
//! `cargo bench -p central --bench centre_load` (a bench binary, one run, ≈ 1 minute).
//!
//! The centre is the real one: a private PostgreSQL cluster (scripts/pg-up.sh, `fsync=on`,
//! `synchronous_commit=on`), `idcentral init` with its own SoftHSM2 token, and `idcentral serve`
//! (the release binary of this build) on 127.0.0.1 over TLS 1.3 with mutual TLS. Eight stations
//! of two offices enrol as `central/tests/centre_issuance.rs` enrols them: identity keys in
//! SoftHSM2 tokens of this process (the TLS client signature is made there). Then 8 threads, one
//! station each, each with its own current-thread runtime as `station::centre::CentreClient`
//! has, issue cards in a loop for a bounded time: `reserve` (a new holder, 14-digit PINFL) →
//! `certify` (two fresh P-256 card keys, each with its proof of possession over
//! `centre_api::proof_digest`, signed as a card signs it: the digest as the prehash) →
//! `complete`. Like the station (`station::centre::CentreClient`), each thread keeps its
//! connection: one TCP + TLS 1.3 handshake with the station's client certificate, then every
//! call on it (the station keeps an idle connection 30 s; a loop of cards never waits that long).
//!
//! In the same run, before and after the load: the raw signature rate of 8 threads on a fresh
//! SoftHSM2 token (`Pkcs11Store::sign_p256_sha256` over an 821-byte message, a holder
//! certificate's tbsCertificate size), once with one store shared by the 8 threads (one
//! session under the store's lock: how the centre holds its token) and once with a store per
//! thread (8 sessions). And, to say where the time goes: the durable commit rate of 8
//! PostgreSQL connections on the same cluster (`SELECT txid_current()` per transaction, with
//! and without a shared transaction-scoped advisory lock, which is how the centre serialises
//! its audit appends), and the rate of `GET /v1/status` from the 8 stations (a full handshake
//! and one authenticated read, no commit). CPU seconds of this process (the 8 stations), of
//! `idcentral serve` and of the cluster's PostgreSQL processes are read from /proc around the
//! measured window.
//!
//! Environment: `CENTRE_LOAD_SECONDS` (measured window, default 20), `CENTRE_LOAD_PEER_SECONDS`
//! (each peer phase, default 5), `CENTRE_LOAD_WARMUP_SECONDS` (default 3). With
//! `CENTRE_LOAD_STATEMENTS=1` and `PG_UP_OPTIONS="-c shared_preload_libraries=pg_stat_statements
//! -c pg_stat_statements.track=all"` (read by scripts/pg-up.sh) it also prints the statements
//! the cluster spent most time executing, triggers' statements included.

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
mod shared;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use shared::*;
use zeroize::Zeroizing;

const STATIONS: usize = 8;
const RAW_PIN: &str = "raw-peer-pin-3c1d";
/// The size of a holder-sign tbsCertificate (docs/BENCHMARKS.md, "ca").
const TBS_BYTES: usize = 821;
/// The size of an OCSP response's tbsResponseData for one certificate (`central::public::ocsp`).
const OCSP_TBS_BYTES: usize = 160;

/// The 8 stations issue cards until `stop`; each thread's cards.
fn issue_load(
    addr: SocketAddr,
    tls: &[Arc<rustls::ClientConfig>],
    stop: Instant,
    seq_base: u64,
) -> Vec<Card> {
    let barrier = Arc::new(Barrier::new(tls.len()));
    let handles: Vec<_> = tls
        .iter()
        .enumerate()
        .map(|(i, tls)| {
            let tls = Arc::clone(tls);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let rt = runtime();
                let mut link = Link::new(addr, &tls);
                barrier.wait();
                let mut cards = Vec::new();
                let mut seq = seq_base;
                while Instant::now() < stop {
                    cards.push(rt.block_on(one_card(&mut link, i, seq)));
                    seq += 1;
                }
                cards
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("a station thread panicked"))
        .collect()
}

/// `GET /v1/status` from the 8 stations for `d`: requests per second.
fn status_rate(addr: SocketAddr, tls: &[Arc<rustls::ClientConfig>], d: Duration) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop = start + d;
    std::thread::scope(|s| {
        for tls in tls {
            let count = Arc::clone(&count);
            s.spawn(move || {
                let rt = runtime();
                while Instant::now() < stop {
                    let c = rt.block_on(call(addr, tls, "GET", centre_api::paths::STATUS, None));
                    assert_eq!(c.body["state"], "enrolled", "{}", c.body);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Peers

/// 8 threads signing with `stores[i % len]` for `d`: signatures per second.
fn raw_sign_rate(stores: &[Arc<dyn hsm::KeyStore>], d: Duration) -> f64 {
    let count = AtomicU64::new(0);
    let go = AtomicBool::new(false);
    let start = Instant::now();
    let stop = start + d;
    std::thread::scope(|s| {
        for i in 0..STATIONS {
            let store = Arc::clone(&stores[i % stores.len()]);
            let (count, go) = (&count, &go);
            s.spawn(move || {
                while !go.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                let mut msg = vec![0x5au8; TBS_BYTES];
                let mut n = 0u64;
                while Instant::now() < stop {
                    msg[..8].copy_from_slice(&n.to_le_bytes());
                    let sig = store.sign_p256_sha256("raw", &msg).expect("raw signature");
                    assert!(sig.len() >= 8);
                    n += 1;
                }
                count.fetch_add(n, Ordering::Relaxed);
            });
        }
        go.store(true, Ordering::Release);
    });
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The floor: what this protocol asks of the centre's HSM and CPU per certificate and nothing
/// else — the certificate's signature (an 821-byte tbsCertificate), its OCSP response's,
/// signed ahead of time (issue 21; a 160-byte tbsResponseData, the size of
/// `central::public::ocsp`'s), and one proof-of-possession check (`ca::verify_possession`, two
/// per card of two certificates) — 8 threads on `store` for `d`: certificates per second. No
/// TLS, HTTP, SQL, audit chain or certificate building: no centre keeping the protocol's
/// guarantees on this machine can issue faster.
fn floor_rate(store: &Arc<dyn hsm::KeyStore>, d: Duration) -> f64 {
    use p256::pkcs8::EncodePublicKey;
    let card = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).expect("a P-256 scalar");
    let spki = card
        .verifying_key()
        .to_public_key_der()
        .expect("SPKI")
        .into_vec();
    let digest = centre_api::proof_digest(&new_job(), &[7u8; 32], 0x9a, &spki);
    let proof: p256::ecdsa::DerSignature =
        p256::ecdsa::signature::hazmat::PrehashSigner::sign_prehash(&card, &digest).expect("proof");
    let proof = proof.as_bytes().to_vec();
    let count = AtomicU64::new(0);
    let go = AtomicBool::new(false);
    let start = Instant::now();
    let stop = start + d;
    std::thread::scope(|s| {
        for _ in 0..STATIONS {
            let store = Arc::clone(store);
            let (count, go, spki, proof) = (&count, &go, &spki, &proof);
            s.spawn(move || {
                while !go.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                let mut tbs = vec![0x5au8; TBS_BYTES];
                let mut response = vec![0xa5u8; OCSP_TBS_BYTES];
                let mut n = 0u64;
                while Instant::now() < stop {
                    tbs[..8].copy_from_slice(&n.to_le_bytes());
                    response[..8].copy_from_slice(&n.to_le_bytes());
                    let ok = ca::verify_possession(spki, &digest, proof).expect("a P-256 key");
                    assert!(ok, "the proof verifies");
                    store
                        .sign_p256_sha256("raw", &tbs)
                        .expect("certificate signature");
                    store
                        .sign_p256_sha256("raw", &response)
                        .expect("OCSP response signature");
                    n += 1;
                }
                count.fetch_add(n, Ordering::Relaxed);
            });
        }
        go.store(true, Ordering::Release);
    });
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// 8 connections committing durably for `d` (`SELECT txid_current()` assigns a transaction id,
/// so each commit writes and flushes WAL); with `serialised`, each transaction first takes the
/// same transaction-scoped advisory lock, as the centre's audit appends do. Commits per second.
fn commit_rate(cluster: &Cluster, d: Duration, serialised: bool) -> f64 {
    let count = AtomicU64::new(0);
    let barrier = Barrier::new(STATIONS);
    let stop = std::sync::OnceLock::<Instant>::new();
    let started = std::sync::OnceLock::<Instant>::new();
    std::thread::scope(|s| {
        for _ in 0..STATIONS {
            let (count, barrier, stop, started) = (&count, &barrier, &stop, &started);
            s.spawn(move || {
                let rt = runtime();
                rt.block_on(async {
                    let mut c = db(cluster).await;
                    barrier.wait();
                    let t = *started.get_or_init(Instant::now);
                    let stop = *stop.get_or_init(|| t + d);
                    let mut n = 0u64;
                    while Instant::now() < stop {
                        let tx = c.transaction().await.unwrap();
                        if serialised {
                            tx.execute("SELECT pg_advisory_xact_lock(4242)", &[])
                                .await
                                .unwrap();
                        }
                        tx.execute("SELECT txid_current()", &[]).await.unwrap();
                        tx.commit().await.unwrap();
                        n += 1;
                    }
                    count.fetch_add(n, Ordering::Relaxed);
                });
            });
        }
    });
    count.load(Ordering::Relaxed) as f64 / started.get().unwrap().elapsed().as_secs_f64()
}

/// `idcentral serve` as an operator starts it: the default log level (warnings), stderr here.
fn serve(config: &std::path::Path) -> Server {
    Server::start_with(config, false, None)
}

/// What the centre's PostgreSQL backends were doing, sampled every 10 ms until `stop`:
/// `state` / `wait_event_type:wait_event` of each client backend but the sampler → samples.
fn sample_waits(cluster: &Cluster, from: Instant, stop: Instant) -> Vec<(String, u64)> {
    let rt = runtime();
    rt.block_on(async {
        let c = db(cluster).await;
        let q = c
            .prepare(
                "SELECT coalesce(state, ''), coalesce(wait_event_type, ''), coalesce(wait_event, '')
                 FROM pg_stat_activity
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                   AND datname = current_database()",
            )
            .await
            .unwrap();
        tokio::time::sleep(from.saturating_duration_since(Instant::now())).await;
        let mut tally = std::collections::BTreeMap::<String, u64>::new();
        while Instant::now() < stop {
            for r in c.query(&q, &[]).await.unwrap() {
                let (state, kind, event): (String, String, String) = (r.get(0), r.get(1), r.get(2));
                let key = if kind.is_empty() {
                    format!("{state} (on CPU)")
                } else {
                    format!("{state} / {kind}:{event}")
                };
                *tally.entry(key).or_default() += 1;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut v: Vec<(String, u64)> = tally.into_iter().collect();
        v.sort_by_key(|w| std::cmp::Reverse(w.1));
        v
    })
}

/// The cluster's counters: WAL syncs and bytes (pg_stat_wal), tuples read and written, buffer
/// accesses (pg_stat_database), sequential scans of the centre's tables.
fn pg_counters(cluster: &Cluster) -> [i64; 6] {
    runtime().block_on(async {
        let c = db(cluster).await;
        // The statistics are a snapshot per transaction: take it fresh.
        c.execute("SELECT pg_stat_clear_snapshot()", &[])
            .await
            .unwrap();
        let r = c
            .query_one(
                "SELECT (SELECT wal_sync FROM pg_stat_wal), tup_returned + tup_fetched,
                        tup_inserted + tup_updated + tup_deleted, blks_hit + blks_read,
                        (SELECT coalesce(sum(seq_scan), 0)::bigint FROM pg_stat_user_tables),
                        (SELECT wal_bytes::bigint FROM pg_stat_wal)
                 FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await
            .unwrap();
        [r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)]
    })
}

/// The centre's tables that were read sequentially, most tuples first: (table, scans, tuples).
fn seq_scans(cluster: &Cluster) -> Vec<(String, i64, i64)> {
    runtime().block_on(async {
        let c = db(cluster).await;
        c.execute("SELECT pg_stat_clear_snapshot()", &[])
            .await
            .unwrap();
        c.query(
            "SELECT relname::text, seq_scan, seq_tup_read FROM pg_stat_user_tables
             WHERE seq_scan > 0 ORDER BY seq_tup_read DESC, seq_scan DESC",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    })
}

/// The 40 statements the cluster spent most time executing (pg_stat_statements: the cluster
/// must have been started with it preloaded, see `CENTRE_LOAD_STATEMENTS` above).
fn print_statements(cluster: &Cluster) {
    let port = std::fs::read_to_string(cluster.dir.join("port")).expect("the cluster's port");
    let q = "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; \
        SELECT calls, round(total_exec_time::numeric, 1) AS ms, \
               round((1000 * total_exec_time / calls)::numeric, 1) AS us_each, rows, \
               left(regexp_replace(query, '\\s+', ' ', 'g'), 140) AS statement \
        FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 40";
    // As the cluster's owner over its socket (peer authentication), as scripts/pg-up.sh does.
    let script = format!(
        "bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); \
         if [ \"$(id -u)\" -eq 0 ]; then as='runuser -u postgres --'; fi; \
         $as \"$bin/psql\" -v ON_ERROR_STOP=1 -h '{}' -p {} -d idcentral -c \"$0\"",
        cluster.dir.join("socket").display(),
        port.trim()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script, q])
        .output()
        .expect("run psql");
    println!("statements by total execution time (pg_stat_statements):");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        panic!(
            "pg_stat_statements: {} (start the cluster with PG_UP_OPTIONS=\"-c shared_preload_libraries=pg_stat_statements\")",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("centre_load: bench");
        return;
    }
    let window = env_secs("CENTRE_LOAD_SECONDS", 20.0);
    let peer = env_secs("CENTRE_LOAD_PEER_SECONDS", 5.0);
    let warmup = env_secs("CENTRE_LOAD_WARMUP_SECONDS", 3.0);
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "centre_load: {STATIONS} stations, window {:.0} s, peers {:.0} s each; {nproc} CPUs; load average {}",
        window.as_secs_f64(),
        peer.as_secs_f64(),
        loadavg()
    );

    // The centre: cluster, config, init, 8 stations of two offices, serve.
    let (_tmp, cluster, config) =
        centre("\n[server]\npublic_name = \"localhost\"\n\n[issuance]\nblock_size = 1000000\n");
    ok(idcentral(
        &config,
        &["init", "--admin", "admin"],
        &format!("{ADMIN_PASSWORD}\n"),
    ));
    let codes: Vec<(String, String)> = (0..STATIONS)
        .map(|i| {
            let office = if i % 2 == 0 { "TAS01" } else { "SAM02" };
            let name = format!("{}-st{i}", office.to_lowercase());
            let code = add_station_at(&config, office, &name);
            (name, code)
        })
        .collect();
    let server = serve(&config);
    let addr = server.addr;
    let setup = runtime();
    let (stations, tls) = enrol_all(&setup, &cluster, addr, &codes, "load-st");

    // The raw peer: a fresh token in this process's SoftHSM2 directory.
    let dir = hsm::pkcs11::SoftHsm2Token::process_dir()
        .expect("run through cargo bench (scripts/cargo-runner.sh sets SOFTHSM2_CONF)");
    let token = hsm::pkcs11::SoftHsm2Token::create(&dir, "raw-peer", "raw-peer-so-9e", RAW_PIN)
        .expect("raw peer token");
    let shared: Arc<dyn hsm::KeyStore> =
        Arc::new(token.open(Zeroizing::new(RAW_PIN.into())).expect("open"));
    shared.generate_p256("raw").expect("raw key");
    let per_thread: Vec<Arc<dyn hsm::KeyStore>> = (0..STATIONS)
        .map(|_| {
            Arc::new(token.open(Zeroizing::new(RAW_PIN.into())).expect("open"))
                as Arc<dyn hsm::KeyStore>
        })
        .collect();

    let pg_pid = postmaster_pid(&cluster);

    // Peers before the load.
    let raw_shared_1 = raw_sign_rate(std::slice::from_ref(&shared), peer);
    let raw_sessions_1 = raw_sign_rate(&per_thread, peer);
    println!(
        "raw SoftHSM2 P-256 signatures, 8 threads: one shared store {raw_shared_1:.0}/s, a store per thread {raw_sessions_1:.0}/s (load average {})",
        loadavg()
    );

    // The load: warm-up, then the measured window.
    let t0 = Instant::now();
    let measure_from = t0 + warmup;
    let stop = measure_from + window;
    let before = std::sync::Mutex::new(None);
    let (cards, waits) = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
            let counters = pg_counters(&cluster);
            *before.lock().unwrap() = Some((
                Instant::now(),
                cpu_snap(server.child.id(), pg_pid),
                counters,
            ));
        });
        let waits = s.spawn(|| sample_waits(&cluster, measure_from, stop));
        let cards = issue_load(addr, &tls, stop, 1);
        (cards, waits.join().expect("the sampler"))
    });
    let after = cpu_snap(server.child.id(), pg_pid);
    let counters_after = pg_counters(&cluster);
    // After the window's figures: the profile's own queries are not counted in them.
    if std::env::var_os("CENTRE_LOAD_STATEMENTS").is_some() {
        print_statements(&cluster);
    }
    let scans = seq_scans(&cluster);
    let (snap_at, snap, counters_before) = before.into_inner().unwrap().expect("the CPU snapshot");
    let load_during = loadavg();
    let (cpu_st, cpu_centre, cpu_pg) = cpu_between(&snap, &after);
    let cpu_window = Instant::now() - snap_at;
    let total_cards = cards.len();
    let counted: Vec<&Card> = cards
        .iter()
        .filter(|c| c.end >= measure_from && c.end <= stop && c.end - c.total >= measure_from)
        .collect();
    // Cards that started in the warm-up and ended in the window count too: the window's rate
    // is cards finished in it.
    let finished = cards
        .iter()
        .filter(|c| c.end >= measure_from && c.end <= stop)
        .count();
    let secs = window.as_secs_f64();
    let cards_per_s = finished as f64 / secs;
    let certs_per_s = 2.0 * cards_per_s;

    // Peers after the load.
    let raw_shared_2 = raw_sign_rate(std::slice::from_ref(&shared), peer);
    let raw_sessions_2 = raw_sign_rate(&per_thread, peer);
    let floor = floor_rate(&shared, peer);
    let commits_group = commit_rate(&cluster, peer, false);
    let commits_serial = commit_rate(&cluster, peer, true);
    let status_per_s = status_rate(addr, &tls, peer);

    // What the centre recorded (durably): every card of the run, two certificates each.
    let (jobs_done, certs_active): (i64, i64) = setup.block_on(async {
        let c = db(&cluster).await;
        let j = c
            .query_one("SELECT count(*) FROM jobs WHERE state = 'completed'", &[])
            .await
            .unwrap()
            .get(0);
        let k = c
            .query_one(
                "SELECT count(*) FROM certificates WHERE state = 'active'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (j, k)
    });
    assert_eq!(
        jobs_done as usize, total_cards,
        "completed jobs at the centre"
    );
    assert_eq!(
        certs_active as usize,
        2 * total_cards,
        "active certificates"
    );

    let raw_shared = (raw_shared_1 + raw_shared_2) / 2.0;
    let raw_sessions = (raw_sessions_1 + raw_sessions_2) / 2.0;
    let pick =
        |f: fn(&Card) -> Duration| -> Vec<f64> { counted.iter().map(|c| ms(f(c))).collect() };
    let mut certify_call = pick(|c| c.certify.0 + c.certify.1);
    let mut certify_exchange = pick(|c| c.certify.1);
    // Connecting happens once per station thread (zero on a kept connection).
    let mut handshakes: Vec<f64> = counted
        .iter()
        .flat_map(|c| [c.reserve.0, c.certify.0, c.complete.0])
        .filter(|d| *d > Duration::from_micros(200))
        .map(ms)
        .collect();
    let mut reserve_x = pick(|c| c.reserve.1);
    let mut complete_x = pick(|c| c.complete.1);
    let mut keys = pick(|c| c.keys);
    let mut card_total = pick(|c| c.total);

    println!();
    println!(
        "load: {finished} cards finished in the {secs:.0} s window ({total_cards} in all, all 200; the centre holds {jobs_done} completed jobs and {certs_active} active certificates)"
    );
    println!("  cards/s                         {cards_per_s:8.1}");
    println!("  certificates/s                  {certs_per_s:8.1}");
    println!(
        "  certify call p50 / p99          {:8.1} / {:.1} ms  (connecting if needed + request; {} calls)",
        quantile(&mut certify_call, 0.5),
        quantile(&mut certify_call, 0.99),
        certify_call.len()
    );
    println!(
        "  certify exchange p50 / p99      {:8.1} / {:.1} ms  (request to answer, after the handshake)",
        quantile(&mut certify_exchange, 0.5),
        quantile(&mut certify_exchange, 0.99)
    );
    println!(
        "  reserve exchange p50            {:8.1} ms",
        quantile(&mut reserve_x, 0.5)
    );
    println!(
        "  complete exchange p50           {:8.1} ms",
        quantile(&mut complete_x, 0.5)
    );
    let handshake_p50 = if handshakes.is_empty() {
        "none".to_owned()
    } else {
        format!("p50 {:.1} ms", quantile(&mut handshakes, 0.5))
    };
    println!(
        "  TCP + TLS handshakes in the window {:5}  ({handshake_p50}; each station connects once, in the warm-up)",
        handshakes.len(),
    );
    println!(
        "  card keys + proofs p50          {:8.2} ms  (2 software P-256 keys, 2 signatures)",
        quantile(&mut keys, 0.5)
    );
    println!(
        "  whole card p50 / p99            {:8.1} / {:.1} ms",
        quantile(&mut card_total, 0.5),
        quantile(&mut card_total, 0.99)
    );
    println!(
        "  CPU in the window ({:.1} s): stations (this process) {cpu_st:.1} s, idcentral {cpu_centre:.1} s, PostgreSQL {cpu_pg:.1} s = {:.2} cores busy of {nproc}",
        cpu_window.as_secs_f64(),
        (cpu_st + cpu_centre + cpu_pg) / cpu_window.as_secs_f64()
    );
    if finished > 0 {
        let per = |s: f64| 1e3 * s / (finished as f64 * cpu_window.as_secs_f64() / secs);
        println!(
            "  CPU per card: stations {:.1} ms, idcentral {:.1} ms, PostgreSQL {:.1} ms",
            per(cpu_st),
            per(cpu_centre),
            per(cpu_pg)
        );
    }
    println!("  load average at the end of the window: {load_during}");
    if total_cards > 0 {
        // Counted over every card from the window's start to its end (cards then in flight too).
        let d: Vec<f64> = (0..6)
            .map(|i| (counters_after[i] - counters_before[i]) as f64)
            .collect();
        let n = finished as f64;
        println!(
            "  PostgreSQL per card: {:.2} WAL fsyncs, {:.1} kB WAL, {:.0} tuples read, {:.0} tuples written, {:.0} buffer accesses, {:.1} sequential scans",
            d[0] / n, d[5] / n / 1e3, d[1] / n, d[2] / n, d[3] / n, d[4] / n
        );
    }
    println!("  sequential scans since the cluster started, by table (scans, tuples read):");
    for (table, n, tuples) in scans.iter().take(6) {
        println!("    {table:<28} {n:8} {tuples:12}");
    }
    let samples: u64 = waits.iter().map(|w| w.1).sum();
    println!(
        "  the centre's PostgreSQL backends, sampled every 10 ms ({samples} backend samples):"
    );
    for (what, n) in waits.iter().take(8) {
        println!(
            "    {:5.1} %  {what}",
            100.0 * *n as f64 / samples.max(1) as f64
        );
    }
    println!();
    println!("peers (same run):");
    println!(
        "  raw SoftHSM2 signatures, 8 threads, one shared store   {raw_shared:8.0}/s  (before {raw_shared_1:.0}, after {raw_shared_2:.0})"
    );
    println!(
        "  raw SoftHSM2 signatures, 8 threads, a store per thread {raw_sessions:8.0}/s  (before {raw_sessions_1:.0}, after {raw_sessions_2:.0})"
    );
    println!(
        "  the floor: 2 signatures + 1 proof check per certificate  {floor:8.0}/s  (= {:.3} × raw; the centre reaches {:.3} of it)",
        floor / raw_shared,
        certs_per_s / floor
    );
    println!("  durable commits, 8 connections (group commit)        {commits_group:8.0}/s");
    println!("  durable commits, 8 connections, one advisory lock     {commits_serial:8.0}/s");
    println!("  GET /v1/status, 8 stations, full handshake each       {status_per_s:8.0}/s");
    println!();
    println!(
        "ratio: certificates/s ÷ raw signatures/s = {:.4} (one shared store), {:.4} (a store per thread); target ≥ 0.5",
        certs_per_s / raw_shared,
        certs_per_s / raw_sessions
    );
    println!(
        "  per certificate the centre's HSM makes 1 signature (the certificate; TLS server handshakes only when a station connects); PostgreSQL commits 1.5 audited transactions"
    );
    println!("load average at the end: {}", loadavg());
    drop(stations);
}
