//! The clerk's Card services workspace against real issued cards: `vchip` cards behind pcscd
//! and vpcd, SoftHSM2, the registry file. Each card is issued through the station library
//! first (the issuance GUI has tests of its own, issuance.rs); then the clerk inserts it,
//! the workspace reads and matches it and the clerk runs one service, and the outcome is
//! checked on screen and, independently of the GUI, in the registry (and with
//! yubico-piv-tool on the card). Run under `flock /tmp/idstation-pcsc.lock`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use egui_kittest::kittest::Queryable;
use zeroize::Zeroizing;

const PIN: &str = "48291637";
const NEW_PIN: &str = "61730294";
const WRONG_PIN: &str = "00000000";
const SHORT: Duration = SERVICE_SHORT;

fn blank_card(serial: u32) -> PathBuf {
    blank_card_in(&rig().dir, serial)
}

fn holder_file(n: u32) -> PathBuf {
    holder_file_in(&rig().dir, n)
}

fn clerk_session(st: &mut station::Station) -> station::operators::Session {
    st.authorize(
        "clerk",
        &Zeroizing::new(CLERK_PASSWORD.into()),
        "issue cards",
        &[registry::Role::Clerk],
    )
    .expect("clerk log-in")
}

/// Issue a card for holder `n` on the card in `reader` (library call); its document number.
fn issue(reader: &str, n: u32) -> String {
    let mut st = station::Station::open(&rig().data).expect("open");
    let session = clerk_session(&mut st);
    let policy = station::interactive::holder_policy(st.document_profile().expect("profile"));
    let holder = station::holder::load(&holder_file(n), &policy).expect("valid holder");
    let input = station::issuance::IssueInput {
        holder,
        reader: Some(reader.to_owned()),
        pin: Zeroizing::new(PIN.into()),
        pin_letter: rig().dir.join(format!("svc-letter-{n}.pdf")),
        update_holder: false,
    };
    let r = station::issuance::issue(&mut st, &session, &input, &mut |_| {}).expect("issue");
    r.document
}

fn registry() -> registry::Registry {
    registry::Registry::open_read_only(rig().data.join("registry.sqlite")).expect("registry")
}

fn document_status(number: &str) -> String {
    registry()
        .document(number.parse().expect("number"))
        .expect("read")
        .expect("document")
        .status
        .as_str()
        .to_owned()
}

/// (serial, status, reason) of document `number`'s certificates.
fn certificates(number: &str) -> Vec<(String, String, Option<String>)> {
    let reg = registry();
    let job = reg
        .job_of_document(number.parse().expect("number"))
        .expect("read")
        .expect("job");
    reg.certificates_of_job(job.id)
        .expect("certificates")
        .into_iter()
        .map(|c| {
            (
                c.data.serial,
                c.status.as_str().to_owned(),
                c.revocation_reason,
            )
        })
        .collect()
}

fn yubico(reader: &str, args: &[&str]) -> Output {
    Command::new("yubico-piv-tool")
        .args(["-r", reader])
        .args(args)
        .output()
        .expect("run yubico-piv-tool")
}

/// Log in as clerk, open Card services and wait until the card of document `number` is read.
fn open_services(reader: &str, number: &str) -> H {
    let mut h = harness(options(Some(reader), true), [1280.0, 1100.0]);
    log_in(&mut h, "clerk", CLERK_PASSWORD, "Clerk workspace");
    click(&mut h, "Card services");
    let shown = format!("Document number {number}");
    wait_for(&mut h, "the card read and matched", SHORT, |h| {
        has_label(h, &shown) && !h.state().services.busy()
    });
    h
}

#[test]
fn renewal_ends_with_the_new_certificates_on_screen_and_in_the_registry() {
    let slot = testrig::Slot::lease();
    let card = slot.insert(&blank_card(0x5C00_0001), &[]);
    let number = issue(&slot.reader_name, 21);
    let old: Vec<String> = certificates(&number).into_iter().map(|c| c.0).collect();
    let mut h = open_services(&slot.reader_name, &number);
    assert!(has_label(&h, "Toʻxtayeva Gʻulnora Shavkat qizi"));
    assert!(has_label(&h, "active"));
    for s in &old {
        assert!(has_label(&h, s), "old certificate {s} shown");
    }
    open(&mut h, "Renew certificates");
    assert!(has_label(&h, "For the holder: type the PIN of your card."));
    holder_pin(&mut h, &["Holder PIN"], PIN);
    wait_done(&mut h, "Certificates renewed.");
    let certs = certificates(&number);
    let new: Vec<&String> = certs
        .iter()
        .filter(|c| c.1 == "active")
        .map(|c| &c.0)
        .collect();
    assert_eq!(new.len(), 2, "{certs:?}");
    for s in &new {
        assert!(!old.contains(s), "{s} is new");
        assert!(
            has_label(&h, s),
            "new certificate {s} shown after the refresh"
        );
    }
    for s in &old {
        let c = certs.iter().find(|c| &c.0 == s).expect("old certificate");
        assert_eq!(
            (c.1.as_str(), c.2.as_deref()),
            ("revoked", Some("superseded"))
        );
    }
    assert!(has_label(&h, "revoked (Replaced by a new certificate)"));
    card.pull();
}

