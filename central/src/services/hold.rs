//! Hold and release (`POST /v1/services/{job}/hold|release`): suspend and resume a document.
//! A hold revokes the document's active certificates with reason certificateHold (RFC 5280
//! §5.3.1) and makes the document SUSPENDED; a release, with the holder in person and within
//! `[issuance] suspension_limit_days` of the hold, makes them active again. The certificates'
//! trigger queues their OCSP responses and the CRL (migration V10 queues the CRL on a release
//! too), so `serve` signs both again at once.

use crate::db::Prepared;
use std::time::{Duration, SystemTime};

use centre_api::{rules, HoldRequest, HoldResponse, JobState};

use super::{audit, document, keep, replay, require_active, serials, station_job_locked, NewJob};
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Refusal, Result};
use crate::issuance::{check_operator, conflict};
use crate::pki::Centre;

pub(crate) fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn limit(centre: &Centre) -> Duration {
    Duration::from_secs(u64::from(centre.issuance.suspension_limit_days) * 86_400)
}

/// `hold` (step and job kind `hold`) or `release` (`release`).
pub async fn run(
    centre: &Centre,
    who: &WhoAmI,
    id: &str,
    kind: &'static str,
    req: &HoldRequest,
) -> Result<HoldResponse> {
    check_operator(&req.operator)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    if station_job_locked(&tx, who, id, kind).await?.is_some() {
        return replay(&tx, id, kind, req)
            .await?
            .ok_or_else(|| conflict(format!("service job {id} has no {kind} step")));
    }
    // A hold aborts the document's open renewal, locked before the document, in the order its
    // own steps and the renewal sweep take them (job, then document): no deadlock between them.
    let open_renewal: Option<String> = match crate::numbers::parse_document(&req.document) {
        Ok((series, number)) if kind == "hold" => tx
            .prepared_opt(
                "SELECT j.id FROM service_jobs j JOIN documents d ON d.id = j.document_id
                 WHERE d.series = $1 AND d.number = $2 AND j.kind = 'renew'
                   AND j.state IN ('reserved', 'certified')
                 FOR UPDATE OF j",
                &[&series, &number],
            )
            .await?
            .map(|r| r.get(0)),
        _ => None,
    };
    let doc = document(&tx, &req.document).await?;
    let mut renewal_aborted = None;
    let (certs, suspended_at, state) = if kind == "hold" {
        require_active(&doc, "hold")?;
        if let Some(id) = open_renewal {
            abort_open_renewal(&tx, &id, &doc, who, &req.operator).await?;
            renewal_aborted = Some(id);
        }
        let rows = tx
            .prepared_query(
                "UPDATE certificates SET state = 'revoked', revocation_reason = 'certificateHold', revoked_at = now()
                 WHERE job = $1 AND state = 'active' RETURNING serial",
                &[&doc.job],
            )
            .await?;
        let at: SystemTime = tx
            .prepared_one(
                "UPDATE documents SET state = 'suspended', state_reason = 'suspended', state_changed_at = now(),
                        state_changed_by = $2, suspended_at = now()
                 WHERE id = $1 RETURNING suspended_at",
                &[&doc.id, &format!("{}/{}", who.station, req.operator)],
            )
            .await?
            .get(0);
        (serials(&rows), at, "suspended")
    } else {
        let at = check_release(&tx, centre, &doc, req).await?;
        let rows = tx
            .prepared_query(
                "UPDATE certificates SET state = 'active', revocation_reason = NULL, revoked_at = NULL
                 WHERE job = $1 AND state = 'revoked' AND revocation_reason = 'certificateHold' RETURNING serial",
                &[&doc.job],
            )
            .await?;
        tx.prepared_execute(
            "UPDATE documents SET state = 'active', state_reason = 'resumed', state_changed_at = now(),
                    state_changed_by = $2, suspended_at = NULL
             WHERE id = $1",
            &[&doc.id, &format!("{}/{}", who.station, req.operator)],
        )
        .await?;
        (serials(&rows), at, "active")
    };
    super::insert_job(
        &tx,
        who,
        &NewJob {
            id,
            operator: &req.operator,
            kind,
            document_id: Some(doc.id),
            holder_id: doc.holder_id,
            state: JobState::Completed,
            challenge: None,
        },
    )
    .await?;
    let mut certificates = certs;
    certificates.sort();
    let answer = HoldResponse {
        document: doc.number.clone(),
        state: state.to_owned(),
        certificates,
        suspended_at: rfc3339(suspended_at),
        release_until: rfc3339(suspended_at + limit(centre)),
    };
    keep(&tx, id, kind, req, &answer).await?;
    let action = if kind == "hold" {
        "document.held"
    } else {
        "document.released"
    };
    let mut details = serde_json::json!({ "service_job": id, "certificates": answer.certificates,
        "issued_by_office": doc.office, "suspended_at": answer.suspended_at });
    if kind == "hold" {
        details["crl_reason"] = serde_json::json!("certificateHold");
        if let Some(job) = &renewal_aborted {
            details["renewal_aborted"] = serde_json::json!(job);
        }
    } else {
        details["identity_confirmed_by"] = serde_json::json!(req.operator);
    }
    audit(
        &tx,
        who,
        &req.operator,
        action,
        &format!("document:{}", doc.number),
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(answer)
}

/// A hold aborts the document's open renewal, as the renewal timeout would: the certificates
/// it issued — on the card already, perhaps, and `issued` (good at OCSP) until its `complete` —
/// must not stay good while the card is held. They are revoked cessationOfOperation and still
/// count as the card's for the card-key release (`aborted_at_centre`). `id`: the open renewal,
/// locked by the caller.
async fn abort_open_renewal(
    tx: &deadpool_postgres::Transaction<'_>,
    id: &str,
    doc: &super::Doc,
    who: &WhoAmI,
    operator: &str,
) -> Result<()> {
    let Some(job) = super::find(tx, id).await? else {
        return Ok(());
    };
    let reason = format!(
        "the document was suspended by {}/{operator} while the renewal was open",
        who.station
    );
    let answer = super::renew::abort_renewal(
        tx,
        &job,
        doc,
        &reason,
        super::renew::AbortedBy::CentreOperator,
    )
    .await?;
    let details = serde_json::json!({ "service_job": id, "reason": reason,
        "revoked": answer.revoked, "station": job.station,
        "by_hold": true });
    audit(
        tx,
        who,
        operator,
        "renewal.aborted",
        &format!("document:{}", doc.number),
        details,
    )
    .await?;
    Ok(())
}

/// A release: the holder in person, the document suspended (not held for a replacement), within
/// the limit, no issuance in progress for the holder and no other active card of the holder.
/// When the hold began.
async fn check_release(
    tx: &deadpool_postgres::Transaction<'_>,
    centre: &Centre,
    doc: &super::Doc,
    req: &HoldRequest,
) -> Result<SystemTime> {
    if !req.identity_confirmed {
        return Err(CentralError::refused(
            Refusal::BadRequest,
            rules::IDENTITY_NOT_CONFIRMED,
            "identity_confirmed: a suspended document is released only with its holder in person, whose identity the clerk confirmed",
        ));
    }
    if doc.state != "suspended" {
        return Err(CentralError::refused(
            Refusal::Conflict,
            rules::DOCUMENT_NOT_SUSPENDED,
            format!(
                "document {} is {}: only a suspended document is released",
                doc.number, doc.state
            ),
        ));
    }
    let at = doc.suspended_at.unwrap_or(SystemTime::UNIX_EPOCH);
    let elapsed = SystemTime::now().duration_since(at).unwrap_or_default();
    if elapsed >= limit(centre) {
        return Err(CentralError::refused(
            Refusal::Conflict,
            rules::SUSPENSION_LIMIT_EXCEEDED,
            format!(
                "document {} was suspended at {}, {} day(s) ago; a hold is released within {} day(s) ([issuance] suspension_limit_days), after that the document must be revoked",
                doc.number,
                rfc3339(at),
                elapsed.as_secs() / 86_400,
                centre.issuance.suspension_limit_days
            ),
        ));
    }
    // Under the holder's lock, as `reserve` checks: an issuance in progress for the holder (a
    // replacement card, say) first — its `complete` would make a second active card — then an
    // active card (checked second: a `complete` committing between the two is seen by it).
    let pinfl: String = tx
        .prepared_one("SELECT pinfl FROM holders WHERE id = $1", &[&doc.holder_id])
        .await?
        .get(0);
    crate::holders::lock(tx, &pinfl).await?;
    if let Some(office) = crate::issuance::reserve::pending_issuance(tx, doc.holder_id).await? {
        return Err(CentralError::refused_at(
            rules::HOLDER_HAS_PENDING_ISSUANCE,
            office.clone(),
            format!(
                "the holder of {} has an issuance in progress at office {office} (a replacement card?): the hold cannot be released",
                doc.number
            ),
        ));
    }
    if let Some((office, active)) = crate::issuance::reserve::active_card(tx, doc.holder_id).await?
    {
        return Err(CentralError::refused_at(
            rules::HOLDER_HAS_ACTIVE_CARD,
            office.clone(),
            format!(
                "the holder of {} has an active card ({active}) issued by office {office}: the hold cannot be released",
                doc.number
            ),
        ));
    }
    Ok(at)
}
