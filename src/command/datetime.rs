//! The two date-time shapes of protocol v1, read strictly and without any clock or locale.
//!
//! - an **instant** (`issued_at`): RFC 3339, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`;
//! - a **local date-time** (`deadline`): `YYYY-MM-DDTHH:MM:SS`, no offset — interpreted by the
//!   deployment's time base. It reaches PowerShell in exactly this form, parsed there with
//!   `ParseExact(…, 's', InvariantCulture)` so the console's culture cannot reinterpret it.

use std::fmt;

/// A calendar date and wall-clock time without offset, valid by the Gregorian calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalDateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl fmt::Display for LocalDateTime {
    /// The sortable `s` format: `2020-02-02T18:00:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

fn digits(text: &str, range: std::ops::Range<usize>) -> Option<u16> {
    let part = text.get(range)?;
    if part.bytes().all(|b| b.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        _ => 28,
    }
}

/// Reads `YYYY-MM-DDTHH:MM:SS` at the start of `text`; returns the value and the rest.
fn parse_prefix(text: &str) -> Result<(LocalDateTime, &str), String> {
    let shape = "expected YYYY-MM-DDTHH:MM:SS";
    let bytes = text.as_bytes();
    if bytes.len() < 19
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return Err(format!("{shape}, got {text:?}"));
    }
    let field = |range| digits(text, range).ok_or_else(|| format!("{shape}, got {text:?}"));
    let year = field(0..4)?;
    let [month, day, hour, minute, second] = [
        field(5..7)?,
        field(8..10)?,
        field(11..13)?,
        field(14..16)?,
        field(17..19)?,
    ]
    .map(|v| v as u8);
    if year < 1601 || !(1..=12).contains(&month) {
        return Err(format!("{text:?} is not a valid date"));
    }
    if day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return Err(format!("{text:?} is not a valid date and time"));
    }
    Ok((
        LocalDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        },
        &text[19..],
    ))
}

/// A local date-time without offset.
pub fn parse_local(text: &str) -> Result<LocalDateTime, String> {
    match parse_prefix(text)? {
        (value, "") => Ok(value),
        (_, rest) => Err(format!(
            "expected a local date-time without offset (YYYY-MM-DDTHH:MM:SS), got {text:?} (extra {rest:?})"
        )),
    }
}

/// An RFC 3339 instant; returns it unchanged once checked.
pub fn check_instant(text: &str) -> Result<(), String> {
    let (_, mut rest) = parse_prefix(text)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return Err(format!("{text:?}: empty fraction of a second"));
        }
        rest = &fraction[len..];
    }
    let offset_ok = match rest {
        "Z" | "z" => true,
        _ => {
            let b = rest.as_bytes();
            b.len() == 6
                && (b[0] == b'+' || b[0] == b'-')
                && b[3] == b':'
                && digits(rest, 1..3).is_some_and(|h| h <= 23)
                && digits(rest, 4..6).is_some_and(|m| m <= 59)
        }
    };
    if offset_ok {
        Ok(())
    } else {
        Err(format!(
            "expected an RFC 3339 time with Z or ±HH:MM, got {text:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_date_times() {
        assert_eq!(
            parse_local("2020-02-02T18:00:00")
                .map(|d| d.to_string())
                .as_deref(),
            Ok("2020-02-02T18:00:00")
        );
        assert!(parse_local("2024-02-29T00:00:00").is_ok());
        for bad in [
            "2023-02-29T00:00:00",
            "2020-13-01T00:00:00",
            "2020-02-02 18:00:00",
            "2020-02-02T24:00:00",
            "2020-02-02T18:00:00Z",
            "02/02/2020 18:00",
            "2020-2-2T18:00:00",
            "",
            "2020-02-02T18:00:0٣",
        ] {
            assert!(parse_local(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants() {
        for good in [
            "2020-01-31T09:12:00Z",
            "2020-01-31T09:12:00.123Z",
            "2020-01-31T09:12:00+01:00",
        ] {
            assert_eq!(check_instant(good), Ok(()), "{good}");
        }
        for bad in [
            "2020-01-31T09:12:00",
            "2020-01-31T09:12:00.Z",
            "2020-01-31T09:12:00+1:00",
            "2020-01-31T09:12:00+24:00",
        ] {
            assert!(check_instant(bad).is_err(), "{bad}");
        }
    }
}
