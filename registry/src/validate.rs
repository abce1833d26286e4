//! The checks the registry itself guarantees, whoever writes to it: identifier shapes, real
//! calendar dates, date order. Richer holder-record rules (PINFL check digit, sex/century, Uzbek
//! letters) are the station's; these are the floor under them. Every refusal is an
//! [`Error::Invalid`] naming the field and the rule.

use time::{Date, Month};

use crate::{Error, Result};

/// Whether `v` has the shape of a PINFL (personal identification number of an individual):
/// exactly 14 ASCII digits. The one rule the station's richer check starts from.
pub fn is_pinfl_shaped(v: &str) -> bool {
    v.len() == 14 && v.bytes().all(|b| b.is_ascii_digit())
}

/// PINFL: exactly 14 ASCII digits ([`is_pinfl_shaped`]).
pub fn pinfl(field: &str, v: &str) -> Result<()> {
    if !is_pinfl_shaped(v) {
        return Err(Error::invalid(
            field,
            v,
            format!(
                "must be exactly 14 digits (got {} characters)",
                v.chars().count()
            ),
        ));
    }
    Ok(())
}

/// Document series: exactly 2 Latin capital letters A–Z.
pub fn series(field: &str, v: &str) -> Result<()> {
    if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::invalid(
            field,
            v,
            "must be exactly 2 Latin capital letters A-Z",
        ));
    }
    Ok(())
}

/// Document number within a series: 1..=9_999_999 (printed as 7 digits).
pub fn number(field: &str, v: u32) -> Result<()> {
    if !(1..=9_999_999).contains(&v) {
        return Err(Error::invalid(
            field,
            v.to_string(),
            "must be between 0000001 and 9999999",
        ));
    }
    Ok(())
}

/// Why a text is not a calendar date written `YYYY-MM-DD` ([`parse_date`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFault {
    /// Not ten characters `DDDD-DD-DD`.
    Shape,
    /// The month is not 01–12.
    Month,
    /// The day is not in the month.
    Day { month: Month, year: i32 },
}

/// A date written `YYYY-MM-DD` (ISO 8601 extended, any four-digit year), or why it is not
/// one: the one parser of the registry's and the station's date rules, which word their own
/// refusals.
pub fn parse_date(v: &str) -> std::result::Result<Date, DateFault> {
    let b = v.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err(DateFault::Shape);
    }
    let num = |s: &str| s.parse::<u32>().unwrap_or(0);
    let (y, m, d) = (num(&v[0..4]), num(&v[5..7]), num(&v[8..10]));
    let month = u8::try_from(m)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or(DateFault::Month)?;
    Date::from_calendar_date(y as i32, month, d as u8).map_err(|_| DateFault::Day {
        month,
        year: y as i32,
    })
}

/// A calendar date written `YYYY-MM-DD` (ISO 8601 extended, year 1900..=2999).
pub fn date(field: &str, v: &str) -> Result<Date> {
    let parsed = parse_date(v);
    if parsed == Err(DateFault::Shape) {
        return Err(Error::invalid(
            field,
            v,
            "must be a date written YYYY-MM-DD",
        ));
    }
    // The shape is checked: four ASCII digits.
    let y = v[0..4].parse::<u32>().unwrap_or(0);
    if !(1900..=2999).contains(&y) {
        return Err(Error::invalid(
            field,
            v,
            "year must be between 1900 and 2999",
        ));
    }
    parsed.map_err(|fault| match fault {
        DateFault::Day { month, year } => Error::invalid(
            field,
            v,
            format!(
                "is not a calendar date ({} {} has {} days)",
                month,
                year,
                time::util::days_in_month(month, year)
            ),
        ),
        DateFault::Shape | DateFault::Month => {
            Error::invalid(field, v, "is not a calendar date (month 01-12)")
        }
    })
}

/// `later` must be strictly after `earlier`.
pub fn after(field: &str, later: &str, earlier_field: &str, earlier: &str) -> Result<()> {
    let l = date(field, later)?;
    let e = date(earlier_field, earlier)?;
    if l <= e {
        return Err(Error::invalid(
            field,
            later,
            format!("must be after {earlier_field} ({earlier})"),
        ));
    }
    Ok(())
}

/// Why a nationality code is refused ([`citizenship_fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CitizenshipFault {
    /// Not three capital letters.
    Shape,
    /// An `XX?` code other than the four ICAO 9303-3 §5 assigns (XXA stateless person, XXB
    /// refugee, XXC refugee under other instruments, XXX unspecified nationality).
    UnknownXx,
}

/// The first rule of a nationality code that `v` breaks: ISO 3166-1 alpha-3 shape, and among
/// the `XX?` codes only those of ICAO 9303-3 §5.
pub fn citizenship_fault(v: &str) -> Option<CitizenshipFault> {
    if v.len() != 3 || !v.bytes().all(|b| b.is_ascii_uppercase()) {
        Some(CitizenshipFault::Shape)
    } else if v.starts_with("XX") && !matches!(v, "XXA" | "XXB" | "XXC" | "XXX") {
        Some(CitizenshipFault::UnknownXx)
    } else {
        None
    }
}

