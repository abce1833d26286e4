//! Typed records of the registry and their writes (on [`Tx`]) and reads (on [`Registry`]):
//! holders, registration addresses, documents with status history, cards, certificates, CA keys
//! with state history, dual-control requests, operators and the outbox.

use rusqlite::{params, OptionalExtension, Row};

use crate::numbers::NumberState;
use crate::{now_rfc3339, validate, Actor, DocumentNumber, Error, Registry, Result, Tx};

/// Holder as given for enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewHolder {
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    pub patronymic: Option<String>,
    pub surname_cyrillic: Option<String>,
    pub given_names_cyrillic: Option<String>,
    pub patronymic_cyrillic: Option<String>,
    /// `M` or `F`.
    pub sex: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    pub place_of_birth: String,
    /// ISO 3166-1 alpha-3, `XXA` = stateless.
    pub citizenship: String,
    /// SHA-256 of the photo printed on the card and written to DG2 (64 lower-case hex
    /// digits); `None` when no photo was recorded (holders enrolled before schema 5).
    pub photo_sha256: Option<String>,
}

/// A holder as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub id: i64,
    pub data: NewHolder,
    pub created_at: String,
    pub created_by: String,
}

/// Kind of registration address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Permanent,
    Temporary,
}

impl AddressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Permanent => "permanent",
            AddressKind::Temporary => "temporary",
        }
    }
    fn parse(s: &str) -> rusqlite::Result<Self> {
        match s {
            "permanent" => Ok(AddressKind::Permanent),
            _ => Ok(AddressKind::Temporary),
        }
    }
}

/// A registration address (permanent or temporary, with its dates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAddress {
    pub kind: AddressKind,
    pub region: String,
    pub district: String,
    pub street: String,
    pub house: String,
    pub apartment: Option<String>,
    pub registered_on: String,
    pub registered_until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub id: i64,
    pub holder_id: i64,
    pub data: NewAddress,
    pub recorded_at: String,
    pub recorded_by: String,
}

/// Document status (ARCHITECTURE "Registry").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentStatus {
    Active,
    Suspended,
    Lost,
    Revoked,
    Expired,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Active => "active",
            DocumentStatus::Suspended => "suspended",
            DocumentStatus::Lost => "lost",
            DocumentStatus::Revoked => "revoked",
            DocumentStatus::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "active" => DocumentStatus::Active,
            "suspended" => DocumentStatus::Suspended,
            "lost" => DocumentStatus::Lost,
            "revoked" => DocumentStatus::Revoked,
            "expired" => DocumentStatus::Expired,
            _ => {
                return Err(Error::invalid(
                    "status",
                    s,
                    "must be one of active, suspended, lost, revoked, expired",
                ))
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub id: i64,
    pub number: DocumentNumber,
    pub holder_id: i64,
    pub office: String,
    pub date_of_issue: String,
    pub date_of_expiry: String,
    pub status: DocumentStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub status: String,
    pub reason: Option<String>,
    pub at: String,
    pub operator: String,
}

/// Card lifecycle (ARCHITECTURE "The card"): BLANK → PERSONALIZING → LOCKED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardLifecycle {
    Blank,
    Personalizing,
    Locked,
    Destroyed,
}

impl CardLifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            CardLifecycle::Blank => "blank",
            CardLifecycle::Personalizing => "personalizing",
            CardLifecycle::Locked => "locked",
            CardLifecycle::Destroyed => "destroyed",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "blank" => CardLifecycle::Blank,
            "personalizing" => CardLifecycle::Personalizing,
            "locked" => CardLifecycle::Locked,
            _ => CardLifecycle::Destroyed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub id: i64,
    pub chip_serial: String,
    pub lifecycle: CardLifecycle,
    pub holder_id: Option<i64>,
    pub document_id: Option<i64>,
    pub updated_at: String,
}

/// Certificate status in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Signed by the CA, not (yet) on a locked card.
    Issued,
    Active,
    Revoked,
    Expired,
}

impl CertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Issued => "issued",
            CertStatus::Active => "active",
            CertStatus::Revoked => "revoked",
            CertStatus::Expired => "expired",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "issued" => CertStatus::Issued,
            "active" => CertStatus::Active,
            "revoked" => CertStatus::Revoked,
            _ => CertStatus::Expired,
        }
    }
}

/// CRLReason names (RFC 5280 §5.3.1).
pub const REVOCATION_REASONS: &[&str] = &[
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
    "aACompromise",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    pub issuer_key_id: i64,
    /// Serial number as lowercase hex without leading `0x`.
    pub serial: String,
    pub subject: String,
    /// e.g. `holder-auth`, `holder-sign`, `ca`.
    pub purpose: String,
    /// RFC 3339 UTC.
    pub not_before: String,
    pub not_after: String,
    pub holder_id: Option<i64>,
    pub card_id: Option<i64>,
    pub job_id: Option<i64>,
    pub der: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub id: i64,
    pub data: NewCertificate,
    pub status: CertStatus,
    pub revocation_reason: Option<String>,
    pub revoked_at: Option<String>,
    pub created_at: String,
}

/// CA key state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKeyState {
    Generated,
    Active,
    /// Signs only CRLs for what it issued.
    Retired,
    Revoked,
    Destroyed,
}

impl CaKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaKeyState::Generated => "generated",
            CaKeyState::Active => "active",
            CaKeyState::Retired => "retired",
            CaKeyState::Revoked => "revoked",
            CaKeyState::Destroyed => "destroyed",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "generated" => CaKeyState::Generated,
            "active" => CaKeyState::Active,
            "retired" => CaKeyState::Retired,
            "revoked" => CaKeyState::Revoked,
            _ => CaKeyState::Destroyed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaKey {
    pub id: i64,
    pub label: String,
    /// Which CA: `root`, `esign`, `csca`, `document-signer`, `audit`.
    pub ca: String,
    pub role: String,
    /// SubjectPublicKeyInfo DER.
    pub public_key: Vec<u8>,
    /// SHA-256 of the SPKI DER, lowercase hex.
    pub fingerprint: String,
    pub state: CaKeyState,
    pub certificate: Option<Vec<u8>>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaKeyStateChange {
    pub state: String,
    pub at: String,
    pub operator: String,
    pub approvers: Vec<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaRequest {
    pub id: i64,
    pub kind: String,
    pub ca: String,
    pub payload: String,
    pub quorum: u32,
    pub requested_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub state: String,
    pub approvals: Vec<String>,
}

/// Operator roles (ARCHITECTURE "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Clerk,
    CaAdmin,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clerk => "clerk",
            Role::CaAdmin => "ca-admin",
            Role::Auditor => "auditor",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "clerk" => Role::Clerk,
            "ca-admin" => Role::CaAdmin,
            "auditor" => Role::Auditor,
            _ => {
                return Err(Error::invalid(
                    "role",
                    s,
                    "must be clerk, ca-admin or auditor",
                ))
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// argon2 PHC string (`$argon2id$...`); never a password.
    pub password_hash: String,
    pub active: bool,
    pub created_at: String,
    pub created_by: Option<String>,
    /// Wrong passwords since the last successful log-in.
    pub failed_logins: u32,
    /// Locked after [`MAX_FAILED_LOGINS`] wrong passwords, until a ca-admin unlocks it.
    pub locked: bool,
    /// Since when the operator holds `role` as an enabled account (created, enabled or given
    /// the role); RFC 3339 UTC like every registry time.
    pub role_since: String,
}

/// Wrong passwords in a row that lock an operator account.
pub const MAX_FAILED_LOGINS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub topic: String,
    pub payload: String,
    pub created_at: String,
    pub acked_at: Option<String>,
    pub acked_by: Option<String>,
}

/// Outbox topic: register a holder in the e-government system.
pub const TOPIC_EGOV_REGISTER_HOLDER: &str = "egov.register-holder";
/// Outbox topic: a signed audit checkpoint (seq, hash, time, signature), so that a system off
/// the station holds the heads of the audit chain (docs/audit-format.md section 4).
pub const TOPIC_AUDIT_CHECKPOINT: &str = "audit.checkpoint";

fn validate_holder(h: &NewHolder) -> Result<()> {
    validate::pinfl("pinfl", &h.pinfl)?;
    validate::text("surname", &h.surname, 100)?;
    validate::text("given_names", &h.given_names, 100)?;
    validate::opt_text("patronymic", h.patronymic.as_deref(), 100)?;
    validate::opt_text("surname_cyrillic", h.surname_cyrillic.as_deref(), 100)?;
    validate::opt_text(
        "given_names_cyrillic",
        h.given_names_cyrillic.as_deref(),
        100,
    )?;
    validate::opt_text("patronymic_cyrillic", h.patronymic_cyrillic.as_deref(), 100)?;
    if h.sex != "M" && h.sex != "F" {
        return Err(Error::invalid("sex", &h.sex, "must be M or F"));
    }
    let dob = validate::date("date_of_birth", &h.date_of_birth)?;
    if dob > time::OffsetDateTime::now_utc().date() {
        return Err(Error::invalid(
            "date_of_birth",
            &h.date_of_birth,
            "must not be in the future",
        ));
    }
    validate::text("place_of_birth", &h.place_of_birth, 200)?;
    validate::citizenship("citizenship", &h.citizenship)?;
    if let Some(d) = &h.photo_sha256 {
        if d.len() != 64
            || !d
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::invalid(
                "photo_sha256",
                d,
                "must be 64 lower-case hexadecimal digits (SHA-256)",
            ));
        }
    }
    Ok(())
}

