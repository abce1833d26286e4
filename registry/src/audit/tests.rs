//! Audit log tests: verification of an untouched log, the triggers, every kind of tampering
//! (edited, rewritten, inserted, deleted, swapped and truncated events, forged checkpoint
//! signatures) named by its sequence number, two processes appending at once, canonical JSON
//! and the encoding vector of docs/audit-format.md.

use super::*;
use crate::testutil::{actor, temp_registry};
use p256::ecdsa::SigningKey;
use serde_json::json;
use sha2::{Digest, Sha256};

pub fn test_key() -> SigningKey {
    SigningKey::from_slice(&[0x42; 32]).expect("valid scalar")
}

pub fn signer(k: &SigningKey) -> impl Fn(&[u8]) -> std::result::Result<Vec<u8>, String> + '_ {
    move |m: &[u8]| {
        use signature::Signer;
        let s: DerSignature = k.try_sign(m).map_err(|e| e.to_string())?;
        Ok(s.to_bytes().to_vec())
    }
}

/// A registry with `n` events and checkpoints after events 5, `n - 3` and `n`.
fn log(n: u64) -> (tempfile::TempDir, Registry, SigningKey) {
    let (d, mut reg) = temp_registry();
    let a = actor();
    let k = test_key();
    for i in 1..=n {
        reg.audit(&AuditEntry {
            actor: &a,
            action: "holder.enrolled",
            object: &format!("holder:{i}"),
            details: &json!({"i": i, "note": "line\nbreak \"q\""}),
        })
        .unwrap();
        if i == 5 || i == n - 3 || i == n {
            reg.audit_checkpoint(&signer(&k)).unwrap();
        }
    }
    (d, reg, k)
}

fn opts(k: &SigningKey) -> VerifyOptions {
    VerifyOptions {
        checkpoint_key: Some(*k.verifying_key()),
        anchor: None,
    }
}

