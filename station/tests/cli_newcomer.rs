//! What a newcomer hits (issue 19), through the `idstation` binary with the virtual readers:
//! a doomed issuance stops before the first APDU with the documented exit code and says what to
//! do; reading needs no HSM; `show` prints text; a reader part matching two readers is refused;
//! validation messages name each field once; the help texts of `show`, `revoke`, `ca refuse`.

#[path = "common/holder_pin.rs"]
mod holder_pin;
#[path = "common/rotation.rs"]
mod rig;
#[path = "common/software_profiles.rs"]
mod software_profiles;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rig::{sh, sh_ok, text, Station};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/holders")
        .join(name)
}

fn blank_card(dir: &Path, serial: u32) -> PathBuf {
    let img = dir.join(format!("card-{serial:08X}.img"));
    sh_ok(
        Command::new(testrig::vchip_bin().expect("vchip"))
            .args(["create", "--out"])
            .arg(&img)
            .args(["--serial", &serial.to_string()]),
    );
    img
}

fn lifecycle(img: &Path) -> String {
    let o = sh_ok(
        Command::new(testrig::vchip_bin().expect("vchip"))
            .arg("show")
            .arg(img),
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("lifecycle:").map(|s| s.trim().to_string()))
        .unwrap_or_default()
}

fn issue(st: &Station, holder: &Path, reader: &str) -> Output {
    st.cmd(
        "clerk",
        &[
            "issue",
            "--holder",
            holder.to_str().unwrap(),
            "--reader",
            reader,
            "--operator",
            "clerk",
        ],
    )
}

fn count(st: &Station, table: &str) -> i64 {
    st.registry()
        .connection()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// `idstation` on the station's data dir, the operator's password on standard input.
fn without_hsm(st: &Station, op: &str, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
    c.arg("--data-dir").arg(&st.data).args(args);
    let o = holder_pin::with_stdin(c, &[rig::password(op)]);
    let all = text(&o);
    assert!(!all.contains(rig::password(op)), "password leaked:\n{all}");
    o
}

#[test]
fn issuance_without_an_active_esign_key_stops_before_the_first_apdu_and_says_what_to_do() {
    let st = Station::new();
    st.ok(
        "admin",
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
    );
    // Request 1 enabled carol (the rig); the revocation is request 2.
    st.ok("bob", &["ca", "approve", "2", "--operator", "bob"]);
    let slot = testrig::Slot::lease();
    let img = blank_card(&st.dir, 0x1901);
    // The card tears at its first APDU: an issuance that sent one would fail with a card error.
    let mut card = slot.insert(&img, &["--tear-after", "0"]);
    let o = issue(&st, &fixture("holder-01.json"), &slot.reader_name);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("run `idstation ca rotate --ca esign`") && err.contains("e-Signature CA"),
        "{err}"
    );
    assert!(
        card.is_running(),
        "the card received an APDU:\n{}",
        text(&o)
    );
    card.pull();
    assert_eq!(lifecycle(&img), "blank");
    assert_eq!(count(&st, "issuance_jobs"), 0, "a job was created");
    assert_eq!(count(&st, "document_numbers"), 0, "a number was spent");
}