fn validate_address(a: &NewAddress) -> Result<()> {
    validate::text("address.region", &a.region, 100)?;
    validate::text("address.district", &a.district, 100)?;
    validate::text("address.street", &a.street, 200)?;
    validate::text("address.house", &a.house, 20)?;
    validate::opt_text("address.apartment", a.apartment.as_deref(), 20)?;
    validate::date("address.registered_on", &a.registered_on)?;
    match (&a.kind, &a.registered_until) {
        (AddressKind::Temporary, None) => Err(Error::invalid(
            "address.registered_until",
            "",
            "a temporary address needs an end date (registered_until)",
        )),
        (_, Some(until)) => validate::after(
            "address.registered_until",
            until,
            "address.registered_on",
            &a.registered_on,
        ),
        (AddressKind::Permanent, None) => Ok(()),
    }
}

fn holder_from_row(r: &Row<'_>) -> rusqlite::Result<Holder> {
    Ok(Holder {
        id: r.get(0)?,
        data: NewHolder {
            pinfl: r.get(1)?,
            surname: r.get(2)?,
            given_names: r.get(3)?,
            patronymic: r.get(4)?,
            surname_cyrillic: r.get(5)?,
            given_names_cyrillic: r.get(6)?,
            patronymic_cyrillic: r.get(7)?,
            sex: r.get(8)?,
            date_of_birth: r.get(9)?,
            place_of_birth: r.get(10)?,
            citizenship: r.get(11)?,
            photo_sha256: r.get(14)?,
        },
        created_at: r.get(12)?,
        created_by: r.get(13)?,
    })
}
const HOLDER_COLS: &str = "id, pinfl, surname, given_names, patronymic, surname_cyrillic, \
    given_names_cyrillic, patronymic_cyrillic, sex, date_of_birth, place_of_birth, citizenship, \
    created_at, created_by, photo_sha256";

fn document_from_row(r: &Row<'_>) -> rusqlite::Result<Document> {
    let series: String = r.get(1)?;
    let number: u32 = r.get(2)?;
    let status: String = r.get(7)?;
    let conv = |e: Error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    };
    Ok(Document {
        id: r.get(0)?,
        number: DocumentNumber::new(&series, number).map_err(conv)?,
        holder_id: r.get(3)?,
        office: r.get(4)?,
        date_of_issue: r.get(5)?,
        date_of_expiry: r.get(6)?,
        status: DocumentStatus::parse(&status).map_err(conv)?,
    })
}
const DOCUMENT_COLS: &str =
    "id, series, number, holder_id, office, date_of_issue, date_of_expiry, status";

fn card_from_row(r: &Row<'_>) -> rusqlite::Result<Card> {
    let l: String = r.get(2)?;
    Ok(Card {
        id: r.get(0)?,
        chip_serial: r.get(1)?,
        lifecycle: CardLifecycle::parse(&l),
        holder_id: r.get(3)?,
        document_id: r.get(4)?,
        updated_at: r.get(5)?,
    })
}
const CARD_COLS: &str = "id, chip_serial, lifecycle, holder_id, document_id, updated_at";

fn cert_from_row(r: &Row<'_>) -> rusqlite::Result<Certificate> {
    let s: String = r.get(7)?;
    Ok(Certificate {
        id: r.get(0)?,
        data: NewCertificate {
            issuer_key_id: r.get(1)?,
            serial: r.get(2)?,
            subject: r.get(3)?,
            purpose: r.get(4)?,
            not_before: r.get(5)?,
            not_after: r.get(6)?,
            holder_id: r.get(10)?,
            card_id: r.get(11)?,
            job_id: r.get(12)?,
            der: r.get(13)?,
        },
        status: CertStatus::parse(&s),
        revocation_reason: r.get(8)?,
        revoked_at: r.get(9)?,
        created_at: r.get(14)?,
    })
}
pub(crate) const CERT_COLS: &str = "id, issuer_key_id, serial, subject, purpose, not_before, \
    not_after, status, revocation_reason, revoked_at, holder_id, card_id, job_id, der, created_at";

fn ca_key_from_row(r: &Row<'_>) -> rusqlite::Result<CaKey> {
    let s: String = r.get(6)?;
    Ok(CaKey {
        id: r.get(0)?,
        label: r.get(1)?,
        ca: r.get(2)?,
        role: r.get(3)?,
        public_key: r.get(4)?,
        fingerprint: r.get(5)?,
        state: CaKeyState::parse(&s),
        certificate: r.get(7)?,
        created_at: r.get(8)?,
    })
}
const CA_KEY_COLS: &str =
    "id, label, ca, role, public_key, fingerprint, state, certificate, created_at";

fn operator_from_row(r: &Row<'_>) -> rusqlite::Result<Operator> {
    let role: String = r.get(2)?;
    Ok(Operator {
        id: r.get(0)?,
        name: r.get(1)?,
        role: Role::parse(&role).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        password_hash: r.get(3)?,
        active: r.get::<_, i64>(4)? == 1,
        created_at: r.get(5)?,
        created_by: r.get(6)?,
        failed_logins: r.get::<_, i64>(7)?.try_into().unwrap_or(u32::MAX),
        locked: r.get::<_, i64>(8)? == 1,
        role_since: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
    })
}

/// Map a UNIQUE violation to a [`Error::Conflict`] with `what` as the message.
pub(crate) fn unique_conflict(e: rusqlite::Error, what: impl FnOnce() -> String) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation
            && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
        {
            return Error::Conflict(what());
        }
    }
    Error::Sqlite(e)
}

