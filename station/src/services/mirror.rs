//! `idstation centre sync` (here, not in `centre`: it changes the registry as the card services
//! do): this station's registry brought up to date with what other offices
//! changed at the centre about the documents it issued (a holder may suspend a card, resume it
//! or declare it lost at any office, and only the centre is told). The centre lists the changes
//! since the last sync (`POST /v1/documents/changes`, audited there); each document whose state
//! here differs is changed as this station's own service would have changed it — suspended
//! (certificates on hold, the centre's window to resume), resumed (holds released) or taken out
//! of use (certificates revoked, a hold made final) — in a transaction of its own with a
//! `document.mirrored` event naming who changed it at the centre and when. A change already
//! here is skipped, so a sync can be repeated and the lists overlap safely.

use centre_api::{paths, DocumentChange, DocumentChanges, DocumentChangesRequest};
use registry::{AuditEntry, CertStatus, DocumentStatus, Role};
use serde::Serialize;

use super::suspend::HOLD;
use crate::centre::files::CentreFiles;
use crate::centre::outbox::refused_audited;
use crate::centre::CentreClient;
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// Who may sync: those who serve the station's documents.
pub const ROLES: &[Role] = &[Role::Clerk, Role::CaAdmin];

const ACTION: &str = "bring the registry up to date with the centre";

/// How far back each sync reaches before the last one's time: a change committed at the centre
/// while the last list was read can carry an earlier time.
const OVERLAP: std::time::Duration = std::time::Duration::from_secs(300);

/// One document changed here.
#[derive(Debug, Clone, Serialize)]
pub struct Mirrored {
    pub document: String,
    /// This station's status before, and the centre's now.
    pub was: String,
    pub now: String,
    pub reason: Option<String>,
    pub changed_at: String,
    pub changed_by: Option<String>,
    pub certificates: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// The centre's changes listed (this station's own included).
    pub listed: usize,
    pub mirrored: Vec<Mirrored>,
    /// The centre's time this sync reached (the next one starts a little before it).
    pub until: String,
}

/// Bring the registry up to date (see the module documentation).
pub fn sync(st: &mut Station, session: &Session) -> Result<SyncReport, StationError> {
    crate::session::require_current(&mut st.registry, session, ACTION, ROLES)?;
    let files = CentreFiles::new(&st.layout.root);
    let since = match std::fs::read_to_string(files.changes_until()) {
        Ok(t) => {
            let t = crate::time_util::parse_rfc3339(t.trim()).map_err(|e| {
                StationError::Other(format!("{}: {e}", files.changes_until().display()))
            })?;
            Some(crate::time_util::format_rfc3339(
                t.checked_sub(OVERLAP).unwrap_or(t),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(StationError::Other(format!(
                "{}: {e}",
                files.changes_until().display()
            )))
        }
    };
    let req = DocumentChangesRequest {
        operator: session.actor().operator.clone(),
        role: session.role().as_str().to_owned(),
        since,
    };
    let answer =
        CentreClient::for_station(st)?.post::<_, DocumentChanges>(paths::DOCUMENT_CHANGES, &req);
    let object = format!("station:{}", st.config.station.name);
    let changes = refused_audited(st, session, ACTION, &object, answer)?;
    let mut mirrored = Vec::new();
    for c in &changes.documents {
        if let Some(m) = mirror(st, session, c)? {
            mirrored.push(m);
        }
    }
    registry::files::write_atomic(&files.changes_until(), changes.until.as_bytes())
        .map_err(|e| StationError::Other(format!("{}: {e}", files.changes_until().display())))?;
    Ok(SyncReport {
        listed: changes.documents.len(),
        mirrored,
        until: changes.until,
    })
}

/// Change document `c.document` here to the centre's state, if it differs; `None` when there
/// is nothing to do (the same state, a document this station has no record of, or a state this
/// station does not move to by itself).
fn mirror(
    st: &mut Station,
    session: &Session,
    c: &DocumentChange,
) -> Result<Option<Mirrored>, StationError> {
    let number = crate::records::parse_document(&c.document)?;
    let Some(doc) = st.registry.document(number)? else {
        return Ok(None);
    };
    let was = doc.status;
    let Some(card) = st.registry.card_of_document(doc.id)? else {
        return Ok(None);
    };
    let certs = st.registry.certificates_of_card(card.id)?;
    let on_hold = |c: &registry::Certificate| {
        c.status == CertStatus::Revoked && c.revocation_reason.as_deref() == Some(HOLD)
    };
    let now = registry::now_rfc3339();
    let actor = session.actor();
    let mut changed = Vec::new();
    let tx = st.registry.transaction()?;
    match (c.state.as_str(), was) {
        ("suspended", DocumentStatus::Active) => {
            let until = c
                .release_until
                .as_deref()
                .map(crate::time_util::whole_seconds)
                .transpose()
                .map_err(StationError::Other)?
                .ok_or_else(|| {
                    StationError::Other(format!(
                        "the centre's suspension of {} has no release_until",
                        c.document
                    ))
                })?;
            tx.suspend_document(number, "suspended at the centre", actor, &until)?;
            for cert in certs.iter().filter(|x| x.status == CertStatus::Active) {
                tx.revoke_certificate(cert.id, HOLD, &now)?;
                changed.push(cert.data.serial.clone());
            }
        }
        ("active", DocumentStatus::Suspended) => {
            tx.set_document_status(
                number,
                DocumentStatus::Active,
                "resumed at the centre",
                actor,
            )?;
            for cert in certs.iter().filter(|x| on_hold(x)) {
                tx.release_certificate_hold(cert.id)?;
                changed.push(cert.data.serial.clone());
            }
        }
        (out, DocumentStatus::Active | DocumentStatus::Suspended)
            if matches!(out, "lost" | "stolen" | "revoked") =>
        {
            let reason = c.reason.as_deref().unwrap_or("unspecified");
            let (status, crl) = match crate::records::revocation_for(reason) {
                Ok(sc) => sc,
                // A reason only the centre uses (a name change's replacement): superseded.
                Err(_) => (DocumentStatus::Revoked, "superseded"),
            };
            let status = if out == "lost" {
                DocumentStatus::Lost
            } else {
                status
            };
            tx.set_document_status(number, status, &format!("{reason} at the centre"), actor)?;
            for cert in &certs {
                if matches!(cert.status, CertStatus::Active | CertStatus::Issued) {
                    tx.revoke_certificate(cert.id, crl, &now)?;
                    changed.push(cert.data.serial.clone());
                } else if on_hold(cert) {
                    tx.finalize_certificate_hold(cert.id, crl, &now)?;
                    changed.push(cert.data.serial.clone());
                }
            }
        }
        _ => return Ok(None),
    }
    let m = Mirrored {
        document: c.document.clone(),
        was: was.as_str().into(),
        now: c.state.clone(),
        reason: c.reason.clone(),
        changed_at: c.changed_at.clone(),
        changed_by: c.changed_by.clone(),
        certificates: changed,
    };
    tx.audit(&AuditEntry {
        actor,
        action: "document.mirrored",
        object: &format!("document:{}", c.document),
        details: &serde_json::to_value(&m).map_err(|e| StationError::Other(e.to_string()))?,
    })?;
    tx.commit()?;
    Ok(Some(m))
}
