//! Projection benchmark (docs/benchmarks.md, "Projection"): see bench/projection/run.sh.
//!
//! 1. Generates a backlog of synthetic person events (4 per person: registration, follow,
//!    situation, contact; personal fields sealed with per-person keys) on a fresh topic.
//! 2. Projects it into a fresh database with the real projector: events/s into all ecosystems.
//! 3. Baseline in the same run: the PostgreSQL ceiling, a plain loop writing the same number of
//!    rows per batch (one UNNEST upsert of the batch's persons with the same columns as the
//!    France Travail model, plus the offsets), nothing else.
//! 4. Full rebuild of every model with `socle replay` code, timed.
//! 5. Event-to-visible latency at a steady offered load (p50/p99).
//!
//! Prints one JSON object on stdout.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use chrono::{NaiveDate, TimeZone, Utc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use socle_domain::time::{to_days, to_micros};
use socle_domain::{DataKey, PersonIdentity};
use socle_kafka::codec::to_datum;
use socle_kafka::schemas::{person_event, PERSON_CONTACT, PERSON_HEALTH, PERSON_IDENTITY};
use socle_kafka::Codec;
use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn envelope(at: i64) -> Value {
    Value::Record(vec![
        ("event_id".into(), Value::String(Uuid::now_v7().to_string())),
        ("occurred_at".into(), Value::TimestampMicros(at)),
        ("recorded_at".into(), Value::TimestampMicros(at)),
        (
            "producer_organisation".into(),
            Value::String("90000100900019".into()),
        ),
        ("actor".into(), Value::Null),
        ("correlation_id".into(), Value::Null),
        ("causation_id".into(), Value::Null),
        ("schema_version".into(), Value::Int(1)),
    ])
}

fn sealed(s: &socle_domain::Sealed) -> Value {
    Value::Record(vec![
        ("key_id".into(), Value::String(s.key_id.clone())),
        ("algorithm".into(), Value::String(s.algorithm.clone())),
        ("content".into(), Value::String(s.content.clone())),
        ("nonce".into(), Value::Bytes(s.nonce.clone())),
        ("ciphertext".into(), Value::Bytes(s.ciphertext.clone())),
    ])
}

const ML: &str = "90000200100015";
const CE: &str = "90000400100010";

