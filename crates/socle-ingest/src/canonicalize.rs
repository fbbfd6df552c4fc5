//! From a checked ingress message to the canonical event: socle's envelope, the person id, and
//! the personal fields sealed with the person's key.
//!
//! The canonical `event_id` is derived, not drawn: a UUIDv7 whose time is the fact's
//! `occurred_at` and whose random bits are a SHA-256 of `<operator>|<operator's event id>`. A
//! resent message (same operator event id) therefore yields the same canonical event id, which
//! consumers use to drop the copy; two operators cannot collide on purpose or by accident.

use apache_avro::types::Value;
use serde::Serialize;
use sha2::{Digest, Sha256};
use socle_domain::{DataKey, Envelope, PersonIdentity, Sealed};
use socle_kafka::codec::to_datum;
use socle_kafka::schemas::Contract;
use uuid::Uuid;

use crate::canonical as out;
use crate::contracts as c;
use crate::ingress::{Identity, Ingress, Submission};
use crate::Result;

/// The canonical event id of the operator's event `event_id` (see the module docs).
pub fn event_id(operator: &str, submission: &Submission) -> Uuid {
    let digest = Sha256::digest(format!("{operator}|{}", submission.event_id).as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(submission.occurred_at.div_euclid(1000)).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// The envelope of the canonical event, recorded at `recorded_at` (microseconds).
pub fn envelope(operator: &str, submission: &Submission, recorded_at: i64) -> Envelope {
    Envelope {
        event_id: event_id(operator, submission),
        occurred_at: submission.occurred_at,
        recorded_at,
        producer_organisation: compact(&submission.producer_organisation),
        actor: submission.actor.clone(),
        correlation_id: submission.correlation_id,
        causation_id: None,
        schema_version: 1,
    }
}

/// SIRETs travel without the spaces and dots people type.
fn compact(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

fn seal<T: Serialize>(
    key: &DataKey,
    person_id: Uuid,
    contract: &Contract,
    plain: &T,
) -> Result<Sealed> {
    let plaintext = to_datum(plain, contract)?;
    Ok(key
        .seal(person_id, contract.name, &plaintext)
        .map_err(socle_kafka::Error::from)?)
}

fn identity(i: &Identity) -> PersonIdentity {
    PersonIdentity {
        nir: i.nir.as_deref().map(|n| {
            n.chars()
                .filter(|c| !c.is_whitespace() && *c != '.')
                .collect::<String>()
                .to_ascii_uppercase()
        }),
        family_name: i.family_name.trim().to_owned(),
        given_name: i.given_name.trim().to_owned(),
        birth_date: i.birth_date,
        email: i.email.clone(),
        phone: i.phone.clone(),
    }
}

/// The canonical event for `message` about `person_id`, as an Avro value of its contract.
/// `key` is the person's key, required for the messages that carry personal fields.
///
/// # Errors
/// [`crate::Error::Internal`] when a message with personal fields comes without a key (a bug),
/// Avro errors when the event does not fit its contract (a bug too).
pub fn canonical(
    message: &Ingress,
    operator: &str,
    person_id: Uuid,
    key: Option<&DataKey>,
    recorded_at: i64,
) -> Result<(&'static Contract, Value)> {
    let env = envelope(operator, message.submission(), recorded_at);
    let need_key =
        || key.ok_or_else(|| crate::Error::Internal(format!("no key to seal person {person_id}")));
    let (contract, value) = match message {
        Ingress::Registered(e) => {
            let personal = seal(
                need_key()?,
                person_id,
                &c::PERSON_IDENTITY,
                &identity(&e.identity),
            )?;
            let event = socle_domain::PersonRegistered {
                envelope: env,
                person_id,
                operator: e.operator.clone(),
                registering_organisation: compact(&e.registering_organisation),
                registered_on: e.registered_on,
                commune: e.commune.trim().to_ascii_uppercase(),
                departement: e.departement.trim().to_ascii_uppercase(),
                personal,
            };
            (&*c::PERSON_REGISTERED, apache_avro::to_value(event))
        }
        Ingress::IdentityUpdated(e) => {
            let personal = seal(
                need_key()?,
                person_id,
                &c::PERSON_IDENTITY,
                &identity(&e.identity),
            )?;
            let event = out::PersonIdentityUpdated {
                envelope: env,
                person_id,
                personal,
            };
            (&*c::IDENTITY_UPDATED, apache_avro::to_value(event))
        }
        Ingress::ContactUpdated(e) => {
            let plain = out::PersonContact {
                email: e.contact.email.clone(),
                phone: e.contact.phone.clone(),
                address_line: e.contact.address_line.clone(),
                address_complement: e.contact.address_complement.clone(),
                postal_code: e.contact.postal_code.clone(),
            };
            let personal = seal(need_key()?, person_id, &c::PERSON_CONTACT, &plain)?;
            let event = out::PersonContactUpdated {
                envelope: env,
                person_id,
                commune: e.commune.trim().to_ascii_uppercase(),
                departement: e.departement.trim().to_ascii_uppercase(),
                personal,
            };
            (&*c::CONTACT_UPDATED, apache_avro::to_value(event))
        }
        Ingress::SituationUpdated(e) => {
            let plain = out::PersonHealthSituation {
                rqth: e.health.rqth,
                rqth_until: e.health.rqth_until,
                boeth: e.health.boeth,
            };
            let personal = seal(need_key()?, person_id, &c::PERSON_HEALTH, &plain)?;
            let event = out::PersonSituationUpdated {
                envelope: env,
                person_id,
                effective_on: e.effective_on,
                registration_category: e.registration_category.clone(),
                rsa_beneficiary: e.rsa_beneficiary,
                personal,
            };
            (&*c::SITUATION_UPDATED, apache_avro::to_value(event))
        }
        Ingress::FollowStarted(e) => {
            let event = out::FollowStarted {
                envelope: env,
                person_id,
                follow_id: e.follow_id,
                organisation: compact(&e.organisation),
                ecosystem: e.ecosystem.clone(),
                activity: e.activity.clone(),
                territory: e.territory.trim().to_ascii_uppercase(),
                purpose: e.purpose.clone(),
                started_on: e.started_on,
                until: e.until,
            };
            (&*c::FOLLOW_STARTED, apache_avro::to_value(event))
        }
        Ingress::FollowEnded(e) => {
            let event = out::FollowEnded {
                envelope: env,
                person_id,
                follow_id: e.follow_id,
                organisation: compact(&e.organisation),
                ended_on: e.ended_on,
                reason_code: e.reason_code.clone(),
            };
            (&*c::FOLLOW_ENDED, apache_avro::to_value(event))
        }
        Ingress::Exited(e) => {
            let event = out::PersonExited {
                envelope: env,
                person_id,
                operator: e.operator.clone(),
                organisation: compact(&e.organisation),
                exited_on: e.exited_on,
                destination: e.destination.clone(),
                contract: e.contract.clone(),
                rome: e.rome.clone(),
                reason_code: e.reason_code.clone(),
            };
            (&*c::PERSON_EXITED, apache_avro::to_value(event))
        }
        Ingress::ServicePrescribed(e) => {
            let event = out::ServicePrescribed {
                envelope: env,
                person_id,
                prescription_id: e.prescription_id,
                prescriber_organisation: compact(&e.prescriber_organisation),
                service_id: e.service_id.clone(),
                structure_id: e.structure_id.clone(),
                structure_siret: e.structure_siret.as_deref().map(compact),
                thematiques: e.thematiques.clone(),
                prescribed_on: e.prescribed_on,
                advisor: e.advisor.clone(),
            };
            (&*c::SERVICE_PRESCRIBED, apache_avro::to_value(event))
        }
    };
    let value = value.map_err(socle_kafka::Error::from)?;
    Ok((
        contract,
        value
            .resolve(&contract.schema)
            .map_err(socle_kafka::Error::from)?,
    ))
}

/// Avro binary of `value` (already resolved to `contract`), without frame.
///
/// # Errors
/// Avro errors (not expected for a resolved value).
pub fn datum(contract: &Contract, value: Value) -> Result<Vec<u8>> {
    Ok(apache_avro::to_avro_datum(&contract.schema, value).map_err(socle_kafka::Error::from)?)
}
