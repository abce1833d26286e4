//! The clerk's holder form: every field of the holder record (issue #6 input format) as text,
//! validated as the clerk types by the station's own [`station::holder::validate`], so the GUI
//! shows the CLI's rules under the field they concern. Dates are typed DD.MM.YYYY (a mask) and
//! given to the station as `YYYY-MM-DD`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use station::holder::{AddressRecord, FieldError, HolderRecord, ValidHolder, ValidationPolicy};

/// The form's text fields, in record order. Keys are the record's field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HolderForm {
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    pub patronymic: String,
    pub surname_cyrillic: String,
    pub given_names_cyrillic: String,
    pub patronymic_cyrillic: String,
    pub sex: String,
    pub date_of_birth: String,
    pub place_of_birth: String,
    pub citizenship: String,
    pub address_kind: String,
    pub region: String,
    pub district: String,
    pub street: String,
    pub house: String,
    pub apartment: String,
    pub registered_on: String,
    pub registered_until: String,
    /// Absolute path of the loaded photo (JPEG).
    pub photo: Option<PathBuf>,
    /// Fields the clerk has edited: only their errors are shown until Issue is pressed.
    pub touched: BTreeSet<String>,
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| s.to_string())
}

/// A date as typed (DD.MM.YYYY) for the record (`YYYY-MM-DD`); text of another shape goes to
/// the station as it is, and the form reports its shape ([`HolderForm::date_shape_errors`]).
fn iso(typed: &str) -> String {
    crate::i18n::iso_from_typed(typed).unwrap_or_else(|| typed.to_owned())
}

