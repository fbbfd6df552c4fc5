//! The detector's thresholds, all configurable (`[detect.rules]`); the defaults are what
//! docs/audit.md documents and what the false-positive simulation was measured with.

use serde::{Deserialize, Serialize};

/// What counts as abnormal, and what is done about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Length of the sliding window, seconds.
    pub window_secs: i64,
    /// Distinct people one actor may view in a window; above: **suspend**.
    pub max_distinct_persons: usize,
    /// Actions whose person ids count as people viewed (a caseload listing does not).
    pub viewing_actions: Vec<String>,
    /// Lookups in a window before the outside-caseload share is judged.
    pub outside_caseload_min_lookups: usize,
    /// Share of an actor's lookups outside the caseload; above: **suspend**.
    pub max_outside_caseload_share: f64,
    /// Access-event reasons that mean "outside the caller's caseload".
    pub outside_caseload_reasons: Vec<String>,
    /// Actions that are outside the caseload by nature (e.g. a NIR lookup).
    pub outside_caseload_actions: Vec<String>,
    /// A search returning at least this many ids is a large search...
    pub large_search_ids: usize,
    /// ...and more than this many in a window: **throttle**.
    pub max_large_searches: usize,
    /// Refusals (DENY) in a window; above: **require a new MFA step**.
    pub max_refusals: usize,
    /// Volume in a window above `baseline_factor` × the actor's own baseline: **throttle**...
    pub baseline_factor: f64,
    /// ...once the volume is at least this (small counts say nothing)...
    pub baseline_min_volume: usize,
    /// ...and the baseline has this many windows of history.
    pub baseline_min_windows: u32,
    /// Volume above `peer_factor` × the mean baseline of the organisation's actors: **alert**.
    pub peer_factor: f64,
    /// Working hours, local time (`utc_offset_hours`), `[start, end)`.
    pub working_hours_start: u32,
    pub working_hours_end: u32,
    pub utc_offset_hours: i32,
    /// Reads outside working hours in a window; above: **require a new MFA step**.
    pub max_unusual_hour_reads: usize,
    /// Distinct people one organisation views in a window; above: **alert** (organisation).
    pub org_max_distinct_persons: usize,
    /// How long a throttle lasts, seconds, and the least time between two requests under it.
    pub throttle_secs: i64,
    pub throttle_interval_ms: u64,
    /// How long an MFA step-up requirement lasts, seconds.
    pub require_mfa_secs: i64,
    /// Access event ids kept as evidence in an alert (the most recent).
    pub evidence_ids: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            window_secs: 300,
            max_distinct_persons: 100,
            viewing_actions: vec![
                "person.read".into(),
                "person.search".into(),
                "person.lookup_nir".into(),
            ],
            outside_caseload_min_lookups: 20,
            max_outside_caseload_share: 0.3,
            outside_caseload_reasons: vec!["scope.outside_caseload".into()],
            outside_caseload_actions: vec!["person.lookup_nir".into()],
            large_search_ids: 50,
            max_large_searches: 5,
            max_refusals: 20,
            baseline_factor: 8.0,
            baseline_min_volume: 60,
            baseline_min_windows: 5,
            peer_factor: 15.0,
            working_hours_start: 7,
            working_hours_end: 20,
            utc_offset_hours: 1,
            max_unusual_hour_reads: 40,
            org_max_distinct_persons: 2000,
            throttle_secs: 900,
            throttle_interval_ms: 2000,
            require_mfa_secs: 8 * 3600,
            evidence_ids: 1000,
        }
    }
}

impl Rules {
    /// Refuses thresholds that cannot work.
    ///
    /// # Errors
    /// A message naming the rule.
    pub fn check(&self) -> Result<(), String> {
        if self.window_secs <= 0 {
            return Err("window_secs must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.max_outside_caseload_share) {
            return Err("max_outside_caseload_share must be between 0 and 1".into());
        }
        if self.working_hours_start > 24 || self.working_hours_end > 24 {
            return Err("working hours must be between 0 and 24".into());
        }
        if self.max_distinct_persons == 0 || self.large_search_ids == 0 {
            return Err("max_distinct_persons and large_search_ids must be at least 1".into());
        }
        Ok(())
    }
}
