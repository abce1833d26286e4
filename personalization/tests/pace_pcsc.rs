//! PACE, Chip Authentication and Active Authentication through the real PC/SC stack: pcscd +
//! vsmartcard vpcd + `vchip` (via `testrig`), the host side of `personalization` as the
//! inspection system. The same reads timed against BAC: the bench `pace_bac`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use personalization::apdu::Channel;
use personalization::lds::{self, LdsFiles};
use personalization::pace::{ca, Access, IcaoReader};
use personalization::transport::pcsc::Pcsc;

/// The chip's persistent PACE failure counter, from the image vchip saves after every change.
fn pace_failures(img: &std::path::Path) -> u64 {
    let card = chip::Card::load(img).unwrap();
    let body = card.public_description().unwrap();
    body["applications"]["lds"]["public"]["pace_failures"]
        .as_u64()
        .or_else(|| body["applications"]["lds"]["pace_failures"].as_u64())
        .expect("pace_failures in the image")
}

#[test]
fn pace_ca_aa_through_pcscd_and_the_comparison_with_bac() {
    testrig::ensure_pcscd().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = blank_image(dir.path(), 0x00E2_0017, false);
    let slot = testrig::Slot::lease();
    let pcsc = Pcsc::establish().unwrap();

    // Personalization: keys on the chip, DG14/DG15, PACE passwords and the BAC seed, lock.
    let (keys, f) = icao_card(&pcsc, &slot, &img);

    // The issued card, as an inspection system meets it.
    let card = slot.insert(&img, &[]);
    pcsc.wait_for_card(&slot.reader_name, Duration::from_secs(10))
        .unwrap();
    let mut c = pcsc.connect(&slot.reader_name).unwrap();
    let mut tx = c.begin().unwrap();
    let mut ch = Channel::new(&mut tx);

    // PACE-CAN + CA + AA + DG1 + DG2 (what the bench `pace_bac` times).
    {
        let mut r = IcaoReader::open(&mut ch, &Access::can(CAN).unwrap()).unwrap();
        let d14 = ca::parse_dg14(&r.read_ef(0x010E).unwrap()).unwrap();
        assert_eq!(d14.ca_public, keys.ca);
        r.chip_authenticate(&d14).unwrap();
        let aa = ca::parse_dg15(&r.read_ef(0x010F).unwrap()).unwrap();
        r.active_authenticate(&aa).unwrap();
        assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
        assert_eq!(r.read_ef(0x0102).unwrap(), f.dgs[&2]);
    }

    // BAC + DG1 + DG2 on the same card, same session.
    {
        let mut r = IcaoReader::open(&mut ch, &Access::bac(MRZ_INFO)).unwrap();
        assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
        assert_eq!(r.read_ef(0x0102).unwrap(), f.dgs[&2]);
    }

    // PACE with the MRZ.
    let mut r = IcaoReader::open(&mut ch, &Access::pace_mrz(MRZ_INFO)).unwrap();
    assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
    drop(r);

    // A wrong CAN fails mutual authentication; the card stays usable.
    let err = IcaoReader::open(&mut ch, &Access::can("730513").unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("(6300"), "{err}");
    let mut r = IcaoReader::open(&mut ch, &Access::can(CAN).unwrap()).unwrap();
    assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
    drop(r);

    // Repeated wrong CANs are slowed down: the third consecutive failure makes the next run
    // wait 250 ms before the nonce, the fourth 500 ms; a success clears the counter.
    for _ in 0..3 {
        assert!(IcaoReader::open(&mut ch, &Access::can("000000").unwrap()).is_err());
    }
    let t0 = Instant::now();
    assert!(IcaoReader::open(&mut ch, &Access::can("000001").unwrap()).is_err());
    let slowed = t0.elapsed();
    assert!(slowed >= Duration::from_millis(250), "{slowed:?}");
    assert_eq!(pace_failures(&img), 4);
    tx.end().unwrap();
    drop(c);

    // The counter is in the image: pulling the card does not reset it.
    card.pull();
    let _card = slot.insert(&img, &[]);
    pcsc.wait_for_card(&slot.reader_name, Duration::from_secs(10))
        .unwrap();
    let mut c = pcsc.connect(&slot.reader_name).unwrap();
    let mut tx = c.begin().unwrap();
    let mut ch = Channel::new(&mut tx);
    let t0 = Instant::now();
    let mut r = IcaoReader::open(&mut ch, &Access::can(CAN).unwrap()).unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(r.read_ef(0x0101).unwrap(), f.dgs[&1]);
    drop(r);
    // The success cleared the counter the vchip saved in the image (a lower bound on time
    // is robust under load, an upper one is not: read the counter instead).
    assert_eq!(pace_failures(&img), 0);
    tx.end().unwrap();
}

