//! Issue 15, issuance through the national centre end to end: two stations (two data dirs, two
//! SoftHSM2 tokens) enrolled to one `idcentral serve` (PostgreSQL, its own SoftHSM2 token,
//! TLS 1.3 with mutual TLS on 127.0.0.1: testrig::centre) issue cards in vpcd readers through
//! the `idstation` binary. Oracles: openssl (`verify` of the holder certificates up to the
//! centre's root, `cms -verify` of EF.SOD up to the centre's CSCA) and `idcentral show`.
//!
//! Needs `idcentral` built in the same target dir as the tests build it (`cargo test -p central --no-run`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testrig::centre::Centre;

#[path = "common/enrolled.rs"]
mod enrolled;
use enrolled::*;

/// Read the card in `reader` through PACE with the MRZ `show` gives for `document`, and have
/// openssl verify its EF.SOD with the CSCA the station trusts (the centre's) as the only anchor.
fn assert_sod_verifies(st: &Station, document: &str, reader: &str) {
    let sod_der = st.read_sod(reader, document);
    if let Err(e) = cms_verify(&sod_der, &st.ca_file("csca")) {
        panic!("openssl cms -verify of {document}:\n{e}");
    }
}

fn openssl(args: &[&str], files: &[&Path]) -> Output {
    let mut c = Command::new("openssl");
    c.args(args);
    for f in files {
        c.arg(f);
    }
    c.output().expect("openssl")
}

