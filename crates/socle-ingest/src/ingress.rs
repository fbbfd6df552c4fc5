//! The ingress contracts as Rust types (`schemas/ingress/`), field for field.
//!
//! What operators publish on their ingress topic: personal fields in clear (the operator does not
//! hold the person's key), and a [`Submission`] instead of socle's envelope, because socle, not
//! the operator, assigns the canonical event id, the recording time and the person id.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `socle.ingress.Submission`: the first field of every ingress message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// The operator's own event id (any UUID); the de-duplication key.
    #[serde(with = "socle_domain::uuid_str")]
    pub event_id: Uuid,
    /// Microseconds since the epoch.
    pub occurred_at: i64,
    /// SIRET of the organisation that states the fact.
    pub producer_organisation: String,
    pub actor: Option<String>,
    #[serde(with = "socle_domain::uuid_str::option")]
    pub correlation_id: Option<Uuid>,
    /// The operator's id for the person; must equal the Kafka key.
    pub operator_person_ref: String,
    /// socle's pseudonymous id, when the operator knows it.
    #[serde(with = "socle_domain::uuid_str::option")]
    pub person_id: Option<Uuid>,
}

/// `socle.ingress.Identity`, sealed as `socle.pii.PersonIdentity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub nir: Option<String>,
    pub family_name: String,
    pub given_name: String,
    /// Days since the epoch.
    pub birth_date: i32,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// `socle.ingress.Contact`, sealed as `socle.pii.PersonContact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address_line: Option<String>,
    pub address_complement: Option<String>,
    pub postal_code: Option<String>,
}

/// `socle.ingress.Health`, sealed as `socle.pii.PersonHealthSituation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub rqth: Option<bool>,
    pub rqth_until: Option<i32>,
    pub boeth: Option<bool>,
}

/// `socle.ingress.PersonRegistered`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRegistered {
    pub submission: Submission,
    pub operator: String,
    pub registering_organisation: String,
    pub registered_on: i32,
    pub commune: String,
    pub departement: String,
    pub identity: Identity,
}

/// `socle.ingress.PersonIdentityUpdated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonIdentityUpdated {
    pub submission: Submission,
    pub identity: Identity,
}

/// `socle.ingress.PersonContactUpdated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonContactUpdated {
    pub submission: Submission,
    pub commune: String,
    pub departement: String,
    pub contact: Contact,
}

/// `socle.ingress.PersonSituationUpdated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonSituationUpdated {
    pub submission: Submission,
    pub effective_on: i32,
    /// An enum symbol, `A`..`E` or `UNKNOWN`.
    pub registration_category: Option<String>,
    pub rsa_beneficiary: Option<bool>,
    pub health: Health,
}

/// `socle.ingress.FollowStarted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowStarted {
    pub submission: Submission,
    #[serde(with = "socle_domain::uuid_str")]
    pub follow_id: Uuid,
    pub organisation: String,
    pub ecosystem: String,
    pub activity: String,
    pub territory: String,
    pub purpose: String,
    pub started_on: i32,
    pub until: Option<i32>,
}

/// `socle.ingress.FollowEnded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowEnded {
    pub submission: Submission,
    #[serde(with = "socle_domain::uuid_str")]
    pub follow_id: Uuid,
    pub organisation: String,
    pub ended_on: i32,
    pub reason_code: Option<String>,
}

/// `socle.ingress.PersonExited`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonExited {
    pub submission: Submission,
    pub operator: String,
    pub organisation: String,
    pub exited_on: i32,
    /// An `ExitDestination` symbol.
    pub destination: String,
    /// A `ContractKind` symbol.
    pub contract: Option<String>,
    pub rome: Option<String>,
    pub reason_code: Option<String>,
}

/// `socle.ingress.ServicePrescribed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePrescribed {
    pub submission: Submission,
    #[serde(with = "socle_domain::uuid_str")]
    pub prescription_id: Uuid,
    pub prescriber_organisation: String,
    pub service_id: String,
    pub structure_id: String,
    pub structure_siret: Option<String>,
    pub thematiques: Vec<String>,
    pub prescribed_on: i32,
    pub advisor: Option<String>,
}

/// `socle.ingress.AppointmentScheduled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentScheduled {
    pub submission: Submission,
    #[serde(with = "socle_domain::uuid_str")]
    pub appointment_id: Uuid,
    /// SIRET of the organisation holding the appointment.
    pub organisation: String,
    /// Microseconds since the epoch.
    pub scheduled_for: i64,
    pub duration_minutes: Option<i32>,
    /// An `AppointmentMode` symbol: `IN_PERSON`, `PHONE`, `VIDEO` or `OTHER`.
    pub mode: String,
    pub kind: String,
    pub advisor: Option<String>,
    #[serde(with = "socle_domain::uuid_str::option")]
    pub accompaniment_id: Option<Uuid>,
    /// INSEE COG commune code of the place.
    pub commune: Option<String>,
}

/// One decoded ingress message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingress {
    Registered(PersonRegistered),
    IdentityUpdated(PersonIdentityUpdated),
    ContactUpdated(PersonContactUpdated),
    SituationUpdated(PersonSituationUpdated),
    FollowStarted(FollowStarted),
    FollowEnded(FollowEnded),
    Exited(PersonExited),
    ServicePrescribed(ServicePrescribed),
    AppointmentScheduled(AppointmentScheduled),
}

impl Ingress {
    /// The submission every message starts with.
    pub fn submission(&self) -> &Submission {
        match self {
            Ingress::Registered(e) => &e.submission,
            Ingress::IdentityUpdated(e) => &e.submission,
            Ingress::ContactUpdated(e) => &e.submission,
            Ingress::SituationUpdated(e) => &e.submission,
            Ingress::FollowStarted(e) => &e.submission,
            Ingress::FollowEnded(e) => &e.submission,
            Ingress::Exited(e) => &e.submission,
            Ingress::ServicePrescribed(e) => &e.submission,
            Ingress::AppointmentScheduled(e) => &e.submission,
        }
    }

    /// Whether the canonical event carries sealed personal fields (and so needs the key).
    pub fn has_personal(&self) -> bool {
        matches!(
            self,
            Ingress::Registered(_)
                | Ingress::IdentityUpdated(_)
                | Ingress::ContactUpdated(_)
                | Ingress::SituationUpdated(_)
        )
    }
}
