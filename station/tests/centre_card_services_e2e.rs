//! Issue 16 through the national centre (issue 15), end to end: stations enrolled to one
//! `idcentral serve` (PostgreSQL, its own SoftHSM2 token, mutual TLS on 127.0.0.1, the public
//! relying-party listener: testrig::centre) renew, suspend, resume, replace and change
//! addresses through the `idstation` binary with a `vchip` card in a vpcd reader. Oracles:
//! openssl (`verify` of the renewed certificates up to the centre's root, `crl` of the CRL the
//! centre publishes, `ocsp` against the centre's responder) and `idcentral show`.
//!
//! Needs `idcentral` built in the same target dir as the tests build it (`cargo test -p central --no-run`);
//! run under `flock /tmp/idstation-pcsc.lock` (it uses the card readers).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testrig::centre::Centre;

const ADMIN_PASSWORD: &str = "station-admin-pw-6b0e";
const CLERK_PASSWORD: &str = "station-clerk-pw-93aa";
const HSM_PIN: &str = "station-hsm-pin-c1e4";
const PIN: &str = "48291637";
#[path = "common/holder_pin.rs"]
mod holder_pin;

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/holders")
        .join(name)
}

/// A station enrolled to `centre`, with a clerk.
struct Station {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    data: PathBuf,
}

