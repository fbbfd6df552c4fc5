//! The detector proper, a pure state machine: access events in (in trail order), alerts out.
//!
//! Windows run on the events' own time (`occurred_at`), not the clock, so replaying a trail
//! gives the same alerts as watching it live, and the false-positive simulation is exact.
//! Per actor: distinct people viewed, lookups outside the caseload, large searches, refusals,
//! reads at unusual hours, and volume against the actor's own baseline (an exponentially
//! weighted mean of past windows) and against their organisation's peers. Per organisation:
//! distinct people viewed. Each rule fires at most once per window per subject.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::Timelike;
use serde::{Deserialize, Serialize};
use socle_domain::{AccessEvent, Decision};
use uuid::Uuid;

use crate::rules::Rules;

/// What a sanction does, by increasing severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SanctionKind {
    /// At most one request per `throttle_interval_ms`.
    Throttle,
    /// Every request needs an MFA authentication newer than the sanction.
    RequireMfa,
    /// Nothing is served until a reviewer lifts it.
    Suspend,
}

impl SanctionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SanctionKind::Throttle => "throttle",
            SanctionKind::RequireMfa => "require_mfa",
            SanctionKind::Suspend => "suspend",
        }
    }

    /// Parses [`SanctionKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "throttle" => Some(SanctionKind::Throttle),
            "require_mfa" => Some(SanctionKind::RequireMfa),
            "suspend" => Some(SanctionKind::Suspend),
            _ => None,
        }
    }
}

/// The part of an access event the detector looks at.
#[derive(Debug, Clone)]
pub struct Observation {
    pub event_id: String,
    /// `occurred_at`, microseconds since the epoch.
    pub at: i64,
    pub user: String,
    pub organisation: String,
    pub action: String,
    pub person_ids: Vec<String>,
    pub decision: Decision,
    pub reason: Option<String>,
}

/// The organisation the API records for an access without a valid token.
pub const UNAUTHENTICATED_ORGANISATION: &str = "unknown";

impl Observation {
    /// Whether the access names a verified caller: a user, with an organisation (never the
    /// `unknown` the API records for an access without a valid token).
    pub fn is_authenticated(&self) -> bool {
        !self.user.is_empty() && self.organisation != UNAUTHENTICATED_ORGANISATION
    }
}

impl From<&AccessEvent> for Observation {
    fn from(e: &AccessEvent) -> Self {
        Observation {
            event_id: e.envelope.event_id.to_string(),
            at: e.envelope.occurred_at,
            user: e.user.clone(),
            organisation: e.organisation.clone(),
            action: e.action.clone(),
            person_ids: e.person_ids.clone(),
            decision: e.decision,
            reason: e.reason.clone(),
        }
    }
}

/// The window's figures: the evidence an alert carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub window_secs: i64,
    pub lookups: usize,
    pub distinct_persons: usize,
    pub outside_caseload: usize,
    pub outside_caseload_share: f64,
    pub large_searches: usize,
    pub refusals: usize,
    pub unusual_hour_reads: usize,
    /// The actor's own baseline (lookups per window), once known.
    pub baseline: Option<f64>,
    /// The mean baseline of the organisation's other actors, once known.
    pub peer_baseline: Option<f64>,
}

/// One alert, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: Uuid,
    /// The user, or `org:<siret>` for an organisation.
    pub subject: String,
    pub user: Option<String>,
    pub organisation: String,
    /// Stable rule code, e.g. `actor.distinct_persons`.
    pub rule: String,
    /// The sanction the rule asks for (none: an alert for a reviewer only).
    pub response: Option<SanctionKind>,
    pub figures: Figures,
    /// The window's access event ids (the most recent `evidence_ids`).
    pub event_ids: Vec<String>,
    /// Event time of the access event that raised it, microseconds.
    pub raised_at: i64,
}

struct Seen {
    at: i64,
    event_id: String,
    viewed: Vec<String>,
    outside: bool,
    refused: bool,
    large: bool,
    unusual: bool,
}

#[derive(Default)]
struct Window {
    seen: VecDeque<Seen>,
    persons: HashMap<String, u32>,
    outside: usize,
    refused: usize,
    large: usize,
    unusual: usize,
}

