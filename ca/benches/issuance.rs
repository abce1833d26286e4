//! Issuance cost against the HSM's own signing cost, in one criterion run (issue 2: issuing
//! one holder certificate on SoftHSM2 must take ≤ 1.15 × one raw SoftHSM2 ECDSA signature:
//! building the certificate must be noise next to the HSM).
//!
//! Both figures go through the same `hsm::pkcs11::Pkcs11Store` on a private SoftHSM2 token
//! (the SOFTHSM2_CONF cargo's runner gives the process); the raw signature signs a message as long as the holder
//! certificate's tbsCertificate.
//!
//! Run: `cargo bench -p ca --bench issuance`

use std::time::{Duration, Instant, SystemTime};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use der::{Decode, Encode};
use hsm::pkcs11::SoftHsm2Token;
use hsm::KeyStore;
use zeroize::Zeroizing;

const PIN: &str = "ca-bench-user-pin";

fn holder() -> ca::HolderSubject {
    ca::HolderSubject {
        pinfl: "31234567890123".into(),
        surname: "Karimova".into(),
        given_names: "Dilnoza".into(),
        common_name: "Dilnoza Karimova".into(),
        country: "UZ".into(),
    }
}

fn issuance(c: &mut Criterion) {
    let token = SoftHsm2Token::create(
        &SoftHsm2Token::process_dir().expect("run through cargo bench (scripts/cargo-runner.sh)"),
        "ca-bench",
        "ca-bench-so-pin",
        PIN,
    )
    .expect("SoftHSM2 token (is softhsm2 installed?)");
    let store = token.open(Zeroizing::new(PIN.into())).expect("open token");
    let set = profiles::builtin().expect("profiles");
    let now = SystemTime::now();
    store.generate_p256("root").expect("root key");
    let root = ca::create_root(&store, set.cert("root-ca").unwrap(), "root", now).expect("root");
    store.generate_p256("esign").expect("esign key");
    let esign =
        ca::create_subordinate_ca(&store, set.cert("esign-ca").unwrap(), &root, "esign", now)
            .expect("esign CA");
    // The holder's key: any P-256 SPKI; here one more HSM key stands in for the card's.
    store.generate_p256("card-9c").expect("card key");
    let spki = store.public_key_spki("card-9c").expect("spki");
    let profile = set.cert("holder-sign").unwrap();
    let h = holder();

    let sample = ca::issue(&store, profile, &esign, &spki, &h, now).expect("issue");
    let cert = x509_cert::Certificate::from_der(&sample.der).expect("parse");
    let tbs = cert.tbs_certificate().to_der().expect("tbs");
    eprintln!(
        "holder-sign certificate: {} bytes, tbsCertificate {} bytes",
        sample.der.len(),
        tbs.len()
    );

    let mut g = c.benchmark_group("ca/softhsm2");
    let mut varying = tbs.clone();
    let mut n = 0u64;
    g.bench_function(
        "raw sign_p256_sha256 (tbs-sized message, new each time)",
        |b| {
            b.iter(|| {
                n += 1;
                varying[..8].copy_from_slice(&n.to_be_bytes());
                store
                    .sign_p256_sha256("esign", black_box(&varying))
                    .expect("sign")
            })
        },
    );
    g.bench_function("issue holder-sign (ca::issue)", |b| {
        b.iter(|| ca::issue(&store, profile, &esign, black_box(&spki), &h, now).expect("issue"))
    });

    // Paired figure: the machine is shared (2 cores, other builds and tests running), so the
    // two functions above may run under different load. Here every iteration does one raw
    // signature (of a new tbs-sized message) and one issuance back to back, alternating which
    // goes first; the ratio of the medians comes from the same time window. The issuance runs
    // on the store itself, with no instrumentation inside it.
    let pairs = std::cell::RefCell::new(Vec::<(Duration, Duration)>::new());
    g.bench_function(
        "paired: issue holder-sign, timed next to a raw signature",
        |b| {
            b.iter_custom(|iters| {
                let mut issue_time = Duration::ZERO;
                for i in 0..iters {
                    n += 1;
                    varying[..8].copy_from_slice(&n.to_be_bytes());
                    let (r, e) = raw_then_issue(i % 2 == 0, &store, &store, &varying, &|s| {
                        ca::issue(s, profile, &esign, black_box(&spki), &h, now).expect("issue")
                    });
                    issue_time += e;
                    pairs.borrow_mut().push((r, e));
                }
                issue_time
            })
        },
    );
    // The same pairs once more, the issuance's store now a delegating one that times its HSM
    // call, to split an issuance into "HSM signature" and "everything else" (the split's own
    // cost, two clock reads and a mutex, lands in "everything else").
    let split = std::cell::RefCell::new(Vec::<(Duration, Duration, Duration)>::new());
    let timed = Timed {
        inner: &store,
        last_sign: std::sync::Mutex::new(Duration::ZERO),
    };
    g.bench_function("paired, split by a timing store", |b| {
        b.iter_custom(|iters| {
            let mut issue_time = Duration::ZERO;
            for i in 0..iters {
                n += 1;
                varying[..8].copy_from_slice(&n.to_be_bytes());
                let (r, e) = raw_then_issue(i % 2 == 0, &store, &timed, &varying, &|s| {
                    ca::issue(s, profile, &esign, black_box(&spki), &h, now).expect("issue")
                });
                issue_time += e;
                let inner = *timed.last_sign.lock().expect("lock");
                split.borrow_mut().push((r, e, inner));
            }
            issue_time
        })
    });
    // The software part alone: same issuance, the HSM replaced by a constant signature.
    let fixed = FixedSignature {
        spki: store.public_key_spki("esign").expect("spki"),
        sig: store.sign_p256_sha256("esign", &tbs).expect("sign"),
    };
    let esign_fixed = ca::Issuer::new(&fixed, "esign", esign.cert_der()).expect("issuer");
    g.bench_function(
        "issue holder-sign, HSM replaced by a constant signature",
        |b| {
            b.iter(|| {
                ca::issue(&fixed, profile, &esign_fixed, black_box(&spki), &h, now).expect("issue")
            })
        },
    );
    g.finish();
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e6
    };
    let mut pairs = pairs.into_inner();
    let count = pairs.len();
    let raw_med = median(pairs.iter().map(|p| p.0).collect());
    let issue_med = median(pairs.iter().map(|p| p.1).collect());
    pairs.sort_by(|a, b| {
        (a.1.as_secs_f64() / a.0.as_secs_f64()).total_cmp(&(b.1.as_secs_f64() / b.0.as_secs_f64()))
    });
    let pair_med = pairs[count / 2];
    let mean =
        |v: Vec<Duration>| v.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e6 / v.len() as f64;
    let (raw_mean, issue_mean) = (
        mean(pairs.iter().map(|p| p.0).collect()),
        mean(pairs.iter().map(|p| p.1).collect()),
    );
    eprintln!(
        "paired over {count} pairs: median raw signature {raw_med:.1} µs, median issuance \
         {issue_med:.1} µs, ratio of medians {:.3}, median per-pair ratio {:.3} (target <= 1.15); \
         means {raw_mean:.1} / {issue_mean:.1} µs, ratio of means {:.3}",
        issue_med / raw_med,
        pair_med.1.as_secs_f64() / pair_med.0.as_secs_f64(),
        issue_mean / raw_mean,
    );
    let split = split.into_inner();
    eprintln!(
        "split over {} pairs: median raw signature {:.1} µs, median issuance {:.1} µs; inside \
         the issuance: median HSM signature {:.1} µs, median everything else {:.1} µs",
        split.len(),
        median(split.iter().map(|p| p.0).collect()),
        median(split.iter().map(|p| p.1).collect()),
        median(split.iter().map(|p| p.2).collect()),
        median(split.iter().map(|p| p.1.saturating_sub(p.2)).collect()),
    );
}

