//! The executor with an ICAO LDS opened by PACE, against the virtual chip in process: the
//! chip's Chip/Active Authentication keys generated in the prepare phase and carried by DG14/
//! DG15 under EF.SOD, the passwords written, the read-back through PACE-CAN + CA + AA (+ BAC
//! where the profile keeps it) and passive authentication before the lock; then the issuer's
//! card services on that card, which match the document through PACE with the MRZ first.

use std::collections::BTreeMap;
use std::time::SystemTime;

use p256::ecdsa::signature::Signer;

use super::*;
use crate::apdu::Channel;
use crate::lds::LdsFiles;
use crate::pace::{ca, Access, IcaoReader};
use crate::piv::services::{generate_keys, install_certificates, read_mrz};
use crate::testutil::TestCa;
use crate::transport::in_process::InProcess;
use profiles::card::MgmtAlgorithm;

const MRZ_INFO: &str = "L898902C<369080619406236";
const CAN: &str = "730512";
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

fn mrz_lines() -> [String; 3] {
    [
        "I<UTOL898902C<3<<<<<<<<<<<<<<<".into(),
        "6908061F9406236UTO<<<<<<<<<<<1".into(),
        "ERIKSSON<<ANNA<MARIA<<<<<<<<<<".into(),
    ]
}

/// A Document Signer certified by a test CSCA: (CSCA certificate, DS certificate, DS key).
fn pki() -> (Vec<u8>, Vec<u8>, p256::ecdsa::SigningKey) {
    use p256::pkcs8::EncodePublicKey;
    let mut csca = TestCa::new();
    let ds_key = loop {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).unwrap();
        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&b) {
            break k;
        }
    };
    let spki = ds_key.verifying_key().to_public_key_der().unwrap();
    let ds = csca.issue(spki.as_bytes(), "Document Signer");
    (csca.self_certificate(), ds, ds_key)
}

struct Issued {
    card: InProcess,
    serial: u32,
    report: Report,
    files: LdsFiles,
    chip_keys: ca::ChipKeys,
}

/// Personalizes a blank card with a PACE LDS (DG1, DG14, DG15 under EF.SOD) and locks it.
fn issue(access: ChipAccess, serial: u32) -> Issued {
    let prof = profile();
    let p = Personalizer::new(&prof).with_chip_access(access);
    let mut ca_ = TestCa::new();
    let mut t = InProcess::new(chip::Card::new_blank(serial).unwrap());
    let prepared = p.prepare(&mut t, &card_key(), &mut |_| {}).unwrap();
    let chip_keys = prepared.chip_keys.clone().expect("chip keys generated");
    let certificates: Vec<(Slot, Vec<u8>)> = prepared
        .public_keys
        .iter()
        .map(|k| (k.slot, ca_.issue(&k.spki_der, "holder")))
        .collect();
    let (csca, ds, ds_key) = pki();
    let mut dgs = BTreeMap::new();
    dgs.insert(1, crate::lds::dg1(&mrz_lines()).unwrap());
    dgs.insert(14, ca::dg14(&chip_keys.ca));
    dgs.insert(15, ca::dg15(&chip_keys.aa));
    let mut files = LdsFiles {
        dgs,
        sod: Vec::new(),
    };
    files.sod = crate::sod::build_sod(&files.dg_hashes(), &ds, |m| {
        let s: p256::ecdsa::DerSignature = ds_key.sign(m);
        Ok(s.to_bytes().to_vec())
    })
    .unwrap();
    let plan = LdsPlan {
        files: &files,
        mrz_information: zeroize::Zeroizing::new(MRZ_INFO.into()),
        csca_der: &csca,
        now: SystemTime::now(),
        can: Some(zeroize::Zeroizing::new(CAN.into())),
    };
    let holder = HolderCardData {
        name: "ERIKSSON ANNA".into(),
        document_number: "L898902C3".into(),
        expiry: time::macros::date!(2036 - 11 - 24),
    };
    let pin = Pin::new(PinKind::Pin, PIN).unwrap();
    let puk = Pin::new(PinKind::Puk, PUK).unwrap();
    let input = CompleteInput {
        certificates: &certificates,
        holder: &holder,
        pin: &pin,
        puk: &puk,
    };
    let mut steps = Vec::new();
    let report = p
        .complete_with_lds(
            &mut t,
            &prepared,
            &card_key(),
            &input,
            Some(&plan),
            &mut |pr| steps.push(pr.step),
        )
        .unwrap();
    assert_eq!(steps, p.complete_steps_with_lds(true));
    t.reinsert();
    Issued {
        card: t,
        serial,
        report,
        files: files.clone(),
        chip_keys,
    }
}

#[test]
fn a_pace_card_is_read_back_through_pace_ca_aa_and_pa_before_the_lock_and_refuses_bac() {
    let mut c = issue(ChipAccess::Pace, 0x0017_0001);
    assert_eq!(c.report.lifecycle, Lifecycle::Locked);
    assert_eq!(c.report.lds_checks, vec!["PACE-CAN", "CA", "AA", "PA"]);
    assert_eq!(c.report.lds_verified, vec![1, 14, 15]);
    // Independently of the executor: DG14 carries the key the chip generated, CA and AA pass.
    let mut ch = Channel::new(&mut c.card);
    let read =
        ca::read_lds_authenticated(&mut ch, &Access::can(CAN).unwrap(), Some(&c.chip_keys.ca))
            .unwrap();
    assert_eq!(read.dgs, c.files.dgs);
    // PACE with the MRZ opens it too; BAC does not (no key seed on a PACE-only card).
    let mut r = IcaoReader::open(&mut ch, &Access::pace_mrz(MRZ_INFO)).unwrap();
    assert_eq!(r.read_ef(0x0101).unwrap(), c.files.dgs[&1]);
    drop(r);
    let e = IcaoReader::open(&mut ch, &Access::bac(MRZ_INFO))
        .err()
        .expect("BAC refused")
        .to_string();
    assert!(e.contains("6985"), "{e}");
}

