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
    FollowEnded {
        follow_id: Uuid,
        /// SIRET of the organisation ending it: must be the one that started it.
        organisation: String,
        ended_on: NaiveDate,
    },
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
    "registration",
    "residence",
    "identity",
    "contact",
    "situation",
    "health",
    "orientation",
    "exit",
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

/// The columns of `persons` besides its key, with their kind.
const PERSON_COLUMNS: [(&str, Kind); 24] = [
    ("registration_operator", Kind::Text),
    ("registration_organisation", Kind::Text),
    ("registration_date", Kind::Date),
    ("registration_at", Kind::Ts),
    ("residence_commune", Kind::Text),
    ("residence_departement", Kind::Text),
    ("residence_at", Kind::Ts),
    ("identity_sealed", Kind::Bytes),
    ("identity_at", Kind::Ts),
    ("contact_sealed", Kind::Bytes),
    ("contact_at", Kind::Ts),
    ("situation_registration_category", Kind::Text),
    ("situation_rsa_beneficiary", Kind::Bool),
    ("situation_at", Kind::Ts),
    ("health_sealed", Kind::Bytes),
    ("health_at", Kind::Ts),
    ("orientation_referent_operator", Kind::Text),
    ("orientation_pathway", Kind::Text),
    ("orientation_at", Kind::Ts),
    ("exit_date", Kind::Date),
    ("exit_destination", Kind::Text),
    ("exit_at", Kind::Ts),
    ("last_event_id", Kind::Uuid),
    ("last_occurred_at", Kind::Ts),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Date,
    Bool,
    Bytes,
    Ts,
    Uuid,
}

/// One cell of a core row, in memory.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Val(Val),
    Ts(Option<DateTime<Utc>>),
    Uuid(Option<Uuid>),
}

type CoreRow = HashMap<&'static str, Cell>;

fn ts(row: &CoreRow, column: &str) -> Option<DateTime<Utc>> {
    match row.get(column) {
        Some(Cell::Ts(t)) => *t,
        _ => None,
    }
}

/// A fact that was not applied because it contradicts the core state, with its reason (the
/// projector records it in its rejects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub event_id: Uuid,
    /// `follow.id_conflict` or `follow.not_owned`.
    pub code: &'static str,
    pub reason: String,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The persons whose state the applied facts touched.
    pub touched: HashSet<Uuid>,
    /// Facts not applied, in input order.
    pub refused: Vec<Refused>,
}

/// Who a follow belongs to: it is only ever ended by, and its id only ever reused by, the same
/// person and organisation (and ecosystem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowOwner {
    pub person_id: Uuid,
    pub organisation: String,
    pub ecosystem: String,
    pub ended_on: Option<NaiveDate>,
}

/// SIRETs compared without the spaces and dots people type.
pub fn same_organisation(a: &str, b: &str) -> bool {
    let compact = |s: &str| -> String { s.chars().filter(char::is_ascii_alphanumeric).collect() };
    compact(a) == compact(b)
}

/// The owners of the follows `follow_ids` that exist in the core state `core` (none when the
/// core state was never created).
///
/// # Errors
/// [`crate::Error::Database`], [`crate::Error::BadIdentifier`].
pub async fn follow_owners<'e, E>(
    executor: E,
    core: &str,
    follow_ids: &[Uuid],
) -> Result<HashMap<Uuid, FollowOwner>>
where
    E: sqlx::Executor<'e, Database = Postgres> + Copy,
{
    let core = ident(core)?;
    if follow_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{core}.follows"))
        .fetch_one(executor)
        .await?;
    if !exists {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT follow_id, person_id, organisation, ecosystem, ended_on FROM {core}.follows \
         WHERE follow_id = ANY($1)"
    ))
    .bind(follow_ids)
    .fetch_all(executor)
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        out.insert(
            r.try_get("follow_id")?,
            FollowOwner {
                person_id: r.try_get("person_id")?,
                organisation: r.try_get("organisation")?,
                ecosystem: r.try_get("ecosystem")?,
                ended_on: r.try_get("ended_on")?,
            },
        );
    }
    Ok(out)
}

