//! The views of a holder that the layers below take, made in one place: the card's MRZ and
//! LDS views (ICAO 9303 Part 5 and Part 10) from a validated holder, typed, and from a
//! registry record read back; the certificate subject (RFC 5280 §4.1.2.6).

use personalization::lds::LdsHolder;
use personalization::mrz::{MrzDocument, MrzSex};

use crate::error::StationError;
use crate::holder::{AddressKind, Sex, ValidHolder};

/// Issuing state of every document (ICAO 9303 Part 3 §5: Uzbekistan).
pub const ISSUING_STATE: &str = "UZB";

impl From<Sex> for MrzSex {
    fn from(s: Sex) -> Self {
        match s {
            Sex::M => MrzSex::Male,
            Sex::F => MrzSex::Female,
        }
    }
}

impl<'a> From<&'a ValidHolder> for personalization::mrz::MrzHolder<'a> {
    fn from(h: &'a ValidHolder) -> Self {
        let r = &h.record;
        Self {
            personal_number: &r.pinfl,
            surname: &r.surname,
            given_names: &r.given_names,
            surname_cyrillic: r.surname_cyrillic.as_deref(),
            given_names_cyrillic: r.given_names_cyrillic.as_deref(),
            sex: h.sex.into(),
            date_of_birth: h.date_of_birth,
            nationality: &r.citizenship,
        }
    }
}

impl<'a> From<&'a ValidHolder> for LdsHolder<'a> {
    /// DG11's permanent address is the registered address joined with ", " (region, district,
    /// street, house, apartment); a holder with only a temporary registration has none.
    fn from(h: &'a ValidHolder) -> Self {
        let r = &h.record;
        let a = &r.address;
        let permanent_address = match h.address_kind {
            AddressKind::Permanent => Some(
                [
                    Some(a.region.as_str()),
                    Some(a.district.as_str()),
                    Some(a.street.as_str()),
                    Some(a.house.as_str()),
                    a.apartment.as_deref(),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            ),
            AddressKind::Temporary => None,
        };
        Self {
            mrz: h.into(),
            patronymic: r.patronymic.as_deref(),
            place_of_birth: &r.place_of_birth,
            permanent_address,
        }
    }
}

impl From<&ValidHolder> for ca::HolderSubject {
    /// The subject of a holder certificate: PINFL, names, "given names surname" as the common
    /// name, the country of [`ISSUING_STATE`] as its ISO 3166-1 alpha-2 code.
    fn from(h: &ValidHolder) -> Self {
        let r = &h.record;
        ca::HolderSubject {
            pinfl: r.pinfl.clone(),
            surname: r.surname.clone(),
            given_names: r.given_names.clone(),
            common_name: format!("{} {}", r.given_names, r.surname),
            country: "UZ".into(),
        }
    }
}

/// The holder's name as printed in the chip's Printed Information: "SURNAME Given Names".
pub fn printed_name(holder: &ValidHolder) -> String {
    format!("{} {}", holder.record.surname, holder.record.given_names)
}

/// A personalization error about the MRZ or LDS content as the station reports it.
pub(crate) fn lift(e: personalization::Error) -> StationError {
    match e {
        personalization::Error::Invalid { field, rule } => StationError::Invalid { field, rule },
        e => StationError::Other(e.to_string()),
    }
}

/// The MRZ fields of a holder kept as text (a registry record, or a holder file's record
/// before validation): the date of birth and sex are checked as they are read.
pub struct MrzRecord<'a> {
    pub pinfl: &'a str,
    pub surname: &'a str,
    pub given_names: &'a str,
    pub surname_cyrillic: Option<&'a str>,
    pub given_names_cyrillic: Option<&'a str>,
    /// "M" or "F".
    pub sex: &'a str,
    /// YYYY-MM-DD.
    pub date_of_birth: &'a str,
    /// ISO 3166-1 alpha-3 (XXA = stateless).
    pub citizenship: &'a str,
}

impl<'a> MrzRecord<'a> {
    pub fn from_registry(h: &'a registry::NewHolder) -> Self {
        Self {
            pinfl: &h.pinfl,
            surname: &h.surname,
            given_names: &h.given_names,
            surname_cyrillic: h.surname_cyrillic.as_deref(),
            given_names_cyrillic: h.given_names_cyrillic.as_deref(),
            sex: &h.sex,
            date_of_birth: &h.date_of_birth,
            citizenship: &h.citizenship,
        }
    }

    pub fn from_record(r: &'a crate::holder::HolderRecord) -> Self {
        Self {
            pinfl: &r.pinfl,
            surname: &r.surname,
            given_names: &r.given_names,
            surname_cyrillic: r.surname_cyrillic.as_deref(),
            given_names_cyrillic: r.given_names_cyrillic.as_deref(),
            sex: &r.sex,
            date_of_birth: &r.date_of_birth,
            citizenship: &r.citizenship,
        }
    }

    /// The typed view: the date of birth must be a calendar date, the sex M or F.
    pub fn typed(&self) -> Result<personalization::mrz::MrzHolder<'a>, StationError> {
        let date_of_birth = crate::holder::parse_date(self.date_of_birth)
            .map_err(|rule| StationError::invalid("date_of_birth", rule))?;
        let sex = match self.sex {
            "M" => MrzSex::Male,
            "F" => MrzSex::Female,
            other => {
                return Err(StationError::invalid(
                    "sex",
                    format!("{other:?} must be M or F"),
                ))
            }
        };
        Ok(personalization::mrz::MrzHolder {
            personal_number: self.pinfl,
            surname: self.surname,
            given_names: self.given_names,
            surname_cyrillic: self.surname_cyrillic,
            given_names_cyrillic: self.given_names_cyrillic,
            sex,
            date_of_birth,
            nationality: self.citizenship,
        })
    }
}

/// The TD1 MRZ (ICAO 9303 Part 5) of document `document` (series + number) expiring on
/// `expiry`, issued by [`ISSUING_STATE`] to `holder`.
pub fn mrz_lines(
    holder: &personalization::mrz::MrzHolder<'_>,
    document: &str,
    expiry: time::Date,
) -> Result<[String; 3], StationError> {
    personalization::mrz::holder_td1(
        holder,
        &MrzDocument {
            issuing_state: ISSUING_STATE,
            number: document,
            expiry,
        },
    )
    .map_err(lift)
}

/// [`mrz_lines`] of a holder kept as text (see [`MrzRecord`]).
pub fn record_mrz_lines(
    holder: &MrzRecord<'_>,
    document: &str,
    expiry: time::Date,
) -> Result<[String; 3], StationError> {
    mrz_lines(&holder.typed()?, document, expiry)
}
