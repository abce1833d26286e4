//! Roles and dual control as an insider would attack them (issue 13 items 4-7), through the
//! `idstation` binary and, for the core's own checks, the `station` library:
//! one ca-admin cannot make the second approver of their own request; a locked or disabled
//! account answers exactly like a wrong password; a ca-admin cannot take over another's
//! password; reads of holders' records need an operator and are audited; a session whose
//! account was disabled is refused by the library itself, and the refusal is audited.

#[path = "common/holder_pin.rs"]
mod holder_pin;
#[path = "common/rotation.rs"]
mod rig;
#[path = "common/software_profiles.rs"]
mod software_profiles;

use rig::*;
use zeroize::Zeroizing;

const PINFL: &str = "41505852610128";

/// The exit code and the error line a user sees (the last line of stderr; the rig logs at
/// debug level before it).
fn exit_and_err(o: &std::process::Output) -> (Option<i32>, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .to_string(),
    )
}

/// The last audit event with `action`, as (operator, object, details).
fn last_event(st: &Station, action: &str) -> Option<(String, String, String)> {
    st.registry()
        .audit_events(1, u64::MAX)
        .expect("events")
        .into_iter()
        .rev()
        .find(|e| e.action == action)
        .map(|e| (e.operator, e.object, e.details))
}

fn events(st: &Station, action: &str) -> usize {
    st.registry()
        .audit_events(1, u64::MAX)
        .expect("events")
        .iter()
        .filter(|e| e.action == action)
        .count()
}

fn active_esign(st: &Station) -> String {
    st.registry()
        .active_ca_key("esign")
        .expect("query")
        .expect("an active esign key")
        .label
}

fn add(st: &Station, by: &str, name: &str, role: &str, pw: &str) -> serde_json::Value {
    let o = st.cmd_new(
        by,
        &[
            "--json",
            "operator",
            "add",
            "--name",
            name,
            "--role",
            role,
            "--operator",
            by,
        ],
        pw,
    );
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("json")
}

/// `idstation ARGS` with `password` on standard input (the rig's commands use the
/// operator's own).
fn as_password(st: &Station, password: &str, args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_idstation"));
    c.arg("--data-dir").arg(&st.data).args(args);
    holder_pin::with_stdin(c, &[password])
}

#[test]
fn a_ca_admin_cannot_create_the_second_approver_of_their_own_request() {
    let st = Station::new();
    // The attack of issue 13 item 4: admin files a rotation, then makes a second ca-admin.
    let rot = st.json(
        "admin",
        &["ca", "rotate", "--ca", "esign", "--operator", "admin"],
    );
    let rot_id = rot["id"].as_i64().expect("id").to_string();
    let mallory_pw = "mallory-password-77";
    let added = add(&st, "admin", "mallory", "ca-admin", mallory_pw);
    assert_eq!(added["state"], "pending", "{added}");
    let req = added["request"]["id"]
        .as_i64()
        .expect("request")
        .to_string();
    assert_eq!(added["request"]["kind"], "operator-add");

    // mallory is disabled until another ca-admin approves: her approval is a failed log-in.
    let o = as_password(
        &st,
        mallory_pw,
        &["ca", "approve", &rot_id, "--operator", "mallory"],
    );
    assert_eq!(
        exit_and_err(&o),
        (
            Some(6),
            "idstation: not permitted: mallory: operator name or password is wrong".into()
        ),
        "{}",
        text(&o)
    );
    // admin cannot approve their own operator request either.
    st.refused(
        "admin",
        &["ca", "approve", &req, "--operator", "admin"],
        "cannot also approve it (dual control)",
    );
    // bob (a ca-admin before the request) approves: mallory is enabled …
    let o = st.ok("bob", &["ca", "approve", &req, "--operator", "bob"]);
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("Executed: operator-add mallory: mallory enabled as ca-admin"),
        "{}",
        text(&o)
    );
    // … but she became a ca-admin after the rotation was filed: she cannot approve it.
    let o = as_password(
        &st,
        mallory_pw,
        &["ca", "approve", &rot_id, "--operator", "mallory"],
    );
    let (code, err) = exit_and_err(&o);
    assert_eq!(code, Some(6), "{}", text(&o));
    assert!(
        err.contains("dual control: approver mallory holds the role since") && err.contains(&format!("after CA request {rot_id} was filed"))
            && err.contains("only an operator who was already a ca-admin when a request was filed may approve it"),
        "{err}"
    );
    assert_eq!(active_esign(&st), "esign-ca-1", "nothing rotated");
    let (who, obj, details) = last_event(&st, "ca.request.refused-attempt").expect("audited");
    assert_eq!(
        (who.as_str(), obj.as_str()),
        ("mallory", format!("ca-request:{rot_id}").as_str())
    );
    assert!(details.contains("holds the role since"), "{details}");

    // Re-enabling a disabled ca-admin is dual control too, and restarts their role's age.
    st.ok(
        "admin",
        &[
            "operator",
            "disable",
            "--name",
            "carol",
            "--operator",
            "admin",
        ],
    );
    let en = st.json(
        "admin",
        &[
            "operator",
            "enable",
            "--name",
            "carol",
            "--operator",
            "admin",
        ],
    );
    assert_eq!(en["state"], "pending", "{en}");
    assert_eq!(en["request"]["kind"], "operator-enable");
    st.refused(
        "carol",
        &["ca", "approve", &rot_id, "--operator", "carol"],
        "carol: operator name or password is wrong",
    );
    let en_id = en["request"]["id"].as_i64().expect("id").to_string();
    st.ok("bob", &["ca", "approve", &en_id, "--operator", "bob"]);
    st.refused(
        "carol",
        &["ca", "approve", &rot_id, "--operator", "carol"],
        "dual control: approver carol holds the role since",
    );
    // A clerk made ca-admin by one admin: a request as well.
    let r = st.json(
        "admin",
        &[
            "operator",
            "role",
            "--name",
            "clerk",
            "--role",
            "ca-admin",
            "--operator",
            "admin",
        ],
    );
    assert_eq!(r["request"]["kind"], "operator-role", "{r}");
    assert_eq!(r["role"], "clerk");
    // bob held the role before the rotation was filed: his approval runs it.
    st.ok("bob", &["ca", "approve", &rot_id, "--operator", "bob"]);
    assert_eq!(active_esign(&st), "esign-ca-2");
}

