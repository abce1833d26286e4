//! Which issued card is in the reader, for the GUI's Card services workspace (issue 16): the
//! card read (serial, lifecycle, PIN status, certificates; reads only, no authentication) and
//! matched to the registry the way the services match it (the chip serial on record, every
//! certificate on the card one the registry issued for the card's document, the chip opening
//! with the MRZ of that document through Basic Access Control), then who it belongs to, the
//! document and each certificate with status and expiry, the holder's registration addresses,
//! and which services apply to it now (each refused one with its reason). Nothing is changed;
//! the read of the holder's personal data is audited (`holder.read`), and a card that does not
//! match is an audited refusal (`card.identify.refused`). On a station enrolled with the
//! national centre the centre's record is asked for too ([`National`]): its state of the
//! document, which the offers follow where it differs, and any replacement flag.

use personalization::piv::services as card_services;
use personalization::piv::PinStatus;
use profiles::card::Slot;
use registry::{CardLifecycle, CertStatus, DocumentStatus, NewAddress};
use serde::Serialize;

use super::address::AddressHistoryEntry;
use super::IssuedDocument;
use crate::card::{serial_text, slot_name};
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// The card's PIN as the card reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PinState {
    TriesLeft(u8),
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HolderSummary {
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    pub patronymic: Option<String>,
    pub surname_cyrillic: Option<String>,
    pub given_names_cyrillic: Option<String>,
    pub patronymic_cyrillic: Option<String>,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentSummary {
    pub number: String,
    /// `active`, `suspended`, `revoked`, `lost`, `expired`, ...
    pub status: String,
    pub date_of_issue: String,
    pub date_of_expiry: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateSummary {
    /// `9A`, `9C`.
    pub slot: String,
    pub serial: String,
    /// `active`, `revoked`, ...
    pub status: String,
    /// The revocation reason (RFC 5280 name: `certificateHold`, `superseded`, ...).
    pub reason: Option<String>,
    /// RFC 3339 UTC.
    pub not_after: String,
}

/// A card service of the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Service {
    Renew,
    Unblock,
    Suspend,
    Resume,
    CardReturned,
    AddressSet,
    AddressEnd,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Renew,
        Service::Unblock,
        Service::Suspend,
        Service::Resume,
        Service::CardReturned,
        Service::AddressSet,
        Service::AddressEnd,
    ];
}

/// Why a service does not apply to the card now (the service itself refuses it the same way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Blocker {
    /// The document's status does not allow it (its status).
    DocumentStatus(String),
    /// The card is not LOCKED (its registry lifecycle).
    CardNotLocked(String),
    /// The PIN is blocked: unblock it first.
    PinBlocked,
    /// The document expired on this date (`YYYY-MM-DD`).
    Expired(String),
    /// Suspended on `since` (RFC 3339) and not resumed within its window of `days` days (the
    /// centre's on an enrolled station): revoke instead.
    SuspensionLimit { days: u32, since: String },
    /// The document is still in use (its status): a card is taken back only when it is not.
    DocumentInUse(String),
    /// The card was already returned (RFC 3339).
    AlreadyReturned(String),
    /// The holder has no current temporary registration.
    NoTemporaryAddress,
    /// Another office issued the card (its office code): the service needs that station's card
    /// keys or records.
    IssuedElsewhere(String),
}

/// A service and whether it applies now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offer {
    pub service: Service,
    pub refused: Option<Blocker>,
}

