//! Bulk-extraction detection end to end, on the real services: the 2024 pattern (one advisor
//! account reading thousands of records as fast as the API answers) is replayed through the
//! access trail while `socle detect` runs; each read first asks the sanction guard, as the API
//! does, and appends its access event (acks=all) before "answering". The account must be
//! suspended after at most a few hundred reads; the reads and seconds until suspension are
//! printed (the benchmark in bench/trail/ records them). Then a reviewer lifts the suspension.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use socle_detect::runner::{DetectConfig, Progress};
use socle_detect::{Rules, SanctionGuard, Verdict};
use socle_domain::{AccessEvent, Decision, Envelope};
use tokio_util::sync::CancellationToken;

fn read(user: &str, n: usize) -> AccessEvent {
    AccessEvent {
        envelope: Envelope::new(ORG, Utc::now()).with_actor(user),
        request_id: format!("req-{n}"),
        user: user.to_owned(),
        organisation: ORG.to_owned(),
        ecosystem: Some("cap-emploi".into()),
        purpose: Some("accompagnement".into()),
        auth_strength: "password".into(),
        action: "person.read".into(),
        resource: format!("/persons/{n}"),
        person_ids: vec![uuid::Uuid::now_v7().to_string()],
        decision: Decision::Allow,
        reason: None,
        policy_version: Some("test".into()),
        agreement_version: None,
    }
}

#[tokio::test]
async fn the_2024_extraction_pattern_is_suspended_within_a_few_hundred_reads() {
    let db = TestDb::new().await;
    socle_detect::migrate(&db.pool)
        .await
        .expect("detect migrations");
    let access = topic("detect-access", 3).await;
    let alerts = topic("detect-alerts", 1).await;
    let sanctions = topic("detect-sanctions", 1).await;
    let progress = Arc::new(Progress::default());
    let shutdown = CancellationToken::new();
    let config = DetectConfig {
        brokers: brokers(),
        access_topic: access.clone(),
        alerts_topic: alerts.clone(),
        sanctions_topic: sanctions.clone(),
        group: format!("detect-{}", uuid::Uuid::new_v4().simple()),
        group_instance_id: None,
        // Every hour counts as working time here, so that the test does not depend on the
        // clock: at night the unusual-hours rule would demand an MFA step-up first.
        rules: Rules {
            working_hours_start: 0,
            working_hours_end: 24,
            ..Rules::default()
        },
    };
    let detector = tokio::spawn(socle_detect::runner::run(
        config,
        db.pool.clone(),
        codec(),
        producer(),
        Some(progress.clone()),
        shutdown.clone(),
    ));
    // A normal colleague, reading the same few people all along: never sanctioned.
    let trail = socle_kafka::AccessTrail::new(producer(), codec(), &access);
    let guard = SanctionGuard::new(
        db.pool.clone(),
        Duration::from_millis(200),
        Duration::from_secs(2),
    );
    let thief = "cap.emploi.advisor.compromised";
    let colleague = "cap.emploi.advisor.normal";

    let started = Instant::now();
    let mut suspended = None;
    for n in 0..5000 {
        assert!(
            !detector.is_finished(),
            "the detector stopped: {:?}",
            detector.await
        );
        match guard.check(thief, None).await.expect("sanctions readable") {
            Verdict::Allow => {}
            Verdict::Suspended { reason, .. } => {
                // Every iteration reads once: `n` reads were made before this check.
                suspended = Some((n, started.elapsed(), reason));
                break;
            }
            other => panic!("unexpected verdict {other:?}"),
        }
        trail
            .record(&read(thief, n))
            .await
            .expect("access event appended");
        if n % 50 == 0 {
            let mut e = read(colleague, n % 3);
            e.person_ids = vec![format!("caseload-{}", n % 3)];
            trail.record(&e).await.expect("access event appended");
        }
    }
    let (reads, elapsed, reason) = suspended.expect("the account was suspended");
    println!(
        "suspended after {reads} reads, {:.2} s after the first read (rule {reason})",
        elapsed.as_secs_f64()
    );
    assert!(reads <= 400, "suspended only after {reads} reads");
    assert!(
        reads > Rules::default().max_distinct_persons,
        "suspended before the threshold"
    );
    assert_eq!(reason, "actor.distinct_persons");
    assert_eq!(
        guard.check(colleague, None).await.expect("readable"),
        Verdict::Allow
    );

    // The alert carries its evidence: the window's figures and the access event ids.
    let (figures, ids): (serde_json::Value, Vec<String>) = sqlx::query_as(
        "SELECT figures, event_ids FROM detect.alerts WHERE subject = $1 AND rule = 'actor.distinct_persons'",
    )
    .bind(thief)
    .fetch_one(&db.pool)
    .await
    .expect("alert recorded");
    assert_eq!(figures["distinct_persons"], 101);
    assert_eq!(ids.len(), 101);

    // A reviewer lifts it: recorded, published, and the API serves the account again.
    let lifted = socle_detect::runner::lift(
        &db.pool,
        &codec(),
        &producer(),
        &sanctions,
        thief,
        None,
        "reviewer.dpo",
        "password reset, MFA enrolled",
    )
    .await
    .expect("lifted");
    assert_eq!(lifted.len(), 1);
    guard.invalidate(thief);
    assert_eq!(
        guard.check(thief, None).await.expect("readable"),
        Verdict::Allow
    );
    let again = socle_detect::runner::lift(
        &db.pool,
        &codec(),
        &producer(),
        &sanctions,
        thief,
        None,
        "r",
        "r",
    )
    .await;
    assert!(
        matches!(again, Err(socle_detect::Error::NothingToLift(_))),
        "{again:?}"
    );

    // Both changes are events on the sanctions topic, the alert on the alerts topic.
    let t = Duration::from_secs(30);
    let changes = socle_seal::read::entries(&brokers(), &sanctions, None, t)
        .await
        .expect("sanctions");
    let mut kinds = Vec::new();
    for e in &changes {
        let s: socle_detect::events::SanctionChanged = codec()
            .decode_as(
                e.value.as_deref().expect("value"),
                &socle_detect::events::SANCTION_CHANGED,
            )
            .await
            .expect("decodes");
        assert_eq!(s.user, thief);
        kinds.push(format!("{} {}", s.change, s.kind));
    }
    assert_eq!(kinds, vec!["imposed suspend", "lifted suspend"]);
    eventually(
        Duration::from_secs(10),
        "alert on the alerts topic",
        || async {
            !socle_seal::read::entries(&brokers(), &alerts, None, t)
                .await
                .expect("alerts")
                .is_empty()
        },
    )
    .await;
    shutdown.cancel();
    detector.await.expect("joined").expect("detector ran");
    db.drop_db().await;
}
