//! `POST /v1/jobs/{job}/complete` and `/abort`: step 5. Complete: the document becomes ACTIVE
//! with its dates and card serial, the number used, the certificates active, one e-government
//! outbox message. Abort: the certificates revoked (cessationOfOperation), the number spoiled or
//! released. Each in one transaction with its audit event; the centre's timeout sweep aborts
//! through [`abort_job`] too.

use crate::db::Prepared;
use centre_api::{
    AbortRequest, AbortResponse, CompleteRequest, CompleteResponse, JobState, NumberOutcome,
};
use deadpool_postgres::Transaction;

use super::{actor, check_card_serial, check_operator, json, station_job, Job};
use crate::audit::{self, Actor};
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Result};
use crate::pki::Centre;

/// A `YYYY-MM-DD` calendar date.
fn date(field: &'static str, v: &str) -> Result<time::Date> {
    registry::validate::date(field, v).map_err(|e| CentralError::invalid(field, e.to_string()))
}

fn check_complete(job: &Job, req: &CompleteRequest) -> Result<(time::Date, time::Date)> {
    check_operator(&req.operator)?;
    check_card_serial(&req.card_serial)?;
    if !req.card_serial.eq_ignore_ascii_case(&job.card_serial) {
        return Err(super::conflict(format!(
            "job {} was reserved for card {}, not {}",
            job.id, job.card_serial, req.card_serial
        )));
    }
    let issue = date("date_of_issue", &req.date_of_issue)?;
    let expiry = date("date_of_expiry", &req.date_of_expiry)?;
    if expiry <= issue {
        return Err(CentralError::invalid(
            "date_of_expiry",
            "must be after date_of_issue",
        ));
    }
    Ok((issue, expiry))
}

/// Complete (see the module documentation). A repeated request gets the same answer.
pub async fn complete(
    centre: &Centre,
    who: &WhoAmI,
    id: &str,
    req: &CompleteRequest,
) -> Result<CompleteResponse> {
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let job = station_job(&tx, who, id, true).await?;
    let answer = CompleteResponse {
        job: job.id.clone(),
        document: job.document(),
        state: JobState::Completed,
    };
    // An aborted job's certificates are revoked: never hand them out again, even to a repeat.
    if job.state == JobState::Aborted {
        return Err(super::aborted(&job));
    }
    if super::repeated(
        &job.id,
        "complete",
        job.complete_request.as_ref(),
        &as_kept(job.complete_request.as_ref(), req),
    )?
    .is_some()
    {
        return Ok(answer);
    }
    match job.state {
        JobState::Certified => {}
        JobState::Aborted => return Err(super::aborted(&job)),
        s => {
            return Err(super::conflict(format!(
                "job {} is {}: complete comes after certify only",
                job.id,
                super::state_str(s)
            )))
        }
    }
    let (issue, expiry) = check_complete(&job, req)?;
    // Two open jobs may name one blank card (each reserve saw no document on it); the first to
    // complete gets it. Under a lock on the serial, so two completing at once are ordered.
    crate::holders::advisory_lock(&tx, "card-serial", &req.card_serial.to_uppercase()).await?;
    super::reserve::card_not_issued(&tx, &req.card_serial).await?;
    let (document_signer, signer_void) = signing_document_signer(&tx, who, req).await?;
    let void = match signer_void {
        Some(why) => Some(why),
        None => revoked_issuer(&tx, &job).await?,
    };
    if let Some(why) = void {
        // The card's certificates chain to a revoked CA certificate: it is not handed out.
        let by = crate::public::centre_actor(&centre.name);
        abort_job(
            &tx,
            &job,
            &by,
            &why,
            NumberOutcome::Spoiled,
            Some(&json(req)?),
        )
        .await?;
        tx.commit().await?;
        return Err(CentralError::refused(
            crate::error::Refusal::Conflict,
            centre_api::rules::JOB_ABORTED,
            format!("job {} was aborted: {why}", job.id),
        ));
    }
    tx.prepared_execute(
        "INSERT INTO documents (series, number, holder_id, station, office, job, state, date_of_issue, date_of_expiry, card_serial, document_signer)
         VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $9, $10)",
        &[&job.series, &job.number, &job.holder_id, &who.station, &who.office, &job.id, &issue, &expiry, &req.card_serial, &document_signer],
    )
    .await?;
    crate::numbers::set_state(&tx, &job.series, job.number, "used").await?;
    let serials: Vec<String> = tx
        .prepared_query("UPDATE certificates SET state = 'active' WHERE job = $1 AND state = 'issued' RETURNING serial", &[&job.id])
        .await?
        .iter()
        .map(|r| hex::encode_upper(r.get::<_, &[u8]>(0)))
        .collect();
    outbox(&tx, &job, who, req, &serials).await?;
    super::set_state(
        &tx,
        &job.id,
        JobState::Completed,
        super::Step::Complete,
        &json(req)?,
    )
    .await?;
    let details = serde_json::json!({
        "job": job.id, "document": job.document(), "card_serial": req.card_serial,
        "date_of_issue": req.date_of_issue, "date_of_expiry": req.date_of_expiry, "certificates": serials,
        "document_signer": req.document_signer,
    });
    audit::append(
        &tx,
        &actor(who, &req.operator),
        "job.completed",
        &format!("document:{}", job.document()),
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(answer)
}