/// The card in the reader as the registry knows it.
#[derive(Debug, Clone, Serialize)]
pub struct CardIdentity {
    pub reader: String,
    pub card_serial: String,
    pub pin: PinState,
    pub holder: HolderSummary,
    pub document: DocumentSummary,
    /// Every certificate the registry has for the card's document, newest first.
    pub certificates: Vec<CertificateSummary>,
    /// Serials of the certificates on the card.
    pub on_card: Vec<String>,
    /// Registration addresses, oldest first.
    pub addresses: Vec<AddressHistoryEntry>,
    pub suspended_since: Option<String>,
    /// The last moment a suspended document may be resumed (RFC 3339).
    pub resume_until: Option<String>,
    pub returned_at: Option<String>,
    /// The office that issued the card when it is not this station's: the record shown is the
    /// national registry's (an enrolled station only).
    pub issued_elsewhere: Option<String>,
    /// On a station enrolled with the national centre: what the centre's record says of the
    /// card, or why the centre could not tell; `None` on a standalone station.
    pub national: Option<National>,
    pub offers: Vec<Offer>,
}

/// The national registry's word on a card, beside this station's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum National {
    /// The centre's record of the card's document.
    Record {
        /// The document's state there. The centre decides: another office may have changed it
        /// (a suspension, a declared loss) since this station's record was written.
        state: String,
        /// The centre flagged the card for replacement: its chip data can no longer be
        /// authenticated (its Document Signer revoked, or the CSCA key behind it withdrawn).
        replacement_due: Option<centre_api::ReplacementDue>,
    },
    /// The centre could not be asked, or refused (the station's words for it): the card is
    /// shown as this station has it.
    Unanswered(String),
}

impl CardIdentity {
    /// The centre's state of the document when it differs from the one shown (this station's).
    pub fn national_state_differs(&self) -> Option<&str> {
        match &self.national {
            Some(National::Record { state, .. }) if *state != self.document.status => Some(state),
            _ => None,
        }
    }

    /// The centre's replacement flag, if it set one.
    pub fn replacement_due(&self) -> Option<&centre_api::ReplacementDue> {
        match &self.national {
            Some(National::Record {
                replacement_due, ..
            }) => replacement_due.as_ref(),
            _ => None,
        }
    }
}

impl CardIdentity {
    /// The offer of `service`.
    pub fn offer(&self, service: Service) -> Option<&Offer> {
        self.offers.iter().find(|o| o.service == service)
    }
}

/// Read the card in `reader` (or the one reader holding a card) and match it to the registry.
/// Clerk only. See the module docs.
pub fn identify(
    st: &mut Station,
    session: &Session,
    reader: Option<&str>,
) -> Result<CardIdentity, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "identify cards",
        &[registry::Role::Clerk],
    )?;
    let profile = st.card_profile()?.clone();
    let slots: Vec<Slot> = profile.keys.iter().map(|k| k.slot).collect();
    let mut card_session = super::connect(reader)?;
    let reader = card_session.reader.clone();
    let mut tx = card_session
        .conn
        .begin()
        .map_err(|e| StationError::card(None, &e.in_step("open a card transaction")))?;
    let card = card_services::read_issued(&mut tx, &slots)
        .map_err(|e| StationError::card(Some("read the card"), &e))?;
    let serial = serial_text(card.serial);
    if st.registry.card(&serial)?.is_none() {
        if let Some(found) = super::elsewhere::lookup(st, session.operator(), &card, &serial)
            .map_err(|e| refused(st, session, &serial, e))?
        {
            match super::elsewhere::match_chip(&mut tx, &found.record) {
                Ok(()) => {}
                Err(e @ StationError::Conflict(_)) => return Err(refused(st, session, &serial, e)),
                Err(e) => return Err(e),
            }
            crate::records::audit_holder_reads(
                st,
                session,
                &[&found.record.holder.pinfl],
                &format!(
                    "card services: card {serial} of office {}, at the national centre",
                    found.record.office
                ),
            )?;
            return super::elsewhere::summary(st, &card, found, reader, serial);
        }
    }
    // A card this registry does not match may be one of this station's renewed at another
    // office: its new certificates brought here, then matched again.
    let recorded = match on_record(st, &card) {
        Err(StationError::Conflict(_)) if super::adopt::for_card(st, session, &profile, &card) => {
            on_record(st, &card)
        }
        recorded => recorded,
    };
    let (doc, certs) = recorded.map_err(|e| refused(st, session, &serial, e))?;
    match super::match_document(st, &mut tx, &doc) {
        Ok(_) => {}
        Err(e @ StationError::Conflict(_)) => return Err(refused(st, session, &serial, e)),
        Err(e) => return Err(e),
    }
    crate::records::audit_holder_reads(
        st,
        session,
        &[&doc.holder.data.pinfl],
        &format!("card services: card {serial}"),
    )?;
    let on_card: Vec<String> = certs
        .iter()
        .filter(|c| card.certificates.iter().any(|(_, der)| *der == c.data.der))
        .map(|c| c.data.serial.clone())
        .collect();
    // The card is read and matched: the reader is let go before the centre is asked.
    drop(tx);
    let number = doc.document.number.to_string();
    let national = national(st, session, &card, &serial, &number);
    let mut id = summary(st, &doc, certs, on_card, reader, card.pin)?;
    id.national = national;
    follow_the_centre(&mut id);
    Ok(id)
}

