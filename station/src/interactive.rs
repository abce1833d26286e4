//! What an interactive front end (the `gui` crate) needs beyond the CLI's commands: a log-in
//! that is audited once per session, the editable holder record for a PINFL
//! (prefill), the audit events for the auditor's table, the readers with their cards'
//! lifecycle, and revocation of a single certificate by serial (CA admin). The holder
//! validation policy a typed-in record is checked against is built here once, for the GUI and
//! the `idstation issue` command alike.
//!
//! Roles are checked here as in the CLI: every function that changes state takes the
//! [`Session`] of an operator who logged in, checks its role and records it in the audit log.

use registry::{AuditEntry, AuditEvent, CertStatus, Role};
use zeroize::Zeroizing;

use crate::error::StationError;
use crate::holder::{AddressRecord, HolderRecord, ValidationPolicy};
use crate::operators::Session;
use crate::Station;
use profiles::document::DocumentProfile;

/// The policy a holder record is validated against today: the document profile's PINFL
/// check-digit rule, and today's date (UTC) for dates that may not lie in the future.
pub fn holder_policy(doc: &DocumentProfile) -> ValidationPolicy {
    let mut policy = ValidationPolicy::new(crate::time_util::today_utc());
    policy.pinfl_check_digit = doc.pinfl_check_digit;
    policy
}

/// Log an operator in to the GUI: the password and the role are checked by
/// [`Station::authorize`] (refusals are audited there) and the log-in itself is audited.
pub fn login(
    st: &mut Station,
    name: &str,
    password: &Zeroizing<String>,
) -> Result<Session, StationError> {
    let session = st.authorize(
        name,
        password,
        "log in to the station GUI",
        &[Role::Clerk, Role::CaAdmin, Role::Auditor],
    )?;
    st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action: "operator.login",
        object: &format!("operator:{name}"),
        details: &serde_json::json!({ "client": "gui" }),
    })?;
    Ok(session)
}

/// Record a log-out (`reason`: "operator" or "idle timeout").
pub fn logout(st: &mut Station, session: &Session, reason: &str) -> Result<(), StationError> {
    st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action: "operator.logout",
        object: &format!("operator:{}", session.actor().operator),
        details: &serde_json::json!({ "client": "gui", "reason": reason }),
    })?;
    Ok(())
}

/// Refuse unless `session`'s account is still enabled, unlocked and of the role it logged in
/// with, and that role is one of `roles`. The GUI calls this before every action; a refusal is
/// audited (`operator.refused`) like the CLI's ([`crate::operators::require_current`]).
pub fn require(
    st: &mut Station,
    session: &Session,
    action: &str,
    roles: &[Role],
) -> Result<(), StationError> {
    crate::operators::require_current(&mut st.registry, session, action, roles)
}

/// The holder record of `pinfl` as the clerk would enter it (newest address), or `None`
/// (clerk or auditor; the read is audited, `holder.read`).
pub fn holder_record(
    st: &mut Station,
    session: &Session,
    pinfl: &str,
) -> Result<Option<HolderRecord>, StationError> {
    require(st, session, "look up holders", crate::records::READ_ROLES)?;
    holder_record_for(st, session, pinfl, "gui look-up")
}

/// [`holder_record`] after the role check, the read audited with `purpose`.
fn holder_record_for(
    st: &mut Station,
    session: &Session,
    pinfl: &str,
    purpose: &str,
) -> Result<Option<HolderRecord>, StationError> {
    let Some(h) = st.registry.holder_by_pinfl(pinfl)? else {
        return Ok(None);
    };
    crate::records::audit_holder_reads(st, session, &[&h.data.pinfl], purpose)?;
    let addresses = st.registry.addresses(h.id)?;
    let address = addresses
        .last()
        .map(|a| AddressRecord {
            kind: a.data.kind.as_str().to_string(),
            region: a.data.region.clone(),
            district: a.data.district.clone(),
            street: a.data.street.clone(),
            house: a.data.house.clone(),
            apartment: a.data.apartment.clone(),
            registered_on: a.data.registered_on.clone(),
            registered_until: a.data.registered_until.clone(),
        })
        .unwrap_or_default();
    let d = h.data;
    Ok(Some(HolderRecord {
        pinfl: d.pinfl,
        surname: d.surname,
        given_names: d.given_names,
        patronymic: d.patronymic,
        surname_cyrillic: d.surname_cyrillic,
        given_names_cyrillic: d.given_names_cyrillic,
        patronymic_cyrillic: d.patronymic_cyrillic,
        sex: d.sex,
        date_of_birth: d.date_of_birth,
        place_of_birth: d.place_of_birth,
        citizenship: d.citizenship,
        address,
        photo: None,
    }))
}

