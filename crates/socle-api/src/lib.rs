//! The HTTP API of socle.
//!
//! Every answer that concerns a person (read, refusal, failure) is preceded by an access event
//! appended to the access topic with `acks=all`; if the trail cannot be written, the API answers
//! `503 trail.unavailable` and discloses nothing (fail closed).
//!
//! Identity: an OIDC bearer token (JWT) verified against the identity provider's JWKS
//! (`socle-auth`); permission: a habilitation in force and the cedar policies (`socle-policy`);
//! scope: the caller's caseload, as a SQL condition (`persons`). See `docs/api.md`.

pub mod access;
pub mod audit;
pub mod commands;
pub mod health;
pub mod metrics;
pub mod models;
mod openapi;
mod persons;
mod problem;
mod serve;
pub mod services;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use socle_auth::Verifier;
use socle_kafka::{AccessTrail, Codec};
use socle_policy::Engine;
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
    pub verifier: Verifier,
    pub engine: Arc<Engine>,
    pub access: Arc<AccessSettings>,
    pub nir_limiter: Arc<persons::NirLimiter>,
    pub ecosystems: Arc<models::Ecosystems>,
    /// Sanctions imposed by the detector (suspension, step-up, throttling), checked per request.
    pub sanctions: Arc<socle_detect::SanctionGuard>,
}

/// Access rules that are configuration rather than policy.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// Actions that demand a multi-factor session whatever the grant says.
    pub mfa_actions: Vec<String>,
    /// The `acr_values` named in a step-up challenge.
    pub step_up_acr: String,
    /// NIR lookups outside the caseload allowed per user and hour.
    pub nir_lookups_per_hour: u32,
    /// The registered machine clients (`auth.machine_clients`): see
    /// [`AccessSettings::with_machine_clients`].
    machine_clients: Vec<String>,
    trail: TrailMode,
    /// How far behind the trail the audit store may be for an auditor to be answered.
    audit_freshness: socle_audit::freshness::Bounds,
    /// The hard read budget: see [`AccessSettings::with_read_budget`].
    read_budget: Option<ReadBudget>,
}

/// At most `max_persons` distinct people shown to one actor (user of an organisation) in any
/// `window`, checked before each disclosure and shared by every API instance (PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudget {
    pub max_persons: i64,
    pub window: std::time::Duration,
}

/// Whether access events are written. Only [`TrailMode::Record`] exists unless the crate is
/// built with the `bench-unsafe-no-trail` feature (see `bench/api/`): no configuration key can
/// turn the trail off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailMode {
    Record,
    #[cfg(feature = "bench-unsafe-no-trail")]
    SkipForBenchmark,
}

impl AccessSettings {
    pub fn new(mfa_actions: Vec<String>, step_up_acr: String, nir_lookups_per_hour: u32) -> Self {
        AccessSettings {
            mfa_actions,
            step_up_acr,
            nir_lookups_per_hour,
            machine_clients: Vec::new(),
            trail: TrailMode::Record,
            audit_freshness: socle_audit::freshness::Bounds::default(),
            read_budget: None,
        }
    }

    /// Turns the hard read budget on (settings `api.read_budget_persons`,
    /// `api.read_budget_window_secs`): past it the API answers `429 rate.read_budget` with
    /// `Retry-After`, before anything is disclosed.
    #[must_use]
    pub fn with_read_budget(mut self, budget: ReadBudget) -> Self {
        self.read_budget = Some(budget);
        self
    }

    /// See [`AccessSettings::with_read_budget`].
    pub fn read_budget(&self) -> Option<ReadBudget> {
        self.read_budget
    }

    /// The bounds of the auditors' answers (settings `audit.max_lag_entries`,
    /// `audit.max_lag_ms`; default 1000 entries, 30 s).
    #[must_use]
    pub fn with_audit_freshness(mut self, bounds: socle_audit::freshness::Bounds) -> Self {
        self.audit_freshness = bounds;
        self
    }

    /// See [`AccessSettings::with_audit_freshness`].
    pub fn audit_freshness(&self) -> socle_audit::freshness::Bounds {
        self.audit_freshness
    }

    /// The registered machine clients (setting `auth.machine_clients`; default none): a token
    /// is a machine's only when its `client_id` is one of them and its `sub` is that client id
    /// (`socle_auth::Identity::is_machine_client`). A machine is not asked for a second factor
    /// by `mfa_actions`, but never meets a grant that requires MFA.
    #[must_use]
    pub fn with_machine_clients(mut self, clients: Vec<String>) -> Self {
        self.machine_clients = clients;
        self
    }

    /// See [`AccessSettings::with_machine_clients`].
    pub fn machine_clients(&self) -> &[String] {
        &self.machine_clients
    }

    /// Benchmark builds only: skip the trail write.
    #[cfg(feature = "bench-unsafe-no-trail")]
    pub fn without_trail_for_benchmark(mut self) -> Self {
        self.trail = TrailMode::SkipForBenchmark;
        self
    }

    pub fn trail_enabled(&self) -> bool {
        self.trail == TrailMode::Record
    }
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
        .route("/persons", get(persons::search))
        .route("/persons/{id}", get(persons::read))
        .route("/persons/by-nir/{nir}", get(persons::lookup_nir))
        .route("/persons/{id}/contact", post(commands::contact))
        .route("/persons/{id}/prescriptions", post(commands::prescribe))
        .route("/persons/{id}/follows", post(commands::follow_start))
        .route("/persons/{id}/appointments", post(commands::appointment))
        .route(
            "/persons/{id}/follows/{follow_id}/end",
            post(commands::follow_end),
        )
        .route("/caseload", get(persons::caseload))
        .route("/services", get(services::list))
        .route("/openapi.json", get(openapi::document))
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(state.clone())
        .merge(audit::routes(state))
}

/// Limits on the API's connections (docs/api.md, "Connection limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A request's complete headers must arrive within this time, counted from when the server
    /// waits for them (the connection opened, or the previous response was sent), however
    /// slowly the bytes trickle in; else the connection is closed.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and no byte received or sent for this long is
    /// closed (an idle keep-alive connection, or one that never sends anything).
    pub idle_timeout: Duration,
    /// A request (its body included) must be answered within this time, else `408
    /// request.timeout` and the connection is closed.
    pub request_timeout: Duration,
    /// At most this many connections at once: a connection accepted past it is closed at once
    /// (counted in `socle_api_connections_refused_total`).
    pub max_connections: usize,
    /// At shutdown, how long in-flight requests are given before their connections are closed.
    pub shutdown_grace: Duration,
}

impl Default for ServeLimits {
    /// 10 s to send headers, 5 s idle, 30 s per request, 1024 connections, 30 s to drain.
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, then drains in-flight requests,
/// with the default [`ServeLimits`].
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), ServeLimits::default(), shutdown).await
}

/// As [`serve`], with `limits`.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), limits, shutdown).await
}

/// Serves `app` on `listener` within `limits` (HTTP/1.1) until `shutdown`
/// completes, then drains in-flight requests for at most `limits.shutdown_grace`.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve::run(listener, app, limits, shutdown).await
}

/// How long a health probe waits for each dependency.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
