//! Executor tests against the virtual chip in process (`chip::Card`, dev-dependency): the whole
//! personalization, refusals without writes, and a card pulled at every APDU index.

use super::*;
use crate::piv::objects::tags;
use crate::testutil::TestCa;
use crate::transport::in_process::InProcess;
use crate::transport::Recording;
use profiles::card::MgmtAlgorithm;
use time::macros::date;

const HOLDER_PIN: &str = "918273";
const HOLDER_PUK: &str = "56473829";
const CARD_KEY_HEX: &str = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0";

fn profile() -> CardProfile {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../profiles/card/card-esign.toml"
    );
    profiles::card::load_card_profile(std::path::Path::new(p)).unwrap()
}

fn card_key() -> ManagementKey {
    ManagementKey::from_hex(MgmtAlgorithm::Aes128, CARD_KEY_HEX).unwrap()
}

fn holder() -> HolderCardData {
    HolderCardData {
        name: "ALIYEV SHERZOD".into(),
        document_number: "AD1234567".into(),
        expiry: date!(2036 - 11 - 24),
    }
}

fn certs(ca: &mut TestCa, prepared: &Prepared) -> Vec<(Slot, Vec<u8>)> {
    prepared
        .public_keys
        .iter()
        .map(|k| (k.slot, ca.issue(&k.spki_der, &format!("holder {}", k.slot))))
        .collect()
}

/// Runs prepare + complete; returns the report or the first error.
fn personalize(t: &mut dyn Transport, ca: &mut TestCa) -> Result<Report, Error> {
    let prof = profile();
    let p = Personalizer::new(&prof);
    let prepared = p.prepare(t, &card_key(), &mut |_| {})?;
    let certificates = certs(ca, &prepared);
    let pin = Pin::new(PinKind::Pin, HOLDER_PIN)?;
    let puk = Pin::new(PinKind::Puk, HOLDER_PUK)?;
    let h = holder();
    let input = CompleteInput {
        certificates: &certificates,
        holder: &h,
        pin: &pin,
        puk: &puk,
    };
    p.complete(t, &prepared, &card_key(), &input, &mut |_| {})
}

#[test]
fn full_plan_turns_a_blank_card_into_a_locked_card_that_signs() {
    let prof = profile();
    let p = Personalizer::new(&prof);
    let mut ca = TestCa::new();
    let mut t = InProcess::new(chip::Card::new_blank(0x0012_3456).unwrap());
    let mut progress = Vec::new();
    let prepared = p
        .prepare(&mut t, &card_key(), &mut |pr| progress.push(pr.clone()))
        .unwrap();
    assert_eq!(prepared.serial, 0x0012_3456);
    assert_eq!(prepared.public_keys.len(), 2);
    assert_eq!(progress.len(), p.prepare_steps().len());
    for (i, pr) in progress.iter().enumerate() {
        assert_eq!(pr.index, i + 1);
        assert_eq!(pr.total, progress.len());
    }
    let certificates = certs(&mut ca, &prepared);
    let pin = Pin::new(PinKind::Pin, HOLDER_PIN).unwrap();
    let puk = Pin::new(PinKind::Puk, HOLDER_PUK).unwrap();
    let h = holder();
    let input = CompleteInput {
        certificates: &certificates,
        holder: &h,
        pin: &pin,
        puk: &puk,
    };
    let mut progress = Vec::new();
    let report = p
        .complete(&mut t, &prepared, &card_key(), &input, &mut |pr| {
            progress.push(pr.step)
        })
        .unwrap();
    assert_eq!(progress, p.complete_steps());
    assert_eq!(report.lifecycle, Lifecycle::Locked);
    assert_eq!(
        report.signatures_verified,
        vec![Slot::Authentication, Slot::Signature]
    );
    assert_eq!(report.objects_verified.len(), 7);
    assert!(report.stats.apdus > 20 && report.stats.bytes_sent > 500);

    // Independently of the executor: the locked card refuses writes, keeps the holder PIN and
    // signs with 9C after VERIFY; the signature verifies with the certificate from the card.
    t.reinsert();
    let mut piv = Piv::new(&mut t);
    piv.select().unwrap();
    assert_eq!(piv.lifecycle().unwrap(), Lifecycle::Locked);
    assert!(piv.authenticate(&card_key()).is_ok());
    // (The issuer may still write the 9A/9C certificates and Key History: docs/card.md
    // "Operational state"; the CHUID stays as issued.)
    let e = piv
        .put_data(tags::CHUID, &KeyHistory::default().encode())
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Status {
                sw: crate::status::StatusWord::ConditionsNotSatisfied,
                ..
            }
        ),
        "{e}"
    );
    let e = piv
        .verify(&Pin::new(PinKind::Pin, "123456").unwrap())
        .unwrap_err();
    assert!(matches!(e, Error::WrongPin { tries_left: 2, .. }), "{e}");
    piv.verify(&pin).unwrap();
    let cert = crate::piv::objects::certificate_from_object(&piv.get_data(tags::CERT_9C).unwrap())
        .unwrap();
    assert_eq!(cert, certificates[1].1);
    piv.verify(&pin).unwrap();
    test_sign(&mut piv, Slot::Signature, report.serial, &cert).unwrap();
}

