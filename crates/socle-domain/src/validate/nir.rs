//! NIR, the French social-security number (numéro d'inscription au répertoire).
//!
//! Layout (15 characters): sex (1) · year of birth (2) · month of birth (2) · département of
//! birth (2: digits, or 2A/2B for Corsica since 1976) · commune of birth or country code for
//! people born abroad (3) · order number (3) · key (2). The key is
//! `97 − (first 13 digits mod 97)`, where Corsica's 2A counts as 19 and 2B as 18.
//!
//! Sex digits 1 and 2 are definitive numbers; 3 and 4 (foreign-born people awaiting
//! registration) and 7 and 8 (temporary numbers, NIA) also occur in operators' files and are
//! accepted. Months 20, 30–42 and 50–99 are the fictitious months INSEE gives when the month
//! of birth is unknown or the civil-status documents were incomplete.

use super::{compact, Result, ValidationError};

/// The specimen NIR printed on official forms. Key-valid, but nobody's.
const SPECIMEN: &str = "269054958815780";

/// A NIR that passed every rule, in canonical form (15 characters, upper-case 2A/2B).
///
/// Its `Debug` form hides the value: a NIR is personal data and must not reach logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Nir(String);

/// The sex coded by a NIR's first digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

impl std::fmt::Debug for Nir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nir(<redacted>)")
    }
}

impl Nir {
    /// Parses and checks a NIR. Spaces and dots are ignored; `2a`/`2b` are accepted.
    ///
    /// # Errors
    /// The `nir.*` variant of [`ValidationError`] naming the first rule broken.
    pub fn parse(input: &str) -> Result<Nir> {
        let s = compact(input).to_ascii_uppercase();
        let chars: Vec<char> = s.chars().collect();
        if chars.len() != 15 {
            return Err(ValidationError::NirLength(chars.len()));
        }
        let dep: String = chars[5..7].iter().collect();
        let digit_positions = (0..15).filter(|&i| i != 5 && i != 6);
        if digit_positions.clone().any(|i| !chars[i].is_ascii_digit()) {
            return Err(ValidationError::NirCharacters);
        }
        let corsica = match dep.as_str() {
            "2A" => Some(19u64),
            "2B" => Some(18u64),
            _ if dep.chars().all(|c| c.is_ascii_digit()) => None,
            _ if dep.starts_with('2') && dep[1..].chars().all(|c| c.is_ascii_alphabetic()) => {
                return Err(ValidationError::NirDepartement(dep));
            }
            _ => return Err(ValidationError::NirCharacters),
        };
        // Every character is now ASCII, so byte slicing is safe.
        let sex = chars[0];
        if !matches!(sex, '1' | '2' | '3' | '4' | '7' | '8') {
            return Err(ValidationError::NirSex(sex));
        }
        let month = two_digits(&s[3..5]);
        if !matches!(month, 1..=12 | 20 | 30..=42 | 50..=99) {
            return Err(ValidationError::NirMonth(month));
        }
        if dep == "00" {
            return Err(ValidationError::NirDepartement(dep));
        }
        if &s[7..10] == "000" {
            return Err(ValidationError::NirCommune);
        }
        if &s[10..13] == "000" {
            return Err(ValidationError::NirOrder);
        }
        let number: u64 = match corsica {
            Some(code) => format!("{}{code}{}", &s[..5], &s[7..13]).parse(),
            None => s[..13].parse(),
        }
        .map_err(|_| ValidationError::NirCharacters)?;
        let expected = u8::try_from(97 - number % 97).unwrap_or(u8::MAX);
        let found = two_digits(&s[13..15]);
        if expected != found {
            return Err(ValidationError::NirBadKey { expected, found });
        }
        if s == SPECIMEN {
            return Err(ValidationError::NirSpecimen);
        }
        Ok(Nir(s))
    }

    /// The canonical 15-character form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Sex coded by the first digit.
    pub fn sex(&self) -> Sex {
        match self.0.as_bytes()[0] {
            b'1' | b'3' | b'7' => Sex::Male,
            _ => Sex::Female,
        }
    }

