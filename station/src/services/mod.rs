//! Card services on an issued card (issue 16): [`renew`] (new key pairs on the card, new
//! certificates, the old ones revoked as superseded) and [`unblock`] (a new PIN with the retry
//! counter reset by the issuer's key, optionally a new PUK and PIN letter). The card keeps
//! its LOCKED state; the station uses the issuer's operational-state rights (docs/card.md,
//! "Operational state") with the per-card management key derived in the HSM, as at issuance.
//!
//! Every service first reads the card in the reader and matches it to the registry (chip
//! serial, LOCKED, the certificates on the card are the document's active ones) before anything
//! is changed. Each service is a journaled job (`registry::service_jobs`, kept apart from
//! issuance jobs): every step is begun in the journal before its side effect
//! ([`ServiceStep`]). A renewal that stops after its certificates were recorded is left
//! `running`; the next `renew` of the document, with the card, resumes it at `card.install`
//! (the certificates written again, read back, test-signed); one that stops earlier is rolled
//! back at once (nothing of it is in use; the next renewal generates again). `idstation recover`
//! settles jobs whose process died the same way ([`recover`]: a renewal before `ca.issue`
//! rolled back, after it reported waiting for the card; an unblock failed).
//!
//! On a station enrolled to a national centre the services reach the centre's CA and registry
//! only through [`crate::service_seam::ServiceSeam`] (`crate::ra_services::seam` picks it).
//!
//! [`suspend`] / [`resume`] (certificateHold, one registry transaction each), [`address`]
//! changes (history kept, e-government outbox) and [`card_returned`] (a card brought back,
//! destroyed) need no card. [`replace`] holds the old document while the ordinary issuance
//! makes the new card, then settles (revokes the old or releases the hold). [`identify`] reads
//! the card in a reader, matches it to the registry and says which of these apply to it (the
//! GUI's Card services workspace).

pub use elsewhere::document_at_centre;
pub mod address;
mod adopt;
mod elsewhere;
pub mod identify;
pub mod mirror;
pub mod recover;
pub(crate) mod renew;
mod renew_elsewhere;
pub mod replace;
mod replace_elsewhere;
mod returned;
mod suspend;
mod unblock;
mod unblock_elsewhere;

pub use identify::{identify, CardIdentity, National};
pub use recover::{recover, ServiceRecovered};
pub use renew::{renew, RenewInput, RenewReport};
pub use replace::{replace, ReplaceInput, ReplaceReport};
pub use returned::{card_returned, CardReturnReport};
pub use suspend::{resume, suspend, ResumeInput, ResumeReport, SuspendReport};
pub use unblock::{unblock, UnblockInput, UnblockReport};

use personalization::lifecycle::Lifecycle;
use personalization::piv::services::{self as card_services, IssuedCard};
use profiles::card::{CardProfile, Slot};
use registry::{CertStatus, Certificate, DocumentStatus, StepState};
use serde_json::Value;

use crate::card::{serial_text, slot_name};
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// One journaled step of a card service, in the order a job takes them. The journal stores
/// [`ServiceStep::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceStep {
    /// Renewal: new key pairs generated in 9A/9C.
    CardGenerate,
    /// Renewal: certificates for the new keys, recorded as issued.
    CaIssue,
    /// Renewal: certificates and Key History written, read back, test-signed.
    CardInstall,
    /// Renewal: new certificates active, the old ones revoked (superseded), in one commit.
    RegistryComplete,
    /// Unblock: new PIN (and PUK) set with the issuer's key.
    CardUnblock,
}

impl ServiceStep {
    /// The name the journal stores.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceStep::CardGenerate => "card.generate",
            ServiceStep::CaIssue => "ca.issue",
            ServiceStep::CardInstall => "card.install",
            ServiceStep::RegistryComplete => "registry.complete",
            ServiceStep::CardUnblock => "card.unblock",
        }
    }
}

impl std::fmt::Display for ServiceStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A progress event for the CLI (and later the GUI): the step being begun.
#[derive(Debug, Clone)]
pub struct ServiceProgress {
    pub step: ServiceStep,
    pub detail: String,
}

/// Where the management key of a card in the reader comes from: this station's HSM (derived
/// at once), or the national centre, asked only when the key is first needed — after the
/// centre has opened the service the key is for, so that a refusal there releases no key.
pub(crate) enum CardKey {
    Ready(personalization::secret::ManagementKey),
    Centre(Box<centre_api::CardKeyRequest>),
}