/// One raw signature of `message` and one issuance, back to back, `raw_first` or not; returns
/// (raw signature time, issuance time).
fn raw_then_issue<'s>(
    raw_first: bool,
    store: &hsm::pkcs11::Pkcs11Store,
    issue_store: &'s dyn KeyStore,
    message: &[u8],
    issue: &dyn Fn(&'s dyn KeyStore) -> ca::IssuedCert,
) -> (Duration, Duration) {
    let raw = || {
        let t = Instant::now();
        black_box(
            store
                .sign_p256_sha256("esign", black_box(message))
                .expect("sign"),
        );
        t.elapsed()
    };
    let issue = || {
        let t = Instant::now();
        black_box(issue(issue_store));
        t.elapsed()
    };
    if raw_first {
        let r = raw();
        (r, issue())
    } else {
        let e = issue();
        (raw(), e)
    }
}

/// Delegates to the real store and records how long the last signature took, to split an
/// issuance into "HSM signature" and "everything else".
struct Timed<'a> {
    inner: &'a hsm::pkcs11::Pkcs11Store,
    last_sign: std::sync::Mutex<Duration>,
}

impl KeyStore for Timed<'_> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn generate_p256(&self, label: &str) -> hsm::Result<hsm::KeyInfo> {
        self.inner.generate_p256(label)
    }
    fn generate_hmac_secret(&self, label: &str) -> hsm::Result<hsm::KeyInfo> {
        self.inner.generate_hmac_secret(label)
    }
    fn find(&self, label: &str) -> hsm::Result<Option<hsm::KeyInfo>> {
        self.inner.find(label)
    }
    fn list(&self) -> hsm::Result<Vec<hsm::KeyInfo>> {
        self.inner.list()
    }
    fn public_key_spki(&self, label: &str) -> hsm::Result<Vec<u8>> {
        self.inner.public_key_spki(label)
    }
    fn sign_p256_sha256(&self, label: &str, message: &[u8]) -> hsm::Result<Vec<u8>> {
        let t = Instant::now();
        let r = self.inner.sign_p256_sha256(label, message);
        *self.last_sign.lock().expect("lock") = t.elapsed();
        r
    }
    fn hmac_sha256(&self, label: &str, data: &[u8]) -> hsm::Result<Zeroizing<[u8; 32]>> {
        self.inner.hmac_sha256(label, data)
    }
    fn destroy(&self, label: &str) -> hsm::Result<bool> {
        self.inner.destroy(label)
    }
}

