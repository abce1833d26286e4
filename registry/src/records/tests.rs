//! The record modules' tests, and the holder and address fixtures other modules' tests use.

use std::sync::OnceLock;

use super::*;
use crate::testutil::{actor, temp_registry};
use crate::{Actor, Registry};

/// The built-in default document profile ([`profiles::DEFAULT_DOCUMENT`]): the fixtures take
/// their country codes from it, as the station does.
fn document_profile() -> &'static profiles::document::DocumentProfile {
    static DOC: OnceLock<profiles::document::DocumentProfile> = OnceLock::new();
    DOC.get_or_init(|| {
        let set = profiles::builtin().expect("built-in profiles");
        let doc = set.document(profiles::DEFAULT_DOCUMENT);
        doc.expect("default document profile").clone()
    })
}

pub fn holder(pinfl: &str) -> NewHolder {
    NewHolder {
        pinfl: pinfl.into(),
        surname: "Karimova".into(),
        given_names: "Dilnoza".into(),
        patronymic: Some("Rustamovna".into()),
        surname_cyrillic: Some("Каримова".into()),
        given_names_cyrillic: Some("Дилноза".into()),
        patronymic_cyrillic: None,
        sex: "F".into(),
        date_of_birth: "1985-02-14".into(),
        place_of_birth: "Toshkent".into(),
        citizenship: document_profile().default_nationality.clone(),
        photo_sha256: None,
    }
}

pub fn address() -> NewAddress {
    NewAddress {
        kind: AddressKind::Permanent,
        region: "Toshkent shahri".into(),
        district: "Yunusobod".into(),
        street: "Amir Temur".into(),
        house: "12".into(),
        apartment: Some("5".into()),
        registered_on: "2010-05-01".into(),
        registered_until: None,
    }
}

fn count(reg: &Registry, table: &str) -> i64 {
    reg.connection()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn bad_holder_input_is_refused_naming_field_and_rule_and_nothing_is_written() {
    let (_d, mut reg) = temp_registry();
    let a = actor();
    let cases: Vec<(NewHolder, NewAddress, &str, &str)> = vec![
        (
            holder("3140585000001"),
            address(),
            "pinfl",
            "exactly 14 digits",
        ),
        (
            NewHolder {
                date_of_birth: "1985-02-30".into(),
                ..holder("31405850000012")
            },
            address(),
            "date_of_birth",
            "not a calendar date",
        ),
        (
            holder("31405850000012"),
            NewAddress {
                kind: AddressKind::Temporary,
                registered_until: None,
                ..address()
            },
            "address.registered_until",
            "temporary address needs an end date",
        ),
        (
            holder("31405850000012"),
            NewAddress {
                kind: AddressKind::Temporary,
                registered_until: Some("2009-01-01".into()),
                ..address()
            },
            "address.registered_until",
            "must be after address.registered_on",
        ),
        (
            NewHolder {
                // The country's alpha-2 code where an alpha-3 one is due.
                citizenship: document_profile().country.clone(),
                photo_sha256: None,
                ..holder("31405850000012")
            },
            address(),
            "citizenship",
            "alpha-3",
        ),
    ];
    for (h, ad, field, rule) in cases {
        let e = reg.write(|tx| tx.insert_holder(&h, &ad, &a)).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, Error::Invalid { field: f, .. } if f == field),
            "{msg}"
        );
        assert!(msg.contains(field) && msg.contains(rule), "{msg}");
        assert_eq!(count(&reg, "holders"), 0, "nothing written for {field}");
        assert_eq!(count(&reg, "addresses"), 0);
    }
}

#[test]
fn a_bad_address_rolls_back_the_holder_written_before_it_in_the_same_transaction() {
    let (_d, mut reg) = temp_registry();
    let a = actor();
    let e = reg
        .write(|tx| {
            let id = tx.insert_holder(&holder("31405850000012"), &address(), &a)?;
            tx.add_address(
                id,
                &NewAddress {
                    kind: AddressKind::Temporary,
                    registered_until: None,
                    ..address()
                },
                &a,
            )
        })
        .unwrap_err();
    assert!(e.to_string().contains("registered_until"));
    assert_eq!(count(&reg, "holders"), 0);
    assert_eq!(count(&reg, "addresses"), 0);
}

