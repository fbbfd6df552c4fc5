//! Synthetic trails: a day of normal advisor work, and the 2024 extraction pattern. Used by the
//! end-to-end test and by `bench/trail/` to measure reads-until-suspension and false positives.
//!
//! A normal day, per advisor (local time, UTC+1): arrives 08:00–09:30, leaves 16:30–18:30 (one in
//! ten stays until 20:30), lunch break; 6–12 appointments, each 1–4 reads of one person of the
//! caseload over twenty minutes, sometimes a search returning 1–5 of them, sometimes a write;
//! one or two file reviews (10–25 people of the caseload in 20–40 minutes); the caseload listed
//! 1–3 times; 0–2 NIR lookups; 0–3 refusals (someone outside the caseload).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use socle_domain::Decision;

use crate::detector::{Detector, Observation, SanctionKind};
use crate::rules::Rules;

/// Midnight local time (UTC+1) on Monday 2 March 2026, in microseconds.
pub const DAY_START: i64 = 1_772_406_000 * 1_000_000;

const MINUTE: i64 = 60 * 1_000_000;

fn obs(
    user: &str,
    org: &str,
    at: i64,
    action: &str,
    ids: Vec<String>,
    decision: Decision,
) -> Observation {
    Observation {
        event_id: uuid::Uuid::now_v7().to_string(),
        at,
        user: user.to_owned(),
        organisation: org.to_owned(),
        action: action.to_owned(),
        person_ids: ids,
        decision,
        reason: (decision == Decision::Deny).then(|| "scope.outside_caseload".to_owned()),
    }
}

/// One day of normal work for `orgs` × `advisors_per_org` advisors, each following `caseload`
/// people of their own, in time order.
pub fn normal_day(
    orgs: usize,
    advisors_per_org: usize,
    caseload: usize,
    seed: u64,
) -> Vec<Observation> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for o in 0..orgs {
        let org = format!("9{o:013}");
        for a in 0..advisors_per_org {
            let user = format!("advisor-{o}-{a}");
            let people: Vec<String> = (0..caseload)
                .map(|i| format!("person-{o}-{a}-{i}"))
                .collect();
            let pick = |rng: &mut StdRng| people[rng.gen_range(0..people.len())].clone();
            let start = DAY_START + rng.gen_range(8 * 60..9 * 60 + 30) * MINUTE;
            let end = if rng.gen_bool(0.1) {
                DAY_START + (20 * 60 + 30) * MINUTE
            } else {
                DAY_START + rng.gen_range(16 * 60 + 30..18 * 60 + 30) * MINUTE
            };
            let lunch = DAY_START + rng.gen_range(12 * 60..13 * 60) * MINUTE;
            let at = |rng: &mut StdRng| loop {
                let t = rng.gen_range(start..end);
                if !(lunch..lunch + 60 * MINUTE).contains(&t) {
                    return t;
                }
            };
            for _ in 0..rng.gen_range(6..=12) {
                let t0 = at(&mut rng);
                let who = pick(&mut rng);
                for k in 0..rng.gen_range(1..=4) {
                    out.push(obs(
                        &user,
                        &org,
                        t0 + k * 5 * MINUTE,
                        "person.read",
                        vec![who.clone()],
                        Decision::Allow,
                    ));
                }
                if rng.gen_bool(0.3) {
                    let ids = (0..rng.gen_range(1..=5)).map(|_| pick(&mut rng)).collect();
                    out.push(obs(
                        &user,
                        &org,
                        t0 - MINUTE,
                        "person.search",
                        ids,
                        Decision::Allow,
                    ));
                }
                if rng.gen_bool(0.1) {
                    out.push(obs(
                        &user,
                        &org,
                        t0 + 10 * MINUTE,
                        "person.write",
                        vec![who.clone()],
                        Decision::Allow,
                    ));
                }
            }
            for _ in 0..rng.gen_range(1..=2) {
                let t0 = at(&mut rng);
                let n = rng.gen_range(10..=25);
                let span = rng.gen_range(20..=40) * MINUTE;
                for k in 0..n {
                    let who = pick(&mut rng);
                    out.push(obs(
                        &user,
                        &org,
                        t0 + span * k / n,
                        "person.read",
                        vec![who],
                        Decision::Allow,
                    ));
                }
            }
            for _ in 0..rng.gen_range(1..=3) {
                let t = at(&mut rng);
                out.push(obs(
                    &user,
                    &org,
                    t,
                    "caseload.list",
                    people.clone(),
                    Decision::Allow,
                ));
            }
            for _ in 0..rng.gen_range(0..=2) {
                let t = at(&mut rng);
                out.push(obs(
                    &user,
                    &org,
                    t,
                    "person.lookup_nir",
                    vec![format!("outside-{}", rng.gen::<u32>())],
                    Decision::Allow,
                ));
            }
            for _ in 0..rng.gen_range(0..=3) {
                let t = at(&mut rng);
                out.push(obs(
                    &user,
                    &org,
                    t,
                    "person.read",
                    vec![format!("outside-{}", rng.gen::<u32>())],
                    Decision::Deny,
                ));
            }
        }
    }
    out.sort_by_key(|o| o.at);
    out
}

