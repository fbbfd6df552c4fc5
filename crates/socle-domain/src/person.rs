//! Person events (`schemas/person/`), keyed by the person's pseudonymous id.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::pii::Sealed;
use crate::time::{from_days, to_days};

/// Full name of the record sealed in [`PersonRegistered::personal`].
pub const PERSON_IDENTITY: &str = "socle.pii.PersonIdentity";

/// The operators of the network.
pub const OPERATORS: [&str; 3] = ["france-travail", "cap-emploi", "mission-locale"];

/// `socle.person.PersonRegistered`: a person registered with an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRegistered {
    pub envelope: Envelope,
    /// Pseudonymous id of the person; the Kafka key.
    #[serde(with = "crate::uuid_str")]
    pub person_id: Uuid,
    /// One of [`OPERATORS`].
    pub operator: String,
    /// SIRET of the registering organisation.
    pub registering_organisation: String,
    /// Days since the epoch.
    pub registered_on: i32,
    /// INSEE COG commune code.
    pub commune: String,
    /// INSEE COG département code.
    pub departement: String,
    /// A [`PersonIdentity`] sealed with the person's key.
    pub personal: Sealed,
}

impl PersonRegistered {
    /// The registration date, if the encoded day count is in range.
    pub fn registered_on_date(&self) -> Option<NaiveDate> {
        from_days(self.registered_on)
    }
}

/// `socle.pii.PersonIdentity`: the personal fields of a registration, only ever sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonIdentity {
    pub nir: Option<String>,
    pub family_name: String,
    pub given_name: String,
    /// Days since the epoch.
    pub birth_date: i32,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl PersonIdentity {
    /// The birth date, if the encoded day count is in range.
    pub fn birth_date(&self) -> Option<NaiveDate> {
        from_days(self.birth_date)
    }

    /// Sets the birth date.
    pub fn set_birth_date(&mut self, d: NaiveDate) {
        self.birth_date = to_days(d);
    }
}
