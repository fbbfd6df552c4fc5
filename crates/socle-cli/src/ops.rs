//! The operations port of the components that serve no HTTP of their own (ingest, projector,
//! feed relay, sealer, detector, audit projection): `GET /health` and `GET /metrics`, on the
//! address of `[health] <component>` (docs/local-stack.md lists them).
//!
//! `/health` answers 200 only when the component's loop is running and what it depends on
//! (Kafka, PostgreSQL, the registry where it decodes Avro) answers; otherwise 503 with the
//! same document as the API's, naming what fails. `/metrics` is the process's Prometheus text.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long one dependency probe may take before it counts as failing.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the component's own loop reports: starting, running, or stopped with a reason.
#[derive(Debug, Clone, Default)]
pub struct Status(Arc<Mutex<Phase>>);

#[derive(Debug, Clone, Default)]
enum Phase {
    #[default]
    Starting,
    Running,
    Failed(String),
}

impl Status {
    /// The loop is running.
    pub fn running(&self) {
        self.set(Phase::Running);
    }

    /// The loop stopped on an error (kept until the process exits, so health says why).
    pub fn failed(&self, reason: &str) {
        self.set(Phase::Failed(reason.to_owned()));
    }

    fn set(&self, phase: Phase) {
        if let Ok(mut p) = self.0.lock() {
            *p = phase;
        }
    }

    fn check(&self) -> Result<(), String> {
        match self.0.lock().map(|p| p.clone()) {
            Ok(Phase::Running) => Ok(()),
            Ok(Phase::Starting) => Err("starting".to_owned()),
            Ok(Phase::Failed(reason)) => Err(format!("stopped: {reason}")),
            Err(_) => Err("status unreadable".to_owned()),
        }
    }
}

/// What a component's health depends on.
#[derive(Clone)]
pub struct Probes {
    /// The component's name, as in `make status` (the first check of the document).
    pub component: &'static str,
    pub status: Status,
    pub brokers: String,
    pub pool: Option<PgPool>,
    /// The schema registry's base URL, for components that decode or encode Avro.
    pub registry: Option<String>,
    http: reqwest::Client,
}

impl Probes {
    pub fn new(component: &'static str, brokers: &str) -> anyhow::Result<Probes> {
        Ok(Probes {
            component,
            status: Status::default(),
            brokers: brokers.to_owned(),
            pool: None,
            registry: None,
            http: reqwest::Client::builder()
                .timeout(PROBE_TIMEOUT)
                .build()
                .context("HTTP client")?,
        })
    }

    pub fn with_pool(mut self, pool: &PgPool) -> Probes {
        self.pool = Some(pool.clone());
        self
    }

    pub fn with_registry(mut self, url: &str) -> Probes {
        self.registry = Some(url.to_owned());
        self
    }
}

/// Serves `/health` and `/metrics` on `listen` until `shutdown`. Binding errors are returned
/// at once (a port taken by another process is a configuration error, not a reason to run blind).
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    probes: Probes,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the health port {listen} ([health] settings)"))?;
    info!(component = probes.component, %listen, "health and metrics listening");
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(probes);
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            warn!(error = %e, "health port stopped");
        }
    }))
}

async fn health(State(p): State<Probes>) -> Response {
    let kafka = async {
        socle_kafka::ping(&p.brokers, PROBE_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let postgres = async {
        match &p.pool {
            None => Ok(()),
            Some(pool) => tokio::time::timeout(PROBE_TIMEOUT, socle_store::ping(pool))
                .await
                .map_err(|_| "timed out".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string())),
        }
    };
    let registry = async {
        let Some(url) = &p.registry else {
            return Ok(());
        };
        let probe = format!("{}/subjects", url.trim_end_matches('/'));
        match p.http.get(probe).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answered {}", r.status())),
            Err(e) => Err(e.to_string()),
        }
    };
    let (kafka, postgres, registry) = tokio::join!(kafka, postgres, registry);
    let mut checks = vec![(p.component, p.status.check()), ("kafka", kafka)];
    if p.pool.is_some() {
        checks.push(("postgres", postgres));
    }
    if p.registry.is_some() {
        checks.push(("registry", registry));
    }
    socle_api::health::health_response(&checks)
}

async fn metrics() -> Response {
    socle_api::health::metrics().await
}

/// Runs `work` with its health port: the status is `running` while it runs, and `failed` with
/// the whole cause chain if it returns an error.
///
/// # Errors
/// Those of `work`, or the health port cannot be bound.
pub async fn with_health<F>(listen: SocketAddr, probes: Probes, work: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let status = probes.status.clone();
    let port_stop = CancellationToken::new();
    let port = serve(listen, probes, port_stop.clone()).await?;
    status.running();
    let result = work.await;
    if let Err(e) = &result {
        status.failed(&format!("{e:#}"));
    }
    port_stop.cancel();
    let _ = port.await;
    result
}
