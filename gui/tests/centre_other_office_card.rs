//! A card another office issued, at the Card services desk of a station enrolled with the
//! national centre (docs/gui.md "Card services workspace"), with real parts: a PostgreSQL
//! cluster, `idcentral serve`, this station (TAS01) enrolled in this process, and a second
//! station (SAM02) enrolled and issuing the card through the `idstation` binary in processes of
//! its own (its own SoftHSM2 token), the card a `vchip` behind pcscd and vpcd. TAS01 has no
//! record of the card: the desk shows the national registry's, suspends and resumes it, records
//! a temporary address at the centre, renews its certificates and unblocks its PIN with the
//! card key the centre releases, and says that a returned card is SAM02's.
//!
//! Needs `idcentral` and `idstation` built in the same target dir as the tests build them
//! (`cargo test --workspace --no-run`); run under `flock /tmp/idstation-pcsc.lock` (it uses a
//! card reader).

mod common;
#[path = "../../station/tests/common/egov_centre.rs"]
mod egov_centre;
#[path = "../../station/tests/common/holder_pin.rs"]
mod holder_pin;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use egov_centre::*;
use gui::GuiOptions;

const CLERK: &str = "centre-clerk-pw-51c2";
const SAM_ADMIN: &str = "sam02-admin-pw-2a7c";
const SAM_CLERK: &str = "sam02-clerk-pw-90d3";
const SAM_HSM_PIN: &str = "sam02-hsm-pin-5b1e";
const PIN: &str = "48291637";

/// The second office's station, run as `idstation` processes.
struct OtherOffice {
    dir: PathBuf,
    data: PathBuf,
}

impl OtherOffice {
    fn run(&self, args: &[&str], secrets: &[&str]) -> Output {
        let mut c = Command::new(testrig::idstation_bin().expect("idstation"));
        c.arg("--data-dir").arg(&self.data).args(args);
        let o = holder_pin::output(c, args, &self.dir, secrets, PIN);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        for s in [SAM_ADMIN, SAM_CLERK, SAM_HSM_PIN, PIN] {
            assert!(!all.contains(s), "secret {s:?} in the output:\n{all}");
        }
        assert!(o.status.success(), "idstation {args:?}:\n{all}");
        o
    }

