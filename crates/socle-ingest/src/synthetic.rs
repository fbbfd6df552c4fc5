//! Synthetic ingress messages for tests, the benchmark and operators' trials: no real people,
//! identifiers with valid keys (NIR key, SIREN/SIRET Luhn), communes from the INSEE COG.
//!
//! Person `n` of an operator has a stable operator reference, identity and life: registered,
//! contact updated, situation updated, followed, follow ended ([`life`]). [`Bad`] lists the kinds
//! of broken input ingestion must dead-letter, each with the reason code it must give.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use socle_domain::time::{to_days, to_micros};
use uuid::Uuid;

use crate::ingress::{
    Contact, FollowEnded, FollowStarted, Health, Identity, Ingress, PersonContactUpdated,
    PersonRegistered, PersonSituationUpdated, Submission,
};

/// (commune, département) pairs from the INSEE COG 2023.
pub const PLACES: [(&str, &str); 8] = [
    ("75056", "75"),
    ("69123", "69"),
    ("13055", "13"),
    ("59350", "59"),
    ("2A004", "2A"),
    ("97411", "974"),
    ("33063", "33"),
    ("35238", "35"),
];

const FAMILY: [&str; 8] = [
    "Lefort", "Marchand", "Aubry", "Perrin", "Caron", "Lemoine", "Barbier", "Renaud",
];
const GIVEN: [&str; 8] = [
    "Camille", "Noah", "Lina", "Sacha", "Inès", "Malo", "Jade", "Rayan",
];

/// `prefix` followed by the digit that makes it satisfy Luhn.
pub fn with_luhn_digit(prefix: &str) -> String {
    (0..10)
        .map(|d| format!("{prefix}{d}"))
        .find(|c| socle_domain::validate::luhn_valid(c))
        .unwrap_or_else(|| format!("{prefix}0"))
}

/// A synthetic SIRET whose SIREN and SIRET both pass Luhn.
pub fn siret(siren8: u32, nic4: u32) -> String {
    let siren = with_luhn_digit(&format!("{siren8:08}"));
    with_luhn_digit(&format!("{siren}{nic4:04}"))
}

/// The synthetic organisation of `operator` that sends the messages.
pub fn organisation(operator: &str) -> String {
    match operator {
        "france-travail" => siret(13_000_548, 1),
        "cap-emploi" => siret(77_700_001, 12),
        _ => siret(41_000_002, 25),
    }
}

/// The operator's own reference for person `n`: 11 digits, a valid France Travail id.
pub fn operator_ref(n: u64) -> String {
    format!("{:011}", n % 100_000_000_000)
}

/// A NIR with a valid key for someone born on `birth` in département 75.
pub fn nir(n: u64, birth: NaiveDate) -> String {
    let sex = 1 + n % 2;
    let first13 = format!(
        "{sex}{:02}{:02}75056{:03}",
        birth.year() % 100,
        birth.month(),
        1 + n % 999
    );
    let key = 97 - first13.parse::<u64>().unwrap_or(0) % 97;
    format!("{first13}{key:02}")
}

fn birth(n: u64) -> NaiveDate {
    let year = 1965 + i32::try_from(n % 40).unwrap_or(0);
    let month = 1 + u32::try_from(n % 12).unwrap_or(0);
    let day = 1 + u32::try_from(n % 28).unwrap_or(0);
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default()
}

/// A submission for person `n`'s `seq`-th message.
pub fn submission(operator: &str, n: u64, seq: u64, at: DateTime<Utc>) -> Submission {
    Submission {
        event_id: Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("{operator}/{n}/{seq}").as_bytes(),
        ),
        occurred_at: to_micros(at),
        producer_organisation: organisation(operator),
        actor: Some(format!("conseiller.{}", n % 97)),
        correlation_id: None,
        operator_person_ref: operator_ref(n),
        person_id: None,
    }
}

