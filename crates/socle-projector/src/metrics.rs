//! The projector's Prometheus metrics (constant names, low-cardinality labels).

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, Histogram, IntCounter,
    IntCounterVec,
};

/// Events handled, by outcome: `applied`, `rejected` (kept with their reason), `skipped`
/// (already applied: a replay after a crash or rebalance).
pub static EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "socle_projector_events_total",
        "Events handled by the projector, by outcome",
        &["outcome"]
    )
    .expect("metric registered once")
});

/// Time to decode and write one batch.
pub static BATCH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "socle_projector_batch_seconds",
        "Time to decode and write one batch",
        vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]
    )
    .expect("metric registered once")
});

/// Batches retried after a transient failure.
pub static RETRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "socle_projector_retries_total",
        "Batches retried after a transient failure"
    )
    .expect("metric registered once")
});

/// Errors reported by the Kafka consumer.
pub static CONSUMER_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "socle_projector_consumer_errors_total",
        "Errors reported by the Kafka consumer"
    )
    .expect("metric registered once")
});
