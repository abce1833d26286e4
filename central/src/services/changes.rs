//! `POST /v1/documents/changes`: the documents a station issued whose state changed at the
//! centre after a given time, so that the station brings its registry up to date with what
//! other offices did (a holder may suspend a card or declare it lost at any office; the issuing
//! station's registry is not told at the time), or whose certificates a renewal replaced (at
//! any office: the document's active renewed certificates are listed). A read of the station's
//! own documents: a clerk or ca-admin of the station, audited `documents.changes-read` with the
//! count.

use centre_api::{roles, DocumentChange, DocumentChanges, DocumentChangesRequest, WhoAmI};

use crate::audit;
use crate::db::Prepared;
use crate::error::{CentralError, Result};
use crate::pki::Centre;

/// The roles of a station's operator that may ask: those who serve its documents.
const ROLES: &[&str] = &[roles::CLERK, roles::CA_ADMIN];

/// The most changes one answer holds (and the default); a longer list ends its `until` at the
/// last one listed, so the next request goes on from there.
const PAGE: u32 = 1000;

/// The columns of a change: column 4 is its time (the latest change of the document's state or
/// of its certificates: the list's order and pages), `d.id` (7) for the page's end; then the
/// certificates' change (8, 9), the job (10) and the state's own change (11, 12; a document
/// whose state never changed: the certificates').
macro_rules! columns {
    () => {
        "d.series, d.number, d.state, d.state_reason,
         greatest(d.state_changed_at, d.certificates_changed_at), NULL::text,
         d.suspended_at, d.id, d.certificates_changed_at, d.certificates_changed_by, d.job,
         coalesce(d.state_changed_at, d.certificates_changed_at),
         coalesce(d.state_changed_by, d.certificates_changed_by)"
    };
}

/// The active certificates that renewals issued of each of `jobs` (issuance jobs), by job: one
/// query for a page.
async fn renewed_certificates(
    tx: &deadpool_postgres::Transaction<'_>,
    jobs: &[String],
) -> Result<std::collections::HashMap<String, Vec<centre_api::IssuedCertificate>>> {
    let mut by_job: std::collections::HashMap<String, Vec<_>> = std::collections::HashMap::new();
    if jobs.is_empty() {
        return Ok(by_job);
    }
    let rows = tx
        .prepared_query(
            "SELECT job, slot, profile, serial, cert_der FROM certificates
             WHERE job = ANY($1) AND state = 'active' AND service_job IS NOT NULL
             ORDER BY job, slot",
            &[&jobs],
        )
        .await?;
    for r in &rows {
        by_job
            .entry(r.get(0))
            .or_default()
            .push(centre_api::IssuedCertificate {
                slot: r.get(1),
                profile: r.get(2),
                serial: hex::encode_upper(r.get::<_, &[u8]>(3)),
                der: hex::encode(r.get::<_, &[u8]>(4)),
            });
    }
    Ok(by_job)
}

/// The changes `req` asks for (see the module documentation), oldest first.
pub async fn list(
    centre: &Centre,
    who: &WhoAmI,
    req: &DocumentChangesRequest,
) -> Result<DocumentChanges> {
    let actor = crate::operators::station_operator(
        who,
        &req.operator,
        &req.role,
        "read the changes of its documents",
        ROLES,
    )?;
    let since = req
        .since
        .as_deref()
        .map(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(std::time::SystemTime::from)
                .map_err(|e| {
                    CentralError::invalid("since", format!("{s:?} is not an RFC 3339 time: {e}"))
                })
        })
        .transpose()?;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let until: std::time::SystemTime = tx.prepared_one("SELECT now()", &[]).await?.get(0);
    let limit = match req.limit {
        None => PAGE,
        Some(n @ 1..=PAGE) => n,
        Some(n) => {
            return Err(CentralError::invalid(
                "limit",
                format!("{n}: must be 1..{PAGE}"),
            ))
        }
    };
    let mut rows = tx
        .prepared_query(
            concat!(
                "SELECT ",
                columns!(),
                " FROM documents d
                 WHERE d.station = $1
                   AND greatest(d.state_changed_at, d.certificates_changed_at)
                       > coalesce($2::timestamptz, '-infinity')
                 ORDER BY greatest(d.state_changed_at, d.certificates_changed_at), d.id
                 LIMIT $3"
            ),
            &[&who.station, &since, &i64::from(limit)],
        )
        .await?;
    // A full page: it ends with every change of its last change's time (documents changed at
    // the same instant), so that the next request, strictly after it, loses none of them.
    let more = rows.len() == limit as usize;
    if let Some(last) = rows.last().filter(|_| more) {
        let (at, id): (std::time::SystemTime, i64) = (last.get(4), last.get(7));
        let ties = tx
            .prepared_query(
                concat!(
                    "SELECT ",
                    columns!(),
                    " FROM documents d
                     WHERE d.station = $1
                       AND greatest(d.state_changed_at, d.certificates_changed_at) = $2
                       AND d.id > $3
                     ORDER BY d.id"
                ),
                &[&who.station, &at, &id],
            )
            .await?;
        rows.extend(ties);
    }
    let until = match rows.last() {
        Some(last) if more => last.get(4),
        _ => until,
    };
    // Every listed active document's renewed certificates (a station that skipped a renewal while
    // the document was on hold gets it once the document is active again).
    let renewed_jobs: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<_, &str>(2) == "active")
        .filter(|r| r.get::<_, Option<std::time::SystemTime>>(8).is_some())
        .map(|r| r.get(10))
        .collect();
    let mut renewed_certs = renewed_certificates(&tx, &renewed_jobs).await?;
    let mut documents: Vec<DocumentChange> = Vec::with_capacity(rows.len());
    for r in &rows {
        let state: String = r.get(2);
        let suspended_at: Option<std::time::SystemTime> = r.get(6);
        let renewed_at: Option<std::time::SystemTime> = r.get(8);
        let renewed = renewed_at.map(|at| centre_api::CertificatesRenewed {
            at: super::hold::rfc3339(at),
            by: r.get::<_, Option<String>>(9).unwrap_or_default(),
            certificates: renewed_certs
                .remove(r.get::<_, &str>(10))
                .unwrap_or_default(),
        });
        documents.push(DocumentChange {
            document: crate::numbers::document_number(r.get(0), r.get(1)),
            release_until: suspended_at
                .filter(|_| state == "suspended")
                .map(|at| super::hold::rfc3339(at + super::hold::limit(centre))),
            state,
            reason: r.get(3),
            changed_at: super::hold::rfc3339(r.get(11)),
            changed_by: r.get(12),
            renewed,
        });
    }
    let details = serde_json::json!({ "since": req.since, "documents": documents.len() });
    let object = format!("station:{}", who.station);
    audit::append(&tx, &actor, "documents.changes-read", &object, &details).await?;
    tx.commit().await?;
    Ok(DocumentChanges {
        until: super::hold::rfc3339(until),
        documents,
        more,
    })
}
