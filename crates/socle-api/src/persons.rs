//! People: read one, search within the caseload, list the caseload, look up a NIR.
//!
//! Scope is a SQL condition, never a filter applied afterwards: each query joins the caller's
//! caseload (and the territories of their grant), so what comes back is complete and can never
//! reach outside it.
//!
//! **Interim caseload.** Until the per-ecosystem read models with their follows land
//! (issue 4), "organisation follows person" is read as "the person was registered by the
//! caller's organisation" on `readmodel.persons` (see [`SCOPE`]). Only this module changes when
//! the follows table is there.

// A problem is built at most once per request, on the way out: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use socle_store::persons::PersonRow;
use tracing::warn;
use uuid::Uuid;

use crate::access::Access;
use crate::problem::{bad_request, Problem};
use crate::AppState;

/// The caller's scope, as SQL: `$1` organisation, `$2` territories of the grant (empty: all of
/// the organisation's caseload).
pub const SCOPE: &str = "p.registering_organisation = $1 \
     AND (cardinality($2::text[]) = 0 OR p.departement = ANY($2) OR p.commune = ANY($2))";

const COLUMNS: &str = "p.person_id, p.operator, p.registering_organisation, p.registered_on, \
     p.commune, p.departement, p.nir, p.family_name, p.given_name, p.birth_date, p.email, \
     p.phone, p.last_event_id, p.occurred_at";

/// Largest page.
pub const MAX_LIMIT: i64 = 200;

fn store_problem(e: &dyn std::fmt::Display) -> Problem {
    warn!(error = %e, "read model unavailable");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store.unavailable",
        "Read model unavailable",
        "the read model cannot be reached; retry later",
    )
}

fn territories(access: &Access) -> Vec<String> {
    access
        .grant
        .as_ref()
        .map(|g| g.territories.clone())
        .unwrap_or_default()
}

/// Query parameters common to every person endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurposeQuery {
    pub purpose: Option<String>,
}

fn check_purpose(p: Option<&str>) -> Result<(), Problem> {
    match p {
        Some(p)
            if p.is_empty()
                || p.len() > 64
                || !p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                }) =>
        {
            Err(bad_request(
                "request.invalid_purpose",
                "purpose is 1 to 64 characters: lowercase letters, digits, - and _",
            ))
        }
        _ => Ok(()),
    }
}

/// `GET /persons/{id}`.
pub async fn read(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PurposeQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let raw = path.map(|Path(p)| p).unwrap_or_default();
    let mut access = Access::new(&headers, "person.read", format!("/persons/{raw}"));
    let outcome = read_inner(&state, &headers, &raw, query, &mut access).await;
    access.finish(&state, "/persons/{id}", outcome).await
}

async fn read_inner(
    state: &AppState,
    headers: &HeaderMap,
    raw: &str,
    query: Result<Query<PurposeQuery>, QueryRejection>,
    access: &mut Access,
) -> Result<Response, Problem> {
    let identity = access.authenticate(state, headers).await?;
    let Query(q) = query.map_err(|e| bad_request("request.invalid_query", e.body_text()))?;
    check_purpose(q.purpose.as_deref())?;
    let person_id = Uuid::parse_str(raw).map_err(|_| {
        bad_request(
            "person.invalid_id",
            "a person id is a UUID, e.g. 0190f3c2-7a1e-7c4e-9a57-2b1d8c9e0f11",
        )
    })?;
    // Is the person in scope? Asked first with the grant's territories, so that "outside the
    // caseload" and "does not exist" are the same answer (no existence oracle).
    let grants = socle_policy::grants::in_force(
        &state.pool,
        &identity.subject,
        &identity.organisation,
        &identity.ecosystem,
        "person.read",
        q.purpose.as_deref(),
        chrono::Utc::now(),
    )
    .await
    .map_err(|e| store_problem(&e))?;
    let terr = grants
        .first()
        .map(|g| g.territories.clone())
        .unwrap_or_default();
    let row = sqlx::query_as::<_, PersonRow>(&format!(
        "SELECT {COLUMNS} FROM readmodel.persons p WHERE p.person_id = $3 AND {SCOPE}"
    ))
    .bind(&identity.organisation)
    .bind(&terr)
    .bind(person_id)
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| store_problem(&e))?;
    access
        .authorize(state, &identity, q.purpose.as_deref(), row.is_some())
        .await?;
    let row = row.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "person.not_found",
            "Person not found",
            "no such person",
        )
    })?;
    access.person_ids = vec![row.person_id.to_string()];
    Ok(Json(row).into_response())
}

