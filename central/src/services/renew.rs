//! A renewal through the centre (`POST /v1/services/{job}/renew|certify|complete|abort`): new
//! certificates for new key pairs on an issued card, which prove possession as at issuance.
//!
//! ```text
//! renew (document ACTIVE, the card's chip serial; a challenge) ─► certify (keys + proofs;
//!   certificates `issued`, validity capped at the document's expiry) ─► complete (new active,
//!   the document's previous ones revoked superseded)   … or abort (the new ones revoked
//!   cessationOfOperation; the old ones stay active)
//! ```

use crate::db::Prepared;
use std::sync::Arc;
use std::time::SystemTime;

use centre_api::{
    rules, CertifyRequest, CertifyResponse, JobState, RenewRequest, RenewResponse,
    ServiceFinishRequest, ServiceFinishResponse,
};
use deadpool_postgres::Transaction;

use super::{audit, document, existing_job, keep, replay, require_active, serials, ServiceJob};
use crate::enrol::WhoAmI;
use crate::error::{CentralError, Refusal, Result};
use crate::issuance::certify::{check_keys, Checked, Proven};
use crate::issuance::{check_card_serial, check_operator, conflict};
use crate::pki::Centre;

const KIND: &str = "renew";

fn date_text(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// `secs` in words: seconds, minutes or hours, whichever is whole enough.
fn span(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 3600 => (s.div_ceil(3600), "hour"),
        s if s >= 60 => (s.div_ceil(60), "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// `renew`: open the renewal (see the module documentation).
pub async fn open(
    centre: &Centre,
    who: &WhoAmI,
    id: &str,
    req: &RenewRequest,
) -> Result<RenewResponse> {
    check_operator(&req.operator)?;
    check_card_serial(&req.card_serial)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    if super::station_job_locked(&tx, who, id, KIND)
        .await?
        .is_some()
    {
        return replay(&tx, id, KIND, req)
            .await?
            .ok_or_else(|| conflict(format!("service job {id} has no renew step")));
    }
    let doc = document(&tx, &req.document).await?;
    require_active(&doc, "renewal")?;
    if !doc.card_serial.eq_ignore_ascii_case(&req.card_serial) {
        return Err(CentralError::refused(
            Refusal::Conflict,
            rules::CARD_NOT_THE_DOCUMENTS,
            format!(
                "document {} is on card {}, not on card {}",
                doc.number, doc.card_serial, req.card_serial
            ),
        ));
    }
    if doc.date_of_expiry <= today() + time::Duration::days(1) {
        return Err(CentralError::refused(
            Refusal::Conflict,
            rules::DOCUMENT_EXPIRES,
            format!(
                "document {} expires on {}: there is nothing to renew",
                doc.number,
                date_text(doc.date_of_expiry)
            ),
        ));
    }
    if let Some(r) = tx
        .prepared_opt(
            "SELECT id, office FROM service_jobs
             WHERE document_id = $1 AND kind = 'renew' AND state IN ('reserved', 'certified')",
            &[&doc.id],
        )
        .await?
    {
        let (other, office): (String, String) = (r.get(0), r.get(1));
        return Err(conflict(format!(
            "document {} has a renewal open at office {office} (service job {other}); it must \
             complete or abort first (the centre aborts it {} after its last step; a ca-admin \
             of the centre can abort it now: idcentral renewals abort)",
            doc.number,
            span(centre.issuance.renewal_timeout_seconds)
        )));
    }
    let mut challenge = [0u8; 32];
    getrandom::fill(&mut challenge)
        .map_err(|e| CentralError::Other(format!("random challenge: {e}")))?;
    super::insert_job(
        &tx,
        who,
        &super::NewJob {
            id,
            operator: &req.operator,
            kind: KIND,
            document_id: Some(doc.id),
            holder_id: doc.holder_id,
            state: JobState::Reserved,
            challenge: Some(&challenge),
        },
    )
    .await?;
    let answer = RenewResponse {
        job: id.to_owned(),
        document: doc.number.clone(),
        challenge: hex::encode(challenge),
        date_of_expiry: date_text(doc.date_of_expiry),
    };
    keep(&tx, id, KIND, req, &answer).await?;
    let details = serde_json::json!({ "service_job": id, "card_serial": req.card_serial,
        "issued_by_office": doc.office });
    audit(
        &tx,
        who,
        &req.operator,
        "renewal.opened",
        &format!("document:{}", doc.number),
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(answer)
}

/// The renewal's document (by id, locked).
pub(super) async fn job_document(tx: &Transaction<'_>, job: &ServiceJob) -> Result<super::Doc> {
    let id = job
        .document_id
        .ok_or_else(|| CentralError::Database(format!("renewal {} names no document", job.id)))?;
    let r = tx
        .prepared_one("SELECT series, number FROM documents WHERE id = $1", &[&id])
        .await?;
    document(tx, &crate::numbers::document_number(r.get(0), r.get(1))).await
}

/// Issue the certificates in the HSM, each profile's validity capped at the document's expiry
/// and the issuer's own (on the blocking pool: the HSM call blocks).
async fn issue(
    centre: &Arc<Centre>,
    tx: &Transaction<'_>,
    holder_id: i64,
    expiry: time::Date,
    esign: Arc<ca::Issuer>,
    keys: Vec<Checked>,
) -> Result<Vec<(Checked, ca::IssuedCert)>> {
    let holder = crate::holders::get(tx, holder_id).await?;
    let days_left = (expiry - today()).whole_days();
    let c = Arc::clone(centre);
    tokio::task::spawn_blocking(move || {
        let country = &c.profiles.document(profiles::DEFAULT_DOCUMENT)?.country;
        let subject =
            ca::holder_subject(&holder.pinfl, &holder.surname, &holder.given_names, country);
        let now = SystemTime::now();
        let issuer_days = esign
            .not_after()
            .duration_since(now)
            .map(|d| d.as_secs() / 86_400)
            .unwrap_or(0);
        let cap = u32::try_from(days_left.min(i64::try_from(issuer_days).unwrap_or(i64::MAX)))
            .unwrap_or(0);
        if cap < 1 {
            return Err(CentralError::Conflict(
                "the e-Signature CA certificate expires within a day: roll it over before renewing"
                    .into(),
            ));
        }
        keys.into_iter()
            .map(|k| {
                let profile = c.profiles.cert(&k.profile)?.with_validity_at_most(cap);
                let cert = ca::issue(c.store.as_ref(), &profile, &esign, &k.spki, &subject, now)?;
                Ok((k, cert))
            })
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(|e| CentralError::Other(format!("issuing task: {e}")))?
}

/// The renewal's certificates and their issuer's certificate.
async fn issued(tx: &Transaction<'_>, job: &str) -> Result<CertifyResponse> {
    let rows = tx
        .prepared_query(
            "SELECT c.slot, c.profile, c.serial, c.cert_der, k.cert_der FROM certificates c
             JOIN ca_keys k ON k.label = c.issuer_key WHERE c.service_job = $1 ORDER BY c.slot",
            &[&job],
        )
        .await?;
    let issuer = rows
        .first()
        .map(|r| hex::encode(r.get::<_, &[u8]>(4)))
        .unwrap_or_default();
    Ok(CertifyResponse {
        job: job.to_owned(),
        certificates: rows
            .iter()
            .map(|r| centre_api::IssuedCertificate {
                slot: r.get(0),
                profile: r.get(1),
                serial: hex::encode_upper(r.get::<_, &[u8]>(2)),
                der: hex::encode(r.get::<_, &[u8]>(3)),
            })
            .collect(),
        issuer,
    })
}

fn aborted(job: &ServiceJob) -> CentralError {
    let by = if job.timed_out {
        "by the centre"
    } else {
        "by its station"
    };
    CentralError::refused(
        Refusal::Conflict,
        rules::JOB_ABORTED,
        format!(
            "renewal {} was aborted {by} ({})",
            job.id,
            job.abort_reason.as_deref().unwrap_or("no reason recorded")
        ),
    )
}

/// `certify`: the new card keys, each with its proof of possession.
pub async fn certify(
    centre: &Arc<Centre>,
    who: &WhoAmI,
    id: &str,
    req: &CertifyRequest,
) -> Result<CertifyResponse> {
    check_operator(&req.operator)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let job = existing_job(&tx, who, id, KIND).await?;
    if job.state == JobState::Aborted {
        return Err(aborted(&job));
    }
    if let Some(answer) = replay(&tx, id, "certify", req).await? {
        return Ok(answer);
    }
    if job.state != JobState::Reserved {
        return Err(conflict(format!(
            "renewal {id} is {}: certify comes after renew only",
            crate::issuance::state_str(job.state)
        )));
    }
    let doc = job_document(&tx, &job).await?;
    require_active(&doc, "renewal")?;
    let challenge = job.challenge.clone().unwrap_or_default();
    let keys = check_keys(
        centre,
        &Proven {
            id,
            challenge: &challenge,
        },
        req,
    )?;
    let esign = centre.active_issuer(&tx, "esign").await?;
    let made = issue(centre, &tx, doc.holder_id, doc.date_of_expiry, esign, keys).await?;
    let mut listed = Vec::new();
    for (k, cert) in &made {
        tx.prepared_execute(
            "INSERT INTO certificates (serial, job, holder_id, slot, profile, cert_der, issuer_key, state, service_job)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'issued', $8)",
            &[&cert.serial, &doc.job, &doc.holder_id, &k.slot.to_string(), &k.profile, &cert.der,
              &cert.issuer_key_label, &id],
        )
        .await?;
        listed.push(serde_json::json!({ "slot": k.slot.to_string(), "serial": hex::encode_upper(&cert.serial) }));
    }
    super::set_state(&tx, id, JobState::Certified, None).await?;
    let answer = issued(&tx, id).await?;
    keep(&tx, id, "certify", req, &answer).await?;
    let details = serde_json::json!({ "service_job": id, "certificates": listed });
    audit(
        &tx,
        who,
        &req.operator,
        "renewal.certified",
        &format!("document:{}", doc.number),
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(answer)
}

/// `complete`: the renewal's certificates active, the document's previous ones superseded.
pub async fn complete(
    centre: &Centre,
    who: &WhoAmI,
    id: &str,
    req: &ServiceFinishRequest,
) -> Result<ServiceFinishResponse> {
    check_operator(&req.operator)?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let job = existing_job(&tx, who, id, KIND).await?;
    if let Some(answer) = replay(&tx, id, "complete", req).await? {
        return Ok(answer);
    }
    match job.state {
        JobState::Certified => {}
        JobState::Aborted => return Err(aborted(&job)),
        s => {
            return Err(conflict(format!(
                "renewal {id} is {}: complete comes after certify only",
                crate::issuance::state_str(s)
            )))
        }
    }
    let doc = job_document(&tx, &job).await?;
    require_active(&doc, "renewal")?;
    let superseded = tx
        .prepared_query(
            "UPDATE certificates SET state = 'revoked', revocation_reason = 'superseded', revoked_at = now()
             WHERE job = $1 AND state = 'active' AND service_job IS DISTINCT FROM $2 RETURNING serial",
            &[&doc.job, &id],
        )
        .await?;
    let active = tx
        .prepared_query(
            "UPDATE certificates SET state = 'active' WHERE service_job = $1 AND state = 'issued' RETURNING serial",
            &[&id],
        )
        .await?;
    super::set_state(&tx, id, JobState::Completed, None).await?;
    // The issuing station hears of it in its list of changes.
    tx.prepared_execute(
        "UPDATE documents SET certificates_changed_at = now(), certificates_changed_by = $2
         WHERE id = $1",
        &[&doc.id, &format!("{}/{}", who.station, req.operator)],
    )
    .await?;
    let mut answer = ServiceFinishResponse {
        job: id.to_owned(),
        document: doc.number.clone(),
        state: JobState::Completed,
        active: serials(&active),
        revoked: serials(&superseded),
    };
    answer.active.sort();
    answer.revoked.sort();
    keep(&tx, id, "complete", req, &answer).await?;
    let details = serde_json::json!({ "service_job": id, "active": answer.active,
        "superseded": answer.revoked });
    audit(
        &tx,
        who,
        &req.operator,
        "renewal.completed",
        &format!("document:{}", doc.number),
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(answer)
}

/// `abort`: the renewal's certificates revoked (cessationOfOperation); the card keeps working
/// with the document's previous ones.
pub async fn abort(
    centre: &Centre,
    who: &WhoAmI,
    id: &str,
    req: &ServiceFinishRequest,
) -> Result<ServiceFinishResponse> {
    check_operator(&req.operator)?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || req.reason.chars().any(char::is_control)
    {
        return Err(CentralError::invalid(
            "reason",
            "must be 1-500 characters without control characters",
        ));
    }
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let job = existing_job(&tx, who, id, KIND).await?;
    if let Some(answer) = replay(&tx, id, "abort", req).await? {
        return Ok(answer);
    }
    if job.state == JobState::Completed {
        return Err(conflict(format!(
            "renewal {id} is completed: its certificates are on the card"
        )));
    }
    let doc = job_document(&tx, &job).await?;
    if job.state == JobState::Aborted {
        // Aborted already (by the centre's timeout, or an abort whose answer was lost): as it
        // is, reason and audit unchanged.
        let rows = tx
            .prepared_query(
                "SELECT serial FROM certificates WHERE service_job = $1 ORDER BY serial",
                &[&id],
            )
            .await?;
        tx.commit().await?;
        return Ok(ServiceFinishResponse {
            job: id.to_owned(),
            document: doc.number,
            state: JobState::Aborted,
            active: Vec::new(),
            revoked: serials(&rows),
        });
    }
    let answer = abort_renewal(&tx, &job, &doc, reason, AbortedBy::Station).await?;
    keep(&tx, id, "abort", req, &answer).await?;
    let details =
        serde_json::json!({ "service_job": id, "reason": reason, "revoked": answer.revoked });
    audit(
        &tx,
        who,
        &req.operator,
        "renewal.aborted",
        &format!("document:{}", doc.number),
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(answer)
}

/// Who aborts a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AbortedBy {
    /// Its station.
    Station,
    /// The centre's timeout sweep.
    Timeout,
    /// A ca-admin of the centre (`idcentral renewals abort`).
    CentreOperator,
}

/// Abort renewal `job` of `doc`: what it issued revoked (cessationOfOperation), the document's
/// previous certificates untouched. Aborted at the centre (not by its station), its
/// certificates still count as the card's for the card-key release (`aborted_at_centre`).
pub(super) async fn abort_renewal(
    tx: &Transaction<'_>,
    job: &ServiceJob,
    doc: &super::Doc,
    reason: &str,
    by: AbortedBy,
) -> Result<ServiceFinishResponse> {
    let revoked = tx
        .prepared_query(
            "UPDATE certificates SET state = 'revoked', revocation_reason = 'cessationOfOperation', revoked_at = now()
             WHERE service_job = $1 AND state <> 'revoked' RETURNING serial",
            &[&job.id],
        )
        .await?;
    super::set_state(tx, &job.id, JobState::Aborted, Some(reason)).await?;
    if by != AbortedBy::Station {
        tx.prepared_execute(
            "UPDATE service_jobs SET aborted_at_centre = true,
                    timed_out_at = CASE WHEN $2 THEN now() END
             WHERE id = $1",
            &[&job.id, &(by == AbortedBy::Timeout)],
        )
        .await?;
    }
    let mut answer = ServiceFinishResponse {
        job: job.id.clone(),
        document: doc.number.clone(),
        state: JobState::Aborted,
        active: Vec::new(),
        revoked: serials(&revoked),
    };
    answer.revoked.sort();
    Ok(answer)
}

/// Renewals aborted per transaction of the sweep.
const SWEEP_BATCH: i64 = 50;

/// The centre's sweep: abort the renewals whose last step is older than `[issuance]
/// renewal_timeout_seconds` that no other instance is working on (`FOR UPDATE SKIP LOCKED`);
/// how many. Each is audited `renewal.aborted` by the centre, naming the office that opened it.
pub async fn sweep_once(centre: &Centre) -> Result<usize> {
    let timeout = centre.issuance.renewal_timeout_seconds;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let ids: Vec<(String, String)> = tx
        .prepared_query(
            "SELECT id, office FROM service_jobs WHERE kind = 'renew' AND state IN ('reserved', 'certified')
               AND updated_at < now() - make_interval(secs => $1)
             ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&(timeout as f64), &SWEEP_BATCH],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let by = crate::public::centre_actor(&centre.name);
    let reason = format!("timeout: the renewal stayed open longer than {timeout} seconds");
    for (id, office) in &ids {
        let Some(job) = super::find(&tx, id).await? else {
            continue;
        };
        let doc = job_document(&tx, &job).await?;
        let answer = abort_renewal(&tx, &job, &doc, &reason, AbortedBy::Timeout).await?;
        let details = serde_json::json!({ "service_job": id, "reason": reason,
            "revoked": answer.revoked, "timed_out": true, "office": office,
            "station": job.station });
        crate::audit::append(
            &tx,
            &by,
            "renewal.aborted",
            &format!("document:{}", doc.number),
            &details,
        )
        .await?;
        tracing::info!(job = %id, station = %job.station, "aborted an overdue renewal");
    }
    tx.commit().await?;
    Ok(ids.len())
}

/// `GET /v1/services/{job}`.
pub async fn status(
    centre: &Centre,
    who: &WhoAmI,
    id: &str,
) -> Result<centre_api::ServiceJobStatus> {
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    super::check_job_id_only(id)?;
    let job = super::find(&tx, id).await?.ok_or_else(|| {
        CentralError::refused(
            Refusal::NotFound,
            centre_api::rules::JOB_NOT_FOUND,
            format!("service job {id} is not known to the centre"),
        )
    })?;
    let job = existing_job(&tx, who, id, &job.kind).await?;
    let document = match job.document_id {
        Some(d) => {
            let r = tx
                .prepared_one("SELECT series, number FROM documents WHERE id = $1", &[&d])
                .await?;
            Some(crate::numbers::document_number(r.get(0), r.get(1)))
        }
        None => None,
    };
    let certificates = issued(&tx, id).await?.certificates;
    let status = centre_api::ServiceJobStatus {
        job: job.id,
        kind: job.kind,
        state: job.state,
        document,
        certificates,
        abort_reason: job.abort_reason,
        timed_out: job.timed_out,
    };
    // The certificates name the holder: the read is audited, as `job.shown` is for issuance.
    let by = crate::issuance::actor(who, &who.station);
    let details = serde_json::json!({ "service_job": status.job, "kind": status.kind,
        "document": status.document, "certificates": status.certificates.len() });
    crate::audit::append(
        &tx,
        &by,
        "service-job.shown",
        &format!("service-job:{}", status.job),
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_timeout_is_said_in_whole_hours_minutes_or_seconds() {
        assert_eq!(super::span(86_400), "24 hours");
        assert_eq!(super::span(3600), "1 hour");
        assert_eq!(super::span(3601), "2 hours");
        assert_eq!(super::span(90), "2 minutes");
        assert_eq!(super::span(60), "1 minute");
        assert_eq!(super::span(1), "1 second");
        assert_eq!(super::span(45), "45 seconds");
    }
}