/// The 4 events of person `i`, as (record name, value).
fn person_events(
    i: usize,
    person: Uuid,
    key: &DataKey,
    base: i64,
) -> Res<Vec<(&'static str, Value)>> {
    let s = |v: &str| Value::String(v.to_owned());
    let young = i % 3 == 0;
    let birth = NaiveDate::from_ymd_opt(
        if young { 2005 } else { 1980 + (i % 20) as i32 },
        1 + (i % 12) as u32,
        1 + (i % 28) as u32,
    )
    .ok_or("date")?;
    let first13 = format!(
        "1{:02}{:02}75056{:03}",
        birth.format("%y"),
        birth.format("%m"),
        1 + i % 999
    );
    let nir_key = 97 - first13.parse::<u64>()? % 97;
    let mut identity = PersonIdentity {
        nir: Some(format!("{first13}{nir_key:02}")),
        family_name: format!("Nom{i}"),
        given_name: "Camille".into(),
        birth_date: 0,
        email: Some(format!("p{i}@example.invalid")),
        phone: None,
    };
    identity.set_birth_date(birth);
    let id_sealed = key.seal(
        person,
        "socle.pii.PersonIdentity",
        &to_datum(&identity, &PERSON_IDENTITY)?,
    )?;
    let (dep, commune) = if i % 5 == 0 {
        ("93", "93066")
    } else {
        ("75", "75056")
    };
    let (org, eco) = if young {
        (ML, "missions-locales")
    } else if i % 3 == 1 {
        (CE, "cap-emploi")
    } else {
        ("90000100900019", "france-travail")
    };
    let health = Value::Record(vec![
        ("rqth".into(), Value::Boolean(i % 3 == 1)),
        ("rqth_until".into(), Value::Null),
        ("boeth".into(), Value::Null),
    ])
    .resolve(&PERSON_HEALTH.schema)?;
    let health_sealed = key.seal(
        person,
        "socle.pii.PersonHealthSituation",
        &apache_avro::to_avro_datum(&PERSON_HEALTH.schema, health)?,
    )?;
    let contact = Value::Record(vec![
        (
            "email".into(),
            Value::String(format!("new{i}@example.invalid")),
        ),
        ("phone".into(), Value::Null),
        (
            "address_line".into(),
            Value::String(format!("{} rue de la Paix", 1 + i % 90)),
        ),
        ("address_complement".into(), Value::Null),
        ("postal_code".into(), Value::String("75002".into())),
    ])
    .resolve(&PERSON_CONTACT.schema)?;
    let contact_sealed = key.seal(
        person,
        "socle.pii.PersonContact",
        &apache_avro::to_avro_datum(&PERSON_CONTACT.schema, contact)?,
    )?;
    let pid = Value::String(person.to_string());
    let day =
        |d: i32| Value::Date(to_days(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default()) + d);
    Ok(vec![
        (
            "socle.person.PersonRegistered",
            Value::Record(vec![
                ("envelope".into(), envelope(base)),
                ("person_id".into(), pid.clone()),
                ("operator".into(), s("france-travail")),
                ("registering_organisation".into(), s("90000100900019")),
                ("registered_on".into(), day(0)),
                ("commune".into(), s(commune)),
                ("departement".into(), s(dep)),
                ("personal".into(), sealed(&id_sealed)),
            ]),
        ),
        (
            "socle.person.FollowStarted",
            Value::Record(vec![
                ("envelope".into(), envelope(base + 1)),
                ("person_id".into(), pid.clone()),
                (
                    "follow_id".into(),
                    Value::String(Uuid::now_v7().to_string()),
                ),
                ("organisation".into(), s(org)),
                ("ecosystem".into(), s(eco)),
                ("activity".into(), s("accompagnement")),
                ("territory".into(), s(dep)),
                ("purpose".into(), s("accompagnement")),
                ("started_on".into(), day(1)),
                ("until".into(), Value::Null),
            ]),
        ),
        (
            "socle.person.PersonSituationUpdated",
            Value::Record(vec![
                ("envelope".into(), envelope(base + 2)),
                ("person_id".into(), pid.clone()),
                ("effective_on".into(), day(2)),
                ("registration_category".into(), s("A")),
                ("rsa_beneficiary".into(), Value::Boolean(i % 2 == 0)),
                ("personal".into(), sealed(&health_sealed)),
            ]),
        ),
        (
            "socle.person.PersonContactUpdated",
            Value::Record(vec![
                ("envelope".into(), envelope(base + 3)),
                ("person_id".into(), pid),
                ("commune".into(), s(commune)),
                ("departement".into(), s(dep)),
                ("personal".into(), sealed(&contact_sealed)),
            ]),
        ),
    ])
}