/// The certificate `der` verifies up to `root` through `esign` (openssl, -x509_strict).
fn assert_chains(dir: &Path, der: &[u8], root: &Path, esign: &Path) {
    let cert = dir.join("holder.der");
    std::fs::write(&cert, der).unwrap();
    let pem = dir.join("holder.pem");
    let o = openssl(&["x509", "-inform", "DER", "-in"], &[&cert]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(&pem, &o.stdout).unwrap();
    let o = Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(root)
        .arg("-untrusted")
        .arg(esign)
        .arg(&pem)
        .output()
        .unwrap();
    assert!(o.status.success(), "openssl verify:\n{}", text(&o));
}

#[test]
fn two_enrolled_stations_issue_with_national_numbers_one_card_per_holder_and_the_centres_pki() {
    let mut centre = Centre::start();
    centre.serve();
    let tas = Station::enrol(&centre, "TAS01", "tas01-st1");
    let sam = Station::enrol(&centre, "SAM01", "sam01-st1");
    let a = testrig::Slot::lease();
    let b = testrig::Slot::lease();

    // The fixture holders between the two stations.
    let mut documents = Vec::new();
    for (i, (st, holder)) in [
        (&tas, "holder-01.json"),
        (&sam, "holder-02.json"),
        (&tas, "holder-03.json"),
    ]
    .into_iter()
    .enumerate()
    {
        let img = st.blank_card(0x5A00_0001 + i as u32);
        let card = a.insert(&img, &[]);
        let o = st.issue(holder, &a.reader_name, &[]);
        assert!(
            o.status.success(),
            "{holder} at {}:\n{}",
            st.office,
            text(&o)
        );
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        documents.push((st, r["document"].as_str().unwrap().to_owned(), img));
        card.pull();
    }
    let mut numbers: Vec<&String> = documents.iter().map(|(_, d, _)| d).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 3, "document numbers unique across stations");

    for (st, doc, img) in &documents {
        // The centre lists every card, with the office that issued it.
        let shown = centre.ok(&["--json", "show", "--document", doc, "--operator", "admin"]);
        assert!(
            shown.contains(doc.as_str()) && shown.contains(&st.office),
            "{doc}: {shown}"
        );
        // Each certificate chains to the centre's root.
        let certs = st.certificates_of(doc);
        assert_eq!(certs.len(), 2, "{doc}");
        for der in certs {
            assert_chains(&st.dir, &der, &st.ca_file("root"), &st.ca_file("esign"));
        }
        // EF.SOD, signed by the station's own Document Signer, verifies up to the centre's
        // CSCA (openssl cms, the CSCA the only trust anchor).
        let card = a.insert(img, &[]);
        assert_sod_verifies(st, doc, &a.reader_name);
        card.pull();
    }

    // Each completion's signed checkpoint is anchored at the centre; a push now sends nothing.
    for st in [&tas, &sam] {
        let o = st.run(&["--json", "centre", "status"], &[], &[]);
        assert!(o.status.success(), "{}", text(&o));
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let head = s["centre"]["audit_head_seq"].as_u64().unwrap_or(0);
        assert!(head > 0, "the centre holds the station's audit head: {s}");
        let o = st.run(&["--json", "centre", "push-audit"], &[], &[]);
        assert!(o.status.success(), "{}", text(&o));
        let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(p["events"], 0, "{p}");
        assert_eq!(p["head_seq"].as_u64(), Some(head), "{p}");
    }

    // The same holder (holder-01 has an active card from TAS01) at SAM01: refused, exit 5,
    // naming the office; the card stays blank.
    let card = a.insert(&sam.blank_card(0x5A00_0010), &[]);
    let o = sam.issue("holder-01.json", &a.reader_name, &[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("TAS01"),
        "names the office:\n{}",
        text(&o)
    );
    card.pull();

    // SAM01 declares that card lost (it was issued by TAS01): revoked at the centre, and the
    // holder gets a new card at SAM01.
    let tas_doc = documents[0].1.clone();
    let o = sam.run(
        &[
            "--json",
            "revoke",
            "--document",
            &tas_doc,
            "--reason",
            "lost",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["status"], "lost", "{r}");
    assert_eq!(
        r["revoked_certificates"].as_array().map(Vec::len),
        Some(2),
        "{r}"
    );
    let card = a.insert(&sam.blank_card(0x5A00_0011), &[]);
    let o = sam.issue("holder-01.json", &a.reader_name, &[]);
    assert!(
        o.status.success(),
        "a new card after the loss:\n{}",
        text(&o)
    );
    card.pull();
    let view = centre_view(&centre, &fixture("holder-01.json"));
    assert_eq!(check_centre_invariants(&view), 1, "{view}");
    let lost = view["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["revocation_reason"] == "keyCompromise")
        .count();
    assert_eq!(lost, 2, "the lost card's certificates: {view}");

    // The centre rotates its e-Signature CA key under dual control while the stations work;
    // the next card's certificates come from the new key, which each station records once it
    // checked that the National Root signed it.
    centre.ok(&["ca", "rotate", "--ca", "esign", "--operator", "admin"]);
    let done = centre.ok_as(
        &["ca", "approve", "1", "--operator", "admin2"],
        testrig::centre::CENTRE_ADMIN2_PASSWORD,
    );
    assert!(done.contains("esign-ca-2 active"), "{done}");
    let esign2_dir = tas.dir.join("esign2");
    centre.ok(&[
        "ca",
        "certs",
        "--key",
        "esign-ca-2",
        "--out",
        esign2_dir.to_str().unwrap(),
        "--operator",
        "admin",
    ]);
    let esign2 = esign2_dir.join("esign-ca-2.pem");

    // A new holder on both stations at once: exactly one card.
    let holder = "holder-new.json";
    let mut h: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("holder-02.json")).unwrap()).unwrap();
    h["pinfl"] = serde_json::json!("32307921400993");
    for st in [&tas, &sam] {
        let mut v = h.clone();
        if let Some(p) = v["photo"].as_str() {
            v["photo"] = serde_json::json!(fixture(p).to_str().unwrap());
        }
        std::fs::write(st.dir.join(holder), v.to_string()).unwrap();
    }
    let ca = a.insert(&tas.blank_card(0x5A00_0020), &[]);
    let cb = b.insert(&sam.blank_card(0x5A00_0021), &[]);
    let issue_at = |st: &Station, reader: &str| st.issue_file(&st.dir.join(holder), reader, &[]);
    let (oa, ob) = std::thread::scope(|s| {
        let pa = s.spawn(|| issue_at(&tas, &a.reader_name));
        let pb = s.spawn(|| issue_at(&sam, &b.reader_name));
        (pa.join().unwrap(), pb.join().unwrap())
    });
    let codes = [oa.status.code(), ob.status.code()];
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(5)),
        "one card and one refusal:\n{}\n{}",
        text(&oa),
        text(&ob)
    );
    let (winner, out) = if oa.status.success() {
        (&tas, &oa)
    } else {
        (&sam, &ob)
    };
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let doc = r["document"].as_str().unwrap();
    for der in winner.certificates_of(doc) {
        assert_chains(&winner.dir, &der, &winner.ca_file("root"), &esign2);
    }
    ca.pull();
    cb.pull();

    // The centre stopped: issuance refuses at once, before the card, and loses nothing.
    centre.stop();
    let img = tas.blank_card(0x5A00_0030);
    let card = a.insert(&img, &[]);
    let started = std::time::Instant::now();
    let o = tas.issue("holder-02.json", &a.reader_name, &[]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("centre"),
        "{}",
        text(&o)
    );
    card.pull();
    assert_blank(&img);
}

