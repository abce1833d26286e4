//! An enrolled station renews its Document Signer through the centre (docs/centre.md "Document
//! Signer renewal"): `idstation centre renew-document-signer` makes `ds-2` in the station's
//! HSM and the centre's CSCA certifies it; a run killed after the centre answered leaves `ds-1`
//! active and the next run finishes with the same certificate (nothing issued twice); after the
//! centre's CSCA rollover the next renewal learns `csca-2` through its link certificate. Cards
//! issued in between (vpcd + vchip, read back through PACE) carry the Document Signer active
//! then, and openssl verifies each EF.SOD with the CSCA as the only anchor; the centre records
//! which Document Signer signed each card, and withdrawing `csca-1` flags exactly the cards its
//! Document Signers signed for replacement. A station disabled
//! for cause has all three Document Signers revoked. A real centre (testrig::centre:
//! PostgreSQL, SoftHSM2, `idcentral serve`). Needs `cargo test -p central --no-run` in the same
//! target dir.

use std::path::{Path, PathBuf};

use testrig::centre::Centre;

#[path = "common/enrolled.rs"]
mod enrolled;
use enrolled::*;

fn ok(o: std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "idstation failed:\n{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", text(&o)))
}

const RENEW: [&str; 5] = [
    "--json",
    "centre",
    "renew-document-signer",
    "--operator",
    "admin",
];

/// Issue `holder` on a fresh card, read EF.SOD back through PACE with the MRZ `show` gives,
/// write it (DER ContentInfo) into the station's directory; the document number and that file.
fn issue_and_read_sod(
    st: &Station,
    slot: &testrig::Slot,
    holder: &str,
    serial: u32,
) -> (String, PathBuf) {
    let card = slot.insert(&st.blank_card(serial), &[]);
    let issued = ok(st.issue(holder, &slot.reader_name, &[]));
    let doc = issued["document"].as_str().expect("document").to_owned();
    let sod = st.read_sod(&slot.reader_name, &doc);
    card.pull();
    (doc, sod)
}

