//! The clerk's holder form: every field of the holder record (issue #6 input format) as text,
//! validated as the clerk types by the station's own [`station::holder::validate`], so the GUI
//! shows exactly the CLI's messages ("field: rule").

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

impl HolderForm {
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
            date_of_birth: self.date_of_birth.clone(),
            place_of_birth: self.place_of_birth.clone(),
            citizenship: self.citizenship.clone(),
            address: AddressRecord {
                kind: self.address_kind.clone(),
                region: self.region.clone(),
                district: self.district.clone(),
                street: self.street.clone(),
                house: self.house.clone(),
                apartment: opt(&self.apartment),
                registered_on: self.registered_on.clone(),
                registered_until: opt(&self.registered_until),
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
            date_of_birth: r.date_of_birth.clone(),
            place_of_birth: r.place_of_birth.clone(),
            citizenship: r.citizenship.clone(),
            address_kind: r.address.kind.clone(),
            region: r.address.region.clone(),
            district: r.address.district.clone(),
            street: r.address.street.clone(),
            house: r.address.house.clone(),
            apartment: s(&r.address.apartment),
            registered_on: r.address.registered_on.clone(),
            registered_until: s(&r.address.registered_until),
            photo,
            touched: BTreeSet::new(),
        };
        // A prefilled form is shown checked in full.
        self.touch_all();
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

/// A form field: record key and the label the clerk sees (also its accessible name).
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
}

const fn f(key: &'static str, label: &'static str, hint: &'static str) -> Field {
    Field { key, label, hint }
}

/// Every field of the holder record, in form order.
pub const FIELDS: &[Field] = &[
    f("pinfl", "PINFL", "14 digits"),
    f("surname", "Surname", "Latin"),
    f("given_names", "Given names", "Latin"),
    f("patronymic", "Patronymic", "Latin, optional"),
    f("surname_cyrillic", "Surname (Cyrillic)", "optional"),
    f("given_names_cyrillic", "Given names (Cyrillic)", "optional"),
    f("patronymic_cyrillic", "Patronymic (Cyrillic)", "optional"),
    f("sex", "Sex", "M or F"),
    f("date_of_birth", "Date of birth", "YYYY-MM-DD"),
    f("place_of_birth", "Place of birth", ""),
    f("citizenship", "Citizenship", "alpha-3, XXA = stateless"),
    f("address.kind", "Address kind", "permanent or temporary"),
    f("address.region", "Region", ""),
    f("address.district", "District", ""),
    f("address.street", "Street", ""),
    f("address.house", "House", ""),
    f("address.apartment", "Apartment", "optional"),
    f("address.registered_on", "Registered on", "YYYY-MM-DD"),
    f(
        "address.registered_until",
        "Registered until",
        "temporary address only",
    ),
];

/// The label the clerk sees for a record key (`photo` is the photo; an unknown key is shown
/// as it is).
pub fn label_of(key: &str) -> &str {
    if key == "photo" {
        return "Photo";
    }
    FIELDS
        .iter()
        .find(|f| f.key == key)
        .map(|f| f.label)
        .unwrap_or(key)
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
