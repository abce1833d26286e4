//! `POST /v1/jobs/reserve`: step 1. Under the holder's lock: one active card per holder in the
//! country, one open issuance per holder, registered data changed only when the clerk confirmed;
//! no card a document is already on; then the holder (and a changed address) is recorded and
//! a number reserved for the job.

use crate::db::Prepared;
use centre_api::{rules, ReserveRequest, ReserveResponse};
use deadpool_postgres::Transaction;

use super::{actor, check_card_serial, check_job_id, check_operator, find_job, json, Job};
use crate::audit;
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Refusal, Result};
use crate::holders::{self, RecordedBy};
use crate::pki::Centre;

/// Check the request's fields, each refusal naming the field and the rule.
fn validate(req: &ReserveRequest) -> Result<()> {
    check_job_id(&req.job)?;
    check_operator(&req.operator)?;
    check_card_serial(&req.card_serial)?;
    req.holder
        .validate()
        .map_err(|e| CentralError::invalid("holder", e.to_string()))?;
    req.address
        .validate()
        .map_err(|e| CentralError::invalid("address", e.to_string()))?;
    Ok(())
}

fn answer(job: &Job) -> ReserveResponse {
    ReserveResponse {
        job: job.id.clone(),
        document: job.document(),
        series: job.series.clone(),
        number: job.number as u32,
        challenge: hex::encode(&job.challenge),
    }
}

/// Reserve (see the module documentation). A repeated request gets the first answer.
pub async fn reserve(
    centre: &Centre,
    who: &WhoAmI,
    req: &ReserveRequest,
) -> Result<ReserveResponse> {
    validate(req)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    // The job's lock, then the holder's: two reserves of one job, or of one holder, serialise
    // here on every centre instance (always in this order, so they cannot deadlock).
    holders::advisory_lock(&tx, "job", &req.job).await?;
    holders::lock(&tx, &req.holder.pinfl).await?;
    if let Some(job) = find_job(&tx, &req.job, true).await? {
        return repeat(who, &job, req);
    }
    // An issued card is locked for good: its chip serial names it, and is never reserved again.
    card_not_issued(&tx, &req.card_serial).await?;
    // No number is handed out while the e-Signature CA cannot certify the card's keys.
    crate::pki::require_active(&tx, "esign").await?;
    let holder_id = check_and_record_holder(&tx, who, req).await?;
    let (series, number) =
        crate::numbers::allocate(&tx, &who.station, &req.job, &centre.issuance).await?;
    let mut challenge = [0u8; 32];
    getrandom::fill(&mut challenge).map_err(|e| CentralError::Other(format!("challenge: {e}")))?;
    tx.prepared_execute(
        "INSERT INTO jobs (id, station, operator, holder_id, series, number, state, challenge,
            card_serial, reserve_request)
         VALUES ($1, $2, $3, $4, $5, $6, 'reserved', $7, $8, $9)",
        &[
            &req.job,
            &who.station,
            &req.operator,
            &holder_id,
            &series,
            &number,
            &challenge.as_slice(),
            &req.card_serial,
            &json(req)?,
        ],
    )
    .await?;
    let document = crate::numbers::document_number(&series, number);
    let details = serde_json::json!({
        "job": req.job, "document": document, "pinfl": req.holder.pinfl,
        "card_serial": req.card_serial, "office": who.office,
    });
    audit::append(
        &tx,
        &actor(who, &req.operator),
        "job.reserved",
        &format!("job:{}", req.job),
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(ReserveResponse {
        job: req.job.clone(),
        document,
        series,
        number: number as u32,
        challenge: hex::encode(challenge),
    })
}

/// The job exists: the same station's same request gets the first answer.
fn repeat(who: &WhoAmI, job: &Job, req: &ReserveRequest) -> Result<ReserveResponse> {
    if job.station != who.station {
        return Err(CentralError::refused(
            Refusal::Forbidden,
            rules::JOB_OF_ANOTHER_STATION,
            format!("job {} belongs to another station", job.id),
        ));
    }
    super::repeated(&job.id, "reserve", Some(&job.reserve_request), req)?;
    Ok(answer(job))
}

