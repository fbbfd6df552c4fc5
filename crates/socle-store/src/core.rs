//! The core state: every fact person events carry, personal fields still sealed.
//!
//! All statements take the core schema's name, so that the live projector (`core`), a replay
//! and an as-of build share the same code on different schemas.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::{ident, Result};

/// A value for one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Text(Option<String>),
    Date(Option<NaiveDate>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

/// A group of person fields set together by one event (merge unit: latest `occurred_at` wins).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// `registration`, `residence`, `identity`, `contact`, `situation`, `health`,
    /// `orientation` or `exit`: the `<group>_at` column holds the time it was last set.
    pub name: &'static str,
    pub columns: Vec<(&'static str, Val)>,
}

/// One event, as the core state needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// Sets groups of person fields.
    Person { groups: Vec<Group> },
    FollowStarted {
        follow_id: Uuid,
        organisation: String,
        ecosystem: String,
        activity: String,
        territory: String,
        purpose: String,
        started_on: NaiveDate,
        until: Option<NaiveDate>,
    },
    FollowEnded { follow_id: Uuid, ended_on: NaiveDate },
    ServicePrescribed {
        prescription_id: Uuid,
        prescriber_organisation: String,
        service_id: String,
        structure_id: String,
        structure_siret: Option<String>,
        prescribed_on: NaiveDate,
    },
    PrescriptionOutcome {
        prescription_id: Uuid,
        outcome: String,
        outcome_on: NaiveDate,
    },
    /// Accepted and recorded in the person's history, with nothing to project yet
    /// (appointments, accompaniments).
    Noted,
}

/// A fact about one person, from one event.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonFact {
    pub person_id: Uuid,
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub fact: Fact,
}

const GROUPS: [&str; 8] = [
    "registration", "residence", "identity", "contact", "situation", "health", "orientation", "exit",
];

/// Creates the core schema `core` if needed.
///
/// # Errors
/// [`crate::Error::Database`]; [`crate::Error::BadIdentifier`] for an unsafe schema name.
pub async fn ensure(tx: &mut Transaction<'_, Postgres>, core: &str) -> Result<()> {
    let core = ident(core)?;
    let ddl: String = include_str!("sql/core.sql")
        .replace("{core}", core)
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for statement in ddl.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sqlx::query(statement).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Applies `facts` in order; facts whose event id was already applied are skipped.
/// Returns the ids of the persons touched.
///
/// # Errors
/// [`crate::Error::Database`].
pub async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    core: &str,
    facts: &[PersonFact],
) -> Result<HashSet<Uuid>> {
    let core = ident(core)?;
    let ids: Vec<Uuid> = facts.iter().map(|f| f.event_id).collect();
    let fresh: HashSet<Uuid> = sqlx::query_scalar(&format!(
        "INSERT INTO {core}.applied_events (event_id) SELECT * FROM UNNEST($1::uuid[]) \
         ON CONFLICT DO NOTHING RETURNING event_id"
    ))
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let mut touched = HashSet::new();
    let mut seen = HashSet::new();
    for f in facts {
        // Fresh, and only once even if the batch carries the same event twice.
        if !fresh.contains(&f.event_id) || !seen.insert(f.event_id) {
            continue;
        }
        touched.insert(f.person_id);
        let groups: &[Group] = match &f.fact {
            Fact::Person { groups } => groups,
            _ => &[],
        };
        upsert_person(tx, core, f, groups).await?;
        match &f.fact {
            Fact::FollowStarted {
                follow_id,
                organisation,
                ecosystem,
                activity,
                territory,
                purpose,
                started_on,
                until,
            } => {
                sqlx::query(&format!(
                    "INSERT INTO {core}.follows (follow_id, person_id, organisation, ecosystem, \
                     activity, territory, purpose, started_on, until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (follow_id) DO UPDATE SET \
                     organisation = EXCLUDED.organisation, ecosystem = EXCLUDED.ecosystem, \
                     activity = EXCLUDED.activity, territory = EXCLUDED.territory, \
                     purpose = EXCLUDED.purpose, started_on = EXCLUDED.started_on, until = EXCLUDED.until"
                ))
                .bind(follow_id)
                .bind(f.person_id)
                .bind(organisation)
                .bind(ecosystem)
                .bind(activity)
                .bind(territory)
                .bind(purpose)
                .bind(started_on)
                .bind(until)
                .execute(&mut **tx)
                .await?;
            }
            Fact::FollowEnded { follow_id, ended_on } => {
                sqlx::query(&format!(
                    "UPDATE {core}.follows SET ended_on = $2 WHERE follow_id = $1"
                ))
                .bind(follow_id)
                .bind(ended_on)
                .execute(&mut **tx)
                .await?;
            }
            Fact::ServicePrescribed {
                prescription_id,
                prescriber_organisation,
                service_id,
                structure_id,
                structure_siret,
                prescribed_on,
            } => {
                sqlx::query(&format!(
                    "INSERT INTO {core}.prescriptions (prescription_id, person_id, \
                     prescriber_organisation, service_id, structure_id, structure_siret, \
                     prescribed_on) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (prescription_id) DO NOTHING"
                ))
                .bind(prescription_id)
                .bind(f.person_id)
                .bind(prescriber_organisation)
                .bind(service_id)
                .bind(structure_id)
                .bind(structure_siret)
                .bind(prescribed_on)
                .execute(&mut **tx)
                .await?;
            }
            Fact::PrescriptionOutcome {
                prescription_id,
                outcome,
                outcome_on,
            } => {
                sqlx::query(&format!(
                    "UPDATE {core}.prescriptions SET outcome = $2, outcome_on = $3 \
                     WHERE prescription_id = $1"
                ))
                .bind(prescription_id)
                .bind(outcome)
                .bind(outcome_on)
                .execute(&mut **tx)
                .await?;
            }
            Fact::Person { .. } | Fact::Noted => {}
        }
    }
    Ok(touched)
}