async fn create_topic(brokers: &str, name: &str, partitions: i32) -> Res<()> {
    let admin: AdminClient<DefaultClientContext> = socle_kafka::client_config(brokers).create()?;
    for r in admin
        .create_topics(
            [&NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?
    {
        r.map_err(|(n, e)| format!("{n}: {e}"))?;
    }
    Ok(())
}

async fn fresh_db(admin_url: &str) -> Res<(PgPool, String)> {
    let name = format!("socle_bench_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let url = format!("{}/{name}", admin_url.rsplit_once('/').ok_or("db url")?.0);
    let pool = socle_store::connect(&url, 16).await?;
    socle_store::migrate(&pool).await?;
    Ok((pool, name))
}

/// Publishes the events of persons `range`, registering their keys; returns how many.
async fn publish(
    pool: &PgPool,
    codec: &Codec,
    producer: &FutureProducer,
    topic: &str,
    range: std::ops::Range<usize>,
) -> Res<(usize, Vec<Uuid>)> {
    let base = to_micros(
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
            .single()
            .ok_or("time")?,
    );
    let mut sent = 0;
    let mut people = Vec::new();
    for chunk in range.collect::<Vec<_>>().chunks(2000) {
        let keys: Vec<(Uuid, DataKey)> = chunk
            .iter()
            .map(|_| (Uuid::now_v7(), DataKey::generate()))
            .collect();
        sqlx::query("INSERT INTO keys.person_keys (person_id, key_id, key) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bytea[])")
            .bind(keys.iter().map(|(p, _)| *p).collect::<Vec<_>>())
            .bind(keys.iter().map(|(_, k)| k.key_id.clone()).collect::<Vec<_>>())
            .bind(keys.iter().map(|(_, k)| k.expose_bytes().to_vec()).collect::<Vec<_>>())
            .execute(pool)
            .await?;
        let mut pending = Vec::new();
        for (i, (person, key)) in chunk.iter().zip(&keys) {
            for (name, value) in person_events(*i, *person, key, base + (*i as i64) * 10)? {
                let contract = person_event(name).ok_or("contract")?;
                let payload = codec.encode_value(topic, contract, value).await?;
                let key = person.to_string();
                pending.push(async move {
                    producer
                        .send(
                            FutureRecord::to(topic).key(&key).payload(&payload),
                            Duration::from_secs(30),
                        )
                        .await
                        .map_err(|(e, _)| e)
                });
            }
            people.push(*person);
        }
        for r in futures::future::join_all(pending).await {
            r?;
            sent += 1;
        }
    }
    Ok((sent, people))
}

async fn stored(pool: &PgPool, group: &str, topic: &str) -> Res<i64> {
    Ok(socle_store::offsets::load(pool, group, topic)
        .await?
        .iter()
        .map(|(_, o)| o)
        .sum())
}

/// The ceiling: a plain loop writing the rows the projection writes, batch by batch, with UNNEST
/// upserts and the offsets, nothing else (no Kafka, no Avro, no keys, no scope evaluation):
/// the applied event ids, one core row per person of the batch (24 columns), and, for each
/// ecosystem, the share of those persons that ended up in its model (a 20-column row, a link
/// and a notice each), then the offsets.
async fn ceiling(
    pool: &PgPool,
    persons: &[Uuid],
    events: usize,
    batch: usize,
    shares: &[f64],
) -> Res<f64> {
    let mut ddl = vec![
        "CREATE TABLE ceiling_events (event_id uuid PRIMARY KEY)".to_owned(),
        "CREATE TABLE ceiling_core (person_id uuid PRIMARY KEY, t1 text, t2 text, t3 text, t4 text, t5 text, t6 text, t7 text, t8 text, d1 date, d2 date, b1 boolean, x1 bytea, x2 bytea, x3 bytea, s1 timestamptz, s2 timestamptz, s3 timestamptz, s4 timestamptz, s5 timestamptz, s6 timestamptz, s7 timestamptz, s8 timestamptz, u1 uuid, s9 timestamptz)".to_owned(),
        "CREATE TABLE ceiling_offsets (partition int PRIMARY KEY, next_offset bigint)".to_owned(),
        "INSERT INTO ceiling_offsets SELECT g, 0 FROM generate_series(0, 5) g".to_owned(),
    ];
    for e in 0..shares.len() {
        ddl.push(format!("CREATE TABLE ceiling_eco{e} (person_id uuid PRIMARY KEY, t1 text, t2 text, t3 text, t4 text, t5 text, t6 text, t7 text, t8 text, t9 text, t10 text, t11 text, t12 text, d1 date, d2 date, d3 date, b1 boolean, b2 boolean, v text, at timestamptz)"));
        ddl.push(format!("CREATE TABLE ceiling_links{e} (person_id uuid, organisation text, kind text, ref_id uuid, PRIMARY KEY (person_id, kind, ref_id))"));
        ddl.push(format!("CREATE TABLE ceiling_notices{e} (seq bigserial PRIMARY KEY, person_id uuid, kind text, v text)"));
    }
    for statement in ddl {
        sqlx::query(&statement).execute(pool).await?;
    }
    let per_person = (events / persons.len().max(1)).max(1);
    let per_event: Vec<Uuid> = persons
        .iter()
        .flat_map(|p| std::iter::repeat_n(*p, per_person))
        .collect();
    let started = Instant::now();
    let mut written = 0usize;
    for chunk in per_event.chunks(batch) {
        let mut ids: Vec<Uuid> = chunk.to_vec();
        ids.dedup();
        let n = ids.len();
        let text = vec![Some("valeur".to_owned()); n];
        let date = vec![NaiveDate::from_ymd_opt(2000, 1, 1); n];
        let boolean = vec![Some(true); n];
        let bytes = vec![Some(vec![7u8; 120]); n];
        let now = vec![Some(Utc::now()); n];
        let event_ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO ceiling_events SELECT * FROM UNNEST($1::uuid[]) ON CONFLICT DO NOTHING",
        )
        .bind(&event_ids)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO ceiling_core AS r SELECT * FROM UNNEST($1::uuid[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $3::date[], $3::date[], $4::boolean[], $5::bytea[], $5::bytea[], $5::bytea[], $6::timestamptz[], $6::timestamptz[], $6::timestamptz[], $6::timestamptz[], $6::timestamptz[], $6::timestamptz[], $6::timestamptz[], $6::timestamptz[], $1::uuid[], $6::timestamptz[]) \
                     ON CONFLICT (person_id) DO UPDATE SET t1 = EXCLUDED.t1, t2 = EXCLUDED.t2, t3 = EXCLUDED.t3, t4 = EXCLUDED.t4, t5 = EXCLUDED.t5, t6 = EXCLUDED.t6, t7 = EXCLUDED.t7, t8 = EXCLUDED.t8, d1 = EXCLUDED.d1, d2 = EXCLUDED.d2, b1 = EXCLUDED.b1, x1 = EXCLUDED.x1, x2 = EXCLUDED.x2, x3 = EXCLUDED.x3, s1 = EXCLUDED.s1, s9 = EXCLUDED.s9, u1 = EXCLUDED.u1")
            .bind(&ids)
            .bind(&text)
            .bind(&date)
            .bind(&boolean)
            .bind(&bytes)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        for (e, share) in shares.iter().enumerate() {
            let k = ((n as f64) * share).round() as usize;
            let eco_ids = &ids[..k.min(n)];
            if eco_ids.is_empty() {
                continue;
            }
            sqlx::query(&format!("INSERT INTO ceiling_eco{e} SELECT * FROM UNNEST($1::uuid[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $2::text[], $3::date[], $3::date[], $3::date[], $4::boolean[], $4::boolean[], $2::text[], $5::timestamptz[]) \
                                  ON CONFLICT (person_id) DO UPDATE SET t1 = EXCLUDED.t1, t2 = EXCLUDED.t2, t3 = EXCLUDED.t3, t4 = EXCLUDED.t4, t5 = EXCLUDED.t5, t6 = EXCLUDED.t6, t7 = EXCLUDED.t7, t8 = EXCLUDED.t8, t9 = EXCLUDED.t9, t10 = EXCLUDED.t10, t11 = EXCLUDED.t11, t12 = EXCLUDED.t12, d1 = EXCLUDED.d1, d2 = EXCLUDED.d2, d3 = EXCLUDED.d3, b1 = EXCLUDED.b1, b2 = EXCLUDED.b2, v = EXCLUDED.v, at = EXCLUDED.at"))
                .bind(eco_ids)
                .bind(&text[..eco_ids.len()])
                .bind(&date[..eco_ids.len()])
                .bind(&boolean[..eco_ids.len()])
                .bind(&now[..eco_ids.len()])
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "DELETE FROM ceiling_links{e} WHERE person_id = ANY($1)"
            ))
            .bind(eco_ids)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "INSERT INTO ceiling_links{e} SELECT p, 'o', 'follow', p FROM UNNEST($1::uuid[]) p"
            ))
            .bind(eco_ids)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!("INSERT INTO ceiling_notices{e} (person_id, kind, v) SELECT p, 'updated', 'v' FROM UNNEST($1::uuid[]) p"))
                .bind(eco_ids)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE ceiling_offsets SET next_offset = next_offset + $1")
            .bind(chunk.len() as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        written += chunk.len();
    }
    Ok(written as f64 / started.elapsed().as_secs_f64())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Res<()> {
    let persons = arg("--persons", 250_000);
    let batch = arg("--batch", 1000);
    let latency_rate = arg("--latency-rate", 400);
    let latency_seconds = arg("--latency-seconds", 20);
    let brokers = env("SOCLE__KAFKA__BROKERS", "localhost:9092");
    let db_url = env(
        "SOCLE__DATABASE__URL",
        "postgres://socle:socle@localhost:5432/socle",
    );
    let codec = Arc::new(Codec::new(&env(
        "SOCLE__REGISTRY__URL",
        "http://localhost:8081",
    ))?);
    let agreements_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/agreements");
    let agreements = socle_agreements::Agreements::load_dir(&agreements_dir)?;
    let producer: FutureProducer = socle_kafka::client_config(&brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;

    let (pool, db_name) = fresh_db(&db_url).await?;
    let topic = format!("bench-persons-{}", Uuid::new_v4().simple());
    create_topic(&brokers, &topic, 6).await?;
    let t0 = Instant::now();
    let (events, people) = publish(&pool, &codec, &producer, &topic, 0..persons).await?;
    let generate_seconds = t0.elapsed().as_secs_f64();
    eprintln!("backlog: {events} events for {persons} persons in {generate_seconds:.1}s");

    // Projection.
    let group = "bench-projector";
    let config = socle_projector::ProjectorConfig {
        brokers: brokers.clone(),
        topic: topic.clone(),
        group: group.into(),
        batch_size: batch,
        batch_timeout: Duration::from_millis(50),
    };
    let shutdown = CancellationToken::new();
    let models = socle_projector::Models::new(&agreements, socle_projector::Layout::live());
    let started = Instant::now();
    let handle = tokio::spawn(socle_projector::run(
        config,
        pool.clone(),
        codec.clone(),
        models,
        shutdown.clone(),
    ));
    while stored(&pool, group, &topic).await? < events as i64 {
        if handle.is_finished() {
            return Err("projector stopped".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let projection_seconds = started.elapsed().as_secs_f64();
    let projection_rate = events as f64 / projection_seconds;
    eprintln!("projection: {events} events in {projection_seconds:.1}s = {projection_rate:.0}/s");

    // Latency at a steady offered load (`--latency-rate` events/s, 4 events per person), while
    // the projector runs: each person's events are encoded in advance, enqueued at their tick,
    // and the person counts as visible when their last event (the contact update) shows in
    // France Travail's model; the poll every 5 ms bounds the resolution.
    let mut latencies = Vec::new();
    {
        let people_per_second = (latency_rate / 4).max(1);
        let total = people_per_second * latency_seconds;
        let base = to_micros(
            Utc.with_ymd_and_hms(2026, 4, 1, 9, 0, 0)
                .single()
                .ok_or("time")?,
        );
        let mut prepared = Vec::with_capacity(total);
        let keys: Vec<(Uuid, DataKey)> = (0..total)
            .map(|_| (Uuid::now_v7(), DataKey::generate()))
            .collect();
        sqlx::query("INSERT INTO keys.person_keys (person_id, key_id, key) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bytea[])")
            .bind(keys.iter().map(|(p, _)| *p).collect::<Vec<_>>())
            .bind(keys.iter().map(|(_, k)| k.key_id.clone()).collect::<Vec<_>>())
            .bind(keys.iter().map(|(_, k)| k.expose_bytes().to_vec()).collect::<Vec<_>>())
            .execute(&pool)
            .await?;
        for (n, (person, key)) in keys.iter().enumerate() {
            let mut payloads = Vec::new();
            for (name, value) in person_events(persons + n, *person, key, base + n as i64 * 10)? {
                let contract = person_event(name).ok_or("contract")?;
                payloads.push(codec.encode_value(&topic, contract, value).await?);
            }
            prepared.push((*person, payloads));
        }
        let interval = Duration::from_secs_f64(1.0 / people_per_second as f64);
        let mut pending: Vec<(Uuid, Instant)> = Vec::new();
        let mut deliveries = Vec::new();
        let start = Instant::now();
        let mut next_send = Instant::now();
        let mut queue = prepared.into_iter();
        let mut exhausted = false;
        while !exhausted || !pending.is_empty() {
            while !exhausted && Instant::now() >= next_send {
                match queue.next() {
                    Some((person, payloads)) => {
                        let key = person.to_string();
                        for payload in &payloads {
                            let record = FutureRecord::to(&topic).key(&key).payload(payload);
                            match producer.send_result(record) {
                                Ok(delivery) => deliveries.push(delivery),
                                Err((e, _)) => return Err(e.into()),
                            }
                        }
                        pending.push((person, Instant::now()));
                        next_send += interval;
                    }
                    None => exhausted = true,
                }
            }
            if !pending.is_empty() {
                let ids: Vec<Uuid> = pending.iter().map(|(p, _)| *p).collect();
                let seen: Vec<Uuid> = sqlx::query_scalar("SELECT person_id FROM eco_france_travail.persons WHERE person_id = ANY($1) AND contact_email LIKE 'new%'")
                    .bind(&ids)
                    .fetch_all(&pool)
                    .await?;
                let now = Instant::now();
                let seen: BTreeSet<Uuid> = seen.into_iter().collect();
                pending.retain(|(p, at)| {
                    if seen.contains(p) {
                        latencies.push((now - *at).as_secs_f64() * 1000.0);
                        false
                    } else {
                        true
                    }
                });
            }
            if start.elapsed() > Duration::from_secs((latency_seconds as u64) * 3 + 60) {
                return Err(
                    format!("latency run did not drain ({} pending)", pending.len()).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for d in deliveries {
            d.await
                .map_err(|_| "delivery cancelled")?
                .map_err(|(e, _)| e)?;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    eprintln!(
        "latency: p50 {p50:.1} ms, p99 {p99:.1} ms over {} persons",
        latencies.len()
    );
    shutdown.cancel();
    let _ = handle.await;

    // Full rebuild of every model.
    let source = socle_projector::replay::Source {
        brokers: brokers.clone(),
        topic: topic.clone(),
        batch_size: batch,
    };
    let all: BTreeSet<String> = agreements.all.iter().map(|a| a.ecosystem.clone()).collect();
    let started = Instant::now();
    let rebuilt = socle_projector::replay::rebuild(
        &pool,
        codec.clone(),
        &agreements,
        &all,
        &source,
        group,
        &|_, _| {},
        &CancellationToken::new(),
    )
    .await?;
    let rebuild_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "rebuild: {} events in {rebuild_seconds:.1}s",
        rebuilt.events
    );

    // The PostgreSQL ceiling, same machine, same run.
    let mut shares = Vec::new();
    for a in &agreements.all {
        let in_model: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {}.persons", a.schema()))
                .fetch_one(&pool)
                .await?;
        shares.push(in_model as f64 / (persons as f64).max(1.0));
    }
    let ceiling_rate = ceiling(&pool, &people, events, batch, &shares).await?;
    eprintln!("ceiling: {ceiling_rate:.0} events/s");

    pool.close().await;
    if let Ok(mut admin) = sqlx::PgConnection::connect(&db_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
    println!(
        "{}",
        serde_json::json!({
            "persons": persons, "events": events, "batch": batch,
            "generate_seconds": generate_seconds,
            "projection_seconds": projection_seconds, "projection_rate": projection_rate,
            "ceiling_rate": ceiling_rate, "ratio": projection_rate / ceiling_rate,
            "rebuild_seconds": rebuild_seconds, "rebuild_events": rebuilt.events,
            "latency_rate": latency_rate, "latency_samples": latencies.len(),
            "latency_p50_ms": p50, "latency_p99_ms": p99,
        })
    );
    Ok(())
}