#[test]
fn nine_c_refuses_to_sign_without_a_fresh_pin() {
    let mut ca = TestCa::new();
    let mut t = InProcess::new(chip::Card::new_blank(7).unwrap());
    let r = personalize(&mut t, &mut ca).unwrap();
    t.reinsert();
    let mut piv = Piv::new(&mut t);
    piv.select().unwrap();
    let e = piv.sign_p256(Slot::Signature, &[0u8; 32]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Status {
                sw: crate::status::StatusWord::SecurityStatusNotSatisfied,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(r.serial, 7);
}

#[test]
fn wrong_transport_key_is_a_clear_error_and_sends_no_write() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../profiles/card/card-esign.toml"
    ))
    .unwrap()
    .replace(
        "010203040506070801020304050607080102030405060708",
        "0807060504030201080706050403020108070605040302ff",
    );
    let prof =
        profiles::card::parse_card_profile(std::path::Path::new("wrong-transport.toml"), &text)
            .unwrap();
    let mut t = Recording::new(InProcess::new(chip::Card::new_blank(9).unwrap()));
    let e = Personalizer::new(&prof)
        .prepare(&mut t, &card_key(), &mut |_| {})
        .unwrap_err();
    assert_eq!(e.step(), Some("authenticate transport key"));
    assert!(
        matches!(e.root(), Error::ManagementKeyRejected { .. }),
        "{e}"
    );
    assert!(!t.sent_a_write());
    // And the card is still BLANK.
    let info = inspect(t.inner_mut()).unwrap();
    assert_eq!(info.lifecycle, Lifecycle::Blank);
}

#[test]
fn locked_card_is_refused_by_prepare_and_reset_without_writes() {
    let mut ca = TestCa::new();
    let mut t = InProcess::new(chip::Card::new_blank(10).unwrap());
    personalize(&mut t, &mut ca).unwrap();
    t.reinsert();
    let prof = profile();
    let mut rec = Recording::new(&mut t);
    let e = Personalizer::new(&prof)
        .prepare(&mut rec, &card_key(), &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("card is LOCKED"), "{e}");
    let e = Personalizer::new(&prof)
        .reset(&mut rec, &card_key(), &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("LOCKED"), "{e}");
    assert!(!rec.sent_a_write());
}

#[test]
fn card_without_piv_gives_a_clear_error_and_no_write() {
    let prof = profile();
    let mut t = Recording::new(InProcess::new(chip::Card::new_without_piv(11).unwrap()));
    let e = Personalizer::new(&prof)
        .prepare(&mut t, &card_key(), &mut |_| {})
        .unwrap_err();
    assert!(matches!(e.root(), Error::NoPivApplication), "{e}");
    assert!(e.to_string().contains("no PIV application"), "{e}");
    assert!(!t.sent_a_write());
}

