//! The access pipeline every personal-data endpoint goes through:
//! authenticate (bearer JWT) → find the grant in force → decide (cedar) → do the work →
//! append the access event (acks=all) → only then answer.
//!
//! Whatever happens — success, refusal, bad input, store failure — exactly one access event is
//! appended before the response leaves; if it cannot be appended the answer is replaced by
//! `503 trail.unavailable` and nothing is disclosed.

// A problem is built at most once per request, on the way out: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use socle_auth::Identity;
use socle_detect::Verdict;
use socle_domain::{AccessEvent, Decision, Envelope};
use socle_policy::Facts;
use tracing::{error, warn};
use uuid::Uuid;

use crate::problem::Problem;
use crate::{metrics, AppState};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The caller's `X-Request-Id` if it is a sane token, else a fresh UUIDv7.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned)
}

fn bearer(headers: &HeaderMap) -> Result<&str, socle_auth::Error> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(socle_auth::Error::MissingToken)?
        .to_str()
        .map_err(|_| socle_auth::Error::Malformed("non-ASCII Authorization header".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(socle_auth::Error::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(socle_auth::Error::MissingToken);
    }
    Ok(token.trim())
}

/// One access in progress: what the trail will say about it.
#[derive(Debug)]
pub struct Access {
    pub request_id: String,
    pub action: &'static str,
    pub resource: String,
    pub identity: Option<Identity>,
    pub purpose: Option<String>,
    pub grant: Option<socle_policy::Grant>,
    pub person_ids: Vec<String>,
    pub policy_version: Option<String>,
    pub agreement_version: Option<String>,
    /// Why, when not a plain allow (a refusal code, or e.g. `person.not_found`).
    pub reason: Option<String>,
}

impl Access {
    pub fn new(headers: &HeaderMap, action: &'static str, resource: String) -> Self {
        Access {
            request_id: request_id(headers),
            action,
            resource: truncate(&resource, 200).to_owned(),
            identity: None,
            purpose: None,
            grant: None,
            person_ids: Vec::new(),
            policy_version: None,
            agreement_version: None,
            reason: None,
        }
    }

    /// Verifies the bearer token.
    ///
    /// # Errors
    /// A 401 problem (with `WWW-Authenticate`), or 503 when the IdP's keys cannot be fetched.
    pub async fn authenticate(
        &mut self,
        state: &AppState,
        headers: &HeaderMap,
    ) -> Result<Identity, Problem> {
        let token = bearer(headers).map_err(auth_problem)?;
        let identity = state
            .verifier
            .verify(token)
            .await
            .map_err(auth_problem)?
            // A machine only if registered (`auth.machine_clients`), never guessed from claims.
            .with_machine_clients(state.access.machine_clients());
        self.identity = Some(identity.clone());
        // Sanctions from the detector (docs/audit.md): suspended, step-up required, throttled.
        // Fail closed: if they cannot be read, nothing is answered. A step-up is met only by a
        // new multi-factor authentication: the token's `auth_time` (never its `iat`: a
        // refreshed token is no new authentication) with an MFA `amr`/`acr`. A machine has
        // neither, so a step-up sanction holds against it until it expires or is lifted.
        let mfa_at = identity
            .authenticated_at
            .filter(|_| identity.mfa)
            .and_then(|t| chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0));
        match state.sanctions.check(&identity.subject, mfa_at).await {
            Ok(Verdict::Allow) => {}
            Ok(verdict) => return Err(sanction_problem(&verdict, state)),
            Err(e) => {
                warn!(error = %e, "cannot read sanctions");
                return Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "sanctions.unavailable",
                    "Sanctions unavailable",
                    "whether this account is suspended cannot be checked right now; retry later",
                ));
            }
        }
        Ok(identity)
    }

    /// Finds the grant in force for this action (and `purpose`, if the caller named one), then
    /// asks the policy engine, with `in_caseload` for the person concerned (true for actions
    /// that are scoped in SQL).
    ///
    /// # Errors
    /// 401 `auth.mfa_required` (step-up), 403 with the refusing policy's code, 503 when the
    /// habilitations store cannot be read.
    pub async fn authorize(
        &mut self,
        state: &AppState,
        identity: &Identity,
        purpose: Option<&str>,
        in_caseload: bool,
    ) -> Result<(), Problem> {
        let grants = in_force(state, identity, self.action, purpose).await?;
        self.authorize_with(state, identity, purpose, in_caseload, grants)
            .await
    }

    /// As [`Access::authorize`], with the grants in force already read (by [`in_force`]).
    ///
    /// # Errors
    /// As [`Access::authorize`].
    pub async fn authorize_with(
        &mut self,
        state: &AppState,
        identity: &Identity,
        purpose: Option<&str>,
        in_caseload: bool,
        grants: Vec<socle_policy::Grant>,
    ) -> Result<(), Problem> {
        let grant = grants.into_iter().next();
        let purpose = purpose
            .map(str::to_owned)
            .or_else(|| grant.as_ref().map(|g| g.purpose.clone()))
            .unwrap_or_default();
        self.purpose = (!purpose.is_empty()).then(|| purpose.clone());
        let grant_requires_mfa = grant.as_ref().is_some_and(|g| g.requires_mfa);
        let requires_mfa =
            state.access.mfa_actions.iter().any(|a| a == self.action) || grant_requires_mfa;
        let facts = Facts {
            user: &identity.subject,
            ecosystem: &identity.ecosystem,
            action: self.action,
            purpose: &purpose,
            habilitated: grant.is_some(),
            requires_mfa,
            mfa: identity.mfa,
            // A registered machine is exempt from the second factor of `mfa_actions`, never
            // from a grant that requires MFA: it has no second factor to show, so the policy
            // sees it as a session without one (socle-audit's replay does the same).
            client: identity.client && !grant_requires_mfa,
            personal_data: true,
            in_caseload,
        };
        self.policy_version = Some(state.engine.version().to_owned());
        self.grant = grant;
        let decision = state.engine.decide(&facts).map_err(|e| {
            error!(error = %e, "policy evaluation failed; refusing");
            Problem::new(
                StatusCode::FORBIDDEN,
                "policy.error",
                "Refused",
                "the access policy could not be evaluated, so access is refused",
            )
        })?;
        if decision.allowed {
            return Ok(());
        }
        if identity.client && decision.code == "auth.mfa_required" {
            // No step-up to offer a machine: a person must hold such a grant.
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "auth.machine_client_mfa_grant",
                "Not for a machine client",
                "this grant requires a multi-factor session, which a machine client (client credentials) never has",
            ));
        }
        Err(refusal(&decision.code, state))
    }

    /// Appends the access event, then returns `outcome` — or 503 if the trail refused it.
    pub async fn finish(
        self,
        state: &AppState,
        route: &'static str,
        outcome: Result<Response, Problem>,
    ) -> Response {
        let (decision, reason, mut response) = match outcome {
            Ok(r) => (Decision::Allow, self.reason.clone(), r),
            Err(p) => {
                let decision = if p.status >= 500 {
                    Decision::Error
                } else if p.status == 404 {
                    Decision::Allow
                } else {
                    Decision::Deny
                };
                (
                    decision,
                    Some(p.code.to_owned()),
                    p.with_request_id(&self.request_id).into_response(),
                )
            }
        };
        let (decision, reason) = match self.spend_budget(state, decision, reason).await {
            Ok(kept) => kept,
            Err(problem) => {
                let code = problem.code.to_owned();
                response = problem.with_request_id(&self.request_id).into_response();
                (Decision::Deny, Some(code))
            }
        };
        let person_ids = if decision == Decision::Allow {
            self.person_ids.clone()
        } else {
            Vec::new()
        };
        let event = self.event(decision, reason, person_ids);
        if state.access.trail_enabled() {
            let started = std::time::Instant::now();
            let recorded = state.trail.record(&event).await;
            metrics::TRAIL_SECONDS.observe(started.elapsed().as_secs_f64());
            match recorded {
                Ok(_) => metrics::ACCESS_EVENTS
                    .with_label_values(&[event.decision.as_str()])
                    .inc(),
                Err(e) => {
                    metrics::TRAIL_FAILURES.inc();
                    error!(request_id = %self.request_id, error = %e, "access trail unavailable; answer withheld");
                    response = Problem::trail_unavailable()
                        .with_request_id(&self.request_id)
                        .into_response();
                }
            }
        } else {
            response.headers_mut().insert(
                "x-socle-trail",
                HeaderValue::from_static("disabled-for-benchmark"),
            );
        }
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        metrics::REQUESTS
            .with_label_values(&[route, response.status().as_str()])
            .inc();
        response
    }

    /// The hard read budget, checked before anything is disclosed: an allowed answer that shows
    /// people is refused (`429 rate.read_budget`, with `Retry-After`) when the actor's distinct
    /// people in the window would exceed the budget, and (fail closed) `503 budget.unavailable`
    /// when the budget cannot be read.
    async fn spend_budget(
        &self,
        state: &AppState,
        decision: Decision,
        reason: Option<String>,
    ) -> Result<(Decision, Option<String>), Problem> {
        let (Some(budget), Some(identity)) = (state.access.read_budget(), &self.identity) else {
            return Ok((decision, reason));
        };
        if decision != Decision::Allow || self.person_ids.is_empty() {
            return Ok((decision, reason));
        }
        let actor = format!("{}@{}", identity.subject, identity.organisation);
        match socle_store::budget::admit(
            &state.pool,
            &actor,
            &self.person_ids,
            budget.max_persons,
            budget.window,
        )
        .await
        {
            Ok(socle_store::budget::Admission::Admitted) => Ok((decision, reason)),
            Ok(socle_store::budget::Admission::Refused { retry_after }) => {
                tracing::warn!(actor = %actor, persons = self.person_ids.len(), "read budget exhausted: refused");
                metrics::READ_BUDGET_REFUSALS.inc();
                Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate.read_budget",
                    "Read budget exhausted",
                    format!(
                        "you were shown {} distinct people in the last {} s, the most allowed: retry after {} s",
                        budget.max_persons,
                        budget.window.as_secs(),
                        retry_after.as_secs()
                    ),
                )
                .with_retry_after(retry_after))
            }
            Err(e) => {
                error!(error = %e, "read budget unreadable: refused (fail closed)");
                Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "budget.unavailable",
                    "Read budget unavailable",
                    "the read budget could not be checked, so nothing is disclosed; retry later",
                ))
            }
        }
    }

    fn event(
        &self,
        decision: Decision,
        reason: Option<String>,
        person_ids: Vec<String>,
    ) -> AccessEvent {
        let (user, organisation, ecosystem, strength) = match &self.identity {
            Some(i) => (
                i.subject.clone(),
                i.organisation.clone(),
                Some(i.ecosystem.clone()),
                i.auth_strength(),
            ),
            // Unauthenticated: no user at all (never an account name such as `anonymous`, which
            // the detector would count and sanction like a user), organisation `unknown`,
            // strength `none`. The detector skips such events; they are counted by reason in
            // `socle_api_unauthenticated_total`.
            None => (
                String::new(),
                UNAUTHENTICATED_ORGANISATION.to_owned(),
                None,
                "none",
            ),
        };
        let mut envelope = Envelope::new(organisation.clone(), Utc::now());
        if !user.is_empty() {
            envelope = envelope.with_actor(user.clone());
        }
        AccessEvent {
            envelope,
            request_id: self.request_id.clone(),
            user,
            organisation,
            ecosystem,
            purpose: self.purpose.clone(),
            auth_strength: strength.to_owned(),
            action: self.action.to_owned(),
            resource: self.resource.clone(),
            person_ids,
            decision,
            reason,
            policy_version: self.policy_version.clone(),
            agreement_version: self.agreement_version.clone(),
        }
    }
}

