//! SIREN (company, 9 digits) and SIRET (establishment, 14 digits = SIREN + NIC).
//!
//! Both carry a Luhn check digit. La Poste is the exception: it has so many establishments
//! that INSEE ran out of Luhn-valid NICs, so the SIRETs of SIREN 356000000 are valid when
//! either the Luhn check passes or the sum of their 14 digits is a multiple of 5.

use super::{compact, Result, ValidationError};

/// The SIREN of La Poste, whose SIRETs follow the digit-sum rule.
pub const LA_POSTE_SIREN: &str = "356000000";

/// Whether a string of ASCII digits passes the Luhn check. `false` on any other character.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// A valid SIREN, 9 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Siren(String);

impl Siren {
    /// Parses a SIREN; spaces and dots are ignored.
    ///
    /// # Errors
    /// `siren.characters`, `siren.length` or `siren.bad_checksum`.
    pub fn parse(input: &str) -> Result<Siren> {
        let s = compact(input);
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::SirenCharacters);
        }
        if s.len() != 9 {
            return Err(ValidationError::SirenLength(s.len()));
        }
        if !luhn_valid(&s) {
            return Err(ValidationError::SirenBadChecksum);
        }
        Ok(Siren(s))
    }

    /// The 9 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Siren {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid SIRET, 14 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Siret(String);

impl Siret {
    /// Parses a SIRET; spaces and dots are ignored.
    ///
    /// # Errors
    /// `siret.characters`, `siret.length`, `siret.bad_checksum`,
    /// `siret.la_poste_checksum` or `siret.siren_bad_checksum`.
    pub fn parse(input: &str) -> Result<Siret> {
        let s = compact(input);
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::SiretCharacters);
        }
        if s.len() != 14 {
            return Err(ValidationError::SiretLength(s.len()));
        }
        if !luhn_valid(&s) {
            if !s.starts_with(LA_POSTE_SIREN) {
                return Err(ValidationError::SiretBadChecksum);
            }
            let digit_sum: u32 = s.bytes().map(|b| u32::from(b - b'0')).sum();
            if digit_sum % 5 != 0 {
                return Err(ValidationError::SiretLaPosteChecksum);
            }
        }
        if !luhn_valid(&s[..9]) {
            return Err(ValidationError::SiretSirenBadChecksum);
        }
        Ok(Siret(s))
    }

    /// The 14 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The company's SIREN (first 9 digits).
    pub fn siren(&self) -> Siren {
        Siren(self.0[..9].to_owned())
    }

    /// The establishment's NIC (last 5 digits).
    pub fn nic(&self) -> &str {
        &self.0[9..]
    }
}

impl std::fmt::Display for Siret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<Siret>) -> &'static str {
        r.map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[test]
    fn precise_reasons() {
        assert_eq!(code(Siret::parse("73282932000074")), "ok");
        assert_eq!(code(Siret::parse("73282932000079")), "siret.bad_checksum");
        assert_eq!(
            code(Siret::parse("35600000049838")),
            "siret.la_poste_checksum"
        );
        assert_eq!(code(Siret::parse("1200001530001")), "siret.length");
        assert_eq!(code(Siret::parse("1200001530001a")), "siret.characters");
        // Luhn-valid as 14 digits, but the SIREN part is not.
        assert_eq!(
            code(Siret::parse("00000000100008")),
            "siret.siren_bad_checksum"
        );
        assert_eq!(
            Siren::parse("404833047").map_err(|e| e.code()),
            Err("siren.bad_checksum")
        );
    }

    #[test]
    fn parts() {
        let s = Siret::parse("130 005 481 21305").expect("valid");
        assert_eq!(s.as_str(), "13000548121305");
        assert_eq!(s.siren().as_str(), "130005481");
        assert_eq!(s.nic(), "21305");
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("12a"));
    }
}
