//! Looking records up (`idstation show`) and declaring a card lost, stolen or otherwise out of
//! use (`idstation revoke`): document status, certificate revocation, audit event.

use registry::{AuditEntry, CertStatus, DocumentNumber, DocumentStatus, Holder, Job, Role};
use serde::Serialize;

use crate::error::StationError;
use crate::session::Session;
use crate::Station;

#[derive(Debug, Clone, Serialize)]
pub struct CertView {
    pub serial: String,
    pub profile: String,
    pub status: String,
    pub not_after: String,
    pub revocation_reason: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DocumentView {
    pub document: String,
    pub status: String,
    pub office: String,
    pub date_of_issue: String,
    pub date_of_expiry: String,
    pub card_serial: Option<String>,
    pub job_id: Option<i64>,
    pub certificates: Vec<CertView>,
    /// The three TD1 MRZ lines (ICAO 9303 Part 5) printed on the card and in its DG1, derived
    /// from the holder record and the document; `None` while the document has no expiry date
    /// (not issued yet).
    pub mrz: Option<Vec<String>>,
    /// The card access number (ICAO 9303-11 §4.4, printed on the card face) of a card issued
    /// with PACE: only in [`show_document`], whose read of it is audited (`document.can-read`).
    pub can: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub job_id: i64,
    pub state: String,
    pub document: Option<String>,
    pub card_serial: Option<String>,
    pub operator: String,
    pub created_at: String,
    pub error: Option<String>,
    pub steps: Vec<String>,
    pub certificates: Vec<CertView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HolderView {
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    pub patronymic: Option<String>,
    pub date_of_birth: String,
    pub citizenship: String,
    pub documents: Vec<DocumentView>,
    pub jobs: Vec<JobView>,
}

fn cert_views(st: &Station, job_id: i64) -> Result<Vec<CertView>, StationError> {
    Ok(st
        .registry
        .certificates_of_job(job_id)?
        .into_iter()
        .map(|c| CertView {
            serial: c.data.serial,
            profile: c.data.purpose,
            status: c.status.as_str().to_string(),
            not_after: c.data.not_after,
            revocation_reason: c.revocation_reason,
            revoked_at: c.revoked_at,
        })
        .collect())
}

fn job_view(st: &Station, j: &Job) -> Result<JobView, StationError> {
    Ok(JobView {
        job_id: j.id,
        state: j.state.as_str().to_string(),
        document: j.document.map(|d| d.to_string()),
        card_serial: j.card_serial.clone(),
        operator: j.operator.clone(),
        created_at: j.created_at.clone(),
        error: j.error.clone(),
        steps: j
            .steps
            .iter()
            .map(|s| format!("{} {}", s.step, s.state.as_str()))
            .collect(),
        certificates: cert_views(st, j.id)?,
    })
}

pub fn parse_document(s: &str) -> Result<DocumentNumber, StationError> {
    s.parse::<DocumentNumber>().map_err(StationError::from)
}

/// The MRZ of a document, from the registry's holder and document records.
pub fn document_mrz(
    st: &Station,
    d: &registry::Document,
) -> Result<Option<[String; 3]>, StationError> {
    let Ok(expiry) = crate::holder::parse_date(&d.date_of_expiry) else {
        return Ok(None);
    };
    let h = st
        .registry
        .holder(d.holder_id)?
        .ok_or_else(|| StationError::Other(format!("document {} has no holder", d.number)))?;
    crate::holder_views::record_mrz_lines(
        &crate::holder_views::MrzRecord::from_registry(&h.data),
        st.document_profile()?,
        &d.number.to_string(),
        expiry,
    )
    .map(Some)
}

fn document_view(st: &Station, d: &registry::Document) -> Result<DocumentView, StationError> {
    let job = st.registry.job_of_document(d.number)?;
    let mrz = document_mrz(st, d)?.map(|m| m.to_vec());
    Ok(DocumentView {
        document: d.number.to_string(),
        status: d.status.as_str().to_string(),
        office: d.office.clone(),
        date_of_issue: d.date_of_issue.clone(),
        date_of_expiry: d.date_of_expiry.clone(),
        card_serial: job.as_ref().and_then(|j| j.card_serial.clone()),
        job_id: job.as_ref().map(|j| j.id),
        certificates: match &job {
            Some(j) => cert_views(st, j.id)?,
            None => Vec::new(),
        },
        mrz,
        can: None,
    })
}

pub(crate) fn holder_view(st: &Station, h: &Holder) -> Result<HolderView, StationError> {
    let documents = st
        .registry
        .documents_of_holder(h.id)?
        .iter()
        .map(|d| document_view(st, d))
        .collect::<Result<_, _>>()?;
    let jobs = st
        .registry
        .jobs_of_holder(h.id)?
        .iter()
        .map(|j| job_view(st, j))
        .collect::<Result<_, _>>()?;
    Ok(HolderView {
        pinfl: h.data.pinfl.clone(),
        surname: h.data.surname.clone(),
        given_names: h.data.given_names.clone(),
        patronymic: h.data.patronymic.clone(),
        date_of_birth: h.data.date_of_birth.clone(),
        citizenship: h.data.citizenship.clone(),
        documents,
        jobs,
    })
}

/// Who may read a holder's record: clerks (enrolment, look-ups) and auditors.
pub const READ_ROLES: &[Role] = &[Role::Clerk, Role::Auditor];

/// Record that `session` read the records of `pinfls` (`holder.read`, one event a holder, in
/// one transaction) through `via` (`show --pinfl`, the GUI look-up, ...). A read that cannot be
/// audited is not answered.
pub fn audit_holder_reads(
    st: &mut Station,
    session: &Session,
    pinfls: &[&str],
    via: &str,
) -> Result<(), StationError> {
    let tx = st.registry.transaction()?;
    for pinfl in pinfls {
        tx.audit(&AuditEntry {
            actor: session.actor(),
            action: "holder.read",
            object: &format!("holder:{pinfl}"),
            details: &serde_json::json!({ "via": via }),
        })?;
    }
    tx.commit()?;
    Ok(())
}

/// The holder with PINFL `pinfl`, their documents and jobs (clerk or auditor; audited).
pub fn show_pinfl(
    st: &mut Station,
    session: &Session,
    pinfl: &str,
) -> Result<HolderView, StationError> {
    crate::session::require_current(&mut st.registry, session, "read holder records", READ_ROLES)?;
    let h = st
        .registry
        .holder_by_pinfl(pinfl)?
        .ok_or_else(|| StationError::NotFound(format!("no holder with PINFL {pinfl}")))?;
    let v = holder_view(st, &h)?;
    audit_holder_reads(st, session, &[&h.data.pinfl], "show --pinfl")?;
    Ok(v)
}

/// Document `num` and its holder, with the card's CAN (clerk or auditor; the holder's read is
/// audited, and so is the read of the CAN).
pub fn show_document(
    st: &mut Station,
    session: &Session,
    num: &str,
) -> Result<(HolderView, DocumentView), StationError> {
    crate::session::require_current(&mut st.registry, session, "read holder records", READ_ROLES)?;
    let num = parse_document(num)?;
    let d = st
        .registry
        .document(num)?
        .ok_or_else(|| StationError::NotFound(format!("no document {num}")))?;
    let h = st
        .registry
        .holder(d.holder_id)?
        .ok_or_else(|| StationError::Other(format!("document {num} has no holder")))?;
    let mut doc = document_view(st, &d)?;
    doc.can = st.registry.document_can(num)?;
    let out = (holder_view(st, &h)?, doc);
    audit_holder_reads(
        st,
        session,
        &[&h.data.pinfl],
        &format!("show --document {num}"),
    )?;
    if out.1.can.is_some() {
        // The CAN opens the chip: its read is personal data, audited before it is answered.
        st.registry.audit(&AuditEntry {
            actor: session.actor(),
            action: "document.can-read",
            object: &format!("document:{num}"),
            details: &serde_json::json!({ "via": "show --document" }),
        })?;
    }
    Ok(out)
}

/// Issuance job `id` (clerk or auditor; the read of its holder's job is audited).
pub fn show_job(st: &mut Station, session: &Session, id: i64) -> Result<JobView, StationError> {
    crate::session::require_current(&mut st.registry, session, "read holder records", READ_ROLES)?;
    let j = st
        .registry
        .job(id)?
        .ok_or_else(|| StationError::NotFound(format!("no job {id}")))?;
    let v = job_view(st, &j)?;
    if let Some(h) = st.registry.holder(j.holder_id)? {
        audit_holder_reads(st, session, &[&h.data.pinfl], &format!("show --job {id}"))?;
    }
    Ok(v)
}

/// Messages not yet acknowledged (they carry holders' data to other systems): clerk, ca-admin
/// or auditor; the read is audited (`outbox.read`, how many messages).
pub fn outbox_list(
    st: &mut Station,
    session: &Session,
) -> Result<Vec<crate::audit::OutboxItem>, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "read the outbox",
        &[Role::Clerk, Role::CaAdmin, Role::Auditor],
    )?;
    let items = crate::audit::outbox_pending(&st.registry)?;
    let ids: Vec<i64> = items.iter().map(|m| m.id).collect();
    st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action: "outbox.read",
        object: "outbox",
        details: &serde_json::json!({ "messages": ids }),
    })?;
    Ok(items)
}

