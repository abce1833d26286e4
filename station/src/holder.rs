//! The holder record: the enrolment input of an issuance (the JSON of `idstation issue --holder`)
//! and its validation.
//!
//! Every rule gives an error that names the field (as a JSON path, e.g.
//! `address.registered_until`) and the rule it broke, so the CLI and the GUI show the same
//! message. Validation reports every broken rule at once, not only the first.
//!
//! PINFL (personal identification number of a natural person, 14 digits):
//! digit 1 = sex and century of birth (1/2: 1800s, 3/4: 1900s, 5/6: 2000s; odd = male,
//! even = female), digits 2–7 = date of birth DDMMYY, digits 8–10 = region code, digits 11–13 =
//! sequence number, digit 14 = check digit: the sum of the first 13 digits weighted 7, 3, 1
//! (repeating), modulo 10.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::Date;

/// The holder record as enrolled: the holder file (JSON, e.g. station/tests/fixtures/holders/),
/// validated field by field by [`validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HolderRecord {
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patronymic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surname_cyrillic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_names_cyrillic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patronymic_cyrillic: Option<String>,
    pub sex: String,
    pub date_of_birth: String,
    pub place_of_birth: String,
    pub citizenship: String,
    pub address: AddressRecord,
    /// JPEG path, relative to the holder file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AddressRecord {
    pub kind: String,
    pub region: String,
    pub district: String,
    pub street: String,
    pub house: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apartment: Option<String>,
    pub registered_on: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_until: Option<String>,
}

/// One broken rule: which field, and what the rule is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// Knobs that come from the document profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationPolicy {
    /// Check the PINFL's 7-3-1 check digit (on by default).
    pub pinfl_check_digit: bool,
    /// "Today", for dates that may not lie in the future.
    pub today: Date,
}

impl ValidationPolicy {
    pub fn new(today: Date) -> Self {
        ValidationPolicy {
            pinfl_check_digit: true,
            today,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    M,
    F,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressKind {
    Permanent,
    Temporary,
}

/// A holder record that passed validation, with typed values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidHolder {
    pub record: HolderRecord,
    pub sex: Sex,
    pub date_of_birth: Date,
    pub address_kind: AddressKind,
    pub registered_on: Date,
    pub registered_until: Option<Date>,
    /// Absolute path of the photo, when the record names one.
    pub photo_path: Option<PathBuf>,
}

/// Parse a holder JSON file. A JSON error names the line and column; then [`validate`] runs with
/// photo paths resolved against the file's directory.
pub fn load(path: &Path, policy: &ValidationPolicy) -> Result<ValidHolder, Vec<FieldError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![FieldError {
            field: "holder".into(),
            rule: format!("cannot read {}: {e}", path.display()),
        }]
    })?;
    let record: HolderRecord = serde_json::from_str(&text).map_err(|e| {
        vec![FieldError {
            field: "holder".into(),
            rule: format!("{} is not a valid holder record: {e}", path.display()),
        }]
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    validate(&record, policy, Some(base))
}

/// Validate a holder record. `photo_base` is the directory a relative photo path is resolved
/// against; `None` skips the photo file checks (the GUI checks the file it loaded itself).
pub fn validate(
    record: &HolderRecord,
    policy: &ValidationPolicy,
    photo_base: Option<&Path>,
) -> Result<ValidHolder, Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut err = |field: &str, rule: String| {
        errs.push(FieldError {
            field: field.into(),
            rule,
        })
    };
    let (sex, dob) = check_person(record, policy, &mut err);
    check_names(record, &mut err);
    if let Err(rule) = check_text(&record.place_of_birth, 80) {
        err("place_of_birth", rule);
    }
    if let Err(rule) = check_citizenship(&record.citizenship) {
        err("citizenship", rule);
    }
    let (kind, on, until) = check_address(&record.address, dob, policy, &mut err);
    let photo_path = check_photo(record, photo_base, &mut err);
    match (errs.is_empty(), sex, dob, kind, on) {
        (true, Some(sex), Some(date_of_birth), Some(address_kind), Some(registered_on)) => {
            Ok(ValidHolder {
                record: record.clone(),
                sex,
                date_of_birth,
                address_kind,
                registered_on,
                registered_until: until,
                photo_path,
            })
        }
        _ => Err(errs),
    }
}