impl Window {
    fn push(&mut self, s: Seen) {
        for p in &s.viewed {
            *self.persons.entry(p.clone()).or_insert(0) += 1;
        }
        self.outside += usize::from(s.outside);
        self.refused += usize::from(s.refused);
        self.large += usize::from(s.large);
        self.unusual += usize::from(s.unusual);
        self.seen.push_back(s);
    }

    fn expire(&mut self, before: i64) {
        while self.seen.front().is_some_and(|s| s.at < before) {
            let Some(s) = self.seen.pop_front() else {
                break;
            };
            for p in &s.viewed {
                if let Some(n) = self.persons.get_mut(p) {
                    *n -= 1;
                    if *n == 0 {
                        self.persons.remove(p);
                    }
                }
            }
            self.outside -= usize::from(s.outside);
            self.refused -= usize::from(s.refused);
            self.large -= usize::from(s.large);
            self.unusual -= usize::from(s.unusual);
        }
    }

    fn evidence(&self, n: usize) -> Vec<String> {
        let skip = self.seen.len().saturating_sub(n);
        self.seen
            .iter()
            .skip(skip)
            .map(|s| s.event_id.clone())
            .collect()
    }
}

#[derive(Default)]
struct Actor {
    window: Window,
    bucket: i64,
    bucket_count: usize,
    baseline: Option<f64>,
    windows: u32,
    fired: HashMap<&'static str, i64>,
}

#[derive(Default)]
struct Organisation {
    window: Window,
    users: HashSet<String>,
    fired: HashMap<&'static str, i64>,
}

/// Weight of the newest window in the baseline.
const BASELINE_ALPHA: f64 = 0.3;

/// Per-actor and per-organisation sliding windows, and the rules over them.
pub struct Detector {
    rules: Rules,
    actors: HashMap<String, Actor>,
    orgs: HashMap<String, Organisation>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("actors", &self.actors.len())
            .field("organisations", &self.orgs.len())
            .finish_non_exhaustive()
    }
}

