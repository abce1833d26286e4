//! `idstation centre sync` (here, not in `centre`: it changes the registry as the card services
//! do): this station's registry brought up to date with what other offices
//! changed at the centre about the documents it issued (a holder may suspend a card, resume it
//! or declare it lost at any office, and only the centre is told). The centre lists the changes
//! since the last sync (`POST /v1/documents/changes`, audited there); each document whose state
//! here differs is changed as this station's own service would have changed it — suspended
//! (certificates on hold, the centre's window to resume), resumed (holds released) or taken out
//! of use (certificates revoked, a hold made final) — in a transaction of its own with a
//! `document.mirrored` event naming who changed it at the centre and when. A renewal of a
//! document's certificates at another office is listed too: the renewed certificates are
//! recorded here as the document's active ones (`certificates.mirrored`, as when the renewed
//! card is read here). A change already here is skipped, so a sync can be repeated and the
//! lists overlap safely.

use centre_api::{paths, DocumentChange, DocumentChanges, DocumentChangesRequest};
use registry::{AuditEntry, CertStatus, DocumentStatus, Role};
use serde::Serialize;

use super::suspend::HOLD;
use crate::centre::files::CentreFiles;
use crate::centre::outbox::refused_audited;
use crate::centre::CentreClient;
use crate::document_signer::DocumentSignerRenewal;
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// Who may sync: those who serve the station's documents.
pub const ROLES: &[Role] = &[Role::Clerk, Role::CaAdmin];

const ACTION: &str = "bring the registry up to date with the centre";

/// How far back each sync reaches before the last one's time: a change committed at the centre
/// while the last list was read can carry an earlier time.
const OVERLAP: std::time::Duration = std::time::Duration::from_secs(300);

/// How long the centre may take to answer one page of the list, connection included: a centre
/// that hangs does not hold the station (the GUI syncs on its worker) for the request timeout.
const PAGE_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

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
    /// Documents left as they are here, and why (a replacement holding, changed here after the
    /// list was read: the next sync lists them again).
    pub skipped: Vec<(String, String)>,
    /// Documents that could not be changed here, and the error; the next sync tries them again.
    pub failed: Vec<(String, String)>,
    /// The centre's time this sync reached (the next one starts a little before it); not kept
    /// when a document failed or a renewal was skipped, so the next sync lists it again.
    pub until: String,
    /// The Document Signer this sync renewed because its key usage was about to end
    /// (`crate::document_signer::renew_when_due`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_signer_renewed: Option<DocumentSignerRenewal>,
    /// Why that renewal, due, failed (the next sync tries again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_signer_failed: Option<String>,
}

impl SyncReport {
    /// Nothing failed: every listed document brought here, and no renewal due that failed.
    pub fn clean(&self) -> bool {
        self.failed.is_empty() && self.document_signer_failed.is_none()
    }
}

/// Bring the registry up to date (see the module documentation), then renew the Document
/// Signer when its key usage is about to end (`crate::document_signer::renew_when_due`): a
/// failure is reported, and the documents brought here stay.
pub fn sync(st: &mut Station, session: &Session) -> Result<SyncReport, StationError> {
    let mut report = documents(st, session)?;
    match crate::document_signer::renew_when_due(st, session) {
        Ok(r) => report.document_signer_renewed = r,
        Err(e) => {
            tracing::warn!(error = %e, "the Document Signer is due and its renewal failed");
            report.document_signer_failed = Some(e.to_string());
        }
    }
    Ok(report)
}