#[test]
fn a_pin_blocked_by_three_wrong_tries_is_unblocked_and_the_new_pin_works() {
    let slot = testrig::Slot::lease();
    let card = slot.insert(&blank_card(0x5C00_0002), &[]);
    let r = slot.reader_name.clone();
    let number = issue(&r, 22);
    for _ in 0..3 {
        assert!(!yubico(&r, &["-a", "verify-pin", "-P", WRONG_PIN])
            .status
            .success());
    }
    assert!(!yubico(&r, &["-a", "verify-pin", "-P", PIN])
        .status
        .success());
    let mut h = open_services(&r, &number);
    assert!(has_label(&h, "blocked"), "the PIN shows blocked");
    assert!(has_label(
        &h,
        "Not possible while the PIN is blocked: unblock the PIN first."
    ));
    open(&mut h, "Unblock PIN");
    click(&mut h, "Confirm");
    h.step();
    assert!(
        has_label(
            &h,
            "Check the holder's identity in person and tick the box first."
        ),
        "the identity check is required"
    );
    click(&mut h, "I have checked the holder's identity in person");
    click(&mut h, "Confirm");
    h.step();
    h.step();
    assert!(has_label(
        &h,
        "For the holder: choose a new PIN for your card and type it twice."
    ));
    holder_pin(&mut h, &["Holder PIN", "Holder PIN again"], NEW_PIN);
    wait_done(&mut h, "PIN unblocked");
    assert!(has_label_containing(&h, "tries left"), "the PIN is usable");
    // Independent of the GUI: the card takes the new PIN.
    let o = yubico(&r, &["-a", "verify-pin", "-P", NEW_PIN]);
    assert!(o.status.success(), "{o:?}");
    let reg = registry();
    let events = reg.audit_events(0, u64::MAX).expect("audit");
    assert!(events.iter().any(|e| e.action == "card.unblocked"));
    card.pull();
}

#[test]
fn suspend_then_resume_with_the_holder_in_person() {
    let slot = testrig::Slot::lease();
    let card = slot.insert(&blank_card(0x5C00_0003), &[]);
    let number = issue(&slot.reader_name, 23);
    let mut h = open_services(&slot.reader_name, &number);
    open(&mut h, "Suspend");
    click(&mut h, "Confirm");
    wait_done(&mut h, &format!("Document {number} suspended."));
    assert_eq!(document_status(&number), "suspended");
    assert!(certificates(&number)
        .iter()
        .filter(|c| c.1 == "revoked")
        .all(|c| c.2.as_deref() == Some("certificateHold")));
    assert!(has_label(&h, "suspended"));
    assert!(has_label(&h, "on hold (suspended)"));
    assert!(has_label_containing(&h, "it can be resumed until"));
    assert!(
        has_label(&h, "Not possible: the document is suspended."),
        "renewal is not offered for a suspended document"
    );
    open(&mut h, "Resume");
    click(&mut h, "I have checked the holder's identity in person");
    click(&mut h, "Confirm");
    wait_done(&mut h, &format!("Document {number} resumed"));
    assert_eq!(document_status(&number), "active");
    assert_eq!(
        certificates(&number)
            .iter()
            .filter(|c| c.1 == "active")
            .count(),
        2
    );
    assert!(!has_label(&h, "on hold (suspended)"));
    card.pull();
}

#[test]
fn a_card_of_a_lost_document_is_recorded_as_returned() {
    let slot = testrig::Slot::lease();
    let card = slot.insert(&blank_card(0x5C00_0004), &[]);
    let number = issue(&slot.reader_name, 24);
    {
        let mut st = station::Station::open(&rig().data).expect("open");
        let session = clerk_session(&mut st);
        station::records::revoke(&mut st, &session, &number, "lost").expect("declare lost");
    }
    let mut h = open_services(&slot.reader_name, &number);
    assert!(has_label(&h, "lost"));
    open(&mut h, "Card returned");
    click(&mut h, "Confirm");
    wait_done(&mut h, "recorded as returned and destroyed");
    let reg = registry();
    let c = reg.card("5C000004").expect("read").expect("card");
    let ret = reg.card_return(c.id).expect("read").expect("returned");
    assert!(ret.destroyed);
    assert!(has_label_containing(&h, "Already recorded as returned on"));
    card.pull();
}

