//! The issuer's card services (`piv::services`) against the virtual chip in process: a card personalized and locked by the executor,
//! then renewed and unblocked; refusals; a card pulled at every APDU of a renewal.
use crate::error::Error;
use crate::executor::{CompleteInput, HolderCardData, Personalizer};
use crate::lifecycle::Lifecycle;
use crate::piv::services::*;
use crate::piv::{PinStatus, Piv};
use crate::secret::{ManagementKey, Pin, PinKind};
use crate::testutil::TestCa;
use crate::transport::in_process::InProcess;
use profiles::card::Slot;
use profiles::card::{CardProfile, MgmtAlgorithm};

const PIN: &str = "918273";
const PUK: &str = "56473829";
const SLOTS: [Slot; 2] = [Slot::Authentication, Slot::Signature];

fn profile() -> CardProfile {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../profiles/card/card-esign.toml"
    );
    profiles::card::load_card_profile(std::path::Path::new(p)).unwrap()
}

fn card_key() -> ManagementKey {
    ManagementKey::from_hex(MgmtAlgorithm::Aes128, "a1a2a3a4a5a6a7a8a9aaabacadaeafb0").unwrap()
}

fn pin(v: &str) -> Pin {
    Pin::new(PinKind::Pin, v).unwrap()
}

/// A card issued by the executor (LOCKED), re-inserted.
fn issued(ca: &mut TestCa, serial: u32) -> InProcess {
    let prof = profile();
    let p = Personalizer::new(&prof);
    let mut t = InProcess::new(chip::Card::new_blank(serial).unwrap());
    let prepared = p.prepare(&mut t, &card_key(), &mut |_| {}).unwrap();
    let certificates: Vec<(Slot, Vec<u8>)> = prepared
        .public_keys
        .iter()
        .map(|k| (k.slot, ca.issue(&k.spki_der, "holder")))
        .collect();
    let holder = HolderCardData {
        name: "ALIYEV SHERZOD".into(),
        document_number: "AD1234567".into(),
        expiry: time::macros::date!(2036 - 11 - 24),
    };
    let input = CompleteInput {
        certificates: &certificates,
        holder: &holder,
        pin: &pin(PIN),
        puk: &Pin::new(PinKind::Puk, PUK).unwrap(),
    };
    p.complete(&mut t, &prepared, &card_key(), &input, &mut |_| {})
        .unwrap();
    t.reinsert();
    t
}

fn renew(t: &mut InProcess, ca: &mut TestCa, serial: u32) -> Result<Vec<(Slot, Vec<u8>)>, Error> {
    let keys = generate_keys(t, serial, &card_key(), &SLOTS)?;
    let certs: Vec<(Slot, Vec<u8>)> = keys
        .public_keys
        .iter()
        .map(|k| (k.slot, ca.issue(&k.spki_der, "holder renewed")))
        .collect();
    let report = install_certificates(t, serial, &card_key(), &certs, &pin(PIN))?;
    assert_eq!(report.signatures_verified, SLOTS.to_vec());
    assert_eq!(report.read_back, SLOTS.to_vec());
    Ok(certs)
}

#[test]
fn renewal_on_a_locked_card_installs_new_keys_and_certificates() {
    let mut ca = TestCa::new();
    let mut t = issued(&mut ca, 501);
    let before = read_issued(&mut t, &SLOTS).unwrap();
    assert_eq!(before.lifecycle, Lifecycle::Locked);
    assert_eq!(before.certificates.len(), 2);
    let certs = renew(&mut t, &mut ca, 501).unwrap();
    t.reinsert();
    let after = read_issued(&mut t, &SLOTS).unwrap();
    assert_eq!(after.lifecycle, Lifecycle::Locked);
    assert_eq!(after.certificates, certs);
    assert_ne!(
        after.certificate(Slot::Signature),
        before.certificate(Slot::Signature)
    );
}