// ------------------------------------------------------------- DG15 swapped: AA and PA ---

/// CSCA and Document Signer made by the openssl CLI (as in sod_openssl.rs).
struct Pki {
    _dir: tempfile::TempDir,
    csca_der: Vec<u8>,
    ds_der: Vec<u8>,
    ds_key: p256::ecdsa::SigningKey,
}

fn pki() -> Pki {
    use der::DecodePem;
    use p256::pkcs8::DecodePrivateKey;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ossl = |args: &[&str]| {
        run(std::process::Command::new("openssl")
            .args(args)
            .current_dir(d));
    };
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "csca.key",
        "-out",
        "csca.pem",
        "-days",
        "3650",
        "-subj",
        "/C=UZ/O=idstation tests/CN=CSCA PACE",
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-addext",
        "subjectKeyIdentifier=hash",
    ]);
    ossl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ds.key",
        "-out",
        "ds.csr",
        "-subj",
        "/C=UZ/O=idstation tests/CN=Document Signer",
    ]);
    std::fs::write(
        d.join("ds.ext"),
        "keyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "ds.csr",
        "-CA",
        "csca.pem",
        "-CAkey",
        "csca.key",
        "-CAcreateserial",
        "-days",
        "365",
        "-extfile",
        "ds.ext",
        "-outform",
        "DER",
        "-out",
        "ds.der",
    ]);
    let csca =
        x509_cert::Certificate::from_pem(std::fs::read(d.join("csca.pem")).unwrap()).unwrap();
    Pki {
        csca_der: der::Encode::to_der(&csca).unwrap(),
        ds_der: std::fs::read(d.join("ds.der")).unwrap(),
        ds_key: p256::ecdsa::SigningKey::from_pkcs8_pem(
            &std::fs::read_to_string(d.join("ds.key")).unwrap(),
        )
        .unwrap(),
        _dir: dir,
    }
}

/// Personalizes the card in `slot` from `img`: keys on the chip, DG14/DG15, EF.SOD signed over
/// the genuine data groups; `dg15_on_chip` replaces the DG15 written (the swap), not the one
/// signed. Returns the signed files and the chip's public keys.
fn issue(
    pcsc: &Pcsc,
    slot: &testrig::Slot,
    img: &std::path::Path,
    pki: &Pki,
    dg15_on_chip: Option<&[u8]>,
) -> (LdsFiles, ca::ChipKeys) {
    use p256::ecdsa::signature::Signer;
    let (keys, f) = icao_card_with(pcsc, slot, img, |f| {
        let key = pki.ds_key.clone();
        f.sod = personalization::sod::build_sod(&f.dg_hashes(), &pki.ds_der, |m| {
            let s: p256::ecdsa::DerSignature = key.sign(m);
            Ok(s.to_bytes().to_vec())
        })
        .unwrap();
        let mut written = LdsFiles {
            dgs: f.dgs.clone(),
            sod: f.sod.clone(),
        };
        if let Some(dg15) = dg15_on_chip {
            written.dgs.insert(15, dg15.to_vec());
        }
        written
    });
    (f, keys)
}