fn broken_at(reg: &Registry, k: &SigningKey) -> u64 {
    match reg.verify_audit(&opts(k)) {
        Err(Error::AuditBroken { seq, .. }) => seq,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

fn drop_triggers(reg: &Registry) {
    reg.connection()
        .execute_batch(
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;
             DROP TRIGGER audit_checkpoints_no_update; DROP TRIGGER audit_checkpoints_no_delete;",
        )
        .unwrap();
}

#[test]
fn untouched_log_verifies_with_checkpoint_signatures() {
    let (_d, reg, k) = log(20);
    let r = reg.verify_audit(&opts(&k)).unwrap();
    assert_eq!((r.events, r.last_seq, r.checkpoints), (20, 20, 3));
    assert!(r.checkpoint_signatures_checked);
}

#[test]
fn triggers_refuse_update_and_delete() {
    let (_d, reg, _k) = log(10);
    let e = reg
        .connection()
        .execute("UPDATE audit_events SET action='x' WHERE seq=2", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    assert!(reg
        .connection()
        .execute("DELETE FROM audit_events WHERE seq=3", [])
        .is_err());
    assert!(reg
        .connection()
        .execute("DELETE FROM audit_checkpoints", [])
        .is_err());
}

#[test]
fn edited_event_is_named() {
    let (_d, reg, k) = log(20);
    drop_triggers(&reg);
    reg.connection()
        .execute(
            "UPDATE audit_events SET operator='mallory' WHERE seq=11",
            [],
        )
        .unwrap();
    assert_eq!(broken_at(&reg, &k), 11);
}

#[test]
fn edited_event_with_recomputed_hashes_is_caught_by_the_next_signed_checkpoint() {
    let (_d, reg, k) = log(20);
    drop_triggers(&reg);
    // The attacker rewrites event 8 and recomputes every hash after it.
    reg.connection()
        .execute("UPDATE audit_events SET operator='mallory' WHERE seq=8", [])
        .unwrap();
    let evs = reg.audit_events(1, 20).unwrap();
    let mut prev = evs[6].hash;
    for mut e in evs.into_iter().skip(7) {
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        prev = e.hash;
        reg.connection()
            .execute(
                "UPDATE audit_events SET prev_hash=?2, hash=?3 WHERE seq=?1",
                params![e.seq as i64, &e.prev_hash[..], &e.hash[..]],
            )
            .unwrap();
    }
    assert_eq!(
        broken_at(&reg, &k),
        17,
        "checkpoint after event 17 no longer matches"
    );
}

#[test]
fn an_event_rewritten_with_its_own_hash_recomputed_breaks_the_next_link() {
    // Event 10 is the last of the first half when verification runs in two threads.
    let (_d, reg, k) = log(20);
    drop_triggers(&reg);
    let mut e = reg.audit_events(10, 10).unwrap().remove(0);
    e.operator = "mallory".into();
    e.hash = e.compute_hash();
    reg.connection()
        .execute(
            "UPDATE audit_events SET operator = 'mallory', hash = ?2 WHERE seq = ?1",
            params![10, &e.hash[..]],
        )
        .unwrap();
    assert_eq!(broken_at(&reg, &k), 11);
}

#[test]
fn a_read_only_registry_verifies_the_same_log() {
    let (d, reg, k) = log(20);
    let path = reg.path().to_path_buf();
    drop(reg);
    let ro = Registry::open_read_only(&path).unwrap();
    assert_eq!(ro.verify_audit(&opts(&k)).unwrap().events, 20);
    drop(d);
}

#[test]
fn deleted_event_is_named() {
    let (_d, reg, k) = log(20);
    drop_triggers(&reg);
    reg.connection()
        .execute("DELETE FROM audit_events WHERE seq=7", [])
        .unwrap();
    assert_eq!(broken_at(&reg, &k), 7);
}

#[test]
fn inserted_event_is_named() {
    let (_d, reg, k) = log(20);
    drop_triggers(&reg);
    // Make room at 10 (shift 10..20 up by one, from the top) and insert a forged event
    // that links correctly to event 9.
    for s in (10..=20).rev() {
        reg.connection()
            .execute("UPDATE audit_events SET seq=seq+1 WHERE seq=?1", [s])
            .unwrap();
    }
    let nine = &reg.audit_events(9, 9).unwrap()[0];
    let mut forged = AuditEvent {
        seq: 10,
        time: nine.time.clone(),
        operator: "mallory".into(),
        role: "clerk".into(),
        station: "X".into(),
        action: "holder.enrolled".into(),
        object: "holder:999".into(),
        details: "{}".into(),
        prev_hash: nine.hash,
        hash: [0; 32],
    };
    forged.hash = forged.compute_hash();
    reg.connection()
        .execute(
            "INSERT INTO audit_events VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
            params![
                forged.seq as i64,
                forged.time,
                forged.operator,
                forged.role,
                forged.station,
                forged.action,
                forged.object,
                forged.details,
                &forged.prev_hash[..],
                &forged.hash[..]
            ],
        )
        .unwrap();
    // The forged event is self-consistent; the original event 10 (now 11) is not.
    assert_eq!(broken_at(&reg, &k), 11);
}

#[test]
fn swapped_events_are_named() {
    let (_d, reg, k) = log(20);
    drop_triggers(&reg);
    reg.connection()
        .execute_batch(
            "UPDATE audit_events SET seq = -1 WHERE seq = 12;
             UPDATE audit_events SET seq = 12 WHERE seq = 14;
             UPDATE audit_events SET seq = 14 WHERE seq = -1;",
        )
        .unwrap();
    assert_eq!(broken_at(&reg, &k), 12);
}

#[test]
fn truncated_tail_past_the_last_checkpoint_is_named() {
    let (_d, reg, k) = log(20);
    drop_triggers(&reg);
    // Last checkpoint covers 17: cut back to 15.
    reg.connection()
        .execute("DELETE FROM audit_events WHERE seq > 15", [])
        .unwrap();
    let e = reg.verify_audit(&opts(&k)).unwrap_err();
    assert!(matches!(e, Error::AuditBroken { seq: 16, .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn truncating_events_and_checkpoints_together_is_caught_by_an_external_anchor() {
    let (_d, reg, k) = log(20);
    let anchor = reg.verify_audit(&opts(&k)).unwrap();
    drop_triggers(&reg);
    reg.connection()
        .execute_batch("DELETE FROM audit_events WHERE seq > 15; DELETE FROM audit_checkpoints WHERE seq > 15;")
        .unwrap();
    let e = reg
        .verify_audit(&VerifyOptions {
            checkpoint_key: Some(*k.verifying_key()),
            anchor: Some((anchor.last_seq, anchor.last_hash)),
        })
        .unwrap_err();
    assert!(matches!(e, Error::AuditBroken { seq: 16, .. }), "{e}");
}

#[test]
fn forged_checkpoint_signature_is_named() {
    let (_d, reg, k) = log(10);
    drop_triggers(&reg);
    reg.connection()
        .execute(
            "UPDATE audit_checkpoints SET time = '2000-01-01T00:00:00.000000Z' WHERE seq = 5",
            [],
        )
        .unwrap();
    assert_eq!(broken_at(&reg, &k), 5);
}

const CHILD_ENV: &str = "REGISTRY_TEST_AUDIT_CHILD_DB";

/// Child half of `two_processes_appending_at_once_keep_one_valid_chain` (run by it only).
#[test]
#[ignore = "child process of two_processes_appending_at_once_keep_one_valid_chain"]
fn audit_child_process() {
    let path = std::env::var(CHILD_ENV).expect("run by the parent test only");
    let mut reg = Registry::open(&path).expect("open shared registry");
    let a = Actor::new(&format!("clerk-{}", std::process::id()), "clerk", "S");
    for i in 0..200 {
        reg.audit(&AuditEntry {
            actor: &a,
            action: "test.append",
            object: &format!("n:{i}"),
            details: &json!({}),
        })
        .expect("append");
    }
}

#[test]
fn two_processes_appending_at_once_keep_one_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.sqlite");
    drop(Registry::open(&db).unwrap());
    let exe = std::env::current_exe().unwrap();
    let spawn = || {
        std::process::Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "audit::tests::audit_child_process",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let reg = Registry::open(&db).unwrap();
    let r = reg.verify_audit(&VerifyOptions::default()).unwrap();
    assert_eq!((r.events, r.last_seq), (400, 400));
    let operators: i64 = reg
        .connection()
        .query_row(
            "SELECT count(DISTINCT operator) FROM audit_events",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(operators, 2);
}

#[test]
fn canonical_json_sorts_keys_and_refuses_secrets_and_floats() {
    let v = json!({"b": 1, "a": [true, null, "x\"y"], "é": "ü", "A": {"z": -2, "c": "\u{1}"}});
    assert_eq!(
        canonical_json(&v).unwrap(),
        r#"{"A":{"c":"\u0001","z":-2},"a":[true,null,"x\"y"],"b":1,"é":"ü"}"#
    );
    let e = canonical_json(&json!({"step": {"PIN": "123456"}}))
        .unwrap_err()
        .to_string();
    assert!(!e.contains("123456") && e.contains("secrets"), "{e}");
    assert!(canonical_json(&json!({"x": 1.5})).is_err());
}

#[test]
fn event_hash_matches_the_documented_encoding_vector() {
    // docs/audit-format.md, "Worked example".
    let h = event_hash(
        1,
        [
            "2026-01-01T00:00:00.000000Z",
            "alice",
            "clerk",
            "TAS01-ST1",
            "holder.enrolled",
            "holder:1",
            "{}",
        ],
        &GENESIS_PREV_HASH,
    );
    // Independent construction of the same bytes.
    let mut m = Vec::new();
    for (i, f) in [
        EVENT_DOMAIN,
        "2026-01-01T00:00:00.000000Z",
        "alice",
        "clerk",
        "TAS01-ST1",
        "holder.enrolled",
        "holder:1",
        "{}",
    ]
    .iter()
    .enumerate()
    {
        m.extend_from_slice(&(f.len() as u32).to_be_bytes());
        m.extend_from_slice(f.as_bytes());
        if i == 0 {
            m.extend_from_slice(&1u64.to_be_bytes());
        }
    }
    m.extend_from_slice(&[0u8; 32]);
    assert_eq!(h, <[u8; 32]>::from(Sha256::digest(&m)));
    assert_eq!(hex::encode(h), WORKED_EXAMPLE_HASH);
}

/// The value printed in docs/audit-format.md (computed there independently with Python's
/// hashlib over the same bytes).
pub const WORKED_EXAMPLE_HASH: &str =
    "5fd358db5c17635316837b82239bdebe1f0cbc650ef742a5bac7545e22abdad8";

/// A copy of the first 5 events (and their checkpoint) takes back events 6..=10 and the
/// checkpoint over 10, as the centre holds them: the same log, verified with its signatures.
/// Events that leave a gap, do not chain, do not recompute, or come with a checkpoint that is
/// not over the last of them or not signed by the audit key are refused, nothing written.
#[test]
fn a_restored_copy_takes_back_the_events_it_lacks_and_nothing_that_does_not_extend_it() {
    let (_d, full, k) = log(10);
    let all = full.audit_events(1, 10).unwrap();
    let head = full.audit_checkpoints().unwrap().pop().unwrap();
    assert_eq!(head.seq, 10);
    let (_d2, mut copy) = temp_registry();
    copy.write(|tx| {
        tx.audit_take_back(&all[..5], &full.audit_checkpoints().unwrap()[0], &|c| {
            c.verify(k.verifying_key())
        })
    })
    .unwrap();
    let ours = |c: &Checkpoint| c.verify(k.verifying_key());
    let refused = |copy: &mut Registry, events: &[AuditEvent], cp: &Checkpoint, why: &str| {
        let e = copy
            .write(|tx| tx.audit_take_back(events, cp, &ours))
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{e}");
        assert_eq!(copy.audit_events(1, u64::MAX).unwrap().len(), 5);
    };
    refused(&mut copy, &all[6..], &head, "sequence 7: it follows 5");
    let mut edited = all[5..].to_vec();
    edited[1].details = "{\"i\":99}".into();
    refused(
        &mut copy,
        &edited,
        &head,
        "sequence 7: its hash does not recompute",
    );
    edited[1].hash = edited[1].compute_hash();
    refused(
        &mut copy,
        &edited,
        &head,
        "sequence 8: it does not name the hash of event 7",
    );
    refused(
        &mut copy,
        &all[5..9],
        &head,
        "the checkpoint is not over the last event (sequence 9)",
    );
    let mut forged = head.clone();
    forged.signature = signer(&SigningKey::from_slice(&[0x43; 32]).unwrap())(&checkpoint_message(
        head.seq, &head.hash, &head.time,
    ))
    .unwrap();
    refused(&mut copy, &all[5..], &forged, "signature does not verify");

    copy.write(|tx| tx.audit_take_back(&all[5..], &head, &ours))
        .unwrap();
    assert_eq!(copy.audit_events(1, u64::MAX).unwrap(), all);
    let report = copy.verify_audit(&opts(&k)).unwrap();
    assert_eq!(report.events, 10);
    assert_eq!(copy.audit_checkpoints().unwrap().last(), Some(&head));
}