/// Person `n`'s registration with `operator`.
pub fn registered(operator: &str, n: u64, now: DateTime<Utc>) -> PersonRegistered {
    let b = birth(n);
    let (commune, departement) = PLACES[usize::try_from(n % 8).unwrap_or(0)];
    let at = now - Duration::days(30);
    PersonRegistered {
        submission: submission(operator, n, 0, at),
        operator: operator.to_owned(),
        registering_organisation: organisation(operator),
        registered_on: to_days(at.date_naive()),
        commune: commune.to_owned(),
        departement: departement.to_owned(),
        identity: Identity {
            nir: Some(nir(n, b)),
            family_name: FAMILY[usize::try_from(n % 8).unwrap_or(0)].to_owned(),
            given_name: GIVEN[usize::try_from(n / 8 % 8).unwrap_or(0)].to_owned(),
            birth_date: to_days(b),
            email: Some(format!("personne{n}@exemple.fr")),
            phone: Some(format!(
                "06 {:02} {:02} {:02} {:02}",
                n % 100,
                n / 100 % 100,
                12,
                34
            )),
        },
    }
}

/// Person `n`'s whole life as `operator` tells it, in order: registration, contact update,
/// situation update, follow started, follow ended. Each with its Kafka key.
pub fn life(operator: &str, n: u64, now: DateTime<Utc>) -> Vec<Ingress> {
    let (commune, departement) = PLACES[usize::try_from((n + 1) % 8).unwrap_or(0)];
    let ecosystem = crate::rules::ecosystem_of(operator).unwrap_or("france-travail");
    let day = |d: i64| to_days((now - Duration::days(d)).date_naive());
    let follow_id = Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("{operator}/{n}/follow").as_bytes(),
    );
    vec![
        Ingress::Registered(registered(operator, n, now)),
        Ingress::ContactUpdated(PersonContactUpdated {
            submission: submission(operator, n, 1, now - Duration::days(20)),
            commune: commune.to_owned(),
            departement: departement.to_owned(),
            contact: Contact {
                email: Some(format!("p{n}@exemple.fr")),
                phone: Some("+33 6 12 34 56 78".to_owned()),
                address_line: Some(format!("{} rue de la Paix", 1 + n % 120)),
                address_complement: None,
                postal_code: Some("75002".to_owned()),
            },
        }),
        Ingress::SituationUpdated(PersonSituationUpdated {
            submission: submission(operator, n, 2, now - Duration::days(15)),
            effective_on: day(15),
            registration_category: (operator == "france-travail").then(|| "A".to_owned()),
            rsa_beneficiary: Some(n % 5 == 0),
            health: if operator == "mission-locale" {
                Health {
                    rqth: None,
                    rqth_until: None,
                    boeth: None,
                }
            } else {
                Health {
                    rqth: Some(n % 10 == 0),
                    rqth_until: None,
                    boeth: None,
                }
            },
        }),
        Ingress::FollowStarted(FollowStarted {
            submission: submission(operator, n, 3, now - Duration::days(10)),
            follow_id,
            organisation: organisation(operator),
            ecosystem: ecosystem.to_owned(),
            activity: "accompagnement".to_owned(),
            territory: departement.to_owned(),
            purpose: "accompagnement-vers-emploi".to_owned(),
            started_on: day(10),
            until: Some(day(-180)),
        }),
        Ingress::FollowEnded(FollowEnded {
            submission: submission(operator, n, 4, now - Duration::days(1)),
            follow_id,
            organisation: organisation(operator),
            ended_on: day(1),
            reason_code: Some("END_OF_PROGRAMME".to_owned()),
        }),
    ]
}

/// A kind of broken input and the reason ingestion must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    NirKey,
    CommuneUnknown,
    CommuneNotInDepartement,
    SiretChecksum,
    OperatorMismatch,
    EcosystemMismatch,
    KeyMismatch,
    BirthDateAgeTooLow,
    GuidFraming,
    NotFramed,
    UnknownSchemaId,
    TrailingBytes,
    Truncated,
    Empty,
}

impl Bad {
    pub const ALL: [Bad; 14] = [
        Bad::NirKey,
        Bad::CommuneUnknown,
        Bad::CommuneNotInDepartement,
        Bad::SiretChecksum,
        Bad::OperatorMismatch,
        Bad::EcosystemMismatch,
        Bad::KeyMismatch,
        Bad::BirthDateAgeTooLow,
        Bad::GuidFraming,
        Bad::NotFramed,
        Bad::UnknownSchemaId,
        Bad::TrailingBytes,
        Bad::Truncated,
        Bad::Empty,
    ];

