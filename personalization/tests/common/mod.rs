//! Shared helpers for the end-to-end tests and the benchmark: blank card images made with
//! `vchip create`, a test CA made with the `openssl` CLI (independent of our code), and one
//! full personalization through pcscd.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use personalization::executor::{CompleteInput, HolderCardData, Personalizer, Prepared, Report};
use personalization::secret::{ManagementKey, Pin, PinKind};
use personalization::transport::Transport;
use personalization::Error;
use profiles::card::{CardProfile, MgmtAlgorithm, Slot};

pub const HOLDER_PIN: &str = "918273";
pub const HOLDER_PUK: &str = "56473829";
pub const CARD_KEY_HEX: &str = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0";

pub fn profile() -> CardProfile {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../profiles/card/card-esign.toml"
    );
    profiles::card::load_card_profile(Path::new(p)).expect("shipped card profile loads")
}

pub fn card_key() -> ManagementKey {
    ManagementKey::from_hex(MgmtAlgorithm::Aes128, CARD_KEY_HEX).unwrap()
}

pub fn holder() -> HolderCardData {
    HolderCardData {
        name: "ALIYEV SHERZOD".into(),
        document_number: "AD1234567".into(),
        expiry: time::macros::date!(2036 - 11 - 24),
    }
}

pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A blank card image with `serial` (`vchip create`), or one without PIV.
pub fn blank_image(dir: &Path, serial: u32, no_piv: bool) -> PathBuf {
    let img = dir.join(format!("card-{serial}.img"));
    let mut c = Command::new(testrig::vchip_bin().expect("vchip binary"));
    c.arg("create")
        .arg("--out")
        .arg(&img)
        .arg("--serial")
        .arg(serial.to_string());
    if no_piv {
        c.arg("--no-piv");
    }
    run(&mut c);
    img
}

/// A test CA made with the openssl CLI: P-256 key + self-signed certificate.
pub struct OpensslCa {
    dir: PathBuf,
    n: u32,
}

impl OpensslCa {
    pub fn new(dir: &Path) -> Self {
        let dir = dir.join("ca");
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("openssl")
            .args([
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-noout",
                "-out",
            ])
            .arg(dir.join("ca.key")));
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-new",
                "-subj",
                "/CN=Personalization Test CA",
                "-days",
                "30",
                "-key",
            ])
            .arg(dir.join("ca.key"))
            .arg("-out")
            .arg(dir.join("ca.pem")));
        Self { dir, n: 0 }
    }

    /// A DER certificate for the SPKI (DER), issued by the CA.
    pub fn issue(&mut self, spki_der: &[u8], cn: &str) -> Vec<u8> {
        self.n += 1;
        let spki = self.dir.join(format!("k{}.der", self.n));
        let pubpem = self.dir.join(format!("k{}.pem", self.n));
        let cert = self.dir.join(format!("c{}.der", self.n));
        std::fs::write(&spki, spki_der).unwrap();
        run(Command::new("openssl")
            .args(["pkey", "-pubin", "-inform", "DER", "-in"])
            .arg(&spki)
            .arg("-out")
            .arg(&pubpem));
        run(Command::new("openssl")
            .args(["x509", "-new", "-subj", &format!("/CN={cn}"), "-days", "30"])
            .arg("-force_pubkey")
            .arg(&pubpem)
            .arg("-CA")
            .arg(self.dir.join("ca.pem"))
            .arg("-CAkey")
            .arg(self.dir.join("ca.key"))
            .args(["-outform", "DER", "-out"])
            .arg(&cert));
        std::fs::read(&cert).unwrap()
    }

    pub fn certs(&mut self, prepared: &Prepared) -> Vec<(Slot, Vec<u8>)> {
        prepared
            .public_keys
            .iter()
            .map(|k| {
                (
                    k.slot,
                    self.issue(&k.spki_der, &format!("Holder {}", k.slot)),
                )
            })
            .collect()
    }
}

/// What one personalization produced: phase-1 result, the certificates, the report.
pub type Personalized = (Prepared, Vec<(Slot, Vec<u8>)>, Report);

