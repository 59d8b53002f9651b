//! Dates and times as a Dutch practice lives them: its own zone
//! (Europe/Amsterdam, with summer time, from jiff's bundled time-zone
//! database so a phone needs no system copy), calendar months for the
//! figures, and strict `YYYY-MM-DD` dates.

use std::sync::OnceLock;

use jiff::{Timestamp, ToSpan, ZonedDateTime, civil::Date, tz::TimeZone};

use crate::error::{Error, Result};

/// The practice's zone.
pub(crate) fn practice_zone() -> &'static TimeZone {
    static ZONE: OnceLock<TimeZone> = OnceLock::new();
    // The database is bundled, so the zone is always there; UTC only if a
    // build ever lost it (a test checks summer time, so that would show).
    ZONE.get_or_init(|| TimeZone::get("Europe/Amsterdam").unwrap_or(TimeZone::UTC))
}

/// A moment (ms since the Unix epoch) in the practice's zone.
pub(crate) fn local(ms: i64) -> Option<ZonedDateTime> {
    Some(
        Timestamp::from_millisecond(ms)
            .ok()?
            .to_zoned_datetime(practice_zone().clone()),
    )
}

/// A calendar date written `YYYY-MM-DD`, nothing more or less.
pub(crate) fn parse_date(text: &str, field: &'static str) -> Result<Date> {
    jiff::fmt::strtime::parse("%Y-%m-%d", text)
        .and_then(|t| t.to_date())
        .map_err(|_| Error::invalid(field, format!("{text:?} is not YYYY-MM-DD")))
}

/// Each calendar month (in the practice's zone) from the one holding `from`
/// to the one holding `to`, as ("YYYY-MM", the month's last millisecond).
pub(crate) fn months_between(from: i64, to: i64) -> Vec<(String, i64)> {
    let first_of = |ms: i64| local(ms).map(|z| z.date().first_of_month());
    let (Some(mut month), Some(last)) = (first_of(from), first_of(to)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while month <= last {
        let Ok(next) = month.checked_add(1.month()) else {
            break;
        };
        let Ok(start_of_next) = next.to_zoned_datetime(practice_zone().clone()) else {
            break;
        };
        out.push((
            format!("{:04}-{:02}", month.year(), month.month()),
            start_of_next.timestamp().as_millisecond() - 1,
        ));
        month = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>()
            .map(|t| t.as_millisecond())
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn months_end_at_midnight_in_the_netherlands() {
        let months = months_between(ms("2026-01-31T12:00:00Z"), ms("2026-03-01T00:00:00Z"));
        let labels: Vec<&str> = months.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["2026-01", "2026-02", "2026-03"]);
        // January ends at midnight Dutch winter time: 23:00 UTC.
        assert_eq!(months[0].1, ms("2026-01-31T23:00:00Z") - 1);
        // March ends in summer time: 22:00 UTC.
        assert_eq!(months[2].1, ms("2026-03-31T22:00:00Z") - 1);
        // Half past midnight on 1 April in Amsterdam is April, though UTC
        // still says March.
        let april = months_between(ms("2026-03-31T22:30:00Z"), ms("2026-03-31T22:30:00Z"));
        assert_eq!(april[0].0, "2026-04");
        // A leap year's February ends on the 29th.
        let feb = months_between(ms("2028-02-10T12:00:00Z"), ms("2028-02-10T12:00:00Z"));
        assert_eq!(feb[0].1, ms("2028-02-29T23:00:00Z") - 1);
    }

    #[test]
    fn summer_time_follows_the_zone() -> Result<()> {
        // The night the clocks go forward (29 March 2026, 02:00 to 03:00).
        let before = local(ms("2026-03-29T00:59:00Z")).ok_or(Error::Wiped)?;
        let after = local(ms("2026-03-29T01:00:00Z")).ok_or(Error::Wiped)?;
        assert_eq!((before.hour(), after.hour()), (1, 3));
        // And back (25 October 2026, 03:00 to 02:00).
        let summer = local(ms("2026-10-25T00:59:00Z")).ok_or(Error::Wiped)?;
        let winter = local(ms("2026-10-25T01:00:00Z")).ok_or(Error::Wiped)?;
        assert_eq!((summer.hour(), winter.hour()), (2, 2));
        Ok(())
    }

    #[test]
    fn dates_are_strict() {
        assert!(parse_date("2026-12-01", "date").is_ok());
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "1-12-2026",
            "2026-12-01T10:00",
            "",
        ] {
            assert!(parse_date(bad, "date").is_err(), "{bad}");
        }
    }
}
