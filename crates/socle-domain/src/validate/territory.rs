//! Codes checked against reference data: COG communes and départements, ROME jobs,
//! data·inclusion values. Each check first looks at the shape (so that a typo and an
//! unknown code get different reasons), then at the referential.

use super::{InclusionList, Result, ValidationError};
use crate::reference::{Commune, Departement, Referential, RomeJob};

/// Checks the shape of a COG commune code and returns it in canonical form (upper-case
/// `2A`/`2B`): 2 digits or 2A/2B, then 3 digits.
///
/// # Errors
/// `cog.commune.format`.
pub fn commune_code(code: &str) -> Result<String> {
    let c = code.trim().to_ascii_uppercase();
    let b = c.as_bytes();
    let ok = b.len() == 5
        && (b[..2].iter().all(u8::is_ascii_digit) || &b[..2] == b"2A" || &b[..2] == b"2B")
        && b[2..].iter().all(u8::is_ascii_digit);
    if ok {
        Ok(c)
    } else {
        Err(ValidationError::CommuneFormat(code.to_owned()))
    }
}

/// Checks a commune code against the COG.
///
/// # Errors
/// `cog.commune.format` or `cog.commune.unknown`.
pub fn commune<'r>(code: &str, referential: &'r Referential) -> Result<&'r Commune> {
    let c = commune_code(code)?;
    referential
        .commune(&c)
        .ok_or(ValidationError::CommuneUnknown(c))
}

/// Checks the shape of a département code and returns it in canonical form: 2 digits,
/// 2A, 2B, or 3 digits starting with 97 or 98.
///
/// # Errors
/// `cog.departement.format`.
pub fn departement_code(code: &str) -> Result<String> {
    let c = code.trim().to_ascii_uppercase();
    let b = c.as_bytes();
    let ok = match b.len() {
        2 => b.iter().all(u8::is_ascii_digit) || c == "2A" || c == "2B",
        3 => (c.starts_with("97") || c.starts_with("98")) && b[2].is_ascii_digit(),
        _ => false,
    };
    if ok {
        Ok(c)
    } else {
        Err(ValidationError::DepartementFormat(code.to_owned()))
    }
}

/// Checks a département code against the COG.
///
/// # Errors
/// `cog.departement.format` or `cog.departement.unknown`.
pub fn departement<'r>(code: &str, referential: &'r Referential) -> Result<&'r Departement> {
    let c = departement_code(code)?;
    referential
        .departement(&c)
        .ok_or(ValidationError::DepartementUnknown(c))
}

/// Checks a commune and a département, and that the commune lies in the département.
///
/// # Errors
/// Any `cog.*` reason, `cog.commune.not_in_departement` last.
pub fn commune_in_departement<'r>(
    commune_code: &str,
    departement_code: &str,
    referential: &'r Referential,
) -> Result<(&'r Commune, &'r Departement)> {
    let c = commune(commune_code, referential)?;
    let d = departement(departement_code, referential)?;
    if c.departement == d.code {
        Ok((c, d))
    } else {
        Err(ValidationError::CommuneNotInDepartement {
            commune: c.code.clone(),
            departement: d.code.clone(),
        })
    }
}

/// Checks the shape of a ROME 4.0 code (`^[A-N]\d{4}$`, exactly: no case folding).
///
/// # Errors
/// `rome.format`.
pub fn rome_code(code: &str) -> Result<&str> {
    if crate::reference::is_rome_shape(code) {
        Ok(code)
    } else {
        Err(ValidationError::RomeFormat(code.to_owned()))
    }
}

/// Checks a ROME code against the referential.
///
/// # Errors
/// `rome.format` or `rome.unknown`.
pub fn rome<'r>(code: &str, referential: &'r Referential) -> Result<&'r RomeJob> {
    let c = rome_code(code)?;
    referential
        .rome(c)
        .ok_or_else(|| ValidationError::RomeUnknown(c.to_owned()))
}

/// Checks that `value` is in a data·inclusion list.
///
/// # Errors
/// `inclusion.<list>.unknown`.
pub fn inclusion_value(list: InclusionList, value: &str, referential: &Referential) -> Result<()> {
    if referential.is_in(list, value) {
        Ok(())
    } else {
        Err(ValidationError::NotInList {
            list,
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(commune_code("2a004"), Ok("2A004".to_owned()));
        assert_eq!(commune_code("97411"), Ok("97411".to_owned()));
        assert_eq!(
            commune_code("7505").map_err(|e| e.code()),
            Err("cog.commune.format")
        );
        assert_eq!(
            commune_code("2C004").map_err(|e| e.code()),
            Err("cog.commune.format")
        );
        assert_eq!(departement_code("971"), Ok("971".to_owned()));
        assert_eq!(departement_code("2b"), Ok("2B".to_owned()));
        assert_eq!(
            departement_code("961").map_err(|e| e.code()),
            Err("cog.departement.format")
        );
        assert_eq!(
            departement_code("7").map_err(|e| e.code()),
            Err("cog.departement.format")
        );
        assert_eq!(rome_code("A1101"), Ok("A1101"));
        assert_eq!(rome_code("O1101").map_err(|e| e.code()), Err("rome.format"));
        assert_eq!(rome_code("a1101").map_err(|e| e.code()), Err("rome.format"));
        assert_eq!(rome_code("A110").map_err(|e| e.code()), Err("rome.format"));
    }
}
