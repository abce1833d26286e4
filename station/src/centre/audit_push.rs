//! Anchoring the station's audit log at the centre (`POST /v1/audit/push`, docs/centre.md
//! "Audit anchoring"): the events after the head the centre holds, up to the station's latest
//! signed checkpoint, and that checkpoint. The centre accepts only events that extend its head,
//! so a station's history, once pushed, cannot be rewritten on the station unnoticed.

use centre_api::{paths, AuditEventWire, AuditHead, AuditPush, CheckpointWire, StationStatus};
use serde::Serialize;

use crate::centre::CentreClient;
use crate::error::StationError;
use crate::Station;

/// What a push did.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    /// The centre's head before the push.
    pub from_seq: u64,
    /// The centre's head after it.
    pub head_seq: u64,
    /// Events sent.
    pub events: usize,
}

/// Push the events after the centre's head up to the latest checkpoint (nothing when the
/// centre already holds it).
pub fn push(st: &Station) -> Result<Pushed, StationError> {
    let client = CentreClient::for_station(st)?;
    let status: StationStatus = client.get(paths::STATUS)?;
    let from = status.audit_head_seq;
    let Some(cp) = st.registry.audit_checkpoints()?.into_iter().last() else {
        return Ok(Pushed {
            from_seq: from,
            head_seq: from,
            events: 0,
        });
    };
    if cp.seq <= from {
        return Ok(Pushed {
            from_seq: from,
            head_seq: from,
            events: 0,
        });
    }
    let events: Vec<AuditEventWire> = st
        .registry
        .audit_events(from + 1, cp.seq)?
        .into_iter()
        .map(|e| AuditEventWire {
            seq: e.seq,
            time: e.time,
            operator: e.operator,
            role: e.role,
            station: e.station,
            action: e.action,
            object: e.object,
            details: e.details,
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
        })
        .collect();
    let count = events.len();
    let head: AuditHead = client.post(
        paths::AUDIT_PUSH,
        &AuditPush {
            events,
            checkpoint: CheckpointWire {
                seq: cp.seq,
                hash: hex::encode(cp.hash),
                time: cp.time,
                signature: hex::encode(&cp.signature),
            },
        },
    )?;
    Ok(Pushed {
        from_seq: from,
        head_seq: head.seq,
        events: count,
    })
}

/// [`push`] after a change that wrote a checkpoint; a failure is logged, not returned (the next
/// push sends what this one did not).
pub fn push_after(st: &Station, what: &str) {
    match push(st) {
        Ok(p) => tracing::debug!(
            what,
            head = p.head_seq,
            events = p.events,
            "audit log anchored at the centre"
        ),
        Err(e) => {
            tracing::warn!(what, error = %e, "audit log not anchored at the centre now; the next push sends it")
        }
    }
}