#[test]
fn reading_needs_no_hsm_show_prints_text_and_a_second_card_for_the_holder_stops_before_the_card() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = blank_card(&st.dir, 0x1902);
    let card = slot.insert(&img, &[]);
    let o = st.ok(
        "clerk",
        &[
            "--json",
            "issue",
            "--holder",
            fixture("holder-01.json").to_str().unwrap(),
            "--reader",
            &slot.reader_name,
            "--operator",
            "clerk",
        ],
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("issue JSON");
    let doc = r["document"].as_str().expect("document").to_string();
    let job = r["job_id"].as_i64().expect("job").to_string();
    card.pull();

    // Read-only commands: no HSM PIN, exit 0.
    for (op, args) in [
        ("admin", vec!["ca", "show"]),
        ("admin", vec!["ca", "requests"]),
        ("admin", vec!["ca", "reissue-list", "--operator", "admin"]),
        ("admin", vec!["outbox", "list", "--operator", "admin"]),
        ("admin", vec!["operator", "list", "--operator", "admin"]),
        ("admin", vec!["audit", "verify-log", "--operator", "admin"]),
        (
            "clerk",
            vec!["show", "--document", &doc, "--operator", "clerk"],
        ),
        (
            "clerk",
            vec!["show", "--pinfl", "41505852610128", "--operator", "clerk"],
        ),
        ("clerk", vec!["show", "--job", &job, "--operator", "clerk"]),
    ] {
        let o = without_hsm(&st, op, &args);
        assert!(
            o.status.success(),
            "{args:?} without the HSM:\n{}",
            text(&o)
        );
    }
    // `show` prints its text form unless --json.
    let o = without_hsm(
        &st,
        "clerk",
        &["show", "--document", &doc, "--operator", "clerk"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.trim_start().starts_with('{'),
        "show printed JSON without --json:\n{out}"
    );
    assert!(
        out.starts_with("Holder 41505852610128: ")
            && out.contains(&format!("Document {doc} active"))
            && out.contains("  MRZ I<UZB")
            && out.contains("holder-auth active"),
        "{out}"
    );
    let o = without_hsm(
        &st,
        "clerk",
        &["show", "--job", &job, "--operator", "clerk"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with(&format!("Job {job} completed")), "{out}");
    let o = without_hsm(
        &st,
        "clerk",
        &["--json", "show", "--document", &doc, "--operator", "clerk"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("show --json");
    assert_eq!(v["document"]["document"], doc.as_str());

    // The holder has an active card: a second issuance stops before the card (exit 5).
    let img2 = blank_card(&st.dir, 0x1903);
    let mut card2 = slot.insert(&img2, &["--tear-after", "0"]);
    let jobs = count(&st, "issuance_jobs");
    let o = issue(&st, &fixture("holder-01.json"), &slot.reader_name);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already has an active card") && err.contains("idstation revoke --document"),
        "{err}"
    );
    assert!(card2.is_running(), "the card received an APDU");
    card2.pull();
    assert_eq!(lifecycle(&img2), "blank");
    assert_eq!(count(&st, "issuance_jobs"), jobs);
}

#[test]
fn a_reader_part_matching_two_readers_is_refused_listing_the_matches() {
    testrig::ensure_pcscd().expect("pcscd with vpcd readers");
    let st = Station::new();
    let o = issue(&st, &fixture("holder-01.json"), "C 00");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("\"Virtual PCD C 00 00\"") && err.contains("\"Virtual PCD C 00 01\""),
        "{err}"
    );
    assert_eq!(count(&st, "issuance_jobs"), 0);
}

#[test]
fn holder_validation_names_each_field_once() {
    let st = Station::new();
    let mut h: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("holder-01.json")).unwrap()).unwrap();
    h["pinfl"] = "41505852610129".into();
    h["sex"] = "X".into();
    h.as_object_mut().unwrap().remove("photo");
    let f = st.dir.join("bad.json");
    std::fs::write(&f, serde_json::to_vec(&h).unwrap()).unwrap();
    let o = issue(&st, &f, "Virtual PCD 00 00");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pinfl: check digit"), "{err}");
    assert!(err.contains("sex: "), "{err}");
    for f in ["pinfl", "sex"] {
        assert!(
            !err.contains(&format!("{f}: {f}:")),
            "field repeated: {err}"
        );
        assert_eq!(err.matches(&format!("{f}: ")).count(), 1, "{err}");
    }
}

