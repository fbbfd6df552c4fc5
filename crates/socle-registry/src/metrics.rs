//! Prometheus metrics of the registry, registered once in the default registry.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, Opts};

/// HTTP requests answered, by status code.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "socle_registry_requests_total",
            "HTTP requests answered by the schema registry",
        ),
        &["status"],
    )
    .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
    if let Err(e) = prometheus::register(Box::new(counter.clone())) {
        tracing::warn!(error = %e, "socle_registry_requests_total not registered");
    }
    counter
});

/// New schema versions registered.
pub static REGISTRATIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    let counter = IntCounter::new(
        "socle_registry_registrations_total",
        "New subject versions registered in the schema registry",
    )
    .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
    if let Err(e) = prometheus::register(Box::new(counter.clone())) {
        tracing::warn!(error = %e, "socle_registry_registrations_total not registered");
    }
    counter
});
