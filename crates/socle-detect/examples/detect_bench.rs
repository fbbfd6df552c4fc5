//! Benchmarks `suspend` and `detect-lag` on the real services. Prints one JSON object.
//!
//! - `suspend [TRIALS]`: the 2024 pattern (one account reading different people as fast as the
//!   trail accepts them, each read asking the sanction guard first, as the API does) against a
//!   running detector; reads and seconds from the first read to the suspension, median over the
//!   trials. Baseline: the rule's threshold (`max_distinct_persons`), the least possible.
//! - `lag [RATE] [SECONDS]`: access events at RATE per second from 2 000 users; p50/p99 of the
//!   time between an event's `recorded_at` and the detector having judged it. Baseline, same
//!   run: a plain consumer of the same topic that only decodes the events.
//!
//! `cargo run --release -p socle-detect --example detect_bench -- suspend 5`
//! `cargo run --release -p socle-detect --example detect_bench -- lag 1000 30`

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use socle_detect::runner::{DetectConfig, Progress};
use socle_detect::{Rules, SanctionGuard, Verdict};
use socle_domain::{AccessEvent, Decision, Envelope};
use socle_kafka::{AccessTrail, Codec, EventProducer};
use tokio_util::sync::CancellationToken;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.into())
}

fn read(user: &str, person: String) -> AccessEvent {
    AccessEvent {
        envelope: Envelope::new("90000100900019", Utc::now()).with_actor(user),
        request_id: uuid::Uuid::now_v7().to_string(),
        user: user.to_owned(),
        organisation: "90000100900019".into(),
        ecosystem: Some("cap-emploi".into()),
        purpose: Some("accompagnement".into()),
        auth_strength: "password".into(),
        action: "person.read".into(),
        resource: format!("/persons/{person}"),
        person_ids: vec![person],
        decision: Decision::Allow,
        reason: None,
        policy_version: Some("bench".into()),
        agreement_version: None,
    }
}