/// The caller's grants in force now for `action` (and `purpose`, if named).
///
/// # Errors
/// 503 `habilitations.unavailable` when PostgreSQL cannot be read, or when this process's replay
/// of the habilitations topic is not caught up or stopped at an event it cannot apply (a
/// revocation that cannot be read must never mean "still granted": fail closed).
pub async fn in_force(
    state: &AppState,
    identity: &Identity,
    action: &str,
    purpose: Option<&str>,
) -> Result<Vec<socle_policy::Grant>, Problem> {
    if let Some(status) = socle_policy::consumer::process_status() {
        if let Err(why) = status.state().trusted() {
            warn!(reason = %why, "habilitations not trusted; refusing");
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "habilitations.unavailable",
                "Habilitations unavailable",
                "the habilitations are not up to date; retry later",
            ));
        }
    }
    socle_policy::grants::in_force(
        &state.pool,
        &identity.subject,
        &identity.organisation,
        &identity.ecosystem,
        action,
        purpose,
        Utc::now(),
    )
    .await
    .map_err(|e| {
        warn!(error = %e, "habilitations unavailable");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "habilitations.unavailable",
            "Habilitations unavailable",
            "the habilitations cannot be read; retry later",
        )
    })
}

/// The organisation recorded for an access without a verified token (not a SIRET; the
/// detector skips it).
pub const UNAUTHENTICATED_ORGANISATION: &str = socle_detect::UNAUTHENTICATED_ORGANISATION;