    /// The reason code ingestion gives.
    pub fn code(self) -> &'static str {
        match self {
            Bad::NirKey => "nir.bad_key",
            Bad::CommuneUnknown => "cog.commune.unknown",
            Bad::CommuneNotInDepartement => "cog.commune.not_in_departement",
            Bad::SiretChecksum => "siret.bad_checksum",
            Bad::OperatorMismatch => "authz.operator_mismatch",
            Bad::EcosystemMismatch => "authz.ecosystem_mismatch",
            Bad::KeyMismatch => "ingress.key_mismatch",
            Bad::BirthDateAgeTooLow => "date.age_too_low",
            Bad::GuidFraming => "frame.guid_unsupported",
            Bad::NotFramed => "frame.unknown_magic",
            Bad::UnknownSchemaId => "schema.unknown_id",
            Bad::TrailingBytes => "avro.trailing_bytes",
            Bad::Truncated => "avro.undecodable",
            Bad::Empty => "frame.empty",
        }
    }

    /// A broken message about person `n` of `operator`: `(key, value)`. `id_of` gives the
    /// registered schema id of an ingress contract on this topic.
    pub fn message(
        self,
        operator: &str,
        n: u64,
        now: DateTime<Utc>,
        id_of: &dyn Fn(&Ingress) -> u32,
    ) -> (String, Vec<u8>) {
        let key = operator_ref(n);
        let mut reg = registered(operator, n, now);
        let framed = |m: &Ingress| {
            let body = crate::decode::encode_body(m).unwrap_or_default();
            socle_kafka::framing::Frame::encode(id_of(m), &body)
        };
        let value = match self {
            Bad::NirKey => {
                let mut nir = reg.identity.nir.clone().unwrap_or_default();
                let k: u8 = nir[13..].parse().unwrap_or(0);
                nir.replace_range(13.., &format!("{:02}", (k % 97) + 1));
                reg.identity.nir = Some(nir);
                framed(&Ingress::Registered(reg))
            }
            Bad::CommuneUnknown => {
                reg.commune = "75999".into();
                reg.departement = "75".into();
                framed(&Ingress::Registered(reg))
            }
            Bad::CommuneNotInDepartement => {
                reg.commune = "69123".into();
                reg.departement = "75".into();
                framed(&Ingress::Registered(reg))
            }
            Bad::SiretChecksum => {
                let mut s = reg.registering_organisation.clone();
                let last = s.pop().and_then(|c| c.to_digit(10)).unwrap_or(0);
                s.push(char::from_digit((last + 1) % 10, 10).unwrap_or('0'));
                reg.registering_organisation = s;
                framed(&Ingress::Registered(reg))
            }
            Bad::OperatorMismatch => {
                reg.operator = if operator == "cap-emploi" {
                    "france-travail"
                } else {
                    "cap-emploi"
                }
                .into();
                framed(&Ingress::Registered(reg))
            }
            Bad::EcosystemMismatch => {
                let mut life = life(operator, n, now);
                let Ingress::FollowStarted(mut f) = life.swap_remove(3) else {
                    return (key, Vec::new());
                };
                f.ecosystem = if operator == "cap-emploi" {
                    "france-travail"
                } else {
                    "cap-emploi"
                }
                .into();
                framed(&Ingress::FollowStarted(f))
            }
            Bad::KeyMismatch => {
                return (format!("{key}-other"), framed(&Ingress::Registered(reg)));
            }
            Bad::BirthDateAgeTooLow => {
                reg.identity.birth_date = to_days(now.date_naive() - Duration::days(365 * 10));
                reg.identity.nir = None;
                framed(&Ingress::Registered(reg))
            }
            Bad::GuidFraming => {
                let mut v = vec![1u8];
                v.extend_from_slice(Uuid::new_v4().as_bytes());
                v.extend_from_slice(
                    &crate::decode::encode_body(&Ingress::Registered(reg)).unwrap_or_default(),
                );
                v
            }
            Bad::NotFramed => br#"{"operator":"france-travail","nir":"1..."}"#.to_vec(),
            Bad::UnknownSchemaId => {
                let body =
                    crate::decode::encode_body(&Ingress::Registered(reg)).unwrap_or_default();
                socle_kafka::framing::Frame::encode(0x7fff_fff0, &body)
            }
            Bad::TrailingBytes => {
                let mut v = framed(&Ingress::Registered(reg));
                v.extend_from_slice(&[0, 0, 0]);
                v
            }
            Bad::Truncated => {
                let mut v = framed(&Ingress::Registered(reg));
                v.truncate(v.len() / 2);
                v
            }
            Bad::Empty => Vec::new(),
        };
        (key, value)
    }
}
