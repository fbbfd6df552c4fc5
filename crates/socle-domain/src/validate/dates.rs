//! Plausibility of dates: birth dates, dates of facts, periods.
//!
//! The domain crate has no clock: callers pass `today` (in ingestion, the day the message
//! is validated, in Europe/Paris), which also keeps replays deterministic.

use chrono::{Datelike, NaiveDate};

use super::{Result, ValidationError};

/// Youngest age at which a person can be registered or followed (work-study from 14:
/// "stage d'observation", Missions Locales' youngest public is 16, schooling ends at 16).
pub const MIN_AGE_YEARS: u32 = 14;
/// Oldest plausible age of a living person.
pub const MAX_AGE_YEARS: u32 = 120;
/// No date of a fact about a person (registration, exit...) precedes this year.
pub const OLDEST_PLAUSIBLE_YEAR: i32 = 1900;

/// Age in whole years on `on` of a person born on `birth` (0 if `on` precedes `birth`).
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> u32 {
    on.years_since(birth).unwrap_or(0)
}

/// Checks a birth date: not in the future, and an age between [`MIN_AGE_YEARS`] and
/// [`MAX_AGE_YEARS`] today. Returns the age.
///
/// # Errors
/// `date.in_future`, `date.age_too_low` or `date.age_too_high`.
pub fn birth_date(birth: NaiveDate, today: NaiveDate) -> Result<u32> {
    if birth > today {
        return Err(ValidationError::DateInFuture(birth));
    }
    let age = age_on(birth, today);
    if age < MIN_AGE_YEARS {
        return Err(ValidationError::AgeTooLow(age));
    }
    if age > MAX_AGE_YEARS {
        return Err(ValidationError::AgeTooHigh(age));
    }
    Ok(age)
}

/// Checks the date of a fact that has happened (registration, exit, end of a follow):
/// not after `today`, not before [`OLDEST_PLAUSIBLE_YEAR`].
///
/// # Errors
/// `date.in_future` or `date.too_old`.
pub fn past_date(date: NaiveDate, today: NaiveDate) -> Result<()> {
    if date > today {
        return Err(ValidationError::DateInFuture(date));
    }
    if date.year() < OLDEST_PLAUSIBLE_YEAR {
        return Err(ValidationError::DateTooOld(date));
    }
    Ok(())
}

/// Checks that a period does not end before it starts (an open end is fine; a period may
/// start and end on the same day).
///
/// # Errors
/// `date.period_ends_before_start`.
pub fn period(start: NaiveDate, end: Option<NaiveDate>) -> Result<()> {
    match end {
        Some(end) if end < start => Err(ValidationError::PeriodEndsBeforeStart { start, end }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    #[test]
    fn birth_dates() {
        let today = d(2026, 3, 15);
        assert_eq!(birth_date(d(2000, 3, 15), today), Ok(26));
        assert_eq!(birth_date(d(2012, 3, 15), today), Ok(14));
        assert_eq!(
            birth_date(d(2012, 3, 16), today).map_err(|e| e.code()),
            Err("date.age_too_low")
        );
        assert_eq!(birth_date(d(1905, 3, 16), today), Ok(120));
        assert_eq!(
            birth_date(d(1905, 3, 15), today).map_err(|e| e.code()),
            Err("date.age_too_high")
        );
        assert_eq!(
            birth_date(d(2026, 3, 16), today).map_err(|e| e.code()),
            Err("date.in_future")
        );
        // Born on 29 February: 14 on 28 February of a common year? No: on 1 March.
        assert_eq!(age_on(d(2008, 2, 29), d(2022, 2, 28)), 13);
        assert_eq!(age_on(d(2008, 2, 29), d(2022, 3, 1)), 14);
    }

    #[test]
    fn facts_and_periods() {
        let today = d(2026, 3, 15);
        assert!(past_date(today, today).is_ok());
        assert_eq!(
            past_date(d(2026, 3, 16), today).map_err(|e| e.code()),
            Err("date.in_future")
        );
        assert_eq!(
            past_date(d(1899, 12, 31), today).map_err(|e| e.code()),
            Err("date.too_old")
        );
        assert!(period(today, None).is_ok());
        assert!(period(today, Some(today)).is_ok());
        assert_eq!(
            period(today, Some(d(2026, 3, 14))).map_err(|e| e.code()),
            Err("date.period_ends_before_start")
        );
    }
}