#[test]
fn help_texts_of_show_revoke_and_ca_refuse() {
    let help = |args: &[&str]| {
        let o = sh_ok(Command::new(env!("CARGO_BIN_EXE_idstation")).args(args));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let show = help(&["show", "--help"]);
    assert!(
        show.contains("<--document <NUMBER>|--pinfl <PINFL>|--job <ID>>"),
        "show --help must say one of the three is required:\n{show}"
    );
    // Whitespace-insensitive: the column width follows the longest option.
    let flat = show.split_whitespace().collect::<Vec<_>>().join(" ");
    for line in [
        "--document <NUMBER> Document number",
        "--pinfl <PINFL> The holder's PINFL",
        "--job <ID> Issuance job number",
        "--operator <OPERATOR> The operator doing this",
    ] {
        assert!(flat.contains(line), "{line:?} missing:\n{show}");
    }
    assert!(
        flat.contains("A clerk or an auditor; every read of a holder's record is audited"),
        "{show}"
    );
    let revoke = help(&["revoke", "--help"]);
    assert!(
        revoke.contains("--reason <REASON>") && revoke.contains("lost or stolen"),
        "{revoke}"
    );
    let refuse = help(&["ca", "refuse", "--help"]);
    assert!(refuse.contains("<REQUEST>  Request number"), "{refuse}");
    // Exactly one of the three.
    let o = sh(Command::new(env!("CARGO_BIN_EXE_idstation")).args([
        "show",
        "--pinfl",
        "41505852610128",
        "--job",
        "1",
    ]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// The newest audit event is covered by a signed checkpoint.
fn assert_checkpointed(st: &Station, after: &str) {
    let reg = st.registry();
    let (events, checkpoint): (i64, Option<i64>) = reg
        .connection()
        .query_row(
            "SELECT (SELECT max(seq) FROM audit_events), (SELECT max(seq) FROM audit_checkpoints)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("query");
    assert_eq!(
        checkpoint,
        Some(events),
        "after {after}: the newest event {events} is not inside a signed checkpoint"
    );
}

#[test]
fn rollbacks_and_recovered_jobs_end_inside_a_signed_checkpoint() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = blank_card(&st.dir, 0x1904);
    let holder = fixture("holder-02.json");
    // A job left behind by a crash, rolled back by `recover --without-card`.
    let card = slot.insert(&img, &[]);
    let o = st.cmd_env(
        "clerk",
        &[
            "issue",
            "--holder",
            holder.to_str().unwrap(),
            "--reader",
            &slot.reader_name,
            "--operator",
            "clerk",
        ],
        &[("IDSTATION_FAILPOINT", "job.created")],
    );
    assert!(!o.status.success(), "{}", text(&o));
    card.pull();
    let o = st.ok(
        "clerk",
        &["--json", "recover", "--without-card", "--operator", "clerk"],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("rolled-back"),
        "{}",
        text(&o)
    );
    assert_checkpointed(&st, "a recovered (rolled back) job");
    // An issuance that fails on the card is rolled back at once.
    let card = slot.insert(&img, &["--tear-after", "12"]);
    let o = issue(&st, &holder, &slot.reader_name);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    drop(card);
    assert_checkpointed(&st, "a rolled-back issuance");
}

#[test]
fn a_disabled_operator_as_the_docs_name_it_can_be_made_and_is_refused() {
    let st = Station::new();
    let o = st.cmd(
        "carol",
        &[
            "operator",
            "disable",
            "--name",
            "carol",
            "--operator",
            "carol",
        ],
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    st.ok(
        "admin",
        &[
            "operator",
            "disable",
            "--name",
            "clerk",
            "--operator",
            "admin",
        ],
    );
    let list = String::from_utf8_lossy(
        &st.ok("admin", &["operator", "list", "--operator", "admin"])
            .stdout,
    )
    .into_owned();
    assert!(list.contains("clerk\tclerk\tdisabled"), "{list}");
    // A disabled account answers like a wrong password (issue 13 item 6); the audit log says
    // which it was.
    st.refused(
        "clerk",
        &["recover", "--operator", "clerk"],
        "clerk: operator name or password is wrong",
    );
    let last = st
        .registry()
        .audit_events(1, u64::MAX)
        .expect("events")
        .into_iter()
        .rev()
        .find(|e| e.action == "operator.refused")
        .expect("refusal audited");
    assert!(last.details.contains("operator is disabled"), "{last:?}");
}
