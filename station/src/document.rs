//! The document profile (`profiles/document/id-card.toml`): validity of the card and the
//! document, the PINFL check-digit rule, and which card profile personalizes the chip.

use serde::Deserialize;
use time::{Date, Month};

use crate::error::StationError;
use crate::Station;

const BUILTIN: &str = include_str!("../../profiles/document/id-card.toml");

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentProfile {
    pub description: String,
    pub validity_years: u8,
    pub pinfl_check_digit: bool,
    pub card_profile: String,
}

impl DocumentProfile {
    pub fn parse(file: &str, text: &str) -> Result<Self, StationError> {
        let p: DocumentProfile = toml::from_str(text).map_err(|e| StationError::Config {
            path: file.into(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        if !(1..=20).contains(&p.validity_years) {
            return Err(StationError::Config {
                path: file.into(),
                reason: format!("validity_years = {}: must be 1 to 20", p.validity_years),
            });
        }
        if p.card_profile != "card-esign" {
            return Err(StationError::Config {
                path: file.into(),
                reason: format!(
                    "card_profile = {:?}: this station ships only card-esign",
                    p.card_profile
                ),
            });
        }
        Ok(p)
    }

    /// The data dir's override (`<profiles dir>/document/id-card.toml`) or the built-in one.
    pub fn load(st: &Station) -> Result<Self, StationError> {
        if let Some(dir) = &st.config.profiles.dir {
            let p = st.layout.root.join(dir).join("document/id-card.toml");
            if p.is_file() {
                let text = std::fs::read_to_string(&p).map_err(|e| StationError::io(&p, e))?;
                return Self::parse(&p.display().to_string(), &text);
            }
        }
        Self::builtin()
    }

    pub fn builtin() -> Result<Self, StationError> {
        Self::parse("<builtin>/document/id-card.toml", BUILTIN)
    }

    /// Expiry of a document issued on `issued`: the same day `validity_years` later (29 February
    /// becomes 28 February in a common year).
    pub fn expiry(&self, issued: Date) -> Date {
        let year = issued.year() + i32::from(self.validity_years);
        Date::from_calendar_date(year, issued.month(), issued.day())
            .or_else(|_| Date::from_calendar_date(year, Month::February, 28))
            .unwrap_or(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn builtin_profile_loads_and_expiry_is_ten_years_later() {
        let p = DocumentProfile::builtin().expect("builtin");
        assert_eq!(p.validity_years, 10);
        assert!(p.pinfl_check_digit);
        assert_eq!(p.expiry(date!(2026 - 11 - 25)), date!(2036 - 11 - 25));
        assert_eq!(p.expiry(date!(2028 - 02 - 29)), date!(2038 - 02 - 28));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_and_rule() {
        let e = DocumentProfile::parse("x.toml", &format!("{BUILTIN}\nextra = 1\n"))
            .expect_err("unknown key");
        assert!(
            e.to_string().contains("x.toml") && e.to_string().contains("extra"),
            "{e}"
        );
        let e = DocumentProfile::parse(
            "x.toml",
            &BUILTIN.replace("validity_years = 10", "validity_years = 0"),
        )
        .expect_err("zero years");
        assert!(
            e.to_string()
                .contains("validity_years = 0: must be 1 to 20"),
            "{e}"
        );
    }
}