/// On an enrolled station, the centre's record of this station's own card `serial` (document
/// `number`; `POST /v1/cards/lookup`, audited there as `card.looked-up`): its document's state
/// there and any replacement flag. The card is still shown when the centre cannot be asked or
/// refuses; the clerk is told why, and a refusal is audited here
/// (`card.identify.centre-refused`).
fn national(
    st: &mut Station,
    session: &Session,
    card: &card_services::IssuedCard,
    serial: &str,
    number: &str,
) -> Option<National> {
    match super::elsewhere::own_card(st, session.operator(), card, serial, number) {
        Ok(None) => None,
        Ok(Some(found)) => Some(found.national()),
        Err(e) => {
            tracing::warn!(card = %serial, error = %e,
                "the national centre was not asked about this station's card");
            let e = match e {
                e @ StationError::CentreRefused { .. } => crate::audit::refused(
                    st,
                    session,
                    "card.identify.centre-refused",
                    &format!("card:{serial}"),
                    e,
                ),
                e => e,
            };
            Some(National::Unanswered(e.to_string()))
        }
    }
}

/// When the centre's state of the document differs from this station's record, the services
/// that need the document in a state are offered by the centre's: a card declared lost at
/// another office is not renewed or unblocked here (each of them asks the centre again).
fn follow_the_centre(id: &mut CardIdentity) {
    let Some(state) = id.national_state_differs().map(str::to_owned) else {
        return;
    };
    let needs = |s: &str| (state != s).then(|| Blocker::DocumentStatus(state.clone()));
    for o in &mut id.offers {
        let by_centre = match o.service {
            Service::Renew | Service::Unblock | Service::Suspend => needs("active"),
            Service::Resume => needs("suspended"),
            Service::CardReturned | Service::AddressSet | Service::AddressEnd => None,
        };
        if o.refused.is_none() {
            o.refused = by_centre;
        }
    }
}

