//! A station enrolled with a real national centre (testrig::centre: PostgreSQL, SoftHSM2,
//! `idcentral serve`) restored from a backup takes back from the centre the audit events it
//! had anchored there after the copy (docs/station.md "Backup and restore"): its log is then
//! the one it had, event for event (sqlite3 reads both), `audit verify-log` accepts it, and its
//! next push extends the centre's head. A copy whose log went its own way after the centre's
//! head is refused (exit 5), nothing taken. Needs `cargo test -p central --no-run` in the same
//! target dir.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testrig::centre::Centre;

#[path = "common/enrolled.rs"]
mod enrolled;
use enrolled::*;

fn ok(o: Output) -> serde_json::Value {
    assert!(o.status.success(), "idstation failed:\n{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", text(&o)))
}

/// `sqlite3 FILE SQL`, its output trimmed.
fn sqlite(file: &Path, sql: &str) -> String {
    let o = Command::new("sqlite3")
        .arg(file)
        .arg(sql)
        .output()
        .expect("sqlite3 (Debian sqlite3)");
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

const EVENTS: &str = "SELECT seq || ' ' || action || ' ' || hex(hash) FROM audit_events \
                      WHERE seq <= %N ORDER BY seq";

/// The audit events up to `n` of registry `file`, a line each (sequence, action, hash).
fn events_up_to(file: &Path, n: u64) -> String {
    sqlite(file, &EVENTS.replace("%N", &n.to_string()))
}

/// An audited change and a signed checkpoint: the station adds operator `name` (a clerk), then
/// `audit checkpoint`.
fn checkpointed_change(st: &Station, name: &str) {
    let o = st.run(
        &[
            "operator",
            "add",
            "--name",
            name,
            "--role",
            "clerk",
            "--operator",
            "admin",
        ],
        &[ADMIN_PASSWORD, CLERK_PASSWORD],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    ok(st.run(
        &["--json", "audit", "checkpoint", "--operator", "admin"],
        &[ADMIN_PASSWORD],
        &[],
    ));
}

/// [`checkpointed_change`] and `centre push-audit`: the centre's head after.
fn anchored_change(st: &Station, name: &str) -> u64 {
    checkpointed_change(st, name);
    let pushed = ok(st.run(&["--json", "centre", "push-audit"], &[], &[]));
    pushed["head_seq"].as_u64().expect("head_seq")
}

/// `backup create --out DIR/backups/NAME`.
fn backup(st: &Station, name: &str) -> PathBuf {
    let dir = st.dir.join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = dir.join(name);
    let args = [
        "--json",
        "backup",
        "create",
        "--out",
        file.to_str().unwrap(),
        "--operator",
        "admin",
    ];
    ok(st.run(&args, &[ADMIN_PASSWORD], &[]));
    file
}

/// The registry moved aside to `aside` and `copy` put in its place.
fn put_in_place(st: &Station, copy: &Path, aside: &Path) {
    let live = st.data.join("registry.sqlite");
    std::fs::rename(&live, aside).unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(st.data.join(format!("registry.sqlite{ext}")));
    }
    std::fs::copy(copy, &live).unwrap();
    std::fs::set_permissions(&live, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn restored(st: &Station, extra: &[&str]) -> Output {
    let mut args = vec!["--json", "backup", "restored", "--operator", "admin"];
    args.extend_from_slice(extra);
    st.run(&args, &[ADMIN_PASSWORD], &[])
}

#[test]
fn a_restored_enrolled_station_takes_back_its_anchored_audit_events_and_anchors_again() {
    let mut centre = Centre::start();
    centre.serve();
    let st = Station::enrol(&centre, "TAS01", "tas01-st1");
    let live = st.data.join("registry.sqlite");

    anchored_change(&st, "clerk2");
    let copy = backup(&st, "copy.sqlite");
    let copy_last: u64 = sqlite(&copy, "SELECT max(seq) FROM audit_events")
        .parse()
        .unwrap();
    anchored_change(&st, "clerk3");
    let head = anchored_change(&st, "clerk4");
    assert!(head > copy_last + 4, "head {head}, copy {copy_last}");

    // The registry lost, the copy put in its place: the restore takes the events after the
    // copy's last back from the centre, up to its head.
    let before = st.dir.join("registry-lost.sqlite");
    put_in_place(&st, &copy, &before);
    let done = ok(restored(&st, &[]));
    let taken = &done["taken_back"];
    assert_eq!(
        (
            taken["from_seq"].as_u64(),
            taken["to_seq"].as_u64(),
            taken["events"].as_u64()
        ),
        (Some(copy_last), Some(head), Some(head - copy_last)),
        "{done}"
    );
    assert_eq!(events_up_to(&live, head), events_up_to(&before, head));
    let after_head = |n: u64| {
        sqlite(
            &live,
            &format!("SELECT action FROM audit_events WHERE seq = {}", head + n),
        )
    };
    assert_eq!(
        (after_head(1), after_head(2)),
        ("audit.taken-back".into(), "registry.restored".into())
    );
    let details = sqlite(
        &live,
        "SELECT details FROM audit_events WHERE action = 'registry.restored'",
    );
    let details: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert_eq!(details["taken_back_from_centre"], head - copy_last);
    assert_eq!(details["taken_back_after_seq"], copy_last);
    let o = st.run(
        &["audit", "verify-log", "--operator", "admin"],
        &[ADMIN_PASSWORD],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let read = centre.ok(&[
        "--json",
        "audit",
        "search",
        "--action",
        "station.audit-read",
        "--operator",
        "admin",
    ]);
    assert!(read.contains("tas01-st1"), "{read}");

    // The restored station anchors again: its next push extends the centre's head.
    let next = anchored_change(&st, "clerk5");
    assert!(next > head + 1, "{next}");

    // The copy put back once more, and a mistyped password at `backup restored`: the events
    // are taken back before the log-in, so the refused log-in is written after them and the
    // next run finds the log the centre holds (nothing more to take), not a fork.
    put_in_place(&st, &copy, &st.dir.join("registry-1.sqlite"));
    let o = st.run(
        &["--json", "backup", "restored", "--operator", "admin"],
        &["not-the-password-1"],
        &[],
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let done = ok(restored(&st, &[]));
    assert_eq!(done["taken_back"]["events"], 0, "{done}");
    assert_eq!(
        events_up_to(&live, next),
        events_up_to(&st.dir.join("registry-1.sqlite"), next)
    );
    let refused = sqlite(
        &live,
        &format!(
            "SELECT count(*) FROM audit_events WHERE seq > {next} AND action = 'operator.refused'"
        ),
    );
    assert_eq!(refused, "1");

    // A copy whose log went its own way after the centre's head: the centre stopped, the
    // restore refused (exit 7, nothing changed) and then finished with `--without-centre`; a
    // change made and backed up, the centre started again.
    put_in_place(&st, &copy, &st.dir.join("registry-2.sqlite"));
    centre.stop();
    let o = restored(&st, &[]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert_eq!(
        sqlite(&live, "SELECT max(seq) FROM audit_events"),
        copy_last.to_string()
    );
    let done = ok(restored(&st, &["--without-centre"]));
    assert!(done.get("taken_back").is_none(), "{done}");
    centre.serve();
    checkpointed_change(&st, "clerk6");
    let o = st.run(&["--json", "centre", "push-audit"], &[], &[]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "the centre refuses a fork: {}",
        text(&o)
    );
    let forked = backup(&st, "forked.sqlite");
    let forked_last = sqlite(&forked, "SELECT max(seq) FROM audit_events");
    put_in_place(&st, &forked, &st.dir.join("registry-3.sqlite"));
    let o = restored(&st, &[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("differ at sequence"),
        "{}",
        text(&o)
    );
    // Nothing taken: the copy's log as it was, still a backup copy to finish.
    assert_eq!(
        sqlite(&live, "SELECT max(seq) FROM audit_events"),
        forked_last
    );
    assert_ne!(sqlite(&live, "PRAGMA application_id"), "0");
}
