//! socle's own Avro contracts, compiled in from the repository's `schemas/` folder.
//!
//! Each is parsed once, on first use; a test parses them all so a broken file fails the build's
//! tests rather than a running service.

use std::sync::LazyLock;

use apache_avro::Schema;

/// One Avro contract: its full record name, the exact text registered, and the parsed schema.
#[derive(Debug)]
pub struct Contract {
    /// Full name of the record, e.g. `socle.person.PersonRegistered`.
    pub name: &'static str,
    /// The schema text as registered (docs included).
    pub raw: &'static str,
    pub schema: Schema,
}

impl Contract {
    fn load(name: &'static str, raw: &'static str) -> Contract {
        let schema = Schema::parse_str(raw)
            .unwrap_or_else(|e| panic!("compiled-in schema {name} does not parse: {e}"));
        Contract { name, raw, schema }
    }
}

/// `socle.person.PersonRegistered`.
pub static PERSON_REGISTERED: LazyLock<Contract> = LazyLock::new(|| {
    Contract::load(
        "socle.person.PersonRegistered",
        include_str!("../../../schemas/person/PersonRegistered.avsc"),
    )
});

/// `socle.pii.PersonIdentity`, only ever carried sealed.
pub static PERSON_IDENTITY: LazyLock<Contract> = LazyLock::new(|| {
    Contract::load(
        "socle.pii.PersonIdentity",
        include_str!("../../../schemas/person/PersonIdentity.avsc"),
    )
});

/// `socle.pii.Sealed`, on its own: the core state keeps sealed blocks in this encoding.
pub static SEALED: LazyLock<Contract> = LazyLock::new(|| {
    Contract::load(
        "socle.pii.Sealed",
        include_str!("../../../schemas/common/Sealed.avsc"),
    )
});

/// `socle.pii.PersonContact`, only ever carried sealed.
pub static PERSON_CONTACT: LazyLock<Contract> = LazyLock::new(|| {
    Contract::load(
        "socle.pii.PersonContact",
        include_str!("../../../schemas/person/PersonContact.avsc"),
    )
});

/// `socle.pii.PersonHealthSituation`, only ever carried sealed.
pub static PERSON_HEALTH: LazyLock<Contract> = LazyLock::new(|| {
    Contract::load(
        "socle.pii.PersonHealthSituation",
        include_str!("../../../schemas/person/PersonHealthSituation.avsc"),
    )
});

/// Every person event contract (topic `socle.persons`), by full record name.
pub static PERSON_EVENTS: LazyLock<Vec<Contract>> = LazyLock::new(|| {
    [
        (
            "socle.person.AccompanimentEnded",
            include_str!("../../../schemas/person/AccompanimentEnded.avsc"),
        ),
        (
            "socle.person.AccompanimentStarted",
            include_str!("../../../schemas/person/AccompanimentStarted.avsc"),
        ),
        (
            "socle.person.AppointmentHeld",
            include_str!("../../../schemas/person/AppointmentHeld.avsc"),
        ),
        (
            "socle.person.AppointmentMissed",
            include_str!("../../../schemas/person/AppointmentMissed.avsc"),
        ),
        (
            "socle.person.AppointmentScheduled",
            include_str!("../../../schemas/person/AppointmentScheduled.avsc"),
        ),
        (
            "socle.person.FollowEnded",
            include_str!("../../../schemas/person/FollowEnded.avsc"),
        ),
        (
            "socle.person.FollowStarted",
            include_str!("../../../schemas/person/FollowStarted.avsc"),
        ),
        (
            "socle.person.PersonContactUpdated",
            include_str!("../../../schemas/person/PersonContactUpdated.avsc"),
        ),
        (
            "socle.person.PersonExited",
            include_str!("../../../schemas/person/PersonExited.avsc"),
        ),
        (
            "socle.person.PersonIdentityUpdated",
            include_str!("../../../schemas/person/PersonIdentityUpdated.avsc"),
        ),
        (
            "socle.person.PersonOrientationDecided",
            include_str!("../../../schemas/person/PersonOrientationDecided.avsc"),
        ),
        (
            "socle.person.PersonRegistered",
            include_str!("../../../schemas/person/PersonRegistered.avsc"),
        ),
        (
            "socle.person.PersonSituationUpdated",
            include_str!("../../../schemas/person/PersonSituationUpdated.avsc"),
        ),
        (
            "socle.person.PrescriptionOutcomeRecorded",
            include_str!("../../../schemas/person/PrescriptionOutcomeRecorded.avsc"),
        ),
        (
            "socle.person.ServicePrescribed",
            include_str!("../../../schemas/person/ServicePrescribed.avsc"),
        ),
    ]
    .into_iter()
    .map(|(name, raw)| Contract::load(name, raw))
    .collect()
});

/// The person event contract named `name` (e.g. `socle.person.FollowStarted`).
pub fn person_event(name: &str) -> Option<&'static Contract> {
    PERSON_EVENTS.iter().find(|c| c.name == name)
}

/// `socle.feed.PersonView`: what one ecosystem may see of a person, on its feed.
pub static PERSON_VIEW: LazyLock<Contract> = LazyLock::new(|| {
    Contract::load(
        "socle.feed.PersonView",
        include_str!("../../../schemas/feed/PersonView.avsc"),
    )
});

/// `socle.access.AccessEvent`.
pub static ACCESS_EVENT: LazyLock<Contract> = LazyLock::new(|| {
    Contract::load(
        "socle.access.AccessEvent",
        include_str!("../../../schemas/access/AccessEvent.avsc"),
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_person_event_is_compiled_in() {
        assert_eq!(PERSON_EVENTS.len(), 15);
        for c in PERSON_EVENTS.iter() {
            let Schema::Record(record) = &c.schema else {
                panic!("{} is not a record", c.name);
            };
            assert_eq!(record.name.fullname(None), c.name);
        }
        assert!(person_event("socle.person.FollowStarted").is_some());
        assert!(person_event("socle.person.Nope").is_none());
    }

    #[test]
    fn every_compiled_in_contract_parses_under_its_name() {
        for c in [
            &*PERSON_REGISTERED,
            &*PERSON_IDENTITY,
            &*ACCESS_EVENT,
            &*SEALED,
            &*PERSON_CONTACT,
            &*PERSON_HEALTH,
            &*PERSON_VIEW,
        ] {
            let Schema::Record(record) = &c.schema else {
                panic!("{} is not a record", c.name);
            };
            assert_eq!(record.name.fullname(None), c.name);
        }
    }
}
