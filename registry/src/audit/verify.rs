//! Verification of the audit log in the database: every event's hash recomputed over its
//! fields, every link to the previous event, no gaps, the genesis value at seq 1, the signed
//! checkpoints (ECDSA P-256, FIPS 186-4) and an external anchor. A large log is verified on two
//! connections in two threads. Verification finds what the triggers cannot stop (someone with
//! raw file access) and names the first bad sequence number.

use std::collections::BTreeMap;

use p256::ecdsa::VerifyingKey;
use rusqlite::{params, Connection, OptionalExtension};

use super::{blob32, Checkpoint, EventHasher, GENESIS_PREV_HASH};
use crate::{Error, Registry, Result};

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