#[test]
fn a_temporary_address_is_set_then_ended() {
    let slot = testrig::Slot::lease();
    let card = slot.insert(&blank_card(0x5C00_0005), &[]);
    let number = issue(&slot.reader_name, 25);
    let mut h = open_services(&slot.reader_name, &number);
    assert!(has_label(
        &h,
        "The holder has no current temporary registration."
    ));
    open(&mut h, "New address");
    click(&mut h, "Temporary");
    pick(&mut h, "Region", "Toshkent shahri");
    let region = match &h.state().services.dialog {
        Some(gui::services::dialogs::Dialog::AddressSet { draft, .. }) => draft.region.clone(),
        _ => panic!("the address dialog is open"),
    };
    assert_eq!(region, "Toshkent shahri");
    // Escape with a list open closes the list, not the dialog.
    h.get_by_label("District").focus();
    h.step();
    h.key_press(egui::Key::Space);
    h.step();
    h.step();
    assert!(egui::Popup::is_any_open(&h.ctx), "the district list opens");
    h.key_press(egui::Key::Escape);
    h.step();
    h.step();
    assert!(!egui::Popup::is_any_open(&h.ctx), "Escape closes the list");
    assert!(
        h.state().services.dialog.is_some(),
        "and leaves the dialog open"
    );
    pick(&mut h, "District", "Yunusobod tumani");
    match &h.state().services.dialog {
        Some(gui::services::dialogs::Dialog::AddressSet { draft, .. }) => {
            assert_eq!(draft.district, "Yunusobod tumani")
        }
        _ => panic!("the address dialog is open"),
    }
    type_into(&mut h, "Street", "Bogʻishamol koʻchasi");
    type_into(&mut h, "House", "7");
    type_into(&mut h, "Registered until", "31122030");
    click(&mut h, "Confirm");
    wait_done(&mut h, "The new address is recorded.");
    assert!(has_label_containing(&h, "Bogʻishamol koʻchasi"));
    assert!(has_label(&h, "31.12.2030"));
    open(&mut h, "End temporary address");
    click(&mut h, "Confirm");
    wait_done(&mut h, "The temporary registration is ended.");
    assert!(has_label_containing(&h, "ended "));
    let reg = registry();
    let pinfl = h
        .state()
        .services
        .identity
        .as_ref()
        .expect("identity")
        .holder
        .pinfl
        .clone();
    let holder = reg.holder_by_pinfl(&pinfl).expect("read").expect("holder");
    let ends = reg.address_ends(holder.id).expect("ends");
    assert_eq!(ends.len(), 1, "one temporary registration ended");
    assert!(has_label(
        &h,
        "The holder has no current temporary registration."
    ));
    card.pull();
}

/// The workspace with a card read, at 1024×768 in English and Russian: recorded as images,
/// and no text or control reaches past the window's right or bottom edge.
#[test]
fn the_card_services_workspace_fits_1024x768_in_two_languages() {
    let slot = testrig::Slot::lease();
    let card = slot.insert(&blank_card(0x5C00_0006), &[]);
    let number = issue(&slot.reader_name, 26);
    let mut results = egui_kittest::SnapshotResults::new();
    for lang in [gui::i18n::Lang::En, gui::i18n::Lang::Ru] {
        let tr = |id: &str| gui::i18n::tr(lang, id);
        let mut h = harness(options(Some(&slot.reader_name), true), [1024.0, 768.0]);
        click(&mut h, lang.native_name());
        h.step();
        type_into(&mut h, &tr("login-operator"), L10N_CLERK);
        type_into(&mut h, &tr("login-password"), CLERK_PASSWORD);
        click(&mut h, &tr("login-button"));
        let heading = tr("workspace-clerk");
        wait_for(&mut h, &heading, SHORT, |h| has_label(h, &heading));
        click(&mut h, &tr("tab-services"));
        let shown = format!("{} {number}", tr("lookup-document"));
        wait_for(&mut h, "card read", SHORT, |h| {
            has_label(h, &shown) && !h.state().services.busy()
        });
        for _ in 0..3 {
            h.step();
        }
        assert!(has_label(&h, &tr("svc-renew")));
        let over = labels_past(&h, 1024.0, 768.0, false);
        assert!(
            over.is_empty(),
            "{}: cut off at 1024 px: {over:?}",
            lang.tag()
        );
        settle(&mut h);
        let opts = egui_kittest::SnapshotOptions::new().max_failed_pixels(16usize);
        results.add(h.try_snapshot_options(format!("services-1024-{}", lang.tag()), &opts));
    }
    card.pull();
}
