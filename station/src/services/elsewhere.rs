//! A card another office issued, on a station enrolled with the national centre (docs/gui.md
//! "Card services"): the station has no record of it, so [`identify`](super::identify) asks the
//! centre (`POST /v1/cards/lookup`) with the chip serial and the serials of the certificates read
//! from the card, and shows the national registry's record. What the centre serves for any
//! office applies (suspend, resume, address changes, and the renewal and PIN unblock of a card
//! under a management key the centre derives: [`super::renew_elsewhere`],
//! [`super::unblock_elsewhere`]); what needs the issuing station's card key or records does not
//! (the renewal and unblock of a card under that station's own key; a returned card is recorded
//! where it was issued) and says so. The same look-up gives the
//! centre's word on this station's own cards ([`own_card`]: `identify`'s advice, the
//! check before a PIN unblock).

use centre_api::{paths, CardAtCentre, CardLookupRequest, DocumentLookupRequest};
use personalization::piv::services::IssuedCard;
use personalization::piv::PinStatus;

use super::address::AddressHistoryEntry;
use super::identify::{
    address_end_blocker, resume_blocker, Blocker, CardIdentity, CertificateSummary,
    DocumentSummary, HolderSummary, National, Offer, PinState, Service,
};
use crate::centre::CentreClient;
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// A card as the centre knows it, with the serials of the certificates read from it.
pub(super) struct AtCentre {
    pub record: CardAtCentre,
    read: Vec<String>,
}

impl AtCentre {
    /// The centre's word on the card, as the workspace shows it beside a record.
    pub(super) fn national(&self) -> National {
        National::Record {
            state: self.record.state.clone(),
            replacement_due: self.record.replacement_due.clone(),
        }
    }
}

/// How long each centre instance may take to answer when this station asks about a card of its
/// own in a reader: advice for the card shown (`identify`), or the check before a PIN unblock,
/// which holds the reader meanwhile. A centre that hangs must not hold the clerk's screen or the
/// card for the whole request timeout; nothing is changed when it gives up.
pub(super) const LOOKUP_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The centre's record of `card`, or `None` when this station is not enrolled (a standalone
/// station knows only its own cards).
pub(super) fn lookup(
    st: &Station,
    operator: &str,
    card: &IssuedCard,
    card_serial: &str,
) -> Result<Option<AtCentre>, StationError> {
    lookup_within(st, operator, card, card_serial, None)
}

/// The centre's record of this station's own card `card_serial`, document `number`, each
/// instance within [`LOOKUP_WITHIN`]; `None` when not enrolled. The centre finds a card by its
/// chip serial: a record of another document is a conflict naming `document number`.
pub(super) fn own_card(
    st: &Station,
    operator: &str,
    card: &IssuedCard,
    card_serial: &str,
    number: &str,
) -> Result<Option<AtCentre>, StationError> {
    let found = lookup_within(st, operator, card, card_serial, Some(LOOKUP_WITHIN))?;
    if let Some(f) = &found {
        if f.record.document != number {
            return Err(StationError::Conflict(format!(
                "document number: the national registry has card {card_serial} as document {}, \
                 this station as {number}",
                f.record.document
            )));
        }
    }
    Ok(found)
}

/// [`lookup`] answered within `limit` when given ([`LOOKUP_WITHIN`]).
fn lookup_within(
    st: &Station,
    operator: &str,
    card: &IssuedCard,
    card_serial: &str,
    limit: Option<std::time::Duration>,
) -> Result<Option<AtCentre>, StationError> {
    if st.config.centre.is_none() {
        return Ok(None);
    }
    let read = serials_read(card)?;
    let request = CardLookupRequest {
        operator: operator.to_owned(),
        card_serial: card_serial.to_owned(),
        certificates: read.clone(),
    };
    let client = CentreClient::for_station(st)?;
    let record = match limit {
        Some(limit) => client.post_within(paths::CARD_LOOKUP, &request, limit)?,
        None => client.post(paths::CARD_LOOKUP, &request)?,
    };
    Ok(Some(AtCentre { record, read }))
}

