//! The auditors' questions, each one indexed query on the `audit` schema.
//!
//! Every answer is complete or says it is not: a query fetches one row more than its limit and
//! reports `truncated` (never a silently shortened list).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::{Error, Result};

/// Largest page a query returns.
pub const MAX_LIMIT: i64 = 10_000;

/// `[from, to)`.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    /// A period; refuses one that ends before it starts.
    ///
    /// # Errors
    /// [`Error::BadRequest`].
    pub fn new(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<Period> {
        // Open ends, within what PostgreSQL's timestamptz can hold.
        let from = from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let to = to.unwrap_or_else(|| {
            DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        });
        if to < from {
            return Err(Error::BadRequest(format!(
                "the period ends ({to}) before it starts ({from})"
            )));
        }
        Ok(Period { from, to })
    }
}

/// One access, as an auditor sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessRow {
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub user: String,
    pub organisation: String,
    pub ecosystem: Option<String>,
    pub purpose: Option<String>,
    pub auth_strength: String,
    pub action: String,
    pub resource: String,
    pub person_ids: Vec<String>,
    pub decision: String,
    pub reason: Option<String>,
    pub policy_version: Option<String>,
    pub agreement_version: Option<String>,
}

/// A page of answers.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub rows: Vec<T>,
    /// More rows matched than the limit: narrow the period.
    pub truncated: bool,
}

fn page<T>(mut rows: Vec<T>, limit: i64) -> Page<T> {
    let truncated = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Page { rows, truncated }
}

fn check_limit(limit: i64) -> Result<i64> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    Ok(limit)
}

const ACCESS_COLUMNS: &str = "a.event_id, a.occurred_at, a.user_id, a.organisation, a.ecosystem, \
     a.purpose, a.auth_strength, a.action, a.resource, a.person_ids, a.decision, a.reason, \
     a.policy_version, a.agreement_version";

fn access_row(r: &sqlx::postgres::PgRow) -> Result<AccessRow> {
    Ok(AccessRow {
        event_id: r.try_get("event_id")?,
        occurred_at: r.try_get("occurred_at")?,
        user: r.try_get("user_id")?,
        organisation: r.try_get("organisation")?,
        ecosystem: r.try_get("ecosystem")?,
        purpose: r.try_get("purpose")?,
        auth_strength: r.try_get("auth_strength")?,
        action: r.try_get("action")?,
        resource: r.try_get("resource")?,
        person_ids: r.try_get("person_ids")?,
        decision: r.try_get("decision")?,
        reason: r.try_get("reason")?,
        policy_version: r.try_get("policy_version")?,
        agreement_version: r.try_get("agreement_version")?,
    })
}

/// Who accessed `person` in `period`, with what, why and under which policy, oldest first.
///
/// # Errors
/// [`Error::BadRequest`] for a bad limit, [`Error::Database`].
pub async fn who_accessed(
    pool: &PgPool,
    person: &str,
    period: Period,
    limit: i64,
) -> Result<Page<AccessRow>> {
    let limit = check_limit(limit)?;
    let rows = sqlx::query(&format!(
        "SELECT {ACCESS_COLUMNS} FROM audit.access_person p JOIN audit.access a USING (event_id) \
         WHERE p.person_id = $1 AND p.occurred_at >= $2 AND p.occurred_at < $3 \
         ORDER BY p.occurred_at, p.event_id LIMIT $4"
    ))
    .bind(person)
    .bind(period.from)
    .bind(period.to)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(page(
        rows.iter().map(access_row).collect::<Result<_>>()?,
        limit,
    ))
}

