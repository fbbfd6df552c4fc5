//! The API's Prometheus metrics.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, Histogram, IntCounter,
    IntCounterVec,
};

/// Requests answered, by route template and status.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "socle_api_requests_total",
        "Requests answered, by route and status",
        &["route", "status"]
    )
    .expect("metric registered once")
});

/// Access events appended to the trail, by decision.
pub static ACCESS_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "socle_access_events_total",
        "Access events appended to the trail, by decision",
        &["decision"]
    )
    .expect("metric registered once")
});

/// Answers withheld because the trail could not be written.
pub static TRAIL_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "socle_access_trail_failures_total",
        "Answers withheld because the access trail could not be written"
    )
    .expect("metric registered once")
});

/// Time to append one access event (until the broker acknowledged it).
pub static TRAIL_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "socle_access_trail_write_seconds",
        "Time to append one access event, until acknowledged by all in-sync replicas",
        vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0]
    )
    .expect("metric registered once")
});