#[test]
fn addresses_keep_history_and_cannot_be_overwritten() {
    let (_d, mut reg) = temp_registry();
    let a = actor();
    let id = reg
        .write(|tx| tx.insert_holder(&holder("31405850000012"), &address(), &a))
        .unwrap();
    let temp = NewAddress {
        kind: AddressKind::Temporary,
        registered_on: "2024-01-01".into(),
        registered_until: Some("2025-01-01".into()),
        ..address()
    };
    reg.write(|tx| tx.add_address(id, &temp, &a)).unwrap();
    let hist = reg.addresses(id).unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[1].data, temp);
    assert!(reg
        .connection()
        .execute("UPDATE addresses SET street = 'x'", [])
        .is_err());
    assert!(reg
        .connection()
        .execute("DELETE FROM addresses", [])
        .is_err());
}

#[test]
fn holders_are_found_by_pinfl_and_by_name_and_duplicates_conflict() {
    let (_d, mut reg) = temp_registry();
    let a = actor();
    reg.write(|tx| tx.insert_holder(&holder("31405850000012"), &address(), &a))
        .unwrap();
    let e = reg
        .write(|tx| tx.insert_holder(&holder("31405850000012"), &address(), &a))
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    let h = reg.holder_by_pinfl("31405850000012").unwrap().unwrap();
    assert_eq!(h.data, holder("31405850000012"));
    assert_eq!(reg.holders_by_name("karim", 10).unwrap().len(), 1);
    assert_eq!(reg.holders_by_name("Карим", 10).unwrap().len(), 1);
    assert!(reg.holders_by_name("Zz", 10).unwrap().is_empty());
}

