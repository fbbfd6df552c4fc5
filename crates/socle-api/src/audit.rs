//! The auditors' endpoints (`socle_audit::http`), behind the API's authentication: the token is
//! verified and the detector's sanctions checked as for any request, then the caller is passed
//! to the audit routes as an `Auditor` — an auditor when a multi-factor session holds a grant in
//! force for `audit.query`. The audit routes record every query (and every refusal) in the trail,
//! and measure the audit store against the trail before answering (bounds:
//! [`crate::AccessSettings::with_audit_freshness`]).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use socle_audit::freshness::FreshnessCheck;
use socle_audit::http::{AuditState, Auditor};

use crate::access::{in_force, Access};
use crate::AppState;

/// The action a grant must name for its holder to query the audit store.
pub const AUDIT_ACTION: &str = "audit.query";

/// The audit routes, with the API's authentication in front.
pub fn routes(state: AppState) -> Router {
    socle_audit::http::router(AuditState {
        pool: state.pool.clone(),
        trail: state.trail.clone(),
        freshness: FreshnessCheck::new(state.brokers.clone(), state.trail.topic())
            .with_bounds(state.access.audit_freshness()),
    })
    .layer(axum::middleware::from_fn_with_state(state, identify))
}

async fn identify(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    // The path's ids first (400 before anything else); the trail's resource is the route
    // template with validated ids, never free text from the URL.
    let resource = match socle_audit::http::route_resource(request.uri().path()) {
        Ok(resource) => resource,
        Err(invalid) => {
            let access = Access::new(&headers, AUDIT_ACTION, invalid.resource);
            let problem = crate::problem::bad_request(invalid.code, invalid.detail);
            return access.finish(&state, "/audit", Err(problem)).await;
        }
    };
    let mut access = Access::new(&headers, AUDIT_ACTION, resource);
    match access.authenticate(&state, &headers).await {
        Ok(identity) => {
            let granted = in_force(&state, &identity, AUDIT_ACTION, None)
                .await
                .map(|grants| !grants.is_empty());
            let is_auditor = match granted {
                Ok(g) => g && identity.mfa,
                Err(problem) => return access.finish(&state, "/audit", Err(problem)).await,
            };
            request.extensions_mut().insert(Auditor {
                user: identity.subject.clone(),
                organisation: identity.organisation.clone(),
                auth_strength: identity.auth_strength().to_owned(),
                is_auditor,
            });
            next.run(request).await
        }
        Err(problem) => access.finish(&state, "/audit", Err(problem)).await,
    }
}