#[test]
fn certificate_for_another_key_is_refused_before_any_apdu() {
    let prof = profile();
    let p = Personalizer::new(&prof);
    let mut ca = TestCa::new();
    let mut t = InProcess::new(chip::Card::new_blank(12).unwrap());
    let prepared = p.prepare(&mut t, &card_key(), &mut |_| {}).unwrap();
    let mut certificates = certs(&mut ca, &prepared);
    {
        let mut twice = certificates.clone();
        twice.push(certificates[1].clone());
        let pin = Pin::new(PinKind::Pin, HOLDER_PIN).unwrap();
        let puk = Pin::new(PinKind::Puk, HOLDER_PUK).unwrap();
        let h = holder();
        let input = CompleteInput {
            certificates: &twice,
            holder: &h,
            pin: &pin,
            puk: &puk,
        };
        let mut rec = Recording::new(&mut t);
        let e = p
            .complete(&mut rec, &prepared, &card_key(), &input, &mut |_| {})
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("exactly one certificate per planned slot"),
            "{e}"
        );
        assert!(rec.headers.is_empty());
    }
    certificates.swap(0, 1);
    certificates[0].0 = Slot::Authentication;
    certificates[1].0 = Slot::Signature;
    let pin = Pin::new(PinKind::Pin, HOLDER_PIN).unwrap();
    let puk = Pin::new(PinKind::Puk, HOLDER_PUK).unwrap();
    let h = holder();
    let input = CompleteInput {
        certificates: &certificates,
        holder: &h,
        pin: &pin,
        puk: &puk,
    };
    let mut rec = Recording::new(&mut t);
    let e = p
        .complete(&mut rec, &prepared, &card_key(), &input, &mut |_| {})
        .unwrap_err();
    assert!(
        e.to_string().contains("not the key generated on this card"),
        "{e}"
    );
    assert!(rec.headers.is_empty());
}

#[test]
fn reset_uses_the_transport_key_when_the_key_change_never_happened_and_card_key_after() {
    let prof = profile();
    let p = Personalizer::new(&prof);
    // Torn right after the transport-key authentication: still BLANK (no state change yet).
    // Tear after SET MANAGEMENT KEY is sent: PERSONALIZING with the card key.
    let steps_before_set = 5 + 2; // select, serial, version, lifecycle, PIN status, 2 x auth
    let mut t = InProcess::new(chip::Card::new_blank(13).unwrap());
    t.tear_after = Some(steps_before_set + 1);
    let e = p.prepare(&mut t, &card_key(), &mut |_| {}).unwrap_err();
    assert!(e.is_card_gone(), "{e}");
    t.reinsert();
    let mut seen = Vec::new();
    assert_eq!(
        p.reset(&mut t, &card_key(), &mut |pr| seen
            .push((pr.index, pr.total)))
            .unwrap(),
        ResetOutcome::ResetWithCardKey
    );
    assert_eq!(seen, vec![(1, 6), (2, 6), (3, 6), (5, 6), (6, 6)]);
    assert_eq!(
        p.reset(&mut t, &card_key(), &mut |_| {}).unwrap(),
        ResetOutcome::AlreadyBlank
    );
    // A card made PERSONALIZING by someone who never changed the key (PUT DATA with the
    // transport key) is reset with the transport key.
    {
        let mut piv = Piv::new(&mut t);
        piv.select().unwrap();
        piv.authenticate(&ManagementKey::transport_default())
            .unwrap();
        piv.put_data(tags::KEY_HISTORY, &KeyHistory::default().encode())
            .unwrap();
        assert_eq!(piv.lifecycle().unwrap(), Lifecycle::Personalizing);
    }
    t.reinsert();
    assert_eq!(
        p.reset(&mut t, &card_key(), &mut |_| {}).unwrap(),
        ResetOutcome::ResetWithTransportKey
    );
    let mut ca = TestCa::new();
    personalize(&mut t, &mut ca).unwrap();
}

