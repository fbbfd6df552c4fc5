//! A small synthetic demo dataset: no real people, valid identifier keys.

use chrono::{NaiveDate, TimeZone, Utc};
use socle_domain::PersonIdentity;
use socle_ingest::ingress::{FollowStarted, Identity, Ingress, PersonRegistered, Submission};
use socle_ingest::Registration;
use uuid::Uuid;

/// The id of the first demo person, printed by `make up`.
pub const DEMO_PERSON: Uuid = Uuid::from_u128(0x0193_6b2a_5c00_7000_8000_0000_0000_0001);

const FAMILY: [&str; 12] = [
    "Lefort", "Marchand", "Aubry", "Perrin", "Caron", "Lemoine", "Barbier", "Renaud", "Colin",
    "Vidal", "Garnier", "Rolland",
];
const GIVEN: [&str; 12] = [
    "Camille", "Noah", "Lina", "Sacha", "Inès", "Malo", "Jade", "Rayan", "Zoé", "Eliott", "Maëlys",
    "Nolan",
];
/// (commune, département) pairs from the INSEE COG.
const PLACES: [(&str, &str); 6] = [
    ("75056", "75"),
    ("69123", "69"),
    ("13055", "13"),
    ("59350", "59"),
    ("2A004", "2A"),
    ("97411", "974"),
];
const OPERATORS: [&str; 3] = ["france-travail", "cap-emploi", "mission-locale"];

/// The NIR key: 97 − (the 13 digits mod 97), Corsica 2A/2B counted as 19/18.
pub fn nir_key(first13: &str) -> u64 {
    let digits = first13.replace("2A", "19").replace("2B", "18");
    let n: u64 = digits.parse().unwrap_or(0);
    97 - n % 97
}

/// `prefix` followed by the check digit that makes it satisfy Luhn.
fn with_luhn_digit(prefix: &str) -> String {
    (0..10)
        .map(|d| format!("{prefix}{d}"))
        .find(|c| socle_domain::validate::luhn_valid(c))
        .unwrap_or_else(|| format!("{prefix}0"))
}

/// A synthetic SIRET whose SIREN and SIRET keys are both valid (Luhn).
pub fn synthetic_siret(siren8: u32, nic4: u32) -> String {
    let siren = with_luhn_digit(&format!("{siren8:08}"));
    with_luhn_digit(&format!("{siren}{nic4:04}"))
}

/// The organisation and ecosystem that follow the `i`-th demo person, if any: a Mission Locale
/// for a third of them (the young ones), Cap Emploi for another third.
pub fn follower(i: usize) -> Option<(String, &'static str)> {
    match i % 3 {
        0 => Some((synthetic_siret(90_000_200, 1), "missions-locales")),
        1 => Some((synthetic_siret(90_000_400, 1), "cap-emploi")),
        _ => None,
    }
}

/// The operator's reference of the `i`-th demo person (the Kafka key of its ingress messages):
/// 11 digits, the shape of a France Travail identifier.
fn operator_ref(i: usize) -> String {
    format!("{:011}", 90_000_000_000 + i)
}

fn submission(
    organisation: &str,
    i: usize,
    seq: u32,
    at: chrono::DateTime<Utc>,
    person_id: Uuid,
) -> Submission {
    Submission {
        event_id: Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("socle-demo/{i}/{seq}").as_bytes(),
        ),
        occurred_at: at.timestamp_micros(),
        producer_organisation: organisation.to_owned(),
        actor: Some("demo-loader".to_owned()),
        correlation_id: None,
        operator_person_ref: operator_ref(i),
        person_id: Some(person_id),
    }
}

