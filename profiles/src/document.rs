//! Document profiles (`profiles/document/<name>.toml`): the document a card is (ICAO 9303
//! Part 5, TD1): its validity, the PINFL check-digit rule, which card profile personalizes its
//! chip, and who issues it (issuing state, default nationality, country).

use std::path::Path;

use serde::Deserialize;
use time::{Date, Month};

use crate::{ProfileError, Result};

/// A document profile (`profiles/document/<name>.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentProfile {
    /// The profile's name: the file stem (`id-card` for `document/id-card.toml`).
    #[serde(skip)]
    pub name: String,
    pub description: String,
    /// Card and document validity from the date of issuance, in whole years.
    pub validity_years: u8,
    /// The PINFL's 14th digit is a 7-3-1 check digit over the first 13.
    pub pinfl_check_digit: bool,
    /// The card profile (`profiles/card/<name>.toml`) the chip is personalized with.
    pub card_profile: String,
    /// The issuing state or organization, ICAO 9303 Part 3 §5 three-letter code (MRZ, DG1).
    pub issuing_state: String,
    /// The nationality a new holder starts with (ICAO 9303 Part 3 §5 three-letter code).
    pub default_nationality: String,
    /// The issuing country, ISO 3166-1 alpha-2: certificate subjects' C and the country of
    /// the national identity number (semantics identifier "PNO" + country, ETSI EN 319 412-1
    /// §5.1.3).
    pub country: String,
    /// How an inspection system opens the chip's ICAO application (ICAO 9303-11 §4.2):
    /// `"pace"` (default: PACE with the CAN or the MRZ only; the chip refuses BAC) or
    /// `"pace-and-bac"` (BAC too, for readers that know no PACE).
    #[serde(default)]
    pub chip_access: ChipAccess,
}

/// The access control the chip's ICAO application offers (document profile `chip_access`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ChipAccess {
    /// PACE (CAN and MRZ passwords) only.
    #[default]
    Pace,
    /// PACE, and BAC for old readers.
    PaceAndBac,
}

impl ChipAccess {
    /// The profile's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChipAccess::Pace => "pace",
            ChipAccess::PaceAndBac => "pace-and-bac",
        }
    }

    /// Whether the chip also answers Basic Access Control.
    pub fn bac(self) -> bool {
        self == ChipAccess::PaceAndBac
    }
}

impl TryFrom<String> for ChipAccess {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "pace" => Ok(ChipAccess::Pace),
            "pace-and-bac" => Ok(ChipAccess::PaceAndBac),
            _ => Err(format!(
                "chip_access must be \"pace\" or \"pace-and-bac\", got {s:?}"
            )),
        }
    }
}

impl DocumentProfile {
    /// Expiry of a document issued on `issued`: the same day `validity_years` later (29 February
    /// becomes 28 February in a common year).
    pub fn expiry(&self, issued: Date) -> Date {
        let year = issued.year() + i32::from(self.validity_years);
        Date::from_calendar_date(year, issued.month(), issued.day())
            .or_else(|_| Date::from_calendar_date(year, Month::February, 28))
            .unwrap_or(issued)
    }
}

/// Parse and check one document profile from text; `file` is used in errors and its stem
/// becomes the profile name.
pub fn parse_document_profile(file: &Path, text: &str) -> Result<DocumentProfile> {
    let mut p: DocumentProfile = crate::parse_toml(file, text)?;
    p.name = crate::stem(file)?;
    check(&p).map_err(|(key, rule)| ProfileError::Rule {
        file: file.to_owned(),
        key: key.into(),
        rule,
    })?;
    Ok(p)
}

/// Load one document profile file.
pub fn load_document_profile(path: &Path) -> Result<DocumentProfile> {
    parse_document_profile(path, &crate::read(path)?)
}

