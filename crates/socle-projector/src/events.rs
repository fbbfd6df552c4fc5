//! Person events, decoded with their writer's schema, turned into core facts.
//!
//! Fields are read by name from the decoded record, so a newer writer that adds fields (the
//! registry only accepts backward-compatible changes) never breaks the projector, and every
//! historical version of a contract is read the same way.

use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate, Utc};
use socle_domain::Sealed;
use socle_kafka::codec::{from_value, to_datum};
use socle_kafka::schemas::SEALED;
use socle_store::core::{Fact, Group, PersonFact, Val};
use uuid::Uuid;

/// Why an event cannot become a fact (the message goes to the rejects with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("{record}: missing or ill-typed field {field}")]
    Field { record: String, field: &'static str },
    #[error("unknown person event type {0}")]
    UnknownType(String),
}

impl EventError {
    pub fn code(&self) -> &'static str {
        match self {
            EventError::Field { .. } => "event.bad_field",
            EventError::UnknownType(_) => "event.unexpected_type",
        }
    }
}

struct Record<'a> {
    name: &'a str,
    fields: &'a [(String, Value)],
}

fn unwrap(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => unwrap(inner),
        other => other,
    }
}

impl<'a> Record<'a> {
    fn new(name: &'a str, value: &'a Value) -> Option<Record<'a>> {
        match value {
            Value::Record(fields) => Some(Record { name, fields }),
            _ => None,
        }
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        self.fields
            .iter()
            .find(|(n, _)| n == field)
            .map(|(_, v)| unwrap(v))
    }

    fn err(&self, field: &'static str) -> EventError {
        EventError::Field {
            record: self.name.to_owned(),
            field,
        }
    }

    fn opt_str(&self, field: &'static str) -> Result<Option<String>, EventError> {
        match self.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s) | Value::Enum(_, s)) => Ok(Some(s.clone())),
            Some(Value::Uuid(u)) => Ok(Some(u.to_string())),
            Some(_) => Err(self.err(field)),
        }
    }

    fn str(&self, field: &'static str) -> Result<String, EventError> {
        self.opt_str(field)?.ok_or_else(|| self.err(field))
    }

    fn uuid(&self, field: &'static str) -> Result<Uuid, EventError> {
        match self.get(field) {
            Some(Value::Uuid(u)) => Ok(*u),
            Some(Value::String(s)) => Uuid::parse_str(s).map_err(|_| self.err(field)),
            _ => Err(self.err(field)),
        }
    }

    fn opt_date(&self, field: &'static str) -> Result<Option<NaiveDate>, EventError> {
        match self.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Date(d) | Value::Int(d)) => socle_domain::time::from_days(*d)
                .map(Some)
                .ok_or_else(|| self.err(field)),
            Some(_) => Err(self.err(field)),
        }
    }

    fn date(&self, field: &'static str) -> Result<NaiveDate, EventError> {
        self.opt_date(field)?.ok_or_else(|| self.err(field))
    }

    fn opt_bool(&self, field: &'static str) -> Result<Option<bool>, EventError> {
        match self.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(_) => Err(self.err(field)),
        }
    }

    fn record(&self, field: &'static str) -> Result<Record<'a>, EventError> {
        let v = self.get(field).ok_or_else(|| self.err(field))?;
        Record::new(self.name, v).ok_or_else(|| self.err(field))
    }

    /// A sealed block, re-encoded as a standalone `socle.pii.Sealed` for the core state.
    fn sealed(&self, field: &'static str) -> Result<Vec<u8>, EventError> {
        let value = self.get(field).ok_or_else(|| self.err(field))?.clone();
        let sealed: Sealed = from_value(value, &SEALED).map_err(|_| self.err(field))?;
        to_datum(&sealed, &SEALED).map_err(|_| self.err(field))
    }
}

fn text(v: Option<String>) -> Val {
    Val::Text(v)
}

/// The fact carried by the event `name` (full record name) with decoded `value`.
///
/// # Errors
/// [`EventError`] when a required field is missing or the type is not a person event.
/// The person event types the projector reads (full record names).
pub const PERSON_EVENTS: [&str; 15] = [
    "socle.person.PersonRegistered",
    "socle.person.PersonIdentityUpdated",
    "socle.person.PersonContactUpdated",
    "socle.person.PersonSituationUpdated",
    "socle.person.PersonOrientationDecided",
    "socle.person.PersonExited",
    "socle.person.FollowStarted",
    "socle.person.FollowEnded",
    "socle.person.ServicePrescribed",
    "socle.person.PrescriptionOutcomeRecorded",
    "socle.person.AccompanimentStarted",
    "socle.person.AccompanimentEnded",
    "socle.person.AppointmentScheduled",
    "socle.person.AppointmentHeld",
    "socle.person.AppointmentMissed",
];