async fn upsert_person(
    tx: &mut Transaction<'_, Postgres>,
    core: &str,
    f: &PersonFact,
    groups: &[Group],
) -> Result<()> {
    let mut columns = vec!["person_id".to_owned(), "last_event_id".into(), "last_occurred_at".into()];
    let mut sets = vec![
        "last_event_id = CASE WHEN p.last_occurred_at <= EXCLUDED.last_occurred_at \
         THEN EXCLUDED.last_event_id ELSE p.last_event_id END"
            .to_owned(),
        "last_occurred_at = GREATEST(p.last_occurred_at, EXCLUDED.last_occurred_at)".to_owned(),
    ];
    for g in groups {
        if !GROUPS.contains(&g.name) {
            continue;
        }
        let at = format!("{}_at", g.name);
        for (column, _) in &g.columns {
            sets.push(format!(
                "{column} = CASE WHEN p.{at} IS NULL OR p.{at} <= EXCLUDED.{at} \
                 THEN EXCLUDED.{column} ELSE p.{column} END"
            ));
            columns.push((*column).to_owned());
        }
        sets.push(format!("{at} = GREATEST(p.{at}, EXCLUDED.{at})"));
        columns.push(at);
    }
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {core}.persons AS p ({}) VALUES ({}) ON CONFLICT (person_id) DO UPDATE SET {}",
        columns.join(", "),
        placeholders.join(", "),
        sets.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(f.person_id)
        .bind(f.event_id)
        .bind(f.occurred_at);
    for g in groups.iter().filter(|g| GROUPS.contains(&g.name)) {
        for (_, value) in &g.columns {
            query = match value {
                Val::Text(v) => query.bind(v.clone()),
                Val::Date(v) => query.bind(*v),
                Val::Bool(v) => query.bind(*v),
                Val::Bytes(v) => query.bind(v.clone()),
            };
        }
        query = query.bind(f.occurred_at);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// A person's core state, personal groups still sealed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CoreState {
    pub person_id: Uuid,
    pub registration_operator: Option<String>,
    pub registration_organisation: Option<String>,
    pub registration_date: Option<NaiveDate>,
    pub residence_commune: Option<String>,
    pub residence_departement: Option<String>,
    pub identity_sealed: Option<Vec<u8>>,
    pub contact_sealed: Option<Vec<u8>>,
    pub situation_registration_category: Option<String>,
    pub situation_rsa_beneficiary: Option<bool>,
    pub health_sealed: Option<Vec<u8>>,
    pub orientation_referent_operator: Option<String>,
    pub orientation_pathway: Option<String>,
    pub exit_date: Option<NaiveDate>,
    pub exit_destination: Option<String>,
    pub last_event_id: Option<Uuid>,
    pub last_occurred_at: Option<DateTime<Utc>>,
    pub follows: Vec<Follow>,
    pub prescriptions: Vec<Prescription>,
}

/// One follow (caseload link) of a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follow {
    pub follow_id: Uuid,
    pub organisation: String,
    pub ecosystem: String,
    pub activity: String,
    pub territory: String,
    pub purpose: String,
    pub started_on: NaiveDate,
    pub until: Option<NaiveDate>,
    pub ended_on: Option<NaiveDate>,
}