impl CardKey {
    /// The key, released by the centre on the first call when it is the centre's.
    pub(crate) fn get(
        &mut self,
        st: &Station,
        profile: &CardProfile,
    ) -> Result<&personalization::secret::ManagementKey, StationError> {
        if let CardKey::Centre(request) = self {
            let (key, _) = crate::card::centre_card_key(st, profile, request)?;
            *self = CardKey::Ready(key);
        }
        match self {
            CardKey::Ready(key) => Ok(key),
            CardKey::Centre(request) => Err(StationError::Other(format!(
                "the management key of card {} was not released",
                request.card_serial
            ))),
        }
    }
}

/// The management key of `doc`'s card, read from the reader and matched (`card`): the national
/// centre's when the document's issuance journaled it (to be released for `purpose`, `renewal`
/// or `unblock`, with the serials of the certificates read from the card), else this station's
/// own.
pub(crate) fn card_key_of(
    st: &Station,
    actor: &registry::Actor,
    profile: &CardProfile,
    doc: &IssuedDocument,
    card: &personalization::piv::services::IssuedCard,
    purpose: &str,
) -> Result<CardKey, StationError> {
    let job = st.registry.job(doc.issuance_job)?;
    if job
        .as_ref()
        .and_then(crate::card::journaled_card_key)
        .is_none()
    {
        return crate::card::card_management_key(st, profile, card.serial).map(CardKey::Ready);
    }
    Ok(CardKey::Centre(Box::new(centre_api::CardKeyRequest {
        operator: actor.operator.clone(),
        card_serial: crate::card::serial_text(card.serial),
        purpose: purpose.into(),
        job: None,
        document: Some(doc.document.number.to_string()),
        certificates: elsewhere::serials_read(card)?,
    })))
}

/// A connection to the card in a reader (the named one, or the one reader holding a card), for
/// a card service to open its transaction on.
pub(super) struct CardSession {
    pub reader: String,
    pub conn: personalization::transport::pcsc::PcscCard,
    _pcsc: personalization::transport::pcsc::Pcsc,
}

pub(super) fn connect(reader: Option<&str>) -> Result<CardSession, StationError> {
    let pcsc = personalization::transport::pcsc::Pcsc::establish()
        .map_err(|e| StationError::card(None, &e))?;
    let reader = crate::readers::choose_reader(&pcsc, reader)?;
    let conn = pcsc
        .connect(&reader)
        .map_err(|e| StationError::card(None, &e.in_step("connect to the card")))?;
    Ok(CardSession {
        reader,
        conn,
        _pcsc: pcsc,
    })
}

/// Whether document `num` is in this station's registry.
pub(crate) fn known_here(st: &Station, num: &str) -> Result<bool, StationError> {
    let number = crate::records::parse_document(num)?;
    Ok(st.registry.document(number)?.is_some())
}

/// A document with an issued card, as the registry knows it.
pub(crate) struct IssuedDocument {
    pub document: registry::Document,
    pub holder: registry::Holder,
    pub card: registry::Card,
    /// The document's active certificates (on its card).
    pub certificates: Vec<Certificate>,
    /// The issuance job that made the card (its certificates, renewals' included, hang on it).
    pub issuance_job: i64,
}

impl IssuedDocument {
    /// The active certificate for `slot`: the one whose purpose is the card profile's
    /// certificate profile of the slot.
    pub fn certificate(&self, profile: &CardProfile, slot: Slot) -> Option<&Certificate> {
        let name = &profile
            .keys
            .iter()
            .find(|k| k.slot == slot)?
            .certificate_profile;
        self.certificates
            .iter()
            .find(|c| &c.data.purpose == name && c.status == CertStatus::Active)
    }
}

/// The registry's view of document `num`: it must be active and have a LOCKED card.
pub(crate) fn issued_document(st: &Station, num: &str) -> Result<IssuedDocument, StationError> {
    let number = crate::records::parse_document(num)?;
    let document = st
        .registry
        .document(number)?
        .ok_or_else(|| StationError::NotFound(format!("no document {number}")))?;
    if document.status == DocumentStatus::Suspended {
        return Err(StationError::Conflict(format!(
            "document status: document {number} is suspended (its certificates are on hold): \
             a suspended document cannot be renewed or unblocked; resume it first \
             (idstation resume, the holder in person)"
        )));
    }
    if document.status != DocumentStatus::Active {
        return Err(StationError::Conflict(format!(
            "document {number} is {}: card services need an active document",
            document.status.as_str()
        )));
    }
    let holder = st
        .registry
        .holder(document.holder_id)?
        .ok_or_else(|| StationError::Other(format!("document {number} has no holder")))?;
    let active = st
        .registry
        .active_card(document.holder_id)?
        .filter(|a| a.document.id == document.id)
        .ok_or_else(|| {
            StationError::Conflict(format!("document {number} has no LOCKED card on record"))
        })?;
    let issuance_job = st
        .registry
        .job_of_document(number)?
        .map(|j| j.id)
        .ok_or_else(|| StationError::Other(format!("document {number} has no issuance job")))?;
    let certificates = active
        .certificates
        .into_iter()
        .filter(|c| c.status == CertStatus::Active)
        .collect();
    Ok(IssuedDocument {
        document,
        holder,
        card: active.card,
        certificates,
        issuance_job,
    })
}