#[test]
fn dual_control_refuses_self_approval_double_approval_and_counts_distinct_admins() {
    let (_d, mut reg) = temp_registry();
    let a = Actor::new("admin-a", "ca-admin", "S1");
    let b = Actor::new("admin-b", "ca-admin", "S1");
    let exp = crate::format_time(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    let id = reg
        .write(|tx| tx.create_ca_request("rotate", "esign", &serde_json::json!({}), 2, &exp, &a))
        .unwrap();
    assert!(matches!(
        reg.write(|tx| tx.approve_ca_request(id, &a)),
        Err(Error::Conflict(_))
    ));
    assert_eq!(reg.write(|tx| tx.approve_ca_request(id, &b)).unwrap(), 1);
    assert!(matches!(
        reg.write(|tx| tx.approve_ca_request(id, &b)),
        Err(Error::Conflict(_))
    ));
    let r = reg.ca_request(id).unwrap().unwrap();
    assert_eq!(r.approvals, vec!["admin-b".to_string()]);
}

#[test]
fn only_one_active_key_per_ca_and_state_history_names_approvers() {
    let (_d, mut reg) = temp_registry();
    let a = Actor::new("admin-a", "ca-admin", "S1");
    let (k1, k2) = reg
        .write(|tx| {
            let k1 = tx.insert_ca_key("esign-1", "esign", "issuing", b"spki-1", &a)?;
            let k2 = tx.insert_ca_key("esign-2", "esign", "issuing", b"spki-2", &a)?;
            tx.set_ca_key_state(k1, CaKeyState::Active, &a, &["admin-b"], None)?;
            Ok((k1, k2))
        })
        .unwrap();
    let e = reg
        .write(|tx| tx.set_ca_key_state(k2, CaKeyState::Active, &a, &["admin-b"], None))
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    reg.write(|tx| {
        tx.set_ca_key_state(k1, CaKeyState::Retired, &a, &["admin-b"], Some("rollover"))?;
        tx.set_ca_key_state(k2, CaKeyState::Active, &a, &["admin-b"], Some("rollover"))
    })
    .unwrap();
    assert_eq!(reg.active_ca_key("esign").unwrap().unwrap().id, k2);
    let h = reg.ca_key_history(k1).unwrap();
    assert_eq!(
        h.iter().map(|c| c.state.as_str()).collect::<Vec<_>>(),
        ["generated", "active", "retired"]
    );
    assert_eq!(h[2].approvers, vec!["admin-b".to_string()]);
}

#[test]
fn operators_store_argon2_hashes_only() {
    let (_d, mut reg) = temp_registry();
    let e = reg
        .write(|tx| tx.add_operator("bob", Role::Clerk, "hunter2", None))
        .unwrap_err();
    assert!(
        !e.to_string().contains("hunter2"),
        "the value is not echoed"
    );
    reg.write(|tx| {
        tx.add_operator(
            "bob",
            Role::Clerk,
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            None,
        )
    })
    .unwrap();
    assert_eq!(reg.operator("bob").unwrap().unwrap().role, Role::Clerk);
}

#[test]
fn crl_numbers_rise_per_key_and_are_never_reused() {
    let (_d, mut reg) = temp_registry();
    let a = actor();
    let (k1, k2) = reg
        .write(|tx| {
            let k1 = tx.insert_ca_key("esign-1", "esign", "issuing", b"spki-1", &a)?;
            let k2 = tx.insert_ca_key("esign-2", "esign", "issuing", b"spki-2", &a)?;
            Ok((k1, k2))
        })
        .unwrap();
    let t = ("2026-11-25T10:00:00Z", "2026-11-26T10:00:00Z");
    reg.write(|tx| {
        assert_eq!(tx.next_crl_number(k1)?, 1);
        tx.record_crl(k1, 1, t.0, t.1, b"crl-1")?;
        assert_eq!(tx.next_crl_number(k1)?, 2);
        tx.record_crl(k1, 2, t.0, t.1, b"crl-2")?;
        assert_eq!(tx.next_crl_number(k2)?, 1, "each key has its own numbering");
        Ok(())
    })
    .unwrap();
    let again = reg.write(|tx| tx.record_crl(k1, 2, t.0, t.1, b"again"));
    assert!(matches!(again, Err(Error::Conflict(m)) if m.contains("not above the last one (2)")));
    let bad = reg.write(|tx| tx.record_crl(k1, 3, "yesterday", t.1, b"x"));
    assert!(matches!(bad, Err(Error::Invalid { field, .. }) if field == "this_update"));
    assert_eq!(reg.latest_crl(k1).unwrap(), Some((2, b"crl-2".to_vec())));
    assert_eq!(
        reg.ca_key_by_label("esign-2").unwrap().map(|k| k.id),
        Some(k2)
    );
    assert_eq!(reg.ca_key_by_label("nope").unwrap(), None);
}

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0f1dOTtbq4dAX8LSq0vDr4g3Jp5bd6HsTWkm1nqvDqo";

#[test]
fn an_approver_who_became_a_ca_admin_after_the_request_cannot_approve_it() {
    let (_d, mut reg) = temp_registry();
    let a = Actor::new("alice", "ca-admin", "S1");
    let b = Actor::new("bob", "ca-admin", "S1");
    let m = Actor::new("mallory", "ca-admin", "S1");
    reg.write(|tx| tx.add_operator("alice", Role::CaAdmin, PHC, None))
        .unwrap();
    reg.write(|tx| tx.add_operator("bob", Role::CaAdmin, PHC, None))
        .unwrap();
    let exp = crate::time_in(600);
    let id = reg
        .write(|tx| tx.create_ca_request("rotate", "esign", &serde_json::json!({}), 2, &exp, &a))
        .unwrap();
    reg.write(|tx| tx.add_operator("mallory", Role::CaAdmin, PHC, Some(&a)))
        .unwrap();
    let e = reg.write(|tx| tx.approve_ca_request(id, &m)).unwrap_err();
    assert!(
        matches!(&e, Error::Conflict(w) if w.contains("approver mallory holds the role since")
            && w.contains(&format!("after CA request {id} was filed"))),
        "{e}"
    );
    assert_eq!(reg.write(|tx| tx.approve_ca_request(id, &b)).unwrap(), 1);
    // Re-enabling bob restarts his role's age: a later request's approval is refused too.
    reg.write(|tx| tx.set_operator_active("bob", false))
        .unwrap();
    reg.write(|tx| tx.set_operator_active("bob", true)).unwrap();
    let id2 = reg
        .write(|tx| tx.create_ca_request("rotate", "root", &serde_json::json!({}), 1, &exp, &a))
        .unwrap();
    assert_eq!(reg.write(|tx| tx.approve_ca_request(id2, &b)).unwrap(), 1);
    reg.write(|tx| tx.set_operator_role("bob", Role::Clerk))
        .unwrap();
    reg.write(|tx| tx.set_operator_role("bob", Role::CaAdmin))
        .unwrap();
    let id3 = reg
        .write(|tx| tx.create_ca_request("revoke-ca", "esign", &serde_json::json!({}), 1, &exp, &a))
        .unwrap();
    assert_eq!(reg.write(|tx| tx.approve_ca_request(id3, &b)).unwrap(), 1);
    assert!(reg.write(|tx| tx.approve_ca_request(id, &m)).is_err());
}

#[test]
fn five_wrong_passwords_lock_and_only_unlock_lifts_the_lock() {
    let (_d, mut reg) = temp_registry();
    reg.write(|tx| tx.add_operator("clerk", Role::Clerk, PHC, None))
        .unwrap();
    // A right password counts nothing.
    assert_eq!(
        reg.write(|tx| tx.count_failed_login("clerk", false))
            .unwrap(),
        (0, false)
    );
    for n in 1..MAX_FAILED_LOGINS {
        assert_eq!(
            reg.write(|tx| tx.count_failed_login("clerk", true))
                .unwrap(),
            (n, false)
        );
    }
    assert_eq!(
        reg.write(|tx| tx.count_failed_login("clerk", true))
            .unwrap(),
        (MAX_FAILED_LOGINS, true)
    );
    // A successful log-in's reset of the count does not unlock.
    reg.write(|tx| tx.reset_failed_logins("clerk")).unwrap();
    let op = reg.operator("clerk").unwrap().unwrap();
    assert!(op.locked && op.failed_logins == 0);
    reg.write(|tx| tx.unlock_operator("clerk")).unwrap();
    let op = reg.operator("clerk").unwrap().unwrap();
    assert!(!op.locked && op.failed_logins == 0);
}

#[test]
fn a_suspension_records_until_when_it_may_be_resumed_and_an_older_one_has_no_window() {
    let (_d, mut reg) = temp_registry();
    let a = actor();
    reg.write(|tx| tx.add_number_block("TAS01", "AA", 1, 9).map(|_| ()))
        .unwrap();
    let h = reg
        .write(|tx| tx.insert_holder(&holder("31405850000012"), &address(), &a))
        .unwrap();
    let num = reg.allocate_document_number("TAS01").unwrap();
    let doc = reg
        .write(|tx| tx.insert_document(num, h, "TAS01", "2026-01-01", "2036-01-01", &a))
        .unwrap();
    // A suspension without a window, as every one recorded before schema version 10.
    reg.write(|tx| tx.set_document_status(num, DocumentStatus::Suspended, "suspended", &a))
        .unwrap();
    let s = reg.last_suspension(doc).unwrap().expect("suspended");
    assert_eq!(s.resume_until, None);
    reg.write(|tx| tx.set_document_status(num, DocumentStatus::Active, "resumed", &a))
        .unwrap();

    // A bad window is refused naming the field and the rule, and nothing changes.
    let e = reg
        .write(|tx| tx.suspend_document(num, "suspended", &a, "in 30 days"))
        .unwrap_err();
    assert!(
        e.to_string().contains("resume_until") && e.to_string().contains("RFC 3339"),
        "{e}"
    );
    assert_eq!(
        reg.document(num).unwrap().unwrap().status,
        DocumentStatus::Active
    );

    reg.write(|tx| tx.suspend_document(num, "suspended", &a, "2027-01-31T10:00:00Z"))
        .unwrap();
    let s = reg.last_suspension(doc).unwrap().expect("suspended");
    assert_eq!(s.resume_until.as_deref(), Some("2027-01-31T10:00:00Z"));
    // Only a suspension has a window (the schema's CHECK).
    let e = reg
        .connection()
        .execute(
            "INSERT INTO document_status_history (document_id, status, reason, at, operator, resume_until)
             VALUES (?1, 'active', 'resumed', '2027-01-02T00:00:00Z', 'alice', '2027-01-31T10:00:00Z')",
            [doc],
        )
        .unwrap_err();
    assert!(e.to_string().contains("CHECK"), "{e}");
}
