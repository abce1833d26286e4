//! Holders and their registration addresses (an address is never overwritten: a new one is
//! added with its dates).

use rusqlite::{params, OptionalExtension, Row};

use super::unique_conflict;
use crate::{now_rfc3339, validate, Actor, Error, Registry, Result, Tx};

/// Holder as given for enrolment (also the holder of the centre's `reserve` request).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
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

impl NewHolder {
    /// The rules the registry applies before storing a holder (each refusal names the field).
    pub fn validate(&self) -> Result<()> {
        validate_holder(self)
    }
}

impl NewAddress {
    /// The rules the registry applies before storing an address (each refusal names the field).
    pub fn validate(&self) -> Result<()> {
        validate_address(self)
    }
}

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
}
