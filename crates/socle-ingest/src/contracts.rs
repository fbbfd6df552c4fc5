//! The Avro contracts ingestion reads and writes, compiled in from `schemas/`.
//!
//! Ingress contracts (`schemas/ingress/`) are what operators publish: personal fields in clear,
//! a `socle.ingress.Submission` instead of socle's envelope. Canonical contracts
//! (`schemas/person/`) are what ingestion publishes on `socle.persons`, personal fields sealed.
//! Each is parsed once, on first use; a unit test parses them all.

use std::sync::LazyLock;

use apache_avro::Schema;
use socle_kafka::schemas::Contract;

fn load(name: &'static str, raw: &'static str) -> Contract {
    // The texts are compiled in and parsed by this crate's tests: a failure here is a build
    // defect, not an input error.
    let schema = Schema::parse_str(raw)
        .unwrap_or_else(|e| panic!("compiled-in schema {name} does not parse: {e}"));
    Contract { name, raw, schema }
}

macro_rules! contract {
    ($(#[$doc:meta])* $id:ident, $name:literal, $path:literal) => {
        $(#[$doc])*
        pub static $id: LazyLock<Contract> =
            LazyLock::new(|| load($name, include_str!(concat!("../../../schemas/", $path))));
    };
}

contract!(
    IN_PERSON_REGISTERED,
    "socle.ingress.PersonRegistered",
    "ingress/PersonRegistered.avsc"
);
contract!(
    IN_IDENTITY_UPDATED,
    "socle.ingress.PersonIdentityUpdated",
    "ingress/PersonIdentityUpdated.avsc"
);
contract!(
    IN_CONTACT_UPDATED,
    "socle.ingress.PersonContactUpdated",
    "ingress/PersonContactUpdated.avsc"
);
contract!(
    IN_SITUATION_UPDATED,
    "socle.ingress.PersonSituationUpdated",
    "ingress/PersonSituationUpdated.avsc"
);
contract!(
    IN_FOLLOW_STARTED,
    "socle.ingress.FollowStarted",
    "ingress/FollowStarted.avsc"
);
contract!(
    IN_FOLLOW_ENDED,
    "socle.ingress.FollowEnded",
    "ingress/FollowEnded.avsc"
);
contract!(
    IN_PERSON_EXITED,
    "socle.ingress.PersonExited",
    "ingress/PersonExited.avsc"
);
contract!(
    IN_SERVICE_PRESCRIBED,
    "socle.ingress.ServicePrescribed",
    "ingress/ServicePrescribed.avsc"
);

contract!(
    IN_APPOINTMENT_SCHEDULED,
    "socle.ingress.AppointmentScheduled",
    "ingress/AppointmentScheduled.avsc"
);

contract!(
    PERSON_REGISTERED,
    "socle.person.PersonRegistered",
    "person/PersonRegistered.avsc"
);
contract!(
    IDENTITY_UPDATED,
    "socle.person.PersonIdentityUpdated",
    "person/PersonIdentityUpdated.avsc"
);
contract!(
    CONTACT_UPDATED,
    "socle.person.PersonContactUpdated",
    "person/PersonContactUpdated.avsc"
);
contract!(
    SITUATION_UPDATED,
    "socle.person.PersonSituationUpdated",
    "person/PersonSituationUpdated.avsc"
);
contract!(
    FOLLOW_STARTED,
    "socle.person.FollowStarted",
    "person/FollowStarted.avsc"
);
contract!(
    FOLLOW_ENDED,
    "socle.person.FollowEnded",
    "person/FollowEnded.avsc"
);
contract!(
    PERSON_EXITED,
    "socle.person.PersonExited",
    "person/PersonExited.avsc"
);
contract!(
    SERVICE_PRESCRIBED,
    "socle.person.ServicePrescribed",
    "person/ServicePrescribed.avsc"
);
contract!(
    APPOINTMENT_SCHEDULED,
    "socle.person.AppointmentScheduled",
    "person/AppointmentScheduled.avsc"
);
contract!(
    PERSON_IDENTITY,
    "socle.pii.PersonIdentity",
    "person/PersonIdentity.avsc"
);
contract!(
    PERSON_CONTACT,
    "socle.pii.PersonContact",
    "person/PersonContact.avsc"
);
contract!(
    PERSON_HEALTH,
    "socle.pii.PersonHealthSituation",
    "person/PersonHealthSituation.avsc"
);

contract!(
    DEAD_LETTER,
    "socle.ingest.DeadLetter",
    "ingest/DeadLetter.avsc"
);

/// Every ingress contract, in the order of the docs.
pub fn ingress() -> [&'static Contract; 9] {
    [
        &IN_PERSON_REGISTERED,
        &IN_IDENTITY_UPDATED,
        &IN_CONTACT_UPDATED,
        &IN_SITUATION_UPDATED,
        &IN_FOLLOW_STARTED,
        &IN_FOLLOW_ENDED,
        &IN_PERSON_EXITED,
        &IN_SERVICE_PRESCRIBED,
        &IN_APPOINTMENT_SCHEDULED,
    ]
}

/// Every canonical event contract ingestion publishes on the persons topic.
pub fn canonical() -> [&'static Contract; 9] {
    [
        &PERSON_REGISTERED,
        &IDENTITY_UPDATED,
        &CONTACT_UPDATED,
        &SITUATION_UPDATED,
        &FOLLOW_STARTED,
        &FOLLOW_ENDED,
        &PERSON_EXITED,
        &SERVICE_PRESCRIBED,
        &APPOINTMENT_SCHEDULED,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_parses_under_its_name() {
        let all = ingress().into_iter().chain(canonical()).chain([
            &*PERSON_IDENTITY,
            &*PERSON_CONTACT,
            &*PERSON_HEALTH,
            &*DEAD_LETTER,
        ]);
        for c in all {
            let Schema::Record(record) = &c.schema else {
                panic!("{} is not a record", c.name);
            };
            assert_eq!(record.name.fullname(None), c.name);
        }
    }
}
