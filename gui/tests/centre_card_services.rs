//! The Card services workspace of a station enrolled with the national centre (docs/gui.md
//! "Card services workspace"), with real parts: a PostgreSQL cluster, `idcentral serve`, a
//! station enrolled in this process (its SoftHSM2 token), and a `vchip` card issued through the
//! centre behind pcscd and vpcd. The clerk suspends and resumes the card, gives the holder a
//! temporary address and renews the certificates from the workspace, as at a standalone
//! station; after each the centre's own record (`idcentral show`) and the station's registry
//! agree with the screen. Every wait polls with a deadline.
//!
//! Needs `idcentral` built in the same target dir as the tests build it (`cargo test -p central
//! --no-run`); run under `flock /tmp/idstation-pcsc.lock` (it uses a card reader).

mod common;
#[path = "../../station/tests/common/egov_centre.rs"]
mod egov_centre;

use std::time::Duration;

use common::*;
use egov_centre::*;
use gui::GuiOptions;
use zeroize::Zeroizing;

const CLERK: &str = "centre-clerk-pw-51c2";
const PIN: &str = "48291637";

/// Document `number`'s state at the centre and its active certificates' serials there.
fn centre_document(rig: &EgovRig, pinfl: &str, number: &str) -> (String, Vec<String>) {
    let v = rig.show(pinfl);
    let active = v["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .filter(|c| c["state"] == "active")
        .map(|c| c["serial"].as_str().expect("serial").to_owned())
        .collect();
    (document_state_in(&v, number), active)
}

#[test]
fn a_clerk_at_an_enrolled_station_serves_a_card_through_the_centre() {
    let slot = testrig::Slot::lease();
    let rig = EgovRig::start("tas01-gui-svc", 5);
    rig.add_clerk(CLERK);
    let mut st = station::Station::open(&rig.data).expect("open the station");
    // A card issued through the centre (the station library, as the issuance GUI calls it).
    let card = slot.insert(&blank_card_in(&rig.dir, 0x5C00_0141), &[]);
    let clerk = st
        .authorize(
            "clerk",
            &Zeroizing::new(CLERK.into()),
            "issue cards",
            &[registry::Role::Clerk],
        )
        .expect("clerk log-in");
    let policy = station::interactive::holder_policy(st.document_profile().expect("profile"));
    let holder = station::holder::load(&holder_file_in(&rig.dir, 41), &policy).expect("holder");
    let pinfl = holder.record.pinfl.clone();
    let input = station::issuance::IssueInput {
        holder,
        reader: Some(slot.reader_name.clone()),
        pin: Zeroizing::new(PIN.into()),
        pin_letter: rig.dir.join("letter-41.pdf"),
        update_holder: false,
    };
    let number = station::issuance::issue(&mut st, &clerk, &input, &mut |_| {})
        .expect("issue through the centre")
        .document;
    drop(st);
    let (state, issued) = centre_document(&rig, &pinfl, &number);
    assert_eq!((state.as_str(), issued.len()), ("active", 2));

    // The automatic sync runs at the log-in, and next after an hour: within this test only
    // when asked.
    let config = rig.data.join("station.toml");
    let toml = std::fs::read_to_string(&config).expect("station.toml");
    assert!(toml.contains("[centre]\n"), "{toml}");
    let toml = toml.replace("[centre]\n", "[centre]\nsync_every_seconds = 3600\n");
    std::fs::write(&config, toml).expect("write station.toml");

    let mut opts = GuiOptions::new(rig.data.clone());
    opts.reader = Some(slot.reader_name.clone());
    let mut h = harness(opts, [1280.0, 1100.0]);
    log_in(&mut h, "clerk", CLERK, "Clerk workspace");
    wait_for(&mut h, "the sync at the log-in", SERVICE_SHORT, |h| {
        has_label_containing(h, "Registry brought up to date with the national centre at")
    });
    assert!(has_label(
        &h,
        "No document of this station had changed elsewhere."
    ));
    assert!(has_label_containing(&h, "Next sync at"));
    click(&mut h, "Card services");
    let shown = format!("Document number {number}");
    wait_for(&mut h, "the card read and matched", SERVICE_SHORT, |h| {
        has_label(h, &shown) && !h.state().services.busy()
    });
    // The services of an active card all apply (each goes through the centre); only resuming
    // it, taking back a card still in use and ending a temporary address the holder lacks do
    // not.
    {
        use station::services::identify::{Blocker, Service};
        let id = h.state().services.identity.as_ref().expect("identity");
        for s in Service::ALL {
            let refused = &id.offer(s).expect("offered").refused;
            match s {
                Service::CardReturned => {
                    assert!(matches!(refused, Some(Blocker::DocumentInUse(_))))
                }
                Service::AddressEnd => assert_eq!(refused, &Some(Blocker::NoTemporaryAddress)),
                Service::Resume => {
                    assert_eq!(refused, &Some(Blocker::DocumentStatus("active".into())))
                }
                _ => assert_eq!(refused, &None, "{s:?}"),
            }
        }
    }

    open(&mut h, "Suspend");
    click(&mut h, "Confirm");
    wait_done(&mut h, &format!("Document {number} suspended."));
    assert!(has_label(&h, "on hold (suspended)"));
    assert_eq!(centre_document(&rig, &pinfl, &number).0, "suspended");

    open(&mut h, "Resume");
    click(&mut h, "I have checked the holder's identity in person");
    click(&mut h, "Confirm");
    wait_done(&mut h, &format!("Document {number} resumed"));
    let (state, active) = centre_document(&rig, &pinfl, &number);
    assert_eq!((state.as_str(), &active), ("active", &issued));

    add_temporary_address(&mut h, "Bogʻishamol koʻchasi", "7");
    let v = rig.show(&pinfl);
    assert!(
        v["addresses"]
            .as_array()
            .expect("addresses")
            .iter()
            .any(|a| {
                a["street"] == "Bogʻishamol koʻchasi" && a["station"] == "tas01-gui-svc"
            }),
        "{v}"
    );

    open(&mut h, "Renew certificates");
    holder_pin(&mut h, &["Holder PIN"], PIN);
    wait_done(&mut h, "Certificates renewed.");
    let (state, renewed) = centre_document(&rig, &pinfl, &number);
    assert_eq!((state.as_str(), renewed.len()), ("active", 2));
    for s in &renewed {
        assert!(!issued.contains(s), "{s} is new");
        assert!(
            has_label(&h, &s.to_lowercase()),
            "{s} shown after the renewal"
        );
    }

    // The centre withdraws the CSCA key behind this station's Document Signer: the card is
    // flagged. Read again, it says so, and "Replace the card" opens Issuance with the holder
    // looked up, the recall among the replacement reasons.
    rig.centre.rotate_csca("1");
    let done = rig.centre.withdraw_csca("csca-1", "2");
    assert!(done.contains("1 card whose EF.SOD"), "{done}");
    click(&mut h, "Read the card");
    wait_for(&mut h, "the replacement flag", SERVICE_SHORT, |h| {
        has_label_containing(
            h,
            "To be replaced: the national centre flagged this card on",
        ) && !h.state().services.busy()
    });
    click(&mut h, "Replace the card (Issuance)");
    h.step();
    h.step();
    assert_eq!(h.state().clerk_tab, gui::app::ClerkTab::Issuance);
    wait_for(&mut h, "the holder looked up", SERVICE_SHORT, |h| {
        has_label(h, "Replace: recalled by the centre") && !h.state().clerk.lookup.busy()
    });
    assert_eq!(h.state().clerk.lookup.pinfl, pinfl);
    // Back on the workspace, the card read again and its answer waited for: the worker does one
    // thing at a time, so what the Issuance tab asked of it is done before this read is
    // answered (the reader panel's poller, on its own thread, is met by yubico-piv-tool's
    // retries below).
    click(&mut h, "Card services");
    h.step();
    h.state_mut().services.identity = None;
    click(&mut h, "Read the card");
    wait_for(&mut h, "the card read again", SERVICE_SHORT, |h| {
        h.state().services.identity.is_some() && !h.state().services.busy()
    });

    // Another office declares the document lost at the centre (this station's registry still
    // has it active): the renewal offered here is refused by the centre before the card's keys
    // are replaced — the card still signs with the key of its certificate (yubico-piv-tool).
    {
        let st = station::Station::open_read_only(&rig.data).expect("open the station");
        let actor = registry::Actor {
            operator: "clerk2".into(),
            role: "clerk".into(),
            station: "sam01-st1".into(),
        };
        station::ra::revoke_at_centre(&st, &actor, number.parse().expect("number"), "lost")
            .expect("lost at the centre");
    }
    assert_eq!(centre_document(&rig, &pinfl, &number).0, "lost");
    let reader = slot.reader_name.clone();
    let test_signature = || {
        let cert = rig.dir.join("9a.pem");
        // The reader panel's poller (its own thread, every 400 ms) looks at a card again after
        // each action, and may hold the reader for a moment: a connection refused then is
        // tried again, a few times.
        let piv = |args: &[&str]| {
            let run = || {
                std::process::Command::new("yubico-piv-tool")
                    .args(["-r", &reader])
                    .args(args)
                    .output()
                    .expect("run yubico-piv-tool")
            };
            let mut out = run();
            for _ in 0..20 {
                if out.status.success()
                    || !String::from_utf8_lossy(&out.stderr).contains("Failed to connect")
                {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
                out = run();
            }
            out
        };
        let read = piv(&[
            "-a",
            "read-certificate",
            "-s",
            "9a",
            "-o",
            cert.to_str().unwrap(),
        ]);
        assert!(read.status.success(), "{read:?}");
        piv(&[
            "-a",
            "verify-pin",
            "-P",
            PIN,
            "-a",
            "test-signature",
            "-s",
            "9a",
            "-i",
            cert.to_str().unwrap(),
        ])
    };
    // (yubico-piv-tool takes the reader: the workspace lets it go between actions.)
    let before = test_signature();
    assert!(before.status.success(), "{before:?}");
    open(&mut h, "Renew certificates");
    holder_pin(&mut h, &["Holder PIN"], PIN);
    let refused = gui::i18n::tr(gui::i18n::Lang::En, "centre-refused-document-not-active");
    wait_for(&mut h, "the centre's refusal", SERVICE_LONG, |h| {
        has_label(h, &refused) && !h.state().services.busy()
    });
    let after = test_signature();
    assert!(
        after.status.success(),
        "the card's 9A key no longer matches its certificate: {after:?}"
    );
    // Read again, the card shows this station's record and the centre's word beside it, and
    // the services that need an active document go by the centre's state: not now.
    click(&mut h, "Read the card");
    wait_for(&mut h, "the centre's state", SERVICE_SHORT, |h| {
        has_label_containing(h, "The national registry says this document is lost")
            && !h.state().services.busy()
    });
    assert!(has_label_containing(
        &h,
        "Not possible: the document is lost."
    ));
    // The registry brought up to date: the loss at the centre is this station's record too,
    // and read again the card no longer shows the two apart.
    let registry_state = || {
        registry::Registry::open_read_only(rig.data.join("registry.sqlite"))
            .expect("registry")
            .document(number.parse().expect("number"))
            .expect("read")
            .expect("document")
            .status
            .as_str()
            .to_owned()
    };
    assert_eq!(registry_state(), "active");
    click(&mut h, "Sync now");
    wait_for(&mut h, "the sync asked for", SERVICE_SHORT, |h| {
        has_label(h, "One document changed at the centre was brought here.")
            && !h.state().centre_sync.pending()
    });
    assert_eq!(registry_state(), "lost");
    let report = h
        .state()
        .centre_sync
        .last_report()
        .expect("a report")
        .clone();
    assert_eq!(
        report
            .mirrored
            .iter()
            .map(|m| (m.document.as_str(), m.was.as_str(), m.now.as_str()))
            .collect::<Vec<_>>(),
        vec![(number.as_str(), "active", "lost")]
    );
    click(&mut h, "What changed");
    h.step();
    assert!(has_label_containing(
        &h,
        &format!("Document {number}: active here, lost at the centre since")
    ));
    click(&mut h, "Read the card");
    wait_for(&mut h, "the card read again", SERVICE_SHORT, |h| {
        has_label_containing(h, "Not possible: the document is lost.") && !h.state().services.busy()
    });
    assert!(!has_label_containing(
        &h,
        "The national registry says this document is lost"
    ));
    card.pull();
    wait_for(&mut h, "the screen cleared", Duration::from_secs(30), |h| {
        !has_label(h, &shown)
    });
}