impl Tx<'_> {
    /// Enrol a holder with a first registration address. Refuses a PINFL already registered.
    pub fn insert_holder(&self, h: &NewHolder, address: &NewAddress, by: &Actor) -> Result<i64> {
        validate_holder(h)?;
        validate_address(address)?;
        let now = now_rfc3339();
        self.conn()
            .execute(
                "INSERT INTO holders (pinfl, surname, given_names, patronymic, surname_cyrillic,
                    given_names_cyrillic, patronymic_cyrillic, sex, date_of_birth, place_of_birth,
                    citizenship, created_at, created_by, photo_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    h.pinfl,
                    h.surname,
                    h.given_names,
                    h.patronymic,
                    h.surname_cyrillic,
                    h.given_names_cyrillic,
                    h.patronymic_cyrillic,
                    h.sex,
                    h.date_of_birth,
                    h.place_of_birth,
                    h.citizenship,
                    now,
                    by.operator,
                    h.photo_sha256
                ],
            )
            .map_err(|e| {
                unique_conflict(e, || format!("pinfl {} is already registered", h.pinfl))
            })?;
        let id = self.conn().last_insert_rowid();
        self.add_address(id, address, by)?;
        Ok(id)
    }

    /// Replace the personal data of holder `holder_id` (same PINFL) with `h`. The caller
    /// audits what changed (old and new value of each field) in the same transaction.
    pub fn update_holder(&self, holder_id: i64, h: &NewHolder) -> Result<()> {
        validate_holder(h)?;
        let n = self.conn().execute(
            "UPDATE holders SET surname = ?2, given_names = ?3, patronymic = ?4,
                surname_cyrillic = ?5, given_names_cyrillic = ?6, patronymic_cyrillic = ?7,
                sex = ?8, date_of_birth = ?9, place_of_birth = ?10, citizenship = ?11,
                photo_sha256 = ?12
             WHERE id = ?1 AND pinfl = ?13",
            params![
                holder_id,
                h.surname,
                h.given_names,
                h.patronymic,
                h.surname_cyrillic,
                h.given_names_cyrillic,
                h.patronymic_cyrillic,
                h.sex,
                h.date_of_birth,
                h.place_of_birth,
                h.citizenship,
                h.photo_sha256,
                h.pinfl
            ],
        )?;
        if n != 1 {
            return Err(Error::NotFound(format!(
                "holder {holder_id} with pinfl {}",
                h.pinfl
            )));
        }
        Ok(())
    }

    /// Record a new registration address; earlier ones stay as history.
    pub fn add_address(&self, holder_id: i64, a: &NewAddress, by: &Actor) -> Result<i64> {
        validate_address(a)?;
        self.conn().execute(
            "INSERT INTO addresses (holder_id, kind, region, district, street, house, apartment,
                registered_on, registered_until, recorded_at, recorded_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                holder_id,
                a.kind.as_str(),
                a.region,
                a.district,
                a.street,
                a.house,
                a.apartment,
                a.registered_on,
                a.registered_until,
                now_rfc3339(),
                by.operator
            ],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Record an issued document (status `active`) and mark its number `used`.
    /// Fails with a conflict if the holder already has an active document.
    pub fn insert_document(
        &self,
        num: DocumentNumber,
        holder_id: i64,
        office: &str,
        date_of_issue: &str,
        date_of_expiry: &str,
        by: &Actor,
    ) -> Result<i64> {
        validate::office("office", office)?;
        validate::date("date_of_issue", date_of_issue)?;
        validate::after(
            "date_of_expiry",
            date_of_expiry,
            "date_of_issue",
            date_of_issue,
        )?;
        self.mark_document_number(num, NumberState::Used, None)?;
        self.conn()
            .execute(
                "INSERT INTO documents (series, number, holder_id, office, date_of_issue, date_of_expiry, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active')",
                params![num.series_str(), num.number, holder_id, office, date_of_issue, date_of_expiry],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("holder {holder_id} already has an active document: declare it lost or revoked first")
                })
            })?;
        let id = self.conn().last_insert_rowid();
        self.conn().execute(
            "INSERT INTO document_status_history (document_id, status, reason, at, operator)
             VALUES (?1, 'active', 'issued', ?2, ?3)",
            params![id, now_rfc3339(), by.operator],
        )?;
        Ok(id)
    }

    /// Change a document's status, keeping the history.
    pub fn set_document_status(
        &self,
        num: DocumentNumber,
        status: DocumentStatus,
        reason: &str,
        by: &Actor,
    ) -> Result<()> {
        validate::text("reason", reason, 200)?;
        let id: i64 = self
            .conn()
            .query_row(
                "SELECT id FROM documents WHERE series = ?1 AND number = ?2",
                params![num.series_str(), num.number],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("document {num}")))?;
        self.conn()
            .execute(
                "UPDATE documents SET status = ?2 WHERE id = ?1",
                params![id, status.as_str()],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("document {num} cannot become active: its holder has another active document")
                })
            })?;
        self.conn().execute(
            "INSERT INTO document_status_history (document_id, status, reason, at, operator)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, status.as_str(), reason, now_rfc3339(), by.operator],
        )?;
        Ok(())
    }

    /// Record a card by chip serial (idempotent), returning its id.
    pub fn upsert_card(&self, chip_serial: &str, lifecycle: CardLifecycle) -> Result<i64> {
        validate::text("chip_serial", chip_serial, 64)?;
        self.conn().execute(
            "INSERT INTO cards (chip_serial, lifecycle, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (chip_serial) DO UPDATE SET lifecycle = excluded.lifecycle, updated_at = excluded.updated_at",
            params![chip_serial, lifecycle.as_str(), now_rfc3339()],
        )?;
        Ok(self.conn().query_row(
            "SELECT id FROM cards WHERE chip_serial = ?1",
            [chip_serial],
            |r| r.get(0),
        )?)
    }

    /// Bind a card to a holder and document and set its lifecycle.
    pub fn bind_card(
        &self,
        chip_serial: &str,
        lifecycle: CardLifecycle,
        holder_id: Option<i64>,
        document_id: Option<i64>,
    ) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE cards SET lifecycle = ?2, holder_id = ?3, document_id = ?4, updated_at = ?5
             WHERE chip_serial = ?1",
            params![
                chip_serial,
                lifecycle.as_str(),
                holder_id,
                document_id,
                now_rfc3339()
            ],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("card {chip_serial}")));
        }
        Ok(())
    }

    /// Record a certificate the CA has signed (status `issued` until its card is locked).
    pub fn insert_certificate(&self, c: &NewCertificate) -> Result<i64> {
        if c.serial.is_empty()
            || !c
                .serial
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(Error::invalid(
                "serial",
                &c.serial,
                "must be lowercase hexadecimal",
            ));
        }
        validate::text("subject", &c.subject, 1000)?;
        if c.not_after <= c.not_before {
            return Err(Error::invalid(
                "not_after",
                &c.not_after,
                format!("must be after not_before ({})", c.not_before),
            ));
        }
        if c.der.is_empty() {
            return Err(Error::invalid(
                "der",
                "",
                "certificate DER must not be empty",
            ));
        }
        // A certificate signed by a key whose CA certificate was revoked (issue 8) is refused:
        // SQLite serialises this with the revocation, so every holder certificate of a revoked
        // key is either flagged for re-issuance by the revocation or never recorded.
        let issuer: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT label, state FROM ca_keys WHERE id = ?1",
                [c.issuer_key_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((label, state)) = issuer {
            if state == "revoked" {
                return Err(Error::Conflict(format!(
                    "CA key {label} is revoked: certificates it signed are not recorded (issue under the active key)"
                )));
            }
        }
        self.conn()
            .execute(
                "INSERT INTO certificates (issuer_key_id, serial, subject, purpose, not_before, not_after,
                    status, holder_id, card_id, job_id, der, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'issued', ?7, ?8, ?9, ?10, ?11)",
                params![
                    c.issuer_key_id,
                    c.serial,
                    c.subject,
                    c.purpose,
                    c.not_before,
                    c.not_after,
                    c.holder_id,
                    c.card_id,
                    c.job_id,
                    c.der,
                    now_rfc3339()
                ],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("serial {} already issued by key {}", c.serial, c.issuer_key_id)
                })
            })?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Mark an issued certificate active (its card passed read-back and is locked).
    pub fn activate_certificate(&self, cert_id: i64, card_id: i64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE certificates SET status = 'active', card_id = ?2 WHERE id = ?1 AND status = 'issued'",
            params![cert_id, card_id],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "certificate {cert_id} is not in state issued"
            )));
        }
        Ok(())
    }

    /// Revoke a certificate with an RFC 5280 CRLReason name.
    pub fn revoke_certificate(&self, cert_id: i64, reason: &str, at: &str) -> Result<()> {
        if !REVOCATION_REASONS.contains(&reason) {
            return Err(Error::invalid(
                "revocation_reason",
                reason,
                format!(
                    "must be an RFC 5280 CRLReason: {}",
                    REVOCATION_REASONS.join(", ")
                ),
            ));
        }
        let n = self.conn().execute(
            "UPDATE certificates SET status = 'revoked', revocation_reason = ?2, revoked_at = ?3
             WHERE id = ?1 AND status IN ('issued', 'active')",
            params![cert_id, reason, at],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "certificate {cert_id} does not exist or is already revoked or expired"
            )));
        }
        Ok(())
    }

    /// After an issuing key is revoked: flag every unrevoked holder certificate it issued for
    /// re-issuance. Returns how many were flagged.
    pub fn mark_reissue_for_issuer(&self, issuer_key_id: i64) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE certificates SET reissue_required = 1
             WHERE issuer_key_id = ?1 AND holder_id IS NOT NULL AND status IN ('issued', 'active')",
            [issuer_key_id],
        )?)
    }

    /// The next CRL number of a CA key: one above the last recorded (1 for the first CRL).
    /// Call it in the transaction that then records the CRL with [`Tx::record_crl`].
    pub fn next_crl_number(&self, key_id: i64) -> Result<u64> {
        let last: Option<i64> = self.conn().query_row(
            "SELECT max(crl_number) FROM crls WHERE key_id = ?1",
            [key_id],
            |r| r.get(0),
        )?;
        Ok(last.map_or(1, |n| n as u64 + 1))
    }

    /// Record a CRL a CA key signed. Refuses a CRL number that is not above the last one.
    pub fn record_crl(
        &self,
        key_id: i64,
        crl_number: u64,
        this_update: &str,
        next_update: &str,
        der: &[u8],
    ) -> Result<()> {
        validate::date_time("this_update", this_update)?;
        validate::date_time("next_update", next_update)?;
        let next = self.next_crl_number(key_id)?;
        if crl_number < next {
            return Err(Error::Conflict(format!(
                "CRL number {crl_number} of CA key {key_id} is not above the last one ({})",
                next - 1
            )));
        }
        self.conn().execute(
            "INSERT INTO crls (key_id, crl_number, this_update, next_update, der)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key_id, crl_number as i64, this_update, next_update, der],
        )?;
        Ok(())
    }

    /// Record a new CA key (state `generated`). `public_key` is the SPKI DER.
    pub fn insert_ca_key(
        &self,
        label: &str,
        ca: &str,
        role: &str,
        public_key: &[u8],
        by: &Actor,
    ) -> Result<i64> {
        use sha2::Digest;
        validate::text("label", label, 100)?;
        validate::text("ca", ca, 40)?;
        if public_key.is_empty() {
            return Err(Error::invalid(
                "public_key",
                "",
                "SPKI DER must not be empty",
            ));
        }
        let fp = hex::encode(sha2::Sha256::digest(public_key));
        let now = now_rfc3339();
        self.conn()
            .execute(
                "INSERT INTO ca_keys (label, ca, role, public_key, fingerprint, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'generated', ?6)",
                params![label, ca, role, public_key, fp, now],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("CA key {label} or fingerprint {fp} already recorded")
                })
            })?;
        let id = self.conn().last_insert_rowid();
        self.conn().execute(
            "INSERT INTO ca_key_states (key_id, state, at, operator) VALUES (?1, 'generated', ?2, ?3)",
            params![id, now, by.operator],
        )?;
        Ok(id)
    }

    /// Attach the CA certificate for a key.
    pub fn set_ca_key_certificate(&self, key_id: i64, der: &[u8]) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE ca_keys SET certificate = ?2 WHERE id = ?1",
            params![key_id, der],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("CA key {key_id}")));
        }
        Ok(())
    }

    /// Change a CA key's state, recording who did it and who approved. At most one key per CA
    /// is `active`: retire the old key and activate the new one in the same transaction.
    pub fn set_ca_key_state(
        &self,
        key_id: i64,
        state: CaKeyState,
        by: &Actor,
        approvers: &[&str],
        note: Option<&str>,
    ) -> Result<()> {
        let n = self
            .conn()
            .execute(
                "UPDATE ca_keys SET state = ?2 WHERE id = ?1",
                params![key_id, state.as_str()],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("CA key {key_id} cannot become active while another key of its CA is active")
                })
            })?;
        if n == 0 {
            return Err(Error::NotFound(format!("CA key {key_id}")));
        }
        let approvers = serde_json::to_string(approvers).unwrap_or_else(|_| "[]".into());
        self.conn().execute(
            "INSERT INTO ca_key_states (key_id, state, at, operator, approvers, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                key_id,
                state.as_str(),
                now_rfc3339(),
                by.operator,
                approvers,
                note
            ],
        )?;
        Ok(())
    }

    /// Open a dual-control request (rotation, root rollover, CA revocation).
    pub fn create_ca_request(
        &self,
        kind: &str,
        ca: &str,
        payload: &serde_json::Value,
        quorum: u32,
        expires_at: &str,
        by: &Actor,
    ) -> Result<i64> {
        validate::text("kind", kind, 40)?;
        if quorum < 1 {
            return Err(Error::invalid("quorum", "0", "must be at least 1"));
        }
        let now = now_rfc3339();
        if expires_at <= now.as_str() {
            return Err(Error::invalid(
                "expires_at",
                expires_at,
                "must be in the future",
            ));
        }
        self.conn().execute(
            "INSERT INTO ca_requests (kind, ca, payload, quorum, requested_by, created_at, expires_at, state, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?6)",
            params![kind, ca, crate::audit::canonical_json(payload)?, quorum, by.operator, now, expires_at],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Record an approval; returns the number of distinct approvals. Refuses the requester,
    /// a second approval by the same operator, and an expired or settled request.
    pub fn approve_ca_request(&self, request_id: i64, by: &Actor) -> Result<u32> {
        let (requested_by, state, expires_at): (String, String, String) = self
            .conn()
            .query_row(
                "SELECT requested_by, state, expires_at FROM ca_requests WHERE id = ?1",
                [request_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("CA request {request_id}")))?;
        if state != "pending" {
            return Err(Error::Conflict(format!(
                "CA request {request_id} is {state}, not pending"
            )));
        }
        let now = now_rfc3339();
        if now >= expires_at {
            return Err(Error::Conflict(format!(
                "CA request {request_id} expired at {expires_at}"
            )));
        }
        if requested_by == by.operator {
            return Err(Error::Conflict(format!(
                "{} requested CA request {request_id} and cannot also approve it (dual control)",
                by.operator
            )));
        }
        // Only someone who already held their role when the request was filed may approve it:
        // a ca-admin created, enabled or given the role afterwards could be the requester's
        // own creation.
        let filed: String = self.conn().query_row(
            "SELECT created_at FROM ca_requests WHERE id = ?1",
            [request_id],
            |r| r.get(0),
        )?;
        let since: Option<Option<String>> = self
            .conn()
            .query_row(
                "SELECT role_since FROM operators WHERE name = ?1",
                [&by.operator],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(Some(since)) = since {
            if since > filed {
                return Err(Error::Conflict(format!(
                    "approver {} holds the role since {since}, after CA request {request_id} was filed at {filed}; only an operator who was already a ca-admin when a request was filed may approve it",
                    by.operator
                )));
            }
        }
        self.conn()
            .execute(
                "INSERT INTO ca_request_approvals (request_id, operator, at) VALUES (?1, ?2, ?3)",
                params![request_id, by.operator, now],
            )
            .map_err(|e| {
                unique_conflict(e, || {
                    format!("{} already approved CA request {request_id}", by.operator)
                })
            })?;
        Ok(self.conn().query_row(
            "SELECT count(*) FROM ca_request_approvals WHERE request_id = ?1",
            [request_id],
            |r| r.get(0),
        )?)
    }

    /// Settle a request: `approved`, `executed`, `refused` or `expired`.
    pub fn set_ca_request_state(&self, request_id: i64, state: &str) -> Result<()> {
        if !["approved", "executed", "refused", "expired"].contains(&state) {
            return Err(Error::invalid(
                "state",
                state,
                "must be approved, executed, refused or expired",
            ));
        }
        let n = self.conn().execute(
            "UPDATE ca_requests SET state = ?2, updated_at = ?3 WHERE id = ?1",
            params![request_id, state, now_rfc3339()],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("CA request {request_id}")));
        }
        Ok(())
    }

    /// Add an operator. `password_hash` must be an argon2 PHC string (the caller hashes).
    pub fn add_operator(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        by: Option<&Actor>,
    ) -> Result<i64> {
        validate::text("name", name, 64)?;
        if !password_hash.starts_with("$argon2") {
            // The value is not echoed: it might be a password passed by mistake.
            return Err(Error::invalid(
                "password_hash",
                "(not shown)",
                "must be an argon2 PHC string ($argon2id$...)",
            ));
        }
        self.conn()
            .execute(
                "INSERT INTO operators (name, role, password_hash, created_at, created_by, role_since)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?4)",
                params![
                    name,
                    role.as_str(),
                    password_hash,
                    now_rfc3339(),
                    by.map(|a| a.operator.as_str())
                ],
            )
            .map_err(|e| unique_conflict(e, || format!("operator {name} already exists")))?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Enable or disable an operator. Enabling restarts `role_since`: an operator enabled after
    /// a dual-control request was filed cannot approve it.
    pub fn set_operator_active(&self, name: &str, active: bool) -> Result<()> {
        let n = if active {
            self.conn().execute(
                "UPDATE operators SET active = 1, role_since = ?2 WHERE name = ?1",
                params![name, now_rfc3339()],
            )?
        } else {
            self.conn().execute(
                "UPDATE operators SET active = 0 WHERE name = ?1",
                params![name],
            )?
        };
        if n == 0 {
            return Err(Error::NotFound(format!("operator {name}")));
        }
        Ok(())
    }

    /// Give an operator another role; `role_since` restarts.
    pub fn set_operator_role(&self, name: &str, role: Role) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE operators SET role = ?2, role_since = ?3 WHERE name = ?1",
            params![name, role.as_str(), now_rfc3339()],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("operator {name}")));
        }
        Ok(())
    }

    /// Replace an operator's password hash (an argon2 PHC string; the caller hashes).
    pub fn set_operator_password(&self, name: &str, password_hash: &str) -> Result<()> {
        if !password_hash.starts_with("$argon2") {
            return Err(Error::invalid(
                "password_hash",
                "(not shown)",
                "must be an argon2 PHC string ($argon2id$...)",
            ));
        }
        let n = self.conn().execute(
            "UPDATE operators SET password_hash = ?2 WHERE name = ?1",
            params![name, password_hash],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("operator {name}")));
        }
        Ok(())
    }

    /// After a log-in attempt: count a wrong password (`wrong`), locking the account at
    /// [`MAX_FAILED_LOGINS`]. The same statement runs whether or not the password was wrong,
    /// so both take the same path. Returns the count and whether the account is locked.
    pub fn count_failed_login(&self, name: &str, wrong: bool) -> Result<(u32, bool)> {
        self.conn().execute(
            "UPDATE operators SET failed_logins = failed_logins + ?3,
                    locked = CASE WHEN failed_logins + ?3 >= ?2 THEN 1 ELSE locked END
             WHERE name = ?1",
            params![name, MAX_FAILED_LOGINS, wrong as i64],
        )?;
        let (n, locked): (i64, i64) = self
            .conn()
            .query_row(
                "SELECT failed_logins, locked FROM operators WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("operator {name}")))?;
        Ok((n.try_into().unwrap_or(u32::MAX), locked == 1))
    }

    /// A successful log-in: the count of wrong passwords restarts.
    pub fn reset_failed_logins(&self, name: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE operators SET failed_logins = 0 WHERE name = ?1 AND failed_logins <> 0",
            params![name],
        )?;
        Ok(())
    }

    /// Lift the lock (and the count of wrong passwords) of an operator.
    pub fn unlock_operator(&self, name: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE operators SET locked = 0, failed_logins = 0 WHERE name = ?1",
            params![name],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("operator {name}")));
        }
        Ok(())
    }

    /// Queue a message for another government system.
    pub fn outbox_push(&self, topic: &str, payload: &serde_json::Value) -> Result<i64> {
        validate::text("topic", topic, 100)?;
        self.conn().execute(
            "INSERT INTO outbox (topic, payload, created_at) VALUES (?1, ?2, ?3)",
            params![topic, crate::audit::canonical_json(payload)?, now_rfc3339()],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Acknowledge an outbox message (delivered).
    pub fn outbox_ack(&self, id: i64, by: &Actor) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE outbox SET acked_at = ?2, acked_by = ?3 WHERE id = ?1 AND acked_at IS NULL",
            params![id, now_rfc3339(), by.operator],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!(
                "unacknowledged outbox message {id}"
            )));
        }
        Ok(())
    }
}

