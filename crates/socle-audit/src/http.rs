//! The auditors' HTTP routes, for the API to mount: `socle_audit::http::router(state)`.
//!
//! Authentication is the API's: its auth layer inserts an [`Auditor`] request extension (who is
//! calling, and whether their habilitation grants the auditor role). Without it the routes answer
//! 401; without the role, 403, and the refusal is itself an access event. Every query is appended
//! to the access trail (acks=all) before the answer leaves; if the trail cannot be written the
//! answer is 503 and nothing is disclosed (fail closed).
//!
//! | route | question |
//! |---|---|
//! | `GET /audit/persons/{person_id}/accesses?from=&to=&limit=` | who accessed the person |
//! | `GET /audit/persons/{person_id}/journal?from=&to=&limit=` | the person's own journal |
//! | `GET /audit/persons/{person_id}/timeline?from=&to=&limit=&format=json\|csv` | events and accesses merged |
//! | `GET /audit/actors/{user}?from=&to=&limit=` | what a user read or changed |
//! | `GET /audit/organisations/{siret}?from=&to=&limit=` | what an organisation read or changed |
//!
//! `from` and `to` are RFC 3339 instants; errors are `application/problem+json` with a stable `code`.
//!
//! Every answer says how fresh it is (`"freshness": {positions, lag_entries, as_of, lag_ms}`,
//! see [`crate::freshness`]; for CSV, `x-socle-lag-entries`, `x-socle-lag-ms`, `x-socle-as-of`
//! headers). Past the bounds, or when the store has never projected the trail, the answer is
//! 503 `audit.store_behind`; when the lag cannot be measured, 503 `audit.freshness_unknown`:
//! never an empty success from a store that is not kept up.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use socle_domain::{AccessEvent, Decision, Envelope};
use socle_kafka::AccessTrail;
use sqlx::PgPool;
use tracing::warn;

use crate::freshness::{Answer, Freshness, FreshnessCheck, Stale};
use crate::queries::{self, Actor, Period};
use crate::Error;

/// What the routes need.
#[derive(Debug, Clone)]
pub struct AuditState {
    pub pool: PgPool,
    pub trail: AccessTrail,
    /// Measures the store against the trail before each answer.
    pub freshness: FreshnessCheck,
}

impl AuditState {
    /// The routes' state, measuring freshness against the trail's topic on `brokers` with the
    /// default bounds ([`crate::freshness::Bounds::default`]).
    pub fn new(pool: PgPool, trail: AccessTrail, brokers: &str) -> Self {
        let freshness = FreshnessCheck::new(brokers, trail.topic());
        AuditState {
            pool,
            trail,
            freshness,
        }
    }
}

/// The caller, as established by the API's authentication (a request extension).
#[derive(Debug, Clone)]
pub struct Auditor {
    pub user: String,
    /// SIRET of the caller's organisation.
    pub organisation: String,
    /// `mfa`, `password`, ... as in access events.
    pub auth_strength: String,
    /// Whether the caller's habilitation grants the auditor role.
    pub is_auditor: bool,
}

/// Query parameters shared by the routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
    format: Option<String>,
}

/// The auditor routes, to be merged into the API's router behind its authentication layer.
pub fn router(state: AuditState) -> Router {
    Router::new()
        .route("/audit/persons/{person_id}/accesses", get(accesses))
        .route("/audit/persons/{person_id}/journal", get(journal))
        .route("/audit/persons/{person_id}/timeline", get(timeline))
        .route("/audit/actors/{user}", get(actor))
        .route("/audit/organisations/{siret}", get(organisation))
        .with_state(state)
}

fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:socle:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The problem for an answer refused because the store is behind, or its lag is unknown.
fn stale(e: Stale) -> Response {
    let (code, title, detail) = (e.code(), e.title(), e.to_string());
    let freshness = match e {
        Stale::Store(e) => return failed(e),
        Stale::Behind { freshness, .. } => Some(freshness),
        Stale::Unknown { .. } => None,
    };
    warn!(code, detail = %detail, "audit query refused: the store's freshness");
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let mut body = serde_json::json!({
        "type": format!("urn:socle:problem:{code}"),
        "title": title,
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    if let Some(f) = freshness {
        body["freshness"] = serde_json::to_value(&*f).unwrap_or_default();
    }
    (
        status,
        [
            (header::CONTENT_TYPE, "application/problem+json"),
            (header::RETRY_AFTER, "5"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The store's freshness, within the bounds, or the refusal to answer.
async fn fresh(state: &AuditState) -> Result<Freshness, Box<Response>> {
    state
        .freshness
        .check(&state.pool)
        .await
        .map_err(|e| Box::new(stale(e)))
}

fn answer<T: serde::Serialize>(page: T, freshness: Freshness) -> Response {
    Json(Answer { page, freshness }).into_response()
}

fn instant(name: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, Box<Response>> {
    v.as_deref()
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| {
                    Box::new(problem(
                        StatusCode::BAD_REQUEST,
                        "audit.bad_instant",
                        &format!("{name} must be an RFC 3339 instant, e.g. 2026-03-02T00:00:00Z"),
                    ))
                })
        })
        .transpose()
}

/// Checks the caller, records the query on the trail, and returns the period and limit.
async fn admit(
    state: &AuditState,
    auditor: Option<Auditor>,
    action: &str,
    resource: String,
    person_ids: Vec<String>,
    params: &Params,
) -> Result<(Period, i64), Box<Response>> {
    let Some(a) = auditor else {
        return Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "auth.required",
            "authentication required",
        )));
    };
    let decision = if a.is_auditor {
        Decision::Allow
    } else {
        Decision::Deny
    };
    let event = AccessEvent {
        envelope: Envelope::new(a.organisation.clone(), Utc::now()).with_actor(a.user.clone()),
        request_id: uuid::Uuid::now_v7().to_string(),
        user: a.user.clone(),
        organisation: a.organisation.clone(),
        ecosystem: None,
        purpose: Some("audit".into()),
        auth_strength: a.auth_strength.clone(),
        action: action.to_owned(),
        resource,
        person_ids,
        decision,
        reason: (!a.is_auditor).then(|| "role.not_auditor".to_owned()),
        policy_version: None,
        agreement_version: None,
    };
    if let Err(e) = state.trail.record(&event).await {
        warn!(error = %e, "access trail unavailable; audit query refused");
        return Err(Box::new(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "trail.unavailable",
            "the access trail cannot be written; retry later",
        )));
    }
    if !a.is_auditor {
        return Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            "role.not_auditor",
            "the auditor role is required",
        )));
    }
    let period =
        Period::new(instant("from", &params.from)?, instant("to", &params.to)?).map_err(|e| {
            Box::new(problem(
                StatusCode::BAD_REQUEST,
                "audit.bad_period",
                &e.to_string(),
            ))
        })?;
    Ok((period, params.limit.unwrap_or(1000)))
}

