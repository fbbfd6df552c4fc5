//! People: read one, search within the caseload, list the caseload, look up a NIR.
//!
//! Scope is a SQL condition, never a filter applied afterwards: each query joins the caller's
//! caseload (and the territories of their grant), so what comes back is complete and can never
//! reach outside it.
//!
//! People are read from the caller's ecosystem model (`crate::models`): only people the
//! ecosystem's agreement puts in scope, only the fields the purpose grants, and, through
//! PostgreSQL row-level security under the ecosystem's role, only the caller's organisation's
//! caseload (its links: registrations, follows, prescriptions).

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
use serde_json::{Map, Value};
use socle_store::ecosystem::Viewer;
use tracing::warn;
use uuid::Uuid;

use crate::access::Access;
use crate::models::EcoModel;
use crate::problem::{bad_request, Problem};
use crate::AppState;

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

/// The caller's ecosystem model; its agreement version goes into the access event.
fn model<'a>(
    state: &'a AppState,
    ecosystem: &str,
    access: &mut Access,
) -> Result<&'a EcoModel, Problem> {
    let eco = state.ecosystems.get(ecosystem).ok_or_else(|| {
        Problem::new(
            StatusCode::FORBIDDEN,
            "agreement.none",
            "No agreement",
            "your ecosystem has no data-sharing agreement: no personal data can be shared with it",
        )
    })?;
    access.agreement_version = Some(eco.agreement_version().to_owned());
    Ok(eco)
}

fn viewer(organisation: &str, territories: Vec<String>) -> Viewer {
    Viewer {
        organisation: organisation.to_owned(),
        territories,
    }
}

fn object(v: Value) -> Option<Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Runs `sql` (one jsonb row per person; text parameters, then a date, then the limit) under
/// the ecosystem's role with the viewer's organisation and territories set, so that row-level
/// security applies on top of the query's own caseload condition.
async fn as_ecosystem(
    state: &AppState,
    eco: &EcoModel,
    viewer: &Viewer,
    sql: &str,
    texts: Vec<Option<String>>,
    date: Option<NaiveDate>,
    limit: i64,
) -> Result<Vec<Map<String, Value>>, Problem> {
    let mut tx = state.pool.begin().await.map_err(|e| store_problem(&e))?;
    socle_store::ecosystem::assume(&mut tx, &eco.model, viewer)
        .await
        .map_err(|e| store_problem(&e))?;
    let mut query = sqlx::query_scalar::<_, Value>(sql);
    for t in texts {
        query = query.bind(t);
    }
    let rows = query
        .bind(date)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| store_problem(&e))?;
    tx.commit().await.map_err(|e| store_problem(&e))?;
    Ok(rows.into_iter().filter_map(object).collect())
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
#[utoipa::path(get, path = "/persons/{id}", tag = "persons",
    params(("id" = String, Path, description = "Person id (UUID)"),
           ("purpose" = Option<String>, Query, description = "Purpose invoked (default: the grant's)")),
    responses(
        (status = 200, description = "The person", body = crate::openapi::PersonDoc),
        (status = 400, description = "Invalid input", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token, or a multi-factor session is required", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "No habilitation, outside the caseload, purpose or field not allowed", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Access trail, store or identity provider unavailable: nothing disclosed", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn read(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PurposeQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let raw = path.map(|Path(p)| p).unwrap_or_default();
    // Only a well-formed id goes into the trail: whatever else was typed in the path (a name, a
    // NIR) could be personal data.
    let resource = match Uuid::parse_str(&raw) {
        Ok(id) => format!("/persons/{id}"),
        Err(_) => "/persons/{invalid}".to_owned(),
    };
    let mut access = Access::new(&headers, "person.read", resource);
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
    // The path's id first: 400 before anything else (authentication included).
    let person_id = Uuid::parse_str(raw).map_err(|_| {
        bad_request(
            "person.invalid_id",
            "a person id is a UUID, e.g. 0190f3c2-7a1e-7c4e-9a57-2b1d8c9e0f11",
        )
    })?;
    let identity = access.authenticate(state, headers).await?;
    let Query(q) = query.map_err(|e| bad_request("request.invalid_query", e.body_text()))?;
    check_purpose(q.purpose.as_deref())?;
    let eco = model(state, &identity.ecosystem, access)?;
    let grants =
        crate::access::in_force(state, &identity, "person.read", q.purpose.as_deref()).await?;
    if grants.is_empty() {
        // No grant: refused before the person is looked up, so that the answer cannot tell
        // whether the person exists (no oracle). The caseload is not asked (`true`: the policy
        // then names what is missing, the habilitation).
        access
            .authorize_with(state, &identity, q.purpose.as_deref(), true, grants)
            .await?;
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "habilitation.none",
            "No habilitation",
            "no habilitation in force grants you this action in your ecosystem for this purpose",
        ));
    }
    // Is the person in the caller's scope? Asked before the decision (under the ecosystem's role
    // and row-level security), so that "outside the caseload" and "does not exist" are the same
    // answer.
    let terr = grants
        .first()
        .map(|g| g.territories.clone())
        .unwrap_or_default();
    let row = socle_store::ecosystem::read_person(
        &state.pool,
        &eco.model,
        &viewer(&identity.organisation, terr),
        person_id,
    )
    .await
    .map_err(|e| store_problem(&e))?;
    access
        .authorize_with(
            state,
            &identity,
            q.purpose.as_deref(),
            row.is_some(),
            grants,
        )
        .await?;
    let row = row.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "person.not_found",
            "Person not found",
            "no such person",
        )
    })?;
    let purpose = access.purpose.clone().unwrap_or_default();
    identifying(eco, &purpose)?;
    access.person_ids = vec![person_id.to_string()];
    Ok(Json(eco.for_purpose(&purpose, row)).into_response())
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
    /// The `next` of the previous page.
    pub after: Option<String>,
}

