//! The audit log: an append-only hash chain of events with signed checkpoints.
//!
//! Format (normative text: `docs/audit-format.md`): each event's hash is SHA-256 (FIPS 180-4)
//! over a length-prefixed encoding of its fields and the previous event's hash; checkpoints
//! (sequence, hash, time) are signed with ECDSA P-256 / SHA-256 (FIPS 186-4) by a signing
//! function the caller passes in (the station's HSM audit key), signature DER-encoded as
//! `Ecdsa-Sig-Value` (RFC 3279 §2.2.3). Triggers refuse UPDATE and DELETE; verification finds
//! what triggers cannot stop (someone with raw file access).

use std::collections::BTreeMap;

use p256::ecdsa::{DerSignature, VerifyingKey};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::{now_rfc3339, Actor, Error, Registry, Result, Tx};

/// Domain tag of the event hash encoding.
pub const EVENT_DOMAIN: &str = "idstation-audit-event-v1";
/// Domain tag of the checkpoint signing message.
pub const CHECKPOINT_DOMAIN: &str = "idstation-audit-checkpoint-v1";
/// `prev_hash` of the first event (seq 1).
pub const GENESIS_PREV_HASH: [u8; 32] = [0u8; 32];

/// Characters of an operator name a refusal records before cutting it.
pub const MAX_LOGGED_NAME_CHARS: usize = 64;

/// A name someone typed, as a refusal records it: unchanged up to [`MAX_LOGGED_NAME_CHARS`]
/// characters, else its first 64 characters and `…(truncated, N bytes)` with the full length in
/// bytes. Shared by the station and the centre, so both audit logs bound names alike.
pub fn bounded_name(name: &str) -> String {
    match name.char_indices().nth(MAX_LOGGED_NAME_CHARS) {
        None => name.to_string(),
        Some((cut, _)) => format!("{}…(truncated, {} bytes)", &name[..cut], name.len()),
    }
}
/// Outbox topic: a signed audit checkpoint (seq, hash, time, signature), so that a system off
/// the station holds the heads of the audit chain (docs/audit-format.md section 4).
pub const TOPIC_AUDIT_CHECKPOINT: &str = "audit.checkpoint";

/// Keys that must never appear in details (secrets are never logged).
const SECRET_KEYS: &[&str] = &[
    "pin",
    "puk",
    "password",
    "passphrase",
    "management_key",
    "mgmt_key",
    "hsm_pin",
    "so_pin",
    "user_pin",
];

/// One event to append.
#[derive(Debug, Clone, Copy)]
pub struct AuditEntry<'a> {
    pub actor: &'a Actor,
    /// e.g. `issuance.completed`, `operator.login-refused`.
    pub action: &'a str,
    /// What it is about, e.g. `document:AA0000001`, `job:17`.
    pub object: &'a str,
    pub details: &'a serde_json::Value,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub seq: u64,
    pub time: String,
    pub operator: String,
    pub role: String,
    pub station: String,
    pub action: String,
    pub object: String,
    /// Canonical JSON text (see [`canonical_json`]).
    pub details: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl AuditEvent {
    /// Recompute this event's hash from its fields.
    pub fn compute_hash(&self) -> [u8; 32] {
        event_hash(
            self.seq,
            [
                &self.time,
                &self.operator,
                &self.role,
                &self.station,
                &self.action,
                &self.object,
                &self.details,
            ],
            &self.prev_hash,
        )
    }
}

/// A signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: [u8; 32],
    pub time: String,
    /// DER ECDSA signature over [`checkpoint_message`].
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// Verify the signature with the audit key.
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        verify_der(
            key,
            &checkpoint_message(self.seq, &self.hash, &self.time),
            &self.signature,
        )
    }
}