/// `vchip show` says the card image at `img` is still BLANK: the card was not touched.
fn assert_blank(img: &Path) {
    let o = Command::new(testrig::vchip_bin().unwrap())
        .args(["show", "--json"])
        .arg(img)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\"lifecycle\": \"blank\""),
        "the card was not touched:\n{}",
        text(&o)
    );
}

/// A copy of fixture `base` with another valid PINFL (sequence digits `seq`, the 7-3-1 check
/// digit recomputed) written into the station's directory; returns its path.
fn holder_variant(st: &Station, base: &str, seq: u32) -> PathBuf {
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(base)).unwrap()).unwrap();
    let pinfl = v["pinfl"].as_str().unwrap().to_owned();
    let mut digits: Vec<u32> = pinfl[..9]
        .chars()
        .map(|c| c.to_digit(10).unwrap())
        .collect();
    digits.extend(format!("{seq:04}").chars().map(|c| c.to_digit(10).unwrap()));
    let check = digits
        .iter()
        .zip([7, 3, 1].iter().cycle())
        .map(|(d, w)| d * w)
        .sum::<u32>()
        % 10;
    let new: String = digits
        .iter()
        .chain(std::iter::once(&check))
        .map(|d| char::from_digit(*d, 10).unwrap())
        .collect();
    v["pinfl"] = serde_json::json!(new);
    if let Some(p) = v["photo"].as_str() {
        v["photo"] = serde_json::json!(fixture(p).to_str().unwrap());
    }
    let path = st.dir.join(format!("holder-{new}.json"));
    std::fs::write(&path, v.to_string()).unwrap();
    path
}

/// What the centre knows of the holder in `holder_file` (`idcentral show --pinfl --json`).
/// The serial number of the certificate in PEM file `path`, as `openssl x509 -serial` prints it
/// (upper-case hex).
fn openssl_serial(path: &Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(path)
        .output()
        .expect("openssl is required");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim()
        .strip_prefix("serial=")
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned()
}

fn centre_view(centre: &Centre, holder_file: &Path) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(holder_file).unwrap()).unwrap();
    let pinfl = v["pinfl"].as_str().unwrap();
    let out = centre.ok(&["--json", "show", "--pinfl", pinfl, "--operator", "admin"]);
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    if shown.get("documents").is_some() {
        shown
    } else {
        shown["holder"].clone()
    }
}