/// `GET /persons` search parameters: at least one criterion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    pub nir: Option<String>,
    pub purpose: Option<String>,
    pub limit: Option<i64>,
}

/// A page of people.
#[derive(Debug, Serialize)]
pub struct Page {
    pub items: Vec<PersonRow>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<Uuid>,
}

fn check_name(field: &'static str, v: Option<&str>) -> Result<(), Problem> {
    if let Some(v) = v {
        let ok = !v.trim().is_empty()
            && v.chars().count() <= 100
            && v.chars()
                .all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\''));
        if !ok {
            return Err(bad_request(
                "request.invalid_name",
                format!("{field} is 1 to 100 letters, spaces, hyphens or apostrophes"),
            ));
        }
    }
    Ok(())
}

fn check_limit(limit: Option<i64>) -> Result<i64, Problem> {
    match limit {
        None => Ok(50),
        Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
        Some(_) => Err(bad_request(
            "request.invalid_limit",
            format!("limit is between 1 and {MAX_LIMIT}"),
        )),
    }
}

fn parse_nir(nir: &str) -> Result<String, Problem> {
    socle_domain::validate::Nir::parse(nir)
        .map(|n| n.as_str().to_owned())
        .map_err(|e| bad_request("person.invalid_nir", e.to_string()))
}

/// `GET /persons?family_name=&given_name=&birth_date=&nir=`: within the caller's caseload only.
pub async fn search(
    State(state): State<AppState>,
    query: Result<Query<SearchQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let mut access = Access::new(&headers, "person.search", "/persons".to_owned());
    let outcome = search_inner(&state, &headers, query, &mut access).await;
    access.finish(&state, "/persons", outcome).await
}

async fn search_inner(
    state: &AppState,
    headers: &HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
    access: &mut Access,
) -> Result<Response, Problem> {
    let identity = access.authenticate(state, headers).await?;
    let Query(q) = query.map_err(|e| bad_request("request.invalid_query", e.body_text()))?;
    check_purpose(q.purpose.as_deref())?;
    check_name("family_name", q.family_name.as_deref())?;
    check_name("given_name", q.given_name.as_deref())?;
    let birth = q
        .birth_date
        .as_deref()
        .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d"))
        .transpose()
        .map_err(|_| bad_request("person.invalid_birth_date", "birth_date is YYYY-MM-DD"))?;
    let nir = q.nir.as_deref().map(parse_nir).transpose()?;
    if q.family_name.is_none() && q.given_name.is_none() && birth.is_none() && nir.is_none() {
        return Err(bad_request(
            "search.no_criterion",
            "give at least one of family_name, given_name, birth_date, nir",
        ));
    }
    let limit = check_limit(q.limit)?;
    access
        .authorize(state, &identity, q.purpose.as_deref(), true)
        .await?;
    let rows = sqlx::query_as::<_, PersonRow>(&format!(
        "SELECT {COLUMNS} FROM readmodel.persons p WHERE {SCOPE} \
         AND ($3::text IS NULL OR lower(p.family_name) = lower($3)) \
         AND ($4::text IS NULL OR lower(p.given_name) = lower($4)) \
         AND ($5::date IS NULL OR p.birth_date = $5) \
         AND ($6::text IS NULL OR p.nir = $6) \
         ORDER BY p.person_id LIMIT $7"
    ))
    .bind(&identity.organisation)
    .bind(territories(access))
    .bind(q.family_name.as_deref().map(str::trim))
    .bind(q.given_name.as_deref().map(str::trim))
    .bind(birth)
    .bind(nir)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| store_problem(&e))?;
    Ok(page(access, rows, limit))
}

fn page(access: &mut Access, mut rows: Vec<PersonRow>, limit: i64) -> Response {
    let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit;
    if more {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
    }
    let next = if more {
        rows.last().map(|r| r.person_id)
    } else {
        None
    };
    access.person_ids = rows.iter().map(|r| r.person_id.to_string()).collect();
    Json(Page { items: rows, next }).into_response()
}

/// `GET /caseload` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseloadQuery {
    /// The `next` of the previous page.
    pub after: Option<String>,
    pub limit: Option<i64>,
    pub purpose: Option<String>,
}

