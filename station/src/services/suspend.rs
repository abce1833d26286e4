//! `idstation suspend` / `resume`: a document put on hold and taken off it (issue 16). Suspend
//! revokes the certificates on the document's card with reason certificateHold (RFC 5280
//! §5.3.1) and sets the document SUSPENDED; resume, with the holder in person and within
//! `[services] suspension_limit_days` of the suspension, releases the hold: the certificates
//! are active again and absent from the next full CRL (this CA issues no delta CRLs, so
//! removeFromCRL is never used; a relying party that cached the CRL listing the hold sees the
//! release at the next CRL). Each is one registry transaction (status, certificates, audit):
//! nothing of it is left half done, so there is nothing to journal.

use registry::{AuditEntry, CertStatus, DocumentStatus};
use serde::Serialize;

use crate::error::StationError;
use crate::session::Session;
use crate::Station;

use super::refused;

/// CRLReason of a suspension (RFC 5280 §5.3.1).
pub const HOLD: &str = "certificateHold";

#[derive(Debug, Clone, Serialize)]
pub struct SuspendReport {
    pub document: String,
    pub status: String,
    /// Serials of the certificates put on hold (listed on the next CRL, certificateHold).
    pub held_certificates: Vec<String>,
    pub crl_reason: String,
    /// The last moment resume is allowed (RFC 3339 UTC).
    pub resume_until: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResumeReport {
    pub document: String,
    pub status: String,
    /// Serials released from hold (absent from the next CRL).
    pub released_certificates: Vec<String>,
    pub suspended_at: String,
    pub identity_confirmed_by: String,
}

/// What the clerk hands to a resume.
pub struct ResumeInput {
    pub document: String,
    /// The clerk checked the holder's identity in person (recorded in the audit log).
    pub identity_confirmed: bool,
}

/// A document only the centre knows (no local record): held or released there.
fn at_centre_only(
    st: &mut Station,
    session: &Session,
    num: &str,
    release: Option<bool>,
) -> Result<crate::service_seam::Hold, StationError> {
    let seam = crate::ra_services::seam(st);
    let r = match release {
        None => seam.hold(st, session.actor(), num),
        Some(confirmed) => seam.release(st, session.actor(), num, confirmed),
    };
    let service = if release.is_some() {
        "resume"
    } else {
        "suspend"
    };
    let hold = r
        .and_then(|h| {
            h.ok_or_else(|| StationError::NotFound(format!("document: no document {num}")))
        })
        .map_err(|e| refused(st, session, service, num, e))?;
    st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action: if release.is_some() {
            "document.resumed"
        } else {
            "document.suspended"
        },
        object: &format!("document:{num}"),
        details: &serde_json::json!({ "at_centre": true, "certificates": hold.certificates,
            "suspended_at": hold.suspended_at }),
    })?;
    Ok(hold)
}

fn limit_seconds(st: &Station) -> u64 {
    u64::from(st.config.services.suspension_limit_days) * 86_400
}

/// Until when a suspension may be resumed, and the length of that window in whole days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeWindow {
    pub until: String,
    pub days: u32,
}

/// The window of `s`: as recorded with the suspension (on an enrolled station the centre's),
/// or for a suspension recorded before the registry kept it, `[services]
/// suspension_limit_days` from its start.
pub fn window(st: &Station, s: &registry::Suspension) -> Result<ResumeWindow, StationError> {
    let since = crate::time_util::parse_rfc3339(&s.since).map_err(StationError::Other)?;
    let Some(until) = &s.resume_until else {
        return Ok(ResumeWindow {
            until: crate::time_util::format_rfc3339(
                since + std::time::Duration::from_secs(limit_seconds(st)),
            ),
            days: st.config.services.suspension_limit_days,
        });
    };
    crate::time_util::parse_rfc3339(until).map_err(StationError::Other)?;
    Ok(ResumeWindow {
        until: until.clone(),
        days: whole_days(&s.since, until).unwrap_or_default(),
    })
}