#[test]
fn services_refuse_another_card_and_a_wrong_key_before_writing() {
    let mut ca = TestCa::new();
    let mut t = issued(&mut ca, 502);
    let e = generate_keys(&mut t, 503, &card_key(), &SLOTS).unwrap_err();
    assert!(matches!(e.root(), Error::WrongCard { .. }), "{e}");
    let wrong = ManagementKey::from_hex(MgmtAlgorithm::Aes128, "00".repeat(16).as_str()).unwrap();
    let e = generate_keys(&mut t, 502, &wrong, &SLOTS).unwrap_err();
    assert!(
        matches!(e.root(), Error::ManagementKeyRejected { .. }),
        "{e}"
    );
    assert_eq!(e.step(), Some("authenticate with the card key"));
    let e = generate_keys(&mut t, 502, &card_key(), &[Slot::KeyManagement]).unwrap_err();
    assert!(e.to_string().contains("9A and 9C only"), "{e}");
    let e = unblock(&mut t, 502, &wrong, &pin("111222"), None).unwrap_err();
    assert!(
        matches!(e.root(), Error::ManagementKeyRejected { .. }),
        "{e}"
    );
    t.reinsert();
    assert_eq!(
        read_issued(&mut t, &SLOTS).unwrap().pin,
        PinStatus::TriesLeft(3)
    );
}

#[test]
fn a_certificate_for_another_key_is_not_written() {
    let mut ca = TestCa::new();
    let mut t = issued(&mut ca, 504);
    let before = read_issued(&mut t, &SLOTS).unwrap();
    // The old certificates certify the old keys; generate new ones, then offer the old.
    generate_keys(&mut t, 504, &card_key(), &SLOTS).unwrap();
    let e = install_certificates(&mut t, 504, &card_key(), &before.certificates, &pin(PIN))
        .unwrap_err();
    assert_eq!(e.step(), Some("check key 9A"), "{e}");
    t.reinsert();
    assert_eq!(
        read_issued(&mut t, &SLOTS).unwrap().certificates,
        before.certificates
    );
}

#[test]
fn unblock_sets_a_new_pin_and_puk_on_a_blocked_card() {
    let mut ca = TestCa::new();
    let mut t = issued(&mut ca, 505);
    {
        let mut piv = Piv::new(&mut t);
        piv.select().unwrap();
        for _ in 0..3 {
            assert!(piv.verify(&pin("000000")).is_err());
        }
    }
    assert_eq!(read_issued(&mut t, &SLOTS).unwrap().pin, PinStatus::Blocked);
    let new_puk = Pin::new(PinKind::Puk, "11223344").unwrap();
    let r = unblock(&mut t, 505, &card_key(), &pin("246810"), Some(&new_puk)).unwrap();
    assert!(r.new_puk);
    t.reinsert();
    let mut piv = Piv::new(&mut t);
    piv.select().unwrap();
    assert_eq!(
        piv.pin_status(PinKind::Pin).unwrap(),
        PinStatus::TriesLeft(3)
    );
    piv.verify(&pin("246810")).unwrap();
    let e = piv.verify(&Pin::new(PinKind::Puk, PUK).unwrap());
    assert!(
        e.is_err(),
        "VERIFY of the PUK is not offered; the PUK is checked by use"
    );
    // The new PUK changes itself (CHANGE REFERENCE DATA needs the current one).
    piv.change_reference(&new_puk, &Pin::new(PinKind::Puk, "55667788").unwrap())
        .unwrap();
}

#[test]
fn a_renewal_pulled_at_any_apdu_is_finished_by_running_it_again() {
    let mut ca = TestCa::new();
    let mut t = issued(&mut ca, 506);
    let mut n = 0;
    loop {
        t.reinsert();
        t.tear_after = Some(n);
        let result = renew(&mut t, &mut ca, 506);
        let sent = t.sent;
        t.reinsert();
        match result {
            Ok(_) => break,
            Err(e) => {
                assert!(e.is_card_gone(), "tear {n}: {e}");
                assert!(e.step().is_some(), "tear {n}: no step in {e}");
                assert!(sent <= n);
            }
        }
        // The card is still LOCKED and a full renewal succeeds.
        let certs = renew(&mut t, &mut ca, 506).unwrap_or_else(|e| panic!("tear {n}: {e}"));
        t.reinsert();
        assert_eq!(read_issued(&mut t, &SLOTS).unwrap().certificates, certs);
        n += 1;
    }
    assert!(n > 20, "only {n} APDUs in a renewal?");
}
