//! From a checked ingress message to the canonical event: socle's envelope, the person id, and
//! the personal fields sealed with the person's key.
//!
//! The canonical `event_id` is derived, not drawn: a UUIDv7 whose time is the fact's
//! `occurred_at` and whose random bits are a SHA-256 of `<operator>|<operator's event id>`. A
//! resent message (same operator event id) therefore yields the same canonical event id, which
//! consumers use to drop the copy; two operators cannot collide on purpose or by accident.

use serde::Serialize;
use sha2::{Digest, Sha256};
use socle_domain::{DataKey, Envelope, PersonIdentity, Sealed};
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

/// Avro binary of `item` under `contract`, without frame, written straight from the struct by
/// apache-avro's schema-aware serializer: no intermediate `Value`, no per-call schema
/// resolution (which dominated ingestion's profile).
///
/// # Errors
/// Avro errors when `item` does not fit `contract` (a bug: the types mirror the schemas).
pub fn encode<T: Serialize>(contract: &Contract, item: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    apache_avro::write_avro_datum_ref(&contract.schema, item, &mut out)
        .map_err(socle_kafka::Error::from)?;
    Ok(out)
}

fn seal<T: Serialize>(
    key: &DataKey,
    person_id: Uuid,
    contract: &Contract,
    plain: &T,
) -> Result<Sealed> {
    let plaintext = encode(contract, plain)?;
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

/// The canonical event for `message` about `person_id`: its contract and Avro body (no frame).
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
) -> Result<(&'static Contract, Vec<u8>)> {
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
            (
                &*c::PERSON_REGISTERED,
                encode(&c::PERSON_REGISTERED, &event)?,
            )
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
            (&*c::IDENTITY_UPDATED, encode(&c::IDENTITY_UPDATED, &event)?)
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
            (&*c::CONTACT_UPDATED, encode(&c::CONTACT_UPDATED, &event)?)
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
            (
                &*c::SITUATION_UPDATED,
                encode(&c::SITUATION_UPDATED, &event)?,
            )
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
            (&*c::FOLLOW_STARTED, encode(&c::FOLLOW_STARTED, &event)?)
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
            (&*c::FOLLOW_ENDED, encode(&c::FOLLOW_ENDED, &event)?)
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
            (&*c::PERSON_EXITED, encode(&c::PERSON_EXITED, &event)?)
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
            (
                &*c::SERVICE_PRESCRIBED,
                encode(&c::SERVICE_PRESCRIBED, &event)?,
            )
        }
        Ingress::AppointmentScheduled(e) => {
            let event = out::AppointmentScheduled {
                envelope: env,
                person_id,
                appointment_id: e.appointment_id,
                organisation: compact(&e.organisation),
                scheduled_for: e.scheduled_for,
                duration_minutes: e.duration_minutes,
                mode: e.mode.clone(),
                kind: e.kind.trim().to_owned(),
                advisor: e.advisor.clone(),
                accompaniment_id: e.accompaniment_id,
                commune: e.commune.as_deref().map(|c| c.trim().to_ascii_uppercase()),
            };
            (
                &*c::APPOINTMENT_SCHEDULED,
                encode(&c::APPOINTMENT_SCHEDULED, &event)?,
            )
        }
    };
    Ok((contract, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

    #[test]
    fn the_canonical_event_id_is_a_v7_derived_from_operator_and_event_id() {
        let now = chrono::Utc::now();
        let s = synthetic::submission("france-travail", 1, 0, now);
        let id = event_id("france-travail", &s);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id, event_id("france-travail", &s), "same on every retry");
        assert_ne!(id, event_id("cap-emploi", &s), "operators cannot collide");
        let (secs, _) = id.get_timestamp().expect("v7 has a timestamp").to_unix();
        assert_eq!(i64::try_from(secs).expect("fits"), now.timestamp());
    }

    #[test]
    fn personal_fields_are_sealed_for_the_person_and_open_with_their_key() {
        let now = chrono::Utc::now();
        let key = DataKey::generate();
        let person = Uuid::now_v7();
        for m in synthetic::life("cap-emploi", 4, now) {
            let k = m.has_personal().then_some(&key);
            let (contract, bytes) = canonical(&m, "cap-emploi", person, k, 0).expect("canonical");
            let back = apache_avro::from_avro_datum(&contract.schema, &mut &bytes[..], None)
                .expect("decodes");
            let apache_avro::types::Value::Record(fields) = back else {
                panic!("record")
            };
            let personal = fields.iter().find(|(n, _)| n == "personal");
            assert_eq!(personal.is_some(), m.has_personal(), "{}", contract.name);
            if let Some((_, v)) = personal {
                let sealed: Sealed = apache_avro::from_value(v).expect("sealed");
                assert!(key.open(person, &sealed).is_ok(), "{}", contract.name);
                assert!(key.open(Uuid::now_v7(), &sealed).is_err());
            }
        }
        // Enums (France Travail's registration category, exit destination and contract) are
        // written as symbols of the canonical enums.
        let mut ft = synthetic::life("france-travail", 5, now);
        let exit = Ingress::Exited(crate::ingress::PersonExited {
            submission: synthetic::submission("france-travail", 5, 9, now),
            operator: "france-travail".into(),
            organisation: synthetic::organisation("france-travail"),
            exited_on: 20_000,
            destination: "TRAINING".into(),
            contract: Some("INTERIM".into()),
            rome: Some("M1805".into()),
            reason_code: None,
        });
        ft.push(exit);
        for m in &ft {
            let (contract, bytes) =
                canonical(m, "france-travail", person, Some(&key), 0).expect("canonical");
            let back = apache_avro::from_avro_datum(&contract.schema, &mut &bytes[..], None)
                .expect("decodes");
            let apache_avro::types::Value::Record(fields) = back else {
                panic!("record")
            };
            let get = |n: &str| fields.iter().find(|(f, _)| f == n).map(|(_, v)| v.clone());
            use apache_avro::types::Value as V;
            if let Some(v) = get("registration_category") {
                assert_eq!(v, V::Union(1, Box::new(V::Enum(0, "A".into()))));
            }
            if let Some(v) = get("destination") {
                assert_eq!(v, V::Enum(1, "TRAINING".into()));
                assert_eq!(
                    get("contract"),
                    Some(V::Union(1, Box::new(V::Enum(3, "INTERIM".into()))))
                );
            }
        }
        // A message with personal fields and no key is a bug, reported as such.
        let m = &synthetic::life("cap-emploi", 4, now)[0];
        assert!(matches!(
            canonical(m, "cap-emploi", person, None, 0),
            Err(crate::Error::Internal(_))
        ));
    }
}
