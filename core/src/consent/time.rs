//! Calendar months from Unix milliseconds (UTC), for the monthly figures.

const DAY_MS: i64 = 86_400_000;

/// (year, month) of a day number since 1970-01-01 (Howard Hinnant's
/// civil-from-days).
fn civil(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// Days since 1970-01-01 of the first day of (year, month).
fn days_from_civil(year: i64, month: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Each month from the one holding `from` to the one holding `to`, as
/// ("YYYY-MM", the month's last millisecond).
pub(super) fn months_between(from: i64, to: i64) -> Vec<(String, i64)> {
    let (mut year, mut month) = civil(from.div_euclid(DAY_MS));
    let last = civil(to.div_euclid(DAY_MS));
    let mut out = Vec::new();
    while (year, month) <= last {
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let end = days_from_civil(next_year, next_month) * DAY_MS - 1;
        out.push((format!("{year:04}-{month:02}"), end));
        (year, month) = (next_year, next_month);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_their_ends() {
        // 2026-01-31T12:00Z to 2026-03-01T00:00Z.
        let from = 1_769_860_800_000;
        let to = 1_772_323_200_000;
        let months = months_between(from, to);
        let labels: Vec<&str> = months.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["2026-01", "2026-02", "2026-03"]);
        // The end of January is the millisecond before 2026-02-01T00:00Z.
        assert_eq!(months[0].1, 1_769_904_000_000 - 1);
        // A leap year February ends on the 29th.
        let feb_2028 = days_from_civil(2028, 3) - days_from_civil(2028, 2);
        assert_eq!(feb_2028, 29);
        assert_eq!(civil(0), (1970, 1));
    }
}
