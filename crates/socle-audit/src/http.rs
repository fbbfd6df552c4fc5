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
//! Path ids are validated before anything else (400 `person.invalid_id`, `audit.invalid_actor`,
//! `audit.invalid_siret`): the trail's resource is the route template with validated ids
//! ([`route_resource`]), never free text from the URL (a NIR or a name typed as a person id).
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

/// A path id of an audit route that is not one: answered 400 before anything else, and never
/// written in the trail (the resource carries `{invalid}` in its place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPath {
    /// `person.invalid_id`, `audit.invalid_actor` or `audit.invalid_siret`.
    pub code: &'static str,
    pub detail: &'static str,
    /// The route template with `{invalid}` for the refused id.
    pub resource: String,
}

const PERSON_ID_DETAIL: &str = "a person id is a UUID, e.g. 0190f3c2-7a1e-7c4e-9a57-2b1d8c9e0f11";
const ACTOR_DETAIL: &str =
    "a user id is 1 to 128 printable ASCII characters (as in the tokens' sub)";
const SIRET_DETAIL: &str = "a SIRET is 14 digits";

/// A person id: a UUID, in its canonical form.
pub fn person_id(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw).ok().map(|u| u.to_string())
}

/// A user id as the tokens' `sub` carries it (1 to 128 printable ASCII characters), and not
/// something personal typed in its place (anything shaped like a NIR, valid key or not).
pub fn actor_id(raw: &str) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw.bytes().all(|b| b.is_ascii_graphic())
        && !nir_shaped(raw);
    ok.then(|| raw.to_owned())
}

/// 13 or 15 characters of digits (and the `2A`/`2B` of Corsica): a NIR, with or without key.
fn nir_shaped(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    (s.len() == 13 || s.len() == 15)
        && digits + 1 >= s.len()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'A' | b'B' | b'a' | b'b'))
}

/// A SIRET: 14 digits.
pub fn siret(raw: &str) -> Option<String> {
    (raw.len() == 14 && raw.bytes().all(|b| b.is_ascii_digit())).then(|| raw.to_owned())
}

fn percent_decoded(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The trail's resource for a request path under `/audit`: the route template with the path's
/// ids, each validated (a person id is a UUID, a user id a token `sub`, a SIRET 14 digits).
/// Nothing else from the URL is ever returned: a path of no audit route is `/audit/{unknown}`.
///
/// # Errors
/// [`InvalidPath`] when an id is not one (400 before anything else).
pub fn route_resource(path: &str) -> Result<String, InvalidPath> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        ["", "audit", "persons", id, kind @ ("accesses" | "journal" | "timeline")] => {
            match percent_decoded(id).as_deref().and_then(person_id) {
                Some(id) => Ok(format!("/audit/persons/{id}/{kind}")),
                None => Err(InvalidPath {
                    code: "person.invalid_id",
                    detail: PERSON_ID_DETAIL,
                    resource: format!("/audit/persons/{{invalid}}/{kind}"),
                }),
            }
        }
        ["", "audit", "actors", user] => {
            match percent_decoded(user).as_deref().and_then(actor_id) {
                Some(user) => Ok(format!("/audit/actors/{user}")),
                None => Err(InvalidPath {
                    code: "audit.invalid_actor",
                    detail: ACTOR_DETAIL,
                    resource: "/audit/actors/{invalid}".to_owned(),
                }),
            }
        }
        ["", "audit", "organisations", s] => match percent_decoded(s).as_deref().and_then(siret) {
            Some(s) => Ok(format!("/audit/organisations/{s}")),
            None => Err(InvalidPath {
                code: "audit.invalid_siret",
                detail: SIRET_DETAIL,
                resource: "/audit/organisations/{invalid}".to_owned(),
            }),
        },
        _ => Ok("/audit/{unknown}".to_owned()),
    }
}

fn invalid(code: &str, detail: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, code, detail)
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
    Path(raw): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    // The path's id first: 400 before anything else, and only a valid id goes into the trail.
    let Some(person) = person_id(&raw) else {
        return invalid("person.invalid_id", PERSON_ID_DETAIL);
    };
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
    Path(raw): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    // The path's id first: 400 before anything else, and only a valid id goes into the trail.
    let Some(person) = person_id(&raw) else {
        return invalid("person.invalid_id", PERSON_ID_DETAIL);
    };
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
    Path(raw): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    // The path's id first: 400 before anything else, and only a valid id goes into the trail.
    let Some(person) = person_id(&raw) else {
        return invalid("person.invalid_id", PERSON_ID_DETAIL);
    };
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
    Path(raw): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    let Some(user) = actor_id(&raw) else {
        return invalid("audit.invalid_actor", ACTOR_DETAIL);
    };
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
    Path(raw): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    let Some(siret) = siret(&raw) else {
        return invalid("audit.invalid_siret", SIRET_DETAIL);
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_validated_ids_reach_the_resource() {
        let id = "01936b2a-5c00-7000-8000-000000000001";
        assert_eq!(
            route_resource(&format!("/audit/persons/{id}/accesses")).unwrap(),
            format!("/audit/persons/{id}/accesses")
        );
        // A NIR and a name typed as a person id: refused, and neither in the resource.
        let bad = route_resource("/audit/persons/180017512345678%20Jean%20Dupont/accesses");
        let bad = bad.unwrap_err();
        assert_eq!(bad.code, "person.invalid_id");
        assert_eq!(bad.resource, "/audit/persons/{invalid}/accesses");
        assert_eq!(
            route_resource("/audit/actors/conseillere.demo").unwrap(),
            "/audit/actors/conseillere.demo"
        );
        for actor in ["Jean%20Dupont", "180017512345678", "2A0017512345678"] {
            let e = route_resource(&format!("/audit/actors/{actor}")).unwrap_err();
            assert_eq!(e.resource, "/audit/actors/{invalid}");
        }
        assert!(route_resource("/audit/organisations/90000100900019").is_ok());
        assert_eq!(
            route_resource("/audit/organisations/Dupont")
                .unwrap_err()
                .code,
            "audit.invalid_siret"
        );
        assert_eq!(
            route_resource("/audit/persons/Jean Dupont/other").unwrap(),
            "/audit/{unknown}"
        );
    }
}
