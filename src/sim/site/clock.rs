//! Time and identifiers for the site simulator: UTC timestamps without a date library, and ids
//! shaped like ConfigMgr's (GUIDs in its spellings, `Res_` resource ids).

use std::time::{SystemTime, UNIX_EPOCH};

/// A calendar date-time (no time zone attached; the caller knows whether it is UTC or local).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

impl CivilTime {
    /// A validated date-time.
    pub fn new(
        year: i64,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> Option<CivilTime> {
        let valid = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        valid.then_some(CivilTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// Seconds since the Unix epoch, reading the fields as UTC.
    pub fn unix_seconds(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    pub fn from_unix_seconds(seconds: i64) -> CivilTime {
        let days = seconds.div_euclid(86_400);
        let rest = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        CivilTime {
            year,
            month,
            day,
            hour: (rest / 3600) as u32,
            minute: (rest % 3600 / 60) as u32,
            second: (rest % 60) as u32,
        }
    }

    /// The sortable `s` format: `yyyy-MM-ddTHH:mm:ss`.
    pub fn sortable(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Parses exactly the sortable `s` format (`yyyy-MM-ddTHH:mm:ss`), as .NET's `ParseExact`
    /// with the invariant culture does.
    pub fn parse_sortable(text: &str) -> Option<CivilTime> {
        let b = text.as_bytes();
        if b.len() != 19
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = &text[range];
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())
                .flatten()
        };
        CivilTime::new(
            i64::from(num(0..4)?),
            num(5..7)?,
            num(8..10)?,
            num(11..13)?,
            num(14..16)?,
            num(17..19)?,
        )
    }
}

/// Now, in UTC.
pub fn now() -> CivilTime {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    CivilTime::from_unix_seconds(seconds)
}

/// Now, in UTC, as RFC 3339 (`2020-01-31T09:12:00Z`): the effect log's and the state's stamps.
pub fn now_rfc3339() -> String {
    format!("{}Z", now().sortable())
}

/// A fresh GUID, upper-case, without braces (`3F1F6A2B-…`).
pub fn guid_upper() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string().to_uppercase()
}

/// A fresh GUID, upper-case, in braces (`{3F1F6A2B-…}`): deployment and group ids.
pub fn guid_braced() -> String {
    format!("{{{}}}", guid_upper())
}

/// A fresh GUID, lower-case (`8c1e2f3a-…`): the suffix of `Application_`, `DeploymentType_`,
/// `Content_` logical names.
pub fn guid_lower() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// A fresh SDM resource id, `Res_` and nine or ten digits.
pub fn resource_id() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    format!("Res_{}", 100_000_000 + n % 2_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips() {
        for days in [-1_000_000, -1, 0, 1, 18_262, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(18_262), (2020, 1, 1));
        let t = CivilTime::parse_sortable("2020-02-02T18:00:00").expect("valid");
        assert_eq!(CivilTime::from_unix_seconds(t.unix_seconds()), t);
        assert_eq!(t.unix_seconds(), 1_580_666_400);
    }

    #[test]
    fn the_sortable_format_is_strict() {
        assert!(CivilTime::parse_sortable("2020-02-30T18:00:00").is_none());
        assert!(CivilTime::parse_sortable("2020-02-02 18:00:00").is_none());
        assert!(CivilTime::parse_sortable("2020-02-02T18:00:00Z").is_none());
        assert!(CivilTime::parse_sortable("2020-2-02T18:00:000").is_none());
        assert!(CivilTime::parse_sortable("+020-02-02T18:00:00").is_none());
        assert_eq!(
            CivilTime::parse_sortable("2024-02-29T23:59:59").map(|t| t.sortable()),
            Some("2024-02-29T23:59:59".into())
        );
    }

    #[test]
    fn ids_have_configmgr_shapes() {
        let g = guid_braced();
        assert!(g.starts_with('{') && g.ends_with('}') && g.len() == 38);
        assert_eq!(g, g.to_uppercase());
        let r = resource_id();
        assert!(r.starts_with("Res_") && r[4..].bytes().all(|b| b.is_ascii_digit()));
        assert!(now_rfc3339().ends_with('Z'));
    }
}
