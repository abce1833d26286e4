//! End-to-end through the real PC/SC stack: pcscd + vsmartcard vpcd + `vchip` (via `testrig`),
//! with OpenSC's PKCS#11 module and openssl as independent oracles.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use personalization::executor::{inspect, Personalizer, ResetOutcome};
use personalization::lifecycle::Lifecycle;
use personalization::transport::pcsc::Pcsc;
use personalization::transport::Recording;
use personalization::Error;

const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

/// pkcs11-tool with OpenSC configured to give every one of the six test readers a slot (by
/// default OpenSC gives four readers slots, so a test leasing a fifth or sixth reader found no
/// slot for it).
fn pkcs11_tool() -> Command {
    let mut c = Command::new("pkcs11-tool");
    c.env(
        "OPENSC_CONF",
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../chip/tests/opensc.conf"),
    );
    c
}

/// The PKCS#11 slot id OpenSC gives the reader (`pkcs11-tool -L` lists "Slot N (0x..): <reader>").
fn p11_slot(reader: &str) -> String {
    let out = run(pkcs11_tool().args(["--module", OPENSC, "-L"]));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        if line.starts_with("Slot ") && line.contains(reader) {
            if let Some(id) = line.split(['(', ')']).nth(1) {
                return id.to_string();
            }
        }
    }
    panic!("no PKCS#11 slot for {reader:?} in:\n{text}");
}

#[test]
fn full_plan_over_pcscd_makes_a_card_opensc_signs_with_and_openssl_verifies() {
    testrig::ensure_pcscd().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut ca = OpensslCa::new(dir.path());
    let img = blank_image(dir.path(), 0x00E2_E001, false);
    let slot = testrig::Slot::lease();
    let card = slot.insert(&img, &[]);

    let pcsc = Pcsc::establish().unwrap();
    let readers = pcsc.readers().unwrap();
    assert!(readers
        .iter()
        .any(|r| r.name == slot.reader_name && r.card_present));
    pcsc.wait_for_card(&slot.reader_name, Duration::from_secs(10))
        .unwrap();
    let (prepared, certs, report) = {
        let mut c = pcsc.connect(&slot.reader_name).unwrap();
        let mut tx = c.begin().unwrap();
        let r = personalize(&mut tx, &mut ca).unwrap();
        tx.end().unwrap();
        r
    };
    assert_eq!(prepared.serial, 0x00E2_E001);
    assert_eq!(report.lifecycle, Lifecycle::Locked);

    // OpenSC signs with 9C (PKCS#11 id 02, context-specific login) ...
    let data = dir.path().join("data.txt");
    std::fs::write(&data, b"idstation e2e: signed through OpenSC").unwrap();
    let digest = dir.path().join("digest.bin");
    run(Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-out"])
        .arg(&digest)
        .arg(&data));
    let sig = dir.path().join("sig.der");
    let p11 = p11_slot(&slot.reader_name);
    run(pkcs11_tool()
        .args([
            "--module", OPENSC, "--slot", &p11, "--login", "--pin", HOLDER_PIN,
        ])
        .args([
            "--sign",
            "--mechanism",
            "ECDSA",
            "--id",
            "02",
            "--signature-format",
            "openssl",
        ])
        .arg("--input-file")
        .arg(&digest)
        .arg("--output-file")
        .arg(&sig));
    // ... and openssl verifies it with the 9C certificate's public key.
    let cert = dir.path().join("9c.der");
    std::fs::write(&cert, &certs[1].1).unwrap();
    let pubkey = dir.path().join("9c-pub.pem");
    let out = run(Command::new("openssl")
        .args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"])
        .arg(&cert));
    std::fs::write(&pubkey, &out.stdout).unwrap();
    let out = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&pubkey)
        .arg("-signature")
        .arg(&sig)
        .arg(&data));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));
    card.pull();
}

#[test]
fn wrong_transport_key_locked_card_and_card_without_piv_give_clear_errors_and_no_write() {
    testrig::ensure_pcscd().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let slot = testrig::Slot::lease();
    let pcsc = Pcsc::establish().unwrap();
    let prof = profile();

    // 1. Wrong transport key.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../profiles/card/card-esign.toml"
    ))
    .unwrap()
    .replace(
        "010203040506070801020304050607080102030405060708",
        "0807060504030201080706050403020108070605040302ff",
    );
    let wrong =
        profiles::card::parse_card_profile(std::path::Path::new("wrong-transport.toml"), &text)
            .unwrap();
    let img = blank_image(dir.path(), 0x00E2_E101, false);
    let card = slot.insert(&img, &[]);
    {
        let mut c = pcsc.connect(&slot.reader_name).unwrap();
        let mut tx = c.begin().unwrap();
        let mut rec = Recording::new(&mut tx);
        let e = Personalizer::new(&wrong)
            .prepare(&mut rec, &card_key(), &mut |_| {})
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the card refused the 3des management key (wrong key) during 'authenticate transport key'"
        );
        assert!(!rec.sent_a_write());
        assert_eq!(inspect(&mut tx).unwrap().lifecycle, Lifecycle::Blank);
    }
    card.pull();

    // 2. Already LOCKED card.
    let mut ca = OpensslCa::new(dir.path());
    let img = blank_image(dir.path(), 0x00E2_E102, false);
    let card = slot.insert(&img, &[]);
    {
        let mut c = pcsc.connect(&slot.reader_name).unwrap();
        let mut tx = c.begin().unwrap();
        personalize(&mut tx, &mut ca).unwrap();
        let mut rec = Recording::new(&mut tx);
        let e = Personalizer::new(&prof)
            .prepare(&mut rec, &card_key(), &mut |_| {})
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "card is LOCKED, personalization needs BLANK during 'read lifecycle'"
        );
        assert!(!rec.sent_a_write());
    }
    card.pull();

    // 3. A card without the PIV application.
    let img = blank_image(dir.path(), 0x00E2_E103, true);
    let card = slot.insert(&img, &[]);
    {
        let mut c = pcsc.connect(&slot.reader_name).unwrap();
        let mut tx = c.begin().unwrap();
        let mut rec = Recording::new(&mut tx);
        let e = Personalizer::new(&prof)
            .prepare(&mut rec, &card_key(), &mut |_| {})
            .unwrap_err();
        assert!(matches!(e.root(), Error::NoPivApplication), "{e}");
        assert!(!rec.sent_a_write());
        assert_eq!(rec.headers.len(), 1);
    }
    card.pull();
}