pub(crate) fn verify_der(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> bool {
    use signature::Verifier;
    match DerSignature::from_bytes(sig) {
        Ok(s) => key.verify(msg, &s).is_ok(),
        Err(_) => false,
    }
}

/// SHA-256 of the canonical encoding of one event:
/// `field(EVENT_DOMAIN) ‖ u64be(seq) ‖ field(time) ‖ field(operator) ‖ field(role) ‖
/// field(station) ‖ field(action) ‖ field(object) ‖ field(details) ‖ prev_hash`,
/// where `field(x) = u32be(len(x)) ‖ x` (UTF-8 bytes).
pub fn event_hash(seq: u64, fields: [&str; 7], prev_hash: &[u8; 32]) -> [u8; 32] {
    EventHasher::default().hash(seq, fields.map(str::as_bytes), prev_hash)
}

/// Reusable encoder for [`event_hash`]: builds the encoding in one buffer and hashes it in one
/// call (much faster than many small `update`s when verifying millions of events).
#[derive(Default)]
pub struct EventHasher {
    buf: Vec<u8>,
}

impl EventHasher {
    /// `fields` are the UTF-8 bytes of time, operator, role, station, action, object, details.
    pub fn hash(&mut self, seq: u64, fields: [&[u8]; 7], prev_hash: &[u8]) -> [u8; 32] {
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(&(EVENT_DOMAIN.len() as u32).to_be_bytes());
        b.extend_from_slice(EVENT_DOMAIN.as_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        for f in fields {
            b.extend_from_slice(&(f.len() as u32).to_be_bytes());
            b.extend_from_slice(f);
        }
        b.extend_from_slice(prev_hash);
        Sha256::digest(&b[..]).into()
    }
}

/// The bytes a checkpoint signature covers:
/// `field(CHECKPOINT_DOMAIN) ‖ u64be(seq) ‖ hash ‖ field(time)`.
pub fn checkpoint_message(seq: u64, hash: &[u8; 32], time: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(4 + CHECKPOINT_DOMAIN.len() + 8 + 32 + 4 + time.len());
    m.extend_from_slice(&(CHECKPOINT_DOMAIN.len() as u32).to_be_bytes());
    m.extend_from_slice(CHECKPOINT_DOMAIN.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&(time.len() as u32).to_be_bytes());
    m.extend_from_slice(time.as_bytes());
    m
}

/// Canonical JSON: no whitespace, object keys sorted by their UTF-8 bytes, strings escaped as
/// JSON requires and nothing more (`"` `\` and U+0000..U+001F, the latter as `\b \f \n \r \t`
/// or `\u00xx`), integers in plain decimal; floating-point numbers are refused. Keys naming a
/// secret (`pin`, `puk`, `password`, `management_key`, ...) are refused anywhere in the value.
pub fn canonical_json(v: &serde_json::Value) -> Result<String> {
    let mut out = String::new();
    write_canonical(v, &mut out)?;
    Ok(out)
}

fn write_canonical(v: &serde_json::Value, out: &mut String) -> Result<()> {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                return Err(Error::invalid(
                    "details",
                    n.to_string(),
                    "floating-point numbers are not allowed in canonical JSON (use an integer or a string)",
                ));
            }
        }
        Value::String(s) => json_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out)?;
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
                    return Err(Error::invalid(
                        "details",
                        k.as_str(),
                        "secrets (PIN, PUK, passwords, keys) are never recorded",
                    ));
                }
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                // Key exists: taken from the map's own keys.
                if let Some(x) = m.get(k) {
                    write_canonical(x, out)?;
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Append `s` as a JSON string literal (RFC 8259 §7, minimal escaping).
pub(crate) fn json_string(s: &str, out: &mut String) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{08}' => out.push_str("\\b"),
                '\u{0c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

fn blob32(b: &[u8], what: &str, seq: u64) -> Result<[u8; 32]> {
    b.try_into().map_err(|_| Error::AuditBroken {
        seq,
        reason: format!("{what} is {} bytes, not 32", b.len()),
    })
}

impl Tx<'_> {
    /// Append one event to the audit log (in this transaction).
    pub fn audit(&self, e: &AuditEntry<'_>) -> Result<AuditEvent> {
        crate::validate::text("action", e.action, 100)?;
        let details = canonical_json(e.details)?;
        let last: Option<(i64, Vec<u8>, String)> = self
            .conn()
            .prepare_cached("SELECT seq, hash, time FROM audit_events ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let now = now_rfc3339();
        let (seq, prev_hash, time) = match last {
            Some((s, h, t)) => (
                s as u64 + 1,
                blob32(&h, "hash", s as u64)?,
                if t > now { t } else { now },
            ),
            None => (1, GENESIS_PREV_HASH, now),
        };
        let mut ev = AuditEvent {
            seq,
            time,
            operator: e.actor.operator.clone(),
            role: e.actor.role.clone(),
            station: e.actor.station.clone(),
            action: e.action.to_string(),
            object: e.object.to_string(),
            details,
            prev_hash,
            hash: [0; 32],
        };
        ev.hash = ev.compute_hash();
        self.conn()
            .prepare_cached(
                "INSERT INTO audit_events (seq, time, operator, role, station, action, object, details, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                ev.seq as i64,
                ev.time,
                ev.operator,
                ev.role,
                ev.station,
                ev.action,
                ev.object,
                ev.details,
                &ev.prev_hash[..],
                &ev.hash[..]
            ])?;
        Ok(ev)
    }

    /// Sign a checkpoint over the last event with `sign` (returns a DER ECDSA P-256/SHA-256
    /// signature over the message it is given). `None` if the log is empty.
    pub fn audit_checkpoint<E: std::fmt::Display>(
        &self,
        sign: &crate::SignFn<'_, E>,
    ) -> Result<Option<Checkpoint>> {
        let last: Option<(i64, Vec<u8>)> = self
            .conn()
            .query_row(
                "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((seq, hash)) = last else {
            return Ok(None);
        };
        let seq = seq as u64;
        let hash = blob32(&hash, "hash", seq)?;
        let time = now_rfc3339();
        let msg = checkpoint_message(seq, &hash, &time);
        let signature = sign(&msg).map_err(|e| Error::Signer(e.to_string()))?;
        if DerSignature::from_bytes(&signature).is_err() {
            return Err(Error::Signer(
                "the signing function did not return a DER ECDSA P-256 signature".into(),
            ));
        }
        let inserted = self.conn().execute(
            "INSERT OR IGNORE INTO audit_checkpoints (seq, hash, time, signature) VALUES (?1, ?2, ?3, ?4)",
            params![seq as i64, &hash[..], time, signature],
        )?;
        if inserted == 1 {
            // Published in the same transaction: a system off the station can hold the heads.
            self.outbox_push(
                TOPIC_AUDIT_CHECKPOINT,
                &serde_json::json!({
                    "checkpoint_encoding": CHECKPOINT_DOMAIN,
                    "seq": seq,
                    "hash": hex::encode(hash),
                    "time": time,
                    "signature": hex::encode(&signature),
                }),
            )?;
        }
        Ok(Some(Checkpoint {
            seq,
            hash,
            time,
            signature,
        }))
    }
}