/// A page of people.
#[derive(Debug, Serialize)]
pub struct Page {
    /// Each person with the fields the purpose grants (`person_id` always).
    pub items: Vec<Map<String, Value>>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
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
#[utoipa::path(get, path = "/persons", tag = "persons",
    params(("family_name" = Option<String>, Query, description = "Exact, case-insensitive"),
           ("given_name" = Option<String>, Query, description = "Exact, case-insensitive"),
           ("birth_date" = Option<String>, Query, description = "YYYY-MM-DD"),
           ("nir" = Option<String>, Query, description = "15 characters with key"),
           ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
           ("after" = Option<String>, Query, description = "The `next` of the previous page"),
           ("purpose" = Option<String>, Query, description = "Purpose invoked")),
    responses(
        (status = 200, description = "People of the caller's caseload that match", body = crate::openapi::PageDoc),
        (status = 400, description = "Invalid input", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token, or a multi-factor session is required", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "No habilitation, outside the caseload, purpose or field not allowed", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Access trail, store or identity provider unavailable: nothing disclosed", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    ))]
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
    let after = parse_cursor(q.after.as_deref())?;
    let limit = check_limit(q.limit)?;
    let eco = model(state, &identity.ecosystem, access)?;
    access
        .authorize(state, &identity, q.purpose.as_deref(), true)
        .await?;
    let purpose = access.purpose.clone().unwrap_or_default();
    identifying(eco, &purpose)?;
    // Only criteria on granted fields: a criterion on a field the agreement does not grant
    // would let a caller probe it; one the agreement grants for another purpose only is not
    // allowed for this one either.
    let mut conds = Vec::new();
    let mut texts = Vec::new();
    for (column, value) in [
        (
            "identity_family_name",
            q.family_name.as_deref().map(|v| v.trim().to_owned()),
        ),
        (
            "identity_given_name",
            q.given_name.as_deref().map(|v| v.trim().to_owned()),
        ),
        ("identity_nir", nir),
    ] {
        if let Some(v) = value {
            if !eco.has(column) {
                return Err(not_granted(column));
            }
            if !eco.purpose_has(&purpose, column) {
                return Err(criterion_not_allowed(column, &purpose));
            }
            texts.push(Some(v));
            conds.push(format!("lower(p.{column}) = lower(${})", texts.len()));
        }
    }
    // Keyset paging: the page after the previous page's last person id.
    if let Some(after) = after {
        texts.push(Some(after.to_string()));
        conds.push(format!("p.person_id > ${}::uuid", texts.len()));
    }
    let n = texts.len();
    if birth.is_some() {
        if !eco.has("identity_birth_date") {
            return Err(not_granted("identity_birth_date"));
        }
        if !eco.purpose_has(&purpose, "identity_birth_date") {
            return Err(criterion_not_allowed("identity_birth_date", &purpose));
        }
        conds.push(format!("p.identity_birth_date = ${}", n + 1));
    } else {
        conds.push(format!("${}::date IS NULL", n + 1));
    }
    let schema = socle_store::ident(&eco.model.schema).map_err(|e| store_problem(&e))?;
    let sql = format!(
        "SELECT to_jsonb(p) - 'in_scope_since' - 'updated_at' FROM {schema}.persons p \
         WHERE EXISTS (SELECT 1 FROM {schema}.links l WHERE l.person_id = p.person_id \
         AND l.organisation = current_setting('socle.organisation', true)) AND {} \
         ORDER BY p.person_id LIMIT ${}",
        conds.join(" AND "),
        n + 2
    );
    let viewer = viewer(&identity.organisation, territories(access));
    let rows = as_ecosystem(state, eco, &viewer, &sql, texts, birth, limit + 1).await?;
    Ok(page(access, eco, rows, limit))
}

