//! Issuance cost against the HSM's own signing cost, in one criterion run (issue 2: issuing
//! one holder certificate on SoftHSM2 must take ≤ 1.15 × one raw SoftHSM2 ECDSA signature:
//! building the certificate must be noise next to the HSM).
//!
//! Both figures go through the same `hsm::pkcs11::Pkcs11Store` on a private SoftHSM2 token
//! (SOFTHSM2_CONF in a temp dir); the raw signature signs a message as long as the holder
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
    let dir = tempfile::tempdir().expect("temp dir");
    let token = SoftHsm2Token::create(dir.path(), "ca-bench", "ca-bench-so-pin", PIN)
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
    g.bench_function("raw sign_p256_sha256 (tbs-sized message)", |b| {
        b.iter(|| {
            store
                .sign_p256_sha256("esign", black_box(&tbs))
                .expect("sign")
        })
    });
    g.bench_function("issue holder-sign (ca::issue)", |b| {
        b.iter(|| ca::issue(&store, profile, &esign, black_box(&spki), &h, now).expect("issue"))
    });

    // Paired figure: the machine is shared (2 cores, other builds running), so the two
    // functions above may run under different load. Here every iteration does one raw
    // signature and one issuance back to back; both sums come from the same time window.
    let raw_total = std::cell::Cell::new(Duration::ZERO);
    let issue_total = std::cell::Cell::new(Duration::ZERO);
    g.bench_function(
        "paired: issue holder-sign, timed next to a raw signature",
        |b| {
            b.iter_custom(|iters| {
                let mut issue_time = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    black_box(
                        store
                            .sign_p256_sha256("esign", black_box(&tbs))
                            .expect("sign"),
                    );
                    raw_total.set(raw_total.get() + t.elapsed());
                    let t = Instant::now();
                    black_box(
                        ca::issue(&store, profile, &esign, black_box(&spki), &h, now)
                            .expect("issue"),
                    );
                    let e = t.elapsed();
                    issue_time += e;
                    issue_total.set(issue_total.get() + e);
                }
                issue_time
            })
        },
    );

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
    let (raw, issue) = (raw_total.get(), issue_total.get());
    eprintln!(
        "paired totals over the same window: issuance / raw signature = {:.3} (target <= 1.15)",
        issue.as_secs_f64() / raw.as_secs_f64()
    );
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
}

criterion_group!(benches, issuance);
criterion_main!(benches);