/// `GET /caseload`: the people the caller's organisation follows, by person id (keyset).
pub async fn caseload(
    State(state): State<AppState>,
    query: Result<Query<CaseloadQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let mut access = Access::new(&headers, "caseload.list", "/caseload".to_owned());
    let outcome = caseload_inner(&state, &headers, query, &mut access).await;
    access.finish(&state, "/caseload", outcome).await
}

async fn caseload_inner(
    state: &AppState,
    headers: &HeaderMap,
    query: Result<Query<CaseloadQuery>, QueryRejection>,
    access: &mut Access,
) -> Result<Response, Problem> {
    let identity = access.authenticate(state, headers).await?;
    let Query(q) = query.map_err(|e| bad_request("request.invalid_query", e.body_text()))?;
    check_purpose(q.purpose.as_deref())?;
    let after = q
        .after
        .as_deref()
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| {
            bad_request(
                "request.invalid_cursor",
                "after is the `next` of the previous page (a UUID)",
            )
        })?;
    let limit = check_limit(q.limit)?;
    access
        .authorize(state, &identity, q.purpose.as_deref(), true)
        .await?;
    let rows = sqlx::query_as::<_, PersonRow>(&format!(
        "SELECT {COLUMNS} FROM readmodel.persons p WHERE {SCOPE} \
         AND ($3::uuid IS NULL OR p.person_id > $3) ORDER BY p.person_id LIMIT $4"
    ))
    .bind(&identity.organisation)
    .bind(territories(access))
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| store_problem(&e))?;
    Ok(page(access, rows, limit))
}

/// Per-user sliding-window limit on NIR lookups outside the caseload.
#[derive(Debug, Default)]
pub struct NirLimiter {
    seen: Mutex<HashMap<String, Vec<Instant>>>,
}

impl NirLimiter {
    /// Whether `user` may do one more lookup (and counts it if so).
    pub fn allow(&self, user: &str, per_hour: u32) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        let window = Duration::from_secs(3600);
        let times = seen.entry(user.to_owned()).or_default();
        times.retain(|t| t.elapsed() < window);
        if times.len() >= per_hour as usize {
            return false;
        }
        times.push(Instant::now());
        true
    }
}

/// `GET /persons/by-nir/{nir}?purpose=orientation`: one exact NIR, outside the caseload,
/// only for a purpose that requires it; recorded and rate-limited.
pub async fn lookup_nir(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PurposeQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let raw = path.map(|Path(p)| p).unwrap_or_default();
    // The NIR itself never goes into the trail's resource (it is personal data).
    let mut access = Access::new(
        &headers,
        "person.lookup_nir",
        "/persons/by-nir/{nir}".to_owned(),
    );
    let outcome = lookup_inner(&state, &headers, &raw, query, &mut access).await;
    access
        .finish(&state, "/persons/by-nir/{nir}", outcome)
        .await
}

async fn lookup_inner(
    state: &AppState,
    headers: &HeaderMap,
    raw: &str,
    query: Result<Query<PurposeQuery>, QueryRejection>,
    access: &mut Access,
) -> Result<Response, Problem> {
    let identity = access.authenticate(state, headers).await?;
    let Query(q) = query.map_err(|e| bad_request("request.invalid_query", e.body_text()))?;
    check_purpose(q.purpose.as_deref())?;
    let nir = parse_nir(raw)?;
    let purpose = q.purpose.as_deref().unwrap_or("");
    access
        .authorize(state, &identity, Some(purpose), false)
        .await?;
    if !state
        .nir_limiter
        .allow(&identity.subject, state.access.nir_lookups_per_hour)
    {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate.nir_lookups",
            "Too many NIR lookups",
            format!(
                "at most {} NIR lookups outside the caseload per hour",
                state.access.nir_lookups_per_hour
            ),
        ));
    }
    let row = sqlx::query_as::<_, PersonRow>(&format!(
        "SELECT {COLUMNS} FROM readmodel.persons p WHERE p.nir = $1"
    ))
    .bind(&nir)
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| store_problem(&e))?
    .ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "person.not_found",
            "Person not found",
            "no person with this NIR",
        )
    })?;
    access.person_ids = vec![row.person_id.to_string()];
    Ok(Json(row).into_response())
}
