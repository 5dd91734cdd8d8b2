//! Times in SQLite text. Written as RFC 3339 with `+00:00` and as many fractional digits as needed
//! (the spelling earlier Oppidum versions stored, so comparisons of stored times stay textual and
//! correct); read from that and from the other spellings SQLite's own functions produce.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};

/// How a time is stored.
pub(crate) fn format(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Reads a stored time: RFC 3339, or `YYYY-MM-DD HH:MM[:SS[.fff]]` with an optional `Z` or offset
/// (without one, UTC), with a space or a `T` between date and time.
pub(crate) fn parse(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    const FORMATS: [&str; 6] = ["%F %T%.f", "%F %R", "%FT%T%.f", "%FT%R", "%F %T%.f%:z", "%FT%T%.f%:z"];
    let trimmed = text.strip_suffix('Z').unwrap_or(text);
    for format in FORMATS {
        if let Ok(time) = DateTime::parse_from_str(trimmed, format) {
            return Some(time.with_timezone(&Utc));
        }
        if let Ok(naive) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Some(Utc.from_utc_datetime(&naive));
        }
    }
    None
}

/// SQLite's `julianday()` numbers.
pub(crate) fn from_julian_day(day: f64) -> Option<DateTime<Utc>> {
    const UNIX_EPOCH_JULIAN_DAY: f64 = 2_440_587.5;
    let seconds = (day - UNIX_EPOCH_JULIAN_DAY) * 86_400.0;
    if !seconds.is_finite() || seconds.abs() > 1.0e13 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (whole, nanos) = (seconds.floor() as i64, ((seconds - seconds.floor()) * 1e9) as u32);
    DateTime::from_timestamp(whole, nanos.min(999_999_999))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_time_spellings_read_back() {
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 9, 41, 58).single().expect("time");
        for text in [
            "2026-12-02T09:41:58+00:00",
            "2026-12-02T09:41:58Z",
            "2026-12-02 09:41:58",
            "2026-12-02 09:41:58Z",
            "2026-12-02T09:41:58",
            "2026-12-02T10:41:58+01:00",
            "2026-12-02 10:41:58+01:00",
        ] {
            assert_eq!(parse(text), Some(at), "{text}");
        }
        assert_eq!(parse(&format(&at)), Some(at));
        assert_eq!(format(&at), "2026-12-02T09:41:58+00:00");
        let precise = at + chrono::Duration::microseconds(1500);
        assert_eq!(format(&precise), "2026-12-02T09:41:58.001500+00:00");
        assert_eq!(parse("2026-12-02 09:41"), Some(at - chrono::Duration::seconds(58)));
        assert_eq!(parse("yesterday"), None);
        assert_eq!(from_julian_day(2_440_587.5), DateTime::from_timestamp(0, 0));
        assert_eq!(from_julian_day(f64::NAN), None);
    }
}