/// What the operators' information systems publish about the `i`-th demo person, each with the
/// operator whose ingress topic carries it: the registration, then (for two thirds of them) the
/// follow by a Mission Locale or Cap Emploi. `socle ingest` checks them like any other message.
pub fn ingress(i: usize) -> Vec<(&'static str, Ingress)> {
    let r = registration(i);
    let operator = OPERATORS[i % OPERATORS.len()];
    let mut out = vec![(
        operator,
        Ingress::Registered(PersonRegistered {
            submission: submission(
                &r.registering_organisation,
                i,
                0,
                r.occurred_at,
                r.person_id,
            ),
            operator: r.operator.clone(),
            registering_organisation: r.registering_organisation.clone(),
            registered_on: socle_domain::time::to_days(r.registered_on),
            commune: r.commune.clone(),
            departement: r.departement.clone(),
            identity: Identity {
                nir: r.identity.nir.clone(),
                family_name: r.identity.family_name.clone(),
                given_name: r.identity.given_name.clone(),
                birth_date: r.identity.birth_date,
                email: r.identity.email.clone(),
                phone: r.identity.phone.clone(),
            },
        }),
    )];
    if let Some((organisation, ecosystem)) = follower(i) {
        let follower_operator = match ecosystem {
            "missions-locales" => "mission-locale",
            _ => "cap-emploi",
        };
        out.push((
            follower_operator,
            Ingress::FollowStarted(FollowStarted {
                submission: submission(
                    &organisation,
                    i,
                    1,
                    r.occurred_at + chrono::TimeDelta::days(2),
                    r.person_id,
                ),
                follow_id: Uuid::from_u128(r.person_id.as_u128() ^ 0xF011),
                organisation,
                ecosystem: ecosystem.to_owned(),
                activity: "accompagnement".to_owned(),
                territory: r.departement.clone(),
                purpose: "accompagnement".to_owned(),
                started_on: socle_domain::time::to_days(r.registered_on) + 2,
                until: None,
            }),
        ));
    }
    out
}

/// The `i`-th demo registration (deterministic).
pub fn registration(i: usize) -> Registration {
    let person_id = if i == 0 {
        DEMO_PERSON
    } else {
        Uuid::from_u128(0x0193_6b2a_5c00_7000_8000_0000_0000_0000 + i as u128 + 1)
    };
    let (commune, departement) = PLACES[i % PLACES.len()];
    let sex = 1 + (i % 2);
    // A third are young (in the Missions Locales' 16-25 band), followed by a Mission Locale.
    let year = if i % 3 == 0 {
        2004
    } else {
        1970 + (i * 7) % 30
    };
    let month = 1 + (i * 5) % 12;
    let birth = NaiveDate::from_ymd_opt(year as i32, month as u32, 1 + (i % 28) as u32)
        .unwrap_or(NaiveDate::MIN);
    let dept2 = &commune[..2];
    let first13 = format!(
        "{sex}{:02}{month:02}{dept2}{}{:03}",
        year % 100,
        &commune[2..5],
        1 + i % 999
    );
    let nir = format!("{first13}{:02}", nir_key(&first13));
    let operator = OPERATORS[i % OPERATORS.len()];
    let mut identity = PersonIdentity {
        nir: Some(nir),
        family_name: FAMILY[i % FAMILY.len()].to_owned(),
        given_name: GIVEN[(i * 5) % GIVEN.len()].to_owned(),
        birth_date: 0,
        email: Some(format!("demo.{i}@example.invalid")),
        phone: None,
    };
    identity.set_birth_date(birth);
    let registered_on =
        NaiveDate::from_ymd_opt(2026, 1 + (i % 10) as u32, 3).unwrap_or(NaiveDate::MIN);
    Registration {
        person_id,
        operator: operator.to_owned(),
        registering_organisation: synthetic_siret(90_000_100 + (i % 3) as u32, 1),
        registered_on,
        commune: commune.to_owned(),
        departement: departement.to_owned(),
        identity,
        actor: Some("demo-loader".to_owned()),
        occurred_at: Utc
            .with_ymd_and_hms(2026, 1 + (i % 10) as u32, 3, 9, 0, 0)
            .single()
            .unwrap_or_else(Utc::now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socle_domain::validate::Nir;
    use socle_domain::validate::Siret;

    #[test]
    fn demo_identifiers_have_valid_keys() {
        for i in 0..200 {
            let r = registration(i);
            let nir = r.identity.nir.clone().expect("demo persons have a NIR");
            let parsed = Nir::parse(&nir).unwrap_or_else(|e| panic!("demo NIR {nir}: {e}"));
            let birth = r.identity.birth_date().expect("birth date in range");
            parsed
                .check_birth_date(birth)
                .unwrap_or_else(|e| panic!("demo NIR {nir} vs {birth}: {e}"));
            Siret::parse(&r.registering_organisation)
                .unwrap_or_else(|e| panic!("demo SIRET {}: {e}", r.registering_organisation));
        }
    }

    #[test]
    fn the_first_demo_person_is_the_advertised_one() {
        assert_eq!(registration(0).person_id, DEMO_PERSON);
        assert_ne!(registration(1).person_id, DEMO_PERSON);
    }
}