/// `req` as comparable with the completion kept for the job: without `document_signer` when the
/// kept one has none — a station meeting an older centre completed without the field, and a
/// retry after the centre's upgrade (recovery reads the serial from its journal) is the same
/// completion.
fn as_kept(kept: Option<&serde_json::Value>, req: &CompleteRequest) -> CompleteRequest {
    let kept_names_it = kept.is_some_and(|k| !k["document_signer"].is_null());
    CompleteRequest {
        document_signer: req.document_signer.clone().filter(|_| kept_names_it),
        ..req.clone()
    }
}

/// The Document Signer a completion names (`document_signer`), as its serial, checked against
/// the certificates the centre issued to the station; with why the card may not be handed out
/// when that certificate has been revoked or its CSCA key withdrawn from the Master List (no
/// inspection system would then accept the card's EF.SOD). `(None, None)` when a station older
/// than the field names none. The CSCA key's row, then the certificate's, are read `FOR SHARE`
/// (in the order a withdrawal locks them: the key, then the station certificates): a withdrawal
/// or a `station disable` committing meanwhile waits for this transaction, and then flags the
/// completed card for replacement.
async fn signing_document_signer(
    tx: &Transaction<'_>,
    who: &WhoAmI,
    req: &CompleteRequest,
) -> Result<(Option<Vec<u8>>, Option<String>)> {
    let Some(text) = req.document_signer.as_deref() else {
        return Ok((None, None));
    };
    let rule = |what: &str| {
        CentralError::invalid(
            "document_signer",
            format!(
                "must be the serial number (hex) of a Document Signer certificate the centre \
                 issued to station {}: {what}",
                who.station
            ),
        )
    };
    let serial = hex::decode(text)
        .ok()
        .filter(|s| (1..=20).contains(&s.len()))
        .ok_or_else(|| rule("not 1-20 bytes in hex"))?;
    let Some(r) = tx
        .prepared_opt(
            "SELECT issuer_key, cert_der FROM station_certs
             WHERE station = $1 AND purpose = 'document-signer' AND serial = $2",
            &[&who.station, &serial],
        )
        .await?
    else {
        return Err(rule("no such certificate"));
    };
    let csca: String = match r.get::<_, Option<String>>(0) {
        Some(key) => key,
        // Recorded before the centre stored a certificate's issuer: found by its signature
        // (written back by the next withdrawal, not here, so this takes no row lock first).
        None => crate::stations::issuer_by_signature(tx, r.get(1))
            .await?
            .ok_or_else(|| rule("no CA key of this centre signed it"))?,
    };
    let withdrawn: bool = tx
        .prepared_one(
            "SELECT withdrawn_at IS NOT NULL FROM ca_keys WHERE label = $1 FOR SHARE",
            &[&csca],
        )
        .await?
        .get(0);
    let r = tx
        .prepared_one(
            "SELECT to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    revocation_reason
             FROM station_certs
             WHERE station = $1 AND purpose = 'document-signer' AND serial = $2 FOR SHARE",
            &[&who.station, &serial],
        )
        .await?;
    let (revoked_at, reason): (Option<String>, Option<String>) = (r.get(0), r.get(1));
    let shown = hex::encode(&serial);
    let void = if let Some(at) = revoked_at {
        Some(format!(
            "the Document Signer certificate {shown} that signed the card's EF.SOD was revoked at \
             {at} ({}): no inspection system will accept the card's chip data, so it must be \
             destroyed",
            reason.as_deref().unwrap_or("no reason recorded")
        ))
    } else if withdrawn {
        Some(format!(
            "the CSCA key {csca} that certified the Document Signer {shown} signing the card's \
             EF.SOD was withdrawn from the CSCA Master List: no inspection system will accept the \
             card's chip data, so it must be destroyed; renew the station's Document Signer \
             (`idstation centre renew-document-signer`) and issue a new card"
        ))
    } else {
        None
    };
    Ok((Some(serial), void))
}

/// Why `job` may not complete when a CA key that issued its certificates has been revoked
/// (`idcentral ca revoke-ca`) since `certify`; `None` otherwise. The key rows are read `FOR
/// SHARE`: a revocation committing meanwhile waits for this transaction, and then flags the
/// completed job's certificates for re-issuance instead.
async fn revoked_issuer(tx: &Transaction<'_>, job: &Job) -> Result<Option<String>> {
    let rows = tx
        .prepared_query(
            "SELECT k.label, to_char(k.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    k.revocation_reason
             FROM ca_keys k
             WHERE k.label IN (SELECT issuer_key FROM certificates WHERE job = $1)
             ORDER BY k.label FOR SHARE OF k",
            &[&job.id],
        )
        .await?;
    Ok(rows.iter().find_map(|r| {
        let at: Option<String> = r.get(1);
        at.map(|at| {
            let key: String = r.get(0);
            let reason: Option<String> = r.get(2);
            format!(
                "the CA key {key} that issued this job's certificates was revoked at {at} ({}): \
                 the card holds certificates no relying party will accept and must be destroyed; \
                 issue a new card once a new key is active (`idcentral ca rotate`)",
                reason.as_deref().unwrap_or("no reason recorded")
            )
        })
    }))
}