/// Which follow facts of `facts` contradict the follows already known (`owners`, updated in
/// order as the facts are checked): a `FollowStarted` whose id belongs to another person or
/// organisation (`follow.id_conflict`), a `FollowEnded` of a follow that does not exist or
/// belongs to another person or organisation (`follow.not_owned`).
fn refuse_follows(
    facts: &[&PersonFact],
    owners: &mut HashMap<Uuid, (Uuid, String)>,
) -> Vec<Refused> {
    let mut refused = Vec::new();
    for f in facts {
        match &f.fact {
            Fact::FollowStarted {
                follow_id,
                organisation,
                ..
            } => match owners.get(follow_id) {
                Some((person, org))
                    if *person != f.person_id || !same_organisation(org, organisation) =>
                {
                    refused.push(Refused {
                        event_id: f.event_id,
                        code: "follow.id_conflict",
                        reason: format!(
                            "follow {follow_id} already belongs to another person or organisation: \
                             a follow id is never reassigned"
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    owners.insert(*follow_id, (f.person_id, organisation.clone()));
                }
            },
            Fact::FollowEnded {
                follow_id,
                organisation,
                ..
            } => match owners.get(follow_id) {
                Some((person, org))
                    if *person == f.person_id && same_organisation(org, organisation) => {}
                Some(_) => refused.push(Refused {
                    event_id: f.event_id,
                    code: "follow.not_owned",
                    reason: format!(
                        "follow {follow_id} belongs to another person or organisation: \
                         only its own organisation ends it, through its own person"
                    ),
                }),
                None => refused.push(Refused {
                    event_id: f.event_id,
                    code: "follow.not_owned",
                    reason: format!("follow {follow_id} does not exist for this person"),
                }),
            },
            _ => {}
        }
    }
    refused
}

/// Applies `facts` in order; facts whose event id was already applied are skipped, and follow
/// facts that contradict the follows already known are refused (see [`Refused`]), never applied.
/// Returns the ids of the persons touched and what was refused.
///
/// The persons touched are read once, merged in memory fact by fact (a group of fields is only
/// overwritten by an event that occurred at the same time or later), and written back with one
/// multi-row upsert; follows and prescriptions likewise: a handful of statements per batch,
/// whatever its size.
///
/// # Errors
/// [`crate::Error::Database`].
pub async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    core: &str,
    facts: &[PersonFact],
) -> Result<Applied> {
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
    let mut seen = HashSet::new();
    // Fresh, and only once even if the batch carries the same event twice.
    let facts: Vec<&PersonFact> = facts
        .iter()
        .filter(|f| fresh.contains(&f.event_id) && seen.insert(f.event_id))
        .collect();
    let follow_ids: Vec<Uuid> = facts
        .iter()
        .filter_map(|f| match &f.fact {
            Fact::FollowStarted { follow_id, .. } | Fact::FollowEnded { follow_id, .. } => {
                Some(*follow_id)
            }
            _ => None,
        })
        .collect();
    let mut owners: HashMap<Uuid, (Uuid, String)> = HashMap::new();
    if !follow_ids.is_empty() {
        // Locked: two batches cannot both take a new follow id.
        let rows = sqlx::query(&format!(
            "SELECT follow_id, person_id, organisation FROM {core}.follows \
             WHERE follow_id = ANY($1) FOR UPDATE"
        ))
        .bind(&follow_ids)
        .fetch_all(&mut **tx)
        .await?;
        for r in rows {
            owners.insert(
                r.try_get("follow_id")?,
                (r.try_get("person_id")?, r.try_get("organisation")?),
            );
        }
    }
    let refused = refuse_follows(&facts, &mut owners);
    let not_applied: HashSet<Uuid> = refused.iter().map(|r| r.event_id).collect();
    let facts: Vec<&PersonFact> = facts
        .into_iter()
        .filter(|f| !not_applied.contains(&f.event_id))
        .collect();
    let touched: HashSet<Uuid> = facts.iter().map(|f| f.person_id).collect();
    if touched.is_empty() {
        return Ok(Applied { touched, refused });
    }
    let persons: Vec<Uuid> = touched.iter().copied().collect();
    let mut rows = load_rows(tx, core, &persons).await?;

    let mut follows: Vec<&PersonFact> = Vec::new();
    let mut ends: Vec<(Uuid, Uuid, String, NaiveDate)> = Vec::new();
    let mut prescriptions: Vec<&PersonFact> = Vec::new();
    let mut outcomes: Vec<(Uuid, String, NaiveDate)> = Vec::new();
    for f in &facts {
        let row = rows.entry(f.person_id).or_default();
        if ts(row, "last_occurred_at").is_none_or(|t| t <= f.occurred_at) {
            row.insert("last_occurred_at", Cell::Ts(Some(f.occurred_at)));
            row.insert("last_event_id", Cell::Uuid(Some(f.event_id)));
        }
        match &f.fact {
            Fact::Person { groups } => {
                for g in groups.iter().filter(|g| GROUPS.contains(&g.name)) {
                    let at_column = group_at(g.name);
                    if ts(row, at_column).is_none_or(|t| t <= f.occurred_at) {
                        for (column, value) in &g.columns {
                            if let Some((name, _)) =
                                PERSON_COLUMNS.iter().find(|(c, _)| c == column)
                            {
                                row.insert(name, Cell::Val(value.clone()));
                            }
                        }
                        row.insert(at_column, Cell::Ts(Some(f.occurred_at)));
                    }
                }
            }
            Fact::FollowStarted { .. } => follows.push(f),
            Fact::FollowEnded {
                follow_id,
                organisation,
                ended_on,
            } => ends.push((*follow_id, f.person_id, organisation.clone(), *ended_on)),
            Fact::ServicePrescribed { .. } => prescriptions.push(f),
            Fact::PrescriptionOutcome {
                prescription_id,
                outcome,
                outcome_on,
            } => outcomes.push((*prescription_id, outcome.clone(), *outcome_on)),
            Fact::Noted => {}
        }
    }
    write_rows(tx, core, &rows).await?;
    write_follows(tx, core, &follows, &ends).await?;
    write_prescriptions(tx, core, &prescriptions, &outcomes).await?;
    Ok(Applied { touched, refused })
}

fn group_at(group: &str) -> &'static str {
    match group {
        "registration" => "registration_at",
        "residence" => "residence_at",
        "identity" => "identity_at",
        "contact" => "contact_at",
        "situation" => "situation_at",
        "health" => "health_at",
        "orientation" => "orientation_at",
        _ => "exit_at",
    }
}

async fn load_rows(
    tx: &mut Transaction<'_, Postgres>,
    core: &str,
    persons: &[Uuid],
) -> Result<HashMap<Uuid, CoreRow>> {
    let columns: Vec<&str> = PERSON_COLUMNS.iter().map(|(c, _)| *c).collect();
    let records = sqlx::query(&format!(
        "SELECT person_id, {} FROM {core}.persons WHERE person_id = ANY($1)",
        columns.join(", ")
    ))
    .bind(persons)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = HashMap::with_capacity(persons.len());
    for r in records {
        let person: Uuid = r.try_get("person_id")?;
        let mut row = CoreRow::new();
        for (column, kind) in PERSON_COLUMNS {
            let cell = match kind {
                Kind::Text => Cell::Val(Val::Text(r.try_get(column)?)),
                Kind::Date => Cell::Val(Val::Date(r.try_get(column)?)),
                Kind::Bool => Cell::Val(Val::Bool(r.try_get(column)?)),
                Kind::Bytes => Cell::Val(Val::Bytes(r.try_get(column)?)),
                Kind::Ts => Cell::Ts(r.try_get(column)?),
                Kind::Uuid => Cell::Uuid(r.try_get(column)?),
            };
            row.insert(column, cell);
        }
        out.insert(person, row);
    }
    Ok(out)
}

async fn write_rows(
    tx: &mut Transaction<'_, Postgres>,
    core: &str,
    rows: &HashMap<Uuid, CoreRow>,
) -> Result<()> {
    let persons: Vec<Uuid> = rows.keys().copied().collect();
    let mut select = vec!["$1::uuid[]".to_owned()];
    let mut sets = Vec::new();
    for (i, (column, kind)) in PERSON_COLUMNS.iter().enumerate() {
        let cast = match kind {
            Kind::Text => "text",
            Kind::Date => "date",
            Kind::Bool => "boolean",
            Kind::Bytes => "bytea",
            Kind::Ts => "timestamptz",
            Kind::Uuid => "uuid",
        };
        select.push(format!("${}::{cast}[]", i + 2));
        sets.push(format!("{column} = EXCLUDED.{column}"));
    }
    let names: Vec<&str> = PERSON_COLUMNS.iter().map(|(c, _)| *c).collect();
    let sql = format!(
        "INSERT INTO {core}.persons (person_id, {}) SELECT * FROM UNNEST({}) \
         ON CONFLICT (person_id) DO UPDATE SET {}",
        names.join(", "),
        select.join(", "),
        sets.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(&persons);
    for (column, kind) in PERSON_COLUMNS {
        let cells = persons
            .iter()
            .map(|p| rows.get(p).and_then(|r| r.get(column)));
        query = match kind {
            Kind::Text => query.bind(
                cells
                    .map(|c| match c {
                        Some(Cell::Val(Val::Text(v))) => v.clone(),
                        _ => None,
                    })
                    .collect::<Vec<Option<String>>>(),
            ),
            Kind::Date => query.bind(
                cells
                    .map(|c| match c {
                        Some(Cell::Val(Val::Date(v))) => *v,
                        _ => None,
                    })
                    .collect::<Vec<Option<NaiveDate>>>(),
            ),
            Kind::Bool => query.bind(
                cells
                    .map(|c| match c {
                        Some(Cell::Val(Val::Bool(v))) => *v,
                        _ => None,
                    })
                    .collect::<Vec<Option<bool>>>(),
            ),
            Kind::Bytes => query.bind(
                cells
                    .map(|c| match c {
                        Some(Cell::Val(Val::Bytes(v))) => v.clone(),
                        _ => None,
                    })
                    .collect::<Vec<Option<Vec<u8>>>>(),
            ),
            Kind::Ts => query.bind(
                cells
                    .map(|c| match c {
                        Some(Cell::Ts(v)) => *v,
                        _ => None,
                    })
                    .collect::<Vec<Option<DateTime<Utc>>>>(),
            ),
            Kind::Uuid => query.bind(
                cells
                    .map(|c| match c {
                        Some(Cell::Uuid(v)) => *v,
                        _ => None,
                    })
                    .collect::<Vec<Option<Uuid>>>(),
            ),
        };
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

// Column vectors for one UNNEST insert; naming each would only add noise.
#[allow(clippy::type_complexity)]
async fn write_follows(
    tx: &mut Transaction<'_, Postgres>,
    core: &str,
    started: &[&PersonFact],
    ends: &[(Uuid, Uuid, String, NaiveDate)],
) -> Result<()> {
    // The last statement of each follow wins within the batch.
    let mut by_id: HashMap<Uuid, &PersonFact> = HashMap::new();
    for f in started {
        if let Fact::FollowStarted { follow_id, .. } = &f.fact {
            by_id.insert(*follow_id, f);
        }
    }
    if !by_id.is_empty() {
        let mut cols: (
            Vec<Uuid>,
            Vec<Uuid>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<NaiveDate>,
            Vec<Option<NaiveDate>>,
        ) = Default::default();
        for f in by_id.values() {
            if let Fact::FollowStarted {
                follow_id,
                organisation,
                ecosystem,
                activity,
                territory,
                purpose,
                started_on,
                until,
            } = &f.fact
            {
                cols.0.push(*follow_id);
                cols.1.push(f.person_id);
                cols.2.push(organisation.clone());
                cols.3.push(ecosystem.clone());
                cols.4.push(activity.clone());
                cols.5.push(territory.clone());
                cols.6.push(purpose.clone());
                cols.7.push(*started_on);
                cols.8.push(*until);
            }
        }
        sqlx::query(&format!(
            "INSERT INTO {core}.follows AS cur (follow_id, person_id, organisation, ecosystem, activity, \
             territory, purpose, started_on, until) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], \
             $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::date[], $9::date[]) \
             ON CONFLICT (follow_id) DO UPDATE SET activity = EXCLUDED.activity, \
             territory = EXCLUDED.territory, purpose = EXCLUDED.purpose, \
             started_on = EXCLUDED.started_on, until = EXCLUDED.until \
             WHERE cur.person_id = EXCLUDED.person_id \
             AND cur.organisation = EXCLUDED.organisation"
        ))
        .bind(cols.0)
        .bind(cols.1)
        .bind(cols.2)
        .bind(cols.3)
        .bind(cols.4)
        .bind(cols.5)
        .bind(cols.6)
        .bind(cols.7)
        .bind(cols.8)
        .execute(&mut **tx)
        .await?;
    }
    if !ends.is_empty() {
        let ids: Vec<Uuid> = ends.iter().map(|e| e.0).collect();
        let persons: Vec<Uuid> = ends.iter().map(|e| e.1).collect();
        let organisations: Vec<String> = ends.iter().map(|e| e.2.clone()).collect();
        let dates: Vec<NaiveDate> = ends.iter().map(|e| e.3).collect();
        // Only the follow's own person and organisation end it (checked before; said again here).
        sqlx::query(&format!(
            "UPDATE {core}.follows f SET ended_on = e.ended_on \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::date[]) \
             AS e(follow_id, person_id, organisation, ended_on) \
             WHERE f.follow_id = e.follow_id AND f.person_id = e.person_id \
             AND f.organisation = e.organisation"
        ))
        .bind(ids)
        .bind(persons)
        .bind(organisations)
        .bind(dates)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[allow(clippy::type_complexity)]
async fn write_prescriptions(
    tx: &mut Transaction<'_, Postgres>,
    core: &str,
    prescribed: &[&PersonFact],
    outcomes: &[(Uuid, String, NaiveDate)],
) -> Result<()> {
    let mut by_id: HashMap<Uuid, &PersonFact> = HashMap::new();
    for f in prescribed {
        if let Fact::ServicePrescribed {
            prescription_id, ..
        } = &f.fact
        {
            by_id.entry(*prescription_id).or_insert(f);
        }
    }
    if !by_id.is_empty() {
        let mut cols: (
            Vec<Uuid>,
            Vec<Uuid>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<Option<String>>,
            Vec<NaiveDate>,
        ) = Default::default();
        for f in by_id.values() {
            if let Fact::ServicePrescribed {
                prescription_id,
                prescriber_organisation,
                service_id,
                structure_id,
                structure_siret,
                prescribed_on,
            } = &f.fact
            {
                cols.0.push(*prescription_id);
                cols.1.push(f.person_id);
                cols.2.push(prescriber_organisation.clone());
                cols.3.push(service_id.clone());
                cols.4.push(structure_id.clone());
                cols.5.push(structure_siret.clone());
                cols.6.push(*prescribed_on);
            }
        }
        sqlx::query(&format!(
            "INSERT INTO {core}.prescriptions (prescription_id, person_id, prescriber_organisation, \
             service_id, structure_id, structure_siret, prescribed_on) SELECT * FROM UNNEST(\
             $1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::date[]) \
             ON CONFLICT (prescription_id) DO NOTHING"
        ))
        .bind(cols.0)
        .bind(cols.1)
        .bind(cols.2)
        .bind(cols.3)
        .bind(cols.4)
        .bind(cols.5)
        .bind(cols.6)
        .execute(&mut **tx)
        .await?;
    }
    for (id, outcome, on) in outcomes {
        sqlx::query(&format!(
            "UPDATE {core}.prescriptions SET outcome = $2, outcome_on = $3 WHERE prescription_id = $1"
        ))
        .bind(id)
        .bind(outcome)
        .bind(on)
        .execute(&mut **tx)
        .await?;
    }
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
            .or_insert_with(|| CoreState {
                person_id,
                ..CoreState::default()
            })
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
            .or_insert_with(|| CoreState {
                person_id,
                ..CoreState::default()
            })
            .prescriptions
            .push(p);
    }
    Ok(out)
}

/// Whether `organisation` followed `person` on `day` (a follow started on or before that day and
/// not ended by then), or had registered them, in the core state `core`: the caseload fact as it
/// was, for replaying a decision.
///
/// # Errors
/// [`crate::Error::Database`], [`crate::Error::BadIdentifier`].
pub async fn followed_on(
    pool: &sqlx::PgPool,
    core: &str,
    person: Uuid,
    organisation: &str,
    day: NaiveDate,
) -> Result<bool> {
    let core = ident(core)?;
    Ok(sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {core}.follows WHERE person_id = $1 AND organisation = $2 \
         AND started_on <= $3 AND (ended_on IS NULL OR ended_on > $3)) \
         OR EXISTS (SELECT 1 FROM {core}.persons WHERE person_id = $1 \
         AND registration_organisation = $2 AND registration_date <= $3)"
    ))
    .bind(person)
    .bind(organisation)
    .bind(day)
    .fetch_one(pool)
    .await?)
}