/// Whether the window that ends at `until` (RFC 3339) is over: compared as times, not as text
/// (the registry's own timestamps carry microseconds, a window's end whole seconds). An end
/// that does not parse counts as over.
pub fn window_passed(until: &str) -> bool {
    crate::time_util::parse_rfc3339(until).map_or(true, |end| std::time::SystemTime::now() >= end)
}

/// The days from `since` to `until` (RFC 3339), to the nearest whole day.
pub fn whole_days(since: &str, until: &str) -> Option<u32> {
    let a = crate::time_util::parse_rfc3339(since).ok()?;
    let b = crate::time_util::parse_rfc3339(until).ok()?;
    let secs = b.duration_since(a).unwrap_or_default().as_secs();
    u32::try_from((secs + 43_200) / 86_400).ok()
}

/// Suspend document `num`: its card's active certificates on hold, the document SUSPENDED.
pub fn suspend(
    st: &mut Station,
    session: &Session,
    num: &str,
) -> Result<SuspendReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "suspend documents",
        &[registry::Role::Clerk],
    )?;
    if !super::known_here(st, num).map_err(|e| refused(st, session, "suspend", num, e))? {
        let h = at_centre_only(st, session, num, None)?;
        return Ok(SuspendReport {
            document: h.document,
            status: h.state,
            held_certificates: h.certificates,
            crl_reason: HOLD.into(),
            resume_until: crate::time_util::whole_seconds(&h.release_until)
                .unwrap_or(h.release_until),
        });
    }
    let checked = (|| {
        let number = crate::records::parse_document(num)?;
        let doc = st
            .registry
            .document(number)?
            .ok_or_else(|| StationError::NotFound(format!("document: no document {number}")))?;
        if doc.status != DocumentStatus::Active {
            return Err(StationError::Conflict(format!(
                "document status: document {number} is {}; only an active document can be suspended",
                doc.status.as_str()
            )));
        }
        let card = st.registry.card_of_document(doc.id)?.ok_or_else(|| {
            StationError::Conflict(format!(
                "document {number} has no card on record: only an issued document can be suspended"
            ))
        })?;
        let certs: Vec<_> = st
            .registry
            .certificates_of_card(card.id)?
            .into_iter()
            .filter(|c| c.status == CertStatus::Active)
            .collect();
        Ok((doc, certs))
    })();
    let (doc, certs) = checked.map_err(|e| refused(st, session, "suspend", num, e))?;
    let number = doc.number;
    let national = crate::ra_services::seam(st)
        .hold(st, session.actor(), &number.to_string())
        .map_err(|e| refused(st, session, "suspend", num, e))?;
    let now = registry::now_rfc3339();
    let local_until = || {
        crate::time_util::parse_rfc3339(&now)
            .map(|t| t + std::time::Duration::from_secs(limit_seconds(st)))
            .map(crate::time_util::format_rfc3339)
            .map_err(StationError::Other)
    };
    // On an enrolled station the centre's window governs (its `[issuance]
    // suspension_limit_days`); it is recorded in the registry's own format, whole seconds.
    let until = match &national {
        Some(h) => match crate::time_util::whole_seconds(&h.release_until) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(release_until = %h.release_until, error = %e,
                    "the centre's release_until is not RFC 3339; the station's limit is recorded");
                local_until()?
            }
        },
        None => local_until()?,
    };
    let held: Vec<String> = certs.iter().map(|c| c.data.serial.clone()).collect();
    let tx = st.registry.transaction()?;
    tx.suspend_document(number, "suspended", session.actor(), &until)?;
    for c in &certs {
        tx.revoke_certificate(c.id, HOLD, &now)?;
    }
    tx.audit(&AuditEntry {
        actor: session.actor(),
        action: "document.suspended",
        object: &format!("document:{number}"),
        details: &serde_json::json!({
            "certificates": held,
            "crl_reason": HOLD,
            "resume_until": until,
            // The window recorded: the centre's on an enrolled station.
            "suspension_limit_days": whole_days(&now, &until)
                .unwrap_or(st.config.services.suspension_limit_days),
        }),
    })?;
    tx.commit()?;
    Ok(SuspendReport {
        document: number.to_string(),
        status: DocumentStatus::Suspended.as_str().into(),
        held_certificates: held,
        crl_reason: HOLD.into(),
        resume_until: until,
    })
}