#[test]
fn a_pace_and_bac_card_also_answers_bac_and_the_executor_checked_it() {
    let mut c = issue(ChipAccess::PaceAndBac, 0x0017_0002);
    assert_eq!(
        c.report.lds_checks,
        vec!["PACE-CAN", "CA", "AA", "BAC", "PA"]
    );
    let mut ch = Channel::new(&mut c.card);
    let mut r = IcaoReader::open(&mut ch, &Access::bac(MRZ_INFO)).unwrap();
    assert_eq!(r.read_ef(0x0101).unwrap(), c.files.dgs[&1]);
}

#[test]
fn an_lds_plan_without_the_chips_keys_or_a_can_is_refused_before_any_apdu() {
    let prof = profile();
    let p = Personalizer::new(&prof).with_chip_access(ChipAccess::Pace);
    let mut t = InProcess::new(chip::Card::new_blank(0x0017_0003).unwrap());
    let prepared = p.prepare(&mut t, &card_key(), &mut |_| {}).unwrap();
    let mut ca_ = TestCa::new();
    let certificates: Vec<(Slot, Vec<u8>)> = prepared
        .public_keys
        .iter()
        .map(|k| (k.slot, ca_.issue(&k.spki_der, "holder")))
        .collect();
    let mut dgs = BTreeMap::new();
    dgs.insert(1, crate::lds::dg1(&mrz_lines()).unwrap());
    // Another chip's keys in DG14/DG15.
    let other = ca::ChipKeys {
        ca: prepared.chip_keys.as_ref().unwrap().aa.clone(),
        aa: prepared.chip_keys.as_ref().unwrap().ca.clone(),
    };
    dgs.insert(14, ca::dg14(&other.ca));
    dgs.insert(15, ca::dg15(&other.aa));
    let files = LdsFiles {
        dgs,
        sod: vec![0x77, 0x00],
    };
    let holder = HolderCardData {
        name: "ERIKSSON ANNA".into(),
        document_number: "L898902C3".into(),
        expiry: time::macros::date!(2036 - 11 - 24),
    };
    let pin = Pin::new(PinKind::Pin, PIN).unwrap();
    let puk = Pin::new(PinKind::Puk, PUK).unwrap();
    let input = CompleteInput {
        certificates: &certificates,
        holder: &holder,
        pin: &pin,
        puk: &puk,
    };
    for (can, want) in [
        (
            Some(CAN),
            "DG14 must carry the chip's Chip Authentication key",
        ),
        (None, "a PACE card needs a CAN"),
    ] {
        let plan = LdsPlan {
            files: &files,
            mrz_information: zeroize::Zeroizing::new(MRZ_INFO.into()),
            csca_der: &[],
            now: SystemTime::now(),
            can: can.map(|c| zeroize::Zeroizing::new(c.to_string())),
        };
        let mut rec = crate::transport::Recording::new(&mut t);
        let e = p
            .complete_with_lds(
                &mut rec,
                &prepared,
                &card_key(),
                &input,
                Some(&plan),
                &mut |_| {},
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
        assert!(rec.headers.is_empty(), "no APDU before the plan is checked");
    }
}

#[test]
fn the_card_services_match_a_pace_card_through_pace_mrz_and_then_renew_its_keys() {
    let mut c = issue(ChipAccess::Pace, 0x0017_0004);
    let t = &mut c.card;
    let (mrz, _, access) = read_mrz(t, MRZ_INFO).unwrap();
    assert_eq!(access, "PACE-MRZ");
    assert_eq!(mrz, mrz_lines());
    // In the same card session, as the station's renewal does: keys, certificates, Key History.
    let keys = generate_keys(t, c.serial, &card_key(), &SLOTS).unwrap();
    let mut ca_ = TestCa::new();
    let certs: Vec<(Slot, Vec<u8>)> = keys
        .public_keys
        .iter()
        .map(|k| (k.slot, ca_.issue(&k.spki_der, "holder renewed")))
        .collect();
    let pin = Pin::new(PinKind::Pin, PIN).unwrap();
    let report = install_certificates(t, c.serial, &card_key(), &certs, &pin).unwrap();
    assert_eq!(report.signatures_verified, SLOTS.to_vec());
    // The ICAO application still opens with the CAN after the renewal.
    let mut ch = Channel::new(t);
    ca::read_lds_authenticated(&mut ch, &Access::can(CAN).unwrap(), None).unwrap();
}

#[test]
fn a_card_for_another_mrz_fails_pace_mrz_in_the_services() {
    let mut c = issue(ChipAccess::Pace, 0x0017_0005);
    let e = read_mrz(&mut c.card, "L898902C<369080619406237").unwrap_err();
    assert!(matches!(e.root(), Error::Bac { .. }), "{e}");
}