/// A refused token: counted by reason (`socle_api_unauthenticated_total{reason}`, the closed
/// set of `socle_auth::Error::code`), then the problem.
fn auth_problem(e: socle_auth::Error) -> Problem {
    if !e.is_unavailable() {
        metrics::UNAUTHENTICATED
            .with_label_values(&[e.code()])
            .inc();
    }
    if e.is_unavailable() {
        warn!(error = %e, "cannot verify tokens");
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.code(),
            "Authentication unavailable",
            "tokens cannot be verified right now; retry later",
        );
    }
    let www = match e {
        socle_auth::Error::MissingToken => "Bearer realm=\"socle\"".to_owned(),
        _ => format!(
            "Bearer realm=\"socle\", error=\"invalid_token\", error_description=\"{}\"",
            e.code()
        ),
    };
    Problem::new(
        StatusCode::UNAUTHORIZED,
        e.code(),
        "Unauthenticated",
        e.to_string(),
    )
    .with_www_authenticate(www)
}

/// The problem for a sanction in force against the caller.
fn sanction_problem(verdict: &Verdict, state: &AppState) -> Problem {
    match verdict {
        Verdict::RequireMfa { .. } => Problem::new(
            StatusCode::UNAUTHORIZED,
            "auth.mfa_step_up",
            "New multi-factor authentication required",
            "unusual activity was detected on this account: authenticate again with a second factor",
        )
        .with_www_authenticate(format!(
            "Bearer realm=\"socle\", error=\"insufficient_user_authentication\", \
             error_description=\"a new multi-factor authentication is required\", acr_values=\"{}\"",
            state.access.step_up_acr
        )),
        Verdict::Throttled { .. } => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "actor.throttled",
            "Throttled",
            "unusual activity was detected on this account: requests are slowed down",
        ),
        _ => Problem::new(
            StatusCode::FORBIDDEN,
            "actor.suspended",
            "Account suspended",
            "this account is suspended pending review after unusual activity",
        ),
    }
}