#[test]
fn five_wrong_passwords_lock_an_account_and_a_locked_or_disabled_one_answers_like_a_wrong_password()
{
    let st = Station::new();
    let args = ["recover", "--operator", "clerk"];
    let wrong = exit_and_err(&as_password(&st, "not-the-password-1", &args));
    assert_eq!(
        wrong,
        (
            Some(6),
            "idstation: not permitted: clerk: operator name or password is wrong".into()
        )
    );
    let unknown = exit_and_err(&as_password(
        &st,
        "whatever-password",
        &["recover", "--operator", "nobody"],
    ));
    assert_eq!(unknown.0, Some(6));
    assert_eq!(unknown.1, wrong.1.replace("clerk:", "nobody:"));
    for _ in 1..5 {
        assert_eq!(
            exit_and_err(&as_password(&st, "not-the-password-1", &args)),
            wrong
        );
    }
    let (_, _, details) = last_event(&st, "operator.locked").expect("lock audited");
    assert!(details.contains("\"failed_logins\":5"), "{details}");
    // The right password now fails exactly like a wrong one.
    let locked = st.cmd("clerk", &args);
    assert_eq!(exit_and_err(&locked), wrong, "{}", text(&locked));
    let (_, _, details) = last_event(&st, "operator.refused").expect("refusal");
    assert!(
        details.contains("account locked after 5 wrong passwords"),
        "{details}"
    );
    let list = st.json("admin", &["operator", "list", "--operator", "admin"]);
    let clerk = list
        .as_array()
        .expect("array")
        .iter()
        .find(|o| o["name"] == "clerk")
        .expect("clerk listed")
        .clone();
    assert_eq!(clerk["state"], "locked", "{clerk}");

    // Nobody unlocks themself; a ca-admin unlocks, and the right password works again.
    st.refused(
        "admin",
        &[
            "operator",
            "unlock",
            "--name",
            "admin",
            "--operator",
            "admin",
        ],
        "admin cannot unlock themself; another ca-admin must do it",
    );
    st.ok(
        "admin",
        &[
            "operator",
            "unlock",
            "--name",
            "clerk",
            "--operator",
            "admin",
        ],
    );
    assert!(last_event(&st, "operator.unlocked").is_some());
    st.ok("clerk", &args);

    // Disabled: the same answer, with the right password.
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
    assert_eq!(exit_and_err(&st.cmd("clerk", &args)), wrong);
    // Enabling a clerk takes one ca-admin.
    let en = st.json(
        "admin",
        &[
            "operator",
            "enable",
            "--name",
            "clerk",
            "--operator",
            "admin",
        ],
    );
    assert_eq!(en["state"], "active", "{en}");
    st.ok("clerk", &args);
}