/// The 2024 pattern: one account reading `count` different people, `per_second` a second,
/// from `start` (microseconds).
pub fn extraction(
    user: &str,
    org: &str,
    count: usize,
    per_second: f64,
    start: i64,
) -> Vec<Observation> {
    (0..count)
        .map(|i| {
            let at = start + (i as f64 / per_second * 1e6) as i64;
            obs(
                user,
                org,
                at,
                "person.read",
                vec![format!("victim-{i}")],
                Decision::Allow,
            )
        })
        .collect()
}

/// What the detector made of a trail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub events: usize,
    pub actors: usize,
    /// Actors with at least one alert.
    pub actors_alerted: usize,
    /// Actors with at least one sanction asked for, by kind.
    pub actors_throttled: usize,
    pub actors_mfa: usize,
    pub actors_suspended: usize,
    pub alerts: usize,
    /// Rule codes and how often they fired.
    pub by_rule: Vec<(String, usize)>,
}

/// Runs `trail` through a fresh detector with `rules`.
pub fn judge(rules: &Rules, trail: &[Observation]) -> Outcome {
    use std::collections::{BTreeMap, HashSet};
    let mut d = Detector::new(rules.clone());
    let actors: HashSet<&str> = trail.iter().map(|o| o.user.as_str()).collect();
    let mut alerted = HashSet::new();
    let mut by_kind: BTreeMap<SanctionKind, HashSet<String>> = BTreeMap::new();
    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    let mut alerts = 0;
    for o in trail {
        for a in d.observe(o) {
            alerts += 1;
            *by_rule.entry(a.rule.clone()).or_default() += 1;
            alerted.insert(a.subject.clone());
            if let (Some(k), Some(u)) = (a.response, a.user) {
                by_kind.entry(k).or_default().insert(u);
            }
        }
    }
    let n = |k| by_kind.get(&k).map_or(0, HashSet::len);
    Outcome {
        events: trail.len(),
        actors: actors.len(),
        actors_alerted: alerted.len(),
        actors_throttled: n(SanctionKind::Throttle),
        actors_mfa: n(SanctionKind::RequireMfa),
        actors_suspended: n(SanctionKind::Suspend),
        alerts,
        by_rule: by_rule.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_normal_day_raises_no_alert_and_the_extraction_is_stopped() {
        let rules = Rules::default();
        let day = normal_day(10, 20, 100, 7);
        let outcome = judge(&rules, &day);
        assert_eq!(outcome.actors, 200);
        assert_eq!(outcome.actors_alerted, 0, "{outcome:?}");

        let mut trail = day;
        trail.extend(extraction(
            "advisor-3-4",
            "90000000000003",
            3000,
            20.0,
            DAY_START + 14 * 60 * MINUTE,
        ));
        trail.sort_by_key(|o| o.at);
        let outcome = judge(&rules, &trail);
        assert_eq!(outcome.actors_suspended, 1, "{outcome:?}");
    }
}