/// prepare + CA + complete on one transport.
pub fn personalize(t: &mut dyn Transport, ca: &mut OpensslCa) -> Result<Personalized, Error> {
    let prof = profile();
    let p = Personalizer::new(&prof);
    let prepared = p.prepare(t, &card_key(), &mut |_| {})?;
    let certificates = ca.certs(&prepared);
    let pin = Pin::new(PinKind::Pin, HOLDER_PIN)?;
    let puk = Pin::new(PinKind::Puk, HOLDER_PUK)?;
    let h = holder();
    let input = CompleteInput {
        certificates: &certificates,
        holder: &h,
        pin: &pin,
        puk: &puk,
    };
    let report = p.complete(t, &prepared, &card_key(), &input, &mut |_| {})?;
    Ok((prepared, certificates, report))
}

// ------------------------------------------------------------ an ICAO card with PACE ---

/// The CAN and the MRZ information of [`icao_card`] (the latter: ICAO Doc 9303 Part 11
/// Appendix D.2, the specimen "L898902C<" document).
pub const CAN: &str = "730512";
pub const MRZ_INFO: &str = "L898902C<369080619406236";

/// DG1 and a DG2 of the size of a real facial image (about 15 kB), with a placeholder SOD.
pub fn icao_files() -> personalization::lds::LdsFiles {
    use personalization::tlv;
    let mut dgs = std::collections::BTreeMap::new();
    dgs.insert(1, tlv::encode(0x61, &tlv::encode(0x5F1F, &[b'I'; 90])));
    let face: Vec<u8> = (0..15_000u32).map(|i| (i * 31 % 251) as u8).collect();
    dgs.insert(2, tlv::encode(0x75, &face));
    personalization::lds::LdsFiles {
        dgs,
        sod: tlv::encode(0x77, &[0x30; 200]),
    }
}

/// Personalize the blank card `img` in `slot` as an issued ICAO card: CA and AA keys made on
/// the chip (DG14/DG15), the LDS, the BAC seed and the PACE passwords ([`MRZ_INFO`], [`CAN`]),
/// then LOCK; the card is pulled afterwards. Returns the chip's keys and the files written.
pub fn icao_card(
    pcsc: &personalization::transport::pcsc::Pcsc,
    slot: &testrig::Slot,
    img: &Path,
) -> (
    personalization::pace::ca::ChipKeys,
    personalization::lds::LdsFiles,
) {
    icao_card_with(pcsc, slot, img, |f| personalization::lds::LdsFiles {
        dgs: f.dgs.clone(),
        sod: f.sod.clone(),
    })
}

/// [`icao_card`], where `finish` gets the files with DG14 and DG15 (it may sign an EF.SOD
/// into them) and returns the files to write on the chip (it may swap one).
pub fn icao_card_with(
    pcsc: &personalization::transport::pcsc::Pcsc,
    slot: &testrig::Slot,
    img: &Path,
    finish: impl FnOnce(&mut personalization::lds::LdsFiles) -> personalization::lds::LdsFiles,
) -> (
    personalization::pace::ca::ChipKeys,
    personalization::lds::LdsFiles,
) {
    use personalization::apdu::Command as Apdu;
    use personalization::pace::ca;
    use personalization::piv::{objects::tags, Piv};
    let card = slot.insert(img, &[]);
    pcsc.wait_for_card(&slot.reader_name, std::time::Duration::from_secs(10))
        .unwrap();
    let mut f = icao_files();
    let mut c = pcsc.connect(&slot.reader_name).unwrap();
    let mut tx = c.begin().unwrap();
    let keys = {
        let mut piv = Piv::new(&mut tx);
        piv.select().unwrap();
        piv.authenticate(&ManagementKey::transport_default())
            .unwrap();
        piv.put_data(tags::CHUID, &[0x53, 0x01, 0x01]).unwrap();
        let ch = piv.channel();
        ch.ok(&Apdu::new(
            "SELECT LDS1",
            0xA4,
            0x04,
            0x0C,
            personalization::bac::LDS1_AID.to_vec(),
        ))
        .unwrap();
        let keys = ca::generate_chip_keys(ch).unwrap();
        f.dgs.insert(14, ca::dg14(&keys.ca));
        f.dgs.insert(15, ca::dg15(&keys.aa));
        let written = finish(&mut f);
        personalization::lds::write_lds(ch, &written, &personalization::bac::kseed(MRZ_INFO))
            .unwrap();
        personalization::lds::write_pace_passwords(ch, MRZ_INFO, CAN).unwrap();
        ch.ok(&Apdu::new("LOCK", 0x44, 0, 0, vec![])).unwrap();
        keys
    };
    tx.end().unwrap();
    drop(c);
    card.pull();
    (keys, f)
}