/// Citizenship: ISO 3166-1 alpha-3 (3 capital letters), `XXA` for stateless persons
/// ([`citizenship_fault`]).
pub fn citizenship(field: &str, v: &str) -> Result<()> {
    match citizenship_fault(v) {
        None => Ok(()),
        Some(CitizenshipFault::Shape) => Err(Error::invalid(
            field,
            v,
            "must be an ISO 3166-1 alpha-3 code (3 capital letters; XXA for stateless)",
        )),
        Some(CitizenshipFault::UnknownXx) => Err(Error::invalid(
            field,
            v,
            "is not an ICAO 9303-3 code (XXA, XXB, XXC or XXX)",
        )),
    }
}

/// Why a free text is refused ([`text_fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFault {
    /// Empty or only whitespace.
    Empty,
    /// More characters than allowed.
    TooLong,
    /// A control character.
    Control,
}

/// The first rule of a free text that `v` breaks (non-empty, at most `max_chars` characters,
/// no control characters), checked in that order; `None` when it keeps them all.
pub fn text_fault(v: &str, max_chars: usize) -> Option<TextFault> {
    if v.trim().is_empty() {
        Some(TextFault::Empty)
    } else if v.chars().count() > max_chars {
        Some(TextFault::TooLong)
    } else if v.chars().any(|c| c.is_control()) {
        Some(TextFault::Control)
    } else {
        None
    }
}

/// A text field that must not be empty or only whitespace, and has an upper length.
pub fn text(field: &str, v: &str, max_chars: usize) -> Result<()> {
    match text_fault(v, max_chars) {
        None => Ok(()),
        Some(TextFault::Empty) => Err(Error::invalid(field, v, "must not be empty")),
        Some(TextFault::TooLong) => Err(Error::invalid(
            field,
            v,
            format!("must be at most {max_chars} characters"),
        )),
        Some(TextFault::Control) => Err(Error::invalid(
            field,
            v,
            "must not contain control characters",
        )),
    }
}

/// Optional text: `None` is fine, `Some` must pass [`text`].
pub fn opt_text(field: &str, v: Option<&str>, max_chars: usize) -> Result<()> {
    match v {
        Some(s) => text(field, s, max_chars),
        None => Ok(()),
    }
}

/// Office code: 2–16 capital letters or digits (e.g. `TAS01`).
pub fn office(field: &str, v: &str) -> Result<()> {
    if !(2..=16).contains(&v.len())
        || !v
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(Error::invalid(
            field,
            v,
            "must be 2-16 capital Latin letters or digits",
        ));
    }
    Ok(())
}

/// An RFC 3339 UTC timestamp as the registry stores it (`YYYY-MM-DDTHH:MM:SSZ`).
pub fn date_time(field: &str, v: &str) -> Result<()> {
    use time::format_description::well_known::Rfc3339;
    let ok = v.ends_with('Z') && time::OffsetDateTime::parse(v, &Rfc3339).is_ok();
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            v,
            "must be an RFC 3339 UTC timestamp (YYYY-MM-DDTHH:MM:SSZ)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinfl_of_13_digits_is_refused_naming_field_and_rule() {
        let e = pinfl("pinfl", "3120588004002").unwrap_err().to_string();
        assert!(
            e.contains("pinfl") && e.contains("exactly 14 digits"),
            "{e}"
        );
        assert!(pinfl("pinfl", "31205880040025").is_ok());
        assert!(pinfl("pinfl", "3120588004002a").is_err());
    }

    #[test]
    fn february_30_is_not_a_calendar_date() {
        let e = date("date_of_birth", "1985-02-30").unwrap_err().to_string();
        assert!(
            e.contains("date_of_birth") && e.contains("not a calendar date"),
            "{e}"
        );
        assert!(date("date_of_birth", "1984-02-29").is_ok());
        assert!(date("date_of_birth", "1985-13-01").is_err());
        assert!(date("date_of_birth", "85-02-03").is_err());
    }

    #[test]
    fn parse_date_names_the_fault_and_text_fault_the_first_rule_broken() {
        assert_eq!(parse_date("85-02-03"), Err(DateFault::Shape));
        assert_eq!(parse_date("1985-13-01"), Err(DateFault::Month));
        assert_eq!(
            parse_date("1985-02-30"),
            Err(DateFault::Day {
                month: Month::February,
                year: 1985
            })
        );
        assert!(
            parse_date("1800-01-01").is_ok(),
            "the year range is the caller's"
        );
        assert_eq!(text_fault(" ", 5), Some(TextFault::Empty));
        assert_eq!(text_fault("abcdef", 5), Some(TextFault::TooLong));
        assert_eq!(text_fault("a\tb", 5), Some(TextFault::Control));
        assert_eq!(text_fault("abc", 5), None);
    }

    #[test]
    fn series_and_citizenship_shapes() {
        assert!(series("series", "AD").is_ok());
        assert!(series("series", "A1").is_err());
        assert!(series("series", "ad").is_err());
        assert!(citizenship("citizenship", "XXA").is_ok());
        assert!(citizenship("citizenship", "UZ").is_err());
        // ICAO 9303-3 §5: only XXA, XXB, XXC and XXX among the XX codes.
        for ok in ["XXA", "XXB", "XXC", "XXX"] {
            assert_eq!(citizenship_fault(ok), None, "{ok}");
        }
        assert_eq!(citizenship_fault("XXZ"), Some(CitizenshipFault::UnknownXx));
        assert_eq!(citizenship_fault("uzb"), Some(CitizenshipFault::Shape));
        let e = citizenship("citizenship", "XXZ").unwrap_err().to_string();
        assert!(e.contains("XXA, XXB, XXC or XXX"), "{e}");
    }
}
