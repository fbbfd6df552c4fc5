//! The API's Prometheus metrics.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, register_int_gauge,
    Histogram, IntCounter, IntCounterVec, IntGauge,
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

/// Requests refused for want of a valid token, by reason (`auth.missing_token`,
/// `auth.bad_signature`, ...: the closed set of `socle_auth::Error::code`). Unauthenticated
/// refusals are counted here, never as a user in the trail's statistics.
pub static UNAUTHENTICATED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "socle_api_unauthenticated_total",
        "Requests refused without a valid token, by reason",
        &["reason"]
    )
    .expect("metric registered once")
});

/// Connections open now.
pub static CONNECTIONS_OPEN: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("socle_api_connections_open", "Connections open now")
        .expect("metric registered once")
});

/// Connections closed at once because `max_connections` were open.
pub static CONNECTIONS_REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "socle_api_connections_refused_total",
        "Connections closed at once because the connection limit was reached"
    )
    .expect("metric registered once")
});

/// Connections closed for sending their headers too slowly, or for being idle too long.
pub static CONNECTIONS_TIMED_OUT: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "socle_api_connections_timed_out_total",
        "Connections closed by the header-read or idle timeout"
    )
    .expect("metric registered once")
});

/// Disclosures refused by the hard read budget (`429 rate.read_budget`).
pub static READ_BUDGET_REFUSALS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "socle_api_read_budget_refusals_total",
        "Disclosures refused because the actor's read budget was exhausted"
    )
    .expect("metric registered once")
});