/// A holder's current active card with its document and certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCard {
    pub card: Card,
    pub document: Document,
    pub certificates: Vec<Certificate>,
}

impl Registry {
    pub fn holder_by_pinfl(&self, pinfl: &str) -> Result<Option<Holder>> {
        validate::pinfl("pinfl", pinfl)?;
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {HOLDER_COLS} FROM holders WHERE pinfl = ?1"),
                [pinfl],
                holder_from_row,
            )
            .optional()?)
    }

    pub fn holder(&self, id: i64) -> Result<Option<Holder>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {HOLDER_COLS} FROM holders WHERE id = ?1"),
                [id],
                holder_from_row,
            )
            .optional()?)
    }

    /// Holders whose surname or given names (Latin or Cyrillic) start with `prefix`
    /// (case-insensitive for Latin letters), at most `limit`.
    pub fn holders_by_name(&self, prefix: &str, limit: u32) -> Result<Vec<Holder>> {
        validate::text("name", prefix, 100)?;
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let mut st = self.conn.prepare(&format!(
            "SELECT {HOLDER_COLS} FROM holders
             WHERE surname LIKE ?1 ESCAPE '\\' OR given_names LIKE ?1 ESCAPE '\\'
                OR surname_cyrillic LIKE ?1 ESCAPE '\\' OR given_names_cyrillic LIKE ?1 ESCAPE '\\'
             ORDER BY surname, given_names, id LIMIT ?2"
        ))?;
        let rows = st.query_map(params![pattern, limit], holder_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every registration address of a holder, oldest first.
    pub fn addresses(&self, holder_id: i64) -> Result<Vec<Address>> {
        let mut st = self.conn.prepare(
            "SELECT id, holder_id, kind, region, district, street, house, apartment, registered_on,
                    registered_until, recorded_at, recorded_by
             FROM addresses WHERE holder_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([holder_id], |r| {
            let kind: String = r.get(2)?;
            Ok(Address {
                id: r.get(0)?,
                holder_id: r.get(1)?,
                data: NewAddress {
                    kind: AddressKind::parse(&kind)?,
                    region: r.get(3)?,
                    district: r.get(4)?,
                    street: r.get(5)?,
                    house: r.get(6)?,
                    apartment: r.get(7)?,
                    registered_on: r.get(8)?,
                    registered_until: r.get(9)?,
                },
                recorded_at: r.get(10)?,
                recorded_by: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Document by series + number.
    pub fn document(&self, num: DocumentNumber) -> Result<Option<Document>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {DOCUMENT_COLS} FROM documents WHERE series = ?1 AND number = ?2"
            ))?
            .query_row(params![num.series_str(), num.number], document_from_row)
            .optional()?)
    }

    pub fn documents_of_holder(&self, holder_id: i64) -> Result<Vec<Document>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {DOCUMENT_COLS} FROM documents WHERE holder_id = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([holder_id], document_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn document_history(&self, document_id: i64) -> Result<Vec<StatusChange>> {
        let mut st = self.conn.prepare(
            "SELECT status, reason, at, operator FROM document_status_history WHERE document_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([document_id], |r| {
            Ok(StatusChange {
                status: r.get(0)?,
                reason: r.get(1)?,
                at: r.get(2)?,
                operator: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn card(&self, chip_serial: &str) -> Result<Option<Card>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CARD_COLS} FROM cards WHERE chip_serial = ?1"),
                [chip_serial],
                card_from_row,
            )
            .optional()?)
    }

    /// The holder's current active card: a LOCKED card bound to the holder's active document.
    pub fn active_card(&self, holder_id: i64) -> Result<Option<ActiveCard>> {
        let doc = self
            .conn
            .query_row(
                &format!(
                    "SELECT {DOCUMENT_COLS} FROM documents WHERE holder_id = ?1 AND status = 'active'"
                ),
                [holder_id],
                document_from_row,
            )
            .optional()?;
        let Some(document) = doc else { return Ok(None) };
        let card = self
            .conn
            .query_row(
                &format!(
                    "SELECT {CARD_COLS} FROM cards WHERE document_id = ?1 AND lifecycle = 'locked'"
                ),
                [document.id],
                card_from_row,
            )
            .optional()?;
        let Some(card) = card else { return Ok(None) };
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE card_id = ?1 ORDER BY id"
        ))?;
        let certificates = st
            .query_map([card.id], cert_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(Some(ActiveCard {
            card,
            document,
            certificates,
        }))
    }

    /// Certificates with this serial (lowercase hex), one per issuer key at most.
    pub fn certificates_by_serial(&self, serial: &str) -> Result<Vec<Certificate>> {
        let serial = serial.trim_start_matches("0x").to_ascii_lowercase();
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE serial = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([serial], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Certificates issued within a job (for recovery).
    pub fn certificates_of_job(&self, job_id: i64) -> Result<Vec<Certificate>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE job_id = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([job_id], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revoked, unexpired-at-`now` certificates of one issuer key (CRL input).
    pub fn revoked_certificates(&self, issuer_key_id: i64) -> Result<Vec<Certificate>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE issuer_key_id = ?1 AND status = 'revoked' ORDER BY id"
        ))?;
        let rows = st.query_map([issuer_key_id], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Certificates recorded with this purpose (e.g. `link-old-with-new`), oldest first.
    pub fn certificates_with_purpose(&self, purpose: &str) -> Result<Vec<Certificate>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE purpose = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([purpose], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Holder certificates flagged for re-issuance (emergency CA revocation), oldest first.
    pub fn certificates_needing_reissue(&self) -> Result<Vec<Certificate>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLS} FROM certificates WHERE reissue_required = 1 ORDER BY id"
        ))?;
        let rows = st.query_map([], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn ca_key(&self, id: i64) -> Result<Option<CaKey>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CA_KEY_COLS} FROM ca_keys WHERE id = ?1"),
                [id],
                ca_key_from_row,
            )
            .optional()?)
    }

    /// A CA key by its HSM label.
    pub fn ca_key_by_label(&self, label: &str) -> Result<Option<CaKey>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CA_KEY_COLS} FROM ca_keys WHERE label = ?1"),
                [label],
                ca_key_from_row,
            )
            .optional()?)
    }

    /// The latest CRL recorded for a CA key: (CRL number, DER).
    pub fn latest_crl(&self, key_id: i64) -> Result<Option<(u64, Vec<u8>)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT crl_number, der FROM crls WHERE key_id = ?1 ORDER BY crl_number DESC LIMIT 1",
                [key_id],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
    }

    /// The active key of a CA, if any.
    pub fn active_ca_key(&self, ca: &str) -> Result<Option<CaKey>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CA_KEY_COLS} FROM ca_keys WHERE ca = ?1 AND state = 'active'"),
                [ca],
                ca_key_from_row,
            )
            .optional()?)
    }

    pub fn ca_keys(&self, ca: &str) -> Result<Vec<CaKey>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CA_KEY_COLS} FROM ca_keys WHERE ca = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([ca], ca_key_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn ca_key_history(&self, key_id: i64) -> Result<Vec<CaKeyStateChange>> {
        let mut st = self.conn.prepare(
            "SELECT state, at, operator, approvers, note FROM ca_key_states WHERE key_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([key_id], |r| {
            let a: String = r.get(3)?;
            Ok(CaKeyStateChange {
                state: r.get(0)?,
                at: r.get(1)?,
                operator: r.get(2)?,
                approvers: serde_json::from_str(&a).unwrap_or_default(),
                note: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn ca_request(&self, id: i64) -> Result<Option<CaRequest>> {
        let req = self
            .conn
            .query_row(
                "SELECT id, kind, ca, payload, quorum, requested_by, created_at, expires_at, state
                 FROM ca_requests WHERE id = ?1",
                [id],
                |r| {
                    Ok(CaRequest {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        ca: r.get(2)?,
                        payload: r.get(3)?,
                        quorum: r.get(4)?,
                        requested_by: r.get(5)?,
                        created_at: r.get(6)?,
                        expires_at: r.get(7)?,
                        state: r.get(8)?,
                        approvals: Vec::new(),
                    })
                },
            )
            .optional()?;
        let Some(mut req) = req else { return Ok(None) };
        let mut st = self.conn.prepare(
            "SELECT operator FROM ca_request_approvals WHERE request_id = ?1 ORDER BY at, operator",
        )?;
        req.approvals = st
            .query_map([id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(Some(req))
    }

    pub fn operator(&self, name: &str) -> Result<Option<Operator>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, role, password_hash, active, created_at, created_by, failed_logins, locked, role_since FROM operators WHERE name = ?1",
                [name],
                operator_from_row,
            )
            .optional()?)
    }

    pub fn operators(&self) -> Result<Vec<Operator>> {
        let mut st = self.conn.prepare(
            "SELECT id, name, role, password_hash, active, created_at, created_by, failed_logins, locked, role_since FROM operators ORDER BY id",
        )?;
        let rows = st.query_map([], operator_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Messages not yet acknowledged, oldest first.
    pub fn outbox_pending(&self) -> Result<Vec<OutboxMessage>> {
        let mut st = self.conn.prepare(
            "SELECT id, topic, payload, created_at, acked_at, acked_by FROM outbox WHERE acked_at IS NULL ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(OutboxMessage {
                id: r.get(0)?,
                topic: r.get(1)?,
                payload: r.get(2)?,
                created_at: r.get(3)?,
                acked_at: r.get(4)?,
                acked_by: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::{actor, temp_registry};

    pub fn holder(pinfl: &str) -> NewHolder {
        NewHolder {
            pinfl: pinfl.into(),
            surname: "Karimova".into(),
            given_names: "Dilnoza".into(),
            patronymic: Some("Rustamovna".into()),
            surname_cyrillic: Some("Каримова".into()),
            given_names_cyrillic: Some("Дилноза".into()),
            patronymic_cyrillic: None,
            sex: "F".into(),
            date_of_birth: "1985-02-14".into(),
            place_of_birth: "Toshkent".into(),
            citizenship: "UZB".into(),
            photo_sha256: None,
        }
    }

    pub fn address() -> NewAddress {
        NewAddress {
            kind: AddressKind::Permanent,
            region: "Toshkent shahri".into(),
            district: "Yunusobod".into(),
            street: "Amir Temur".into(),
            house: "12".into(),
            apartment: Some("5".into()),
            registered_on: "2010-05-01".into(),
            registered_until: None,
        }
    }

    fn count(reg: &Registry, table: &str) -> i64 {
        reg.connection()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn bad_holder_input_is_refused_naming_field_and_rule_and_nothing_is_written() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        let cases: Vec<(NewHolder, NewAddress, &str, &str)> = vec![
            (
                holder("3140585000001"),
                address(),
                "pinfl",
                "exactly 14 digits",
            ),
            (
                NewHolder {
                    date_of_birth: "1985-02-30".into(),
                    ..holder("31405850000012")
                },
                address(),
                "date_of_birth",
                "not a calendar date",
            ),
            (
                holder("31405850000012"),
                NewAddress {
                    kind: AddressKind::Temporary,
                    registered_until: None,
                    ..address()
                },
                "address.registered_until",
                "temporary address needs an end date",
            ),
            (
                holder("31405850000012"),
                NewAddress {
                    kind: AddressKind::Temporary,
                    registered_until: Some("2009-01-01".into()),
                    ..address()
                },
                "address.registered_until",
                "must be after address.registered_on",
            ),
            (
                NewHolder {
                    citizenship: "UZ".into(),
                    photo_sha256: None,
                    ..holder("31405850000012")
                },
                address(),
                "citizenship",
                "alpha-3",
            ),
        ];
        for (h, ad, field, rule) in cases {
            let e = reg.write(|tx| tx.insert_holder(&h, &ad, &a)).unwrap_err();
            let msg = e.to_string();
            assert!(
                matches!(&e, Error::Invalid { field: f, .. } if f == field),
                "{msg}"
            );
            assert!(msg.contains(field) && msg.contains(rule), "{msg}");
            assert_eq!(count(&reg, "holders"), 0, "nothing written for {field}");
            assert_eq!(count(&reg, "addresses"), 0);
        }
    }

    #[test]
    fn a_bad_address_rolls_back_the_holder_written_before_it_in_the_same_transaction() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        let e = reg
            .write(|tx| {
                let id = tx.insert_holder(&holder("31405850000012"), &address(), &a)?;
                tx.add_address(
                    id,
                    &NewAddress {
                        kind: AddressKind::Temporary,
                        registered_until: None,
                        ..address()
                    },
                    &a,
                )
            })
            .unwrap_err();
        assert!(e.to_string().contains("registered_until"));
        assert_eq!(count(&reg, "holders"), 0);
        assert_eq!(count(&reg, "addresses"), 0);
    }

    #[test]
    fn addresses_keep_history_and_cannot_be_overwritten() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        let id = reg
            .write(|tx| tx.insert_holder(&holder("31405850000012"), &address(), &a))
            .unwrap();
        let temp = NewAddress {
            kind: AddressKind::Temporary,
            registered_on: "2024-01-01".into(),
            registered_until: Some("2025-01-01".into()),
            ..address()
        };
        reg.write(|tx| tx.add_address(id, &temp, &a)).unwrap();
        let hist = reg.addresses(id).unwrap();
        assert_eq!(hist.len(), 2);
        assert_eq!(hist[1].data, temp);
        assert!(reg
            .connection()
            .execute("UPDATE addresses SET street = 'x'", [])
            .is_err());
        assert!(reg
            .connection()
            .execute("DELETE FROM addresses", [])
            .is_err());
    }

    #[test]
    fn holders_are_found_by_pinfl_and_by_name_and_duplicates_conflict() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        reg.write(|tx| tx.insert_holder(&holder("31405850000012"), &address(), &a))
            .unwrap();
        let e = reg
            .write(|tx| tx.insert_holder(&holder("31405850000012"), &address(), &a))
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        let h = reg.holder_by_pinfl("31405850000012").unwrap().unwrap();
        assert_eq!(h.data, holder("31405850000012"));
        assert_eq!(reg.holders_by_name("karim", 10).unwrap().len(), 1);
        assert_eq!(reg.holders_by_name("Карим", 10).unwrap().len(), 1);
        assert!(reg.holders_by_name("Zz", 10).unwrap().is_empty());
    }

    #[test]
    fn dual_control_refuses_self_approval_double_approval_and_counts_distinct_admins() {
        let (_d, mut reg) = temp_registry();
        let a = Actor::new("admin-a", "ca-admin", "S1");
        let b = Actor::new("admin-b", "ca-admin", "S1");
        let exp = crate::format_time(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
        let id = reg
            .write(|tx| {
                tx.create_ca_request("rotate", "esign", &serde_json::json!({}), 2, &exp, &a)
            })
            .unwrap();
        assert!(matches!(
            reg.write(|tx| tx.approve_ca_request(id, &a)),
            Err(Error::Conflict(_))
        ));
        assert_eq!(reg.write(|tx| tx.approve_ca_request(id, &b)).unwrap(), 1);
        assert!(matches!(
            reg.write(|tx| tx.approve_ca_request(id, &b)),
            Err(Error::Conflict(_))
        ));
        let r = reg.ca_request(id).unwrap().unwrap();
        assert_eq!(r.approvals, vec!["admin-b".to_string()]);
    }

    #[test]
    fn only_one_active_key_per_ca_and_state_history_names_approvers() {
        let (_d, mut reg) = temp_registry();
        let a = Actor::new("admin-a", "ca-admin", "S1");
        let (k1, k2) = reg
            .write(|tx| {
                let k1 = tx.insert_ca_key("esign-1", "esign", "issuing", b"spki-1", &a)?;
                let k2 = tx.insert_ca_key("esign-2", "esign", "issuing", b"spki-2", &a)?;
                tx.set_ca_key_state(k1, CaKeyState::Active, &a, &["admin-b"], None)?;
                Ok((k1, k2))
            })
            .unwrap();
        let e = reg
            .write(|tx| tx.set_ca_key_state(k2, CaKeyState::Active, &a, &["admin-b"], None))
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        reg.write(|tx| {
            tx.set_ca_key_state(k1, CaKeyState::Retired, &a, &["admin-b"], Some("rollover"))?;
            tx.set_ca_key_state(k2, CaKeyState::Active, &a, &["admin-b"], Some("rollover"))
        })
        .unwrap();
        assert_eq!(reg.active_ca_key("esign").unwrap().unwrap().id, k2);
        let h = reg.ca_key_history(k1).unwrap();
        assert_eq!(
            h.iter().map(|c| c.state.as_str()).collect::<Vec<_>>(),
            ["generated", "active", "retired"]
        );
        assert_eq!(h[2].approvers, vec!["admin-b".to_string()]);
    }

    #[test]
    fn operators_store_argon2_hashes_only() {
        let (_d, mut reg) = temp_registry();
        let e = reg
            .write(|tx| tx.add_operator("bob", Role::Clerk, "hunter2", None))
            .unwrap_err();
        assert!(
            !e.to_string().contains("hunter2"),
            "the value is not echoed"
        );
        reg.write(|tx| {
            tx.add_operator(
                "bob",
                Role::Clerk,
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
                None,
            )
        })
        .unwrap();
        assert_eq!(reg.operator("bob").unwrap().unwrap().role, Role::Clerk);
    }

    #[test]
    fn crl_numbers_rise_per_key_and_are_never_reused() {
        let (_d, mut reg) = temp_registry();
        let a = actor();
        let (k1, k2) = reg
            .write(|tx| {
                let k1 = tx.insert_ca_key("esign-1", "esign", "issuing", b"spki-1", &a)?;
                let k2 = tx.insert_ca_key("esign-2", "esign", "issuing", b"spki-2", &a)?;
                Ok((k1, k2))
            })
            .unwrap();
        let t = ("2026-11-25T10:00:00Z", "2026-11-26T10:00:00Z");
        reg.write(|tx| {
            assert_eq!(tx.next_crl_number(k1)?, 1);
            tx.record_crl(k1, 1, t.0, t.1, b"crl-1")?;
            assert_eq!(tx.next_crl_number(k1)?, 2);
            tx.record_crl(k1, 2, t.0, t.1, b"crl-2")?;
            assert_eq!(tx.next_crl_number(k2)?, 1, "each key has its own numbering");
            Ok(())
        })
        .unwrap();
        let again = reg.write(|tx| tx.record_crl(k1, 2, t.0, t.1, b"again"));
        assert!(
            matches!(again, Err(Error::Conflict(m)) if m.contains("not above the last one (2)"))
        );
        let bad = reg.write(|tx| tx.record_crl(k1, 3, "yesterday", t.1, b"x"));
        assert!(matches!(bad, Err(Error::Invalid { field, .. }) if field == "this_update"));
        assert_eq!(reg.latest_crl(k1).unwrap(), Some((2, b"crl-2".to_vec())));
        assert_eq!(
            reg.ca_key_by_label("esign-2").unwrap().map(|k| k.id),
            Some(k2)
        );
        assert_eq!(reg.ca_key_by_label("nope").unwrap(), None);
    }

    const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0f1dOTtbq4dAX8LSq0vDr4g3Jp5bd6HsTWkm1nqvDqo";

    #[test]
    fn an_approver_who_became_a_ca_admin_after_the_request_cannot_approve_it() {
        let (_d, mut reg) = temp_registry();
        let a = Actor::new("alice", "ca-admin", "S1");
        let b = Actor::new("bob", "ca-admin", "S1");
        let m = Actor::new("mallory", "ca-admin", "S1");
        reg.write(|tx| tx.add_operator("alice", Role::CaAdmin, PHC, None))
            .unwrap();
        reg.write(|tx| tx.add_operator("bob", Role::CaAdmin, PHC, None))
            .unwrap();
        let exp = crate::rotation::time_in(600);
        let id = reg
            .write(|tx| {
                tx.create_ca_request("rotate", "esign", &serde_json::json!({}), 2, &exp, &a)
            })
            .unwrap();
        reg.write(|tx| tx.add_operator("mallory", Role::CaAdmin, PHC, Some(&a)))
            .unwrap();
        let e = reg.write(|tx| tx.approve_ca_request(id, &m)).unwrap_err();
        assert!(
            matches!(&e, Error::Conflict(w) if w.contains("approver mallory holds the role since")
                && w.contains(&format!("after CA request {id} was filed"))),
            "{e}"
        );
        assert_eq!(reg.write(|tx| tx.approve_ca_request(id, &b)).unwrap(), 1);
        // Re-enabling bob restarts his role's age: a later request's approval is refused too.
        reg.write(|tx| tx.set_operator_active("bob", false))
            .unwrap();
        reg.write(|tx| tx.set_operator_active("bob", true)).unwrap();
        let id2 = reg
            .write(|tx| tx.create_ca_request("rotate", "root", &serde_json::json!({}), 1, &exp, &a))
            .unwrap();
        assert_eq!(reg.write(|tx| tx.approve_ca_request(id2, &b)).unwrap(), 1);
        reg.write(|tx| tx.set_operator_role("bob", Role::Clerk))
            .unwrap();
        reg.write(|tx| tx.set_operator_role("bob", Role::CaAdmin))
            .unwrap();
        let id3 = reg
            .write(|tx| {
                tx.create_ca_request("revoke-ca", "esign", &serde_json::json!({}), 1, &exp, &a)
            })
            .unwrap();
        assert_eq!(reg.write(|tx| tx.approve_ca_request(id3, &b)).unwrap(), 1);
        assert!(reg.write(|tx| tx.approve_ca_request(id, &m)).is_err());
    }

    #[test]
    fn five_wrong_passwords_lock_and_only_unlock_lifts_the_lock() {
        let (_d, mut reg) = temp_registry();
        reg.write(|tx| tx.add_operator("clerk", Role::Clerk, PHC, None))
            .unwrap();
        // A right password counts nothing.
        assert_eq!(
            reg.write(|tx| tx.count_failed_login("clerk", false))
                .unwrap(),
            (0, false)
        );
        for n in 1..MAX_FAILED_LOGINS {
            assert_eq!(
                reg.write(|tx| tx.count_failed_login("clerk", true))
                    .unwrap(),
                (n, false)
            );
        }
        assert_eq!(
            reg.write(|tx| tx.count_failed_login("clerk", true))
                .unwrap(),
            (MAX_FAILED_LOGINS, true)
        );
        // A successful log-in's reset of the count does not unlock.
        reg.write(|tx| tx.reset_failed_logins("clerk")).unwrap();
        let op = reg.operator("clerk").unwrap().unwrap();
        assert!(op.locked && op.failed_logins == 0);
        reg.write(|tx| tx.unlock_operator("clerk")).unwrap();
        let op = reg.operator("clerk").unwrap().unwrap();
        assert!(!op.locked && op.failed_logins == 0);
    }
}