/// Sex, date of birth (a calendar date, not in the future, not before 1900) and the PINFL that
/// encodes both.
fn check_person(
    record: &HolderRecord,
    policy: &ValidationPolicy,
    err: &mut impl FnMut(&str, String),
) -> (Option<Sex>, Option<Date>) {
    let sex = match record.sex.as_str() {
        "M" => Some(Sex::M),
        "F" => Some(Sex::F),
        other => {
            err("sex", format!("{other:?} must be M or F"));
            None
        }
    };
    let dob = parse_date(&record.date_of_birth)
        .map_err(|rule| err("date_of_birth", rule))
        .ok();
    if let Some(d) = dob {
        if d > policy.today {
            err("date_of_birth", format!("{d} lies in the future"));
        } else if d.year() < 1900 {
            err("date_of_birth", format!("{d} is before 1900"));
        }
    }
    if let Err(rule) = check_pinfl(&record.pinfl, sex, dob, policy.pinfl_check_digit) {
        err("pinfl", rule);
    }

    (sex, dob)
}

/// Latin names (surname and given names required), their optional Cyrillic forms, and no
/// Cyrillic patronymic without a Latin one.
fn check_names(record: &HolderRecord, err: &mut impl FnMut(&str, String)) {
    for (field, value, required) in [
        ("surname", Some(&record.surname), true),
        ("given_names", Some(&record.given_names), true),
        ("patronymic", record.patronymic.as_ref(), false),
    ] {
        match value {
            Some(v) => {
                if let Err(rule) = check_latin_name(v) {
                    err(field, rule);
                }
            }
            None if required => err(field, "is required".into()),
            None => {}
        }
    }
    for (field, value) in [
        ("surname_cyrillic", record.surname_cyrillic.as_ref()),
        ("given_names_cyrillic", record.given_names_cyrillic.as_ref()),
        ("patronymic_cyrillic", record.patronymic_cyrillic.as_ref()),
    ] {
        if let Some(v) = value {
            if let Err(rule) = check_cyrillic_name(v) {
                err(field, rule);
            }
        }
    }
    if record.patronymic_cyrillic.is_some() && record.patronymic.is_none() {
        err(
            "patronymic",
            "is required when patronymic_cyrillic is given".into(),
        );
    }
}

/// The registration address: its kind, texts, and dates (registered_on not before birth nor in
/// the future; registered_until only for, and required for, a temporary address, after
/// registered_on).
fn check_address(
    a: &AddressRecord,
    dob: Option<Date>,
    policy: &ValidationPolicy,
    err: &mut impl FnMut(&str, String),
) -> (Option<AddressKind>, Option<Date>, Option<Date>) {
    let kind = match a.kind.as_str() {
        "permanent" => Some(AddressKind::Permanent),
        "temporary" => Some(AddressKind::Temporary),
        other => {
            err(
                "address.kind",
                format!("{other:?} must be permanent or temporary"),
            );
            None
        }
    };
    for (field, value, max) in [
        ("address.region", &a.region, 80),
        ("address.district", &a.district, 80),
        ("address.street", &a.street, 120),
        ("address.house", &a.house, 16),
    ] {
        if let Err(rule) = check_text(value, max) {
            err(field, rule);
        }
    }
    if let Some(apartment) = &a.apartment {
        if let Err(rule) = check_text(apartment, 16) {
            err("address.apartment", rule);
        }
    }
    let on = parse_date(&a.registered_on)
        .map_err(|rule| err("address.registered_on", rule))
        .ok();
    if let (Some(on), Some(d)) = (on, dob) {
        if on < d {
            err(
                "address.registered_on",
                format!("{on} is before date_of_birth {d}"),
            );
        }
    }
    if let Some(on) = on {
        if on > policy.today {
            err("address.registered_on", format!("{on} lies in the future"));
        }
    }
    let until = match (&a.registered_until, kind) {
        (None, Some(AddressKind::Temporary)) => {
            err(
                "address.registered_until",
                "is required for a temporary address".into(),
            );
            None
        }
        (Some(_), Some(AddressKind::Permanent)) => {
            err(
                "address.registered_until",
                "is only allowed for a temporary address".into(),
            );
            None
        }
        (Some(u), _) => match parse_date(u) {
            Ok(u) => {
                if let Some(on) = on {
                    if u <= on {
                        err(
                            "address.registered_until",
                            format!("{u} must be after registered_on {on}"),
                        );
                    }
                }
                Some(u)
            }
            Err(rule) => {
                err("address.registered_until", rule);
                None
            }
        },
        (None, _) => None,
    };

    (kind, on, until)
}