/// The Document Signer serial the centre recorded for `doc` (`idcentral show --document`).
fn centre_document_signer(centre: &Centre, doc: &str) -> serde_json::Value {
    let shown = centre.ok(&["--json", "show", "--document", doc, "--operator", "admin"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let record = shown["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["document"] == doc)
        .unwrap_or_else(|| panic!("{shown}"));
    record["document_signer"].clone()
}

/// The serial (hex) of the station's certificate `label` in `DIR/ca/`.
fn serial_of(st: &Station, label: &str) -> String {
    ca::CertInfo::parse(&der_of(&ca_pem(st, label)))
        .unwrap()
        .serial_hex
}

/// The certificate (DER) in the PEM file `path`.
fn der_of(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let (_, der) = der::pem::decode_vec(text.as_bytes()).unwrap();
    der
}

/// The Document Signer keys of the station's registry: (label, state).
fn document_signers(st: &Station) -> Vec<(String, String)> {
    let reg = st.registry();
    let keys = reg.ca_keys("document-signer").unwrap();
    keys.into_iter()
        .map(|k| (k.label, k.state.as_str().to_owned()))
        .collect()
}

fn pair(label: &str, state: &str) -> (String, String) {
    (label.to_owned(), state.to_owned())
}

/// The file of key `label` in the station's `ca/` folder.
fn ca_pem(st: &Station, label: &str) -> PathBuf {
    st.data.join("ca").join(format!("{label}.pem"))
}

#[test]
fn an_enrolled_station_renews_its_document_signer_through_the_centre_and_keeps_issuing() {
    let mut centre = Centre::start();
    centre.serve();
    let st = Station::enrol(&centre, "TAS01", "tas01-st1");
    let slot = testrig::Slot::lease();
    let csca1 = st.ca_file("csca");

    let (doc1, sod1) = issue_and_read_sod(&st, &slot, "holder-01.json", 0x5F00_0001);
    let signer = cms_verify(&sod1, &csca1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(der_of(&signer), der_of(&ca_pem(&st, "ds-1")));

    // The station's own dual-control rotation does not apply: the centre's CSCA certifies.
    let o = st.run(
        &["ca", "rotate", "--ca", "ds", "--operator", "admin"],
        &[ADMIN_PASSWORD],
        &[],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("idstation centre renew-document-signer"),
        "{}",
        text(&o)
    );
    // Nor does the station's own CA revocation: it would revoke in this registry only, while
    // the centre's CRL and OCSP, which relying parties ask, kept the certificate good. Refused
    // at filing (exit 6) naming the centre's command, and audited.
    let o = st.run(
        &[
            "ca",
            "revoke-ca",
            "--ca",
            "esign",
            "--reason",
            "keyCompromise",
            "--operator",
            "admin",
        ],
        &[ADMIN_PASSWORD],
        &[],
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("idcentral ca revoke-ca"),
        "{}",
        text(&o)
    );
    let refused = st.audit_actions();
    assert_eq!(
        refused
            .iter()
            .filter(|a| *a == "ca.request.refused-filing")
            .count(),
        2,
        "the rotation and the revocation: {refused:?}"
    );
    // One renewal at a time: another process holding the lock gets a conflict (exit 5).
    let lock = st.data.join("locks/document-signer-renewal.lock");
    let held = std::fs::File::create(&lock).unwrap();
    held.lock().unwrap();
    let o = st.run(&RENEW, &[ADMIN_PASSWORD], &[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains("renewal is running in another process"),
        "{}",
        text(&o)
    );
    drop(held);
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(document_signers(&st), vec![pair("ds-1", "active")]);
    // A clerk may not.
    let clerk = [&RENEW[..4], &["clerk"]].concat();
    let o = st.run(&clerk, &[CLERK_PASSWORD], &[]);
    assert!(!o.status.success(), "{}", text(&o));

    // Killed after the centre answered: ds-1 stays active; the next run finishes with the
    // certificate the centre issued then.
    let kill = [("IDSTATION_FAILPOINT", "centre.ds-renew.answered")];
    let o = st.run(&RENEW, &[ADMIN_PASSWORD], &kill);
    assert_eq!(o.status.code(), None, "not killed:\n{}", text(&o));
    assert_eq!(document_signers(&st), vec![pair("ds-1", "active")]);
    // `centre status` sees that the centre certified a key the station does not use yet.
    let o = st.run(&["centre", "status"], &[], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let pending = "a renewal was interrupted; run `idstation centre renew-document-signer` again";
    assert!(text(&o).contains(pending), "{}", text(&o));
    let r = ok(st.run(&RENEW, &[ADMIN_PASSWORD], &[]));
    assert_eq!(r["key"], "ds-2", "{r}");
    assert_eq!(r["previous_key"], "ds-1", "{r}");
    assert_eq!(r["csca"], "csca-1", "{r}");
    assert_eq!(r["issued_now"], false, "{r}");
    assert!(r["csca_learnt"].is_null(), "{r}");
    assert_eq!(
        document_signers(&st),
        vec![pair("ds-1", "retired"), pair("ds-2", "active")]
    );
    let status = ok(st.run(&["--json", "centre", "status"], &[], &[]));
    assert_eq!(
        status["local"]["document_signer"]["key"], "ds-2",
        "{status}"
    );
    assert_eq!(
        status["centre"]["document_signer_serial"], status["local"]["document_signer"]["serial"],
        "{status}"
    );
    let o = st.run(&["centre", "status"], &[], &[]);
    assert!(
        !text(&o).contains("renewal was interrupted"),
        "{}",
        text(&o)
    );
    assert!(
        status["local"]["document_signer"]["days_left"]
            .as_i64()
            .unwrap()
            >= 90,
        "{status}"
    );

    let show = st.run(&["ca", "show"], &[], &[]);
    let show = String::from_utf8_lossy(&show.stdout);
    let until = status["local"]["document_signer"]["key_usage_until"]
        .as_str()
        .unwrap();
    assert!(show.contains(&format!("key usage until {until}")), "{show}");

    let (doc2, sod2) = issue_and_read_sod(&st, &slot, "holder-02.json", 0x5F00_0002);
    let signer = cms_verify(&sod2, &csca1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(der_of(&signer), der_of(&ca_pem(&st, "ds-2")));

    // The centre's CSCA rolls over: the next renewal learns csca-2 through its link.
    centre.rotate_csca("1");
    let r = ok(st.run(&RENEW, &[ADMIN_PASSWORD], &[]));
    assert_eq!(r["key"], "ds-3", "{r}");
    assert_eq!(r["csca"], "csca-2", "{r}");
    assert_eq!(r["csca_learnt"], "centre-csca-2", "{r}");
    assert_eq!(r["issued_now"], true, "{r}");
    let csca2 = st.ca_file("csca");
    assert_eq!(csca2, ca_pem(&st, "centre-csca-2"));
    let (doc3, sod3) = issue_and_read_sod(&st, &slot, "holder-03.json", 0x5F00_0003);
    let signer = cms_verify(&sod3, &csca2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(der_of(&signer), der_of(&ca_pem(&st, "ds-3")));
    assert!(cms_verify(&sod3, &csca1).is_err());
    // The cards signed before stay valid under the CSCA of their time.
    cms_verify(&sod1, &csca1).unwrap_or_else(|e| panic!("{e}"));
    cms_verify(&sod2, &csca1).unwrap_or_else(|e| panic!("{e}"));

    let actions = st.audit_actions();
    let renewed = actions
        .iter()
        .filter(|a| *a == "centre.document-signer-renewed")
        .count();
    assert_eq!(renewed, 2, "{actions:?}");

    // The centre withdraws csca-1 from its Master List (dual control): the station's next
    // `centre status` stops trusting it, once.
    let done = centre.withdraw_csca("csca-1", "2");
    // Each card names the Document Signer that signed its EF.SOD at `complete`: the two under
    // csca-1 are flagged for replacement, the one under csca-2 is not.
    assert_eq!(
        centre_document_signer(&centre, &doc1),
        serial_of(&st, "ds-1")
    );
    assert_eq!(
        centre_document_signer(&centre, &doc2),
        serial_of(&st, "ds-2")
    );
    assert_eq!(
        centre_document_signer(&centre, &doc3),
        serial_of(&st, "ds-3")
    );
    assert!(
        done.contains("2 cards whose EF.SOD they signed are flagged for replacement"),
        "{done}"
    );
    let listed = centre.ok(&[
        "--json",
        "station",
        "cards-to-replace",
        "--operator",
        "admin",
    ]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let flagged: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["document"].as_str().unwrap())
        .collect();
    assert_eq!(flagged, [doc1.as_str(), doc2.as_str()], "{listed}");
    // The office sees the same cards from the station, a clerk included; the read is audited.
    let at_station = ok(st.run(
        &[
            "--json",
            "centre",
            "cards-to-replace",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
        &[],
    ));
    assert_eq!(at_station["office"], "TAS01", "{at_station}");
    let seen: Vec<&str> = at_station["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["document"].as_str().unwrap())
        .collect();
    assert_eq!(seen, flagged, "{at_station}");
    assert!(
        at_station["cards"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("the CSCA key csca-1 that certified its Document Signer was withdrawn"),
        "{at_station}"
    );
    let o = st.run(
        &["centre", "cards-to-replace", "--operator", "clerk"],
        &[CLERK_PASSWORD],
        &[],
    );
    assert!(
        text(&o).contains("2 card(s) of office TAS01 to replace, oldest flag first:"),
        "{}",
        text(&o)
    );
    let listed_here = st
        .audit_actions()
        .iter()
        .filter(|a| *a == "documents.replacement-listed")
        .count();
    assert_eq!(listed_here, 2);
    let status = ok(st.run(&["--json", "centre", "status"], &[], &[]));
    assert_eq!(
        status["anchors"]["cscas_withdrawn"],
        serde_json::json!(["centre-csca"]),
        "{status}"
    );
    let cscas: Vec<(String, String)> = st
        .registry()
        .ca_keys("csca")
        .unwrap()
        .into_iter()
        .map(|k| (k.label, k.state.as_str().to_owned()))
        .collect();
    assert_eq!(
        cscas,
        [
            pair("centre-csca", "revoked"),
            pair("centre-csca-2", "active")
        ]
    );
    let again = ok(st.run(&["--json", "centre", "status"], &[], &[]));
    assert!(again["anchors"].get("cscas_withdrawn").is_none(), "{again}");
    let withdrawn = st
        .audit_actions()
        .iter()
        .filter(|a| *a == "centre.csca-withdrawn")
        .count();
    assert_eq!(withdrawn, 1);

    // The centre's station list shows when the newest Document Signer's key usage ends.
    let list: serde_json::Value =
        serde_json::from_str(&centre.ok(&["--json", "station", "list", "--operator", "admin"]))
            .unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "tas01-st1")
        .unwrap_or_else(|| panic!("{list}"));
    let ds3 = ca::CertInfo::parse(&der_of(&ca_pem(&st, "ds-3"))).unwrap();
    assert_eq!(
        row["document_signer_until"].as_str(),
        ds3.key_usage_until.as_deref(),
        "{row}"
    );
    assert_eq!(row["document_signer_days_left"], 91, "{row}");
    let text = centre.ok(&["station", "list", "--operator", "admin"]);
    assert!(text.contains("(Document Signer until "), "{text}");

    // Cut off for cause: each Document Signer the centre certified is revoked, once.
    let out = centre.ok(&[
        "--json",
        "station",
        "disable",
        "--station",
        "tas01-st1",
        "--reason",
        "keyCompromise",
        "--operator",
        "admin",
    ]);
    let done: serde_json::Value = serde_json::from_str(&out).unwrap();
    let issuers: Vec<&str> = done["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["purpose"] == "document-signer")
        .map(|c| c["issuer_key"].as_str().unwrap())
        .collect();
    let mut sorted = issuers.clone();
    sorted.sort();
    assert_eq!(sorted, ["csca-1", "csca-1", "csca-2"], "{done}");
}

/// The environment that runs `idstation` as if `offset` (libfaketime's "+80d") had passed:
/// its wall clock only (timeouts run on the real monotonic clock).
fn as_if(offset: &str) -> [(&'static str, String); 3] {
    [
        (
            "LD_PRELOAD",
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1".to_owned(),
        ),
        ("FAKETIME", offset.to_owned()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
    ]
}

fn env_of<'a>(e: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    e.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The details of the station's last `centre.document-signer-renewed` event, and its operator.
fn last_renewal(st: &Station) -> (serde_json::Value, String) {
    let events = st.registry().audit_events(1, u64::MAX).unwrap();
    let e = events
        .iter()
        .rev()
        .find(|e| e.action == "centre.document-signer-renewed")
        .expect("a renewal event");
    (
        serde_json::from_str(&e.details).unwrap(),
        e.operator.clone(),
    )
}

/// The station renews its Document Signer by itself once `[centre] renew_document_signer_days`
/// (14) or fewer days of its key usage are left (docs/centre.md "Document Signer renewal"). Today
/// nothing is due. Run as if 80 days had passed (libfaketime; 11 days left) while the centre
/// keeps today's time, the station does not renew: its clock is 80 days ahead of the centre's
/// (a renewal by that clock would look due again at once), audited, nothing switched. With the
/// centre's clock 80 days on as well, a clerk's issuance renews first, openssl verifies the
/// card's EF.SOD with the new Document Signer under the CSCA, the renewal is audited as
/// automatic under the clerk, and a sync right after renews nothing.
#[test]
fn an_enrolled_station_renews_its_document_signer_by_itself_when_it_is_due() {
    let mut centre = Centre::start();
    centre.serve();
    let st = Station::enrol(&centre, "TAS01", "tas01-st1");
    let slot = testrig::Slot::lease();
    let sync = ["--json", "centre", "sync", "--operator", "clerk"];

    let today = ok(st.run(&sync, &[CLERK_PASSWORD], &[]));
    assert!(today.get("document_signer_renewed").is_none(), "{today}");
    assert_eq!(document_signers(&st), vec![pair("ds-1", "active")]);

    let later = as_if("+80d");
    let o = st.run(&sync, &[CLERK_PASSWORD], &env_of(&later));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let said: serde_json::Value = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("{out}"));
    let failed = said["document_signer_failed"].as_str().unwrap_or_default();
    assert!(
        failed.contains("clock is 80 days ahead of the national centre's"),
        "{said}"
    );
    assert_eq!(document_signers(&st), vec![pair("ds-1", "active")]);
    assert_eq!(
        st.audit_actions().last().map(String::as_str),
        Some("centre.rollover-refused")
    );
    // `centre status` shows how far the clocks are apart.
    let status = ok(st.run(&["--json", "centre", "status"], &[], &env_of(&later)));
    let ahead = status["centre"]["clock_ahead_seconds"].as_i64().unwrap();
    assert!(
        (80 * 86_400 - 60..=80 * 86_400 + 60).contains(&ahead),
        "{status}"
    );
    let today = ok(st.run(&["--json", "centre", "status"], &[], &[]));
    let ahead = today["centre"]["clock_ahead_seconds"].as_i64().unwrap();
    assert!(ahead.abs() <= 2, "{today}");

    centre.stop();
    centre.serve_with(&env_of(&later));
    let card = slot.insert(&st.blank_card(0x5F00_0101), &[]);
    let issued = ok(st.issue("holder-01.json", &slot.reader_name, &env_of(&later)));
    let doc = issued["document"].as_str().expect("document").to_owned();
    assert_eq!(issued["document_signer_renewed"]["key"], "ds-2", "{issued}");
    let sod = st.read_sod(&slot.reader_name, &doc);
    card.pull();
    assert_eq!(
        document_signers(&st),
        vec![pair("ds-1", "retired"), pair("ds-2", "active")]
    );
    // As of 80 days on, when the centre certified ds-2.
    let at = (std::time::SystemTime::now() + std::time::Duration::from_secs(80 * 86_400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let signer = cms_verify_at(&sod, &st.ca_file("csca"), &["-attime", &at])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(der_of(&signer), der_of(&ca_pem(&st, "ds-2")));
    let (details, operator) = last_renewal(&st);
    assert_eq!(
        (details["key"].as_str(), details["automatic"].as_bool()),
        (Some("ds-2"), Some(true)),
        "{details}"
    );
    assert_eq!(operator, "clerk");

    // ds-2 has its whole period ahead by both clocks: nothing due, nothing renewed.
    let again = ok(st.run(&sync, &[CLERK_PASSWORD], &env_of(&later)));
    assert!(again.get("document_signer_renewed").is_none(), "{again}");
    assert_eq!(document_signers(&st).len(), 2);
}
