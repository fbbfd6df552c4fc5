//! Which people an ecosystem may see.
//!
//! A person is in scope when **any** `[[scope.include]]` rule matches and **every**
//! `[scope.restrict]` condition holds. Scope is evaluated from facts carried by events only
//! (follows, orientation, residence, situation, prescriptions, birth date), as of the date of the
//! person's latest event, so that a replay computes exactly what the live projector computed.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use crate::{Agreement, OPERATORS};

/// A rule that brings people into scope.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum Include {
    /// An organisation of this ecosystem follows the person (an open follow naming it).
    FollowedByEcosystem,
    /// The person registered with this operator.
    RegisteredWithOperator { operator: String },
    /// The orientation decision made this operator the person's référent.
    ReferentOperator { operator: String },
    /// A service of one of this ecosystem's `organisations` was prescribed to the person.
    PrescribedToOrganisations,
}

/// Conditions every person in scope must meet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restrict {
    /// Département of residence in this list (INSEE codes).
    pub departements: Option<Vec<String>>,
    /// Age (in whole years) at least this...
    pub age_min: Option<u32>,
    /// ...and at most this.
    pub age_max: Option<u32>,
    /// Only RSA beneficiaries.
    #[serde(default)]
    pub rsa_beneficiary: bool,
}

/// What the projector knows about a person, from events only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonFacts {
    pub registration_operator: Option<String>,
    pub referent_operator: Option<String>,
    pub departement: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub rsa_beneficiary: Option<bool>,
    /// Ecosystems with an open follow of the person.
    pub followed_by_ecosystems: BTreeSet<String>,
    /// SIRETs of structures a service of which was prescribed to the person.
    pub prescribed_to: BTreeSet<String>,
    /// The date scope is evaluated at: the date of the person's latest event.
    pub as_of: Option<NaiveDate>,
}

pub(crate) fn check(
    include: &[Include],
    restrict: &Restrict,
    organisations: &[String],
) -> Result<(), String> {
    if include.is_empty() {
        return Err("scope has no [[scope.include]] rule: nobody would ever be in scope".into());
    }
    for rule in include {
        match rule {
            Include::RegisteredWithOperator { operator }
            | Include::ReferentOperator { operator }
                if !OPERATORS.contains(&operator.as_str()) =>
            {
                return Err(format!(
                    "scope rule names unknown operator {operator:?} (known: {})",
                    OPERATORS.join(", ")
                ));
            }
            Include::PrescribedToOrganisations if organisations.is_empty() => {
                return Err(
                    "rule prescribed_to_organisations can never match: the agreement lists no \
                     organisations"
                        .into(),
                );
            }
            _ => {}
        }
    }
    if let (Some(min), Some(max)) = (restrict.age_min, restrict.age_max) {
        if min > max {
            return Err(format!(
                "scope.restrict can never match: age_min {min} is above age_max {max}"
            ));
        }
    }
    if let Some(deps) = &restrict.departements {
        if deps.is_empty() {
            return Err(
                "scope.restrict.departements is empty: nobody would ever be in scope".into(),
            );
        }
        for d in deps {
            let ok = matches!(d.as_str(), "2A" | "2B")
                || (d.len() == 2 && d.bytes().all(|b| b.is_ascii_digit()) && d != "20")
                || (d.len() == 3 && d.starts_with("97") && d.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                return Err(format!(
                    "scope.restrict.departements: {d:?} is not a département code"
                ));
            }
        }
    }
    Ok(())
}

fn age_on(birth: NaiveDate, on: NaiveDate) -> Option<u32> {
    let mut years = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

pub(crate) fn in_scope(agreement: &Agreement, facts: &PersonFacts) -> bool {
    let included = agreement.include.iter().any(|rule| match rule {
        Include::FollowedByEcosystem => facts.followed_by_ecosystems.contains(&agreement.ecosystem),
        Include::RegisteredWithOperator { operator } => {
            facts.registration_operator.as_deref() == Some(operator)
        }
        Include::ReferentOperator { operator } => {
            facts.referent_operator.as_deref() == Some(operator)
        }
        Include::PrescribedToOrganisations => facts
            .prescribed_to
            .iter()
            .any(|s| agreement.organisations.contains(s)),
    });
    if !included {
        return false;
    }
    let r = &agreement.restrict;
    if let Some(deps) = &r.departements {
        match &facts.departement {
            Some(d) if deps.iter().any(|x| x == d) => {}
            _ => return false,
        }
    }
    if r.age_min.is_some() || r.age_max.is_some() {
        let (Some(birth), Some(on)) = (facts.birth_date, facts.as_of) else {
            return false;
        };
        let Some(age) = age_on(birth, on) else {
            return false;
        };
        if r.age_min.is_some_and(|m| age < m) || r.age_max.is_some_and(|m| age > m) {
            return false;
        }
    }
    if r.rsa_beneficiary && facts.rsa_beneficiary != Some(true) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_whole_years() {
        let birth = NaiveDate::from_ymd_opt(2000, 6, 15).expect("date");
        assert_eq!(
            age_on(birth, NaiveDate::from_ymd_opt(2026, 6, 14).expect("date")),
            Some(25)
        );
        assert_eq!(
            age_on(birth, NaiveDate::from_ymd_opt(2026, 6, 15).expect("date")),
            Some(26)
        );
        assert_eq!(
            age_on(birth, NaiveDate::from_ymd_opt(1999, 1, 1).expect("date")),
            None
        );
    }
}
