//! An enrolled station for tests through the national centre: its own data dir and SoftHSM2
//! token, enrolled to a `testrig::centre::Centre`, with a clerk; it runs the `idstation` binary
//! and checks that no secret reaches the output.
#![allow(dead_code)] // each test binary uses its own part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testrig::centre::Centre;

pub const ADMIN_PASSWORD: &str = "station-admin-pw-6b0e";
pub const CLERK_PASSWORD: &str = "station-clerk-pw-93aa";
pub const HSM_PIN: &str = "station-hsm-pin-c1e4";
pub const PIN: &str = "48291637";
#[path = "holder_pin.rs"]
pub mod holder_pin;

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/holders")
        .join(name)
}

/// A station enrolled to `centre`, with a clerk.
pub struct Station {
    pub _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub data: PathBuf,
    pub office: String,
}

impl Station {
    pub fn enrol(centre: &Centre, office: &str, name: &str) -> Station {
        Station::enrol_at(centre, office, name, &centre.url(), &[])
    }

    /// Enrolled to `centre` at `url`, knowing the other instances `also` (`--centre-also`).
    pub fn enrol_at(
        centre: &Centre,
        office: &str,
        name: &str,
        url: &str,
        also: &[&str],
    ) -> Station {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let data = dir.join("data");
        let pin_file = dir.join("hsm-pin");
        std::fs::write(&pin_file, format!("{HSM_PIN}\n")).unwrap();
        std::fs::set_permissions(
            &pin_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let st = Station {
            _tmp: tmp,
            dir,
            data,
            office: office.into(),
        };
        let code = centre.add_station(office, name);
        let mut args = vec![
            "init",
            "--centre",
            url,
            "--centre-fingerprint",
            centre.fingerprint(),
            "--enrolment-code",
            "-",
            "--station",
            name,
            "--admin",
            "admin",
            "--hsm-pin-file",
            pin_file.to_str().unwrap(),
        ];
        for other in also {
            args.extend(["--centre-also", other]);
        }
        let o = st.run(&args, &[ADMIN_PASSWORD, &code], &[]);
        assert!(o.status.success(), "enrol {name}:\n{}", text(&o));
        let o = st.run(
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
            &[ADMIN_PASSWORD, CLERK_PASSWORD],
            &[],
        );
        assert!(o.status.success(), "clerk:\n{}", text(&o));
        st
    }

    pub fn run(&self, args: &[&str], secrets: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
        c.arg("--data-dir").arg(&self.data).args(args);
        c.env("IDSTATION_LOG", "debug");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = holder_pin::output(c, args, &self.dir, secrets, PIN);
        let all = text(&o);
        for s in [ADMIN_PASSWORD, CLERK_PASSWORD, HSM_PIN, PIN] {
            assert!(!all.contains(s), "secret {s:?} in the output:\n{all}");
        }
        o
    }

    /// `idstation --json issue` of fixture `holder` by the clerk.
    pub fn issue(&self, holder: &str, reader: &str, env: &[(&str, &str)]) -> Output {
        self.issue_file(&fixture(holder), reader, env)
    }

    /// `idstation --json issue` of the holder file `holder` by the clerk.
    pub fn issue_file(&self, holder: &Path, reader: &str, env: &[(&str, &str)]) -> Output {
        self.run(
            &[
                "--json",
                "issue",
                "--holder",
                holder.to_str().unwrap(),
                "--reader",
                reader,
                "--operator",
                "clerk",
            ],
            &[CLERK_PASSWORD],
            env,
        )
    }

    pub fn blank_card(&self, serial: u32) -> PathBuf {
        let img = self.dir.join(format!("card-{serial:08X}.img"));
        let o = Command::new(testrig::vchip_bin().expect("vchip"))
            .args(["create", "--out"])
            .arg(&img)
            .args(["--serial", &serial.to_string()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        img
    }

    /// Read the card in `reader` through PACE with the MRZ `show` gives for `document` and
    /// write its EF.SOD (DER ContentInfo) to `DIR/sod-<document>.der`: that path.
    pub fn read_sod(&self, reader: &str, document: &str) -> PathBuf {
        use personalization::transport::pcsc::Pcsc;
        use personalization::{apdu::Channel, lds, mrz, sod};
        let args = [
            "--json",
            "show",
            "--document",
            document,
            "--operator",
            "clerk",
        ];
        let o = self.run(&args, &[CLERK_PASSWORD], &[]);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let lines: Vec<String> = v["mrz"]
            .as_array()
            .unwrap_or_else(|| panic!("no mrz: {v}"))
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect();
        let mrz_lines: [String; 3] = lines.try_into().unwrap();
        let pcsc = Pcsc::establish().unwrap();
        let mut card = pcsc.connect(reader).unwrap();
        let mut tx = card.begin().unwrap();
        let mut ch = Channel::new(&mut tx);
        let info = mrz::bac_mrz_information(&mrz_lines).unwrap();
        let access = personalization::pace::Access::pace_mrz(&info);
        let read = lds::read_lds_with(&mut ch, &access).unwrap();
        let out = self.dir.join(format!("sod-{document}.der"));
        std::fs::write(&out, sod::content_info_der(&read.sod).unwrap()).unwrap();
        out
    }

    /// The actions of the station's audit log, in order.
    pub fn audit_actions(&self) -> Vec<String> {
        let events = self.registry().audit_events(1, u64::MAX).unwrap();
        events.into_iter().map(|e| e.action).collect()
    }

    pub fn registry(&self) -> registry::Registry {
        registry::Registry::open_read_only(self.data.join("registry.sqlite")).expect("registry")
    }

    /// The PEM file of the CA certificate of CA `ca` (`ca show`).
    pub fn ca_file(&self, ca: &str) -> PathBuf {
        let o = self.run(&["--json", "ca", "show"], &[], &[]);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let list = v.as_array().cloned().unwrap_or_default();
        let entry = list
            .iter()
            .find(|c| c["ca"] == ca && c["state"] == "active")
            .unwrap_or_else(|| panic!("no active {ca} in {v}"));
        PathBuf::from(entry["file"].as_str().unwrap())
    }

    /// The holder certificates (DER) the station recorded for `document`'s job.
    pub fn certificates_of(&self, document: &str) -> Vec<Vec<u8>> {
        let reg = self.registry();
        let mut stmt = reg
            .connection()
            .prepare(
                "SELECT c.der FROM certificates c JOIN issuance_jobs j ON c.job_id = j.id
                 WHERE j.series || printf('%07d', j.number) = ?1",
            )
            .unwrap();
        let rows = stmt
            .query_map([document], |r| r.get::<_, Vec<u8>>(0))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }
}

/// `openssl cms -verify` of EF.SOD with only `csca` trusted: the signer certificate it found
/// (PEM path), or openssl's complaint.
pub fn cms_verify(sod: &Path, csca: &Path) -> Result<PathBuf, String> {
    cms_verify_at(sod, csca, &[])
}

/// [`cms_verify`] with more arguments to openssl (`-attime T`: as of that time).
pub fn cms_verify_at(sod: &Path, csca: &Path, more: &[&str]) -> Result<PathBuf, String> {
    let signer = sod.with_extension("signer.pem");
    let o = Command::new("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-in"])
        .arg(sod)
        .args(more)
        .arg("-CAfile")
        .arg(csca)
        .args(["-binary", "-out", "/dev/null", "-signer"])
        .arg(&signer)
        .output()
        .unwrap();
    if o.status.success() {
        Ok(signer)
    } else {
        Err(text(&o))
    }
}
