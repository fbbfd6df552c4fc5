//! `kill -9` of the real `socle project` process at random points during a load, several times,
//! then the final state compared with what was published: nothing lost, nothing doubled.
//! Runs against the real Kafka, PostgreSQL and registry (`make test` exports their addresses).

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use common::{create_database, create_topics, env, migrate, socle_command};
use rand::Rng;
use socle_domain::PersonIdentity;
use socle_ingest::{Publisher, Registration};
use socle_kafka::{Codec, EventProducer};
use uuid::Uuid;

struct Setup {
    db_url: String,
    db_name: String,
    topic: String,
    group: String,
}

fn socle(s: &Setup, args: &[&str]) -> Command {
    let mut command = socle_command(&s.db_url, args);
    command
        // Any free port: the make-up stack may hold the default one.
        .env("SOCLE__HEALTH__PROJECTOR", "127.0.0.1:0");
    command
}

fn projector(s: &Setup) -> Child {
    socle(s, &["project"])
        .env("SOCLE__TOPICS__PERSONS", &s.topic)
        .env("SOCLE__PROJECTOR__GROUP", &s.group)
        .env("SOCLE__PROJECTOR__BATCH_SIZE", "40")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socle project starts")
}

fn projector_output(s: &Setup) -> std::process::Output {
    socle(s, &["project"])
        .env("SOCLE__TOPICS__PERSONS", &s.topic)
        .env("RUST_LOG", "warn")
        .output()
        .expect("socle project runs")
}

fn registration(n: u32, person_id: Uuid, family_name: &str) -> Registration {
    let first13 = format!("2850175056{:03}", 1 + n % 999);
    let key = 97 - first13.parse::<u64>().expect("digits") % 97;
    let mut identity = PersonIdentity {
        nir: Some(format!("{first13}{key:02}")),
        family_name: family_name.to_owned(),
        given_name: "Sacha".into(),
        birth_date: 0,
        email: None,
        phone: None,
    };
    identity.set_birth_date(NaiveDate::from_ymd_opt(1985, 1, 15).expect("date"));
    Registration {
        person_id,
        operator: "france-travail".into(),
        registering_organisation: "90000100900019".into(),
        registered_on: NaiveDate::from_ymd_opt(2026, 3, 2).expect("date"),
        commune: "75056".into(),
        departement: "75".into(),
        identity,
        actor: Some("kill9".into()),
        occurred_at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_at_random_points_loses_nothing_and_doubles_nothing() {
    let brokers = env("SOCLE__KAFKA__BROKERS", "localhost:9092");
    let (mut admin, db_name, db_url) = create_database().await;
    let pool = socle_store::connect(&db_url, 4).await.expect("connect");
    let topic = format!("it-kill9-{}", Uuid::new_v4().simple());
    create_topics(&brokers, &[(topic.as_str(), 3)]).await;
    let setup = Setup {
        db_url,
        db_name,
        topic: topic.clone(),
        group: format!("it-kill9-{}", Uuid::new_v4().simple()),
    };
    // The one step that creates every schema, as `make up` runs it; a component alone refuses
    // to start on a database that was not migrated.
    let refused = projector_output(&setup);
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("socle migrate"),
        "an unmigrated database is refused, naming `socle migrate`: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    migrate(socle(&setup, &["migrate"]));
    let codec = std::sync::Arc::new(
        Codec::new(&env("SOCLE__REGISTRY__URL", "http://localhost:8081")).expect("codec"),
    );
    let producer = EventProducer::new(&brokers, Duration::from_secs(10)).expect("producer");
    let publisher = Publisher::new(pool.clone(), codec, producer, topic.clone());

    let mut expected: HashMap<Uuid, (Uuid, String)> = HashMap::new();
    let mut people: Vec<Uuid> = Vec::new();
    let mut published = 0i64;
    let mut rng = rand::thread_rng();
    for round in 0..5u32 {
        let mut child = projector(&setup);
        for n in 0..80 {
            // New people, and new versions of earlier ones.
            let (person, name) = if n % 4 == 3 && !people.is_empty() {
                (
                    people[rng.gen_range(0..people.len())],
                    format!("Round{round}N{n}"),
                )
            } else {
                let p = Uuid::now_v7();
                people.push(p);
                (p, format!("Nouveau{round}N{n}"))
            };
            let p = publisher
                .register(registration(round * 100 + n, person, &name))
                .await
                .expect("published");
            expected.insert(person, (p.event_id, name));
            published += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1500))).await;
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
    }
    let mut child = projector(&setup);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let done: i64 = socle_store::offsets::load(&pool, &setup.group, &topic)
            .await
            .expect("offsets")
            .iter()
            .map(|(_, o)| o)
            .sum();
        if done == published {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "projector did not catch up: {done}/{published}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().expect("kill");
    child.wait().expect("reaped");

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM core.applied_events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(applied, published, "every event applied exactly once");
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT person_id, identity_family_name FROM eco_france_travail.persons")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(rows.len(), expected.len(), "one row per person");
    for (person, name) in rows {
        assert_eq!(expected[&person].1, name, "latest state of {person}");
    }
    let last: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT person_id, last_event_id FROM core.persons")
            .fetch_all(&pool)
            .await
            .expect("core");
    for (person, event) in last {
        assert_eq!(expected[&person].0, event, "last event of {person}");
    }
    pool.close().await;
    let _ = sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        setup.db_name
    ))
    .execute(&mut admin)
    .await;
}