#[test]
fn card_pulled_at_every_apdu_index_gives_card_removed_naming_the_step_then_reset_and_reissue_work()
{
    testrig::ensure_pcscd().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut ca = OpensslCa::new(dir.path());
    let slot = testrig::Slot::lease();
    let pcsc = Pcsc::establish().unwrap();
    let prof = profile();
    let p = Personalizer::new(&prof);

    // APDUs of one whole personalization (prepare + complete) on this rig.
    let img = blank_image(dir.path(), 0x00E2_F000, false);
    let card = slot.insert(&img, &[]);
    let total = {
        let mut c = pcsc.connect(&slot.reader_name).unwrap();
        let mut tx = c.begin().unwrap();
        let (prepared, _, report) = personalize(&mut tx, &mut ca).unwrap();
        prepared.stats.apdus + report.stats.apdus
    };
    card.pull();

    let mut steps_seen = std::collections::BTreeSet::new();
    let mut locked_by_tear = 0;
    for n in 0..total {
        let img = blank_image(dir.path(), 0x00E3_0000 + n as u32, false);
        let n_arg = n.to_string();
        let card = slot.insert(&img, &["--tear-after", &n_arg]);
        let err = {
            let mut c = pcsc.connect(&slot.reader_name).unwrap();
            let mut tx = c.begin().unwrap();
            personalize(&mut tx, &mut ca).expect_err("a torn card cannot finish")
        };
        assert!(
            matches!(err.root(), Error::CardRemoved),
            "tear after {n}: {err:?}"
        );
        let step = err.step().expect("the error names the step").to_string();
        assert_eq!(err.to_string(), format!("card removed during '{step}'"));
        eprintln!("tear after {n}: {err}");
        steps_seen.insert(step.clone());
        // vchip ends by itself at the tear; pcscd must then see the slot empty.
        card.wait_removed(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("tear after {n}: {e}"));

        // Re-insert the same card: reset if needed, then a new personalization succeeds.
        let card = slot.insert(&img, &[]);
        let mut c = pcsc.connect(&slot.reader_name).unwrap();
        let mut tx = c.begin().unwrap();
        let info = inspect(&mut tx).unwrap();
        if info.lifecycle == Lifecycle::Locked {
            assert!(
                step == "lock" || step == "read lifecycle after lock",
                "tear {n} in {step}"
            );
            locked_by_tear += 1;
        } else {
            let outcome = p.reset(&mut tx, &card_key(), &mut |_| {}).unwrap();
            if n == 0 {
                assert_eq!(outcome, ResetOutcome::AlreadyBlank);
            }
            let (_, _, report) = personalize(&mut tx, &mut ca)
                .unwrap_or_else(|e| panic!("tear after {n} ({step}): re-personalization: {e}"));
            assert_eq!(report.lifecycle, Lifecycle::Locked);
        }
        drop(tx);
        drop(c);
        card.pull();
    }
    assert!(locked_by_tear <= 1);
    assert!(steps_seen.contains("write certificate 9C"));
    assert!(steps_seen.contains("generate key 9A"));
}

#[test]
fn readers_waits_and_connect_errors_are_typed() {
    testrig::ensure_pcscd().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let slot = testrig::Slot::lease();
    let pcsc = Pcsc::establish().unwrap();
    let reader = slot.reader_name.clone();

    // Empty slot: listed without a card, connect says NoCard, waiting for a card times out.
    let info = pcsc.readers().unwrap();
    assert!(info.iter().any(|r| r.name == reader && !r.card_present));
    assert!(matches!(pcsc.connect(&reader), Err(Error::NoCard { .. })));
    assert!(matches!(
        pcsc.wait_for_card(&reader, Duration::from_millis(300)),
        Err(Error::Timeout { .. })
    ));
    let e = pcsc.connect("No Such Reader 99").err().unwrap();
    assert!(
        matches!(e, Error::UnknownReader { .. }) && e.to_string().contains(&reader),
        "{e}"
    );

    // Insertion and removal are seen through SCardGetStatusChange.
    let img = blank_image(dir.path(), 0x00E2_E201, false);
    let card = slot.insert(&img, &[]);
    pcsc.wait_for_card(&reader, Duration::from_secs(5)).unwrap();
    let present = pcsc.readers().unwrap();
    let r = present.iter().find(|r| r.name == reader).unwrap();
    assert!(r.card_present && !r.atr.is_empty());
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            card.pull();
        });
        pcsc.wait_for_removal(&reader, Duration::from_secs(10))
            .unwrap();
    });
    assert!(matches!(pcsc.connect(&reader), Err(Error::NoCard { .. })));
}
