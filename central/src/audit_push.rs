//! `POST /v1/audit/push`: a station anchors its audit log at the centre. The centre keeps the
//! last head it accepted from each station and takes only events that extend it: each event's
//! hash recomputes (`registry::audit`, docs/audit-format.md), each names its predecessor (the
//! first event of a log names 32 zero bytes), the checkpoint's hash is the last event's and its
//! signature verifies with the station's enrolled audit certificate. The station's history is
//! then anchored off the station. A repeated push of an accepted head is accepted again.

use crate::db::Prepared;
use centre_api::{
    rules, AuditEventWire, AuditEvents, AuditEventsRequest, AuditHead, AuditPush, CheckpointWire,
};
use deadpool_postgres::Transaction;
use registry::audit::{AuditEvent, Checkpoint, GENESIS_PREV_HASH};

use crate::audit::{self, Actor};
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Refusal, Result};
use crate::pki::Centre;

fn hash32(field: &'static str, text: &str) -> Result<[u8; 32]> {
    hex::decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| CentralError::invalid(field, "must be 64 hexadecimal digits (SHA-256)"))
}

fn event_of(w: &AuditEventWire) -> Result<AuditEvent> {
    Ok(AuditEvent {
        seq: w.seq,
        time: w.time.clone(),
        operator: w.operator.clone(),
        role: w.role.clone(),
        station: w.station.clone(),
        action: w.action.clone(),
        object: w.object.clone(),
        details: w.details.clone(),
        prev_hash: hash32("events.prev_hash", &w.prev_hash)?,
        hash: hash32("events.hash", &w.hash)?,
    })
}

fn does_not_extend(station: &str, why: String) -> CentralError {
    CentralError::refused(
        Refusal::Conflict,
        rules::AUDIT_HEAD_DOES_NOT_EXTEND,
        format!(
            "the audit log pushed by {station} does not extend the head the centre holds: {why}"
        ),
    )
}

/// The head the centre holds for `station` (locked until the end of `tx`): (seq, hash).
async fn head(tx: &Transaction<'_>, station: &str) -> Result<(u64, [u8; 32])> {
    crate::holders::advisory_lock(tx, "audit-head", station).await?;
    let row = tx
        .prepared_opt(
            "SELECT seq, hash FROM station_audit_heads WHERE station = $1",
            &[&station],
        )
        .await?;
    Ok(match row {
        None => (0, GENESIS_PREV_HASH),
        Some(r) => {
            let h: Vec<u8> = r.get(1);
            let h = <[u8; 32]>::try_from(h)
                .map_err(|_| CentralError::Database("station_audit_heads.hash".into()))?;
            (r.get::<_, i64>(0) as u64, h)
        }
    })
}

/// Check that `events` extend (`seq`, `hash`) up to the checkpoint.
fn check_chain(
    station: &str,
    from: (u64, [u8; 32]),
    events: &[AuditEvent],
    cp: &Checkpoint,
) -> Result<()> {
    let (mut seq, mut prev) = from;
    for e in events {
        if e.seq != seq + 1 {
            return Err(does_not_extend(
                station,
                format!("event {} follows {seq}", e.seq),
            ));
        }
        if e.prev_hash != prev {
            return Err(does_not_extend(
                station,
                format!("event {} does not name the hash of event {seq}", e.seq),
            ));
        }
        if e.compute_hash() != e.hash {
            return Err(does_not_extend(
                station,
                format!("event {}'s hash does not recompute", e.seq),
            ));
        }
        (seq, prev) = (e.seq, e.hash);
    }
    if cp.seq != seq || cp.hash != prev {
        return Err(does_not_extend(
            station,
            format!(
                "the checkpoint (seq {}) is not the hash of the last event (seq {seq})",
                cp.seq
            ),
        ));
    }
    Ok(())
}

/// The station's enrolled audit key.
async fn audit_key(tx: &Transaction<'_>, station: &str) -> Result<p256::ecdsa::VerifyingKey> {
    use der::{Decode, Encode};
    use p256::pkcs8::DecodePublicKey;
    let der: Vec<u8> = tx
        .prepared_one(
            "SELECT cert_der FROM station_certs WHERE station = $1 AND purpose = 'audit'",
            &[&station],
        )
        .await?
        .get(0);
    let cert =
        x509_cert::Certificate::from_der(&der).map_err(|e| CentralError::Other(e.to_string()))?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| CentralError::Other(e.to_string()))?;
    p256::ecdsa::VerifyingKey::from_public_key_der(&spki)
        .map_err(|e| CentralError::Other(e.to_string()))
}

/// A push whose checkpoint is at or below the held head: accepted when it names an event the
/// centre holds with that hash (a repeated push), refused otherwise.
async fn repeated(tx: &Transaction<'_>, station: &str, cp: &Checkpoint) -> Result<()> {
    let held: Option<Vec<u8>> = tx
        .prepared_opt(
            "SELECT hash FROM station_audit_events WHERE station = $1 AND seq = $2",
            &[&station, &(cp.seq as i64)],
        )
        .await?
        .map(|r| r.get(0));
    if held.as_deref() == Some(cp.hash.as_slice()) {
        Ok(())
    } else {
        Err(does_not_extend(
            station,
            format!(
                "the checkpoint's event {} differs from the one the centre holds",
                cp.seq
            ),
        ))
    }
}