/// The card in the reader is the document's card: same chip serial, LOCKED, and in each of
/// `slots` one of the certificates `allowed` gives for the slot.
pub(crate) fn match_card<'a>(
    doc: &IssuedDocument,
    card: &IssuedCard,
    slots: &[Slot],
    allowed: impl Fn(Slot) -> Vec<&'a [u8]>,
) -> Result<(), StationError> {
    let number = doc.document.number;
    let serial = serial_text(card.serial);
    if serial != doc.card.chip_serial {
        return Err(StationError::Conflict(format!(
            "card serial: the card in the reader is {serial}, document {number} is on card {}",
            doc.card.chip_serial
        )));
    }
    if card.lifecycle != Lifecycle::Locked {
        return Err(StationError::Conflict(format!(
            "card lifecycle: card {serial} is {:?}, an issued card is LOCKED",
            card.lifecycle
        )));
    }
    for &slot in slots {
        let on_card = card.certificate(slot);
        let ok = on_card.is_some_and(|der| allowed(slot).contains(&der));
        if !ok {
            return Err(StationError::Conflict(format!(
                "certificate {}: the card's certificate is not the one the registry has for document {number}",
                slot_name(slot)
            )));
        }
    }
    Ok(())
}

/// The card's chip opens with the MRZ of the document on record (PACE with the MRZ password on
/// a chip that offers PACE, else Basic Access Control; ICAO Doc 9303 Part 11, keys from the
/// document number, birth and expiry dates the registry holds) and its DG1 carries that
/// document number. The APDUs used.
pub(crate) fn match_document(
    st: &Station,
    tx: &mut dyn personalization::transport::Transport,
    doc: &IssuedDocument,
) -> Result<u64, StationError> {
    let number = doc.document.number;
    let mrz = crate::records::document_mrz(st, &doc.document)?.ok_or_else(|| {
        StationError::Other(format!(
            "document {number}: no MRZ can be made from its registry record"
        ))
    })?;
    let info = zeroize::Zeroizing::new(
        personalization::mrz::bac_mrz_information(&mrz)
            .map_err(|e| StationError::invalid("mrz", e.to_string()))?,
    );
    open_chip(tx, &info, &number.to_string())
}

/// Open the chip's LDS with the MRZ information `info` (PACE where the chip offers it, else
/// BAC) and check that its DG1 carries document `number` (TD1 line 1, positions 6-14): the card
/// is the document's. The APDUs it took.
pub(crate) fn open_chip(
    tx: &mut dyn personalization::transport::Transport,
    info: &str,
    number: &str,
) -> Result<u64, StationError> {
    let step = "match the card to the registry";
    let (on_card, stats, _access) = match card_services::read_mrz(tx, info) {
        Ok(r) => r,
        Err(e) if matches!(e.root(), personalization::Error::Bac { .. }) => {
            return Err(StationError::Conflict(format!(
                "document number: the card's chip does not open with the MRZ of document {number} ({})",
                e.root()
            )))
        }
        Err(e) => return Err(StationError::card(Some(step), &e)),
    };
    if on_card[0].get(5..14) != Some(number) {
        return Err(StationError::Conflict(format!(
            "document number: the card's DG1 does not carry document {number}"
        )));
    }
    Ok(stats.apdus)
}

/// An audited refusal of a card service: the refusal is recorded, then returned.
pub(crate) fn refused(
    st: &mut Station,
    session: &Session,
    service: &str,
    document: &str,
    e: StationError,
) -> StationError {
    let (action, object) = (format!("{service}.refused"), format!("document:{document}"));
    crate::audit::refused(st, session, &action, &object, e)
}

/// Begin `step` of service job `job_id` in the journal (durably, before the side effect).
pub(crate) fn begin(
    st: &mut Station,
    job_id: i64,
    step: ServiceStep,
    details: &Value,
) -> Result<i64, StationError> {
    Ok(st
        .registry
        .write(|tx| tx.begin_service_step(job_id, step.as_str(), details))?)
}

/// Finish a journaled step.
pub(crate) fn finish(
    st: &mut Station,
    step_id: i64,
    state: StepState,
    details: &Value,
) -> Result<(), StationError> {
    Ok(st
        .registry
        .write(|tx| tx.finish_service_step(step_id, state, Some(details)))?)
}