/// Why a document is taken out of use, and what that means for it and its certificates.
pub fn revocation_for(reason: &str) -> Result<(DocumentStatus, &'static str), StationError> {
    Ok(match reason {
        // The private keys may be in someone else's hands.
        "lost" | "stolen" => (DocumentStatus::Lost, "keyCompromise"),
        "damaged" | "deceased" => (DocumentStatus::Revoked, "cessationOfOperation"),
        "replaced" => (DocumentStatus::Revoked, "superseded"),
        "data-changed" => (DocumentStatus::Revoked, "affiliationChanged"),
        other => {
            return Err(StationError::invalid(
                "reason",
                format!(
                "{other:?} must be one of lost, stolen, damaged, deceased, replaced, data-changed"
            ),
            ))
        }
    })
}

/// Inside `tx`, every certificate of a document taken out of use revoked with `crl_reason`: the
/// active or issued ones revoked, those on hold (a suspended document) made final (RFC 5280
/// §5.3.1); their serials.
pub(crate) fn revoke_all(
    tx: &registry::Tx<'_>,
    certs: &[registry::Certificate],
    crl_reason: &str,
) -> Result<Vec<String>, StationError> {
    let now = registry::now_rfc3339();
    let mut revoked = Vec::new();
    for c in certs {
        if matches!(c.status, CertStatus::Active | CertStatus::Issued) {
            tx.revoke_certificate(c.id, crl_reason, &now)?;
        } else if c.status == CertStatus::Revoked
            && c.revocation_reason.as_deref() == Some("certificateHold")
        {
            tx.finalize_certificate_hold(c.id, crl_reason, &now)?;
        } else {
            continue;
        }
        revoked.push(c.data.serial.clone());
    }
    Ok(revoked)
}