async fn store(
    tx: &Transaction<'_>,
    station: &str,
    events: &[AuditEvent],
    cp: &Checkpoint,
) -> Result<()> {
    for e in events {
        tx.prepared_execute(
            "INSERT INTO station_audit_events (station, seq, time, operator, role, event_station, action, object, details, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[&station, &(e.seq as i64), &e.time, &e.operator, &e.role, &e.station, &e.action, &e.object, &e.details, &e.prev_hash.as_slice(), &e.hash.as_slice()],
        )
        .await?;
    }
    tx.prepared_execute(
        "INSERT INTO station_audit_heads (station, seq, hash, time, signature) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (station) DO UPDATE SET seq = $2, hash = $3, time = $4, signature = $5, accepted_at = now()",
        &[&station, &(cp.seq as i64), &cp.hash.as_slice(), &cp.time, &cp.signature],
    )
    .await?;
    Ok(())
}

/// Accept the push (see the module documentation); the head the centre now holds.
pub async fn push(centre: &Centre, who: &WhoAmI, req: &AuditPush) -> Result<AuditHead> {
    let events = req
        .events
        .iter()
        .map(event_of)
        .collect::<Result<Vec<_>>>()?;
    let cp = Checkpoint {
        seq: req.checkpoint.seq,
        hash: hash32("checkpoint.hash", &req.checkpoint.hash)?,
        time: req.checkpoint.time.clone(),
        signature: hex::decode(&req.checkpoint.signature).map_err(|_| {
            CentralError::invalid("checkpoint.signature", "must be hex DER (ECDSA)")
        })?,
    };
    if cp.seq == 0 || cp.seq > i64::MAX as u64 {
        return Err(CentralError::invalid("checkpoint.seq", "must be 1 or more"));
    }
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let held = head(&tx, &who.station).await?;
    if !cp.verify(&audit_key(&tx, &who.station).await?) {
        return Err(does_not_extend(
            &who.station,
            "the checkpoint's signature does not verify with the station's audit certificate"
                .into(),
        ));
    }
    if cp.seq <= held.0 {
        repeated(&tx, &who.station, &cp).await?;
        return Ok(AuditHead {
            station: who.station.clone(),
            seq: held.0,
            hash: hex::encode(held.1),
        });
    }
    check_chain(&who.station, held, &events, &cp)?;
    store(&tx, &who.station, &events, &cp).await?;
    let by = Actor {
        operator: who.station.clone(),
        role: "station".into(),
        station: who.station.clone(),
    };
    let details = serde_json::json!({ "from_seq": held.0 + 1, "seq": cp.seq, "hash": hex::encode(cp.hash), "checkpoint_time": cp.time });
    audit::append(
        &tx,
        &by,
        "station.audit-anchored",
        &format!("station:{}", who.station),
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(AuditHead {
        station: who.station.clone(),
        seq: cp.seq,
        hash: hex::encode(cp.hash),
    })
}

/// `POST /v1/audit/events`: the events of `who`'s audit log the centre holds after
/// `req.after` (at most `req.limit`, 1..1000, default 500), the hash of event `after` as the
/// centre holds it and the head it holds: what a station restored from a backup takes back.
/// Only the calling station's own log; audited `station.audit-read` with the range.
pub async fn events_after(
    centre: &Centre,
    who: &WhoAmI,
    req: &AuditEventsRequest,
) -> Result<AuditEvents> {
    crate::issuance::check_operator(&req.operator)?;
    let limit = req.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(CentralError::invalid("limit", "must be 1 to 1000"));
    }
    let after = i64::try_from(req.after)
        .map_err(|_| CentralError::invalid("after", "must be a sequence number"))?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let head = tx
        .prepared_opt(
            "SELECT seq, hash, time, signature FROM station_audit_heads WHERE station = $1",
            &[&who.station],
        )
        .await?
        .map(|r| CheckpointWire {
            seq: r.get::<_, i64>(0) as u64,
            hash: hex::encode(r.get::<_, Vec<u8>>(1)),
            time: r.get(2),
            signature: hex::encode(r.get::<_, Vec<u8>>(3)),
        });
    let after_hash = tx
        .prepared_opt(
            "SELECT hash FROM station_audit_events WHERE station = $1 AND seq = $2",
            &[&who.station, &after],
        )
        .await?
        .map(|r| hex::encode(r.get::<_, Vec<u8>>(0)));
    let mut events: Vec<AuditEventWire> = tx
        .prepared_query(
            "SELECT seq, time, operator, role, event_station, action, object, details, prev_hash, hash
             FROM station_audit_events WHERE station = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&who.station, &after, &(i64::from(limit) + 1)],
        )
        .await?
        .iter()
        .map(|r| AuditEventWire {
            seq: r.get::<_, i64>(0) as u64,
            time: r.get(1),
            operator: r.get(2),
            role: r.get(3),
            station: r.get(4),
            action: r.get(5),
            object: r.get(6),
            details: r.get(7),
            prev_hash: hex::encode(r.get::<_, Vec<u8>>(8)),
            hash: hex::encode(r.get::<_, Vec<u8>>(9)),
        })
        .collect();
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let details = serde_json::json!({
        "after": req.after, "events": events.len(),
        "head_seq": head.as_ref().map(|h| h.seq),
    });
    audit::append(
        &tx,
        &crate::issuance::actor(who, &req.operator),
        "station.audit-read",
        &format!("station:{}", who.station),
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(AuditEvents {
        after_hash,
        events,
        more,
        head,
    })
}
