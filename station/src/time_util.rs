//! RFC 3339 timestamps as the registry stores them (UTC, `YYYY-MM-DDTHH:MM:SSZ`).

use std::time::SystemTime;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(SystemTime::from)
        .map_err(|e| e.to_string())
}

pub fn format_rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// RFC 3339 time `t` as this station writes whole-second times (UTC, no fraction): how a
/// time another party gave (the centre's `release_until`) is kept and shown here.
pub fn whole_seconds(t: &str) -> Result<String, String> {
    parse_rfc3339(t).map(format_rfc3339)
}

/// `t` without its fraction of a second.
pub fn floor_to_second(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

pub fn today_utc() -> time::Date {
    OffsetDateTime::now_utc().date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_seconds() {
        let t = parse_rfc3339("2026-11-25T12:30:00Z").expect("parse");
        assert_eq!(format_rfc3339(t), "2026-11-25T12:30:00Z");
        assert!(parse_rfc3339("2026-02-30T00:00:00Z").is_err());
        let t = parse_rfc3339("2026-11-25T12:30:00.999999Z").expect("parse");
        assert_eq!(format_rfc3339(floor_to_second(t)), "2026-11-25T12:30:00Z");
    }
}
