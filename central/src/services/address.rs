//! Registration address changes (`POST /v1/services/{job}/address`): `set` records a new
//! registration address in the holder's history in the national registry (a new row, never an
//! update); `end` cancels the temporary registration in force (its own row in
//! `holder_address_ends`). Either puts one `address.changed` message in the e-government outbox
//! in the same transaction. The card is not touched (DG11 keeps the address printed at
//! issuance).

use crate::db::Prepared;
use centre_api::{rules, AddressRequest, AddressResponse, JobState};
use registry::AddressKind;

use super::{audit, keep, replay, station_job_locked, NewJob};
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Refusal, Result};
use crate::holders::{self, RecordedBy};
use crate::issuance::{check_operator, conflict};
use crate::pki::Centre;

/// The e-government topic of an address change.
pub const TOPIC: &str = "address.changed";

fn check(req: &AddressRequest) -> Result<()> {
    check_operator(&req.operator)?;
    if req.pinfl.len() != 14 || !req.pinfl.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CentralError::invalid("pinfl", "must be 14 digits"));
    }
    match (&req.set, &req.end_temporary_on) {
        (Some(a), None) => a
            .validate()
            .map_err(|e| CentralError::invalid("set", e.to_string())),
        (None, Some(d)) => registry::validate::date("end_temporary_on", d)
            .map(|_| ())
            .map_err(|e| CentralError::invalid("end_temporary_on", e.to_string())),
        _ => Err(CentralError::invalid(
            "set",
            "exactly one of set (a new address) and end_temporary_on (a date) is given",
        )),
    }
}

/// The holder's temporary registration in force on `on` (not ended, not expired by then).
async fn temporary_in_force(
    tx: &deadpool_postgres::Transaction<'_>,
    holder: i64,
    on: &str,
) -> Result<Option<i64>> {
    Ok(tx
        .prepared_opt(
            "SELECT a.id FROM holder_addresses a
             WHERE a.holder_id = $1 AND a.kind = 'temporary'
               AND NOT EXISTS (SELECT 1 FROM holder_address_ends e WHERE e.address_id = a.id)
               AND (a.registered_until IS NULL OR a.registered_until >= $2)
             ORDER BY a.id DESC LIMIT 1",
            &[&holder, &on],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Record the change (see the module documentation).
pub async fn change(
    centre: &Centre,
    who: &WhoAmI,
    id: &str,
    req: &AddressRequest,
) -> Result<AddressResponse> {
    check(req)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    if station_job_locked(&tx, who, id, "address").await?.is_some() {
        return replay(&tx, id, "address", req)
            .await?
            .ok_or_else(|| conflict(format!("service job {id} has no address step")));
    }
    holders::lock(&tx, &req.pinfl).await?;
    let holder: i64 = tx
        .prepared_opt("SELECT id FROM holders WHERE pinfl = $1", &[&req.pinfl])
        .await?
        .ok_or_else(|| {
            CentralError::refused(
                Refusal::NotFound,
                rules::HOLDER_NOT_FOUND,
                format!(
                    "the national registry has no holder with PINFL {}",
                    req.pinfl
                ),
            )
        })?
        .get(0);
    let by = RecordedBy {
        station: &who.station,
        operator: &req.operator,
    };
    let (address_id, change, payload) = match (&req.set, &req.end_temporary_on) {
        (Some(a), _) => {
            if !holders::record_address(&tx, holder, a, &by).await? {
                return Err(CentralError::invalid(
                    "set",
                    "is the holder's current registration address already",
                ));
            }
            let id: i64 = tx
                .prepared_one(
                    "SELECT max(id) FROM holder_addresses WHERE holder_id = $1",
                    &[&holder],
                )
                .await?
                .get(0);
            (id, "set", serde_json::json!({ "address": a }))
        }
        (None, Some(on)) => {
            let current = temporary_in_force(&tx, holder, on).await?.ok_or_else(|| {
                CentralError::refused(
                    Refusal::Conflict,
                    rules::NO_TEMPORARY_ADDRESS,
                    format!(
                        "holder {} has no temporary registration in force on {on} to end",
                        req.pinfl
                    ),
                )
            })?;
            tx.prepared_execute(
                "INSERT INTO holder_address_ends (address_id, ended_on, station, operator) VALUES ($1, $2, $3, $4)",
                &[&current, on, &who.station, &req.operator],
            )
            .await?;
            (
                current,
                "end",
                serde_json::json!({ "kind": AddressKind::Temporary.as_str(), "ended_on": on }),
            )
        }
        (None, None) => {
            return Err(CentralError::invalid(
                "set",
                "exactly one of set (a new address) and end_temporary_on (a date) is given",
            ))
        }
    };
    let mut payload = payload;
    payload["pinfl"] = serde_json::json!(req.pinfl);
    payload["change"] = serde_json::json!(change);
    payload["address_id"] = serde_json::json!(address_id);
    payload["office"] = serde_json::json!(who.office);
    payload["station"] = serde_json::json!(who.station);
    super::insert_job(
        &tx,
        who,
        &NewJob {
            id,
            operator: &req.operator,
            kind: "address",
            document_id: None,
            holder_id: holder,
            state: JobState::Completed,
            challenge: None,
        },
    )
    .await?;
    let outbox_id: i64 = tx
        .prepared_one(
            "INSERT INTO outbox (topic, job, payload) VALUES ($1, $2, $3) RETURNING id",
            &[&TOPIC, &id, &payload],
        )
        .await?
        .get(0);
    let answer = AddressResponse {
        pinfl: req.pinfl.clone(),
        address_id,
        outbox_id,
    };
    keep(&tx, id, "address", req, &answer).await?;
    let details = serde_json::json!({ "service_job": id, "change": change, "address_id": address_id,
        "outbox": outbox_id });
    let action = if change == "set" {
        "address.set"
    } else {
        "address.ended"
    };
    audit(
        &tx,
        who,
        &req.operator,
        action,
        &format!("holder:{}", req.pinfl),
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(answer)
}
