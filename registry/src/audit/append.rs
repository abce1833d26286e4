//! Appending to the audit log: one event, validated and hashed onto the chain, in the caller's
//! transaction or in its own durable one; and a checkpoint over the current last event, signed
//! with ECDSA P-256 / SHA-256 (FIPS 186-4) by the function the caller passes in, signature
//! DER-encoded as `Ecdsa-Sig-Value` (RFC 3279 §2.2.3).

use p256::ecdsa::DerSignature;
use rusqlite::{params, OptionalExtension};

use super::{blob32, canonical_json, checkpoint_message};
use super::{AuditEntry, AuditEvent, Checkpoint};
use super::{CHECKPOINT_DOMAIN, GENESIS_PREV_HASH, TOPIC_AUDIT_CHECKPOINT};
use crate::{now_rfc3339, Error, Registry, Result, Tx};

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
        self.insert_event(&ev)?;
        Ok(ev)
    }

    /// One event row as it is (its hash computed by the caller).
    fn insert_event(&self, e: &AuditEvent) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO audit_events (seq, time, operator, role, station, action, object, details, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                e.seq as i64,
                e.time,
                e.operator,
                e.role,
                e.station,
                e.action,
                e.object,
                e.details,
                &e.prev_hash[..],
                &e.hash[..]
            ])?;
        Ok(())
    }

    /// The last event's sequence number and hash; `None` for an empty log.
    fn last_event(&self) -> Result<Option<(u64, [u8; 32])>> {
        let last: Option<(i64, Vec<u8>)> = self
            .conn()
            .query_row(
                "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        last.map(|(s, h)| Ok((s as u64, blob32(&h, "hash", s as u64)?)))
            .transpose()
    }

    /// Sign a checkpoint over the last event with `sign` (returns a DER ECDSA P-256/SHA-256
    /// signature over the message it is given). `None` if the log is empty.
    pub fn audit_checkpoint<E: std::fmt::Display>(
        &self,
        sign: &crate::SignFn<'_, E>,
    ) -> Result<Option<Checkpoint>> {
        let Some((seq, hash)) = self.last_event()? else {
            return Ok(None);
        };
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

    /// Append `events` as they are — sequence numbers, times, hashes — and the signed
    /// `checkpoint` over the last of them: the events a centre holds of this log and a copy
    /// restored from a backup lacks (docs/station.md "Backup and restore"). Refused, nothing
    /// written, unless they follow this log's last event one by one, each naming the hash
    /// before it and each hash recomputing, and the checkpoint names the last event's sequence
    /// number and hash and `verify` accepts its signature.
    pub fn audit_take_back(
        &self,
        events: &[AuditEvent],
        checkpoint: &Checkpoint,
        verify: &dyn Fn(&Checkpoint) -> bool,
    ) -> Result<()> {
        let (mut seq, mut prev) = self.last_event()?.unwrap_or((0, GENESIS_PREV_HASH));
        let refused = |at: u64, reason: String| {
            Error::Conflict(format!(
                "the events taken back do not extend this audit log at sequence {at}: {reason}; \
             nothing was written"
            ))
        };
        for e in events {
            if e.seq != seq + 1 {
                return Err(refused(e.seq, format!("it follows {seq}")));
            }
            if e.prev_hash != prev {
                return Err(refused(
                    e.seq,
                    format!("it does not name the hash of event {seq}"),
                ));
            }
            if e.compute_hash() != e.hash {
                return Err(refused(e.seq, "its hash does not recompute".into()));
            }
            (seq, prev) = (e.seq, e.hash);
        }
        if checkpoint.seq != seq || checkpoint.hash != prev {
            return Err(refused(
                checkpoint.seq,
                format!("the checkpoint is not over the last event (sequence {seq})"),
            ));
        }
        if !verify(checkpoint) {
            return Err(refused(
                checkpoint.seq,
                "the checkpoint's signature does not verify with this station's audit key".into(),
            ));
        }
        for e in events {
            self.insert_event(e)?;
        }
        self.conn().execute(
            "INSERT OR IGNORE INTO audit_checkpoints (seq, hash, time, signature) VALUES (?1, ?2, ?3, ?4)",
            params![
                checkpoint.seq as i64,
                &checkpoint.hash[..],
                checkpoint.time,
                checkpoint.signature
            ],
        )?;
        Ok(())
    }
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
}