#[test]
fn card_pulled_at_every_apdu_index_gives_card_removed_naming_the_step_and_recovers() {
    // Count the APDUs of one whole personalization.
    let mut ca = TestCa::new();
    let mut t = InProcess::new(chip::Card::new_blank(100).unwrap());
    let full = personalize(&mut t, &mut ca).unwrap();
    let mut t2 = InProcess::new(chip::Card::new_blank(101).unwrap());
    let prof = profile();
    let p = Personalizer::new(&prof);
    let prepared = p.prepare(&mut t2, &card_key(), &mut |_| {}).unwrap();
    let total = prepared.stats.apdus + full.stats.apdus;
    assert_eq!(t2.sent, prepared.stats.apdus);

    let mut after_lock = 0;
    for n in 0..total {
        let mut t = InProcess::new(chip::Card::new_blank(1000 + n as u32).unwrap());
        t.tear_after = Some(n);
        let e = personalize(&mut t, &mut ca).expect_err("a torn card cannot finish");
        assert!(matches!(e.root(), Error::CardRemoved), "tear {n}: {e}");
        let step = e
            .step()
            .unwrap_or_else(|| panic!("tear {n}: no step in {e}"));
        assert!(
            e.to_string()
                .starts_with(&format!("card removed during '{step}'")),
            "{e}"
        );
        let text = format!("{e} {e:?}");
        assert!(!text.contains(HOLDER_PIN) && !text.contains(HOLDER_PUK) && !text.contains("a1a2"));
        t.reinsert();
        let info = inspect(&mut t).unwrap();
        if info.lifecycle == Lifecycle::Locked {
            // Only a tear after LOCK was processed leaves a locked card.
            assert!(
                step == "read lifecycle after lock" || step == "lock",
                "tear {n} in {step}"
            );
            after_lock += 1;
            continue;
        }
        p.reset(&mut t, &card_key(), &mut |_| {})
            .unwrap_or_else(|e| panic!("tear {n} ({step}): reset failed: {e}"));
        let r = personalize(&mut t, &mut ca)
            .unwrap_or_else(|e| panic!("tear {n} ({step}): re-personalization failed: {e}"));
        assert_eq!(r.lifecycle, Lifecycle::Locked);
    }
    assert!(after_lock <= 2);
}

#[test]
fn verify_issued_accepts_the_locked_card_with_its_certificates_only() {
    let mut ca = TestCa::new();
    let mut t = InProcess::new(chip::Card::new_blank(200).unwrap());
    let prof = profile();
    let p = Personalizer::new(&prof);
    let prepared = p.prepare(&mut t, &card_key(), &mut |_| {}).unwrap();
    let certificates = certs(&mut ca, &prepared);
    let e = verify_issued(&mut t, 200, &certificates).unwrap_err();
    assert!(e.to_string().contains("PERSONALIZING"), "{e}");
    let pin = Pin::new(PinKind::Pin, HOLDER_PIN).unwrap();
    let puk = Pin::new(PinKind::Puk, HOLDER_PUK).unwrap();
    let h = holder();
    let input = CompleteInput {
        certificates: &certificates,
        holder: &h,
        pin: &pin,
        puk: &puk,
    };
    p.complete(&mut t, &prepared, &card_key(), &input, &mut |_| {})
        .unwrap();
    t.reinsert();
    let mut rec = Recording::new(&mut t);
    verify_issued(&mut rec, 200, &certificates).unwrap();
    assert!(!rec.sent_a_write());
    let e = verify_issued(&mut rec, 201, &certificates).unwrap_err();
    assert!(matches!(e.root(), Error::WrongCard { .. }), "{e}");
    let other = certs(&mut ca, &prepared);
    let e = verify_issued(&mut rec, 200, &other).unwrap_err();
    assert!(matches!(e.root(), Error::ReadBackMismatch { .. }), "{e}");
}

/// Runs [`no_secret_reaches_the_logs_child`] alone in a child process of this test binary:
/// tracing's per-callsite interest cache is shared by all threads of a process, so a scoped
/// subscriber in one test can miss events while other tests register callsites concurrently
/// (seen in CI). Alone in its process, every event reaches the capturing subscriber.
#[test]
fn no_secret_reaches_the_logs_even_at_trace_level() {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "executor::chip_tests::no_secret_reaches_the_logs_child",
            "--ignored",
            "--test-threads=1",
        ])
        .env("IDSTATION_LOG_CHILD", "1")
        .output()
        .expect("run the child test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child test failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the child test did not run:\n{text}"
    );
}

