//! Date and DateTime literals as the languages spell them.
//!
//! Date is `YYYY-MM-DD` (stored as Arrow Date32, days since 1970-01-01);
//! DateTime is RFC 3339 (stored as UTC milliseconds since the epoch). A
//! DateTime without an offset is not accepted: the instant would be ambiguous.

use chrono::{DateTime, NaiveDate};

/// Days since 1970-01-01 for `YYYY-MM-DD`, or `None` when malformed.
pub fn parse_date(s: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((d - epoch).num_days()).ok()
}

/// UTC milliseconds since the epoch for an RFC 3339 timestamp.
pub fn parse_datetime(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_and_datetimes() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_datetime("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_datetime("1970-01-01T00:00:01"), None);
    }
}
