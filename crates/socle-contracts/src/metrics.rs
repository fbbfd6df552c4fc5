//! Prometheus metrics of the registry events relay, in the default registry, so that
//! `socle registry`'s `GET /metrics` shows them beside the registry's own.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntGauge};

fn registered<M: prometheus::core::Collector + Clone + 'static>(metric: M, name: &str) -> M {
    if let Err(e) = prometheus::register(Box::new(metric.clone())) {
        tracing::warn!(error = %e, metric = name, "metric not registered");
    }
    metric
}

/// Registry events published (acknowledged by Kafka).
pub static PUBLISHED: LazyLock<IntCounter> = LazyLock::new(|| {
    let name = "socle_registry_events_published_total";
    registered(
        IntCounter::new(name, "Registry events published to Kafka (acknowledged)")
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}")),
        name,
    )
});

/// Publication attempts that failed (the events stay in the outbox and are retried).
pub static FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    let name = "socle_registry_events_failures_total";
    registered(
        IntCounter::new(name, "Failed attempts to publish registry events (retried)")
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}")),
        name,
    )
});

/// Registry events waiting in the outbox, as last seen by the relay.
pub static WAITING: LazyLock<IntGauge> = LazyLock::new(|| {
    let name = "socle_registry_events_waiting";
    registered(
        IntGauge::new(name, "Registry events waiting in the outbox for Kafka")
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}")),
        name,
    )
});
