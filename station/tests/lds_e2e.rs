//! The ICAO 9303 LDS of an issued card, end to end through the real parts: the `idstation`
//! binary, pcscd + vpcd with `vchip` cards, SoftHSM2 (the Document Signer key), the registry.
//!
//! Oracles: OpenSSL `cms -verify` with the station's CSCA certificate as the only trust anchor
//! accepts EF.SOD read from the card through PACE with the CAN `show` gives (after Chip and
//! Active Authentication), and the data-group hashes in the content OpenSSL extracts match the
//! data groups read, DG14/DG15 included. The default document profile (`chip_access = "pace"`)
//! gives a card that refuses BAC; a `pace-and-bac` profile gives one that answers both.
//! `idstation inspect` reports every check passing with the CAN (`--can-fd`) and with the
//! registry's MRZ. The chip fault injection (`vchip insert --corrupt-ef 0101`) makes the station
//! refuse the issuance at passive authentication and leave the document not issued.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use der::Decode;
use personalization::apdu::{Channel, Command as Apdu};
use personalization::pace::{ca, Access};
use personalization::status::StatusWord;
use personalization::transport::pcsc::Pcsc;
use personalization::{lds, mrz, sod};
use sha2::{Digest, Sha256};

const HSM_PIN: &str = "hsm-pin-lds-e2e-5d1";
const ADMIN_PASSWORD: &str = "admin-password-lds-1";
const CLERK_PASSWORD: &str = "clerk-password-lds-2";
// Eight digits: a six-digit PIN also turns up by chance as the microseconds of a log timestamp
// (seen once in CI: "22:41:51.482916Z"), which the secret scans would report.
const PIN: &str = "48291637";
#[path = "common/holder_pin.rs"]
mod holder_pin;

const PUK: &str = "73015528";

struct Station {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    data: PathBuf,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/holders")
        .join(name)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    o
}

impl Station {
    fn new() -> Self {
        testrig::ensure_pcscd().expect("pcscd with vpcd readers");
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let data = dir.join("data");
        let s = Station {
            _tmp: tmp,
            dir,
            data,
        };
        s.ok(
            &["init", "--admin", "admin", "--station", "lds"],
            ADMIN_PASSWORD,
        );
        s.ok(
            &[
                "operator",
                "add",
                "--name",
                "clerk",
                "--role",
                "clerk",
                "--operator",
                "admin",
            ],
            ADMIN_PASSWORD,
        );
        s
    }