impl Station {
    fn enrol(centre: &Centre, office: &str, name: &str) -> Station {
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
        };
        let code = centre.add_station(office, name);
        let url = centre.url();
        let args = [
            "init",
            "--centre",
            &url,
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
        let o = st.run(&args, &[ADMIN_PASSWORD, &code]);
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
        );
        assert!(o.status.success(), "clerk:\n{}", text(&o));
        st
    }

    fn run(&self, args: &[&str], secrets: &[&str]) -> Output {
        self.run_env(args, secrets, &[])
    }

    /// [`Station::run`] with `env` set (a failpoint).
    fn run_env(&self, args: &[&str], secrets: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
        c.arg("--data-dir").arg(&self.data).args(args);
        c.env("IDSTATION_LOG", "debug");
        c.envs(env.iter().copied());
        let o = holder_pin::output(c, args, &self.dir, secrets, PIN);
        let all = text(&o);
        for s in [ADMIN_PASSWORD, CLERK_PASSWORD, HSM_PIN, PIN] {
            assert!(!all.contains(s), "secret {s:?} in the output:\n{all}");
        }
        o
    }

    /// `--json` `args` as the clerk (and `more` secrets after the password), which must succeed.
    fn json(&self, args: &[&str], more: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        all.extend(["--operator", "clerk"]);
        let mut secrets = vec![CLERK_PASSWORD];
        secrets.extend_from_slice(more);
        let o = self.run(&all, &secrets);
        assert!(o.status.success(), "{args:?}:\n{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn blank_card(&self, serial: u32) -> PathBuf {
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

    /// The PEM file of the active CA certificate of CA `ca` (`ca show`).
    fn ca_file(&self, ca: &str) -> PathBuf {
        let o = self.run(&["--json", "ca", "show"], &[]);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let list = v.as_array().cloned().unwrap_or_default();
        let entry = list
            .iter()
            .find(|c| c["ca"] == ca && c["state"] == "active")
            .unwrap_or_else(|| panic!("no active {ca} in {v}"));
        PathBuf::from(entry["file"].as_str().unwrap())
    }

    /// The holder certificates (serial upper-case hex, DER, status) of `document`'s job.
    fn certificates_of(&self, document: &str) -> Vec<(String, Vec<u8>, String)> {
        let reg = registry::Registry::open_read_only(self.data.join("registry.sqlite"))
            .expect("registry");
        let mut stmt = reg
            .connection()
            .prepare(
                "SELECT c.serial, c.der, c.status FROM certificates c JOIN issuance_jobs j ON c.job_id = j.id
                 WHERE j.series || printf('%07d', j.number) = ?1 ORDER BY c.id",
            )
            .unwrap();
        let rows = stmt
            .query_map([document], |r| {
                Ok((
                    r.get::<_, String>(0)?.to_ascii_uppercase(),
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }
}

/// A centre with TAS01 and SAM01 enrolled, and a card TAS01 issued through it to the holder of
/// fixture `holder` on a blank card of chip serial `serial`, in `slot`.
struct TwoOffices {
    centre: Centre,
    tas: Station,
    sam: Station,
    reader: String,
    holder_file: PathBuf,
    pinfl: String,
    doc: String,
}

fn two_offices<'s>(
    slot: &'s testrig::Slot,
    holder: &str,
    serial: u32,
) -> (TwoOffices, testrig::InsertedCard<'s>) {
    let mut centre = Centre::start();
    centre.serve();
    let tas = Station::enrol(&centre, "TAS01", "tas01-st1");
    let sam = Station::enrol(&centre, "SAM01", "sam01-st1");
    let reader = slot.reader_name.clone();
    let holder_file = fixture(holder);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&holder_file).unwrap()).unwrap();
    let pinfl = record["pinfl"].as_str().unwrap().to_owned();
    let card = slot.insert(&tas.blank_card(serial), &[]);
    let issued = tas.json(
        &[
            "issue",
            "--holder",
            holder_file.to_str().unwrap(),
            "--reader",
            &reader,
        ],
        &[],
    );
    let doc = issued["document"].as_str().unwrap().to_owned();
    let offices = TwoOffices {
        centre,
        tas,
        sam,
        reader,
        holder_file,
        pinfl,
        doc,
    };
    (offices, card)
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap()
}

/// A plain HTTP GET on the centre's public listener: the body.
fn public_get(addr: SocketAddr, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&all[..at]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    all[at..].to_vec()
}

/// The centre's CRL (openssl-verified against root + e-Signature CA) once `until` holds.
fn crl_until(public: SocketAddr, dir: &Path, until: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        std::fs::write(
            dir.join("esign.crl"),
            public_get(public, "/crl/esign-ca-1.crl"),
        )
        .unwrap();
        let (ok, t) = openssl(
            dir,
            &[
                "crl",
                "-in",
                "esign.crl",
                "-inform",
                "DER",
                "-CAfile",
                "chain.pem",
                "-noout",
                "-text",
            ],
        );
        assert!(ok && t.contains("verify OK"), "{t}");
        if until(&t) {
            return t;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "CRL:\n{t}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `openssl ocsp` at the centre's responder for `cert` (PEM in `dir`) until it says `want`.
fn ocsp_until(public: SocketAddr, dir: &Path, cert: &str, want: &str) -> String {
    let url = format!("http://{public}/ocsp");
    let start = Instant::now();
    loop {
        let (_, out) = openssl(
            dir,
            &[
                "ocsp",
                "-issuer",
                "esign.pem",
                "-CAfile",
                "chain.pem",
                "-url",
                &url,
                "-no_nonce",
                "-cert",
                cert,
            ],
        );
        if out.contains(want) {
            assert!(out.contains("Response verify OK"), "{out}");
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "OCSP never said {want:?}:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn crl_entry(text: &str, serial: &str) -> String {
    let at = text
        .find(&format!("Serial Number: {serial}"))
        .unwrap_or_else(|| panic!("{serial} not in\n{text}"));
    let rest = &text[at + 15..];
    let end = rest.find("Serial Number:").unwrap_or(rest.len());
    text[at..at + 15 + end].to_owned()
}

fn show(centre: &Centre, pinfl: &str) -> serde_json::Value {
    let out = centre.ok(&["--json", "show", "--pinfl", pinfl, "--operator", "admin"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    if v.get("documents").is_some() {
        v
    } else {
        v["holder"].clone()
    }
}

#[test]
fn renew_suspend_resume_address_and_replace_through_the_centre() {
    let mut centre = Centre::start_public();
    let public = centre.public_addr();
    centre.serve();
    let tas = Station::enrol(&centre, "TAS01", "tas01-st1");
    let sam = Station::enrol(&centre, "SAM01", "sam01-st1");
    let slot = testrig::Slot::lease();
    let reader = slot.reader_name.clone();
    let d = &tas.dir;
    let (root, esign) = (tas.ca_file("root"), tas.ca_file("esign"));
    std::fs::copy(&esign, d.join("esign.pem")).unwrap();
    let chain = std::fs::read_to_string(&root).unwrap() + &std::fs::read_to_string(&esign).unwrap();
    std::fs::write(d.join("chain.pem"), chain).unwrap();

    let holder: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("holder-01.json")).unwrap()).unwrap();
    let pinfl = holder["pinfl"].as_str().unwrap().to_owned();
    // A card issued at TAS01.
    let img = tas.blank_card(0x5C00_0001);
    let card = slot.insert(&img, &[]);
    let issued = tas.json(
        &[
            "issue",
            "--holder",
            fixture("holder-01.json").to_str().unwrap(),
            "--reader",
            &reader,
        ],
        &[],
    );
    let doc = issued["document"].as_str().unwrap().to_owned();
    let old: Vec<String> = tas
        .certificates_of(&doc)
        .into_iter()
        .map(|(s, _, _)| s)
        .collect();
    assert_eq!(old.len(), 2);

    // TAS01's own card, read at TAS01: its record, and the centre's word beside it (the same
    // state, no replacement flag).
    let own = tas.json(&["card", "show", "--reader", &reader], &[]);
    assert_eq!(own["issued_elsewhere"], serde_json::Value::Null, "{own}");
    assert_eq!(
        own["national"],
        serde_json::json!({ "Record": { "state": "active", "replacement_due": null } }),
        "{own}"
    );

    // SAM01's clerk reads the card TAS01 issued (`card show`, what the desk's Card services
    // shows): SAM01 has no record of it, so the centre's record is shown, and only what the
    // centre serves for any office is offered.
    let id = sam.json(&["card", "show", "--reader", &reader], &[]);
    assert_eq!(id["issued_elsewhere"], "TAS01", "{id}");
    assert_eq!(
        (&id["document"]["number"], &id["document"]["status"]),
        (&serde_json::json!(doc), &serde_json::json!("active")),
        "{id}"
    );
    assert_eq!(id["holder"]["pinfl"], pinfl.as_str(), "{id}");
    assert_eq!(id["national"]["Record"]["state"], "active", "{id}");
    let mut on_card: Vec<String> = serde_json::from_value(id["on_card"].clone()).unwrap();
    on_card.sort();
    let mut want = old.clone();
    want.sort();
    assert_eq!(on_card, want);
    assert_eq!(id["addresses"].as_array().map(Vec::len), Some(1), "{id}");
    let offers: Vec<(String, serde_json::Value)> = id["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["service"].as_str().unwrap().to_owned(),
                o["refused"].clone(),
            )
        })
        .collect();
    let elsewhere = serde_json::json!({ "IssuedElsewhere": "TAS01" });
    assert_eq!(
        offers,
        [
            // Issued under the centre's card key: renewed and unblocked at any office.
            ("Renew".to_string(), serde_json::Value::Null),
            ("Unblock".into(), serde_json::Value::Null),
            ("Suspend".into(), serde_json::Value::Null),
            (
                "Resume".into(),
                serde_json::json!({ "DocumentStatus": "active" })
            ),
            ("CardReturned".into(), elsewhere),
            ("AddressSet".into(), serde_json::Value::Null),
            ("AddressEnd".into(), serde_json::json!("NoTemporaryAddress")),
        ],
        "{id}"
    );
    // The read of the holder's data is audited at SAM01 (and at the centre:
    // central/tests/centre_card_services.rs); the text form says where the card is from.
    assert!(audited(&sam, "holder.read")
        .iter()
        .any(|d| d.contains("TAS01")));
    // The chip must open with the MRZ of the centre's record: with another date of birth on
    // record (the chip serial and certificates still the document's) the card is refused.
    centre_sql(
        &centre,
        &format!("UPDATE holders SET date_of_birth = '1970-01-01' WHERE pinfl = '{pinfl}'"),
    );
    let o = sam.run(
        &["card", "show", "--reader", &reader, "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "the card's chip does not open with the MRZ of document {doc}"
        )),
        "{}",
        text(&o)
    );
    assert!(audited(&sam, "card.identify.refused")
        .iter()
        .any(|d| d.contains("does not open")));
    let born = holder["date_of_birth"].as_str().expect("date_of_birth");
    centre_sql(
        &centre,
        &format!("UPDATE holders SET date_of_birth = '{born}' WHERE pinfl = '{pinfl}'"),
    );
    let o = sam.run(
        &["card", "show", "--reader", &reader, "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        shown.contains("Issued by office TAS01")
            && shown.contains("Renew         available")
            && shown.contains("not now: only at office TAS01"),
        "{shown}"
    );
    // By number, without the card (`show --document`): SAM01 has no record, so its clerk sees
    // the national registry's, whose it is and its state (no certificates, no addresses).
    let by_number = sam.json(&["show", "--document", &doc], &[]);
    let at = &by_number["at_centre"];
    assert_eq!(
        (
            &at["document"],
            &at["state"],
            &at["office"],
            &at["holder"]["pinfl"]
        ),
        (
            &serde_json::json!(doc),
            &serde_json::json!("active"),
            &serde_json::json!("TAS01"),
            &serde_json::json!(pinfl)
        ),
        "{by_number}"
    );
    assert_eq!(at["addresses"], serde_json::json!([]), "{by_number}");
    let o = sam.run(
        &["show", "--document", &doc, "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success()
            && shown.contains(&format!(
                "Document {doc} active, office TAS01 (issued at another office)"
            )),
        "{}",
        text(&o)
    );
    let o = sam.run(
        &["show", "--document", "AA9999999", "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("document-not-found"), "{}", text(&o));

    // Renewal on the enrolled station: new certificates from the centre, chained to its root;
    // the old ones superseded on the centre's CRL.
    let r = tas.json(
        &[
            "renew",
            "--document",
            &doc,
            "--reader",
            &reader,
            "--pin-fd",
            "0",
        ],
        &[PIN],
    );
    assert_eq!(r["certificates"].as_array().map(Vec::len), Some(2), "{r}");
    let mut superseded: Vec<String> = r["superseded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_ascii_uppercase())
        .collect();
    superseded.sort();
    let mut old_sorted = old.clone();
    old_sorted.sort();
    assert_eq!(superseded, old_sorted, "{r}");
    let certs = tas.certificates_of(&doc);
    let new: Vec<&(String, Vec<u8>, String)> = certs
        .iter()
        .filter(|(s, _, st)| st == "active" && !old.contains(s))
        .collect();
    assert_eq!(new.len(), 2, "{certs:?}");
    for (i, (_, der, _)) in new.iter().enumerate() {
        let f = format!("renewed-{i}.pem");
        std::fs::write(d.join(&f), pem(der)).unwrap();
        let (ok, out) = openssl(
            d,
            &[
                "verify",
                "-x509_strict",
                "-CAfile",
                root.to_str().unwrap(),
                "-untrusted",
                "esign.pem",
                &f,
            ],
        );
        assert!(ok, "openssl verify {f}: {out}");
    }
    let crl = crl_until(public, d, |t| old.iter().all(|s| t.contains(s.as_str())));
    for s in &old {
        assert!(crl_entry(&crl, s).contains("Superseded"), "{crl}");
    }
    let view = show(&centre, &pinfl);
    let active_at_centre = view["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == "active")
        .count();
    assert_eq!(active_at_centre, 2, "{view}");

    // Suspend at TAS01: the centre's OCSP says revoked (certificateHold); resume: good. The
    // window to resume is the centre's ([issuance] suspension_limit_days, 30 by default), not
    // the station's: with `[services] suspension_limit_days = 0` at TAS01 a standalone station
    // would refuse every resume, this one resumes within the centre's window.
    let toml = tas.data.join("station.toml");
    let cfg = std::fs::read_to_string(&toml).unwrap();
    assert!(!cfg.contains("[services]"), "{cfg}");
    std::fs::write(
        &toml,
        format!("{cfg}\n[services]\nsuspension_limit_days = 0\n"),
    )
    .unwrap();
    let renewed = "renewed-1.pem";
    ocsp_until(public, d, renewed, &format!("{renewed}: good"));
    let s = tas.json(&["suspend", "--document", &doc], &[]);
    assert_eq!(s["status"], "suspended", "{s}");
    let until = s["resume_until"].as_str().expect("resume_until");
    let in_days =
        (time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339)
            .expect("resume_until is RFC 3339")
            - time::OffsetDateTime::now_utc())
        .whole_hours();
    assert!(
        (29 * 24..=30 * 24).contains(&in_days),
        "the centre's 30 days: {s}"
    );
    assert!(
        until.ends_with('Z') && !until.contains('.'),
        "whole seconds: {until}"
    );
    let out = ocsp_until(public, d, renewed, &format!("{renewed}: revoked"));
    assert!(out.contains("Reason: certificateHold"), "{out}");
    let r = tas.json(&["resume", "--document", &doc, "--identity-confirmed"], &[]);
    assert_eq!(r["status"], "active", "{r}");
    ocsp_until(public, d, renewed, &format!("{renewed}: good"));
    // SAM01 has no record of TAS01's card and still serves its holder: at the centre only.
    let s = sam.json(&["suspend", "--document", &doc], &[]);
    assert_eq!(s["status"], "suspended", "{s}");
    let until = s["resume_until"].as_str().expect("resume_until");
    assert!(
        until.ends_with('Z') && !until.contains('.'),
        "whole seconds: {s}"
    );
    ocsp_until(public, d, renewed, &format!("{renewed}: revoked"));
    // TAS01's record of its card still says active; its clerk is told the centre's state.
    let own = tas.json(&["card", "show", "--reader", &reader], &[]);
    assert_eq!(
        (
            &own["document"]["status"],
            &own["national"]["Record"]["state"]
        ),
        (
            &serde_json::json!("active"),
            &serde_json::json!("suspended")
        ),
        "{own}"
    );
    // The services go by the centre's state: no renewal or unblock of a suspended card, and
    // the unblock itself asks the centre (it changes nothing on the card then).
    let held = serde_json::json!({ "DocumentStatus": "suspended" });
    for o in own["offers"].as_array().unwrap() {
        if ["Renew", "Unblock", "Suspend"].contains(&o["service"].as_str().unwrap()) {
            assert_eq!(o["refused"], held, "{own}");
        }
    }
    let unblock = || {
        let args = [
            "--json",
            "unblock",
            "--document",
            &doc,
            "--reader",
            &reader,
            "--identity-confirmed",
            "--pin-fd",
            "0",
            "--operator",
            "clerk",
        ];
        tas.run(&args, &[CLERK_PASSWORD, "55667788"])
    };
    let o = unblock();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "the national registry has document {doc} as suspended (this station's record says \
             active); a PIN is unblocked only on an active document"
        )),
        "{}",
        text(&o)
    );
    assert!(audited(&tas, "unblock.refused")
        .iter()
        .any(|d| d.contains("national registry")));
    let o = tas.run(
        &["card", "show", "--reader", &reader, "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    assert!(
        text(&o).contains(
            "The national registry says the document is suspended (this station's record says \
             active): the centre's record is the one that counts"
        ),
        "{}",
        text(&o)
    );
    // TAS01 brings its registry up to date: suspended here too, its certificates on hold; a
    // second sync has nothing to do.
    let synced = |was: &str, now: &str| {
        let sy = tas.json(&["centre", "sync"], &[]);
        let m = &sy["mirrored"];
        assert_eq!(m.as_array().map(Vec::len), Some(1), "{sy}");
        assert_eq!(
            (&m[0]["document"], &m[0]["was"], &m[0]["now"]),
            (
                &serde_json::json!(doc),
                &serde_json::json!(was),
                &serde_json::json!(now)
            ),
            "{sy}"
        );
        assert!(
            m[0]["changed_by"]
                .as_str()
                .is_some_and(|b| b.starts_with("sam01-st1/")),
            "{sy}"
        );
        let again = tas.json(&["centre", "sync"], &[]);
        assert_eq!(again["mirrored"], serde_json::json!([]), "{again}");
    };
    synced("active", "suspended");
    let own = tas.json(&["card", "show", "--reader", &reader], &[]);
    assert_eq!(own["document"]["status"], "suspended", "{own}");
    let on_hold: i64 = registry::Registry::open_read_only(tas.data.join("registry.sqlite"))
        .expect("registry")
        .connection()
        .query_row(
            "SELECT count(*) FROM certificates c JOIN issuance_jobs j ON c.job_id = j.id
             WHERE j.series || printf('%07d', j.number) = ?1
               AND c.revocation_reason = 'certificateHold'",
            [&doc],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(on_hold, 2, "the renewed certificates on hold here too");
    assert!(audited(&tas, "document.mirrored")
        .iter()
        .any(|d| d.contains("sam01-st1/")));
    sam.json(&["resume", "--document", &doc, "--identity-confirmed"], &[]);
    ocsp_until(public, d, renewed, &format!("{renewed}: good"));
    synced("suspended", "active");
    // Active again at the centre and here: the unblock goes ahead.
    let o = unblock();
    assert!(o.status.success(), "{}", text(&o));
    let u: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(u["document"], doc.as_str(), "{u}");

    // An address change through the centre lands in the national registry and its outbox.
    let addr = d.join("temporary.json");
    std::fs::write(
        &addr,
        r#"{"kind":"temporary","region":"Samarqand","district":"Samarqand","street":"Registon 5","house":"3","registered_on":"2026-01-10","registered_until":"2027-01-10"}"#,
    )
    .unwrap();
    let a = tas.json(
        &[
            "address",
            "set",
            "--pinfl",
            &pinfl,
            "--holder-address",
            addr.to_str().unwrap(),
        ],
        &[],
    );
    let view = show(&centre, &pinfl);
    let addresses = view["addresses"].as_array().unwrap();
    assert!(
        addresses
            .iter()
            .any(|x| x["street"] == "Registon 5" && x["station"] == "tas01-st1"),
        "{view}"
    );
    let outbox = centre.ok(&["--json", "outbox", "list", "--operator", "admin"]);
    assert!(
        outbox.contains("address.changed"),
        "the centre's outbox: {outbox}\naddress set: {a}"
    );

    // Replacement of the lost card through the centre: old revoked keyCompromise, linked.
    card.pull();
    let replacement_image = tas.blank_card(0x5C00_0002);
    let card = slot.insert(&replacement_image, &[]);
    let letter = holder_pin::letter_path(d);
    let rep = tas.json(
        &[
            "replace",
            "--document",
            &doc,
            "--reason",
            "lost",
            "--holder",
            fixture("holder-01.json").to_str().unwrap(),
            "--reader",
            &reader,
            "--pin-fd",
            "0",
            "--pin-letter",
            letter.to_str().unwrap(),
        ],
        &[PIN],
    );
    let new_doc = rep["new"]["document"].as_str().unwrap().to_owned();
    assert_eq!(rep["old_status"], "lost", "{rep}");
    card.pull();
    let view = show(&centre, &pinfl);
    let docs = view["documents"].as_array().unwrap();
    let old_doc = docs.iter().find(|x| x["document"] == doc.as_str()).unwrap();
    assert_eq!(old_doc["state"], "lost", "{view}");
    assert_eq!(old_doc["replaced_by"], new_doc.as_str(), "{view}");
    let renewed_serials: Vec<&String> = new.iter().map(|(s, _, _)| s).collect();
    for c in view["certificates"].as_array().unwrap() {
        if renewed_serials.contains(&&c["serial"].as_str().unwrap().to_string()) {
            assert_eq!(c["revocation_reason"], "keyCompromise", "{view}");
        }
    }
    let out = ocsp_until(public, d, renewed, &format!("{renewed}: revoked"));
    assert!(out.contains("Reason: keyCompromise"), "{out}");

    // A recall is for a card the centre flagged: the new card is not (yet), so its recalled
    // replacement is refused before anything changes.
    let holder_file = fixture("holder-01.json");
    let recall = |number: &str| {
        let letter = holder_pin::letter_path(d);
        let args = [
            "--json",
            "replace",
            "--document",
            number,
            "--reason",
            "recalled",
            "--holder",
            holder_file.to_str().unwrap(),
            "--reader",
            &reader,
            "--pin-fd",
            "0",
            "--pin-letter",
            letter.to_str().unwrap(),
            "--operator",
            "clerk",
        ];
        tas.run(&args, &[CLERK_PASSWORD, PIN])
    };
    let o = recall(&new_doc);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "document {new_doc} is not flagged for replacement at the national centre"
        )),
        "{}",
        text(&o)
    );
    assert_eq!(
        show(&centre, &pinfl)["documents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["document"] == new_doc.as_str())
            .unwrap()["state"],
        "active"
    );

    // The centre's CSCA rolls over and csca-1 is withdrawn (each under dual control): the new
    // card, whose EF.SOD TAS01's Document Signer under csca-1 signed, is flagged; the clerk
    // reading it at TAS01 (its own card) and at SAM01 (the centre's record) is told.
    centre.rotate_csca("1");
    let done = centre.withdraw_csca("csca-1", "2");
    assert!(
        done.contains("1 card whose EF.SOD they signed is flagged for replacement"),
        "{done}"
    );
    let flagged_card = slot.insert(&replacement_image, &[]);
    let withdrawn = "the CSCA key csca-1 that certified its Document Signer was withdrawn from \
                     the CSCA Master List (keyCompromise)";
    for st in [&tas, &sam] {
        let id = st.json(&["card", "show", "--reader", &reader], &[]);
        assert_eq!(id["document"]["number"], new_doc.as_str(), "{id}");
        let due = &id["national"]["Record"]["replacement_due"];
        assert_eq!(due["reason"], withdrawn, "{id}");
        assert!(
            due["flagged_at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{id}"
        );
        let o = st.run(
            &["card", "show", "--reader", &reader, "--operator", "clerk"],
            &[CLERK_PASSWORD],
        );
        assert!(
            text(&o).contains("To be replaced: the national centre flagged this card at")
                && text(&o).contains(withdrawn),
            "{}",
            text(&o)
        );
    }
    // The holder is called in: TAS01 renews its Document Signer under the new CSCA, then
    // replaces the recalled card. The old document is revoked (superseded) and linked to the
    // new one at the centre, and no longer listed to replace.
    let o = tas.run(
        &["centre", "renew-document-signer", "--operator", "admin"],
        &[ADMIN_PASSWORD],
    );
    assert!(o.status.success(), "{}", text(&o));
    flagged_card.pull();
    let _third = slot.insert(&tas.blank_card(0x5C00_0003), &[]);
    let o = recall(&new_doc);
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&rep["old_status"], &rep["crl_reason"]),
        (
            &serde_json::json!("revoked"),
            &serde_json::json!("superseded")
        ),
        "{rep}"
    );
    let third_doc = rep["new"]["document"].as_str().unwrap().to_owned();
    let view = show(&centre, &pinfl);
    let recalled = view["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["document"] == new_doc.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (&recalled["state"], &recalled["replaced_by"]),
        (&serde_json::json!("revoked"), &serde_json::json!(third_doc)),
        "{view}"
    );
    let listed = tas.json(&["centre", "cards-to-replace"], &[]);
    assert_eq!(listed["cards"], serde_json::json!([]), "{listed}");

    // The card declared stolen at SAM01: TAS01's sync takes it out of use here too, its
    // certificates revoked keyCompromise.
    let r = sam.json(
        &["revoke", "--document", &third_doc, "--reason", "stolen"],
        &[],
    );
    assert_eq!(r["status"], "lost", "{r}");
    let sy = tas.json(&["centre", "sync"], &[]);
    let m = &sy["mirrored"];
    assert_eq!(
        (&m[0]["document"], &m[0]["now"], &m[0]["reason"]),
        (
            &serde_json::json!(third_doc),
            &serde_json::json!("lost"),
            &serde_json::json!("stolen")
        ),
        "{sy}"
    );
    let revoked: Vec<String> = registry::Registry::open_read_only(tas.data.join("registry.sqlite"))
        .expect("registry")
        .connection()
        .prepare(
            "SELECT c.revocation_reason FROM certificates c JOIN issuance_jobs j ON c.job_id = j.id
             WHERE j.series || printf('%07d', j.number) = ?1",
        )
        .unwrap()
        .query_map([&third_doc], |r| r.get::<_, Option<String>>(0))
        .unwrap()
        .map(|r| r.unwrap().unwrap_or_default())
        .collect();
    assert_eq!(revoked, ["keyCompromise", "keyCompromise"], "{sy}");

    // The centre stopped: TAS01 still shows its own card, and says the centre was not read.
    centre.stop();
    let o = tas.run(
        &["card", "show", "--reader", &reader, "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    assert!(
        o.status.success()
            && text(&o).contains(&format!("Document {third_doc}: lost"))
            && text(&o).contains("The national centre's record was not read (")
            && !text(&o).contains("To be replaced"),
        "{}",
        text(&o)
    );
}

/// `args` as the clerk: must fail with `code`, the centre's rule `rule` in the message.
fn refused(st: &Station, args: &[&str], code: i32, rule: &str) {
    let mut all = args.to_vec();
    all.extend(["--operator", "clerk"]);
    let o = st.run(&all, &[CLERK_PASSWORD]);
    assert_eq!(o.status.code(), Some(code), "{args:?}:\n{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("(rule {rule})")),
        "{args:?} names rule {rule}:\n{}",
        text(&o)
    );
}

/// The details of the station's audit events `action`.
fn audited(st: &Station, action: &str) -> Vec<String> {
    let reg =
        registry::Registry::open_read_only(st.data.join("registry.sqlite")).expect("registry");
    let mut stmt = reg
        .connection()
        .prepare("SELECT details FROM audit_events WHERE action = ?1 ORDER BY seq")
        .unwrap();
    let rows = stmt.query_map([action], |r| r.get::<_, String>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn refusals_by_the_centre_name_the_rule_and_are_audited_at_the_station() {
    let mut centre = Centre::start();
    centre.serve();
    let tas = Station::enrol(&centre, "TAS01", "tas01-st1");
    let sam = Station::enrol(&centre, "SAM01", "sam01-st1");
    let slot = testrig::Slot::lease();
    let card = slot.insert(&tas.blank_card(0x5C00_0011), &[]);
    let issued = tas.json(
        &[
            "issue",
            "--holder",
            fixture("holder-02.json").to_str().unwrap(),
            "--reader",
            &slot.reader_name,
        ],
        &[],
    );
    let doc = issued["document"].as_str().unwrap().to_owned();
    card.pull();
    // SAM01 knows nothing of the card: the centre decides and names its rule.
    refused(
        &sam,
        &["resume", "--document", &doc, "--identity-confirmed"],
        5,
        "document-not-suspended",
    );
    sam.json(&["suspend", "--document", &doc], &[]);
    refused(
        &sam,
        &["suspend", "--document", &doc],
        5,
        "document-suspended",
    );
    // TAS01's mirror still says active; the centre's record says suspended and wins.
    refused(
        &tas,
        &["suspend", "--document", &doc],
        5,
        "document-suspended",
    );
    assert!(
        audited(&tas, "suspend.refused")
            .iter()
            .any(|d| d.contains("document-suspended")),
        "the refusal is in TAS01's audit log"
    );
    // An address change for a holder the national registry does not know.
    let addr = sam.dir.join("a.json");
    std::fs::write(
        &addr,
        r#"{"kind":"permanent","region":"Toshkent","district":"Chilonzor","street":"Bunyodkor 2","house":"9","registered_on":"2020-01-01"}"#,
    )
    .unwrap();
    refused(
        &sam,
        &[
            "address",
            "set",
            "--pinfl",
            "30101199100017",
            "--holder-address",
            addr.to_str().unwrap(),
        ],
        2,
        "holder-not-found",
    );
    assert!(
        audited(&sam, "address.set.refused")
            .iter()
            .any(|d| d.contains("holder-not-found")),
        "the refusal is in SAM01's audit log"
    );
}

/// Run `sql` on the centre's database as the cluster's superuser (over its socket, as
/// scripts/pg-up.sh does): a change the centre itself would never make, for a test.
fn centre_sql(centre: &Centre, sql: &str) {
    let dir = centre.cluster_dir();
    let port = std::fs::read_to_string(dir.join("port")).expect("the cluster's port");
    let o = Command::new("bash")
        .args([
            "-c",
            "bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); \
             if [ \"$(id -u)\" -eq 0 ]; then as='runuser -u postgres --'; fi; \
             $as \"$bin/psql\" -v ON_ERROR_STOP=1 -q -h \"$1\" -p \"$2\" -d idcentral -c \"$3\"",
            "psql",
        ])
        .arg(dir.join("socket"))
        .arg(port.trim())
        .arg(sql)
        .output()
        .expect("run psql");
    assert!(o.status.success(), "psql {sql}: {}", text(&o));
}

/// The document's state and `replaced_by` in the centre's record of holder `pinfl`.
fn at_centre(centre: &Centre, pinfl: &str, document: &str) -> (String, Option<String>) {
    let view = show(centre, pinfl);
    let d = view["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["document"] == document)
        .unwrap_or_else(|| panic!("{document} not in {view}"))
        .clone();
    (
        d["state"].as_str().unwrap().to_owned(),
        d["replaced_by"].as_str().map(str::to_owned),
    )
}

/// A card TAS01 issued is replaced at SAM01, which has no record of it (docs/station.md
/// "Another station's card"): the document must be active at the centre and the holder's, a
/// recall must be the centre's; killed once the replacement is journaled, `recover` leaves the
/// old card active; killed after the new card was issued, `recover` revokes the old document at
/// the centre and links it to the new one; done in one go, damaged → revoked
/// (cessationOfOperation) and linked; TAS01's sync then takes it out of use there.
#[test]
fn another_offices_card_is_replaced_here_through_the_centre() {
    let slot = testrig::Slot::lease();
    let (offices, card) = two_offices(&slot, "holder-02.json", 0x5C00_0021);
    let TwoOffices {
        centre,
        tas,
        sam,
        reader,
        holder_file,
        pinfl,
        doc,
    } = offices;
    card.pull();

    let replace_at =
        |st: &Station, document: &str, reason: &str, holder: &Path, env: &[(&str, &str)]| {
            let letter = holder_pin::letter_path(&st.dir);
            let args = [
                "--json",
                "replace",
                "--document",
                document,
                "--reason",
                reason,
                "--holder",
                holder.to_str().unwrap(),
                "--reader",
                &reader,
                "--pin-fd",
                "0",
                "--pin-letter",
                letter.to_str().unwrap(),
                "--operator",
                "clerk",
            ];
            st.run_env(&args, &[CLERK_PASSWORD, PIN], env)
        };
    let replace = |document: &str, reason: &str, holder: &Path, env: &[(&str, &str)]| {
        replace_at(&sam, document, reason, holder, env)
    };
    let journal = || -> Vec<(String, String)> {
        registry::Registry::open_read_only(sam.data.join("registry.sqlite"))
            .expect("registry")
            .centre_replacements_of(&doc)
            .expect("read")
            .into_iter()
            .map(|r| (r.reason, r.state))
            .collect()
    };
    let blank = slot.insert(&sam.blank_card(0x5C00_0022), &[]);

    // Refused before anything changes: another holder, a recall the centre did not make, a
    // suspended document.
    let o = replace(&doc, "lost", &fixture("holder-01.json"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("belongs to another holder"),
        "{}",
        text(&o)
    );
    let o = replace(&doc, "recalled", &holder_file, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "document {doc} is not flagged for replacement at the national centre"
        )),
        "{}",
        text(&o)
    );
    sam.json(&["suspend", "--document", &doc], &[]);
    let o = replace(&doc, "lost", &holder_file, &[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "document {doc} is suspended at the national centre"
        )),
        "{}",
        text(&o)
    );
    sam.json(&["resume", "--document", &doc, "--identity-confirmed"], &[]);
    assert_eq!(journal(), vec![]);
    assert!(
        audited(&sam, "replace.refused").len() >= 3,
        "each refusal audited at SAM01"
    );

    // TAS01 replacing its own card is killed after its local hold, before the centre's; the
    // holder then suspends the card at SAM01. TAS01's recover releases its own hold only: the
    // centre never made TAS01's, so SAM01's suspension stays there.
    let o = replace_at(
        &tas,
        &doc,
        "damaged",
        &holder_file,
        &[("IDSTATION_FAILPOINT", "replace.held")],
    );
    assert!(!o.status.success(), "{}", text(&o));
    sam.json(&["suspend", "--document", &doc], &[]);
    let rec = tas.json(&["recover"], &[]);
    assert!(
        rec.as_array()
            .unwrap()
            .iter()
            .any(|x| x["outcome"] == "rolled-back" && x["old_document"] == doc.as_str()),
        "{rec}"
    );
    assert_eq!(at_centre(&centre, &pinfl, &doc), ("suspended".into(), None));
    sam.json(&["resume", "--document", &doc, "--identity-confirmed"], &[]);
    assert_eq!(at_centre(&centre, &pinfl, &doc), ("active".into(), None));

    // Killed once journaled (before the centre's hold): recover rolls it back. Meanwhile the
    // holder suspended the card at TAS01: the centre never made SAM01's hold, so nothing is
    // released and the suspension stays.
    let o = replace(
        &doc,
        "lost",
        &holder_file,
        &[("IDSTATION_FAILPOINT", "replace.held")],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(journal(), vec![("lost".into(), "holding".into())]);
    tas.json(&["suspend", "--document", &doc], &[]);
    let rec = sam.json(&["recover"], &[]);
    assert!(
        rec.as_array()
            .unwrap()
            .iter()
            .any(|x| x["outcome"] == "rolled-back" && x["old_document"] == doc.as_str()),
        "{rec}"
    );
    assert_eq!(at_centre(&centre, &pinfl, &doc), ("suspended".into(), None));
    assert_eq!(journal(), vec![("lost".into(), "rolled-back".into())]);
    assert!(
        audited(&sam, "replacement.rolled-back")
            .iter()
            .any(|d| d.contains("\"hold_released\":false")),
        "the roll-back released nothing"
    );
    tas.json(&["resume", "--document", &doc, "--identity-confirmed"], &[]);
    assert_eq!(at_centre(&centre, &pinfl, &doc), ("active".into(), None));

    // Killed after the new card was issued: the old document is still held at the centre, the
    // holder's new card active there; recover revokes the old one and links it.
    let o = replace(
        &doc,
        "damaged",
        &holder_file,
        &[("IDSTATION_FAILPOINT", "replace.issued")],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(at_centre(&centre, &pinfl, &doc).0, "suspended");
    let rec = sam.json(&["recover"], &[]);
    let done = rec
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["outcome"] == "completed")
        .unwrap_or_else(|| panic!("no completed replacement in {rec}"))
        .clone();
    let new_doc = done["new_document"].as_str().unwrap().to_owned();
    assert_eq!(
        at_centre(&centre, &pinfl, &doc),
        ("revoked".into(), Some(new_doc.clone()))
    );
    assert_eq!(at_centre(&centre, &pinfl, &new_doc).0, "active");
    assert_eq!(
        journal(),
        vec![
            ("lost".into(), "rolled-back".into()),
            ("damaged".into(), "completed".into())
        ]
    );
    let replaced = audited(&sam, "document.replaced");
    assert!(
        replaced.iter().any(|d| d.contains("\"at_centre\":true")
            && d.contains("cessationOfOperation")
            && d.contains(&new_doc)),
        "{replaced:?}"
    );
    // Once revoked at the centre it is not replaced again.
    let o = replace(&doc, "lost", &holder_file, &[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));

    // The new card (SAM01's now) replaced in one go at TAS01, which has no record of it, and
    // whose registry still has the holder's first document active (not synced since): it is
    // brought up to date before the new card, else it would refuse the holder a second one.
    blank.pull();
    let _third = slot.insert(&tas.blank_card(0x5C00_0023), &[]);
    let letter = holder_pin::letter_path(&tas.dir);
    let rep = tas.json(
        &[
            "replace",
            "--document",
            &new_doc,
            "--reason",
            "stolen",
            "--holder",
            holder_file.to_str().unwrap(),
            "--reader",
            &reader,
            "--pin-fd",
            "0",
            "--pin-letter",
            letter.to_str().unwrap(),
        ],
        &[PIN],
    );
    let third = rep["new"]["document"].as_str().unwrap().to_owned();
    assert_eq!(
        (&rep["old_status"], &rep["crl_reason"]),
        (
            &serde_json::json!("lost"),
            &serde_json::json!("keyCompromise")
        ),
        "{rep}"
    );
    assert_eq!(
        rep["revoked_certificates"].as_array().unwrap().len(),
        2,
        "{rep}"
    );
    assert_eq!(
        at_centre(&centre, &pinfl, &new_doc),
        ("lost".into(), Some(third.clone()))
    );

    // TAS01's registry took its first document out of use on the way (revoked, superseded by
    // the replacement at the centre), audited as mirrored.
    let reg =
        registry::Registry::open_read_only(tas.data.join("registry.sqlite")).expect("registry");
    let first = reg
        .document(doc.parse().expect("number"))
        .expect("read")
        .expect("document");
    assert_eq!(first.status.as_str(), "revoked");
    assert!(
        audited(&tas, "document.mirrored")
            .iter()
            .any(|d| d.contains(&doc)),
        "the mirror of {doc} audited at TAS01"
    );
    let sy = tas.json(&["centre", "sync"], &[]);
    assert_eq!(sy["mirrored"], serde_json::json!([]), "{sy}");
}

/// yubico-piv-tool on `reader` with `args`.
fn yubico(reader: &str, args: &[&str]) -> Output {
    Command::new("yubico-piv-tool")
        .args(["-r", reader])
        .args(args)
        .output()
        .expect("run yubico-piv-tool")
}

/// `unblock` of `doc` at `st` with the new PIN `new_pin` (and `extra` arguments).
fn unblock_at(st: &Station, doc: &str, reader: &str, new_pin: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--json",
        "unblock",
        "--document",
        doc,
        "--reader",
        reader,
        "--pin-fd",
        "0",
        "--operator",
        "clerk",
    ];
    args.extend_from_slice(extra);
    st.run(&args, &[CLERK_PASSWORD, new_pin])
}

/// The centre's `card.key-released` events, as `idcentral audit search` lists them.
fn keys_released(centre: &Centre) -> Vec<serde_json::Value> {
    let out = centre.ok(&[
        "--json",
        "audit",
        "search",
        "--action",
        "card.key-released",
        "--operator",
        "admin",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["events"]
        .as_array()
        .or(v.as_array())
        .cloned()
        .unwrap_or_else(|| panic!("no events in {v}"))
}

/// A card TAS01 issued through the centre is under a management key the centre derives
/// (docs/centre.md "Card management keys"): SAM01, which has no record of it, offers the PIN
/// unblock, refuses it without the clerk's confirmation, for a suspended document and for a
/// card under its issuing station's own key, and then unblocks it with the key the centre
/// released — yubico-piv-tool takes the new PIN, the new letter's PUK unblocks the card again.
/// Each release is audited at the centre with the station and the purpose; the unblock at
/// SAM01, before and after the card.
#[test]
fn another_offices_card_has_its_pin_unblocked_here_with_the_centres_card_key() {
    let slot = testrig::Slot::lease();
    let (offices, _card) = two_offices(&slot, "holder-03.json", 0x5C00_0031);
    let TwoOffices {
        centre,
        tas,
        sam,
        reader,
        doc,
        ..
    } = offices;
    let released = keys_released(&centre);
    assert_eq!(
        released.len(),
        1,
        "one release, for the issuance: {released:?}"
    );
    let first = released[0].to_string();
    assert!(
        first.contains("tas01-st1") && first.contains("\"issuance\""),
        "{first}"
    );

    // SAM01 reads the card from the national registry: unblock and renewal offered, the
    // returned card not (it is recorded where it was issued).
    let shown = sam.json(&["card", "show", "--reader", &reader], &[]);
    let offer = |service: &str| {
        shown["offers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["service"] == service)
            .unwrap_or_else(|| panic!("{service} in {shown}"))["refused"]
            .clone()
    };
    assert_eq!(offer("Unblock"), serde_json::Value::Null, "{shown}");
    assert_eq!(offer("Renew"), serde_json::Value::Null, "{shown}");
    assert_eq!(
        offer("CardReturned"),
        serde_json::json!({ "IssuedElsewhere": "TAS01" }),
        "{shown}"
    );

    for _ in 0..3 {
        let o = yubico(&reader, &["-a", "verify-pin", "-P", "11112222"]);
        assert!(!o.status.success(), "{}", text(&o));
    }
    let o = yubico(&reader, &["-a", "verify-pin", "-P", PIN]);
    assert!(!o.status.success(), "the PIN must be blocked: {}", text(&o));

    // Refused before the card is touched: no confirmation; the document suspended; the card
    // under its issuing station's own key (as a card issued before the centre derived them).
    let o = unblock_at(&sam, &doc, &reader, "55667788", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("identity_confirmed"), "{}", text(&o));
    sam.json(&["suspend", "--document", &doc], &[]);
    let o = unblock_at(&sam, &doc, &reader, "55667788", &["--identity-confirmed"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "the national registry has document {doc} as suspended; its PIN is unblocked only \
             on an active document"
        )),
        "{}",
        text(&o)
    );
    sam.json(&["resume", "--document", &doc, "--identity-confirmed"], &[]);
    centre_sql(
        &centre,
        "CREATE TABLE saved_card_keys AS SELECT id, card_key, card_key_salt FROM jobs; \
         UPDATE jobs SET card_key = NULL, card_key_salt = NULL",
    );
    let o = unblock_at(&sam, &doc, &reader, "55667788", &["--identity-confirmed"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains("under that station's own management key"),
        "{}",
        text(&o)
    );
    centre_sql(
        &centre,
        "UPDATE jobs j SET card_key = s.card_key, card_key_salt = s.card_key_salt \
         FROM saved_card_keys s WHERE s.id = j.id",
    );
    assert_eq!(
        keys_released(&centre).len(),
        1,
        "nothing released for a refusal"
    );
    assert!(audited(&sam, "unblock.refused").len() >= 3);

    let letter = holder_pin::letter_path(&sam.dir);
    let o = unblock_at(
        &sam,
        &doc,
        &reader,
        "55667788",
        &[
            "--identity-confirmed",
            "--new-puk",
            "--pin-letter",
            letter.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let u: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&u["document"], &u["issued_by_office"], &u["service_job"]),
        (
            &serde_json::json!(doc),
            &serde_json::json!("TAS01"),
            &serde_json::Value::Null
        ),
        "{u}"
    );
    let o = yubico(&reader, &["-a", "verify-pin", "-P", "55667788"]);
    assert!(o.status.success(), "the new PIN: {}", text(&o));
    let puk = holder_pin::puk_in_letter(&letter);
    let o = yubico(&reader, &["-a", "unblock-pin", "-P", &puk, "-N", PIN]);
    assert!(o.status.success(), "the new PUK: {}", text(&o));
    let o = yubico(&reader, &["-a", "verify-pin", "-P", PIN]);
    assert!(o.status.success(), "{}", text(&o));

    let released = keys_released(&centre);
    assert_eq!(released.len(), 2, "{released:?}");
    let last = released
        .iter()
        .map(|e| e.to_string())
        .find(|e| e.contains("sam01-st1"));
    let last = last.unwrap_or_else(|| panic!("a release to sam01-st1 in {released:?}"));
    assert!(
        last.contains("\"unblock\"") && last.contains(&doc) && last.contains("TAS01"),
        "{last}"
    );
    let started = audited(&sam, "unblock.started");
    let done = audited(&sam, "card.unblocked");
    assert_eq!((started.len(), done.len()), (1, 1), "{started:?} {done:?}");
    assert!(
        done[0].contains("\"issued_by_office\":\"TAS01\""),
        "{}",
        done[0]
    );
    assert!(!done[0].contains("55667788") && !done[0].contains(&puk));

    // TAS01 still serves its own card under the centre's key: an unblock there too.
    let o = unblock_at(&tas, &doc, &reader, "66778899", &["--identity-confirmed"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = yubico(&reader, &["-a", "verify-pin", "-P", "66778899"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// The serials of the certificates of holder `pinfl` in state `state` at the centre.
fn serials_at_centre(centre: &Centre, pinfl: &str, state: &str) -> Vec<String> {
    let mut s: Vec<String> = show(centre, pinfl)["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == state)
        .map(|c| c["serial"].as_str().unwrap().to_uppercase())
        .collect();
    s.sort();
    s
}

/// The holder signs with the card's 9C key and the signature verifies with the 9C certificate
/// on the card (yubico-piv-tool, independent of the station): the serial of that certificate.
fn card_signs(st: &Station, reader: &str) -> String {
    let cert = st.dir.join("card-9c.pem");
    let o = yubico(
        reader,
        &[
            "-a",
            "read-certificate",
            "-s",
            "9c",
            "-o",
            cert.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = yubico(
        reader,
        &[
            "-a",
            "verify-pin",
            "-P",
            PIN,
            "-a",
            "test-signature",
            "-s",
            "9c",
            "-i",
            cert.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "test-signature: {}", text(&o));
    let (ok, out) = openssl(
        &st.dir,
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    out.trim().trim_start_matches("serial=").to_uppercase()
}

/// The serials of a JSON list — of strings, or of certificates with a `serial` — upper-case,
/// sorted.
fn serials_in(list: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|x| x["serial"].as_str().or(x.as_str()).unwrap().to_uppercase())
        .collect();
    out.sort();
    out
}

/// `renew` of `doc` at `st` with the holder's PIN, with `env` (a failpoint).
fn renew_at(st: &Station, doc: &str, reader: &str, env: &[(&str, &str)]) -> Output {
    let args = [
        "--json",
        "renew",
        "--document",
        doc,
        "--reader",
        reader,
        "--pin-fd",
        "0",
        "--operator",
        "clerk",
    ];
    st.run_env(&args, &[CLERK_PASSWORD, PIN], env)
}

/// A card TAS01 issued through the centre is renewed at SAM01, which has no record of it: killed
/// after the new keys (before the centre certified), `recover` aborts the renewal at the centre
/// and the old certificates stay active; killed after the centre's certificates were journaled,
/// `recover` leaves it for the card and the next `renew` resumes it — the new certificates
/// active at the centre, the old ones superseded, the card signing with the new 9C key
/// (yubico-piv-tool). Back at TAS01 the card is read: TAS01's registry takes the new
/// certificates (`certificates.mirrored`) and serves the card again (an unblock).
#[test]
fn another_offices_card_is_renewed_here_and_its_issuing_station_takes_the_new_certificates() {
    let slot = testrig::Slot::lease();
    let (offices, _card) = two_offices(&slot, "holder-01.json", 0x5C00_0041);
    let TwoOffices {
        centre,
        tas,
        sam,
        reader,
        pinfl,
        doc,
        ..
    } = offices;
    let first = serials_at_centre(&centre, &pinfl, "active");
    assert_eq!(first.len(), 2);

    let shown = sam.json(&["card", "show", "--reader", &reader], &[]);
    let renew_offer = shown["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["service"] == "Renew")
        .unwrap()["refused"]
        .clone();
    assert_eq!(renew_offer, serde_json::Value::Null, "{shown}");

    // Killed with the new keys on the card, before the centre certified: recovery aborts it at
    // the centre; the old certificates stay the document's.
    let o = renew_at(
        &sam,
        &doc,
        &reader,
        &[("IDSTATION_FAILPOINT", "renew.ca.issue")],
    );
    assert!(!o.status.success(), "{}", text(&o));
    let rec = sam.json(&["recover"], &[]);
    assert!(
        rec.to_string().contains("\"kind\":\"renew-at-centre\"")
            && rec.to_string().contains("\"outcome\":\"rolled-back\""),
        "{rec}"
    );
    assert_eq!(serials_at_centre(&centre, &pinfl, "active"), first);

    // Killed after the centre's certificates were journaled: left for the card, then resumed.
    let o = renew_at(
        &sam,
        &doc,
        &reader,
        &[("IDSTATION_FAILPOINT", "renew.card.install")],
    );
    assert!(!o.status.success(), "{}", text(&o));
    let rec = sam.json(&["recover"], &[]);
    assert!(rec.to_string().contains("waiting-for-card"), "{rec}");
    let o = renew_at(&sam, &doc, &reader, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&r["resumed"], &r["issued_by_office"], &r["service_job"]),
        (
            &serde_json::json!(true),
            &serde_json::json!("TAS01"),
            &serde_json::Value::Null
        ),
        "{r}"
    );
    let new = serials_in(&r["certificates"]);
    assert_eq!(serials_at_centre(&centre, &pinfl, "active"), new, "{r}");
    let superseded = serials_in(&r["superseded"]);
    assert_eq!(superseded, first, "{r}");
    let on_card = card_signs(&sam, &reader);
    assert!(
        new.iter()
            .any(|s| s.trim_start_matches('0') == on_card.trim_start_matches('0')),
        "{on_card} not in {new:?}"
    );
    let sam_events = (
        audited(&sam, "renewal.started").len(),
        audited(&sam, "renewal.rolled-back").len(),
        audited(&sam, "renewal.completed").len(),
    );
    assert_eq!(sam_events, (2, 1, 1));
    let released = keys_released(&centre);
    assert!(
        released
            .iter()
            .any(|e| e.to_string().contains("sam01-st1") && e.to_string().contains("\"renewal\"")),
        "{released:?}"
    );

    // TAS01 reads its card again: the new certificates are taken here, the old superseded.
    let own = tas.json(&["card", "show", "--reader", &reader], &[]);
    assert_eq!(own["document"]["status"], "active", "{own}");
    let mirrored = audited(&tas, "certificates.mirrored");
    assert_eq!(mirrored.len(), 1, "{mirrored:?}");
    let active_here: Vec<String> = tas
        .certificates_of(&doc)
        .into_iter()
        .filter(|(_, _, status)| status == "active")
        .map(|(serial, _, _)| serial.to_uppercase())
        .collect();
    let mut active_here = active_here;
    active_here.sort();
    assert_eq!(active_here, new);
    let o = unblock_at(&tas, &doc, &reader, PIN, &["--identity-confirmed"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// Waits until the centre has no certificate of holder `pinfl` left `issued` (a renewal left
/// open aborted by the sweep of `instance`, whose `[issuance] renewal_timeout_seconds` is 1).
fn renewal_timed_out(centre: &Centre, pinfl: &str) {
    let _instance = centre.another_instance_with("[issuance]\nrenewal_timeout_seconds = 1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !serials_at_centre(centre, pinfl, "issued").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the centre did not abort the renewal"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A renewal left after its certificates were written to the card, before the centre's
/// `complete` (killed there, then the card taken away), is aborted by the centre after
/// `[issuance] renewal_timeout_seconds`: its certificates revoked, the document's previous ones
/// still active. When the card comes back, the station rolls its renewal back and makes a new
/// one at once, or `idstation recover` rolled it back before (`rolled-back`, not
/// `waiting-for-card`) — at the issuing office (TAS01) and at another office (SAM01) alike, the
/// card accepted with the aborted renewal's (revoked) certificates on it and its key released
/// by the centre, also after a further attempt that died before its certificates, and at the
/// issuing office when the renewal another office left was aborted (TAS01 takes its revoked
/// certificates from the centre). The card then signs with the new 9C key (yubico-piv-tool).
#[test]
fn a_renewal_the_centre_timed_out_is_made_again_when_the_card_comes_back() {
    let slot = testrig::Slot::lease();
    let (offices, _card) = two_offices(&slot, "holder-02.json", 0x5C00_0051);
    let TwoOffices {
        centre,
        tas,
        sam,
        reader,
        pinfl,
        doc,
        ..
    } = offices;
    // (the office that leaves the renewal, where the card comes back, `recover` there first,
    // an attempt there that dies before its certificates — the card keeps the aborted ones).
    let rounds: [(&Station, &Station, bool, Option<&str>); 6] = [
        (&tas, &tas, false, None),
        (&tas, &tas, true, None),
        (&tas, &tas, false, Some("renew.ca.issue")),
        (&sam, &tas, false, None),
        (&sam, &sam, false, None),
        (&sam, &sam, true, None),
    ];
    let timed_out_here = |st: &Station| {
        audited(st, "renewal.rolled-back")
            .iter()
            .filter(|d| d.contains("stayed open too long"))
            .count()
    };
    for (leaves, back_at, recover_first, failed_attempt) in rounds {
        let before = serials_at_centre(&centre, &pinfl, "active");
        assert_eq!(before.len(), 2);
        let o = renew_at(
            leaves,
            &doc,
            &reader,
            &[("IDSTATION_FAILPOINT", "renew.registry.complete")],
        );
        assert!(!o.status.success(), "{}", text(&o));
        let mut left = serials_at_centre(&centre, &pinfl, "issued");
        left.sort();
        assert_eq!(left.len(), 2);
        let carried = card_signs(leaves, &reader);
        let among = |set: &[String], serial: &str| {
            set.iter()
                .any(|s| s.trim_start_matches('0') == serial.trim_start_matches('0'))
        };
        assert!(among(&left, &carried), "{carried} not in {left:?}");

        renewal_timed_out(&centre, &pinfl);
        let revoked = serials_at_centre(&centre, &pinfl, "revoked");
        assert!(left.iter().all(|s| revoked.contains(s)), "{revoked:?}");
        assert_eq!(serials_at_centre(&centre, &pinfl, "active"), before);
        let rolled_back_before = timed_out_here(leaves);
        if recover_first {
            let rec = leaves.json(&["recover"], &[]).to_string();
            assert!(
                rec.contains("\"outcome\":\"rolled-back\"") && rec.contains("stayed open too long"),
                "{rec}"
            );
        }
        if let Some(point) = failed_attempt {
            let o = renew_at(back_at, &doc, &reader, &[("IDSTATION_FAILPOINT", point)]);
            assert!(!o.status.success(), "{}", text(&o));
            let rec = back_at.json(&["recover"], &[]).to_string();
            assert!(rec.contains("\"outcome\":\"rolled-back\""), "{rec}");
        }

        let o = renew_at(back_at, &doc, &reader, &[]);
        assert!(o.status.success(), "{}", text(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["resumed"], false, "{r}");
        let new = serials_in(&r["certificates"]);
        assert_eq!(serials_at_centre(&centre, &pinfl, "active"), new, "{r}");
        let superseded = serials_in(&r["superseded"]);
        assert_eq!(superseded, before, "{r}");
        assert!(among(&new, &card_signs(back_at, &reader)));
        if std::ptr::eq(leaves, back_at) {
            assert_eq!(timed_out_here(leaves), rolled_back_before + 1);
        } else {
            // The issuing office took the aborted renewal's certificates, revoked, from the
            // centre when the card came back, and renewed it.
            let mirrored = audited(back_at, "certificates.mirrored");
            let last: serde_json::Value =
                serde_json::from_str(mirrored.last().expect("certificates.mirrored")).unwrap();
            let taken = serials_in(&last["revoked"]);
            assert_eq!(taken, left, "{last}");
        }
    }

    // TAS01's `centre sync` brings the certificates SAM01 renewed into its registry (the card
    // has not been back): the document's active certificates here are the centre's; a second
    // sync has nothing to do.
    let sy = tas.json(&["centre", "sync"], &[]);
    let m: Vec<&serde_json::Value> = sy["mirrored"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["reason"] == "renewed")
        .collect();
    assert_eq!(m.len(), 1, "{sy}");
    let active = serials_at_centre(&centre, &pinfl, "active");
    let listed = serials_in(&m[0]["certificates"]);
    assert_eq!(listed, active, "{sy}");
    assert!(
        m[0]["changed_by"]
            .as_str()
            .is_some_and(|b| b.starts_with("sam01-st1/")),
        "{sy}"
    );
    let mut here: Vec<String> = tas
        .certificates_of(&doc)
        .into_iter()
        .filter(|(_, _, status)| status == "active")
        .map(|(serial, _, _)| serial.to_uppercase())
        .collect();
    here.sort();
    assert_eq!(here, active);
    let again = tas.json(&["centre", "sync"], &[]);
    assert_eq!(again["mirrored"], serde_json::json!([]), "{again}");
}