/// One access event by id.
///
/// # Errors
/// [`Error::Database`].
pub async fn access_event(pool: &PgPool, event_id: Uuid) -> Result<Option<AccessRow>> {
    let row = sqlx::query(&format!(
        "SELECT {ACCESS_COLUMNS} FROM audit.access a WHERE a.event_id = $1"
    ))
    .bind(event_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(access_row).transpose()
}

/// Whose actions: one user, or everyone of one organisation.
#[derive(Debug, Clone)]
pub enum Actor {
    User(String),
    Organisation(String),
}

/// Everything `actor` read or changed in `period`, oldest first.
///
/// # Errors
/// [`Error::BadRequest`] for a bad limit, [`Error::Database`].
pub async fn actor(
    pool: &PgPool,
    actor: &Actor,
    period: Period,
    limit: i64,
) -> Result<Page<AccessRow>> {
    let limit = check_limit(limit)?;
    let (column, value) = match actor {
        Actor::User(u) => ("user_id", u),
        Actor::Organisation(o) => ("organisation", o),
    };
    let rows = sqlx::query(&format!(
        "SELECT {ACCESS_COLUMNS} FROM audit.access a WHERE a.{column} = $1 \
         AND a.occurred_at >= $2 AND a.occurred_at < $3 ORDER BY a.occurred_at, a.event_id LIMIT $4"
    ))
    .bind(value)
    .bind(period.from)
    .bind(period.to)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(page(
        rows.iter().map(access_row).collect::<Result<_>>()?,
        limit,
    ))
}

/// The person's own journal: who accessed their data, without the entries restricted for an
/// ongoing investigation.
///
/// # Errors
/// [`Error::BadRequest`] for a bad limit, [`Error::Database`].
pub async fn journal(
    pool: &PgPool,
    person: &str,
    period: Period,
    limit: i64,
) -> Result<Page<AccessRow>> {
    let limit = check_limit(limit)?;
    let rows = sqlx::query(&format!(
        "SELECT {ACCESS_COLUMNS} FROM audit.access_person p JOIN audit.access a USING (event_id) \
         WHERE p.person_id = $1 AND p.occurred_at >= $2 AND p.occurred_at < $3 \
         AND NOT EXISTS (SELECT 1 FROM audit.restrictions r WHERE r.event_id = a.event_id \
              OR (r.user_id = a.user_id AND a.occurred_at >= r.from_at AND a.occurred_at < r.to_at)) \
         ORDER BY p.occurred_at, p.event_id LIMIT $4"
    ))
    .bind(person)
    .bind(period.from)
    .bind(period.to)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(page(
        rows.iter().map(access_row).collect::<Result<_>>()?,
        limit,
    ))
}

/// What a restriction covers.
#[derive(Debug, Clone)]
pub enum Restricted {
    /// One access event.
    Event(Uuid),
    /// Everything one actor did in a period.
    Actor { user: String, period: Period },
}

/// Records a restriction (the caller also appends it to the trail as an access event).
///
/// # Errors
/// [`Error::BadRequest`] for an empty reason or author, [`Error::Database`].
pub async fn restrict(
    pool: &PgPool,
    what: &Restricted,
    reason: &str,
    author: &str,
) -> Result<Uuid> {
    if reason.trim().is_empty() || author.trim().is_empty() {
        return Err(Error::BadRequest(
            "a restriction needs a reason and an author".into(),
        ));
    }
    let id = Uuid::now_v7();
    let (event, user, from, to) = match what {
        Restricted::Event(e) => (Some(*e), None, None, None),
        Restricted::Actor { user, period } => {
            (None, Some(user.clone()), Some(period.from), Some(period.to))
        }
    };
    sqlx::query(
        "INSERT INTO audit.restrictions (restriction_id, event_id, user_id, from_at, to_at, reason, author) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(event)
    .bind(user)
    .bind(from)
    .bind(to)
    .bind(reason)
    .bind(author)
    .execute(pool)
    .await?;
    Ok(id)
}

/// One line of a person's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineRow {
    pub occurred_at: DateTime<Utc>,
    /// `event` (something happened to the person) or `access` (someone looked or acted).
    pub kind: String,
    pub event_id: Uuid,
    /// The event type, or the access action.
    pub what: String,
    /// The actor (user), if known.
    pub who: Option<String>,
    pub organisation: String,
    /// The access decision (none for an event).
    pub decision: Option<String>,
    pub reason: Option<String>,
}

/// Domain events and access events about `person`, merged in time order.
///
/// # Errors
/// [`Error::BadRequest`] for a bad limit, [`Error::Database`].
pub async fn timeline(
    pool: &PgPool,
    person: &str,
    period: Period,
    limit: i64,
) -> Result<Page<TimelineRow>> {
    let limit = check_limit(limit)?;
    let rows = sqlx::query(
        "SELECT * FROM ( \
           SELECT e.occurred_at, 'event' AS kind, e.event_id, e.event_type AS what, e.actor AS who, \
                  e.producer_organisation AS organisation, NULL::text AS decision, NULL::text AS reason \
           FROM audit.person_events e \
           WHERE e.person_id = $1 AND e.occurred_at >= $2 AND e.occurred_at < $3 \
           UNION ALL \
           SELECT a.occurred_at, 'access', a.event_id, a.action, a.user_id, a.organisation, a.decision, a.reason \
           FROM audit.access_person p JOIN audit.access a USING (event_id) \
           WHERE p.person_id = $1 AND p.occurred_at >= $2 AND p.occurred_at < $3 \
         ) t ORDER BY occurred_at, event_id LIMIT $4",
    )
    .bind(person)
    .bind(period.from)
    .bind(period.to)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok(TimelineRow {
                occurred_at: r.try_get("occurred_at")?,
                kind: r.try_get("kind")?,
                event_id: r.try_get("event_id")?,
                what: r.try_get("what")?,
                who: r.try_get("who")?,
                organisation: r.try_get("organisation")?,
                decision: r.try_get("decision")?,
                reason: r.try_get("reason")?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(page(rows, limit))
}

/// A timeline as CSV (header line, one row per line).
///
/// # Errors
/// [`Error::Internal`] if writing fails.
pub fn timeline_csv(rows: &[TimelineRow]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "occurred_at",
        "kind",
        "event_id",
        "what",
        "who",
        "organisation",
        "decision",
        "reason",
    ])
    .map_err(|e| Error::Internal(e.to_string()))?;
    for r in rows {
        w.write_record([
            r.occurred_at.to_rfc3339(),
            r.kind.clone(),
            r.event_id.to_string(),
            r.what.clone(),
            r.who.clone().unwrap_or_default(),
            r.organisation.clone(),
            r.decision.clone().unwrap_or_default(),
            r.reason.clone().unwrap_or_default(),
        ])
        .map_err(|e| Error::Internal(e.to_string()))?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| Error::Internal(e.to_string()))
}