    fn cmd(&self, args: &[&str], password: &str) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
        c.arg("--data-dir").arg(&self.data).args(args);
        let o = holder_pin::output(c, args, &self.dir, &[password, CLERK_PASSWORD], PIN);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        for s in [HSM_PIN, ADMIN_PASSWORD, CLERK_PASSWORD, PIN, PUK] {
            assert!(!all.contains(s), "secret {s:?} appeared in output:\n{all}");
        }
        o
    }

    fn ok(&self, args: &[&str], password: &str) -> Output {
        let o = self.cmd(args, password);
        assert!(
            o.status.success(),
            "idstation {args:?} failed:\n{}",
            text(&o)
        );
        o
    }

    /// `idstation --json ARGS` as the clerk.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--operator", "clerk"]);
        let o = self.ok(&full, CLERK_PASSWORD);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(&o)))
    }

    fn issue(&self, holder: &str, reader: &str) -> Output {
        self.cmd(
            &[
                "--json",
                "issue",
                "--holder",
                fixture(holder).to_str().unwrap(),
                "--reader",
                reader,
                "--operator",
                "clerk",
            ],
            CLERK_PASSWORD,
        )
    }

    /// The data dir's document profile with `chip_access = access`.
    fn chip_access(&self, access: &str) {
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/document/id-card.toml"),
        )
        .expect("shipped document profile");
        assert!(shipped.contains("chip_access = \"pace\"\n"), "{shipped}");
        let dir = self.data.join("lds-profiles/document");
        std::fs::create_dir_all(&dir).expect("profile dir");
        std::fs::write(
            dir.join("id-card.toml"),
            shipped.replace(
                "chip_access = \"pace\"\n",
                &format!("chip_access = \"{access}\"\n"),
            ),
        )
        .expect("write profile");
        let cfg_path = self.data.join("station.toml");
        let cfg = std::fs::read_to_string(&cfg_path).expect("station.toml");
        assert!(cfg.contains("[profiles]\n"), "{cfg}");
        std::fs::write(
            &cfg_path,
            cfg.replace("[profiles]\n", "[profiles]\ndir = \"lds-profiles\"\n"),
        )
        .expect("station.toml");
    }

    /// `idstation inspect` of the card in `reader` as the clerk: the CAN (when given) on
    /// `--can-fd 0` after the password, else `--mrz-from-registry`.
    fn inspect(&self, reader: &str, can: Option<&str>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
        c.arg("--data-dir").arg(&self.data).args([
            "--json",
            "inspect",
            "--reader",
            reader,
            "--operator",
            "clerk",
        ]);
        match can {
            Some(_) => c.args(["--can-fd", "0"]),
            None => c.arg("--mrz-from-registry"),
        };
        let mut lines = vec![CLERK_PASSWORD];
        lines.extend(can);
        let o = holder_pin::with_stdin(c, &lines);
        let all = text(&o);
        for s in [CLERK_PASSWORD, PIN] {
            assert!(!all.contains(s), "secret {s:?} appeared in output:\n{all}");
        }
        if let Some(can) = can {
            assert!(
                !all.contains(can),
                "the CAN appeared in inspect's output:\n{all}"
            );
        }
        o
    }

    fn blank_card(&self, serial: u32) -> PathBuf {
        let img = self.dir.join(format!("card-{serial:08X}.img"));
        run(Command::new(testrig::vchip_bin().expect("vchip"))
            .args(["create", "--out"])
            .arg(&img)
            .args(["--serial", &serial.to_string()]));
        img
    }
}

/// BAC read of the card in `reader` with the MRZ lines `mrz`.
fn bac_read(reader: &str, mrz: &[String; 3]) -> personalization::Result<lds::LdsRead> {
    let pcsc = Pcsc::establish()?;
    let mut card = pcsc.connect(reader)?;
    let mut tx = card.begin()?;
    let mut ch = Channel::new(&mut tx);
    lds::read_lds(&mut ch, &mrz::bac_mrz_information(mrz)?)
}

/// Read of the card in `reader` through PACE with `can`, Chip Authentication (DG14) and
/// Active Authentication (DG15) first.
fn pace_read(reader: &str, can: &str) -> personalization::Result<lds::LdsRead> {
    let pcsc = Pcsc::establish()?;
    let mut card = pcsc.connect(reader)?;
    let mut tx = card.begin()?;
    let mut ch = Channel::new(&mut tx);
    ca::read_lds_authenticated(&mut ch, &Access::can(can)?, None)
}

/// `show --document`'s `can`: six digits.
fn can_of(show: &serde_json::Value) -> String {
    let can = show["can"]
        .as_str()
        .unwrap_or_else(|| panic!("no can: {show}"))
        .to_string();
    assert!(
        can.len() == 6 && can.bytes().all(|b| b.is_ascii_digit()),
        "{can}"
    );
    assert_eq!(show["document"]["can"], show["can"]);
    can
}

