//! Conversions between chrono and the Avro logical types used in the schemas
//! (`timestamp-micros` as i64, `date` as days since the Unix epoch as i32).

use chrono::{DateTime, NaiveDate, Utc};

/// Microseconds since the Unix epoch, as `timestamp-micros` carries them.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The instant for an Avro `timestamp-micros`; `None` when out of chrono's range.
pub fn from_micros(us: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(us)
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a valid date"),
};

/// Days since 1970-01-01, as the Avro `date` logical type carries them.
pub fn to_days(d: NaiveDate) -> i32 {
    // Dates handled by socle lie well within i32 days of the epoch.
    i32::try_from((d - EPOCH).num_days()).unwrap_or(i32::MAX)
}

/// The date for an Avro `date`; `None` when out of chrono's range.
pub fn from_days(days: i32) -> Option<NaiveDate> {
    EPOCH.checked_add_signed(chrono::TimeDelta::try_days(i64::from(days))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        let d = NaiveDate::from_ymd_opt(1990, 2, 28).expect("valid date");
        assert_eq!(to_days(d), 7363);
        assert_eq!(from_days(to_days(d)), Some(d));
        assert_eq!(from_days(-1), NaiveDate::from_ymd_opt(1969, 12, 31));
    }

    #[test]
    fn micros_round_trip() {
        let t = DateTime::parse_from_rfc3339("2026-11-29T10:00:00.123456Z")
            .expect("valid timestamp")
            .with_timezone(&Utc);
        assert_eq!(from_micros(to_micros(t)), Some(t));
    }
}
