//! The HTTP API of socle.
//!
//! Every answer that concerns a person (read, refusal, failure) is preceded by an access event
//! appended to the access topic with `acks=all`; if the trail cannot be written, the API answers
//! `503 trail.unavailable` and discloses nothing (fail closed).
//!
//! Identity: until OIDC lands, callers name themselves with the `X-Socle-User` and
//! `X-Socle-Organisation` headers. This is a development stand-in: the API binds to loopback by
//! default and must not be exposed as is.

mod caller;
mod health;
pub mod metrics;
mod persons;
mod problem;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use socle_kafka::{AccessTrail, Codec};
use sqlx::PgPool;
use tower_http::limit::RequestBodyLimitLayer;

pub use problem::Problem;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub trail: AccessTrail,
    pub codec: Arc<Codec>,
    pub brokers: String,
    pub http: reqwest::Client,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("brokers", &self.brokers)
            .field("trail", &self.trail)
            .finish_non_exhaustive()
    }
}

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/persons/{id}", get(persons::read))
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then drains in-flight requests.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// How long a health probe waits for each dependency.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