/// The registry's record of `card`: the card by chip serial, its document and holder, and
/// every certificate the document's job holds (renewals' included); each certificate on the
/// card must be one of them.
fn on_record(
    st: &Station,
    card: &card_services::IssuedCard,
) -> Result<(IssuedDocument, Vec<registry::Certificate>), StationError> {
    let serial = serial_text(card.serial);
    let not_ours = || {
        StationError::Conflict(format!(
            "card serial: card {serial} is not a card issued by this station"
        ))
    };
    let rec = st.registry.card(&serial)?.ok_or_else(not_ours)?;
    let (Some(holder_id), Some(document_id)) = (rec.holder_id, rec.document_id) else {
        return Err(not_ours());
    };
    let holder = st
        .registry
        .holder(holder_id)?
        .ok_or_else(|| StationError::Other(format!("card {serial}: holder not on record")))?;
    let document = st
        .registry
        .documents_of_holder(holder_id)?
        .into_iter()
        .find(|d| d.id == document_id)
        .ok_or_else(|| StationError::Other(format!("card {serial}: document not on record")))?;
    let job = st
        .registry
        .job_of_document(document.number)?
        .ok_or_else(|| {
            StationError::Other(format!("document {}: no issuance job", document.number))
        })?;
    let mut certs = st.registry.certificates_of_job(job.id)?;
    certs.sort_by_key(|c| std::cmp::Reverse(c.id));
    for (slot, der) in &card.certificates {
        if !certs.iter().any(|c| c.data.der == *der) {
            return Err(StationError::Conflict(format!(
                "certificate {}: the card's certificate is not one the registry has for document {}",
                slot_name(*slot),
                document.number
            )));
        }
    }
    let doc = IssuedDocument {
        document,
        holder,
        card: rec,
        certificates: Vec::new(),
        issuance_job: job.id,
    };
    Ok((doc, certs))
}

/// An audited refusal to identify card `serial`.
fn refused(st: &mut Station, session: &Session, serial: &str, e: StationError) -> StationError {
    let object = format!("card:{serial}");
    crate::audit::refused(st, session, "card.identify.refused", &object, e)
}

/// What the workspace shows of a matched card.
fn summary(
    st: &Station,
    doc: &IssuedDocument,
    certs: Vec<registry::Certificate>,
    on_card: Vec<String>,
    reader: String,
    pin: PinStatus,
) -> Result<CardIdentity, StationError> {
    let profile = st.card_profile()?;
    let slot_of = |purpose: &str| {
        profile
            .keys
            .iter()
            .find(|k| k.certificate_profile == purpose)
            .map(|k| slot_name(k.slot))
            .unwrap_or_else(|| purpose.to_owned())
    };
    let h = &doc.holder.data;
    let suspension = match doc.document.status {
        DocumentStatus::Suspended => st.registry.last_suspension(doc.document.id)?,
        _ => None,
    };
    let suspended_since = suspension.as_ref().map(|s| s.since.clone());
    // A window that cannot be worked out (a time the registry holds but cannot read) is kept
    // as recorded: `resume_blocker` counts an end it cannot read as passed, so resuming is
    // not offered, and the log says why.
    let resume_until = suspension
        .as_ref()
        .map(|s| match super::suspend::window(st, s) {
            Ok(w) => w.until,
            Err(e) => {
                tracing::warn!(document = %doc.document.number, error = %e,
                    "the suspension's window to resume cannot be read; resuming is not offered");
                s.resume_until.clone().unwrap_or_else(|| s.since.clone())
            }
        });
    let mut id = CardIdentity {
        reader,
        card_serial: doc.card.chip_serial.clone(),
        pin: match pin {
            PinStatus::Blocked => PinState::Blocked,
            PinStatus::TriesLeft(n) => PinState::TriesLeft(n),
            PinStatus::Verified => PinState::TriesLeft(profile.pin.retries),
        },
        holder: HolderSummary {
            pinfl: h.pinfl.clone(),
            surname: h.surname.clone(),
            given_names: h.given_names.clone(),
            patronymic: h.patronymic.clone(),
            surname_cyrillic: h.surname_cyrillic.clone(),
            given_names_cyrillic: h.given_names_cyrillic.clone(),
            patronymic_cyrillic: h.patronymic_cyrillic.clone(),
            date_of_birth: h.date_of_birth.clone(),
        },
        document: DocumentSummary {
            number: doc.document.number.to_string(),
            status: doc.document.status.as_str().into(),
            date_of_issue: doc.document.date_of_issue.clone(),
            date_of_expiry: doc.document.date_of_expiry.clone(),
        },
        certificates: certs
            .iter()
            .filter(|c| c.status != CertStatus::Issued || on_card.contains(&c.data.serial))
            .map(|c| CertificateSummary {
                slot: slot_of(&c.data.purpose),
                serial: c.data.serial.clone(),
                status: c.status.as_str().into(),
                reason: c.revocation_reason.clone(),
                not_after: c.data.not_after.clone(),
            })
            .collect(),
        on_card,
        addresses: super::address::history(st, doc.holder.id)?,
        suspended_since,
        resume_until,
        returned_at: st.registry.card_return(doc.card.id)?.map(|r| r.returned_at),
        issued_elsewhere: None,
        national: None,
        offers: Vec::new(),
    };
    id.offers = Service::ALL
        .iter()
        .map(|&service| Offer {
            service,
            refused: blocker(st, doc, &id, service),
        })
        .collect();
    Ok(id)
}