fn check(p: &DocumentProfile) -> std::result::Result<(), (&'static str, String)> {
    if !(1..=20).contains(&p.validity_years) {
        return Err((
            "validity_years",
            format!("must be 1 to 20, got {}", p.validity_years),
        ));
    }
    if p.card_profile.trim().is_empty() {
        return Err(("card_profile", "must name a card profile".into()));
    }
    for (key, value) in [
        ("issuing_state", &p.issuing_state),
        ("default_nationality", &p.default_nationality),
    ] {
        if !upper_letters(value, 3) {
            return Err((
                key,
                format!("{value:?} must be three capital letters (ISO 3166-1 alpha-3, ICAO 9303 Part 3 §5)"),
            ));
        }
    }
    if !upper_letters(&p.country, 2) {
        return Err((
            "country",
            format!(
                "{:?} must be two capital letters (ISO 3166-1 alpha-2)",
                p.country
            ),
        ));
    }
    Ok(())
}

/// `len` letters A to Z: the shape of an ISO 3166-1 alpha-2 or alpha-3 code.
fn upper_letters(code: &str, len: usize) -> bool {
    code.len() == len && code.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const SHIPPED: &str = include_str!("../document/id-card.toml");

    fn parse(text: &str) -> Result<DocumentProfile> {
        parse_document_profile(Path::new("document/id-card.toml"), text)
    }

    #[test]
    fn shipped_profile_loads_and_expiry_is_ten_years_later() {
        let p = parse(SHIPPED).expect("shipped");
        assert_eq!(p.name, "id-card");
        assert_eq!(p.validity_years, 10);
        assert!(p.pinfl_check_digit);
        assert_eq!(p.card_profile, "card-esign");
        assert_eq!(
            (p.issuing_state.as_str(), p.default_nationality.as_str()),
            ("UZB", "UZB")
        );
        assert_eq!(p.country, "UZ");
        assert_eq!(p.chip_access, ChipAccess::Pace);
        assert_eq!(p.expiry(date!(2026 - 11 - 25)), date!(2036 - 11 - 25));
        assert_eq!(p.expiry(date!(2028 - 02 - 29)), date!(2038 - 02 - 28));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_and_rule() {
        let e = parse(&format!("{SHIPPED}\nextra = 1\n")).expect_err("unknown key");
        assert!(
            e.to_string().contains("document/id-card.toml") && e.to_string().contains("extra"),
            "{e}"
        );
        let e = parse(&SHIPPED.replace("validity_years = 10", "validity_years = 0"))
            .expect_err("zero years");
        assert!(
            e.to_string()
                .contains("key `validity_years`: must be 1 to 20, got 0"),
            "{e}"
        );
    }

    #[test]
    fn chip_access_defaults_to_pace_and_refuses_other_values_naming_the_field() {
        let p = parse(&SHIPPED.replace("chip_access = \"pace\"\n", "")).expect("no key");
        assert_eq!(p.chip_access, ChipAccess::Pace);
        let p = parse(&SHIPPED.replace("chip_access = \"pace\"", "chip_access = \"pace-and-bac\""))
            .expect("pace-and-bac");
        assert_eq!(p.chip_access, ChipAccess::PaceAndBac);
        assert!(p.chip_access.bac() && !ChipAccess::Pace.bac());
        let e = parse(&SHIPPED.replace("chip_access = \"pace\"", "chip_access = \"bac\""))
            .expect_err("bac alone")
            .to_string();
        assert!(
            e.contains("document/id-card.toml")
                && e.contains("chip_access")
                && e.contains("\"pace\" or \"pace-and-bac\"")
                && e.contains("\"bac\""),
            "{e}"
        );
    }

    #[test]
    fn issuing_state_nationality_and_country_must_have_the_iso_3166_shape() {
        for (from, to, key) in [
            (
                "issuing_state = \"UZB\"",
                "issuing_state = \"UZ\"",
                "issuing_state",
            ),
            (
                "default_nationality = \"UZB\"",
                "default_nationality = \"uzb\"",
                "default_nationality",
            ),
            ("country = \"UZ\"", "country = \"UZB\"", "country"),
            ("country = \"UZ\"", "country = \"U1\"", "country"),
        ] {
            let e = parse(&SHIPPED.replace(from, to)).expect_err(to).to_string();
            assert!(
                e.contains(&format!("key `{key}`")) && e.contains("ISO 3166-1"),
                "{e}"
            );
        }
    }
}
