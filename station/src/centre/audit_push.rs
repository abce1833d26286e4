//! Anchoring the station's audit log at the centre (`POST /v1/audit/push`, docs/centre.md
//! "Audit anchoring"): the events after the head the centre holds, up to the station's latest
//! signed checkpoint, and that checkpoint. The centre accepts only events that extend its head,
//! so a station's history, once pushed, cannot be rewritten on the station unnoticed.

use centre_api::{
    paths, AuditEventWire, AuditEvents, AuditEventsRequest, AuditHead, AuditPush, CheckpointWire,
    StationStatus,
};
use registry::audit::{AuditEvent, Checkpoint};
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

/// Push the events after the centre's head up to the latest checkpoint (the checkpoint alone
/// when the centre's head covers it: the centre then checks that it holds the same event).
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
    // A checkpoint the centre's head already covers is sent alone: the centre accepts it only
    // when it holds the same event there, so a log that went its own way (a restore without
    // the centre) is told at once.
    let events: Vec<AuditEventWire> = st
        .registry
        .audit_events(from + 1, cp.seq.max(from))?
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

/// What a restore took back from the centre ([`take_back`]).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TakenBack {
    /// Events taken back (0 when the centre held none beyond the copy).
    pub events: u64,
    /// The copy's last event before, and the log's last event after.
    pub from_seq: u64,
    pub to_seq: u64,
    /// The head the centre holds (0 before the first push).
    pub centre_head_seq: u64,
}

fn hash_of(field: &str, hex_text: &str) -> Result<[u8; 32], StationError> {
    hex::decode(hex_text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| StationError::Other(format!("the centre's {field}: not a SHA-256 in hex")))
}

fn event_of(w: AuditEventWire) -> Result<AuditEvent, StationError> {
    Ok(AuditEvent {
        prev_hash: hash_of("prev_hash", &w.prev_hash)?,
        hash: hash_of("hash", &w.hash)?,
        seq: w.seq,
        time: w.time,
        operator: w.operator,
        role: w.role,
        station: w.station,
        action: w.action,
        object: w.object,
        details: w.details,
    })
}

fn forked(seq: u64) -> StationError {
    StationError::Conflict(format!(
        "this station's restored audit log and the one the national centre holds differ at \
         sequence {seq} (the copy is not of this station, or a log was rewritten): nothing was \
         taken back; such a station is enrolled again under a new name (docs/station.md \
         \"Backup and restore\")"
    ))
}

/// A registry restored from a backup copy takes back from the centre the events of its audit
/// log the copy lacks (docs/station.md "Backup and restore"): those the centre holds after the
/// copy's last event `from` (sequence number, hash), up to the head it holds, appended as they
/// are with the head's checkpoint — only when event `from` is the same at the centre, the
/// events chain on from it, and `signed` accepts the head's signature (this station's audit
/// key, checked to its root). When the centre's head is at or before `from`, the copy's event there must be the
/// head, and nothing is taken. Events the station made after its last push are in no copy.
pub fn take_back(
    st: &mut Station,
    operator: &str,
    signed: &dyn Fn(&Checkpoint) -> bool,
    from: (u64, [u8; 32]),
) -> Result<TakenBack, StationError> {
    let client = CentreClient::for_station(st)?;
    let ask = |after: u64| -> Result<AuditEvents, StationError> {
        client.post(
            paths::AUDIT_EVENTS,
            &AuditEventsRequest {
                operator: operator.to_owned(),
                after,
                limit: None,
            },
        )
    };
    let first = ask(from.0)?;
    let Some(head) = first.head.clone() else {
        return Ok(TakenBack {
            events: 0,
            from_seq: from.0,
            to_seq: from.0,
            centre_head_seq: 0,
        });
    };
    let head_hash = hash_of("head hash", &head.hash)?;
    if head.seq <= from.0 {
        let ours = st.registry.audit_events(head.seq, head.seq)?;
        if ours.first().map(|e| e.hash) != Some(head_hash) {
            return Err(forked(head.seq));
        }
        let taken = TakenBack {
            events: 0,
            from_seq: from.0,
            to_seq: from.0,
            centre_head_seq: head.seq,
        };
        return Ok(taken);
    }
    if from.0 > 0 && first.after_hash.as_deref() != Some(hex::encode(from.1).as_str()) {
        return Err(forked(from.0));
    }
    let mut events = Vec::new();
    let (mut page, mut after) = (first, from.0);
    loop {
        // Each page goes on from the one before, and no more than the centre's head is taken:
        // a centre that answered otherwise would have the station ask for ever.
        let more = page.more;
        for w in page.events {
            if w.seq != after + 1 || w.seq > head.seq {
                return Err(StationError::Other(format!(
                    "the centre's audit events: event {} where {} was due (head {}): nothing \
                     taken back",
                    w.seq,
                    after + 1,
                    head.seq
                )));
            }
            after = w.seq;
            events.push(event_of(w)?);
        }
        if !more || after >= head.seq {
            break;
        }
        page = ask(after)?;
        if page.events.is_empty() {
            return Err(StationError::Other(format!(
                "the centre's audit events: an empty page after {after} though more were \
                 announced: nothing taken back"
            )));
        }
    }
    let checkpoint = Checkpoint {
        seq: head.seq,
        hash: head_hash,
        time: head.time.clone(),
        signature: hex::decode(&head.signature)
            .map_err(|_| StationError::Other("the centre's head signature: not hex".into()))?,
    };
    let taken = TakenBack {
        events: events.len() as u64,
        from_seq: from.0,
        to_seq: head.seq,
        centre_head_seq: head.seq,
    };
    let actor = registry::Actor::new(operator, "system", &st.config.station.name);
    let details = serde_json::to_value(&taken).map_err(|e| StationError::Other(e.to_string()))?;
    st.registry
        .write(|tx| {
            tx.audit_take_back(&events, &checkpoint, signed)?;
            tx.audit(&registry::AuditEntry {
                actor: &actor,
                action: "audit.taken-back",
                object: "audit-log",
                details: &details,
            })?;
            Ok(())
        })
        .map_err(|e| match e {
            registry::Error::Conflict(why) => StationError::Conflict(why),
            e => e.into(),
        })?;
    Ok(taken)
}