pub fn to_fact(name: &str, value: &Value) -> Result<PersonFact, EventError> {
    if !PERSON_EVENTS.contains(&name) {
        return Err(EventError::UnknownType(name.to_owned()));
    }
    let r = Record::new(name, value).ok_or_else(|| EventError::UnknownType(name.to_owned()))?;
    let envelope = r.record("envelope")?;
    let event_id = envelope.uuid("event_id")?;
    let occurred_at = match envelope.get("occurred_at") {
        Some(Value::TimestampMicros(us) | Value::Long(us)) => {
            DateTime::<Utc>::from_timestamp_micros(*us)
                .ok_or_else(|| envelope.err("occurred_at"))?
        }
        _ => return Err(envelope.err("occurred_at")),
    };
    let person_id = r.uuid("person_id")?;
    let group = |name: &'static str, columns: Vec<(&'static str, Val)>| Group { name, columns };
    let fact = match name {
        "socle.person.PersonRegistered" => Fact::Person {
            groups: vec![
                group(
                    "registration",
                    vec![
                        ("registration_operator", text(Some(r.str("operator")?))),
                        (
                            "registration_organisation",
                            text(Some(r.str("registering_organisation")?)),
                        ),
                        (
                            "registration_date",
                            Val::Date(Some(r.date("registered_on")?)),
                        ),
                    ],
                ),
                group(
                    "residence",
                    vec![
                        ("residence_commune", text(Some(r.str("commune")?))),
                        ("residence_departement", text(Some(r.str("departement")?))),
                    ],
                ),
                group(
                    "identity",
                    vec![("identity_sealed", Val::Bytes(Some(r.sealed("personal")?)))],
                ),
            ],
        },
        "socle.person.PersonIdentityUpdated" => Fact::Person {
            groups: vec![group(
                "identity",
                vec![("identity_sealed", Val::Bytes(Some(r.sealed("personal")?)))],
            )],
        },
        "socle.person.PersonContactUpdated" => Fact::Person {
            groups: vec![
                group(
                    "residence",
                    vec![
                        ("residence_commune", text(Some(r.str("commune")?))),
                        ("residence_departement", text(Some(r.str("departement")?))),
                    ],
                ),
                group(
                    "contact",
                    vec![("contact_sealed", Val::Bytes(Some(r.sealed("personal")?)))],
                ),
            ],
        },
        "socle.person.PersonSituationUpdated" => Fact::Person {
            groups: vec![
                group(
                    "situation",
                    vec![
                        (
                            "situation_registration_category",
                            text(r.opt_str("registration_category")?),
                        ),
                        (
                            "situation_rsa_beneficiary",
                            Val::Bool(r.opt_bool("rsa_beneficiary")?),
                        ),
                    ],
                ),
                group(
                    "health",
                    vec![("health_sealed", Val::Bytes(Some(r.sealed("personal")?)))],
                ),
            ],
        },
        "socle.person.PersonOrientationDecided" => Fact::Person {
            groups: vec![group(
                "orientation",
                vec![
                    (
                        "orientation_referent_operator",
                        text(Some(r.str("referent_operator")?)),
                    ),
                    ("orientation_pathway", text(r.opt_str("pathway")?)),
                ],
            )],
        },
        "socle.person.PersonExited" => Fact::Person {
            groups: vec![group(
                "exit",
                vec![
                    ("exit_date", Val::Date(Some(r.date("exited_on")?))),
                    ("exit_destination", text(r.opt_str("destination")?)),
                ],
            )],
        },
        "socle.person.FollowStarted" => Fact::FollowStarted {
            follow_id: r.uuid("follow_id")?,
            organisation: r.str("organisation")?,
            ecosystem: r.str("ecosystem")?,
            activity: r.str("activity")?,
            territory: r.str("territory")?,
            purpose: r.str("purpose")?,
            started_on: r.date("started_on")?,
            until: r.opt_date("until")?,
        },
        "socle.person.FollowEnded" => Fact::FollowEnded {
            follow_id: r.uuid("follow_id")?,
            organisation: r.str("organisation")?,
            ended_on: r.date("ended_on")?,
        },
        "socle.person.ServicePrescribed" => Fact::ServicePrescribed {
            prescription_id: r.uuid("prescription_id")?,
            prescriber_organisation: r.str("prescriber_organisation")?,
            service_id: r.str("service_id")?,
            structure_id: r.str("structure_id")?,
            structure_siret: r.opt_str("structure_siret")?,
            prescribed_on: r.date("prescribed_on")?,
        },
        "socle.person.PrescriptionOutcomeRecorded" => Fact::PrescriptionOutcome {
            prescription_id: r.uuid("prescription_id")?,
            outcome: r.str("outcome")?,
            outcome_on: r.date("outcome_on")?,
        },
        "socle.person.AccompanimentStarted"
        | "socle.person.AccompanimentEnded"
        | "socle.person.AppointmentScheduled"
        | "socle.person.AppointmentHeld"
        | "socle.person.AppointmentMissed" => Fact::Noted,
        other => return Err(EventError::UnknownType(other.to_owned())),
    };
    Ok(PersonFact {
        person_id,
        event_id,
        occurred_at,
        fact,
    })
}
