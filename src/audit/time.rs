//! Instants of the audit commands: journal timestamps (Unix epoch milliseconds) rendered as
//! RFC 3339 UTC, and the `--since`/`--until` arguments read as RFC 3339 instants or dates.
//!
//! No clock and no locale: pure calendar arithmetic (proleptic Gregorian, days from 1970-01-01).

use std::fmt::Write as _;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// `ms` (Unix epoch milliseconds) as RFC 3339 UTC with milliseconds:
/// `2020-01-31T09:12:00.000Z`.
#[must_use]
pub fn rfc3339_millis(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let mut s = String::with_capacity(24);
    let _ = write!(
        s,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    );
    s
}

/// Which end of a range an argument names: a bare date means the start of that day for
/// `--since` and the end of that day (its last millisecond) for `--until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Since,
    Until,
}

fn number(text: &str, range: std::ops::Range<usize>) -> Result<u32, String> {
    let part = text
        .get(range.clone())
        .ok_or_else(|| format!("{text:?} is too short"))?;
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{text:?}: expected digits at {}..{}",
            range.start, range.end
        ));
    }
    part.parse().map_err(|e| format!("{text:?}: {e}"))
}

fn date(text: &str) -> Result<i64, String> {
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(format!(
            "{text:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 instant"
        ));
    }
    let year = i64::from(number(text, 0..4)?);
    let month = number(text, 5..7)?;
    let day = number(text, 8..10)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(format!("{text:?} is not a calendar date"));
    }
    Ok(days_from_civil(year, month, day))
}

/// Reads `--since`/`--until`: `YYYY-MM-DD` (UTC day; see [`Bound`]) or an RFC 3339 instant
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`t`/`z` and a space separator accepted).
/// Returns Unix epoch milliseconds (fractions below a millisecond are cut).
///
/// # Errors
/// A message naming what is wrong with `text`.
pub fn parse_instant(text: &str, bound: Bound) -> Result<i64, String> {
    let text = text.trim();
    let days = date(text)?;
    if text.len() == 10 {
        let start = days * 86_400_000;
        return Ok(match bound {
            Bound::Since => start,
            Bound::Until => start + 86_400_000 - 1,
        });
    }
    let b = text.as_bytes();
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
        return Err(format!(
            "{text:?} is not an RFC 3339 instant (YYYY-MM-DDTHH:MM:SSZ)"
        ));
    }
    let hour = i64::from(number(text, 11..13)?);
    let minute = i64::from(number(text, 14..16)?);
    let second = i64::from(number(text, 17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("{text:?}: time of day out of range"));
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(format!("{text:?}: empty fraction of a second"));
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let h = i64::from(number(text, i + 1..i + 3)?);
            let m = i64::from(number(text, i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return Err(format!("{text:?}: offset out of range"));
            }
            if *sign == b'-' {
                -(h * 60 + m)
            } else {
                h * 60 + m
            }
        }
        _ => {
            return Err(format!("{text:?}: an RFC 3339 instant ends in Z or ±HH:MM"));
        }
    };
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn renders_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_580_461_920_000),
            "2020-01-31T09:12:00.000Z"
        );
        assert_eq!(
            rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn reads_dates_and_instants() {
        assert_eq!(
            parse_instant("2020-01-31", Bound::Since),
            Ok(1_580_428_800_000)
        );
        assert_eq!(
            parse_instant("2020-01-31", Bound::Until),
            Ok(1_580_428_800_000 + 86_400_000 - 1)
        );
        assert_eq!(
            parse_instant("2020-01-31T09:12:00Z", Bound::Since),
            Ok(1_580_461_920_000)
        );
        assert_eq!(
            parse_instant("2020-01-31T10:12:00.5+01:00", Bound::Until),
            Ok(1_580_461_920_500)
        );
        assert_eq!(
            parse_instant("2020-01-31t09:12:00.123456z", Bound::Since),
            Ok(1_580_461_920_123)
        );
        for bad in [
            "",
            "yesterday",
            "2020-02-30",
            "2020-13-01",
            "2020-01-31T25:00:00Z",
            "2020-01-31T09:12:00",
            "2020-01-31T09:12:00.Z",
            "2020-01-31T09:12:00+0100",
        ] {
            assert!(parse_instant(bad, Bound::Since).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn rendering_reads_back(ms in -62_000_000_000_000i64..250_000_000_000_000) {
            let text = rfc3339_millis(ms);
            if ms >= 0 {
                prop_assert_eq!(parse_instant(&text, Bound::Since), Ok(ms));
            }
        }
    }
}