/// What database verification should trust beyond the database itself.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The audit public key: checkpoint signatures are checked when given.
    pub checkpoint_key: Option<VerifyingKey>,
    /// A (seq, hash) held outside the database (e.g. the last export's manifest): the log must
    /// still contain that event with that hash.
    pub anchor: Option<(u64, [u8; 32])>,
}

/// Result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
    pub last_seq: u64,
    pub last_hash: [u8; 32],
    pub checkpoints: u64,
    pub checkpoint_signatures_checked: bool,
}

impl Registry {
    /// Append one event in its own durable transaction.
    pub fn audit(&mut self, e: &AuditEntry<'_>) -> Result<AuditEvent> {
        self.write(|tx| tx.audit(e))
    }

    /// Sign and store a checkpoint over the current last event.
    pub fn audit_checkpoint<E: std::fmt::Display>(
        &mut self,
        sign: &crate::SignFn<'_, E>,
    ) -> Result<Option<Checkpoint>> {
        self.write(|tx| tx.audit_checkpoint(sign))
    }

    /// All checkpoints, by sequence.
    pub fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let mut st = self
            .conn
            .prepare("SELECT seq, hash, time, signature FROM audit_checkpoints ORDER BY seq")?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let seq = r.get::<_, i64>(0)? as u64;
            let h: Vec<u8> = r.get(1)?;
            out.push(Checkpoint {
                seq,
                hash: blob32(&h, "checkpoint hash", seq)?,
                time: r.get(2)?,
                signature: r.get(3)?,
            });
        }
        Ok(out)
    }

    /// Events with `from <= seq <= to`.
    pub fn audit_events(&self, from: u64, to: u64) -> Result<Vec<AuditEvent>> {
        let mut st = self.conn.prepare(
            "SELECT seq, time, operator, role, station, action, object, details, prev_hash, hash
             FROM audit_events WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
        )?;
        let mut rows = st.query(params![
            from.min(i64::MAX as u64) as i64,
            to.min(i64::MAX as u64) as i64
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let seq = r.get::<_, i64>(0)? as u64;
            let p: Vec<u8> = r.get(8)?;
            let h: Vec<u8> = r.get(9)?;
            out.push(AuditEvent {
                seq,
                time: r.get(1)?,
                operator: r.get(2)?,
                role: r.get(3)?,
                station: r.get(4)?,
                action: r.get(5)?,
                object: r.get(6)?,
                details: r.get(7)?,
                prev_hash: blob32(&p, "prev_hash", seq)?,
                hash: blob32(&h, "hash", seq)?,
            });
        }
        Ok(out)
    }

    /// Verify the whole chain in the database. Fails with [`Error::AuditBroken`] naming the
    /// first bad sequence number: an edited or reordered event (its hash no longer matches its
    /// fields), an inserted one (the next link breaks), a deleted one (a gap), or truncation
    /// back past a signed checkpoint or the anchor.
    pub fn verify_audit(&self, opts: &VerifyOptions) -> Result<VerifyReport> {
        let checkpoints: BTreeMap<u64, Checkpoint> = self
            .audit_checkpoints()?
            .into_iter()
            .map(|c| (c.seq, c))
            .collect();
        if let Some(key) = &opts.checkpoint_key {
            for c in checkpoints.values() {
                if !c.verify(key) {
                    return Err(Error::AuditBroken {
                        seq: c.seq,
                        reason: "checkpoint signature does not verify with the audit key".into(),
                    });
                }
            }
        }
        let max_seq: Option<i64> =
            self.conn
                .query_row("SELECT max(seq) FROM audit_events", [], |r| r.get(0))?;
        let max_seq = max_seq.unwrap_or(0).max(0) as u64;
        let mut anchors: BTreeMap<u64, [u8; 32]> =
            checkpoints.iter().map(|(s, c)| (*s, c.hash)).collect();
        // The anchor is checked like a checkpoint (if both name one seq, both must match).
        let anchor_clash = opts.anchor.and_then(|(s, h)| match anchors.insert(s, h) {
            Some(old) if old != h => Some(s),
            _ => None,
        });
        // Two halves on two connections (SQLite reads in WAL run in parallel); events at or
        // below max_seq never change legitimately, so both see the same rows.
        let mid = max_seq / 2;
        let (a, b) = if max_seq >= PARALLEL_MIN {
            let second = Connection::open_with_flags(
                &self.path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            let anchors = &anchors;
            std::thread::scope(|sc| {
                let hb = sc.spawn(move || verify_range(&second, mid + 1, max_seq, anchors));
                let a = verify_range(&self.conn, 1, mid, anchors);
                let b = hb.join().unwrap_or_else(|_| {
                    Err(Error::AuditBroken {
                        seq: mid + 1,
                        reason: "verifier thread panicked".into(),
                    })
                });
                (a, b)
            })
        } else {
            (
                verify_range(&self.conn, 1, max_seq, &anchors),
                Ok(RangeResult::empty()),
            )
        };
        let a = a?;
        // The link between the halves comes before any error inside the second half.
        if mid >= 1 && max_seq >= PARALLEL_MIN {
            let p: Option<Vec<u8>> = self
                .conn
                .query_row(
                    "SELECT prev_hash FROM audit_events WHERE seq = ?1",
                    [(mid + 1) as i64],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(p) = p {
                if p[..] != a.last_hash {
                    return Err(Error::AuditBroken {
                        seq: mid + 1,
                        reason: format!("prev_hash does not match the hash of event {mid}"),
                    });
                }
            }
        }
        let b = b?;
        let count = a.count + b.count;
        let last_hash = if b.count > 0 {
            b.last_hash
        } else {
            a.last_hash
        };
        let last_seq = max_seq;
        if let Some(s) = anchor_clash {
            return Err(Error::AuditBroken {
                seq: s,
                reason: "the anchor differs from the signed checkpoint".into(),
            });
        }
        if let Some((&cseq, _)) = checkpoints.range(last_seq + 1..).next() {
            return Err(Error::AuditBroken {
                seq: last_seq + 1,
                reason: format!(
                    "log truncated: it ends at {last_seq} but a signed checkpoint covers {cseq}"
                ),
            });
        }
        if let Some((aseq, _)) = opts.anchor {
            if aseq > last_seq {
                return Err(Error::AuditBroken {
                    seq: last_seq + 1,
                    reason: format!(
                        "log truncated: it ends at {last_seq} but the anchor is at {aseq}"
                    ),
                });
            }
        }
        Ok(VerifyReport {
            events: count,
            last_seq,
            last_hash,
            checkpoints: checkpoints.len() as u64,
            checkpoint_signatures_checked: opts.checkpoint_key.is_some(),
        })
    }
}

/// From this many events on, verification runs on two connections in two threads.
#[cfg(not(test))]
const PARALLEL_MIN: u64 = 200_000;
/// Small in tests so that the tamper tests exercise the two-thread path.
#[cfg(test)]
const PARALLEL_MIN: u64 = 16;

struct RangeResult {
    count: u64,
    /// Stored prev_hash of the first event of the range (None if the range is empty).
    first_prev: Option<[u8; 32]>,
    last_hash: [u8; 32],
}

impl RangeResult {
    fn empty() -> Self {
        RangeResult {
            count: 0,
            first_prev: None,
            last_hash: GENESIS_PREV_HASH,
        }
    }
}

/// Verify events `from..=to`: no gaps, each hash recomputed over its fields and stored
/// prev_hash, each link to the previous event inside the range, and the hashes named by
/// `anchors` (signed checkpoints, trusted anchor). For `from == 1` the first prev_hash must be
/// the genesis value; the link into a later range is checked by the caller.
fn verify_range(
    conn: &Connection,
    from: u64,
    to: u64,
    anchors: &BTreeMap<u64, [u8; 32]>,
) -> Result<RangeResult> {
    let mut res = RangeResult {
        count: 0,
        first_prev: None,
        last_hash: GENESIS_PREV_HASH,
    };
    if to < from {
        return Ok(res);
    }
    let mut st = conn.prepare(
        "SELECT seq, time, operator, role, station, action, object, details, prev_hash, hash
         FROM audit_events WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
    )?;
    let mut rows = st.query(params![from as i64, to as i64])?;
    let mut expected = from;
    let mut prev = GENESIS_PREV_HASH;
    let mut hasher = EventHasher::default();
    let mut next_anchor = anchors.range(from..=to).next().map(|(s, _)| *s);
    while let Some(r) = rows.next()? {
        let seq = r.get_ref(0)?.as_i64()? as u64;
        if seq != expected {
            return Err(Error::AuditBroken {
                seq: expected,
                reason: format!("event {expected} is missing (next present is {seq})"),
            });
        }
        // The hash covers the stored bytes; no UTF-8 decoding needed (STRICT TEXT columns).
        let t = |i: usize| -> Result<&[u8]> {
            match r.get_ref(i)? {
                rusqlite::types::ValueRef::Text(b) => Ok(b),
                _ => Err(Error::AuditBroken {
                    seq,
                    reason: format!("column {i} is not text"),
                }),
            }
        };
        let fields = [t(1)?, t(2)?, t(3)?, t(4)?, t(5)?, t(6)?, t(7)?];
        let stored_prev = r.get_ref(8)?.as_blob()?;
        let stored_hash = r.get_ref(9)?.as_blob()?;
        if seq == from {
            let p = blob32(stored_prev, "prev_hash", seq)?;
            res.first_prev = Some(p);
            if from == 1 {
                if p != GENESIS_PREV_HASH {
                    return Err(Error::AuditBroken {
                        seq,
                        reason: "prev_hash of the first event is not 32 zero bytes".into(),
                    });
                }
            } else {
                prev = p;
            }
        }
        if stored_prev != prev {
            return Err(Error::AuditBroken {
                seq,
                reason: format!("prev_hash does not match the hash of event {}", seq - 1),
            });
        }
        let computed = hasher.hash(seq, fields, &prev);
        if computed[..] != *stored_hash {
            return Err(Error::AuditBroken {
                seq,
                reason: "stored hash does not match the event's contents (edited or moved)".into(),
            });
        }
        if next_anchor == Some(seq) {
            if anchors.get(&seq) != Some(&computed) {
                return Err(Error::AuditBroken {
                    seq,
                    reason:
                        "event hash differs from the signed checkpoint or anchor (log rewritten)"
                            .into(),
                });
            }
            next_anchor = if seq < to {
                anchors.range(seq + 1..=to).next().map(|(s, _)| *s)
            } else {
                None
            };
        }
        prev = computed;
        expected = seq + 1;
        res.count += 1;
    }
    if expected <= to {
        return Err(Error::AuditBroken {
            seq: expected,
            reason: format!("event {expected} is missing (range ends at {to})"),
        });
    }
    res.last_hash = prev;
    Ok(res)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::{actor, temp_registry};
    use p256::ecdsa::SigningKey;
    use serde_json::json;

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
}
