//! Time and identity as plain data.
//!
//! `replay` never reads a clock and never makes an id: the engine stamps every journaled event with
//! the time it observed and names every job, and the machines only compare and add those values.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A point in time, in milliseconds since the Unix epoch, as observed by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This time plus `millis`, saturating at the end of time instead of overflowing.
    pub fn plus_millis(self, millis: u64) -> Timestamp {
        let millis = i64::try_from(millis).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }

    /// Milliseconds from `earlier` to `self`; zero when `earlier` is later (clocks can step back).
    pub fn millis_since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }
}

impl fmt::Display for Timestamp {
    /// Renders as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), computed without any clock or time-zone data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let day_secs = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            day_secs / 3600,
            (day_secs / 60) % 60,
            day_secs % 60
        )
    }
}

/// Serializes a timestamp as RFC 3339 text (its `Display`), for documents read by people and
/// tools: `#[serde(serialize_with = "replay::serialize_rfc3339")]`.
pub fn serialize_rfc3339<S: serde::Serializer>(
    at: &Timestamp,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(at)
}

/// [`serialize_rfc3339`] for an optional timestamp (`null` when absent).
pub fn serialize_rfc3339_opt<S: serde::Serializer>(
    at: &Option<Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.collect_str(at),
        None => serializer.serialize_none(),
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a proleptic Gregorian date.
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
    // Both values are within 1..=31 and 1..=12 by construction.
    (year, month as u32, day as u32)
}

/// The identity of a job: one command received from the portal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobId(pub Uuid);

impl JobId {
    /// The pseudo-job under which connector-wide events (started, stopped) are journaled.
    pub const CONNECTOR: JobId = JobId(Uuid::nil());
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_580_461_920_123).to_string(),
            "2020-01-31T09:12:00.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn time_arithmetic_saturates() {
        assert_eq!(Timestamp(i64::MAX - 1).plus_millis(10), Timestamp(i64::MAX));
        assert_eq!(Timestamp(5).millis_since(Timestamp(10)), 0);
        assert_eq!(Timestamp(10).millis_since(Timestamp(4)), 6);
    }
}