async fn topics(brokers: &str, names: &[(&str, i32)]) -> Res<()> {
    let admin: AdminClient<DefaultClientContext> = socle_kafka::client_config(brokers).create()?;
    let new: Vec<NewTopic> = names
        .iter()
        .map(|(n, p)| NewTopic::new(n, *p, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(
            new.iter(),
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await?
    {
        r.map_err(|(t, e)| format!("{t}: {e}"))?;
    }
    Ok(())
}

fn quantile(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(((xs.len().max(1) as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

struct Setup {
    brokers: String,
    pool: sqlx::PgPool,
    codec: Arc<Codec>,
    access: String,
    shutdown: CancellationToken,
    progress: Arc<Progress>,
    detector: tokio::task::JoinHandle<socle_detect::Result<()>>,
}

async fn setup(rules: Rules) -> Res<Setup> {
    let brokers = env("SOCLE__KAFKA__BROKERS", "localhost:9092");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&env(
            "SOCLE__DATABASE__URL",
            "postgres://socle:socle@localhost:5432/socle",
        ))
        .await?;
    socle_detect::migrate(&pool).await?;
    let codec = Arc::new(Codec::new(&env(
        "SOCLE__REGISTRY__URL",
        "http://localhost:8081",
    ))?);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (access, alerts, sanctions) = (
        format!("bench-det-access-{id}"),
        format!("bench-det-alerts-{id}"),
        format!("bench-det-sanctions-{id}"),
    );
    topics(&brokers, &[(&access, 6), (&alerts, 1), (&sanctions, 1)]).await?;
    let progress = Arc::new(Progress::default());
    let shutdown = CancellationToken::new();
    let detector = tokio::spawn(socle_detect::runner::run(
        DetectConfig {
            brokers: brokers.clone(),
            access_topic: access.clone(),
            alerts_topic: alerts,
            sanctions_topic: sanctions,
            group: format!("bench-detect-{id}"),
            group_instance_id: None,
            rules,
        },
        pool.clone(),
        codec.clone(),
        EventProducer::new(&brokers, Duration::from_secs(10))?,
        Some(progress.clone()),
        shutdown.clone(),
    ));
    Ok(Setup {
        brokers,
        pool,
        codec,
        access,
        shutdown,
        progress,
        detector,
    })
}

async fn suspend(trials: usize) -> Res<serde_json::Value> {
    let rules = Rules {
        working_hours_start: 0,
        working_hours_end: 24,
        ..Rules::default()
    };
    let threshold = rules.max_distinct_persons;
    let mut reads = Vec::new();
    let mut secs = Vec::new();
    for trial in 0..trials {
        let s = setup(rules.clone()).await?;
        let trail = AccessTrail::new(
            EventProducer::new(&s.brokers, Duration::from_secs(10))?,
            s.codec.clone(),
            &s.access,
        );
        let guard = SanctionGuard::new(
            s.pool.clone(),
            Duration::from_millis(200),
            Duration::from_secs(2),
        );
        let user = format!("bench.compromised.{}", uuid::Uuid::new_v4().simple());
        // Let the detector join its group before the first read.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let started = Instant::now();
        let mut n = 0usize;
        loop {
            if let Verdict::Suspended { .. } = guard.check(&user, None).await? {
                break;
            }
            if n >= 20_000 {
                return Err("not suspended after 20 000 reads".into());
            }
            trail
                .record(&read(&user, format!("victim-{trial}-{n}")))
                .await?;
            n += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        eprintln!("trial {trial}: suspended after {n} reads, {elapsed:.2} s");
        reads.push(n as f64);
        secs.push(elapsed);
        s.shutdown.cancel();
        s.detector.await??;
    }
    Ok(serde_json::json!({
        "trials": trials,
        "reads_median": quantile(&mut reads.clone(), 0.5), "reads_max": quantile(&mut reads, 1.0),
        "seconds_median": quantile(&mut secs.clone(), 0.5), "seconds_max": quantile(&mut secs, 1.0),
        "threshold": threshold,
    }))
}

async fn lag(rate: u64, seconds: u64) -> Res<serde_json::Value> {
    let s = setup(Rules::default()).await?;
    // Baseline: a consumer that only decodes, on the same topic, in the same run.
    let plain: StreamConsumer = socle_kafka::client_config(&s.brokers)
        .set(
            "group.id",
            format!("bench-plain-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    plain.subscribe(&[&s.access])?;
    let total = rate * seconds;
    let codec = s.codec.clone();
    let baseline = tokio::spawn(async move {
        let mut lags = Vec::new();
        while (lags.len() as u64) < total {
            let m = plain.recv().await?;
            let Some(p) = m.payload() else { continue };
            let e: AccessEvent = codec
                .decode_as(p, &socle_kafka::schemas::ACCESS_EVENT)
                .await?;
            lags.push((Utc::now().timestamp_micros() - e.envelope.recorded_at) as f64 / 1e6);
        }
        Res::Ok(lags)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let trail = AccessTrail::new(
        EventProducer::new(&s.brokers, Duration::from_secs(10))?,
        s.codec.clone(),
        &s.access,
    );
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate / 100).max(1);
    let mut i = 0u64;
    while i < total {
        tick.tick().await;
        for _ in 0..per_tick.min(total - i) {
            let trail = trail.clone();
            let user = format!("advisor-{}", i % 2000);
            let person = format!("p-{}-{}", i % 2000, i % 50);
            sent.push(tokio::spawn(async move {
                trail.record(&read(&user, person)).await
            }));
            i += 1;
        }
    }
    for h in sent {
        h.await??;
    }
    let produce_secs = started.elapsed().as_secs_f64();
    while s.progress.observed.load(Ordering::Relaxed) < total {
        if s.detector.is_finished() {
            return Err("the detector stopped".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut lags = s.progress.lags.lock().map_err(|_| "poisoned")?.clone();
    let mut base = baseline.await??;
    s.shutdown.cancel();
    s.detector.await??;
    Ok(serde_json::json!({
        "rate": rate, "events": total, "achieved_rate": total as f64 / produce_secs,
        "lag_p50_s": quantile(&mut lags.clone(), 0.5), "lag_p99_s": quantile(&mut lags, 0.99),
        "baseline_p50_s": quantile(&mut base.clone(), 0.5), "baseline_p99_s": quantile(&mut base, 0.99),
        "alerts": s.progress.alerts.load(Ordering::Relaxed),
    }))
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| -> Res<u64> {
        Ok(args.get(i).map(|a| a.parse()).transpose()?.unwrap_or(d))
    };
    let out = match args.first().map(String::as_str) {
        Some("suspend") => suspend(arg(1, 5)? as usize).await?,
        Some("lag") => lag(arg(1, 1000)?, arg(2, 30)?).await?,
        _ => return Err("usage: detect_bench suspend [TRIALS] | lag [RATE] [SECONDS]".into()),
    };
    println!("{out}");
    Ok(())
}