/// Why `service` does not apply to the card now, if it does not.
fn blocker(
    st: &Station,
    doc: &IssuedDocument,
    id: &CardIdentity,
    service: Service,
) -> Option<Blocker> {
    let status = doc.document.status;
    let not =
        |s: DocumentStatus| (status != s).then(|| Blocker::DocumentStatus(status.as_str().into()));
    let locked = (doc.card.lifecycle != CardLifecycle::Locked)
        .then(|| Blocker::CardNotLocked(doc.card.lifecycle.as_str().into()));
    let today = today_text();
    match service {
        Service::Renew => not(DocumentStatus::Active)
            .or(locked)
            .or_else(|| (id.pin == PinState::Blocked).then_some(Blocker::PinBlocked))
            .or_else(|| {
                (doc.document.date_of_expiry <= today)
                    .then(|| Blocker::Expired(doc.document.date_of_expiry.clone()))
            }),
        Service::Unblock => not(DocumentStatus::Active).or(locked),
        Service::Suspend => not(DocumentStatus::Active),
        Service::Resume => not(DocumentStatus::Suspended).or_else(|| resume_blocker(st, id)),
        Service::CardReturned => {
            if matches!(status, DocumentStatus::Active | DocumentStatus::Suspended) {
                Some(Blocker::DocumentInUse(status.as_str().into()))
            } else {
                id.returned_at.clone().map(Blocker::AlreadyReturned)
            }
        }
        Service::AddressSet => None,
        Service::AddressEnd => address_end_blocker(id),
    }
}

/// A suspended document past its window to resume.
pub(super) fn resume_blocker(st: &Station, id: &CardIdentity) -> Option<Blocker> {
    let until = id.resume_until.as_deref()?;
    let since = id.suspended_since.clone().unwrap_or_default();
    super::suspend::window_passed(until).then(|| Blocker::SuspensionLimit {
        days: super::suspend::whole_days(&since, until)
            .unwrap_or(st.config.services.suspension_limit_days),
        since,
    })
}

/// No temporary registration in force today to end.
pub(super) fn address_end_blocker(id: &CardIdentity) -> Option<Blocker> {
    let today = today_text();
    let current = id.addresses.iter().any(|a| {
        a.kind == "temporary"
            && a.ended_on.is_none()
            && a.registered_until
                .as_deref()
                .is_none_or(|u| u >= today.as_str())
    });
    (!current).then_some(Blocker::NoTemporaryAddress)
}

/// Today (UTC) as `YYYY-MM-DD`.
pub(super) fn today_text() -> String {
    let today = crate::time_util::today_utc();
    format!(
        "{:04}-{:02}-{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    )
}

/// A registration address as the GUI's form gives it (`kind`, dates `YYYY-MM-DD`), as
/// `address set` takes it; a field that does not fit is named.
pub fn address_from_record(r: &crate::holder::AddressRecord) -> Result<NewAddress, StationError> {
    let value =
        serde_json::to_value(r).map_err(|e| StationError::invalid("address", e.to_string()))?;
    serde_json::from_value(value).map_err(|e| StationError::invalid("address.kind", e.to_string()))
}
