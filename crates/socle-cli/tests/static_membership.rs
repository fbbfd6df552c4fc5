//! Static group membership, measured on the real `socle audit project` process: killed with
//! SIGKILL and started again at once, an instance with a `group_instance_id` gets its partition
//! back at once; with dynamic membership (an empty id) the dead member holds it until the
//! session timeout (10 s). Runs against the real Kafka, PostgreSQL and registry.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{create_database, create_topics, env, migrate, socle_command};
use socle_domain::{AccessEvent, Decision, Envelope};
use socle_kafka::{AccessTrail, Codec, EventProducer};
use sqlx::PgPool;
use uuid::Uuid;

struct Setup {
    db_url: String,
    access: String,
    persons: String,
}

fn socle(s: &Setup, args: &[&str]) -> Command {
    let mut command = socle_command(&s.db_url, args);
    command
        .env("SOCLE__TOPICS__ACCESS", &s.access)
        .env("SOCLE__TOPICS__PERSONS", &s.persons)
        // Any free port: the make-up stack may hold the default one.
        .env("SOCLE__HEALTH__AUDIT", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    command
}

fn audit_projector(s: &Setup, group: &str, instance: &str) -> Child {
    socle(s, &["audit", "project"])
        .env("SOCLE__AUDIT__GROUP", group)
        .env("SOCLE__AUDIT__GROUP_INSTANCE_ID", instance)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socle audit project starts")
}

fn access(n: usize) -> AccessEvent {
    AccessEvent {
        envelope: Envelope::new("90000100900019", Utc::now()).with_actor("static-membership"),
        request_id: format!("req-{n}"),
        user: "static.membership".to_owned(),
        organisation: "90000100900019".to_owned(),
        ecosystem: Some("france-travail".into()),
        purpose: Some("accompagnement".into()),
        auth_strength: "mfa".into(),
        action: "person.read".into(),
        resource: format!("/persons/{n}"),
        person_ids: vec![Uuid::now_v7().to_string()],
        decision: Decision::Allow,
        reason: None,
        policy_version: Some("test".into()),
        agreement_version: None,
    }
}

async fn projected(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit.access")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// Appends one access event and returns how long until the audit store holds `expected` rows.
async fn time_to_project(
    trail: &AccessTrail,
    pool: &PgPool,
    n: usize,
    expected: i64,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    trail
        .record(&access(n))
        .await
        .expect("access event appended");
    while projected(pool).await < expected {
        assert!(
            start.elapsed() < limit,
            "event {n} not projected within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// Starts an instance, lets it project one event, kills it (SIGKILL), starts it again at once,
/// and returns how long the restarted instance took to project the next event.
async fn restart_after_kill_9(
    s: &Setup,
    trail: &AccessTrail,
    pool: &PgPool,
    instance: &str,
    round: usize,
) -> Duration {
    let group = format!("it-static-{}", Uuid::new_v4().simple());
    let before = projected(pool).await;
    let mut first = audit_projector(s, &group, instance);
    // The first join of an empty group waits for the broker's initial rebalance delay.
    time_to_project(trail, pool, round * 10, before + 1, Duration::from_secs(60)).await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let mut second = audit_projector(s, &group, instance);
    let took = time_to_project(
        trail,
        pool,
        round * 10 + 1,
        before + 2,
        Duration::from_secs(60),
    )
    .await;
    second.kill().expect("SIGKILL");
    second.wait().expect("reaped");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_static_member_killed_and_restarted_gets_its_partition_back_at_once() {
    let brokers = env("SOCLE__KAFKA__BROKERS", "localhost:9092");
    let (mut admin, db_name, db_url) = create_database().await;
    let suffix = Uuid::new_v4().simple().to_string();
    let setup = Setup {
        db_url: db_url.clone(),
        access: format!("it-static-access-{suffix}"),
        persons: format!("it-static-persons-{suffix}"),
    };
    create_topics(
        &brokers,
        &[(setup.access.as_str(), 1), (setup.persons.as_str(), 1)],
    )
    .await;
    migrate(socle(&setup, &["migrate"]));
    let pool = socle_store::connect(&db_url, 2).await.expect("connect");
    let codec =
        Arc::new(Codec::new(&env("SOCLE__REGISTRY__URL", "http://localhost:8081")).expect("codec"));
    let producer = EventProducer::new(&brokers, Duration::from_secs(10)).expect("producer");
    let trail = AccessTrail::new(producer, codec, setup.access.clone());

    let instance = format!("it-static-{suffix}-0");
    let with_static = restart_after_kill_9(&setup, &trail, &pool, &instance, 1).await;
    let with_dynamic = restart_after_kill_9(&setup, &trail, &pool, "", 2).await;
    eprintln!("after kill -9: static member {with_static:?}, dynamic member {with_dynamic:?}");
    assert!(
        with_static < Duration::from_secs(5),
        "the restarted static member waited {with_static:?}"
    );
    // The scenario does exercise the session timeout: a dynamic member waits for it.
    assert!(
        with_dynamic > with_static,
        "static {with_static:?}, dynamic {with_dynamic:?}"
    );

    pool.close().await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}