/// The photo, when the record names one and there is a base directory: a JPEG file.
fn check_photo(
    record: &HolderRecord,
    photo_base: Option<&Path>,
    err: &mut impl FnMut(&str, String),
) -> Option<PathBuf> {
    match (&record.photo, photo_base) {
        (Some(p), Some(base)) => {
            let path = base.join(p);
            match check_jpeg(&path) {
                Ok(()) => Some(path),
                Err(rule) => {
                    err("photo", rule);
                    None
                }
            }
        }
        _ => None,
    }
}

/// Parse `YYYY-MM-DD` as a real calendar date.
pub fn parse_date(s: &str) -> Result<Date, String> {
    use registry::validate::DateFault;
    registry::validate::parse_date(s).map_err(|fault| match fault {
        DateFault::Shape => format!("{s:?} is not a date in the form YYYY-MM-DD"),
        DateFault::Month | DateFault::Day { .. } => format!("{s} is not a calendar date"),
    })
}

/// PINFL rules: 14 digits; digit 1 agrees with sex and century of birth; digits 2–7 are the
/// birth date DDMMYY; digit 14 is the 7-3-1 check digit (when `check_digit`).
pub fn check_pinfl(
    pinfl: &str,
    sex: Option<Sex>,
    dob: Option<Date>,
    check_digit: bool,
) -> Result<(), String> {
    if !registry::validate::is_pinfl_shaped(pinfl) {
        return Err(format!("{pinfl:?} must be exactly 14 digits"));
    }
    let d: Vec<u32> = pinfl.bytes().map(|c| u32::from(c - b'0')).collect();
    if let (Some(sex), Some(dob)) = (sex, dob) {
        let century = match dob.year() {
            1800..=1899 => Some(0),
            1900..=1999 => Some(1),
            2000..=2099 => Some(2),
            _ => None,
        };
        if let Some(c) = century {
            let expected = 1 + 2 * c + if sex == Sex::F { 1 } else { 0 };
            if d[0] != expected {
                return Err(format!(
                    "first digit {} does not agree with sex {:?} born in {} (expected {expected})",
                    d[0],
                    sex,
                    dob.year()
                ));
            }
        }
        let ddmmyy = format!(
            "{:02}{:02}{:02}",
            dob.day(),
            u8::from(dob.month()),
            dob.year().rem_euclid(100)
        );
        if pinfl[1..7] != ddmmyy {
            return Err(format!(
                "digits 2-7 {} must be the date of birth as DDMMYY ({ddmmyy})",
                &pinfl[1..7]
            ));
        }
    }
    if check_digit {
        let expected = pinfl_check_digit(&d[..13]);
        if d[13] != expected {
            return Err(format!(
                "check digit {} is wrong (7-3-1 rule gives {expected})",
                d[13]
            ));
        }
    }
    Ok(())
}

/// The 7-3-1 check digit over the first 13 PINFL digits.
pub fn pinfl_check_digit(digits: &[u32]) -> u32 {
    digits
        .iter()
        .zip([7, 3, 1].iter().cycle())
        .map(|(d, w)| d * w)
        .sum::<u32>()
        % 10
}

const TURNED_COMMA: char = '\u{02BB}'; // ʻ in Oʻ, Gʻ
const MODIFIER_APOSTROPHE: char = '\u{02BC}'; // ʼ (tutuq belgisi)

/// Latin names: Uzbek Latin letters (A–Z incl. the digraphs, Oʻ and Gʻ with U+02BB, the
/// apostrophe U+02BC), single spaces and hyphens inside the name.
pub fn check_latin_name(name: &str) -> Result<(), String> {
    check_name_shape(name)?;
    let mut prev: Option<char> = None;
    for c in name.chars() {
        let ok = match c {
            'A'..='Z' | 'a'..='z' | ' ' | '-' | MODIFIER_APOSTROPHE => true,
            TURNED_COMMA => matches!(prev, Some('O' | 'o' | 'G' | 'g')),
            _ => false,
        };
        if !ok {
            return Err(if c == TURNED_COMMA {
                format!("{name:?}: the letter sign ʻ (U+02BB) may only follow O or G")
            } else {
                format!(
                    "{name:?} contains {c:?} (U+{:04X}); allowed are Uzbek Latin letters, ʻ (U+02BB) after O/G, ʼ (U+02BC), spaces and hyphens",
                    c as u32
                )
            });
        }
        prev = Some(c);
    }
    Ok(())
}