/// Another office's card in the reader, for `service` (`renewal`, `unblock`) of document
/// `number`: the centre's record, the read of the holder's data audited here; a refusal (the
/// centre's, or no such card) audited as `{service}.refused`.
pub(super) fn for_service(
    st: &mut Station,
    session: &Session,
    service: &str,
    number: &str,
    card: &IssuedCard,
) -> Result<AtCentre, StationError> {
    let serial = crate::card::serial_text(card.serial);
    let found = match lookup(st, session.operator(), card, &serial) {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Err(StationError::NotFound(format!(
                "document: no document {number}"
            )))
        }
        Err(e @ (StationError::CentreRefused { .. } | StationError::NotFound(_))) => {
            return Err(super::refused(st, session, service, number, e))
        }
        Err(e) => return Err(e),
    };
    let verb = if service == "renewal" {
        "renew"
    } else {
        service
    };
    crate::records::audit_holder_reads(
        st,
        session,
        &[&found.record.holder.pinfl],
        &format!(
            "{verb} --document {number}: card {serial} of office {}, at the national centre",
            found.record.office
        ),
    )?;
    Ok(found)
}

/// The serials (upper-case hex) of the certificates read from `card`.
pub(super) fn serials_read(card: &IssuedCard) -> Result<Vec<String>, StationError> {
    card.certificates
        .iter()
        .map(|(_, der)| {
            ca::CertInfo::parse(der)
                .map(|i| i.serial_hex.to_uppercase())
                .map_err(|e| StationError::Other(format!("a certificate on the card: {e}")))
        })
        .collect()
}

/// The card's chip must open with the MRZ of the centre's record (document number, date of
/// birth, date of expiry: the BAC/PACE key, ICAO Doc 9303-11 §9.7.1 / Appendix D.2) and its DG1
/// carry that document number, as for this station's own cards: a chip serial and certificate
/// serials can be read from any card, the chip's access key cannot.
pub(super) fn match_chip(
    tx: &mut dyn personalization::transport::Transport,
    found: &CardAtCentre,
) -> Result<(), StationError> {
    use personalization::mrz::{check_digit, yymmdd};
    let date = |field: &'static str, v: &str| {
        crate::holder::parse_date(v)
            .map_err(|_| StationError::Other(format!("the centre's {field} {v:?} is not a date")))
    };
    let birth = yymmdd(date("date of birth", &found.holder.date_of_birth)?);
    let expiry = yymmdd(date("date of expiry", &found.date_of_expiry)?);
    let number = &found.document;
    let cd = |field: &str, v: &str| {
        check_digit(field, v).map_err(|e| StationError::invalid("mrz", e.to_string()))
    };
    let info = zeroize::Zeroizing::new(format!(
        "{number}{}{birth}{}{expiry}{}",
        cd("document number", number)?,
        cd("date of birth", &birth)?,
        cd("date of expiry", &expiry)?
    ));
    super::open_chip(tx, &info, number).map(|_| ())
}