/// The holder's checks (active card, open issuance, changed data) and their record; the
/// holder's id.
async fn check_and_record_holder(
    tx: &Transaction<'_>,
    who: &WhoAmI,
    req: &ReserveRequest,
) -> Result<i64> {
    let by = RecordedBy {
        station: &who.station,
        operator: &req.operator,
    };
    let pinfl = &req.holder.pinfl;
    let id = match holders::find(tx, pinfl).await? {
        None => holders::insert(tx, &req.holder, &by).await?,
        Some((id, registered)) => {
            refuse_active_or_pending(tx, id, pinfl).await?;
            let differ = holders::differing_fields(&registered, &req.holder);
            if !differ.is_empty() {
                if !req.update_holder {
                    return Err(CentralError::refused(
                        Refusal::Conflict,
                        rules::HOLDER_DATA_DIFFERS,
                        format!(
                            "holder {pinfl} is registered with other data in: {}; confirm the change (update_holder) or correct the form",
                            differ.join(", ")
                        ),
                    ));
                }
                holders::update(tx, id, &req.holder).await?;
                let details =
                    serde_json::json!({ "pinfl": pinfl, "fields": differ, "job": req.job });
                audit::append(
                    tx,
                    &actor(who, &req.operator),
                    "holder.updated",
                    &format!("holder:{pinfl}"),
                    &details,
                )
                .await?;
            }
            id
        }
    };
    holders::record_address(tx, id, &req.address, &by).await?;
    Ok(id)
}

/// 409 when the holder has an active card, or an issuance open at another job, anywhere.
async fn refuse_active_or_pending(tx: &Transaction<'_>, holder: i64, pinfl: &str) -> Result<()> {
    if let Some((office, doc)) = active_card(tx, holder).await? {
        return Err(CentralError::refused_at(
            rules::HOLDER_HAS_ACTIVE_CARD,
            office.clone(),
            format!("holder {pinfl} has an active card ({doc}) issued by office {office}"),
        ));
    }
    if let Some(office) = pending_issuance(tx, holder).await? {
        return Err(CentralError::refused_at(
            rules::HOLDER_HAS_PENDING_ISSUANCE,
            office.clone(),
            format!("holder {pinfl} has an issuance in progress at office {office}"),
        ));
    }
    Ok(())
}

/// Refuse chip serial `serial` when a document is on it (`card-already-issued`, naming the
/// office: the chip serial is printed on the card, so the sentence names no document).
pub(super) async fn card_not_issued(tx: &Transaction<'_>, serial: &str) -> Result<()> {
    if let Some(d) = tx
        .prepared_opt(
            "SELECT office FROM documents WHERE upper(card_serial) = upper($1) ORDER BY id LIMIT 1",
            &[&serial],
        )
        .await?
    {
        let office: String = d.get(0);
        return Err(CentralError::refused_at(
            rules::CARD_ALREADY_ISSUED,
            office.clone(),
            format!(
                "card_serial: card {serial} was issued at office {office}: an issued card is not \
                 personalized again"
            ),
        ));
    }
    Ok(())
}

/// Holder `holder`'s active card: the office that issued it and its document number.
pub(crate) async fn active_card(
    tx: &Transaction<'_>,
    holder: i64,
) -> Result<Option<(String, String)>> {
    Ok(tx
        .prepared_opt(
            "SELECT office, series, number FROM documents WHERE holder_id = $1 AND state = 'active'",
            &[&holder],
        )
        .await?
        .map(|r| (r.get(0), crate::numbers::document_number(r.get(1), r.get(2)))))
}

/// The office of holder `holder`'s issuance in progress (a job reserved or certified).
pub(crate) async fn pending_issuance(tx: &Transaction<'_>, holder: i64) -> Result<Option<String>> {
    Ok(tx
        .prepared_opt(
            "SELECT s.office FROM jobs j JOIN stations s ON s.name = j.station
             WHERE j.holder_id = $1 AND j.state IN ('reserved', 'certified')",
            &[&holder],
        )
        .await?
        .map(|r| r.get(0)))
}