    /// Whether this is a temporary number (first digit 7 or 8, NIA).
    pub fn is_temporary(&self) -> bool {
        matches!(self.0.as_bytes()[0], b'7' | b'8')
    }

    /// The last two digits of the year of birth.
    pub fn birth_year_2d(&self) -> u8 {
        two_digits(&self.0[1..3])
    }

    /// The month of birth, `None` when the NIR carries a fictitious month.
    pub fn birth_month(&self) -> Option<u8> {
        Some(two_digits(&self.0[3..5])).filter(|m| (1..=12).contains(m))
    }

    /// The département-of-birth part: two digits, `2A` or `2B` (`99` = born abroad).
    pub fn birth_departement(&self) -> &str {
        &self.0[5..7]
    }

    /// Checks that the NIR's year (and month, when not fictitious) agree with a birth date.
    ///
    /// # Errors
    /// [`ValidationError::NirBirthDateMismatch`].
    pub fn check_birth_date(&self, birth_date: chrono::NaiveDate) -> Result<()> {
        use chrono::Datelike;
        let year_ok =
            u32::from(self.birth_year_2d()) == birth_date.year().rem_euclid(100).unsigned_abs();
        let month_ok = self
            .birth_month()
            .is_none_or(|m| u32::from(m) == birth_date.month());
        if year_ok && month_ok {
            Ok(())
        } else {
            Err(ValidationError::NirBirthDateMismatch)
        }
    }
}

/// Two ASCII digits as a number; callers have checked they are digits.
fn two_digits(s: &str) -> u8 {
    s.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> &'static str {
        Nir::parse(s).map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[test]
    fn precise_reasons() {
        assert_eq!(code("295109912611193"), "ok");
        assert_eq!(code("295109912611199"), "nir.bad_key");
        assert_eq!(code("253072C07300443"), "nir.departement");
        assert_eq!(code("941208078200575"), "nir.sex");
        assert_eq!(code("123456789"), "nir.length");
        assert_eq!(code("14106807820055X"), "nir.characters");
        assert_eq!(code("269054958815780"), "nir.specimen");
        // Month 13 and 00 are not months; 20, 35, 50 are fictitious months.
        assert_eq!(code(&with_key("1411380782005")), "nir.month");
        assert_eq!(code(&with_key("1410080782005")), "nir.month");
        assert_eq!(code(&with_key("1412580782005")), "nir.month");
        assert_eq!(code(&with_key("1413580782005")), "ok");
        assert_eq!(code(&with_key("1415080782005")), "ok");
        assert_eq!(code(&with_key("1410600782005")), "nir.departement");
        assert_eq!(code(&with_key("1410680000005")), "nir.commune");
        assert_eq!(code(&with_key("1410680782000")), "nir.order");
    }

    fn with_key(first13: &str) -> String {
        let n: u64 = first13.parse().expect("digits");
        format!("{first13}{:02}", 97 - n % 97)
    }

    #[test]
    fn accessors_and_birth_date() {
        let nir = Nir::parse("2 95 10 99 126 111 93").expect("valid");
        assert_eq!(nir.as_str(), "295109912611193");
        assert_eq!(nir.sex(), Sex::Female);
        assert_eq!(nir.birth_year_2d(), 95);
        assert_eq!(nir.birth_month(), Some(10));
        assert_eq!(nir.birth_departement(), "99");
        assert!(!nir.is_temporary());
        assert_eq!(format!("{nir:?}"), "Nir(<redacted>)");
        let d = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).expect("valid date");
        assert!(nir.check_birth_date(d(1995, 10, 3)).is_ok());
        assert_eq!(
            nir.check_birth_date(d(1995, 11, 3)).map_err(|e| e.code()),
            Err("nir.birth_date_mismatch")
        );
        let fictitious = Nir::parse("141208078200587").expect("valid");
        assert_eq!(fictitious.birth_month(), None);
        assert!(fictitious.check_birth_date(d(1941, 7, 1)).is_ok());
        assert_eq!(
            Nir::parse("141062a78200555")
                .expect("valid")
                .birth_departement(),
            "2A"
        );
    }
}