/// What the workspace shows of a card the centre knows and this station does not.
pub(super) fn summary(
    st: &Station,
    card: &IssuedCard,
    at_centre: AtCentre,
    reader: String,
    card_serial: String,
) -> Result<CardIdentity, StationError> {
    let profile = st.card_profile()?;
    let national = Some(at_centre.national());
    let AtCentre {
        record: found,
        read,
    } = at_centre;
    let on_card: Vec<String> = found
        .certificates
        .iter()
        .filter(|c| read.iter().any(|s| s.eq_ignore_ascii_case(&c.serial)))
        .map(|c| c.serial.clone())
        .collect();
    let whole_seconds =
        |t: &str| crate::time_util::whole_seconds(t).unwrap_or_else(|_| t.to_owned());
    let h = found.holder;
    let mut id = CardIdentity {
        reader,
        card_serial,
        pin: match card.pin {
            PinStatus::Blocked => PinState::Blocked,
            PinStatus::TriesLeft(n) => PinState::TriesLeft(n),
            PinStatus::Verified => PinState::TriesLeft(profile.pin.retries),
        },
        holder: HolderSummary {
            pinfl: h.pinfl,
            surname: h.surname,
            given_names: h.given_names,
            patronymic: h.patronymic,
            surname_cyrillic: h.surname_cyrillic,
            given_names_cyrillic: h.given_names_cyrillic,
            patronymic_cyrillic: h.patronymic_cyrillic,
            date_of_birth: h.date_of_birth,
        },
        document: DocumentSummary {
            number: found.document,
            status: found.state,
            date_of_issue: found.date_of_issue,
            date_of_expiry: found.date_of_expiry,
        },
        certificates: found
            .certificates
            .into_iter()
            .filter(|c| c.state != "issued" || on_card.contains(&c.serial))
            .map(|c| CertificateSummary {
                slot: c.slot,
                serial: c.serial,
                status: c.state,
                reason: c.reason,
                not_after: c.not_after,
            })
            .collect(),
        on_card,
        addresses: found
            .addresses
            .into_iter()
            .map(|a| AddressHistoryEntry {
                address_id: a.address_id,
                kind: a.address.kind.as_str().into(),
                text: super::address::address_text(&a.address),
                registered_on: a.address.registered_on.clone(),
                registered_until: a.address.registered_until.clone(),
                ended_on: a.ended_on,
                recorded_at: a.recorded_at,
                recorded_by: a.recorded_by,
            })
            .collect(),
        suspended_since: found.suspended_at.as_deref().map(whole_seconds),
        resume_until: found.release_until.as_deref().map(whole_seconds),
        returned_at: None,
        issued_elsewhere: Some(found.office.clone()),
        national,
        offers: Vec::new(),
    };
    let office = found.office;
    let centre_key = found.card_key.is_some();
    let not = |status: &str| {
        (id.document.status != status).then(|| Blocker::DocumentStatus(id.document.status.clone()))
    };
    let offers = Service::ALL
        .iter()
        .map(|&service| Offer {
            service,
            refused: match service {
                // A card under a management key the centre derives is renewed and has its PIN
                // unblocked at any office; one under its issuing station's own key only there.
                Service::Renew if centre_key => not("active")
                    .or_else(|| (id.pin == PinState::Blocked).then_some(Blocker::PinBlocked))
                    .or_else(|| {
                        (id.document.date_of_expiry <= super::identify::today_text())
                            .then(|| Blocker::Expired(id.document.date_of_expiry.clone()))
                    }),
                Service::Unblock if centre_key => not("active"),
                Service::Renew | Service::Unblock | Service::CardReturned => {
                    Some(Blocker::IssuedElsewhere(office.clone()))
                }
                Service::Suspend => not("active"),
                Service::Resume => not("suspended").or_else(|| resume_blocker(st, &id)),
                Service::AddressSet => None,
                Service::AddressEnd => address_end_blocker(&id),
            },
        })
        .collect();
    id.offers = offers;
    Ok(id)
}

/// Document `number` as the national registry has it, for a clerk's look-up on an enrolled
/// station that has no record of it (a holder declaring a lost card has only its number): whose
/// it is, before anything is declared. Clerk only; the read of the holder's data is audited here
/// (`holder.read`) and at the centre (`document.looked-up`).
pub fn document_at_centre(
    st: &mut Station,
    session: &Session,
    number: &str,
) -> Result<CardAtCentre, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "look up documents",
        &[registry::Role::Clerk],
    )?;
    let number = crate::records::parse_document(number)?.to_string();
    let request = DocumentLookupRequest {
        operator: session.operator().to_owned(),
        document: number.clone(),
    };
    let found: CardAtCentre =
        CentreClient::for_station(st)?.post(paths::DOCUMENT_LOOKUP, &request)?;
    crate::records::audit_holder_reads(
        st,
        session,
        &[&found.holder.pinfl],
        &format!(
            "look-up: document {number} of office {}, at the national centre",
            found.office
        ),
    )?;
    Ok(found)
}
