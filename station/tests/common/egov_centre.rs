//! A national centre with the e-government publisher delivering to a receiver of the test
//! (testrig::egov), and a station enrolled to it *in this process* (its SoftHSM2 token in the
//! process's token dir, so the test, the `idstation` binary and the GUI's worker all open it),
//! with a ca-admin `admin` and an auditor `auditor`. Shared by station/tests/centre_outbox.rs
//! and gui/tests/centre_outbox.rs (`#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use testrig::centre::Centre;
use testrig::egov::Receiver;
use zeroize::Zeroizing;

pub const EGOV_ADMIN_PASSWORD: &str = "egov-admin-pw-4d1f";
pub const EGOV_AUDITOR_PASSWORD: &str = "egov-auditor-pw-8c2a";
pub const EGOV_HSM_PIN: &str = "egov-station-hsm-pin-77e1";

/// The centre, its receiver and the enrolled station's directories.
pub struct EgovRig {
    pub centre: Centre,
    pub recv: Receiver,
    pub station: String,
    pub dir: PathBuf,
    pub data: PathBuf,
    _tmp: tempfile::TempDir,
}

impl EgovRig {
    /// A centre whose publisher gives up after `max_attempts` failures, a receiver refusing
    /// (HTTP 500) until told otherwise, and station `station` of office TAS01 enrolled.
    pub fn start(station: &str, max_attempts: u32) -> EgovRig {
        let tmp = tempfile::Builder::new()
            .prefix("egov-rig-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut recv = Receiver::new(&dir);
        recv.set(testrig::egov::Mode::Refuse);
        let mut centre = Centre::start();
        centre.enable_egov(&recv.url(), recv.ca_file(), max_attempts);
        centre.serve();
        let data = dir.join("data");
        enrol(&centre, &dir, &data, station);
        let ca = station::centre::files::CentreFiles::new(&data)
            .read_station_ca()
            .expect("the Station CA of the enrolment");
        recv.start(&ca);
        EgovRig {
            centre,
            recv,
            station: station.to_owned(),
            dir,
            data,
            _tmp: tmp,
        }
    }

    /// A session of `name` (with `password`) for `action`.
    pub fn session(
        &self,
        st: &mut station::Station,
        name: &str,
        password: &str,
    ) -> station::session::Session {
        st.authorize(
            name,
            &Zeroizing::new(password.into()),
            "test",
            &[registry::Role::CaAdmin, registry::Role::Auditor],
        )
        .expect("log in")
    }

    /// A clerk `clerk` with `password`, added by the ca-admin.
    pub fn add_clerk(&self, password: &str) {
        let mut st = station::Station::open(&self.data).expect("open the station");
        let admin = self.session(&mut st, "admin", EGOV_ADMIN_PASSWORD);
        station::operators::add(
            &mut st,
            &admin,
            "clerk",
            registry::Role::Clerk,
            &Zeroizing::new(password.into()),
        )
        .expect("add the clerk");
    }

    /// Holder `pinfl`'s record at the centre (`idcentral --json show --pinfl`, as its admin).
    pub fn show(&self, pinfl: &str) -> serde_json::Value {
        let out = self
            .centre
            .ok(&["--json", "show", "--pinfl", pinfl, "--operator", "admin"]);
        serde_json::from_str(&out).expect("show's JSON")
    }

    /// Document `number`'s state in holder `pinfl`'s record at the centre.
    pub fn document_state(&self, pinfl: &str, number: &str) -> String {
        document_state_in(&self.show(pinfl), number)
    }

    /// One issuance through the centre's protocol (no card): the document number. The centre
    /// queues its `document.issued` message.
    pub fn issue(&self, pinfl: &str) -> String {
        let st = station::Station::open_read_only(&self.data).expect("open the station");
        let client = station::centre::CentreClient::for_station(&st).expect("centre client");
        let post = |path: &str, body: &serde_json::Value| -> serde_json::Value {
            client
                .post(path, body)
                .unwrap_or_else(|e| panic!("POST {path}: {e}"))
        };
        testrig::egov::issue_without_card(&post, "admin", pinfl)
    }
}

impl EgovRig {
    /// Wait (through the station's core, as its ca-admin) until `document`'s message is the
    /// centre's dead letter, and return it.
    pub fn dead_letter(&self, document: &str) -> station::centre::outbox::OutboxMessage {
        let mut st = station::Station::open_read_only(&self.data).expect("open the station");
        let admin = self.session(&mut st, "admin", EGOV_ADMIN_PASSWORD);
        poll("the dead letter", Duration::from_secs(60), || {
            station::centre::outbox::list(&mut st, &admin, true, None)
                .expect("the centre's dead letters")
                .messages
                .into_iter()
                .find(|m| m.document.as_deref() == Some(document))
        })
    }
}

/// `init --centre` in this process, then an auditor.
fn enrol(centre: &Centre, dir: &Path, data: &Path, station: &str) {
    let pin_file = dir.join("hsm-pin");
    std::fs::write(&pin_file, EGOV_HSM_PIN).expect("pin file");
    std::fs::set_permissions(
        &pin_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod 600");
    let code = centre.add_station("TAS01", station);
    let opts = station::init_centre::CentreInitOptions {
        url: centre.url(),
        other_urls: Vec::new(),
        fingerprint: centre.fingerprint().to_owned(),
        enrolment_code: Zeroizing::new(code),
        station_name: station.to_owned(),
        admin_name: "admin".into(),
        admin_password: Zeroizing::new(EGOV_ADMIN_PASSWORD.into()),
        second_admin: None,
        hsm_pin: Some(hsm::SecretSource::File(pin_file)),
        hsm_so_pin: None,
        module: PathBuf::from(hsm::pkcs11::SOFTHSM2_MODULE),
        softhsm_dir: Some(
            hsm::pkcs11::SoftHsm2Token::process_dir().expect("run through cargo's runner"),
        ),
    };
    station::init_centre::init_centre(data, &opts).expect("enrol the station");
    let mut st = station::Station::open(data).expect("open the station");
    let admin = st
        .authorize(
            "admin",
            &Zeroizing::new(EGOV_ADMIN_PASSWORD.into()),
            "add operators",
            &[registry::Role::CaAdmin],
        )
        .expect("admin");
    station::operators::add(
        &mut st,
        &admin,
        "auditor",
        registry::Role::Auditor,
        &Zeroizing::new(EGOV_AUDITOR_PASSWORD.into()),
    )
    .expect("add the auditor");
}

/// Document `number`'s state in a holder's record `v` (from [`EgovRig::show`]).
pub fn document_state_in(v: &serde_json::Value, number: &str) -> String {
    v["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .find(|d| d["document"] == number)
        .unwrap_or_else(|| panic!("{number} not at the centre: {v}"))["state"]
        .as_str()
        .expect("state")
        .to_owned()
}

/// Poll `f` every 100 ms until it gives a value; panic naming `what` after `limit`.
pub fn poll<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
