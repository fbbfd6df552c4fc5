//! Reading a person.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use socle_domain::{AccessEvent, AuthStrength, Decision, Envelope};
use tracing::{error, warn};
use uuid::Uuid;

use crate::caller::{self, Caller};
use crate::metrics;
use crate::problem::Problem;
use crate::AppState;

/// `GET /persons/{id}`.
pub async fn read(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let request_id = caller::request_id(&headers);
    let raw = path.map(|Path(p)| p).unwrap_or_default();
    let resource = format!("/persons/{}", truncate(&raw, 64));
    let outcome = decide(&state, &headers, &raw).await;

    let event = access_event(&outcome, &request_id, resource);
    let started = std::time::Instant::now();
    let recorded = state.trail.record(&event).await;
    metrics::TRAIL_SECONDS.observe(started.elapsed().as_secs_f64());
    let mut response = match recorded {
        Ok(_) => {
            metrics::ACCESS_EVENTS
                .with_label_values(&[event.decision.as_str()])
                .inc();
            outcome.response
        }
        Err(e) => {
            metrics::TRAIL_FAILURES.inc();
            error!(request_id = %request_id, error = %e, "access trail unavailable; answer withheld");
            Problem::trail_unavailable().into_response()
        }
    };
    if let Some(problem) = response.extensions().get::<Problem>().cloned() {
        response = problem.with_request_id(&request_id).into_response();
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(caller::REQUEST_ID_HEADER, v);
    }
    metrics::REQUESTS
        .with_label_values(&["/persons/{id}", response.status().as_str()])
        .inc();
    response
}

/// What was decided, and the answer to give once the trail has it.
struct Outcome {
    caller: Option<Caller>,
    person_ids: Vec<String>,
    decision: Decision,
    reason: Option<String>,
    response: Response,
}

async fn decide(state: &AppState, headers: &HeaderMap, raw: &str) -> Outcome {
    let refuse = |caller, decision, reason: &str, problem: Problem| Outcome {
        caller,
        person_ids: Vec::new(),
        decision,
        reason: Some(reason.to_owned()),
        response: with_problem(problem),
    };
    let caller = match caller::identify(headers) {
        Ok(c) => c,
        Err(e) => {
            return refuse(
                None,
                Decision::Deny,
                "auth.missing_identity",
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "auth.missing_identity",
                    "Unauthenticated",
                    e.to_string(),
                ),
            )
        }
    };
    let Ok(person_id) = Uuid::parse_str(raw) else {
        return refuse(
            Some(caller),
            Decision::Deny,
            "person.invalid_id",
            Problem::new(
                StatusCode::BAD_REQUEST,
                "person.invalid_id",
                "Invalid person id",
                "a person id is a UUID, e.g. 0190f3c2-7a1e-7c4e-9a57-2b1d8c9e0f11",
            ),
        );
    };
    match socle_store::persons::get(&state.pool, person_id).await {
        Ok(Some(person)) => Outcome {
            caller: Some(caller),
            person_ids: vec![person_id.to_string()],
            decision: Decision::Allow,
            reason: None,
            response: Json(person).into_response(),
        },
        Ok(None) => Outcome {
            caller: Some(caller),
            person_ids: Vec::new(),
            decision: Decision::Allow,
            reason: Some("person.not_found".into()),
            response: with_problem(Problem::new(
                StatusCode::NOT_FOUND,
                "person.not_found",
                "Person not found",
                "no person with this id in the read model",
            )),
        },
        Err(e) => {
            warn!(error = %e, "read model unavailable");
            Outcome {
                caller: Some(caller),
                person_ids: Vec::new(),
                decision: Decision::Error,
                reason: Some("store.unavailable".into()),
                response: with_problem(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store.unavailable",
                    "Read model unavailable",
                    "the read model cannot be reached; retry later",
                )),
            }
        }
    }
}

/// A problem response that still carries its document, so the request id can be added last.
fn with_problem(problem: Problem) -> Response {
    let mut response = problem.clone().into_response();
    response.extensions_mut().insert(problem);
    response
}

fn access_event(outcome: &Outcome, request_id: &str, resource: String) -> AccessEvent {
    let (user, organisation) = match &outcome.caller {
        Some(c) => (c.user.clone(), c.organisation.clone()),
        None => ("anonymous".to_owned(), "unknown".to_owned()),
    };
    let envelope = Envelope::new(organisation.clone(), Utc::now()).with_actor(user.clone());
    AccessEvent {
        envelope,
        request_id: request_id.to_owned(),
        user,
        organisation,
        ecosystem: None,
        purpose: None,
        auth_strength: if outcome.caller.is_some() {
            AuthStrength::Password
        } else {
            AuthStrength::None
        }
        .as_str()
        .to_owned(),
        action: "person.read".to_owned(),
        resource,
        person_ids: outcome.person_ids.clone(),
        decision: outcome.decision,
        reason: outcome.reason.clone(),
        policy_version: None,
        agreement_version: None,
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
