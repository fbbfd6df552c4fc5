//! Benchmark harness for `bench/api/run.sh`: a fresh database with realistic data in the
//! france-travail model, a development IdP, a grant and an MFA token, and the API served twice
//! on the same data — with the access trail (as in production) and, when built with the
//! `bench-unsafe-no-trail` feature, without it — so the trail's cost is measured in one run.
//!
//! Writes `$BENCH_DIR/env` (URLs, token) and `$BENCH_DIR/ids`, `$BENCH_DIR/names`, then serves
//! until SIGINT/SIGTERM and drops its database.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use socle_auth::dev::{DevIdp, TokenRequest};
use socle_kafka::{AccessTrail, Codec, EventProducer};
use socle_store::core::Val;
use socle_store::ecosystem::{Link, Model};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ORG: &str = "90000100900019";
const ECOSYSTEM: &str = "france-travail";
const FAMILY: [&str; 12] = [
    "Lefort", "Marchand", "Aubry", "Perrin", "Caron", "Lemoine", "Barbier", "Renaud", "Colin",
    "Vidal", "Roussel", "Fabre",
];

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: u32 = env("BENCH_PERSONS", "20000").parse()?;
    let caseload: u32 = env("BENCH_CASELOAD", "2000").parse()?;
    let dir = std::path::PathBuf::from(env("BENCH_DIR", "/tmp/socle-bench"));
    std::fs::create_dir_all(&dir)?;
    let admin_url = env(
        "SOCLE__DATABASE__URL",
        "postgres://socle:socle@localhost:5432/socle",
    );
    let brokers = env("SOCLE__KAFKA__BROKERS", "localhost:9092");
    let registry = env("SOCLE__REGISTRY__URL", "http://localhost:8081");

    let name = format!("socle_bench_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let url = format!(
        "{}/{name}",
        admin_url.rsplit_once('/').ok_or("database url")?.0
    );
    let pool = socle_store::connect(&url, 32).await?;
    socle_store::migrate(&pool).await?;
    socle_policy::migrate(&pool).await?;
    socle_detect::migrate(&pool).await?;

    let agreements =
        socle_agreements::Agreements::load_dir(std::path::Path::new("deploy/agreements"))?;
    let entries: Vec<(socle_agreements::Agreement, Model)> = agreements
        .all
        .iter()
        .map(|a| {
            let model = Model {
                ecosystem: a.ecosystem.clone(),
                schema: format!("eco_{}", a.ecosystem.replace('-', "_")),
                role: a.role(),
                version: a.version.clone(),
                columns: a
                    .granted_fields()
                    .into_iter()
                    .map(|f| (f.column(), f.sql_type().sql()))
                    .collect(),
            };
            (a.clone(), model)
        })
        .collect();
    let mut tx = pool.begin().await?;
    for (_, m) in &entries {
        socle_store::ecosystem::ensure(&mut tx, m).await?;
    }
    tx.commit().await?;
    let model = &entries
        .iter()
        .find(|(a, _)| a.ecosystem == ECOSYSTEM)
        .ok_or("no france-travail agreement")?
        .1;

    // Realistic data: `total` people in the model, `caseload` of them followed by the caller.
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for chunk in 0..total.div_ceil(1000) {
        let mut rows = Vec::new();
        let mut links = Vec::new();
        for i in chunk * 1000..((chunk + 1) * 1000).min(total) {
            let id = Uuid::now_v7();
            let family = format!("{}{}", FAMILY[(i % 12) as usize], suffix(i / 12));
            let birth = NaiveDate::from_ymd_opt(1960 + (i % 45) as i32, 1 + i % 12, 1 + i % 28)
                .ok_or("date")?;
            let vals = model
                .columns
                .iter()
                .map(|(c, t)| match c.as_str() {
                    "identity_family_name" => Val::Text(Some(family.clone())),
                    "identity_given_name" => Val::Text(Some("Camille".into())),
                    "identity_birth_date" => Val::Date(Some(birth)),
                    "residence_departement" => Val::Text(Some("75".into())),
                    "residence_commune" => Val::Text(Some("75056".into())),
                    "registration_operator" => Val::Text(Some("france-travail".into())),
                    _ => match *t {
                        "date" => Val::Date(None),
                        "boolean" => Val::Bool(None),
                        _ => Val::Text(None),
                    },
                })
                .collect();
            rows.push((id, vals));
            let org = if i < caseload {
                ORG.to_owned()
            } else {
                format!("9000010{:07}", i % 97)
            };
            links.push(Link {
                person_id: id,
                organisation: org,
                kind: "follow",
                ref_id: Uuid::now_v7(),
                territory: Some("75".into()),
                since: None,
            });
            if i < caseload {
                ids.push(id.to_string());
                names.push(family);
            }
        }
        let persons: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
        let mut tx = pool.begin().await?;
        socle_store::ecosystem::upsert(&mut tx, model, &rows).await?;
        socle_store::ecosystem::set_links(&mut tx, model, &persons, &links).await?;
        tx.commit().await?;
    }
    sqlx::query(&format!("ANALYZE {}.persons", model.schema))
        .execute(&pool)
        .await?;
    sqlx::query(&format!("ANALYZE {}.links", model.schema))
        .execute(&pool)
        .await?;

    let grant = socle_policy::grants::new_grant(
        "conseiller.bench",
        ORG,
        ECOSYSTEM,
        &["person.read", "person.search", "caseload.list"],
        "accompagnement",
        Utc::now() - chrono::Duration::hours(1),
        Utc::now() + chrono::Duration::days(1),
        "bench",
    );
    let mut tx = pool.begin().await?;
    socle_policy::grants::apply_granted(&mut tx, &grant).await?;
    tx.commit().await?;

    let shutdown = CancellationToken::new();
    let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", idp_listener.local_addr()?);
    let idp = Arc::new(DevIdp::generate(&issuer)?);
    let router = idp.clone().router();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(idp_listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    let token = idp.mint(&TokenRequest {
        user: "conseiller.bench".into(),
        organisation: ORG.into(),
        ecosystem: ECOSYSTEM.into(),
        audience: "socle-api".into(),
        mfa: true,
        client: false,
        issued_at: socle_auth::dev::now(),
        ttl: 7200,
    })?;

    let trail_topic = format!("socle.bench.access.{}", Uuid::new_v4().simple());
    socle_kafka::admin::apply(
        &brokers,
        &[socle_kafka::admin::TopicSpec {
            name: trail_topic.clone(),
            partitions: 3,
            replication: 1,
            key: None,
            purpose: None,
            config: Default::default(),
        }],
    )
    .await?;
    let codec = Arc::new(Codec::new(&registry)?);
    let producer = EventProducer::new(&brokers, Duration::from_secs(5))?;
    let state = |access: socle_api::AccessSettings| socle_api::AppState {
        pool: pool.clone(),
        trail: AccessTrail::new(producer.clone(), codec.clone(), trail_topic.clone()),
        codec: codec.clone(),
        brokers: brokers.clone(),
        http: reqwest::Client::new(),
        verifier: socle_auth::Verifier::new(
            socle_auth::VerifierConfig {
                issuer: issuer.clone(),
                audience: "socle-api".into(),
                jwks_url: format!("{issuer}/jwks.json"),
                mfa_acr_values: vec![socle_auth::dev::MFA_ACR.into()],
                refresh_min_interval: Duration::from_secs(30),
                max_key_age: socle_auth::VerifierConfig::DEFAULT_MAX_KEY_AGE,
                leeway: Duration::from_secs(30),
            },
            reqwest::Client::new(),
        )
        .expect("verifier configured"),
        engine: Arc::new(
            socle_policy::Engine::load(std::path::Path::new("policies")).expect("policies"),
        ),
        access: Arc::new(access),
        nir_limiter: Arc::default(),
        ecosystems: Arc::new(socle_api::models::Ecosystems::new(&entries)),
        sanctions: Arc::new(socle_detect::SanctionGuard::new(
            pool.clone(),
            Duration::from_secs(1),
            Duration::from_secs(2),
        )),
    };
    let settings = || {
        socle_api::AccessSettings::new(
            vec![
                "person.read".into(),
                "person.search".into(),
                "caseload.list".into(),
            ],
            socle_auth::dev::MFA_ACR.into(),
            20,
        )
    };
    let mut lines = vec![format!("TOKEN={token}")];
    let with = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    lines.push(format!("URL_TRAIL=http://{}", with.local_addr()?));
    let stop = shutdown.clone();
    tokio::spawn(socle_api::serve(with, state(settings()), async move {
        stop.cancelled().await
    }));
    #[cfg(feature = "bench-unsafe-no-trail")]
    {
        let without = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        lines.push(format!("URL_NOTRAIL=http://{}", without.local_addr()?));
        let stop = shutdown.clone();
        tokio::spawn(socle_api::serve(
            without,
            state(settings().without_trail_for_benchmark()),
            async move { stop.cancelled().await },
        ));
    }
    std::fs::write(dir.join("ids"), ids.join("\n") + "\n")?;
    std::fs::write(dir.join("names"), names.join("\n") + "\n")?;
    std::fs::write(dir.join("env"), lines.join("\n") + "\n")?;
    eprintln!(
        "bench server ready: {} people, {} in the caseload, trail topic {trail_topic}",
        total, caseload
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    Ok(())
}

fn suffix(mut n: u32) -> String {
    let mut out = Vec::new();
    loop {
        out.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            break;
        }
    }
    out.iter().rev().collect()
}