/// Resume document `input.document`: the hold released, the document active again; only with
/// the holder in person and within the configured limit.
pub fn resume(
    st: &mut Station,
    session: &Session,
    input: &ResumeInput,
) -> Result<ResumeReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "resume documents",
        &[registry::Role::Clerk],
    )?;
    let num = input.document.as_str();
    if !super::known_here(st, num).map_err(|e| refused(st, session, "resume", num, e))? {
        let h = at_centre_only(st, session, num, Some(input.identity_confirmed))?;
        return Ok(ResumeReport {
            document: h.document,
            status: h.state,
            released_certificates: h.certificates,
            suspended_at: h.suspended_at,
            identity_confirmed_by: session.operator().to_string(),
        });
    }
    let checked = (|| {
        if !input.identity_confirmed {
            return Err(StationError::invalid(
                "identity_confirmed",
                "a suspended document is resumed only with its holder in person: the clerk \
                 confirms the holder's identity (--identity-confirmed)",
            ));
        }
        let number = crate::records::parse_document(num)?;
        let doc = st
            .registry
            .document(number)?
            .ok_or_else(|| StationError::NotFound(format!("document: no document {number}")))?;
        if doc.status != DocumentStatus::Suspended {
            return Err(StationError::Conflict(format!(
                "document status: document {number} is {}; only a suspended document can be resumed",
                doc.status.as_str()
            )));
        }
        if let Some(r) = st
            .registry
            .replacements_of(doc.id)?
            .into_iter()
            .find(|r| r.state == "holding")
        {
            return Err(StationError::Conflict(format!(
                "document status: document {number} is held by replacement {} (a new card is \
                 being issued); `idstation recover` settles it",
                r.id
            )));
        }
        let suspension = st.registry.last_suspension(doc.id)?.ok_or_else(|| {
            StationError::Other(format!(
                "document {number} is suspended but its history has no suspension"
            ))
        })?;
        let w = window(st, &suspension)?;
        if window_passed(&w.until) {
            return Err(StationError::Conflict(format!(
                "suspension_limit_days: document {number} was suspended at {}; it could be \
                 resumed until {} ({} day(s)), after that the document must be revoked \
                 (idstation revoke --document {number} --reason ...)",
                suspension.since, w.until, w.days
            )));
        }
        let since = suspension.since;
        let card = st.registry.card_of_document(doc.id)?.ok_or_else(|| {
            StationError::Other(format!("document {number} has no card on record"))
        })?;
        let certs: Vec<_> = st
            .registry
            .certificates_of_card(card.id)?
            .into_iter()
            .filter(|c| {
                c.status == CertStatus::Revoked && c.revocation_reason.as_deref() == Some(HOLD)
            })
            .collect();
        Ok((doc, since, certs))
    })();
    let (doc, since, certs) = checked.map_err(|e| refused(st, session, "resume", num, e))?;
    let number = doc.number;
    crate::ra_services::seam(st)
        .release(st, session.actor(), &number.to_string(), true)
        .map_err(|e| refused(st, session, "resume", num, e))?;
    let released: Vec<String> = certs.iter().map(|c| c.data.serial.clone()).collect();
    let tx = st.registry.transaction()?;
    tx.set_document_status(number, DocumentStatus::Active, "resumed", session.actor())?;
    for c in &certs {
        tx.release_certificate_hold(c.id)?;
    }
    tx.audit(&AuditEntry {
        actor: session.actor(),
        action: "document.resumed",
        object: &format!("document:{number}"),
        details: &serde_json::json!({
            "certificates": released,
            "suspended_at": since,
            "identity_confirmed_by": session.operator(),
        }),
    })?;
    tx.commit()?;
    Ok(ResumeReport {
        document: number.to_string(),
        status: DocumentStatus::Active.as_str().into(),
        released_certificates: released,
        suspended_at: since,
        identity_confirmed_by: session.operator().to_string(),
    })
}