    /// Station `name` of office `office` enrolled with the centre, with a clerk.
    fn enrol(rig: &EgovRig, office: &str, name: &str) -> OtherOffice {
        let dir = rig.dir.join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        let pin_file = dir.join("hsm-pin");
        std::fs::write(&pin_file, format!("{SAM_HSM_PIN}\n")).expect("pin file");
        std::fs::set_permissions(
            &pin_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
        let st = OtherOffice {
            data: dir.join("data"),
            dir,
        };
        let code = rig.centre.add_station(office, name);
        let url = rig.centre.url();
        st.run(
            &[
                "init",
                "--centre",
                &url,
                "--centre-fingerprint",
                rig.centre.fingerprint(),
                "--enrolment-code",
                "-",
                "--station",
                name,
                "--admin",
                "admin",
                "--hsm-pin-file",
                pin_file.to_str().expect("utf-8"),
            ],
            &[SAM_ADMIN, &code],
        );
        st.run(
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
            &[SAM_ADMIN, SAM_CLERK],
        );
        st
    }

    /// Issue a card to the holder in `holder` on the card in `reader`: its document number.
    fn issue(&self, holder: &Path, reader: &str) -> String {
        let o = self.run(
            &[
                "--json",
                "issue",
                "--holder",
                holder.to_str().expect("utf-8"),
                "--reader",
                reader,
                "--operator",
                "clerk",
            ],
            &[SAM_CLERK],
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("issue's JSON");
        v["document"].as_str().expect("document").to_owned()
    }
}

#[test]
fn a_card_of_another_office_is_suspended_and_resumed_at_the_centre_from_the_desk() {
    let slot = testrig::Slot::lease();
    let rig = EgovRig::start("tas01-gui-other", 5);
    rig.add_clerk(CLERK);
    let sam = OtherOffice::enrol(&rig, "SAM02", "sam02-st1");
    let card = slot.insert(&blank_card_in(&rig.dir, 0x5C00_0152), &[]);
    let holder = holder_file_in(&rig.dir, 52);
    let number = sam.issue(&holder, &slot.reader_name);
    let pinfl: String = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(&holder).expect("holder"),
    )
    .expect("json")["pinfl"]
        .as_str()
        .expect("pinfl")
        .to_owned();
    assert_eq!(rig.document_state(&pinfl, &number), "active");

    let mut opts = GuiOptions::new(rig.data.clone());
    opts.reader = Some(slot.reader_name.clone());
    let mut h = harness(opts, [1280.0, 1100.0]);
    log_in(&mut h, "clerk", CLERK, "Clerk workspace");
    click(&mut h, "Card services");
    let shown = format!("Document number {number}");
    wait_for(&mut h, "the card read at the centre", SERVICE_SHORT, |h| {
        has_label(h, &shown) && !h.state().services.busy()
    });
    assert!(has_label_containing(
        &h,
        "Issued by office SAM02. This station has no record of the card"
    ));
    assert!(has_label_containing(
        &h,
        "Only at office SAM02, which issued the card"
    ));
    // This station's registry still knows nothing of the card or its holder.
    {
        let reg =
            registry::Registry::open_read_only(rig.data.join("registry.sqlite")).expect("registry");
        assert!(reg.holder_by_pinfl(&pinfl).expect("holder").is_none());
    }

    open(&mut h, "Suspend");
    click(&mut h, "Confirm");
    wait_done(&mut h, &format!("Document {number} suspended."));
    assert_eq!(rig.document_state(&pinfl, &number), "suspended");
    // Read again from the centre: suspended, with until when it may be resumed.
    wait_for(&mut h, "the suspension on screen", SERVICE_SHORT, |h| {
        has_label_containing(h, "it can be resumed until") && !h.state().services.busy()
    });

    open(&mut h, "Resume");
    click(&mut h, "I have checked the holder's identity in person");
    click(&mut h, "Confirm");
    wait_done(&mut h, &format!("Document {number} resumed"));
    assert_eq!(rig.document_state(&pinfl, &number), "active");

    // A temporary address for the holder, recorded in the national registry by this station.
    add_temporary_address(&mut h, "Bogʻishamol koʻchasi", "9");
    let v = rig.show(&pinfl);
    assert!(
        v["addresses"]
            .as_array()
            .expect("addresses")
            .iter()
            .any(|a| a["street"] == "Bogʻishamol koʻchasi"
                && a["kind"] == "temporary"
                && a["registered_until"] == "2030-12-31"
                && a["station"] == "tas01-gui-other"),
        "{v}"
    );

    // The card is under the management key the centre derives: its certificates are renewed
    // here (the centre's e-Signature CA, the old ones superseded there) and its PIN unblocked,
    // with the key the centre releases for it.
    let before = rig.show(&pinfl);
    open(&mut h, "Renew certificates");
    holder_pin(&mut h, &["Holder PIN"], PIN);
    wait_done(&mut h, "Certificates renewed.");
    let after = rig.show(&pinfl);
    let active = |v: &serde_json::Value| -> Vec<String> {
        v["certificates"]
            .as_array()
            .expect("certificates")
            .iter()
            .filter(|c| c["state"] == "active")
            .map(|c| c["serial"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(active(&after).len(), 2, "{after}");
    assert!(
        active(&after).iter().all(|s| !active(&before).contains(s)),
        "two new active certificates: {before} {after}"
    );
    open(&mut h, "Unblock PIN");
    click(&mut h, "I have checked the holder's identity in person");
    click(&mut h, "Confirm");
    h.step();
    h.step();
    holder_pin(&mut h, &["Holder PIN", "Holder PIN again"], "55667788");
    wait_done(&mut h, "PIN unblocked");
    let o = Command::new("yubico-piv-tool")
        .args([
            "-r",
            &slot.reader_name,
            "-a",
            "verify-pin",
            "-P",
            "55667788",
        ])
        .output()
        .expect("yubico-piv-tool");
    assert!(o.status.success(), "the card takes the new PIN: {o:?}");

    // SAM02 is cut off with its keys revoked: the centre flags its cards for replacement, and
    // the card read again here says so, with the centre's reason.
    rig.centre.ok(&[
        "station",
        "disable",
        "--station",
        "sam02-st1",
        "--reason",
        "keyCompromise",
        "--operator",
        "admin",
    ]);
    click(&mut h, "Read the card");
    wait_for(&mut h, "the replacement flag", SERVICE_SHORT, |h| {
        has_label_containing(
            h,
            "To be replaced: the national centre flagged this card on",
        ) && !h.state().services.busy()
    });
    assert!(has_label_containing(
        &h,
        "The centre's reason: the Document Signer of station sam02-st1 was revoked (keyCompromise)"
    ));
    // Replaced here through the centre: "Replace the card (Issuance)" looks the document up
    // under Issuance, where the national registry's record offers the recall.
    click(&mut h, "Replace the card (Issuance)");
    h.step();
    h.step();
    assert_eq!(h.state().clerk_tab, gui::app::ClerkTab::Issuance);
    wait_for(&mut h, "the document looked up", SERVICE_SHORT, |h| {
        has_label(h, "Replace: recalled by the centre") && !h.state().clerk.lookup.busy()
    });
    assert!(has_label_containing(
        &h,
        &format!("Document {number} was not issued at this station.")
    ));
    assert!(has_label(&h, "Replace: damaged"));
    click(&mut h, "Replace: recalled by the centre");
    assert!(has_label_containing(
        &h,
        &format!("New card replacing document {number}")
    ));
    // The form holds the holder's identity as the national registry has it; the clerk types
    // the rest from the holder's documents.
    let rec: station::holder::HolderRecord =
        serde_json::from_str(&std::fs::read_to_string(&holder).expect("holder")).expect("json");
    assert_eq!(
        (
            h.state().clerk.form.pinfl.as_str(),
            h.state().clerk.form.surname.as_str(),
            h.state().clerk.form.date_of_birth.as_str(),
            h.state().clerk.form.citizenship.as_str()
        ),
        (
            pinfl.as_str(),
            rec.surname.as_str(),
            gui::i18n::date(&rec.date_of_birth).as_str(),
            "UZB"
        )
    );
    let a = &rec.address;
    click(&mut h, if rec.sex == "F" { "Female" } else { "Male" });
    h.step();
    for (label, v) in [
        ("Region", a.region.clone()),
        ("District", a.district.clone()),
        ("Street", a.street.clone()),
        ("House", a.house.clone()),
        ("Apartment", a.apartment.clone().unwrap_or_default()),
        ("Registered on", gui::i18n::date(&a.registered_on)),
        ("Place of birth", rec.place_of_birth.clone()),
        ("Photo file", rec.photo.clone().expect("a photo")),
    ] {
        type_into(&mut h, label, &v);
    }
    click(&mut h, "Load photo");
    wait_for(&mut h, "photo loaded", SERVICE_SHORT, |h| {
        has_label_containing(h, "Photo loaded: ")
    });
    assert_eq!(h.state().clerk.form.place_of_birth, rec.place_of_birth);
    card.pull();
    let _blank = slot.insert(&blank_card_in(&rig.dir, 0x5C00_0153), &[]);
    let letter = rig.dir.join("replacement-letter.pdf");
    type_into(
        &mut h,
        "Save the PIN letter to",
        &letter.display().to_string(),
    );
    click(&mut h, "Issue the replacement card");
    h.step();
    type_into(&mut h, "Holder PIN", PIN);
    type_into(&mut h, "Holder PIN again", PIN);
    click(&mut h, "Start issuance");
    wait_for(&mut h, "result screen", SERVICE_LONG, |h| {
        has_label(h, "Card issued") || has_label(h, "The card was not issued")
    });
    assert!(
        has_label(&h, "Card issued"),
        "issued: {}",
        h.state().clerk.view_text()
    );
    // At the centre the old card is revoked as replaced and linked to the new one, which is
    // TAS01's and active; TAS01's journal has the replacement completed.
    let v = rig.show(&pinfl);
    let docs = v["documents"].as_array().expect("documents");
    let old = docs
        .iter()
        .find(|d| d["document"] == number.as_str())
        .expect("old");
    let new = old["replaced_by"].as_str().expect("linked").to_owned();
    assert_eq!(old["state"], "revoked", "{v}");
    let fresh = docs
        .iter()
        .find(|d| d["document"] == new.as_str())
        .expect("new");
    assert_eq!(
        (&fresh["state"], &fresh["office"]),
        (&"active".into(), &"TAS01".into()),
        "{v}"
    );
    let journal: Vec<(String, String)> =
        registry::Registry::open_read_only(rig.data.join("registry.sqlite"))
            .expect("registry")
            .centre_replacements_of(&number)
            .expect("journal")
            .into_iter()
            .map(|r| (r.reason, r.state))
            .collect();
    assert_eq!(journal, vec![("recalled".into(), "completed".into())]);

    // Each step is recorded at this station, which mirrors nothing of the document.
    let actions: Vec<String> = registry::Registry::open_read_only(rig.data.join("registry.sqlite"))
        .expect("registry")
        .audit_events(1, u64::MAX)
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "holder.read",
        "document.suspended",
        "document.resumed",
        "address.set",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}
