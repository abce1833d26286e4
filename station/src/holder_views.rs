//! The views of a holder that the layers below take, made in one place from the typed
//! [`ValidHolder`]: the registry's holder and address records, the card's MRZ and LDS views
//! (ICAO 9303 Part 5 and Part 10) and Printed Information (NIST SP 800-73-4 Table 11), the
//! certificate subject (RFC 5280 §4.1.2.6); and the MRZ view of a registry record read back.

use personalization::lds::LdsHolder;
use personalization::mrz::{MrzDocument, MrzSex};

use personalization::executor::HolderCardData;
use profiles::document::DocumentProfile;
use sha2::{Digest, Sha256};
use time::Date;

use crate::error::StationError;
use crate::holder::{AddressKind, Sex, ValidHolder};

/// A date as the registry stores it: `YYYY-MM-DD`.
fn iso_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

impl Sex {
    /// `M` or `F`, as the holder file, the registry and the MRZ write it.
    pub fn code(self) -> &'static str {
        match self {
            Sex::M => "M",
            Sex::F => "F",
        }
    }
}

impl TryFrom<&ValidHolder> for registry::NewHolder {
    type Error = StationError;

    /// The registry's holder record, with the SHA-256 of the photo file (read here).
    fn try_from(h: &ValidHolder) -> Result<Self, StationError> {
        let r = &h.record;
        let photo_sha256 = match &h.photo_path {
            Some(p) => {
                let bytes = std::fs::read(p).map_err(|e| StationError::io(p, e))?;
                Some(hex::encode(Sha256::digest(&bytes)))
            }
            None => None,
        };
        Ok(registry::NewHolder {
            pinfl: r.pinfl.clone(),
            surname: r.surname.clone(),
            given_names: r.given_names.clone(),
            patronymic: r.patronymic.clone(),
            surname_cyrillic: r.surname_cyrillic.clone(),
            given_names_cyrillic: r.given_names_cyrillic.clone(),
            patronymic_cyrillic: r.patronymic_cyrillic.clone(),
            sex: h.sex.code().to_string(),
            date_of_birth: iso_date(h.date_of_birth),
            place_of_birth: r.place_of_birth.clone(),
            citizenship: r.citizenship.clone(),
            photo_sha256,
        })
    }
}

impl From<&ValidHolder> for registry::NewAddress {
    fn from(h: &ValidHolder) -> Self {
        let a = &h.record.address;
        registry::NewAddress {
            kind: match h.address_kind {
                AddressKind::Permanent => registry::AddressKind::Permanent,
                AddressKind::Temporary => registry::AddressKind::Temporary,
            },
            region: a.region.clone(),
            district: a.district.clone(),
            street: a.street.clone(),
            house: a.house.clone(),
            apartment: a.apartment.clone(),
            registered_on: iso_date(h.registered_on),
            registered_until: h.registered_until.map(iso_date),
        }
    }
}

/// What the chip's Printed Information and CHUID carry of a holder's document: the printed
/// name, the document number, the expiry.
pub fn card_data(holder: &ValidHolder, document: &str, expiry: Date) -> HolderCardData {
    HolderCardData {
        name: printed_name(holder),
        document_number: document.to_string(),
        expiry,
    }
}

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

/// The subject of a holder certificate: PINFL, names, "given names surname" as the common
/// name, and `country` (ISO 3166-1 alpha-2: the document profile's issuing country).
pub fn certificate_subject(h: &ValidHolder, country: &str) -> ca::HolderSubject {
    let r = &h.record;
    // The centre names the subjects of the certificates it issues the same way.
    ca::holder_subject(&r.pinfl, &r.surname, &r.given_names, country)
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
/// `expiry`, issued to `holder` by the issuing state of `profile`.
pub fn mrz_lines(
    holder: &personalization::mrz::MrzHolder<'_>,
    profile: &DocumentProfile,
    document: &str,
    expiry: time::Date,
) -> Result<[String; 3], StationError> {
    personalization::mrz::holder_td1(
        holder,
        &MrzDocument {
            issuing_state: &profile.issuing_state,
            number: document,
            expiry,
        },
    )
    .map_err(lift)
}

/// [`mrz_lines`] of a holder kept as text (see [`MrzRecord`]).
pub fn record_mrz_lines(
    holder: &MrzRecord<'_>,
    profile: &DocumentProfile,
    document: &str,
    expiry: time::Date,
) -> Result<[String; 3], StationError> {
    mrz_lines(&holder.typed()?, profile, document, expiry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn fixture() -> ValidHolder {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/holders/holder-01.json");
        crate::holder::load(
            &p,
            &crate::holder::ValidationPolicy::new(date!(2026 - 01 - 01)),
        )
        .expect("the fixture holder is valid")
    }

    #[test]
    fn the_registry_views_carry_the_record_as_enrolled() {
        let h = fixture();
        let n = registry::NewHolder::try_from(&h).expect("holder view");
        assert_eq!(n.sex, h.record.sex);
        assert_eq!(n.date_of_birth, h.record.date_of_birth);
        assert_eq!(n.photo_sha256.is_some(), h.photo_path.is_some());
        let a = registry::NewAddress::from(&h);
        assert_eq!(a.registered_on, h.record.address.registered_on);
        assert_eq!(a.registered_until, h.record.address.registered_until);
    }

    #[test]
    fn the_mrz_of_a_valid_holder_and_of_its_registry_record_agree() {
        let h = fixture();
        let n = registry::NewHolder::try_from(&h).expect("holder view");
        let expiry = date!(2036 - 01 - 01);
        let set = profiles::builtin().expect("built-in profiles");
        let doc = set.document(profiles::DEFAULT_DOCUMENT).expect("id-card");
        let typed = mrz_lines(&(&h).into(), doc, "AA0000001", expiry).expect("typed");
        let read_back = record_mrz_lines(&MrzRecord::from_registry(&n), doc, "AA0000001", expiry)
            .expect("registry record");
        assert_eq!(typed, read_back);
        assert!(typed[0].starts_with("I<UZBAA0000001"), "{typed:?}");
    }
}