/// The centre's invariants for one holder: at most one active document; an active certificate
/// only for an active document; never more than the card's two certificates for one job.
/// Returns the number of active documents.
fn check_centre_invariants(view: &serde_json::Value) -> usize {
    let docs = view["documents"].as_array().cloned().unwrap_or_default();
    let certs = view["certificates"].as_array().cloned().unwrap_or_default();
    let active: Vec<&serde_json::Value> = docs.iter().filter(|d| d["state"] == "active").collect();
    assert!(active.len() <= 1, "one active document at most: {view}");
    for c in &certs {
        if c["state"] == "active" {
            assert!(
                active.iter().any(|d| d["document"] == c["document"]),
                "an active certificate without an active document: {view}"
            );
        }
        let of_job = certs.iter().filter(|o| o["job"] == c["job"]).count();
        assert!(
            of_job <= 2,
            "more than two certificates for job {}: {view}",
            c["job"]
        );
    }
    active.len()
}

/// The station's invariants (as on a standalone station): no certificate ACTIVE without a
/// LOCKED card; no job left running.
fn check_station_invariants(st: &Station) {
    let reg = st.registry();
    let conn = reg.connection();
    let bad: i64 = conn
        .query_row(
            "SELECT count(*) FROM certificates c
             WHERE c.status = 'active' AND NOT EXISTS (
               SELECT 1 FROM cards k WHERE k.id = c.card_id AND k.lifecycle = 'locked')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bad, 0, "active certificates without a locked card");
    let running: i64 = conn
        .query_row(
            "SELECT count(*) FROM issuance_jobs WHERE state NOT IN ('completed', 'rolled-back')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(running, 0, "jobs left unfinished");
}

#[test]
fn the_centre_or_the_station_killed_after_each_protocol_step_leaves_nothing_duplicated_or_lost() {
    let mut centre = Centre::start();
    centre.serve();
    let st = Station::enrol(&centre, "TAS01", "tas01-st1");
    let slot = testrig::Slot::lease();
    let ds_serial = openssl_serial(&st.data.join("ca/ds-1.pem"));
    // (who is killed, where, whether the card was LOCKED by then)
    let cases = [
        ("centre", "reserve", false),
        ("centre", "certify", false),
        ("centre", "complete", true),
        ("station", "centre.certified", false),
        ("station", "card.lock", false),
        ("station", "centre.completed", true),
    ];
    for (i, (who, point, locked)) in cases.into_iter().enumerate() {
        let holder = holder_variant(&st, "holder-03.json", 100 + i as u32);
        let img = st.blank_card(0x5B00_0001 + i as u32);
        let card = slot.insert(&img, &[]);
        let mut env = Vec::new();
        if who == "centre" {
            centre.stop();
            centre.serve_with(&[("IDCENTRAL_FAILPOINT", point)]);
        } else {
            env.push(("IDSTATION_FAILPOINT", point));
        }
        let o = st.issue_file(&holder, &slot.reader_name, &env);
        if who == "centre" {
            // No answer: the station says the centre cannot be reached.
            assert_eq!(o.status.code(), Some(7), "{point}:\n{}", text(&o));
            centre.stop();
            centre.serve();
        } else {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(o.status.signal(), Some(9), "{point}:\n{}", text(&o));
        }
        let o = st.run(
            &["--json", "recover", "--operator", "clerk"],
            &[CLERK_PASSWORD],
            &[],
        );
        assert!(o.status.success(), "{who} {point}: recover:\n{}", text(&o));
        check_station_invariants(&st);
        let view = centre_view(&centre, &holder);
        let active = check_centre_invariants(&view);
        if locked {
            // The card was LOCKED: recovery completed the issuance on both sides, naming the
            // Document Signer journaled when EF.SOD was signed (openssl reads its serial).
            assert_eq!(active, 1, "{who} {point}: completed at the centre: {view}");
            let document = view["documents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["state"] == "active")
                .unwrap_or_else(|| panic!("{view}"));
            assert_eq!(
                document["document_signer"].as_str().map(str::to_uppercase),
                Some(ds_serial.clone()),
                "{who} {point}: {view}"
            );
        } else {
            assert_eq!(active, 0, "{who} {point}: nothing active: {view}");
            let live = view["certificates"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c["state"] != "revoked")
                .count();
            assert_eq!(live, 0, "{who} {point}: every certificate revoked: {view}");
            // The same card (reset if needed) is issued now.
            let o = st.issue_file(&holder, &slot.reader_name, &[]);
            assert!(o.status.success(), "{who} {point}: again:\n{}", text(&o));
            let view = centre_view(&centre, &holder);
            assert_eq!(check_centre_invariants(&view), 1, "{view}");
        }
        card.pull();
    }
}

#[test]
fn with_two_instances_of_the_centre_one_killed_the_station_carries_on_with_the_other() {
    let mut centre = Centre::start();
    centre.serve();
    let mut second = centre.another_instance();
    assert_eq!(
        second.fingerprint(),
        centre.fingerprint(),
        "one certificate"
    );
    // The station knows both instances: its requests go to the first, then the second.
    let centre_url = centre.url();
    let st = Station::enrol_at(
        &centre,
        "TAS01",
        "tas01-st2",
        &second.url(),
        &[centre_url.as_str()],
    );
    let slot = testrig::Slot::lease();
    let card = slot.insert(&st.blank_card(0x5C00_0001), &[]);
    let o = st.issue("holder-01.json", &slot.reader_name, &[]);
    assert!(
        o.status.success(),
        "through the first instance:\n{}",
        text(&o)
    );
    card.pull();

    // The first instance killed: the next card goes through the other.
    second.kill();
    let card = slot.insert(&st.blank_card(0x5C00_0002), &[]);
    let o = st.issue("holder-02.json", &slot.reader_name, &[]);
    assert!(
        o.status.success(),
        "through the other instance:\n{}",
        text(&o)
    );
    card.pull();
    let s = st.run(&["--json", "centre", "status"], &[], &[]);
    assert!(s.status.success(), "{}", text(&s));
    let view = centre_view(&centre, &fixture("holder-02.json"));
    assert_eq!(check_centre_invariants(&view), 1, "{view}");
}

#[test]
fn the_database_primary_killed_the_standby_promoted_issuance_goes_on_through_the_same_centre() {
    let mut centre = Centre::start_replicated();
    centre.serve();
    let st = Station::enrol(&centre, "TAS01", "tas01-st1");
    let slot = testrig::Slot::lease();
    let card = slot.insert(&st.blank_card(0x5D00_0001), &[]);
    let o = st.issue("holder-01.json", &slot.reader_name, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let first: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    card.pull();

    centre.kill_primary();
    // While no primary answers, the station is told at once and nothing is touched.
    let img = st.blank_card(0x5D00_0002);
    let card = slot.insert(&img, &[]);
    let o = st.issue("holder-02.json", &slot.reader_name, &[]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    centre.promote_standby();
    // The same centre process reconnects to the promoted node.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = st.run(&["--json", "centre", "status"], &[], &[]);
        if s.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the centre did not come back:\n{}",
            text(&s)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let o = st.issue("holder-02.json", &slot.reader_name, &[]);
    assert!(o.status.success(), "after the failover:\n{}", text(&o));
    card.pull();
    // The issuance acknowledged before the failover is there.
    let view = centre_view(&centre, &fixture("holder-01.json"));
    assert_eq!(check_centre_invariants(&view), 1, "{view}");
    assert!(view
        .to_string()
        .contains(first["document"].as_str().unwrap()));
    let view = centre_view(&centre, &fixture("holder-02.json"));
    assert_eq!(check_centre_invariants(&view), 1, "{view}");
    check_station_invariants(&st);
}

/// The e-Signature CA key revoked at the centre (`idcentral ca revoke-ca`) while a card is being
/// issued with its certificates: the card LOCKED meanwhile is void. Recovery asks the centre to
/// complete, the centre aborts the job instead (naming the revoked key), and the station rolls it
/// back (number spoiled: it is on the card). Until a new key is active the next issuance is
/// refused before any card is touched (409 `no-active-ca-key`, exit 5); after `ca rotate` the
/// holder gets a card.
#[test]
fn a_revoked_esign_key_voids_the_card_locked_meanwhile_and_issuance_resumes_after_a_rotation() {
    let mut centre = Centre::start();
    centre.serve();
    let st = Station::enrol(&centre, "TAS01", "tas01-st1");
    let slot = testrig::Slot::lease();
    let holder = holder_variant(&st, "holder-03.json", 300);
    let issue = |env: &[(&str, &str)]| st.issue_file(&holder, &slot.reader_name, env);

    // The station dies right after LOCK reached the card, before `complete`.
    let img = st.blank_card(0x5C00_0001);
    let card = slot.insert(&img, &[]);
    let o = issue(&[("IDSTATION_FAILPOINT", "card.locked")]);
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(9), "{}", text(&o));
    }
    // Meanwhile the centre revokes its e-Signature CA key under dual control.
    centre.ok(&[
        "ca",
        "revoke-ca",
        "--ca",
        "esign",
        "--reason",
        "keyCompromise",
        "--operator",
        "admin",
    ]);
    centre.ok_as(
        &["ca", "approve", "1", "--operator", "admin2"],
        testrig::centre::CENTRE_ADMIN2_PASSWORD,
    );

    // Recovery with the LOCKED card: the centre refuses to complete and aborts the job.
    let o = st.run(
        &["--json", "recover", "--operator", "clerk"],
        &[CLERK_PASSWORD],
        &[],
    );
    assert!(o.status.success(), "recover:\n{}", text(&o));
    let resolved: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let out = resolved.to_string();
    assert!(
        out.contains("rolled-back") && out.contains("esign-ca-1") && out.contains("revoked"),
        "recovery rolled the job back naming the revoked key: {out}"
    );
    check_station_invariants(&st);
    let view = centre_view(&centre, &holder);
    assert_eq!(check_centre_invariants(&view), 0, "no active card: {view}");
    let certs = view["certificates"].as_array().cloned().unwrap_or_default();
    assert_eq!(certs.len(), 2, "{view}");
    assert!(
        certs.iter().all(|c| c["state"] == "revoked"),
        "the void card's certificates are revoked: {view}"
    );
    let reg = st.registry();
    let (job_state, number_state, spoiled): (String, String, String) = reg
        .connection()
        .query_row(
            "SELECT j.state, n.state, printf('%s%07d', n.series, n.number) FROM issuance_jobs j
             JOIN document_numbers n ON n.series = j.series AND n.number = j.number
             ORDER BY j.id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (job_state.as_str(), number_state.as_str()),
        ("rolled-back", "spoiled")
    );
    // `show --document` says what became of the spoiled number (no document has it).
    let o = st.run(
        &["show", "--document", &spoiled, "--operator", "clerk"],
        &[CLERK_PASSWORD],
        &[],
    );
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success()
            && said.starts_with(&format!(
                "Document number {spoiled} was spoiled: issuance job "
            ))
            && said.contains("without issuing it (card 5C000001)"),
        "{}",
        text(&o)
    );
    card.pull();

    // No active e-Signature key: refused before the card, naming the rule.
    let img = st.blank_card(0x5C00_0002);
    let card = slot.insert(&img, &[]);
    let o = issue(&[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(text(&o).contains("no-active-ca-key"), "{}", text(&o));
    card.pull();
    assert_blank(&img);

    // A new key under dual control, and the holder gets a card.
    centre.ok(&["ca", "rotate", "--ca", "esign", "--operator", "admin"]);
    centre.ok_as(
        &["ca", "approve", "2", "--operator", "admin2"],
        testrig::centre::CENTRE_ADMIN2_PASSWORD,
    );
    let card = slot.insert(&img, &[]);
    let o = issue(&[]);
    assert!(o.status.success(), "after the rotation:\n{}", text(&o));
    let view = centre_view(&centre, &holder);
    assert_eq!(check_centre_invariants(&view), 1, "{view}");
    card.pull();
}