/// The holder record of document `document`'s holder, as [`holder_record`] gives it (audited
/// `holder.read`); `None` when this registry has no such document (another office's).
pub fn holder_record_of_document(
    st: &mut Station,
    session: &Session,
    document: &str,
) -> Result<Option<HolderRecord>, StationError> {
    require(st, session, "look up holders", crate::records::READ_ROLES)?;
    let number = crate::records::parse_document(document)?;
    let Some(doc) = st.registry.document(number)? else {
        return Ok(None);
    };
    let Some(holder) = st.registry.holder(doc.holder_id)? else {
        return Ok(None);
    };
    let purpose = format!("replacement of {document}");
    holder_record_for(st, session, &holder.data.pinfl, &purpose)
}

/// A document number the registry records as spoiled: its card was written, then discarded
/// when the issuance was undone, so the number is on no valid document and is never handed
/// out again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpoiledNumber {
    pub document: String,
    /// The issuance job that spoiled it.
    pub job_id: i64,
    /// The card it was written to.
    pub card_serial: Option<String>,
    /// When the job ended (RFC 3339).
    pub when: String,
}

/// What the clerk's look-up of a holder shows: the record to prefill the form with, the
/// holder's documents (status, dates, office, card, certificates) and the numbers spoiled in
/// their issuances.
#[derive(Debug, Clone)]
pub struct HolderLookup {
    pub record: HolderRecord,
    pub view: crate::records::HolderView,
    pub spoiled: Vec<SpoiledNumber>,
}

impl HolderLookup {
    /// The holder's active document: one active card per holder, so a new card is then a
    /// replacement ([`crate::services::replace`]).
    pub fn active_document(&self) -> Option<&crate::records::DocumentView> {
        self.view.documents.iter().find(|d| d.status == "active")
    }
}

/// The spoiled number of job `job`, if its number was spoiled.
fn spoiled_of(st: &Station, job: &registry::Job) -> Result<Option<SpoiledNumber>, StationError> {
    let Some(num) = job.document else {
        return Ok(None);
    };
    // A number the centre handed out has no row here (NotFound): the centre keeps its state.
    match st.registry.document_number_state(num) {
        Ok(registry::NumberState::Spoiled) => {}
        Ok(_) | Err(registry::Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    Ok(Some(SpoiledNumber {
        document: num.to_string(),
        job_id: job.id,
        card_serial: job.card_serial.clone(),
        when: job
            .finished_at
            .clone()
            .unwrap_or_else(|| job.updated_at.clone()),
    }))
}

/// The holder with PINFL `pinfl` for the clerk's look-up ([`HolderLookup`]), or `None` (clerk
/// or auditor; the read is audited once, `holder.read`).
pub fn look_up_holder(
    st: &mut Station,
    session: &Session,
    pinfl: &str,
) -> Result<Option<HolderLookup>, StationError> {
    let Some(record) = holder_record(st, session, pinfl)? else {
        return Ok(None);
    };
    let h = st
        .registry
        .holder_by_pinfl(pinfl)?
        .ok_or_else(|| StationError::NotFound(format!("no holder with PINFL {pinfl}")))?;
    let view = crate::records::holder_view(st, &h)?;
    let mut spoiled = Vec::new();
    for j in st.registry.jobs_of_holder(h.id)? {
        spoiled.extend(spoiled_of(st, &j)?);
    }
    Ok(Some(HolderLookup {
        record,
        view,
        spoiled,
    }))
}

/// Document number `num` if the registry records it as spoiled (clerk or auditor). A spoiled
/// number has no document, so [`crate::records::show_document`] does not find it; this says
/// what became of it.
pub fn spoiled_number(
    st: &mut Station,
    session: &Session,
    num: &str,
) -> Result<Option<SpoiledNumber>, StationError> {
    require(st, session, "look up documents", crate::records::READ_ROLES)?;
    let Ok(number) = crate::records::parse_document(num.trim()) else {
        return Ok(None);
    };
    match st.registry.job_of_document(number)? {
        Some(j) => spoiled_of(st, &j),
        None => Ok(None),
    }
}

/// Every audit event, oldest first (auditor and CA admin only). The events name holders and
/// carry their changed data (`holder.updated`), so the read is audited (`audit.read`, how many
/// and up to which sequence number), as `audit export` is; a read that cannot be audited is
/// not answered.
pub fn audit_events(st: &mut Station, session: &Session) -> Result<Vec<AuditEvent>, StationError> {
    require(
        st,
        session,
        "read the audit log",
        &[Role::Auditor, Role::CaAdmin],
    )?;
    let events = st.registry.audit_events(1, u64::MAX)?;
    st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action: "audit.read",
        object: "audit-log",
        details: &serde_json::json!({ "via": "gui", "events": events.len(),
            "through_seq": events.last().map(|e| e.seq) }),
    })?;
    Ok(events)
}

/// A reader as the GUI's reader panel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderStatus {
    pub reader: String,
    pub card_present: bool,
    pub atr: Vec<u8>,
}

/// The PC/SC readers and whether a card is in each (no card is connected to).
pub fn readers() -> Result<Vec<ReaderStatus>, StationError> {
    use personalization::transport::pcsc::Pcsc;
    let pcsc = Pcsc::establish().map_err(|e| StationError::card(None, &e))?;
    Ok(pcsc
        .readers()
        .map_err(|e| StationError::card(None, &e))?
        .into_iter()
        .map(|r| ReaderStatus {
            reader: r.name,
            card_present: r.card_present,
            atr: r.atr,
        })
        .collect())
}

