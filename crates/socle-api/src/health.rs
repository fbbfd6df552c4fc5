//! `/health` (ready only when Kafka, PostgreSQL and the registry answer and the habilitations
//! replay is caught up, naming any that is not) and `/metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::{AppState, PROBE_TIMEOUT};

/// `GET /health`.
pub async fn health(State(state): State<AppState>) -> Response {
    let (kafka, postgres, registry, idp) = tokio::join!(
        async {
            socle_kafka::ping(&state.brokers, PROBE_TIMEOUT)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
        async {
            tokio::time::timeout(PROBE_TIMEOUT, socle_store::ping(&state.pool))
                .await
                .map_err(|_| "timed out".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()))
        },
        probe_registry(&state),
        // The cached keys: no JWKS fetch per call (an unauthenticated caller must not be able
        // to make the API hammer the IdP). Failing when no usable key is cached and the last
        // refresh failed; a refresh only when the cache is empty or past its age (single flight,
        // at most once per `jwks_refresh_min_interval_ms`).
        async {
            state
                .verifier
                .ensure_keys()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    // The trail is written to Kafka through the registry: either down means no answer can leave.
    let trail = if !state.access.trail_enabled() {
        Err("disabled for a benchmark: this instance records no access".to_owned())
    } else {
        match (&kafka, &registry) {
            (Ok(()), Ok(())) => Ok(()),
            _ => Err("kafka or registry unreachable: personal data is withheld (503)".to_owned()),
        }
    };
    let mut checks = vec![
        ("kafka", kafka),
        ("postgres", postgres),
        ("registry", registry),
        ("identity_provider", idp),
        ("access_trail", trail),
    ];
    // This process's replay of the habilitations topic (socle_policy::consumer): stopped at an
    // event it cannot apply, not caught up yet, or waiting for Kafka/PostgreSQL.
    if let Some(status) = socle_policy::consumer::process_status() {
        checks.push(("habilitations", status.state().healthy()));
    }
    health_response(&checks)
}

async fn probe_registry(state: &AppState) -> Result<(), String> {
    let url = format!(
        "{}/subjects",
        state.codec.registry_url().trim_end_matches('/')
    );
    let response = state
        .http
        .get(url)
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}

/// The health document for named check results: 200 when all pass, else 503 naming failures.
pub fn health_response(checks: &[(&str, Result<(), String>)]) -> Response {
    let ready = checks.iter().all(|(_, r)| r.is_ok());
    let details: serde_json::Map<String, Value> = checks
        .iter()
        .map(|(name, r)| {
            let v = match r {
                Ok(()) => json!({"ok": true}),
                Err(e) => json!({"ok": false, "error": e}),
            };
            ((*name).to_owned(), v)
        })
        .collect();
    let failing: Vec<&str> = checks
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| *n)
        .collect();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "failing": failing,
        "checks": details,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: the process's Prometheus metrics in text format.
pub async fn metrics() -> Response {
    let families = prometheus::gather();
    match prometheus::TextEncoder::new().encode_to_string(&families) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => crate::Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics.encoding",
            "Metrics unavailable",
            e.to_string(),
        )
        .into_response(),
    }
}