/// The `after` of a page request: the `next` of the previous page, a person id.
fn parse_cursor(after: Option<&str>) -> Result<Option<Uuid>, Problem> {
    after.map(Uuid::parse_str).transpose().map_err(|_| {
        bad_request(
            "request.invalid_cursor",
            "after is the `next` of the previous page (a UUID)",
        )
    })
}

/// Refuses a purpose that may not identify people (it grants no identity field): it reads
/// aggregates (the indicators), never person ids.
fn identifying(eco: &EcoModel, purpose: &str) -> Result<(), Problem> {
    if eco.identifying(purpose) {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "purpose.not_identifying",
        "Purpose does not identify people",
        format!(
            "the purpose {purpose:?} grants no identifying field: it reads aggregates only, never person ids"
        ),
    ))
}

fn criterion_not_allowed(column: &str, purpose: &str) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "purpose.criterion_not_allowed",
        "Criterion not allowed for this purpose",
        format!("the purpose {purpose:?} does not grant {column}: it cannot be searched for it"),
    )
}

fn not_granted(column: &str) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "agreement.field_not_granted",
        "Field not granted",
        format!("your ecosystem's agreement does not grant {column}: it cannot be searched"),
    )
}

fn page(
    access: &mut Access,
    eco: &EcoModel,
    mut rows: Vec<Map<String, Value>>,
    limit: i64,
) -> Response {
    let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit;
    if more {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
    }
    let id = |r: &Map<String, Value>| {
        r.get("person_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let next = if more { rows.last().and_then(id) } else { None };
    access.person_ids = rows.iter().filter_map(id).collect();
    let purpose = access.purpose.clone().unwrap_or_default();
    let items = rows
        .into_iter()
        .map(|r| eco.for_purpose(&purpose, r))
        .collect();
    Json(Page { items, next }).into_response()
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
#[utoipa::path(get, path = "/caseload", tag = "persons",
    params(("after" = Option<String>, Query, description = "The `next` of the previous page"),
           ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
           ("purpose" = Option<String>, Query, description = "Purpose invoked")),
    responses(
        (status = 200, description = "The caller's caseload, by person id", body = crate::openapi::PageDoc),
        (status = 400, description = "Invalid input", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token, or a multi-factor session is required", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "No habilitation, outside the caseload, purpose or field not allowed", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Access trail, store or identity provider unavailable: nothing disclosed", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    ))]
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
    let after = parse_cursor(q.after.as_deref())?;
    let limit = check_limit(q.limit)?;
    let eco = model(state, &identity.ecosystem, access)?;
    access
        .authorize(state, &identity, q.purpose.as_deref(), true)
        .await?;
    identifying(eco, access.purpose.as_deref().unwrap_or_default())?;
    let rows = socle_store::ecosystem::caseload(
        &state.pool,
        &eco.model,
        &viewer(&identity.organisation, territories(access)),
        after,
        limit + 1,
    )
    .await
    .map_err(|e| store_problem(&e))?;
    Ok(page(access, eco, rows, limit))
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
#[utoipa::path(get, path = "/persons/by-nir/{nir}", tag = "persons",
    params(("nir" = String, Path, description = "NIR, 15 characters with key"),
           ("purpose" = Option<String>, Query, description = "Must be orientation")),
    responses(
        (status = 200, description = "The person with this NIR", body = crate::openapi::PersonDoc),
        (status = 404, description = "No person with this NIR in the ecosystem", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "Too many lookups this hour", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 400, description = "Invalid input", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token, or a multi-factor session is required", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "No habilitation, outside the caseload, purpose or field not allowed", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Access trail, store or identity provider unavailable: nothing disclosed", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    ))]
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
    // The path's NIR first: 400 before anything else.
    let nir = parse_nir(raw)?;
    let identity = access.authenticate(state, headers).await?;
    let Query(q) = query.map_err(|e| bad_request("request.invalid_query", e.body_text()))?;
    check_purpose(q.purpose.as_deref())?;
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
    let eco = model(state, &identity.ecosystem, access)?;
    if !eco.has("identity_nir") {
        return Err(not_granted("identity_nir"));
    }
    // Outside the caseload but inside the ecosystem's agreement scope: read as the model's
    // owner, not under the caseload's row-level security.
    let schema = socle_store::ident(&eco.model.schema).map_err(|e| store_problem(&e))?;
    let row: Value = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(p) - 'in_scope_since' - 'updated_at' FROM {schema}.persons p \
         WHERE p.identity_nir = $1 LIMIT 1"
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
    let row = object(row).unwrap_or_default();
    if let Some(id) = row.get("person_id").and_then(Value::as_str) {
        access.person_ids = vec![id.to_owned()];
    }
    Ok(Json(eco.for_purpose(purpose, row)).into_response())
}