fn failed(e: Error) -> Response {
    match e {
        Error::BadRequest(m) => problem(StatusCode::BAD_REQUEST, "audit.bad_request", &m),
        other => {
            warn!(error = %other, "audit store unavailable");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "store.unavailable",
                "the audit store cannot be reached; retry later",
            )
        }
    }
}

async fn accesses(
    State(s): State<AuditState>,
    auditor: Option<Extension<Auditor>>,
    Path(person): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    let (period, limit) = match admit(
        &s,
        auditor.map(|e| e.0),
        "audit.who_accessed",
        format!("/audit/persons/{person}/accesses"),
        vec![person.clone()],
        &p,
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let freshness = match fresh(&s).await {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match queries::who_accessed(&s.pool, &person, period, limit).await {
        Ok(page) => answer(page, freshness),
        Err(e) => failed(e),
    }
}

async fn journal(
    State(s): State<AuditState>,
    auditor: Option<Extension<Auditor>>,
    Path(person): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    let (period, limit) = match admit(
        &s,
        auditor.map(|e| e.0),
        "audit.journal",
        format!("/audit/persons/{person}/journal"),
        vec![person.clone()],
        &p,
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let freshness = match fresh(&s).await {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match queries::journal(&s.pool, &person, period, limit).await {
        Ok(page) => answer(page, freshness),
        Err(e) => failed(e),
    }
}

async fn timeline(
    State(s): State<AuditState>,
    auditor: Option<Extension<Auditor>>,
    Path(person): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    let csv = match p.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "audit.bad_format",
                "format must be json or csv",
            )
        }
    };
    let (period, limit) = match admit(
        &s,
        auditor.map(|e| e.0),
        "audit.timeline",
        format!("/audit/persons/{person}/timeline"),
        vec![person.clone()],
        &p,
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let freshness = match fresh(&s).await {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match queries::timeline(&s.pool, &person, period, limit).await {
        Ok(page) if csv => match queries::timeline_csv(&page.rows) {
            Ok(text) => (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::HeaderName::from_static("x-socle-truncated"),
                        page.truncated.to_string(),
                    ),
                    (
                        header::HeaderName::from_static("x-socle-lag-entries"),
                        freshness.lag_entries.to_string(),
                    ),
                    (
                        header::HeaderName::from_static("x-socle-lag-ms"),
                        freshness.lag_ms.to_string(),
                    ),
                    (
                        header::HeaderName::from_static("x-socle-as-of"),
                        freshness.as_of.map_or_else(String::new, |t| t.to_rfc3339()),
                    ),
                ],
                text,
            )
                .into_response(),
            Err(e) => failed(e),
        },
        Ok(page) => answer(page, freshness),
        Err(e) => failed(e),
    }
}

async fn actor(
    State(s): State<AuditState>,
    auditor: Option<Extension<Auditor>>,
    Path(user): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    let (period, limit) = match admit(
        &s,
        auditor.map(|e| e.0),
        "audit.actor",
        format!("/audit/actors/{user}"),
        vec![],
        &p,
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let freshness = match fresh(&s).await {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match queries::actor(&s.pool, &Actor::User(user), period, limit).await {
        Ok(page) => answer(page, freshness),
        Err(e) => failed(e),
    }
}

async fn organisation(
    State(s): State<AuditState>,
    auditor: Option<Extension<Auditor>>,
    Path(siret): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    let (period, limit) = match admit(
        &s,
        auditor.map(|e| e.0),
        "audit.organisation",
        format!("/audit/organisations/{siret}"),
        vec![],
        &p,
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let freshness = match fresh(&s).await {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match queries::actor(&s.pool, &Actor::Organisation(siret), period, limit).await {
        Ok(page) => answer(page, freshness),
        Err(e) => failed(e),
    }
}
