//! Raw SoftHSM2 signing cost, the figure certificate issuance is compared against (issue 2:
//! issuance ≤ 1.15 × one raw signature).
//!
//! Run: `CARGO_PROFILE_BENCH_DEBUG_ASSERTIONS=true cargo bench -p hsm --bench sign`
//! (the MockHsm dev-dependency refuses builds without debug assertions; SoftHSM2 itself is a
//! C library and is not affected by the flag).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use hsm::pkcs11::SoftHsm2Token;
use hsm::KeyStore;
use zeroize::Zeroizing;

const PIN: &str = "bench-user-pin";

fn softhsm2(c: &mut Criterion) {
    let token = SoftHsm2Token::create(
        &SoftHsm2Token::process_dir().expect("run through cargo bench (scripts/cargo-runner.sh)"),
        "bench",
        "bench-so-pin",
        PIN,
    )
    .expect("token");
    let store = token.open(Zeroizing::new(PIN.into())).expect("open");
    store.generate_p256("ca").expect("key");
    store.generate_hmac_secret("master").expect("secret");
    // About the size of a holder certificate's tbsCertificate.
    let tbs = vec![0x5au8; 700];

    let mut g = c.benchmark_group("hsm/softhsm2");
    // The bare PKCS#11 call in its own session: C_SignInit + C_Sign over a 32-byte digest.
    let session = store
        .context()
        .open_rw_session(
            store
                .context()
                .get_slots_with_initialized_token()
                .expect("slots")
                .into_iter()
                .find(|s| s.id() == store.slot_id())
                .expect("slot"),
        )
        .expect("session");
    match session.login(UserType::User, Some(&AuthPin::new(Box::from(PIN)))) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => panic!("login: {e}"),
    }
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"ca".to_vec()),
        ])
        .expect("find")[0];
    let digest = [0x42u8; 32];
    g.bench_function("C_Sign CKM_ECDSA (bare cryptoki)", |b| {
        b.iter(|| {
            session
                .sign(&Mechanism::Ecdsa, key, black_box(&digest))
                .expect("sign")
        })
    });
    // What the store adds on the host, without the HSM: SHA-256 of the message and turning
    // the module's r||s into a low-S DER signature.
    let rs = session.sign(&Mechanism::Ecdsa, key, &digest).expect("sign");
    g.bench_function("host side only (SHA-256 + r||s -> low-S DER)", |b| {
        b.iter(|| {
            use sha2::Digest;
            let d = sha2::Sha256::digest(black_box(&tbs));
            let sig = p256::ecdsa::Signature::from_slice(black_box(&rs)).expect("r||s");
            (d, sig.normalize_s().to_der())
        })
    });
    g.bench_function(
        "sign_p256_sha256 (KeyStore: SHA-256 + CKM_ECDSA + DER)",
        |b| b.iter(|| store.sign_p256_sha256("ca", black_box(&tbs)).expect("sign")),
    );
    g.bench_function("hmac_sha256 (KeyStore: CKM_SHA256_HMAC)", |b| {
        b.iter(|| {
            store
                .hmac_sha256("master", black_box(b"SERIAL-0001"))
                .expect("hmac")
        })
    });

    g.finish();
}

criterion_group!(benches, softhsm2);
criterion_main!(benches);