/// The documents part of [`sync`].
fn documents(st: &mut Station, session: &Session) -> Result<SyncReport, StationError> {
    crate::session::require_current(&mut st.registry, session, ACTION, ROLES)?;
    let files = CentreFiles::new(&st.layout.root);
    let kept = files.changes_until();
    let since = match std::fs::read_to_string(&kept) {
        Ok(t) => {
            let t = crate::time_util::parse_rfc3339(t.trim())
                .map_err(|e| StationError::Other(format!("{}: {e}", kept.display())))?;
            Some(crate::time_util::format_rfc3339(
                t.checked_sub(OVERLAP).unwrap_or(t),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StationError::Other(format!("{}: {e}", kept.display()))),
    };
    let (mut mirrored, mut skipped, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    // A renewal skipped now is not listed again once the watermark passes it: it holds it.
    let mut renewal_skipped = false;
    let (mut since, mut listed) = (since, 0);
    let until = loop {
        let req = DocumentChangesRequest {
            operator: session.actor().operator.clone(),
            role: session.role().as_str().to_owned(),
            since: since.clone(),
            limit: None,
        };
        // What this station changes from now on is not undone by the list read now.
        let asked_at = registry::now_rfc3339();
        let answer = CentreClient::for_station(st)?.post_within::<_, DocumentChanges>(
            paths::DOCUMENT_CHANGES,
            &req,
            PAGE_WITHIN,
        );
        let object = format!("station:{}", st.config.station.name);
        let changes = refused_audited(st, session, ACTION, &object, answer)?;
        listed += changes.documents.len();
        for c in &changes.documents {
            // The state first (a resumed hold gives back the certificates a renewal replaces),
            // then the certificates a renewal at another office issued; each reported.
            let state = mirror(st, session, c, &asked_at);
            let renewal = match state {
                Ok(_) => Some(mirror_renewal(st, session, c)),
                Err(_) => None,
            };
            renewal_skipped |= matches!(renewal, Some(Ok(Outcome::Skipped(_))));
            for outcome in std::iter::once(state).chain(renewal) {
                match outcome {
                    Ok(Outcome::Mirrored(m)) => mirrored.push(m),
                    Ok(Outcome::Same) => {}
                    Ok(Outcome::Skipped(why)) => skipped.push((c.document.clone(), why)),
                    Err(e) => {
                        tracing::warn!(document = %c.document, error = %e, "a change at the centre could not be brought here");
                        failed.push((c.document.clone(), e.to_string()));
                    }
                }
            }
        }
        if !changes.more {
            break changes.until;
        }
        if since.as_deref() == Some(changes.until.as_str()) {
            // A centre whose next page would be this one again: stop rather than loop.
            return Err(StationError::Other(format!(
                "the centre's list of changes does not advance past {}: asked again from there, it \
                 answered the same page",
                changes.until
            )));
        }
        // The rest of a long list, from where this page ended.
        since = Some(changes.until);
    };
    if failed.is_empty() && !renewal_skipped {
        registry::files::write_atomic(&kept, until.as_bytes())
            .map_err(|e| StationError::Other(format!("{}: {e}", kept.display())))?;
    }
    Ok(SyncReport {
        listed,
        mirrored,
        skipped,
        failed,
        until,
        document_signer_renewed: None,
        document_signer_failed: None,
    })
}

/// Before a new card for holder `pinfl` on an enrolled station: if this registry still has an
/// active document of theirs, another office may have declared it lost or replaced it at the
/// centre since the last sync (the centre's reserve would then issue, and this registry refuse
/// the second active card), so the registry is brought up to date first. Nothing to do on a
/// standalone station, or for a holder with no active document here.
pub fn before_issue(st: &mut Station, session: &Session, pinfl: &str) -> Result<(), StationError> {
    if st.config.centre.is_none() {
        return Ok(());
    }
    let Some(holder) = st.registry.holder_by_pinfl(pinfl)? else {
        return Ok(());
    };
    let Some(active) = st.registry.active_card(holder.id)? else {
        return Ok(());
    };
    let number = active.document.number.to_string();
    // The documents only: the issuance renews a due Document Signer itself, right after.
    let r = documents(st, session)?;
    tracing::info!(
        mirrored = r.mirrored.len(),
        "brought the registry up to date before an issuance"
    );
    // The holder's own document could not be brought here: the issuance would be refused by
    // this registry after the centre reserved the card, so it is not begun.
    if let Some((_, why)) = r.failed.iter().find(|(d, _)| *d == number) {
        return Err(StationError::Other(format!(
            "document {number} of holder {pinfl} could not be brought up to date with the \
             national centre ({why}); no card was touched: try again"
        )));
    }
    Ok(())
}

enum Outcome {
    Mirrored(Mirrored),
    /// Nothing to do: the same state here, a document this station has no record of, or a
    /// state it does not move to by itself.
    Same,
    Skipped(String),
}

/// The transition that brings a document from `was` to the centre's `state`.
enum Transition {
    Suspend,
    Resume,
    OutOfUse(DocumentStatus, &'static str),
}

fn transition(c: &DocumentChange, was: DocumentStatus) -> Option<Transition> {
    use DocumentStatus::{Active, Suspended};
    Some(match (c.state.as_str(), was) {
        ("suspended", Active) => Transition::Suspend,
        ("active", Suspended) => Transition::Resume,
        ("lost", Active | Suspended) => {
            // The centre keeps a lost and a stolen card as lost: its keys may be in other hands.
            Transition::OutOfUse(DocumentStatus::Lost, "keyCompromise")
        }
        ("revoked", Active | Suspended) => {
            let (status, crl) = match c.reason.as_deref() {
                // A replacement at the centre (a name change, a recall): superseded.
                Some("name-change" | "replaced") => (DocumentStatus::Revoked, "superseded"),
                Some(r) => crate::records::revocation_for(r)
                    .unwrap_or((DocumentStatus::Revoked, "unspecified")),
                None => (DocumentStatus::Revoked, "unspecified"),
            };
            Transition::OutOfUse(status, crl)
        }
        _ => return None,
    })
}

/// The certificates of `c`'s latest renewal, made at another office, brought here when this
/// registry does not have them yet and the document is active both here and at the centre
/// ([`super::adopt::take_certificates`]: the ones they replace revoked `superseded`). A renewal
/// made here, or already brought here, is nothing to do. Skipped for the next sync: a document
/// a card service here is working on (its lock is held), and certificates under an
/// e-Signature CA key this station has not met yet (it learns it at its next issuance).
fn mirror_renewal(
    st: &mut Station,
    session: &Session,
    c: &DocumentChange,
) -> Result<Outcome, StationError> {
    let Some(r) = c.renewed.as_ref().filter(|_| c.state == "active") else {
        return Ok(Outcome::Same);
    };
    let number = crate::records::parse_document(&c.document)?;
    let Some(here) = st.registry.document(number)? else {
        return Ok(Outcome::Same);
    };
    if r.certificates.is_empty() || here.status != DocumentStatus::Active {
        return Ok(Outcome::Same);
    }
    let _lock = match crate::datadir::WorkLock::acquire(
        &st.layout.root,
        crate::datadir::Work::CardService(here.id),
    ) {
        Ok(l) => l,
        Err(StationError::Conflict(_)) => {
            return Ok(Outcome::Skipped(
                "a card service here is working on it".into(),
            ))
        }
        Err(e) => return Err(e),
    };
    let doc = super::issued_document(st, &c.document)?;
    let profile = st.card_profile()?.clone();
    let known = st.registry.certificates_of_job(doc.issuance_job)?;
    let mut unknown: Vec<(Vec<u8>, String)> = Vec::new();
    for cert in &r.certificates {
        let der = crate::ra::decode_hex("renewed.certificates.der", &cert.der)?;
        if known.iter().any(|k| k.data.der == der) {
            continue;
        }
        let purpose = profile
            .keys
            .iter()
            .find(|k| crate::card::slot_name(k.slot) == cert.slot)
            .map(|k| k.certificate_profile.clone())
            .ok_or_else(|| {
                StationError::Other(format!(
                    "document {}: the centre's renewed certificate {} is for slot {}, which the \
                     card profile does not have",
                    c.document, cert.serial, cert.slot
                ))
            })?;
        unknown.push((der, purpose));
    }
    if unknown.is_empty() {
        return Ok(Outcome::Same);
    }
    for (der, _) in &unknown {
        if !super::adopt::esign_key_known(st, der)? {
            return Ok(Outcome::Skipped(
                "renewed under an e-Signature CA key this station has not met yet (it learns \
                 it at its next issuance)"
                    .into(),
            ));
        }
    }
    let certs: Vec<(&[u8], String, bool)> = unknown
        .iter()
        .map(|(d, p)| (d.as_slice(), p.clone(), false))
        .collect();
    let renewed_at = format!("the national centre, by {}", r.by);
    let (active, _) =
        super::adopt::take_certificates(st, session.actor(), &doc, &certs, &renewed_at)?;
    Ok(Outcome::Mirrored(Mirrored {
        document: c.document.clone(),
        was: "active".into(),
        now: "active".into(),
        reason: Some("renewed".into()),
        changed_at: r.at.clone(),
        changed_by: Some(r.by.clone()),
        certificates: active,
    }))
}

/// Change document `c.document` here to the centre's state, if it differs (see
/// [`Outcome`]). `asked_at`: when the list was asked for; a document changed here since is left
/// for the next sync, as is one whose replacement is holding it (`recover` settles that).
fn mirror(
    st: &mut Station,
    session: &Session,
    c: &DocumentChange,
    asked_at: &str,
) -> Result<Outcome, StationError> {
    let number = crate::records::parse_document(&c.document)?;
    let Some(doc) = st.registry.document(number)? else {
        return Ok(Outcome::Same);
    };
    let was = doc.status;
    let Some(step) = transition(c, was) else {
        return Ok(Outcome::Same);
    };
    if st
        .registry
        .replacements_of(doc.id)?
        .iter()
        .any(|r| r.state == "holding")
    {
        return Ok(Outcome::Skipped(
            "a replacement here is holding it (idstation recover settles it)".into(),
        ));
    }
    let changed_here = st
        .registry
        .document_history(doc.id)?
        .last()
        .is_some_and(|h| h.at.as_str() >= asked_at);
    if changed_here {
        return Ok(Outcome::Skipped(
            "changed here after the centre's list was read".into(),
        ));
    }
    // Every certificate of the issuance (renewals' too), as `revoke` takes them.
    let certs = match st.registry.job_of_document(number)? {
        Some(j) => st.registry.certificates_of_job(j.id)?,
        None => Vec::new(),
    };
    let on_hold = |c: &registry::Certificate| {
        c.status == CertStatus::Revoked && c.revocation_reason.as_deref() == Some(HOLD)
    };
    let now = registry::now_rfc3339();
    let actor = session.actor();
    let mut changed = Vec::new();
    let tx = st.registry.transaction()?;
    match step {
        Transition::Suspend => {
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
        Transition::Resume => {
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
        Transition::OutOfUse(status, crl) => {
            let reason = c.reason.as_deref().unwrap_or(c.state.as_str());
            tx.set_document_status(number, status, &format!("{reason} at the centre"), actor)?;
            changed = crate::records::revoke_all(&tx, &certs, crl)?;
        }
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
    Ok(Outcome::Mirrored(m))
}
