//! Canonical person events (`schemas/person/`) that `socle_domain` does not type yet, field for
//! field, and the personal records sealed inside them. `PersonRegistered` and
//! `PersonIdentity` come from `socle_domain`.

use serde::{Deserialize, Serialize, Serializer};
use socle_domain::{Envelope, Sealed};
use uuid::Uuid;

/// Symbols of `socle.person.RegistrationCategory`, in schema order.
pub const REGISTRATION_CATEGORIES: [&str; 6] = ["A", "B", "C", "D", "E", "UNKNOWN"];
/// Symbols of `socle.person.ExitDestination`, in schema order.
pub const EXIT_DESTINATIONS: [&str; 8] = [
    "EMPLOYMENT",
    "TRAINING",
    "BUSINESS_CREATION",
    "OTHER_SUPPORT",
    "MOVED_AWAY",
    "NO_LONGER_SEEKING",
    "NO_CONTACT",
    "OTHER",
];
/// Symbols of `socle.person.ContractKind`, in schema order.
pub const CONTRACT_KINDS: [&str; 8] = [
    "CDI",
    "CDD_6_MONTHS_OR_MORE",
    "CDD_UNDER_6_MONTHS",
    "INTERIM",
    "APPRENTICESHIP",
    "SUBSIDISED",
    "SELF_EMPLOYED",
    "OTHER",
];

/// Symbols of `socle.person.AppointmentMode`, in schema order.
pub const APPOINTMENT_MODES: [&str; 4] = ["IN_PERSON", "PHONE", "VIDEO", "OTHER"];

/// An Avro enum symbol by index, as apache-avro's schema-aware serializer wants it (a unit
/// variant). Values come from the ingress enums, which have the same symbols; anything else
/// is written as the enum's default (the last symbol), as an older reader would read it.
struct Symbol(u32);

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit_variant("Symbol", self.0, "symbol")
    }
}

fn symbol(symbols: &[&str], value: &str) -> Symbol {
    let i = symbols
        .iter()
        .position(|s| *s == value)
        .unwrap_or(symbols.len().saturating_sub(1));
    Symbol(u32::try_from(i).unwrap_or(0))
}

fn registration_category<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(v) => s.serialize_some(&symbol(&REGISTRATION_CATEGORIES, v)),
    }
}

fn exit_destination<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    symbol(&EXIT_DESTINATIONS, v).serialize(s)
}

fn appointment_mode<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    symbol(&APPOINTMENT_MODES, v).serialize(s)
}

fn contract_kind<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(v) => s.serialize_some(&symbol(&CONTRACT_KINDS, v)),
    }
}

/// `socle.pii.PersonContact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonContact {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address_line: Option<String>,
    pub address_complement: Option<String>,
    pub postal_code: Option<String>,
}

/// `socle.pii.PersonHealthSituation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonHealthSituation {
    pub rqth: Option<bool>,
    pub rqth_until: Option<i32>,
    pub boeth: Option<bool>,
}

/// `socle.person.PersonIdentityUpdated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonIdentityUpdated {
    pub envelope: Envelope,
    #[serde(with = "socle_domain::uuid_str")]
    pub person_id: Uuid,
    pub personal: Sealed,
}

/// `socle.person.PersonContactUpdated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonContactUpdated {
    pub envelope: Envelope,
    #[serde(with = "socle_domain::uuid_str")]
    pub person_id: Uuid,
    pub commune: String,
    pub departement: String,
    pub personal: Sealed,
}

/// `socle.person.PersonSituationUpdated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonSituationUpdated {
    pub envelope: Envelope,
    #[serde(with = "socle_domain::uuid_str")]
    pub person_id: Uuid,
    pub effective_on: i32,
    #[serde(serialize_with = "registration_category")]
    pub registration_category: Option<String>,
    pub rsa_beneficiary: Option<bool>,
    pub personal: Sealed,
}

/// `socle.person.FollowStarted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowStarted {
    pub envelope: Envelope,
    #[serde(with = "socle_domain::uuid_str")]
    pub person_id: Uuid,
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

/// `socle.person.FollowEnded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowEnded {
    pub envelope: Envelope,
    #[serde(with = "socle_domain::uuid_str")]
    pub person_id: Uuid,
    #[serde(with = "socle_domain::uuid_str")]
    pub follow_id: Uuid,
    pub organisation: String,
    pub ended_on: i32,
    pub reason_code: Option<String>,
}

/// `socle.person.PersonExited`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonExited {
    pub envelope: Envelope,
    #[serde(with = "socle_domain::uuid_str")]
    pub person_id: Uuid,
    pub operator: String,
    pub organisation: String,
    pub exited_on: i32,
    #[serde(serialize_with = "exit_destination")]
    pub destination: String,
    #[serde(serialize_with = "contract_kind")]
    pub contract: Option<String>,
    pub rome: Option<String>,
    pub reason_code: Option<String>,
}

/// `socle.person.ServicePrescribed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePrescribed {
    pub envelope: Envelope,
    #[serde(with = "socle_domain::uuid_str")]
    pub person_id: Uuid,
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

/// `socle.person.AppointmentScheduled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentScheduled {
    pub envelope: Envelope,
    #[serde(with = "socle_domain::uuid_str")]
    pub person_id: Uuid,
    #[serde(with = "socle_domain::uuid_str")]
    pub appointment_id: Uuid,
    pub organisation: String,
    pub scheduled_for: i64,
    pub duration_minutes: Option<i32>,
    #[serde(serialize_with = "appointment_mode")]
    pub mode: String,
    pub kind: String,
    pub advisor: Option<String>,
    #[serde(with = "socle_domain::uuid_str::option")]
    pub accompaniment_id: Option<Uuid>,
    pub commune: Option<String>,
}

/// `socle.ingest.DeadLetter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub envelope: Envelope,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub source_timestamp: Option<i64>,
    #[serde(with = "serde_bytes")]
    pub key: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
    pub headers: Vec<DeadLetterHeader>,
    pub reason_code: String,
    pub reason_detail: Option<String>,
    pub field: Option<String>,
    pub schema_id: Option<i32>,
    pub producer_organisation: Option<String>,
}

/// `socle.ingest.Header`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterHeader {
    pub key: String,
    #[serde(with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
}
