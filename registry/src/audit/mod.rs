//! The audit log: an append-only hash chain of events with signed checkpoints.
//!
//! Format (normative text: `docs/audit-format.md`): each event's hash is SHA-256 (FIPS 180-4)
//! over a length-prefixed encoding of its fields and the previous event's hash; checkpoints
//! (sequence, hash, time) are signed with ECDSA P-256 / SHA-256 (FIPS 186-4) by a signing
//! function the caller passes in (the station's HSM audit key), signature DER-encoded as
//! `Ecdsa-Sig-Value` (RFC 3279 §2.2.3). Triggers refuse UPDATE and DELETE; verification finds
//! what triggers cannot stop (someone with raw file access).
//!
//! Split by responsibility: `encoding` (the event hash and checkpoint message encodings,
//! canonical JSON), `append` (appending events and signed checkpoints), `verify` (database
//! verification); this file holds the event and checkpoint types and reads them back.

use p256::ecdsa::{DerSignature, VerifyingKey};
use rusqlite::params;

use crate::{Actor, Error, Registry, Result};

mod append;
mod encoding;
mod verify;

pub(crate) use encoding::json_string;
pub use encoding::{canonical_json, checkpoint_message, event_hash, EventHasher};
pub use verify::{VerifyOptions, VerifyReport};

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

fn blob32(b: &[u8], what: &str, seq: u64) -> Result<[u8; 32]> {
    b.try_into().map_err(|_| Error::AuditBroken {
        seq,
        reason: format!("{what} is {} bytes, not 32", b.len()),
    })
}

impl Registry {
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
}

#[cfg(test)]
pub(crate) mod tests;