impl HolderForm {
    /// Date fields whose text is not DD.MM.YYYY (empty ones are the station's to judge).
    pub fn date_shape_errors(&self) -> Vec<&'static str> {
        FIELDS
            .iter()
            .filter(|f| f.input == Input::Date)
            .filter(|f| {
                let text = match f.key {
                    "date_of_birth" => &self.date_of_birth,
                    "address.registered_on" => &self.registered_on,
                    _ => &self.registered_until,
                };
                !text.trim().is_empty() && crate::i18n::iso_from_typed(text).is_none()
            })
            .map(|f| f.key)
            .collect()
    }

    /// A new, empty form: citizenship `nationality` (the document profile's default
    /// nationality) and a permanent address, as most enrolments are.
    pub fn new(nationality: &str) -> Self {
        HolderForm {
            citizenship: nationality.to_owned(),
            address_kind: "permanent".into(),
            ..Default::default()
        }
    }

    /// The record the form describes (empty optional fields are absent).
    pub fn record(&self) -> HolderRecord {
        HolderRecord {
            pinfl: self.pinfl.clone(),
            surname: self.surname.clone(),
            given_names: self.given_names.clone(),
            patronymic: opt(&self.patronymic),
            surname_cyrillic: opt(&self.surname_cyrillic),
            given_names_cyrillic: opt(&self.given_names_cyrillic),
            patronymic_cyrillic: opt(&self.patronymic_cyrillic),
            sex: self.sex.clone(),
            date_of_birth: iso(&self.date_of_birth),
            place_of_birth: self.place_of_birth.clone(),
            citizenship: self.citizenship.clone(),
            address: AddressRecord {
                kind: self.address_kind.clone(),
                region: self.region.clone(),
                district: self.district.clone(),
                street: self.street.clone(),
                house: self.house.clone(),
                apartment: opt(&self.apartment),
                registered_on: iso(&self.registered_on),
                registered_until: opt(&self.registered_until).map(|d| iso(&d)),
            },
            photo: self
                .photo
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        }
    }

    /// Fill the form from a stored record (look-up by PINFL). The photo is not stored in the
    /// registry and stays as it is.
    pub fn prefill(&mut self, r: &HolderRecord) {
        let photo = self.photo.take();
        let s = |o: &Option<String>| o.clone().unwrap_or_default();
        *self = HolderForm {
            pinfl: r.pinfl.clone(),
            surname: r.surname.clone(),
            given_names: r.given_names.clone(),
            patronymic: s(&r.patronymic),
            surname_cyrillic: s(&r.surname_cyrillic),
            given_names_cyrillic: s(&r.given_names_cyrillic),
            patronymic_cyrillic: s(&r.patronymic_cyrillic),
            sex: r.sex.clone(),
            date_of_birth: crate::i18n::date(&r.date_of_birth),
            place_of_birth: r.place_of_birth.clone(),
            citizenship: r.citizenship.clone(),
            address_kind: r.address.kind.clone(),
            region: r.address.region.clone(),
            district: r.address.district.clone(),
            street: r.address.street.clone(),
            house: r.address.house.clone(),
            apartment: s(&r.address.apartment),
            registered_on: crate::i18n::date(&r.address.registered_on),
            registered_until: crate::i18n::date(&s(&r.address.registered_until)),
            photo,
            touched: BTreeSet::new(),
        };
        // A prefilled form is shown checked in full.
        self.touch_all();
    }

    /// A new form (citizenship `nationality`) with the holder's identity as the national
    /// registry has it (another office's card to replace here): PINFL, names and date of birth;
    /// every other field as in a new form, for the clerk to fill from the holder's documents.
    pub fn with_identity(nationality: &str, h: &centre_api::HolderAtCentre) -> Self {
        let s = |o: &Option<String>| o.clone().unwrap_or_default();
        HolderForm {
            pinfl: h.pinfl.clone(),
            surname: h.surname.clone(),
            given_names: h.given_names.clone(),
            patronymic: s(&h.patronymic),
            surname_cyrillic: s(&h.surname_cyrillic),
            given_names_cyrillic: s(&h.given_names_cyrillic),
            patronymic_cyrillic: s(&h.patronymic_cyrillic),
            date_of_birth: crate::i18n::date(&h.date_of_birth),
            ..HolderForm::new(nationality)
        }
    }

    /// Mark every field as edited (Issue pressed, or prefilled).
    pub fn touch_all(&mut self) {
        for f in FIELDS {
            self.touched.insert(f.key.to_string());
        }
    }

    /// Run the station's validation. Photo file checks run when a photo is loaded (the path is
    /// absolute, so the base directory is `/`).
    pub fn validate(&self, policy: &ValidationPolicy) -> Result<ValidHolder, Vec<FieldError>> {
        station::holder::validate(&self.record(), policy, Some(Path::new("/")))
    }

    /// Mutable access to a field's text by its key.
    pub fn field_mut(&mut self, key: &str) -> Option<&mut String> {
        Some(match key {
            "pinfl" => &mut self.pinfl,
            "surname" => &mut self.surname,
            "given_names" => &mut self.given_names,
            "patronymic" => &mut self.patronymic,
            "surname_cyrillic" => &mut self.surname_cyrillic,
            "given_names_cyrillic" => &mut self.given_names_cyrillic,
            "patronymic_cyrillic" => &mut self.patronymic_cyrillic,
            "sex" => &mut self.sex,
            "date_of_birth" => &mut self.date_of_birth,
            "place_of_birth" => &mut self.place_of_birth,
            "citizenship" => &mut self.citizenship,
            "address.kind" => &mut self.address_kind,
            "address.region" => &mut self.region,
            "address.district" => &mut self.district,
            "address.street" => &mut self.street,
            "address.house" => &mut self.house,
            "address.apartment" => &mut self.apartment,
            "address.registered_on" => &mut self.registered_on,
            "address.registered_until" => &mut self.registered_until,
            _ => return None,
        })
    }
}

/// A form field: record key, the catalogue ids of its label (also its accessible name) and of
/// its hint, and how it is entered.
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub input: Input,
}

/// How a field is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Text,
    /// DD.MM.YYYY with a mask; the record gets `YYYY-MM-DD`.
    Date,
    /// One of a list (sex, address kind, citizenship, region, district).
    Choice,
}

const fn f(key: &'static str, label: &'static str, hint: &'static str, input: Input) -> Field {
    Field {
        key,
        label,
        hint,
        input,
    }
}