/// One prescription of a service to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prescription {
    pub prescription_id: Uuid,
    pub structure_siret: Option<String>,
    pub prescriber_organisation: String,
    pub outcome: Option<String>,
}

/// The core state of `persons`.
///
/// # Errors
/// [`crate::Error::Database`].
pub async fn load(
    tx: &mut Transaction<'_, Postgres>,
    core: &str,
    persons: &[Uuid],
) -> Result<HashMap<Uuid, CoreState>> {
    let core = ident(core)?;
    let mut out: HashMap<Uuid, CoreState> = HashMap::with_capacity(persons.len());
    let rows = sqlx::query(&format!(
        "SELECT person_id, registration_operator, registration_organisation, registration_date, \
         residence_commune, residence_departement, identity_sealed, contact_sealed, \
         situation_registration_category, situation_rsa_beneficiary, health_sealed, \
         orientation_referent_operator, orientation_pathway, exit_date, exit_destination, \
         last_event_id, last_occurred_at FROM {core}.persons WHERE person_id = ANY($1)"
    ))
    .bind(persons)
    .fetch_all(&mut **tx)
    .await?;
    for r in rows {
        let s = CoreState {
            person_id: r.try_get("person_id")?,
            registration_operator: r.try_get("registration_operator")?,
            registration_organisation: r.try_get("registration_organisation")?,
            registration_date: r.try_get("registration_date")?,
            residence_commune: r.try_get("residence_commune")?,
            residence_departement: r.try_get("residence_departement")?,
            identity_sealed: r.try_get("identity_sealed")?,
            contact_sealed: r.try_get("contact_sealed")?,
            situation_registration_category: r.try_get("situation_registration_category")?,
            situation_rsa_beneficiary: r.try_get("situation_rsa_beneficiary")?,
            health_sealed: r.try_get("health_sealed")?,
            orientation_referent_operator: r.try_get("orientation_referent_operator")?,
            orientation_pathway: r.try_get("orientation_pathway")?,
            exit_date: r.try_get("exit_date")?,
            exit_destination: r.try_get("exit_destination")?,
            last_event_id: r.try_get("last_event_id")?,
            last_occurred_at: r.try_get("last_occurred_at")?,
            follows: Vec::new(),
            prescriptions: Vec::new(),
        };
        out.insert(s.person_id, s);
    }
    let follows = sqlx::query(&format!(
        "SELECT person_id, follow_id, organisation, ecosystem, activity, territory, purpose, \
         started_on, until, ended_on FROM {core}.follows WHERE person_id = ANY($1) \
         ORDER BY started_on, follow_id"
    ))
    .bind(persons)
    .fetch_all(&mut **tx)
    .await?;
    for r in follows {
        let person_id: Uuid = r.try_get("person_id")?;
        let follow = Follow {
            follow_id: r.try_get("follow_id")?,
            organisation: r.try_get("organisation")?,
            ecosystem: r.try_get("ecosystem")?,
            activity: r.try_get("activity")?,
            territory: r.try_get("territory")?,
            purpose: r.try_get("purpose")?,
            started_on: r.try_get("started_on")?,
            until: r.try_get("until")?,
            ended_on: r.try_get("ended_on")?,
        };
        out.entry(person_id)
            .or_insert_with(|| CoreState { person_id, ..CoreState::default() })
            .follows
            .push(follow);
    }
    let prescriptions = sqlx::query(&format!(
        "SELECT person_id, prescription_id, structure_siret, prescriber_organisation, outcome \
         FROM {core}.prescriptions WHERE person_id = ANY($1) ORDER BY prescribed_on, prescription_id"
    ))
    .bind(persons)
    .fetch_all(&mut **tx)
    .await?;
    for r in prescriptions {
        let person_id: Uuid = r.try_get("person_id")?;
        let p = Prescription {
            prescription_id: r.try_get("prescription_id")?,
            structure_siret: r.try_get("structure_siret")?,
            prescriber_organisation: r.try_get("prescriber_organisation")?,
            outcome: r.try_get("outcome")?,
        };
        out.entry(person_id)
            .or_insert_with(|| CoreState { person_id, ..CoreState::default() })
            .prescriptions
            .push(p);
    }
    Ok(out)
}