/// The problem for a refusal code from the policies.
fn refusal(code: &str, state: &AppState) -> Problem {
    match code {
        "auth.mfa_required" => Problem::new(
            StatusCode::UNAUTHORIZED,
            "auth.mfa_required",
            "Multi-factor authentication required",
            "personal data needs a multi-factor session: authenticate again with a second factor",
        )
        .with_www_authenticate(format!(
            "Bearer realm=\"socle\", error=\"insufficient_user_authentication\", \
             error_description=\"a multi-factor session is required\", acr_values=\"{}\"",
            state.access.step_up_acr
        )),
        "scope.outside_caseload" => Problem::new(
            StatusCode::FORBIDDEN,
            "scope.outside_caseload",
            "Outside your caseload",
            "this person is not followed by your organisation (or does not exist)",
        ),
        "purpose.not_allowed" => Problem::new(
            StatusCode::FORBIDDEN,
            "purpose.not_allowed",
            "Purpose not allowed",
            "this action is only allowed for a purpose that requires it (orientation)",
        ),
        _ => Problem::new(
            StatusCode::FORBIDDEN,
            "habilitation.none",
            "No habilitation",
            "no habilitation in force grants you this action in your ecosystem for this purpose",
        ),
    }
}

pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("a;DROP TABLE"));
        assert_ne!(request_id(&h), "a;DROP TABLE");
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        let mut h = HeaderMap::new();
        assert!(matches!(bearer(&h), Err(socle_auth::Error::MissingToken)));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(matches!(bearer(&h), Err(socle_auth::Error::MissingToken)));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def.ghi"),
        );
        assert_eq!(bearer(&h).unwrap(), "abc.def.ghi");
    }
}