/// The body of [`no_secret_reaches_the_logs_even_at_trace_level`]; ignored when run directly.
#[test]
#[ignore = "run in its own process by no_secret_reaches_the_logs_even_at_trace_level"]
fn no_secret_reaches_the_logs_child() {
    if std::env::var_os("IDSTATION_LOG_CHILD").is_none() {
        return;
    }
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let mut ca = TestCa::new();
    tracing::subscriber::with_default(subscriber, || {
        let mut t = InProcess::new(chip::Card::new_blank(300).unwrap());
        personalize(&mut t, &mut ca).unwrap();
        let mut t = InProcess::new(chip::Card::new_blank(301).unwrap());
        t.tear_after = Some(30);
        personalize(&mut t, &mut ca).unwrap_err();
    });
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("C-APDU") && text.contains("step"),
        "logging was captured"
    );
    for secret in [
        HOLDER_PIN,
        HOLDER_PUK,
        "123456",
        "12345678",
        CARD_KEY_HEX,
        "a1 a2 a3",
        "0102030405060708",
    ] {
        assert!(!text.contains(secret), "log contains {secret}");
    }
}

#[test]
fn blank_card_with_another_pin_retry_counter_than_the_profile_is_refused_without_writes() {
    let prof = profile();
    let mut t = Recording::new(InProcess::new(
        chip::Card::new_blank_with(14, 5, 10).unwrap(),
    ));
    let e = Personalizer::new(&prof)
        .prepare(&mut t, &card_key(), &mut |_| {})
        .unwrap_err();
    assert_eq!(e.step(), Some("read PIN retry counter"));
    assert!(
        e.to_string()
            .contains("3 PIN tries, the card reports 5 tries"),
        "{e}"
    );
    assert!(!t.sent_a_write());
}

#[test]
fn the_prepared_card_proves_possession_of_each_key_and_then_completes() {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let prof = profile();
    let p = Personalizer::new(&prof);
    let mut ca = TestCa::new();
    let mut t = InProcess::new(chip::Card::new_blank(0x0012_3457).unwrap());
    let prepared = p.prepare(&mut t, &card_key(), &mut |_| {}).unwrap();
    let digests: Vec<(Slot, [u8; 32])> = prepared
        .public_keys
        .iter()
        .map(|k| (k.slot, Sha256::digest(&k.spki_der).into()))
        .collect();
    let proofs = p.prove_possession(&mut t, &prepared, &digests).unwrap();
    assert_eq!(proofs.len(), 2);
    for ((slot, sig), (dslot, digest)) in proofs.iter().zip(&digests) {
        assert_eq!(slot, dslot);
        let key =
            p256::PublicKey::from_public_key_der(prepared.public_key(*slot).unwrap()).unwrap();
        let sig = p256::ecdsa::Signature::from_der(sig).unwrap();
        let vk = p256::ecdsa::VerifyingKey::from(&key);
        vk.verify_prehash(digest, &sig).unwrap();
        // Not a signature over anything else.
        assert!(vk.verify_prehash(&[0u8; 32], &sig).is_err());
    }
    // The transport PIN is still the card's PIN: the rest of the personalization works.
    let certificates = certs(&mut ca, &prepared);
    let pin = Pin::new(PinKind::Pin, HOLDER_PIN).unwrap();
    let puk = Pin::new(PinKind::Puk, HOLDER_PUK).unwrap();
    let h = holder();
    let input = CompleteInput {
        certificates: &certificates,
        holder: &h,
        pin: &pin,
        puk: &puk,
    };
    let report = p
        .complete(&mut t, &prepared, &card_key(), &input, &mut |_| {})
        .unwrap();
    assert_eq!(report.lifecycle, Lifecycle::Locked);
    // A LOCKED card gives no proof any more (the issuer's flow is over).
    let e = p.prove_possession(&mut t, &prepared, &digests).unwrap_err();
    assert!(matches!(e, Error::WrongLifecycle { .. }), "{e}");
}

#[test]
fn a_blank_card_gives_no_proof_of_possession() {
    let prof = profile();
    let p = Personalizer::new(&prof);
    let mut t = InProcess::new(chip::Card::new_blank(0x0012_3458).unwrap());
    let prepared = Prepared {
        serial: 0x0012_3458,
        version: [0; 3],
        public_keys: Vec::new(),
        chip_keys: None,
        stats: Stats::default(),
    };
    let e = p
        .prove_possession(&mut t, &prepared, &[(Slot::Signature, [1; 32])])
        .unwrap_err();
    assert!(matches!(e, Error::WrongLifecycle { .. }), "{e}");
}
