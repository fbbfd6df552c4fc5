//! France Travail job-seeker identifiers (identifiant demandeur d'emploi).
//!
//! Two formats are in use: the legacy 8 characters (7 digits then a digit or a capital
//! letter) and the newer 11 digits. Only ASCII is accepted; a lower-case final letter is
//! upper-cased.

use super::{Result, ValidationError};

/// A France Travail identifier in canonical form.
///
/// Its `Debug` form hides the value: it identifies a person.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FranceTravailId(String);

impl std::fmt::Debug for FranceTravailId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FranceTravailId(<redacted>)")
    }
}

impl FranceTravailId {
    /// Parses an identifier (surrounding whitespace is ignored).
    ///
    /// # Errors
    /// [`ValidationError::FranceTravailIdFormat`].
    pub fn parse(input: &str) -> Result<FranceTravailId> {
        let s = input.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        let ok = match b.len() {
            8 => {
                b[..7].iter().all(u8::is_ascii_digit)
                    && (b[7].is_ascii_digit() || b[7].is_ascii_uppercase())
            }
            11 => b.iter().all(u8::is_ascii_digit),
            _ => false,
        };
        if ok {
            Ok(FranceTravailId(s))
        } else {
            Err(ValidationError::FranceTravailIdFormat)
        }
    }

    /// The canonical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the legacy 8-character format.
    pub fn is_legacy(&self) -> bool {
        self.0.len() == 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(FranceTravailId::parse("1234567e")
            .expect("valid")
            .is_legacy());
        assert!(!FranceTravailId::parse("12345678901")
            .expect("valid")
            .is_legacy());
        assert!(FranceTravailId::parse("1234567È").is_err());
        assert!(FranceTravailId::parse("1234567-").is_err());
    }
}
