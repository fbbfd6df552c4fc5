//! Benchmark `audit-query`: the auditors' queries on a synthetic trail of N access entries
//! (default 10 million), generated inside PostgreSQL with generate_series in a database of its
//! own (`trailbench_audit`, or `BENCH_DB`; recreated). Baseline, same run: the who-accessed query with index
//! scans disabled (what a store without the right indexes would do). Prints one JSON object.
//!
//! `cargo run --release -p socle-audit --example query_bench -- [ROWS] [SAMPLES]`
//! (`RESUME=1` finishes a generation that was cut short; `REUSE=1` only measures.)

use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use socle_audit::queries::{self, Actor, Period};
use sqlx::Connection;

fn quantile(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[((xs.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: i64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let samples: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(50);
    let admin_url = std::env::var("SOCLE__DATABASE__URL")
        .unwrap_or_else(|_| "postgres://socle:socle@localhost:5432/socle".into());
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .ok_or("database url")?;
    // Not named socle_*: test clean-ups elsewhere drop those.
    let name = std::env::var("BENCH_DB").unwrap_or_else(|_| "trailbench_audit".into());
    let url = format!("{base}/{name}");
    // REUSE: measure on the trail already generated; RESUME: finish a generation cut short.
    let reuse = std::env::var("REUSE").is_ok();
    let resume = std::env::var("RESUME").is_ok();
    if !reuse && !resume {
        let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await?;
    socle_audit::migrate(&pool).await?;
    let users = 20_000i64;
    let orgs = 500i64;
    let persons = 2_000_000i64;
    let start: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .ok_or("date")?;
    // Entries spread over 60 days.
    let step_us = 60 * 86_400 * 1_000_000 / rows.max(1);
    if !reuse {
        let t = Instant::now();
        let chunk = 1_000_000i64;
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.access")
            .fetch_one(&pool)
            .await?;
        let mut from = done + 1;
        while from <= rows {
            let to = (from + chunk - 1).min(rows);
            sqlx::query(
                "WITH a AS (INSERT INTO audit.access (event_id, occurred_at, recorded_at, request_id, \
                 user_id, organisation, ecosystem, purpose, auth_strength, action, resource, person_ids, \
                 decision, reason, policy_version, agreement_version, kafka_partition, kafka_offset) \
                 SELECT md5(i::text)::uuid, $3 + make_interval(secs => i * $4 / 1e6), \
                        $3 + make_interval(secs => i * $4 / 1e6), 'r' || i, 'user-' || (i % $5), \
                        'org-' || ((i % $5) % $6), 'france-travail', 'accompagnement', 'mfa', \
                        CASE WHEN i % 10 = 0 THEN 'person.search' ELSE 'person.read' END, \
                        '/persons/' || ((i * 7919) % $7), ARRAY['person-' || ((i * 7919) % $7)], \
                        CASE WHEN i % 50 = 0 THEN 'DENY' ELSE 'ALLOW' END, NULL, 'policy-1', 'ft@1', \
                        (i % 6)::int, i / 6 \
                 FROM generate_series($1::bigint, $2::bigint) AS i \
                 RETURNING person_ids[1] AS person_id, occurred_at, event_id) \
                 INSERT INTO audit.access_person (person_id, occurred_at, event_id) \
                 SELECT person_id, occurred_at, event_id FROM a",
            )
            .bind(from)
            .bind(to)
            .bind(start)
            .bind(step_us as f64)
            .bind(users)
            .bind(orgs)
            .bind(persons)
            .execute(&pool)
            .await?;
            eprintln!("{to} rows ({:.0} s)", t.elapsed().as_secs_f64());
            from = to + 1;
        }
        sqlx::query("ANALYZE").execute(&pool).await?;
        eprintln!(
            "generated {rows} entries in {:.0} s",
            t.elapsed().as_secs_f64()
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.access_person")
        .fetch_one(&pool)
        .await?;
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |m: i64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % m as u64) as i64
    };
    let all = Period::new(None, None)?;
    let mut results = serde_json::Map::new();
    let mut time = |name: &str, xs: &mut Vec<f64>| {
        let p50 = quantile(xs, 0.5);
        let p99 = quantile(xs, 0.99);
        results.insert(
            name.into(),
            serde_json::json!({"p50_ms": p50, "p99_ms": p99, "max_ms": quantile(xs, 1.0)}),
        );
    };
    let mut who = Vec::new();
    let mut journal = Vec::new();
    let mut timeline = Vec::new();
    let mut actor = Vec::new();
    let mut org = Vec::new();
    for _ in 0..samples {
        let person = format!("person-{}", next(persons));
        let t = Instant::now();
        let page = queries::who_accessed(&pool, &person, all, 1000).await?;
        who.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(!page.truncated);
        let t = Instant::now();
        queries::journal(&pool, &person, all, 1000).await?;
        journal.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        queries::timeline(&pool, &person, all, 1000).await?;
        timeline.push(t.elapsed().as_secs_f64() * 1e3);
        let day = start + Duration::days(next(59));
        let week = Period::new(Some(day), Some(day + Duration::days(7)))?;
        let t = Instant::now();
        queries::actor(
            &pool,
            &Actor::User(format!("user-{}", next(users))),
            week,
            10_000,
        )
        .await?;
        actor.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        queries::actor(
            &pool,
            &Actor::Organisation(format!("org-{}", next(orgs))),
            Period::new(Some(day), Some(day + Duration::days(1)))?,
            10_000,
        )
        .await?;
        org.push(t.elapsed().as_secs_f64() * 1e3);
    }
    time("who_accessed", &mut who);
    time("journal", &mut journal);
    time("timeline", &mut timeline);
    time("actor_week", &mut actor);
    time("organisation_day", &mut org);
    // Baseline: the same who-accessed question without its index.
    let mut baseline = Vec::new();
    for _ in 0..3 {
        let person = format!("person-{}", next(persons));
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL enable_indexscan = off")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SET LOCAL enable_bitmapscan = off")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SET LOCAL enable_indexonlyscan = off")
            .execute(&mut *tx)
            .await?;
        let t = Instant::now();
        sqlx::query("SELECT a.event_id FROM audit.access_person p JOIN audit.access a USING (event_id) WHERE p.person_id = $1")
            .bind(&person)
            .fetch_all(&mut *tx)
            .await?;
        baseline.push(t.elapsed().as_secs_f64() * 1e3);
        tx.rollback().await?;
    }
    time("who_accessed_without_index", &mut baseline);
    results.insert("entries".into(), serde_json::json!(count));
    println!("{}", serde_json::Value::Object(results));
    Ok(())
}