/// Every field of the holder record, in form order.
pub const FIELDS: &[Field] = &[
    f("pinfl", "field-pinfl", "hint-pinfl", Input::Text),
    f("surname", "field-surname", "hint-latin", Input::Text),
    f(
        "given_names",
        "field-given-names",
        "hint-latin",
        Input::Text,
    ),
    f(
        "patronymic",
        "field-patronymic",
        "hint-latin-optional",
        Input::Text,
    ),
    f(
        "surname_cyrillic",
        "field-surname-cyrillic",
        "hint-optional",
        Input::Text,
    ),
    f(
        "given_names_cyrillic",
        "field-given-names-cyrillic",
        "hint-optional",
        Input::Text,
    ),
    f(
        "patronymic_cyrillic",
        "field-patronymic-cyrillic",
        "hint-optional",
        Input::Text,
    ),
    f("sex", "field-sex", "hint-none", Input::Choice),
    f(
        "date_of_birth",
        "field-date-of-birth",
        "hint-date",
        Input::Date,
    ),
    f(
        "place_of_birth",
        "field-place-of-birth",
        "hint-none",
        Input::Text,
    ),
    f(
        "citizenship",
        "field-citizenship",
        "hint-none",
        Input::Choice,
    ),
    f(
        "address.kind",
        "field-address-kind",
        "hint-none",
        Input::Choice,
    ),
    f("address.region", "field-region", "hint-none", Input::Choice),
    f(
        "address.district",
        "field-district",
        "hint-none",
        Input::Choice,
    ),
    f("address.street", "field-street", "hint-none", Input::Text),
    f("address.house", "field-house", "hint-none", Input::Text),
    f(
        "address.apartment",
        "field-apartment",
        "hint-optional",
        Input::Text,
    ),
    f(
        "address.registered_on",
        "field-registered-on",
        "hint-date",
        Input::Date,
    ),
    f(
        "address.registered_until",
        "field-registered-until",
        "hint-date-temporary",
        Input::Date,
    ),
];

/// The catalogue id of the label the clerk sees for a record key (`photo` is the photo).
pub fn label_id_of(key: &str) -> Option<&'static str> {
    if key == "photo" {
        return Some("field-photo");
    }
    FIELDS.iter().find(|f| f.key == key).map(|f| f.label)
}

/// The label the clerk sees for a record key, in `lang` (an unknown key is shown as it is).
pub fn label_of(lang: crate::i18n::Lang, key: &str) -> String {
    label_id_of(key)
        .map(|id| crate::i18n::tr(lang, id))
        .unwrap_or_else(|| key.to_owned())
}

/// The Latin/Cyrillic pairs shown side by side.
pub const NAME_PAIRS: &[(&str, &str)] = &[
    ("surname", "surname_cyrillic"),
    ("given_names", "given_names_cyrillic"),
    ("patronymic", "patronymic_cyrillic"),
];

pub fn field(key: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> HolderRecord {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../station/tests/fixtures/holders/holder-01.json");
        serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("json")
    }

    #[test]
    fn a_prefilled_form_gives_back_the_same_record_without_photo() {
        let mut r = fixture();
        r.photo = None;
        let mut form = HolderForm::new("UZB");
        form.prefill(&r);
        assert_eq!(form.record(), r);
    }

    #[test]
    fn every_record_field_has_a_form_field() {
        let mut form = HolderForm::new("UZB");
        for f in FIELDS {
            assert!(form.field_mut(f.key).is_some(), "{}", f.key);
        }
        assert_eq!(FIELDS.len(), 19);
    }

    #[test]
    fn validation_messages_are_the_stations_field_and_rule() {
        let mut form = HolderForm::new("UZB");
        form.prefill(&fixture());
        form.pinfl = "123".into();
        let policy = ValidationPolicy::new(time::macros::date!(2026 - 01 - 01));
        let errs = form.validate(&policy).expect_err("bad pinfl");
        let direct = station::holder::check_pinfl("123", None, None, true).expect_err("bad");
        assert!(
            errs.iter().any(|e| e.field == "pinfl" && e.rule == direct),
            "{errs:?}"
        );
    }
}