/// Not a key store: answers every signature with one fixed, well-formed signature, so that
/// the software part of issuance (profile, subject, extensions, DER) can be timed alone.
/// Bench-only; the certificates it yields do not verify.
struct FixedSignature {
    spki: Vec<u8>,
    sig: Vec<u8>,
}

impl KeyStore for FixedSignature {
    fn backend(&self) -> &'static str {
        "fixed-signature (bench only)"
    }
    fn generate_p256(&self, label: &str) -> hsm::Result<hsm::KeyInfo> {
        Err(hsm::HsmError::KeyExists {
            label: label.into(),
        })
    }
    fn generate_hmac_secret(&self, label: &str) -> hsm::Result<hsm::KeyInfo> {
        Err(hsm::HsmError::KeyExists {
            label: label.into(),
        })
    }
    fn find(&self, _: &str) -> hsm::Result<Option<hsm::KeyInfo>> {
        Ok(None)
    }
    fn list(&self) -> hsm::Result<Vec<hsm::KeyInfo>> {
        Ok(vec![])
    }
    fn public_key_spki(&self, _: &str) -> hsm::Result<Vec<u8>> {
        Ok(self.spki.clone())
    }
    fn sign_p256_sha256(&self, _: &str, _: &[u8]) -> hsm::Result<Vec<u8>> {
        Ok(self.sig.clone())
    }
    fn hmac_sha256(&self, label: &str, _: &[u8]) -> hsm::Result<Zeroizing<[u8; 32]>> {
        Err(hsm::HsmError::KeyNotFound {
            label: label.into(),
        })
    }
    fn destroy(&self, _: &str) -> hsm::Result<bool> {
        Ok(false)
    }
}

criterion_group!(benches, issuance);
criterion_main!(benches);