/// Cyrillic names: the Uzbek Cyrillic alphabet (Russian letters plus Ў Қ Ғ Ҳ), single spaces
/// and hyphens inside the name.
pub fn check_cyrillic_name(name: &str) -> Result<(), String> {
    check_name_shape(name)?;
    for c in name.chars() {
        let ok = matches!(
            c,
            'А'..='я' | 'Ё' | 'ё' | 'Ў' | 'ў' | 'Қ' | 'қ' | 'Ғ' | 'ғ' | 'Ҳ' | 'ҳ' | ' ' | '-'
        );
        if !ok {
            return Err(format!(
                "{name:?} contains {c:?} (U+{:04X}); allowed are Uzbek Cyrillic letters, spaces and hyphens",
                c as u32
            ));
        }
    }
    Ok(())
}

fn check_name_shape(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > 64 {
        return Err(format!("{name:?} is longer than 64 characters"));
    }
    if name.starts_with([' ', '-']) || name.ends_with([' ', '-']) {
        return Err(format!(
            "{name:?} must not start or end with a space or hyphen"
        ));
    }
    if name.contains("  ") || name.contains("--") || name.contains(" -") || name.contains("- ") {
        return Err(format!(
            "{name:?} has separators (space, hyphen) next to each other"
        ));
    }
    Ok(())
}

/// Free text (place of birth, address parts): non-empty, no control characters, bounded.
fn check_text(value: &str, max: usize) -> Result<(), String> {
    use registry::validate::TextFault;
    match registry::validate::text_fault(value, max) {
        Some(TextFault::Empty) => return Err("must not be empty".into()),
        Some(TextFault::TooLong) => return Err(format!("is longer than {max} characters")),
        Some(TextFault::Control) => return Err("must not contain control characters".into()),
        None => {}
    }
    if value.trim() != value {
        return Err(format!("{value:?} must not start or end with spaces"));
    }
    Ok(())
}

/// ISO 3166-1 alpha-3 (three capital letters) or one of ICAO Doc 9303 Part 3's codes for
/// persons without a state: XXA stateless, XXB refugee (1951 Convention), XXC refugee (other),
/// XXX unspecified nationality.
pub fn check_citizenship(code: &str) -> Result<(), String> {
    use registry::validate::{citizenship_fault, CitizenshipFault};
    match citizenship_fault(code) {
        None => Ok(()),
        Some(CitizenshipFault::UnknownXx) => Err(format!(
            "{code:?} is not a valid ICAO code (XXA, XXB, XXC or XXX)"
        )),
        Some(CitizenshipFault::Shape) => Err(format!("{code:?} must be an ISO 3166-1 alpha-3 code (three capital letters) or XXA for stateless persons")),
    }
}