/// `inspect --json`: every check passed with `access`.
fn assert_inspection_passed(o: &Output, access: &str) {
    assert!(o.status.success(), "{}", text(o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["access_control"], access, "{v}");
    for check in [
        "chip_authentication",
        "active_authentication",
        "passive_authentication",
    ] {
        assert_eq!(v[check]["result"], "passed", "{check}: {v}");
    }
    let dgs = v["data_groups"].as_array().expect("data_groups");
    let numbers: Vec<u64> = dgs.iter().map(|d| d["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![1, 2, 11, 12, 14, 15], "{v}");
    assert!(dgs.iter().all(|d| d["matches_sod"] == true), "{v}");
}

fn mrz_of(v: &serde_json::Value) -> [String; 3] {
    let lines: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("mrz is not a list: {v}"))
        .iter()
        .map(|l| l.as_str().expect("line").to_string())
        .collect();
    lines.try_into().expect("three lines")
}

#[test]
fn issued_card_is_read_through_pace_ca_aa_and_openssl_accepts_its_sod_with_the_csca() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = st.blank_card(0x1D5A_0001);
    let card = slot.insert(&img, &[]);
    let o = st.issue("holder-01.json", &slot.reader_name);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let doc = r["document"].as_str().expect("document").to_string();
    card.pull();

    // `show` prints the MRZ the card was made with (key `mrz`, three lines) and its CAN.
    let show = st.json(&["show", "--document", &doc]);
    let mrz = mrz_of(&show["mrz"]);
    let can = can_of(&show);
    assert_eq!(mrz[2], "TOXTAYEVA<<GULNORA<<<<<<<<<<<<");
    assert_eq!(&mrz[0][5..14], doc.as_str());
    let checker = Command::new("python3")
        .args([
            "-c",
            "import sys; from mrz.checker.td1 import TD1CodeChecker; sys.exit(0 if TD1CodeChecker(sys.argv[1]) else 1)",
            &mrz.join("\n"),
        ])
        .output()
        .expect("python3");
    assert!(checker.status.success(), "PyPI mrz refused {mrz:?}");

    // A fresh session on the LOCKED card: PACE with the CAN, CA, AA, then everything.
    let card = slot.insert(&img, &[]);
    let read = pace_read(&slot.reader_name, &can).expect("PACE read");
    assert_eq!(
        read.dgs.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 11, 12, 14, 15]
    );
    assert_eq!(lds::parse_dg1(&read.dgs[&1]).unwrap(), mrz);
    assert_eq!(
        lds::parse_dg2_jpeg(&read.dgs[&2]).unwrap(),
        std::fs::read(fixture("photo-01.jpg")).unwrap()
    );

    // The default profile keeps no BAC: the chip refuses it; a wrong CAN fails PACE.
    let e = bac_read(&slot.reader_name, &mrz).unwrap_err();
    assert!(e.to_string().contains("6985"), "{e}");
    let wrong = if can == "000000" { "000001" } else { "000000" };
    let e = pace_read(&slot.reader_name, wrong).unwrap_err();
    assert!(e.to_string().contains("mutual authentication"), "{e}");

    // `idstation inspect` as an inspection system: with the CAN, and with the registry's MRZ.
    assert_inspection_passed(&st.inspect(&slot.reader_name, Some(&can)), "PACE-CAN");
    assert_inspection_passed(&st.inspect(&slot.reader_name, None), "PACE-MRZ");
    // A wrong CAN: the chip does not open, inspect says so and exits non-zero.
    let o = st.inspect(&slot.reader_name, Some(wrong));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("PACE"), "{}", text(&o));

    // OpenSSL, with the CSCA as the only trust anchor, accepts EF.SOD from the card.
    let sod_der = st.dir.join("sod.der");
    std::fs::write(&sod_der, sod::content_info_der(&read.sod).unwrap()).unwrap();
    let content = st.dir.join("content.der");
    let o = Command::new("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-in"])
        .arg(&sod_der)
        .arg("-CAfile")
        .arg(st.data.join("ca/csca-1.pem"))
        // No `-purpose any` needed (OpenSSL 3.0): the DS certificate has no EKU and keyUsage
        // digitalSignature, which satisfies the default S/MIME signing purpose.
        .args(["-binary", "-out"])
        .arg(&content)
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl cms -verify refused:\n{}",
        text(&o)
    );
    let lso = sod::LdsSecurityObject::from_der(&std::fs::read(&content).unwrap()).unwrap();
    assert_eq!(lso.data_group_hash_values.len(), read.dgs.len());
    for h in &lso.data_group_hash_values {
        let dg = &read.dgs[&h.data_group_number];
        assert_eq!(
            h.data_group_hash_value.as_bytes(),
            Sha256::digest(dg).as_slice(),
            "DG{}",
            h.data_group_number
        );
    }
    // The e-Signature root is not a trust anchor for chip data.
    let o = Command::new("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-in"])
        .arg(&sod_der)
        .arg("-CAfile")
        .arg(st.data.join("ca/root-ca-1.pem"))
        .args(["-purpose", "any", "-binary", "-out", "/dev/null"])
        .output()
        .expect("openssl");
    assert!(
        !o.status.success(),
        "openssl accepted the SOD with the wrong anchor"
    );

    // Without access control the locked card answers a security status error.
    {
        let pcsc = Pcsc::establish().unwrap();
        let mut c = pcsc.connect(&slot.reader_name).unwrap();
        let mut tx = c.begin().unwrap();
        let mut ch = Channel::new(&mut tx);
        ch.ok(&Apdu::new(
            "SELECT LDS1",
            0xA4,
            0x04,
            0x0C,
            vec![0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01],
        ))
        .expect("select LDS1");
        let r = ch
            .exchange(&Apdu::new("SELECT EF", 0xA4, 0x02, 0x0C, vec![0x01, 0x01]))
            .unwrap();
        let r = if r.sw == StatusWord::Ok {
            ch.exchange_short("READ BINARY", &[0x00, 0xB0, 0x00, 0x00, 0x04])
                .unwrap()
        } else {
            r
        };
        assert_eq!(r.sw.to_u16(), 0x6982, "plain access after lock: {}", r.sw);
    }
    card.pull();
}