impl Detector {
    pub fn new(rules: Rules) -> Self {
        Detector {
            rules,
            actors: HashMap::new(),
            orgs: HashMap::new(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Takes one access event into account and returns the alerts it raises.
    ///
    /// An unauthenticated access (the API records an empty user and organisation `unknown`;
    /// older trails named the user `anonymous`, with organisation `unknown`) is nobody's:
    /// it is not counted for any actor or organisation and never sanctioned (the API counts
    /// such refusals by reason in `socle_api_unauthenticated_total`).
    pub fn observe(&mut self, o: &Observation) -> Vec<Alert> {
        if !o.is_authenticated() {
            return Vec::new();
        }
        let r = &self.rules;
        let window_us = r.window_secs * 1_000_000;
        let viewing = r.viewing_actions.iter().any(|a| a == &o.action);
        let viewed = if viewing && o.decision == Decision::Allow {
            o.person_ids.clone()
        } else {
            Vec::new()
        };
        let outside = r.outside_caseload_actions.iter().any(|a| a == &o.action)
            || o.reason
                .as_deref()
                .is_some_and(|reason| r.outside_caseload_reasons.iter().any(|x| x == reason));
        let seen = Seen {
            at: o.at,
            event_id: o.event_id.clone(),
            viewed,
            outside,
            refused: o.decision == Decision::Deny,
            large: o.person_ids.len() >= r.large_search_ids,
            unusual: unusual_hour(r, o.at),
        };
        let org_seen = Seen {
            at: seen.at,
            event_id: seen.event_id.clone(),
            viewed: seen.viewed.clone(),
            outside: false,
            refused: false,
            large: false,
            unusual: false,
        };

        let peer_baseline = self.peer_baseline(&o.organisation, &o.user);
        let actor = self.actors.entry(o.user.clone()).or_default();
        // The baseline learns from closed windows (fixed buckets of the window's length).
        let bucket = o.at.div_euclid(window_us);
        if bucket != actor.bucket {
            if actor.bucket_count > 0 {
                let c = actor.bucket_count as f64;
                actor.baseline = Some(match actor.baseline {
                    Some(b) => BASELINE_ALPHA * c + (1.0 - BASELINE_ALPHA) * b,
                    None => c,
                });
                actor.windows += 1;
            }
            actor.bucket = bucket;
            actor.bucket_count = 0;
        }
        actor.bucket_count += 1;
        actor.window.expire(o.at - window_us);
        actor.window.push(seen);

        let w = &actor.window;
        let lookups = w.seen.len();
        let figures = Figures {
            window_secs: r.window_secs,
            lookups,
            distinct_persons: w.persons.len(),
            outside_caseload: w.outside,
            outside_caseload_share: if lookups == 0 {
                0.0
            } else {
                w.outside as f64 / lookups as f64
            },
            large_searches: w.large,
            refusals: w.refused,
            unusual_hour_reads: w.unusual,
            baseline: actor
                .baseline
                .filter(|_| actor.windows >= r.baseline_min_windows),
            peer_baseline,
        };
        let mut fired: Vec<(&'static str, Option<SanctionKind>)> = Vec::new();
        if figures.distinct_persons > r.max_distinct_persons {
            fired.push(("actor.distinct_persons", Some(SanctionKind::Suspend)));
        }
        if lookups >= r.outside_caseload_min_lookups
            && figures.outside_caseload_share > r.max_outside_caseload_share
        {
            fired.push(("actor.outside_caseload", Some(SanctionKind::Suspend)));
        }
        if figures.large_searches > r.max_large_searches {
            fired.push(("actor.large_searches", Some(SanctionKind::Throttle)));
        }
        if figures.refusals > r.max_refusals {
            fired.push(("actor.refusals", Some(SanctionKind::RequireMfa)));
        }
        if figures.unusual_hour_reads > r.max_unusual_hour_reads {
            fired.push(("actor.unusual_hours", Some(SanctionKind::RequireMfa)));
        }
        if let Some(b) = figures.baseline {
            if lookups >= r.baseline_min_volume && lookups as f64 > r.baseline_factor * b {
                fired.push(("actor.volume_vs_baseline", Some(SanctionKind::Throttle)));
            }
        }
        if let Some(p) = peer_baseline {
            if lookups >= r.baseline_min_volume && lookups as f64 > r.peer_factor * p {
                fired.push(("actor.volume_vs_peers", None));
            }
        }
        let mut alerts = Vec::new();
        for (rule, response) in fired {
            if actor
                .fired
                .get(rule)
                .is_some_and(|last| o.at - last < window_us)
            {
                continue;
            }
            actor.fired.insert(rule, o.at);
            alerts.push(Alert {
                alert_id: Uuid::now_v7(),
                subject: o.user.clone(),
                user: Some(o.user.clone()),
                organisation: o.organisation.clone(),
                rule: rule.to_owned(),
                response,
                figures: figures.clone(),
                event_ids: actor.window.evidence(r.evidence_ids),
                raised_at: o.at,
            });
        }

        let org = self.orgs.entry(o.organisation.clone()).or_default();
        org.users.insert(o.user.clone());
        org.window.expire(o.at - window_us);
        org.window.push(org_seen);
        let distinct = org.window.persons.len();
        if distinct > r.org_max_distinct_persons
            && org
                .fired
                .get("organisation.distinct_persons")
                .is_none_or(|last| o.at - last >= window_us)
        {
            org.fired.insert("organisation.distinct_persons", o.at);
            alerts.push(Alert {
                alert_id: Uuid::now_v7(),
                subject: format!("org:{}", o.organisation),
                user: None,
                organisation: o.organisation.clone(),
                rule: "organisation.distinct_persons".into(),
                response: None,
                figures: Figures {
                    window_secs: r.window_secs,
                    lookups: org.window.seen.len(),
                    distinct_persons: distinct,
                    ..Figures::default()
                },
                event_ids: org.window.evidence(r.evidence_ids),
                raised_at: o.at,
            });
        }
        alerts
    }

    /// Mean baseline of the organisation's other actors with enough history.
    fn peer_baseline(&self, organisation: &str, user: &str) -> Option<f64> {
        let org = self.orgs.get(organisation)?;
        let (sum, n) = org
            .users
            .iter()
            .filter(|u| u.as_str() != user)
            .filter_map(|u| self.actors.get(u))
            .filter(|a| a.windows >= self.rules.baseline_min_windows)
            .filter_map(|a| a.baseline)
            .fold((0.0, 0u32), |(s, n), b| (s + b, n + 1));
        (n >= 3).then(|| sum / f64::from(n))
    }
}

fn unusual_hour(r: &Rules, at: i64) -> bool {
    let Some(t) = chrono::DateTime::from_timestamp_micros(at) else {
        return false;
    };
    let hour = (t.hour() as i32 + r.utc_offset_hours).rem_euclid(24) as u32;
    let (start, end) = (r.working_hours_start, r.working_hours_end);
    if start <= end {
        hour < start || hour >= end
    } else {
        hour < start && hour >= end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(user: &str, person: usize, at_secs: i64) -> Observation {
        Observation {
            event_id: format!("e-{user}-{person}-{at_secs}"),
            // 10:00 local on 2026-03-02.
            at: (1_772_442_000 + at_secs) * 1_000_000,
            user: user.into(),
            organisation: "org".into(),
            action: "person.read".into(),
            person_ids: vec![format!("p{person}")],
            decision: Decision::Allow,
            reason: None,
        }
    }

    #[test]
    fn bulk_reads_are_suspended_after_the_threshold_and_only_once() {
        let mut d = Detector::new(Rules::default());
        let mut suspended_at = None;
        let mut alerts = 0;
        for i in 0..1000 {
            for a in d.observe(&read("mallory", i, i as i64 / 10)) {
                alerts += 1;
                if a.response == Some(SanctionKind::Suspend) && suspended_at.is_none() {
                    suspended_at = Some(i + 1);
                    assert_eq!(a.figures.distinct_persons, 101);
                    assert_eq!(a.event_ids.len(), 101);
                }
            }
        }
        assert_eq!(suspended_at, Some(101));
        assert_eq!(alerts, 1, "one alert per rule per window");
    }

    #[test]
    fn unauthenticated_floods_are_nobodys() {
        let mut d = Detector::new(Rules::default());
        for i in 0..2000 {
            for user in ["", "anonymous"] {
                let mut o = read(user, i, i as i64 / 10);
                o.organisation = UNAUTHENTICATED_ORGANISATION.into();
                o.decision = Decision::Deny;
                o.reason = Some("auth.missing_token".into());
                assert!(d.observe(&o).is_empty());
            }
        }
        assert!(d.actors.is_empty() && d.orgs.is_empty());
    }

    #[test]
    fn rereading_the_same_people_is_not_bulk() {
        let mut d = Detector::new(Rules::default());
        for i in 0..2000 {
            assert!(d.observe(&read("alice", i % 30, i as i64)).is_empty());
        }
    }

    #[test]
    fn outside_caseload_share_and_refusals_fire_their_rules() {
        let mut d = Detector::new(Rules::default());
        let mut rules = Vec::new();
        for i in 0..30 {
            let mut o = read("eve", i, i as i64);
            o.action = "person.lookup_nir".into();
            rules.extend(d.observe(&o).into_iter().map(|a| a.rule));
        }
        assert!(
            rules.contains(&"actor.outside_caseload".to_owned()),
            "{rules:?}"
        );
        let mut rules = Vec::new();
        for i in 0..30 {
            let mut o = read("bob", i, i as i64);
            o.decision = Decision::Deny;
            rules.extend(d.observe(&o).into_iter().map(|a| a.rule));
        }
        assert_eq!(rules, vec!["actor.refusals".to_owned()]);
    }

    #[test]
    fn night_hours_are_unusual() {
        let r = Rules::default();
        // 02:00 UTC = 03:00 local.
        assert!(unusual_hour(&r, 1_772_416_800 * 1_000_000));
        // 09:00 UTC = 10:00 local.
        assert!(!unusual_hour(&r, 1_772_442_000 * 1_000_000));
    }
}