fn check_jpeg(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() < 4 || bytes[..3] != [0xFF, 0xD8, 0xFF] {
        return Err(format!(
            "{} is not a JPEG file (no FF D8 FF start of image)",
            path.display()
        ));
    }
    if bytes.len() > 64 * 1024 {
        return Err(format!(
            "{} is {} bytes; the chip takes at most 65536",
            path.display(),
            bytes.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/holders")
            .join(name)
    }

    fn policy() -> ValidationPolicy {
        ValidationPolicy::new(date!(2026 - 11 - 25))
    }

    fn holder01() -> HolderRecord {
        let text = std::fs::read_to_string(fixture("holder-01.json")).expect("fixture");
        serde_json::from_str(&text).expect("fixture parses")
    }

    fn errors_for(record: &HolderRecord) -> Vec<FieldError> {
        validate(record, &policy(), None).expect_err("must be rejected")
    }

    fn assert_field(errs: &[FieldError], field: &str, needle: &str) {
        assert!(
            errs.iter()
                .any(|e| e.field == field && e.rule.contains(needle)),
            "expected an error on {field} containing {needle:?}, got {errs:?}"
        );
    }

    #[test]
    fn the_three_fixture_holders_are_valid() {
        for name in ["holder-01.json", "holder-02.json", "holder-03.json"] {
            let h = load(&fixture(name), &policy()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(h.photo_path.is_some(), "{name} has a photo");
        }
    }

    #[test]
    fn check_digit_is_the_7_3_1_rule() {
        let digits: Vec<u32> = "4150585261012"
            .bytes()
            .map(|c| u32::from(c - b'0'))
            .collect();
        assert_eq!(pinfl_check_digit(&digits), 8);
    }

    #[test]
    fn pinfl_of_13_digits_is_refused() {
        let mut r = holder01();
        r.pinfl = "4150585261012".into();
        assert_field(&errors_for(&r), "pinfl", "exactly 14 digits");
    }

    #[test]
    fn pinfl_with_a_wrong_check_digit_is_refused_unless_the_profile_turns_the_rule_off() {
        let mut r = holder01();
        r.pinfl = "41505852610129".into();
        assert_field(&errors_for(&r), "pinfl", "check digit 9 is wrong");
        let lax = ValidationPolicy {
            pinfl_check_digit: false,
            ..policy()
        };
        assert!(validate(&r, &lax, None).is_ok());
    }

    #[test]
    fn pinfl_must_agree_with_sex_century_and_birth_date() {
        let mut r = holder01();
        r.sex = "M".into();
        assert_field(&errors_for(&r), "pinfl", "does not agree with sex");
        let mut r = holder01();
        r.date_of_birth = "1985-05-16".into();
        assert_field(&errors_for(&r), "pinfl", "DDMMYY (160585)");
    }

    #[test]
    fn impossible_dates_name_the_field() {
        let mut r = holder01();
        r.date_of_birth = "1985-02-30".into();
        assert_field(
            &errors_for(&r),
            "date_of_birth",
            "1985-02-30 is not a calendar date",
        );
        let mut r = holder01();
        r.address.registered_on = "2019-3-1".into();
        assert_field(&errors_for(&r), "address.registered_on", "form YYYY-MM-DD");
        let mut r = holder01();
        r.date_of_birth = "2030-01-01".into();
        assert_field(&errors_for(&r), "date_of_birth", "future");
    }

    #[test]
    fn temporary_address_needs_an_end_after_its_start() {
        let mut r = holder01();
        r.address.kind = "temporary".into();
        assert_field(
            &errors_for(&r),
            "address.registered_until",
            "required for a temporary address",
        );
        r.address.registered_until = Some("2019-01-01".into());
        assert_field(
            &errors_for(&r),
            "address.registered_until",
            "must be after registered_on",
        );
        let mut r = holder01();
        r.address.registered_until = Some("2030-01-01".into());
        assert_field(
            &errors_for(&r),
            "address.registered_until",
            "only allowed for a temporary",
        );
    }

    #[test]
    fn names_allow_uzbek_latin_letters_and_refuse_others() {
        assert!(check_latin_name("Toʻxtayeva").is_ok());
        assert!(check_latin_name("Gʻulnora").is_ok());
        assert!(check_latin_name("Maʼruf").is_ok());
        assert!(check_latin_name("Abdurakhmonov-Xolmatov").is_ok());
        assert!(check_latin_name("Muhammadyusuf Abdulazizxon").is_ok());
        assert!(check_latin_name("Aʻzam")
            .unwrap_err()
            .contains("may only follow O or G"));
        assert!(check_latin_name("Jasur1").unwrap_err().contains("'1'"));
        assert!(check_latin_name("Jasur  Bek")
            .unwrap_err()
            .contains("next to each other"));
        assert!(check_latin_name(" ")
            .unwrap_err()
            .contains("must not be empty"));
        assert!(check_latin_name("Шарипов").is_err());
        assert!(check_cyrillic_name("Тўхтаева").is_ok());
        assert!(check_cyrillic_name("Ҳамидович").is_ok());
        assert!(check_cyrillic_name("Sharipov").is_err());
        let mut r = holder01();
        r.surname = String::new();
        assert_field(&errors_for(&r), "surname", "must not be empty");
    }

    #[test]
    fn citizenship_is_alpha3_or_an_icao_stateless_code() {
        assert!(check_citizenship("UZB").is_ok());
        assert!(check_citizenship("XXA").is_ok());
        assert!(check_citizenship("uzb").is_err());
        assert!(check_citizenship("UZ").is_err());
        assert!(check_citizenship("XXQ").is_err());
    }

    #[test]
    fn all_broken_rules_are_reported_at_once() {
        let mut r = holder01();
        r.sex = "X".into();
        r.citizenship = "U".into();
        r.address.house = String::new();
        let errs = errors_for(&r);
        for f in ["sex", "citizenship", "address.house"] {
            assert!(errs.iter().any(|e| e.field == f), "{f} missing in {errs:?}");
        }
    }

    #[test]
    fn a_photo_that_is_not_a_jpeg_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("p.jpg"), b"not a jpeg").expect("write");
        let mut r = holder01();
        r.photo = Some("p.jpg".into());
        let errs = validate(&r, &policy(), Some(dir.path())).expect_err("rejected");
        assert_field(&errs, "photo", "is not a JPEG");
    }
}