#[test]
fn a_pace_and_bac_profile_gives_a_card_that_also_answers_bac() {
    let st = Station::new();
    st.chip_access("pace-and-bac");
    let slot = testrig::Slot::lease();
    let img = st.blank_card(0x1D5A_0003);
    let card = slot.insert(&img, &[]);
    let o = st.issue("holder-01.json", &slot.reader_name);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let doc = r["document"].as_str().expect("document").to_string();
    let show = st.json(&["show", "--document", &doc]);
    let (mrz, can) = (mrz_of(&show["mrz"]), can_of(&show));
    let by_bac = bac_read(&slot.reader_name, &mrz).expect("BAC read");
    let by_pace = pace_read(&slot.reader_name, &can).expect("PACE read");
    assert_eq!(by_bac, by_pace);
    let mut wrong = mrz.clone();
    wrong[1] = format!("{}{}", "000101", &wrong[1][6..]);
    let e = bac_read(&slot.reader_name, &wrong).unwrap_err();
    assert!(e.to_string().contains("MUTUAL AUTHENTICATE"), "{e}");
    assert_inspection_passed(&st.inspect(&slot.reader_name, Some(&can)), "PACE-CAN");
    card.pull();
}

#[test]
fn altered_data_group_fails_passive_authentication_and_the_card_is_not_issued() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = st.blank_card(0x1D5A_0002);
    let card = slot.insert(&img, &["--corrupt-ef", "0101"]);
    let o = st.issue("holder-02.json", &slot.reader_name);
    assert!(
        !o.status.success(),
        "issued despite a corrupt DG1:\n{}",
        text(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("passive authentication") && err.contains("DG1"),
        "{}",
        text(&o)
    );
    card.pull();
    let holder = st.json(&["show", "--pinfl", "32307921400450"]);
    let docs = holder["holder"]["documents"].as_array().expect("documents");
    assert!(
        docs.iter().all(|d| d["status"] != "active"),
        "a document is active: {holder}"
    );
    let jobs = holder["holder"]["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "{holder}");
    assert_ne!(jobs[0]["state"], "completed", "{holder}");
    assert!(
        jobs[0]["certificates"]
            .as_array()
            .expect("certs")
            .iter()
            .all(|c| c["status"] == "revoked"),
        "{holder}"
    );
    // The same card, without the fault, is then issued (it is reset first: recoverable).
    let card = slot.insert(&img, &[]);
    let o = st.issue("holder-02.json", &slot.reader_name);
    assert!(o.status.success(), "{}", text(&o));
    card.pull();
}