/// The e-government message of a completed issuance.
async fn outbox(
    tx: &Transaction<'_>,
    job: &Job,
    who: &WhoAmI,
    req: &CompleteRequest,
    serials: &[String],
) -> Result<()> {
    let pinfl: String = tx
        .prepared_one("SELECT pinfl FROM holders WHERE id = $1", &[&job.holder_id])
        .await?
        .get(0);
    let payload = serde_json::json!({
        "document": job.document(), "pinfl": pinfl, "office": who.office, "station": who.station,
        "date_of_issue": req.date_of_issue, "date_of_expiry": req.date_of_expiry,
        "card_serial": req.card_serial, "certificates": serials,
    });
    tx.prepared_execute(
        "INSERT INTO outbox (topic, job, payload) VALUES ('document.issued', $1, $2)",
        &[&job.id, &payload],
    )
    .await?;
    Ok(())
}

fn check_abort(req: &AbortRequest) -> Result<()> {
    check_operator(&req.operator)?;
    let r = req.reason.trim();
    if r.is_empty() || r.chars().count() > 200 || req.reason.chars().any(char::is_control) {
        return Err(CentralError::invalid(
            "reason",
            "must be 1-200 characters without control characters",
        ));
    }
    Ok(())
}

/// Abort (see the module documentation). Aborting a completed job is `job-conflict`; an
/// aborted job answers with its state.
pub async fn abort(
    centre: &Centre,
    who: &WhoAmI,
    id: &str,
    req: &AbortRequest,
) -> Result<AbortResponse> {
    check_abort(req)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let job = station_job(&tx, who, id, true).await?;
    // Aborted by the centre (its timeout keeps no request, a voided completion keeps the
    // completion's): the station's abort answers with the state, as documented, not as a
    // different abort request.
    let by_station = job
        .abort_request
        .as_ref()
        .is_some_and(|k| serde_json::from_value::<AbortRequest>(k.clone()).is_ok());
    if job.state != JobState::Aborted || by_station {
        super::repeated(&job.id, "abort", job.abort_request.as_ref(), req)?;
    }
    match job.state {
        JobState::Completed => {
            return Err(super::conflict(format!(
                "job {} is completed: its card is active; revoke the document instead",
                job.id
            )))
        }
        JobState::Aborted => {
            let revoked = revoked_serials(&tx, &job.id).await?;
            return Ok(AbortResponse {
                job: job.id,
                state: JobState::Aborted,
                revoked,
            });
        }
        JobState::Reserved | JobState::Certified => {}
    }
    let revoked = abort_job(
        &tx,
        &job,
        &actor(who, &req.operator),
        &req.reason,
        req.number,
        Some(&json(req)?),
    )
    .await?;
    tx.commit().await?;
    Ok(AbortResponse {
        job: job.id,
        state: JobState::Aborted,
        revoked,
    })
}

async fn revoked_serials(tx: &Transaction<'_>, job: &str) -> Result<Vec<String>> {
    Ok(tx
        .prepared_query(
            "SELECT serial FROM certificates WHERE job = $1 AND state = 'revoked' ORDER BY slot",
            &[&job],
        )
        .await?
        .iter()
        .map(|r| hex::encode_upper(r.get::<_, &[u8]>(0)))
        .collect())
}

/// Abort an open job inside `tx`: revoke its certificates, spoil or release its number, record
/// the reason (and the station's request), audit. The serials revoked.
pub async fn abort_job(
    tx: &Transaction<'_>,
    job: &Job,
    by: &Actor,
    reason: &str,
    number: NumberOutcome,
    request: Option<&serde_json::Value>,
) -> Result<Vec<String>> {
    tx.prepared_execute(
        "UPDATE certificates SET state = 'revoked', revocation_reason = 'cessationOfOperation', revoked_at = now()
         WHERE job = $1 AND state <> 'revoked'",
        &[&job.id],
    )
    .await?;
    let revoked = revoked_serials(tx, &job.id).await?;
    let outcome = match number {
        NumberOutcome::Released => "released",
        NumberOutcome::Spoiled => "spoiled",
    };
    crate::numbers::set_state(tx, &job.series, job.number, outcome).await?;
    tx.prepared_execute(
        "UPDATE jobs SET state = 'aborted', abort_reason = $2, abort_request = $3, updated_at = now() WHERE id = $1",
        &[&job.id, &reason, &request],
    )
    .await?;
    let details = serde_json::json!({
        "job": job.id, "document": job.document(), "reason": reason, "number": outcome, "revoked": revoked,
    });
    audit::append(tx, by, "job.aborted", &format!("job:{}", job.id), &details).await?;
    Ok(revoked)
}