#[derive(Debug, Clone, Serialize)]
pub struct RevokeReport {
    pub document: String,
    pub status: String,
    pub revoked_certificates: Vec<String>,
    pub crl_reason: String,
}

/// Audit a refused revocation of document `num` (`document.revoke-refused`) and return `e`.
fn revoke_refused(
    st: &mut Station,
    session: &Session,
    num: DocumentNumber,
    e: StationError,
) -> StationError {
    let object = format!("document:{num}");
    crate::audit::refused(st, session, "document.revoke-refused", &object, e)
}

/// `idstation revoke`: the document's status, its certificates revoked (they appear on the
/// next CRL of the key that issued them), one audit event — in one transaction.
pub fn revoke(
    st: &mut Station,
    session: &Session,
    num: &str,
    reason: &str,
) -> Result<RevokeReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "revoke documents",
        &[registry::Role::Clerk, registry::Role::CaAdmin],
    )?;
    let (status, crl_reason) = revocation_for(reason)?;
    let num = parse_document(num)?;
    if st.config.centre.is_some() {
        // The centre's record decides; the station mirrors what it knows.
        let answer = crate::ra::revoke_at_centre(st, session.actor(), num, reason)
            .map_err(|e| revoke_refused(st, session, num, e))?;
        if st.registry.document(num)?.is_none() {
            // Issued by another office: nothing to mirror here, but recorded here.
            if answer.crl_reason.is_empty() {
                // The centre had it out of use already and changed nothing.
                let e = StationError::Conflict(format!(
                    "document status: document {num} is already {} at the national centre; nothing was changed",
                    answer.state
                ));
                return Err(revoke_refused(st, session, num, e));
            }
            st.registry.audit(&AuditEntry {
                actor: session.actor(),
                action: "document.revoked",
                object: &format!("document:{num}"),
                details: &serde_json::json!({
                    "reason": reason, "status": answer.state, "certificates": answer.revoked,
                    "crl_reason": answer.crl_reason, "at_centre": true,
                }),
            })?;
            return Ok(RevokeReport {
                document: answer.document,
                status: answer.state,
                revoked_certificates: answer.revoked,
                crl_reason: answer.crl_reason,
            });
        }
    }
    let doc = st
        .registry
        .document(num)?
        .ok_or_else(|| StationError::NotFound(format!("no document {num}")))
        .map_err(|e| revoke_refused(st, session, num, e))?;
    if doc.status != DocumentStatus::Active && doc.status != DocumentStatus::Suspended {
        let e = StationError::Conflict(format!(
            "document status: document {num} is {}, not active",
            doc.status.as_str()
        ));
        return Err(revoke_refused(st, session, num, e));
    }
    let certs = match st.registry.job_of_document(num)? {
        Some(j) => st.registry.certificates_of_job(j.id)?,
        None => Vec::new(),
    };
    let tx = st.registry.transaction()?;
    tx.set_document_status(num, status, reason, session.actor())?;
    let revoked = revoke_all(&tx, &certs, crl_reason)?;
    tx.audit(&AuditEntry {
        actor: session.actor(),
        action: "document.revoked",
        object: &format!("document:{num}"),
        details: &serde_json::json!({ "reason": reason, "status": status.as_str(), "certificates": revoked, "crl_reason": crl_reason }),
    })?;
    tx.commit()?;
    Ok(RevokeReport {
        document: num.to_string(),
        status: status.as_str().into(),
        revoked_certificates: revoked,
        crl_reason: crl_reason.into(),
    })
}