#[test]
fn a_card_with_another_cards_dg15_fails_active_and_passive_authentication() {
    testrig::ensure_pcscd().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let slot = testrig::Slot::lease();
    let pcsc = Pcsc::establish().unwrap();
    let img_b = blank_image(dir.path(), 0x00E2_001B, false);
    let (files_b, _) = issue(&pcsc, &slot, &img_b, &pki, None);
    let img_a = blank_image(dir.path(), 0x00E2_001A, false);
    let (files_a, _) = issue(&pcsc, &slot, &img_a, &pki, Some(&files_b.dgs[&15]));

    let card_a = slot.insert(&img_a, &[]);
    pcsc.wait_for_card(&slot.reader_name, Duration::from_secs(10))
        .unwrap();
    let mut c = pcsc.connect(&slot.reader_name).unwrap();
    let mut tx = c.begin().unwrap();
    let mut ch = Channel::new(&mut tx);
    let read = lds::read_lds_with(&mut ch, &Access::can(CAN).unwrap()).unwrap();
    assert_eq!(read.dgs[&15], files_b.dgs[&15], "the chip carries B's DG15");
    // Passive authentication: EF.SOD (A's, genuine) does not vouch for this DG15.
    let err = personalization::sod::passive_authentication(
        &read.sod,
        &read.dgs,
        &pki.csca_der,
        std::time::SystemTime::now(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("15"), "PA must name DG15: {err}");
    // Without the swapped DG, A's data groups pass passive authentication.
    let mut genuine = read.dgs.clone();
    genuine.insert(15, files_a.dgs[&15].clone());
    personalization::sod::passive_authentication(
        &read.sod,
        &genuine,
        &pki.csca_der,
        std::time::SystemTime::now(),
    )
    .unwrap();
    // Active Authentication with the DG15 on the chip (B's key) fails: A's chip holds A's key.
    let mut r = IcaoReader::open(&mut ch, &Access::can(CAN).unwrap()).unwrap();
    let aa_b = ca::parse_dg15(&r.read_ef(0x010F).unwrap()).unwrap();
    let err = r.active_authenticate(&aa_b).unwrap_err().to_string();
    assert!(err.contains("does not verify with DG15's key"), "{err}");
    // With A's genuine DG15 (the one EF.SOD vouches for) it verifies; CA works too.
    r.active_authenticate(&ca::parse_dg15(&files_a.dgs[&15]).unwrap())
        .unwrap();
    let d14 = ca::parse_dg14(&r.read_ef(0x010E).unwrap()).unwrap();
    r.chip_authenticate(&d14).unwrap();

    // The inspection report (what `idstation inspect` prints): every check, each data group.
    use personalization::pace::inspect::{inspect, Check};
    let report = inspect(
        &mut ch,
        &Access::can(CAN).unwrap(),
        &[pki.csca_der.as_slice()],
        std::time::SystemTime::now(),
    )
    .unwrap();
    assert_eq!(report.access_control, "PACE-CAN");
    assert_eq!(report.pace_domain, Some("brainpoolP256r1"));
    assert_eq!(report.chip_authentication, Check::Passed);
    assert!(matches!(report.active_authentication, Check::Failed(_)));
    assert!(matches!(report.passive_authentication, Check::Failed(_)));
    let bad: Vec<u8> = report
        .data_groups
        .iter()
        .filter(|d| !d.matches_sod)
        .map(|d| d.number)
        .collect();
    assert_eq!(bad, vec![15]);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["chip_authentication"]["result"], "passed");
    assert_eq!(json["active_authentication"]["result"], "failed");
    tx.end().unwrap();
    drop(c);
    card_a.pull();

    // Card B (nothing swapped) passes every check, here through PACE with the MRZ.
    let _card_b = slot.insert(&img_b, &[]);
    pcsc.wait_for_card(&slot.reader_name, Duration::from_secs(10))
        .unwrap();
    let mut c = pcsc.connect(&slot.reader_name).unwrap();
    let mut tx = c.begin().unwrap();
    let mut ch = Channel::new(&mut tx);
    let report = inspect(
        &mut ch,
        &Access::pace_mrz(MRZ_INFO),
        &[pki.csca_der.as_slice()],
        std::time::SystemTime::now(),
    )
    .unwrap();
    assert_eq!(report.access_control, "PACE-MRZ");
    assert_eq!(report.chip_authentication, Check::Passed);
    assert_eq!(report.active_authentication, Check::Passed);
    assert_eq!(report.passive_authentication, Check::Passed);
    assert_eq!(report.data_groups.len(), 4);
    assert!(report.data_groups.iter().all(|d| d.matches_sod));
    assert!(report.all_passed());
}