#[test]
fn operators_change_their_own_password_and_no_ca_admin_resets_another_ca_admins() {
    let st = Station::new();
    let new_pw = "clerk-new-password-9";
    let o = st.cmd_new(
        "clerk",
        &["operator", "passwd", "--operator", "clerk"],
        new_pw,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        st.cmd("clerk", &["recover", "--operator", "clerk"])
            .status
            .code(),
        Some(6)
    );
    assert!(
        as_password(&st, new_pw, &["recover", "--operator", "clerk"])
            .status
            .success()
    );
    // A clerk may not reset someone else's.
    let o = as_password(
        &st,
        new_pw,
        &[
            "operator",
            "passwd",
            "--name",
            "admin",
            "--operator",
            "clerk",
        ],
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    // A ca-admin resets a clerk's …
    let o = st.cmd_new(
        "admin",
        &[
            "operator",
            "passwd",
            "--name",
            "clerk",
            "--operator",
            "admin",
        ],
        password("clerk"),
    );
    assert!(o.status.success(), "{}", text(&o));
    st.ok("clerk", &["recover", "--operator", "clerk"]);
    // … but never another ca-admin's: that would make one admin two.
    let o = st.cmd_new(
        "admin",
        &["operator", "passwd", "--name", "bob", "--operator", "admin"],
        "admin-knows-this-1",
    );
    assert_eq!(exit_and_err(&o).0, Some(6), "{}", text(&o));
    assert!(
        exit_and_err(&o)
            .1
            .contains("bob is a ca-admin: only bob can change their password"),
        "{}",
        text(&o)
    );
    st.ok("bob", &["ca", "requests"]);
    assert_eq!(events(&st, "operator.password-changed"), 2);
}

fn add_holder(st: &Station) {
    let mut reg = registry::Registry::open(st.data.join("registry.sqlite")).expect("registry");
    let by = registry::Actor::new("clerk", "clerk", "rot");
    reg.write(|tx| {
        tx.insert_holder(
            &registry::NewHolder {
                pinfl: PINFL.into(),
                surname: "Karimova".into(),
                given_names: "Dilnoza".into(),
                patronymic: None,
                surname_cyrillic: None,
                given_names_cyrillic: None,
                patronymic_cyrillic: None,
                sex: "F".into(),
                date_of_birth: "1985-02-14".into(),
                place_of_birth: "Toshkent".into(),
                citizenship: "UZB".into(),
                photo_sha256: None,
            },
            &registry::NewAddress {
                kind: registry::AddressKind::Permanent,
                region: "Toshkent shahri".into(),
                district: "Yunusobod".into(),
                street: "Amir Temur".into(),
                house: "12".into(),
                apartment: None,
                registered_on: "2010-05-01".into(),
                registered_until: None,
            },
            &by,
        )
    })
    .expect("holder");
}

#[test]
fn reading_a_holder_needs_an_operator_and_every_read_is_audited() {
    let st = Station::new();
    add_holder(&st);
    // Without an operator: refused before anything is read (exit 2, the flag named).
    let o = st.cmd("clerk", &["show", "--pinfl", PINFL]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--operator <OPERATOR>"),
        "{}",
        text(&o)
    );
    for args in [
        vec!["outbox", "list"],
        vec!["operator", "list"],
        vec!["ca", "reissue-list"],
    ] {
        let o = st.cmd("admin", &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    }
    assert_eq!(events(&st, "holder.read"), 0);
    // A ca-admin has no business with holders' records; the refusal is audited.
    st.refused(
        "admin",
        &["show", "--pinfl", PINFL, "--operator", "admin"],
        "role ca-admin may not read holder records (needs clerk or auditor)",
    );
    // The clerk reads: who read whose record is in the log.
    let v = st.json("clerk", &["show", "--pinfl", PINFL, "--operator", "clerk"]);
    assert_eq!(v["holder"]["surname"], "Karimova");
    let (who, obj, details) = last_event(&st, "holder.read").expect("read audited");
    assert_eq!(
        (who.as_str(), obj.as_str()),
        ("clerk", "holder:41505852610128")
    );
    assert!(details.contains("show --pinfl"), "{details}");
    assert_eq!(events(&st, "holder.read"), 1);
    // Operator list: clerks may not.
    st.refused(
        "clerk",
        &["operator", "list", "--operator", "clerk"],
        "role clerk may not list operators",
    );
}

#[test]
fn the_core_checks_roles_itself_and_a_stale_session_is_refused_and_audited() {
    let st = Station::new();
    add_holder(&st);
    let mut station = station::Station::open_read_only(&st.data).expect("open");
    let clerk = station
        .authorize(
            "clerk",
            &Zeroizing::new(password("clerk").into()),
            "test",
            &[registry::Role::Clerk],
        )
        .expect("clerk");
    // A clerk's session cannot do a ca-admin's or an auditor's work, whatever the caller.
    let e = station::operators::list(&mut station, &clerk).expect_err("clerk lists operators");
    assert!(
        e.to_string()
            .contains("role clerk may not list operators (needs ca-admin or auditor)"),
        "{e}"
    );
    let e = station::interactive::audit_events(&mut station, &clerk).expect_err("audit log");
    assert_eq!(e.exit_code(), 6, "{e}");
    let e = station::operators::unlock(&mut station, &clerk, "bob").expect_err("unlock");
    assert_eq!(e.exit_code(), 6, "{e}");
    assert!(events(&st, "operator.refused") >= 3);

    // The session keeps working while the account is as it was …
    station::records::show_pinfl(&mut station, &clerk, PINFL).expect("read");
    // … and stops the moment a ca-admin disables the account (the GUI's case).
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
    let e = station::records::show_pinfl(&mut station, &clerk, PINFL).expect_err("stale");
    assert_eq!(
        e.to_string(),
        "not permitted: clerk: operator name or password is wrong"
    );
    let (who, _, details) = last_event(&st, "operator.refused").expect("audited");
    assert_eq!(who, "clerk");
    assert!(
        details.contains("session ended: operator is disabled"),
        "{details}"
    );
    assert_eq!(
        events(&st, "holder.read"),
        1,
        "only the first read happened"
    );
}