/// The card in `reader`: "card 2C000001 BLANK" (serial and lifecycle), read without
/// authentication and without writing.
pub fn inspect_card(reader: &str) -> Result<String, StationError> {
    use personalization::transport::pcsc::Pcsc;
    let pcsc = Pcsc::establish().map_err(|e| StationError::card(None, &e))?;
    let mut card = pcsc
        .connect(reader)
        .map_err(|e| StationError::card(None, &e))?;
    let mut tx = card.begin().map_err(|e| StationError::card(None, &e))?;
    let i =
        personalization::executor::inspect(&mut tx).map_err(|e| StationError::card(None, &e))?;
    Ok(format!(
        "card {} {}",
        crate::card::serial_text(i.serial),
        i.lifecycle
    ))
}

/// The refusal to revoke certificate `serial` (`message`), audited as
/// `certificate.revoke-refused` with `why`; a failure to audit is the error instead.
fn revoke_refused(
    st: &mut Station,
    session: &Session,
    serial: &str,
    why: &serde_json::Value,
    message: String,
) -> StationError {
    let audited = st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action: "certificate.revoke-refused",
        object: &format!("certificate:{serial}"),
        details: why,
    });
    match audited {
        Ok(_) => StationError::NotPermitted(message),
        Err(e) => e.into(),
    }
}

/// Revoke one certificate by serial (hex, as the registry records it) with an RFC 5280
/// reason name; it appears on the next CRL of its issuing key. CA admin only; audited. Refused
/// (audited) on a station enrolled with the national centre: there a document is revoked at
/// the centre (`crate::records::revoke`).
pub fn revoke_certificate(
    st: &mut Station,
    session: &Session,
    serial: &str,
    reason: &str,
) -> Result<String, StationError> {
    require(st, session, "revoke certificates", &[Role::CaAdmin])?;
    let serial = serial.trim().to_ascii_lowercase();
    if st.config.centre.is_some() {
        // The centre's CRLs and OCSP answers decide; a revocation recorded here alone would
        // leave the certificate good for every relying party.
        let why = serde_json::json!({
            "reason": "enrolled with the national centre: revoke the document there",
        });
        let message = "this station is enrolled with the national centre, whose CRLs and OCSP \
             answers decide: revoke the holder's document (`idstation revoke --document N`, or \
             the card services), which revokes its certificates at the centre";
        return Err(revoke_refused(st, session, &serial, &why, message.into()));
    }
    if serial.is_empty() || !serial.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(StationError::invalid(
            "serial",
            format!("{serial:?} must be the certificate serial in hexadecimal"),
        ));
    }
    if ca::RevocationReason::from_rfc5280_name(reason).is_none() {
        return Err(StationError::invalid(
            "reason",
            format!("{reason:?} is not an RFC 5280 revocation reason name"),
        ));
    }
    let certs = st.registry.certificates_by_serial(&serial)?;
    let cert = match certs.as_slice() {
        [] => {
            return Err(StationError::NotFound(format!(
                "no certificate with serial {serial}"
            )))
        }
        [one] => one.clone(),
        _ => {
            return Err(StationError::Conflict(format!(
                "{} certificates have serial {serial}; revoke them through their documents",
                certs.len()
            )))
        }
    };
    // A CA, audit or Document Signer certificate is not one person's certificate: taking it out
    // of use is `ca revoke-ca`, under dual control, with its re-issuance list.
    let holder_kind = st
        .profiles
        .cert(&cert.data.purpose)
        .map(|p| {
            !p.kind.is_ca()
                && matches!(
                    p.key_origin,
                    profiles::KeyOrigin::Card | profiles::KeyOrigin::Any
                )
        })
        .unwrap_or(false);
    if !holder_kind {
        let why = serde_json::json!({
            "reason": "not a holder certificate; ca revoke-ca under dual control",
            "purpose": cert.data.purpose,
        });
        let message = format!(
            "certificate {serial} is a {} certificate of the station's PKI, not a holder's: \
             revoke it with `idstation ca revoke-ca` (two CA administrators approve)",
            cert.data.purpose
        );
        return Err(revoke_refused(st, session, &serial, &why, message));
    }
    if !matches!(cert.status, CertStatus::Active | CertStatus::Issued) {
        return Err(StationError::Conflict(format!(
            "certificate {serial} is {}, not active",
            cert.status.as_str()
        )));
    }
    let now = registry::now_rfc3339();
    let tx = st.registry.transaction()?;
    tx.revoke_certificate(cert.id, reason, &now)?;
    tx.audit(&AuditEntry {
        actor: session.actor(),
        action: "certificate.revoked",
        object: &format!("certificate:{serial}"),
        details: &serde_json::json!({ "reason": reason, "subject": cert.data.subject }),
    })?;
    crate::audit::checkpoint_in(&tx, st.keys.as_ref(), &st.config.ca.audit_key)?;
    tx.commit()?;
    Ok(serial)
}
