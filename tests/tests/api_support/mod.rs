//! The authenticated API for tests: a development IdP of its own on a random port, the
//! repository's cedar policies, grants recorded in PostgreSQL, a fresh database per test.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use socle_auth::dev::{DevIdp, TokenRequest};
use socle_kafka::{AccessTrail, Codec, EventProducer};
use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const USER: &str = "conseiller.test";
/// The one machine client the test API registers (`auth.machine_clients`).
pub const MACHINE_CLIENT: &str = "si-agence-paris";
pub const ORG: &str = "90000100900019";
pub const ECOSYSTEM: &str = "france-travail";

pub fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

pub fn codec() -> Arc<Codec> {
    Arc::new(Codec::new(&env_or("SOCLE__REGISTRY__URL", "http://localhost:8081")).expect("codec"))
}

/// A fresh database with the store's and the habilitations' migrations.
pub async fn fresh_db() -> (PgPool, String) {
    let admin_url = env_or(
        "SOCLE__DATABASE__URL",
        "postgres://socle:socle@localhost:5432/socle",
    );
    let name = format!("socle_test_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL answers at SOCLE__DATABASE__URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("database url without a database name: {admin_url}"),
    };
    let pool = socle_store::connect(&url, 8)
        .await
        .expect("connect test db");
    socle_store::migrate(&pool).await.expect("migrate test db");
    (pool, name)
}

pub async fn drop_db(pool: PgPool, name: &str) {
    pool.close().await;
    let admin_url = env_or(
        "SOCLE__DATABASE__URL",
        "postgres://socle:socle@localhost:5432/socle",
    );
    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

/// The API served on a random loopback port, with its trail on `access_topic`, trusting a
/// development IdP of its own (served on another random port) and the repository's policies.
pub struct RunningApi {
    pub base: String,
    pub shutdown: CancellationToken,
    pub idp: Arc<DevIdp>,
    /// How many times the development IdP's `/jwks.json` was fetched.
    pub jwks_fetches: Arc<std::sync::atomic::AtomicUsize>,
}

/// The audience the test API expects.
pub const AUDIENCE: &str = "socle-api";

impl RunningApi {
    /// A token for `user` of `org` in `ecosystem`, valid for five minutes.
    pub fn token(&self, user: &str, org: &str, ecosystem: &str, mfa: bool) -> String {
        self.idp
            .mint(&TokenRequest {
                user: user.to_owned(),
                organisation: org.to_owned(),
                ecosystem: ecosystem.to_owned(),
                audience: AUDIENCE.to_owned(),
                mfa,
                client: false,
                issued_at: socle_auth::dev::now(),
                ttl: 300,
            })
            .expect("token minted")
    }

    /// A token with some claims replaced (`null` removes one): see `DevIdp::mint_with`.
    pub fn token_with(&self, request: &TokenRequest, overrides: serde_json::Value) -> String {
        let overrides = match overrides {
            serde_json::Value::Object(m) => m,
            other => panic!("claim overrides must be an object: {other}"),
        };
        self.idp
            .mint_with(request, &overrides)
            .expect("token minted")
    }

    /// What [`RunningApi::token`] mints, to adjust before [`RunningApi::token_with`].
    pub fn request(&self, user: &str, org: &str, ecosystem: &str, mfa: bool) -> TokenRequest {
        TokenRequest {
            user: user.to_owned(),
            organisation: org.to_owned(),
            ecosystem: ecosystem.to_owned(),
            audience: AUDIENCE.to_owned(),
            mfa,
            client: false,
            issued_at: socle_auth::dev::now(),
            ttl: 300,
        }
    }

    /// A multi-factor token for [`USER`] of [`ORG`] in [`ECOSYSTEM`].
    pub fn default_token(&self) -> String {
        self.token(USER, ORG, ECOSYSTEM, true)
    }
}

pub async fn start_api(
    pool: &PgPool,
    access_topic: &str,
    brokers: &str,
    delivery: Duration,
) -> RunningApi {
    start_api_with(pool, access_topic, brokers, delivery, None).await
}

/// As [`start_api`], with the hard read budget on when `budget` is given.
pub async fn start_api_with(
    pool: &PgPool,
    access_topic: &str,
    brokers: &str,
    delivery: Duration,
    budget: Option<socle_api::ReadBudget>,
) -> RunningApi {
    socle_policy::migrate(pool)
        .await
        .expect("habilitations migrated");
    socle_detect::migrate(pool)
        .await
        .expect("detector tables migrated");
    socle_audit::migrate(pool)
        .await
        .expect("audit store migrated");
    let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let issuer = format!("http://{}", idp_listener.local_addr().expect("local addr"));
    let idp = Arc::new(DevIdp::generate(&issuer).expect("dev IdP key"));
    let shutdown = CancellationToken::new();
    let jwks_fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = jwks_fetches.clone();
    let router = idp.clone().router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            if request.uri().path() == "/jwks.json" {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            next.run(request)
        },
    ));
    let token = shutdown.clone();
    tokio::spawn(async move {
        axum_serve(idp_listener, router, token).await;
    });
    let verifier = socle_auth::Verifier::new(
        socle_auth::VerifierConfig {
            issuer: issuer.clone(),
            audience: AUDIENCE.to_owned(),
            jwks_url: format!("{issuer}/jwks.json"),
            mfa_acr_values: vec![socle_auth::dev::MFA_ACR.to_owned()],
            refresh_min_interval: Duration::from_secs(1),
            max_key_age: socle_auth::VerifierConfig::DEFAULT_MAX_KEY_AGE,
            leeway: Duration::from_secs(0),
        },
        reqwest::Client::new(),
    )
    .expect("verifier");
    let models = live_models();
    let mut tx = pool.begin().await.expect("tx");
    models
        .ensure(&mut tx)
        .await
        .expect("ecosystem models created");
    tx.commit().await.expect("commit");
    let engine = socle_policy::Engine::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
    )
    .expect("policies load");
    let codec = codec();
    let producer = EventProducer::new(brokers, delivery).expect("producer");
    let state = socle_api::AppState {
        pool: pool.clone(),
        trail: AccessTrail::new(producer, codec.clone(), access_topic),
        codec,
        brokers: brokers.to_owned(),
        http: reqwest::Client::new(),
        verifier,
        engine: Arc::new(engine),
        access: Arc::new({
            let settings = socle_api::AccessSettings::new(
                [
                    "person.read",
                    "person.search",
                    "person.lookup_nir",
                    "caseload.list",
                ]
                .map(str::to_owned)
                .to_vec(),
                socle_auth::dev::MFA_ACR.to_owned(),
                3,
            )
            .with_machine_clients(vec![MACHINE_CLIENT.to_owned()]);
            match budget {
                Some(b) => settings.with_read_budget(b),
                None => settings,
            }
        }),
        nir_limiter: Arc::default(),
        ecosystems: Arc::new(socle_api::models::Ecosystems::new(&models.entries)),
        sanctions: Arc::new(socle_detect::SanctionGuard::new(
            pool.clone(),
            std::time::Duration::from_millis(200),
            std::time::Duration::from_millis(2000),
        )),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    let token = shutdown.clone();
    tokio::spawn(socle_api::serve(listener, state, async move {
        token.cancelled().await;
    }));
    RunningApi {
        base,
        shutdown,
        idp,
        jwks_fetches,
    }
}

async fn axum_serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    stop: CancellationToken,
) {
    let _ = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
}

/// Records a grant in force from an hour ago until `until` (directly in PostgreSQL, as the
/// habilitations consumer would; `api_auth.rs` checks the published path end to end).
#[allow(clippy::too_many_arguments)]
pub async fn grant_until(
    pool: &PgPool,
    user: &str,
    org: &str,
    ecosystem: &str,
    actions: &[&str],
    purpose: &str,
    until: chrono::DateTime<Utc>,
) -> Uuid {
    let g = socle_policy::grants::new_grant(
        user,
        org,
        ecosystem,
        actions,
        purpose,
        // Began an hour ago, or a month before it ended if it already has.
        (Utc::now() - chrono::Duration::hours(1)).min(until - chrono::Duration::days(30)),
        until,
        "test-admin",
    );
    let mut tx = pool.begin().await.expect("tx");
    socle_policy::grants::apply_granted(&mut tx, &g)
        .await
        .expect("grant applied");
    tx.commit().await.expect("commit");
    g.grant_id
}

/// As [`grant_until`] for a day, with `requires_mfa` as given (the grants above require it).
pub async fn grant_mfa(
    pool: &PgPool,
    user: &str,
    org: &str,
    ecosystem: &str,
    actions: &[&str],
    requires_mfa: bool,
) -> Uuid {
    let now = Utc::now();
    let mut g = socle_policy::grants::new_grant(
        user,
        org,
        ecosystem,
        actions,
        "accompagnement",
        now - chrono::Duration::hours(1),
        now + chrono::Duration::days(1),
        "test-admin",
    );
    g.requires_mfa = requires_mfa;
    let mut tx = pool.begin().await.expect("tx");
    socle_policy::grants::apply_granted(&mut tx, &g)
        .await
        .expect("grant applied");
    tx.commit().await.expect("commit");
    g.grant_id
}

/// Every person action for a day, for accompaniment.
pub async fn grant(pool: &PgPool, user: &str, org: &str, ecosystem: &str) -> Uuid {
    grant_until(
        pool,
        user,
        org,
        ecosystem,
        &["person.read", "person.search", "caseload.list"],
        "accompagnement",
        Utc::now() + chrono::Duration::days(1),
    )
    .await
}

/// Creates a topic with a random name (one partition).
pub async fn random_topic(prefix: &str) -> String {
    let name = format!("{prefix}-{}", Uuid::new_v4().simple());
    create_topic(&name, 1).await;
    name
}

/// Creates the topic `name` with `partitions` partitions.
pub async fn create_topic(name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        socle_kafka::client_config(&brokers())
            .create()
            .expect("admin client");
    for r in admin
        .create_topics(
            [&NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .expect("Kafka answers at SOCLE__KAFKA__BROKERS")
    {
        r.expect("topic created");
    }
}

/// What the audit projector does, once: every committed entry of `topic` read from the start
/// (`read_committed`, to the end of each partition) and applied to the store in one batch.
pub async fn project_trail(pool: &PgPool, topic: &str) -> usize {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::{Offset, TopicPartitionList};
    let (brokers, name) = (brokers(), topic.to_owned());
    let batch = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = socle_kafka::client_config(&brokers)
            .set("group.id", format!("it-audit-{}", Uuid::new_v4().simple()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(&name), Duration::from_secs(10))
            .expect("metadata");
        let mut tpl = TopicPartitionList::new();
        let mut open = std::collections::HashSet::new();
        for p in metadata.topics()[0].partitions() {
            tpl.add_partition_offset(&name, p.id(), Offset::Beginning)
                .expect("partition");
            open.insert(p.id());
        }
        consumer.assign(&tpl).expect("assign");
        let mut batch = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !open.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "read {name} to its end"
            );
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => batch.push(m.detach()),
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    open.remove(&p);
                }
                Some(Err(e)) => panic!("reading {name}: {e}"),
                None => {}
            }
        }
        batch
    })
    .await
    .expect("reader");
    socle_audit::project::apply(pool, &codec(), topic, &batch)
        .await
        .expect("projected");
    batch.len()
}

pub fn brokers() -> String {
    env_or("SOCLE__KAFKA__BROKERS", "localhost:9092")
}

/// A synthetic NIR with a valid key, distinct per `n` (< 1000) and `series` (< 100).
pub fn nir(series: u32, n: u32) -> String {
    let first13 = format!(
        "1{:02}{:02}75056{:03}",
        80 + series % 20,
        1 + n % 12,
        1 + n % 999
    );
    let key = 97 - first13.parse::<u64>().expect("digits") % 97;
    format!("{first13}{key:02}")
}

/// A letters-only suffix for `n` (names hold no digits): 0 → "a", 26 → "ba".
pub fn letters(mut n: u32) -> String {
    let mut out = Vec::new();
    loop {
        out.push(char::from(b'a' + u8::try_from(n % 26).expect("< 26")));
        n /= 26;
        if n == 0 {
            break;
        }
    }
    out.iter().rev().collect()
}

/// The live per-ecosystem models of the shipped agreements (`deploy/agreements`), shaped as
/// the projector shapes them (`socle_projector::Models::new` with the live layout; built here so
/// that the API tests do not depend on the projector crate).
pub struct LiveModels {
    pub entries: Vec<(socle_agreements::Agreement, socle_store::ecosystem::Model)>,
}

impl LiveModels {
    pub async fn ensure(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> socle_store::Result<()> {
        for (_, model) in &self.entries {
            socle_store::ecosystem::ensure(tx, model).await?;
        }
        Ok(())
    }
}

pub fn live_models() -> LiveModels {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agreements");
    let agreements =
        socle_agreements::Agreements::load_dir(&dir).expect("the shipped agreements load");
    LiveModels {
        entries: agreements
            .all
            .iter()
            .map(|a| {
                let model = socle_store::ecosystem::Model {
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
            .collect(),
    }
}

/// A person's main fields, as the tests place them in a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRow {
    pub person_id: Uuid,
    pub operator: String,
    pub registering_organisation: String,
    pub registered_on: chrono::NaiveDate,
    pub commune: String,
    pub departement: String,
    pub nir: Option<String>,
    pub family_name: String,
    pub given_name: String,
    pub birth_date: chrono::NaiveDate,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub last_event_id: Uuid,
    pub occurred_at: chrono::DateTime<Utc>,
}

/// `count` synthetic people named `{prefix}{letters(i)}` (not written anywhere yet).
pub fn people(prefix: &str, series: u32, count: u32) -> Vec<PersonRow> {
    (0..count)
        .map(|i| PersonRow {
            person_id: Uuid::now_v7(),
            operator: "france-travail".into(),
            registering_organisation: String::new(),
            registered_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("date"),
            commune: "75056".into(),
            departement: "75".into(),
            nir: Some(nir(series, i)),
            family_name: format!("{prefix}{}", letters(i)),
            given_name: "Alix".into(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1990, 1 + i % 12, 1 + i % 28)
                .expect("date"),
            email: None,
            phone: None,
            last_event_id: Uuid::now_v7(),
            occurred_at: Utc::now(),
        })
        .collect()
}

/// Writes `rows` into `ecosystem`'s model, each followed by `org` (what the projector would
/// write: only the granted columns, and the follow links that make the caseload).
pub async fn place(pool: &PgPool, ecosystem: &str, org: &str, rows: &[PersonRow]) {
    use socle_store::core::Val;
    let models = live_models();
    let (_, model) = models
        .entries
        .iter()
        .find(|(a, _)| a.ecosystem == ecosystem)
        .unwrap_or_else(|| panic!("no agreement for {ecosystem}"));
    let values: Vec<(Uuid, Vec<Val>)> = rows
        .iter()
        .map(|r| {
            let vals = model
                .columns
                .iter()
                .map(|(c, t)| match c.as_str() {
                    "identity_family_name" => Val::Text(Some(r.family_name.clone())),
                    "identity_given_name" => Val::Text(Some(r.given_name.clone())),
                    "identity_nir" => Val::Text(r.nir.clone()),
                    "identity_birth_date" => Val::Date(Some(r.birth_date)),
                    "registration_operator" => Val::Text(Some(r.operator.clone())),
                    "registration_date" => Val::Date(Some(r.registered_on)),
                    "residence_commune" => Val::Text(Some(r.commune.clone())),
                    "residence_departement" => Val::Text(Some(r.departement.clone())),
                    _ => match *t {
                        "date" => Val::Date(None),
                        "boolean" => Val::Bool(None),
                        _ => Val::Text(None),
                    },
                })
                .collect();
            (r.person_id, vals)
        })
        .collect();
    let links: Vec<socle_store::ecosystem::Link> = rows
        .iter()
        .map(|r| socle_store::ecosystem::Link {
            person_id: r.person_id,
            organisation: org.to_owned(),
            kind: "follow",
            ref_id: Uuid::now_v7(),
            territory: Some(r.departement.clone()),
            since: Some(r.registered_on),
        })
        .collect();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.person_id).collect();
    let mut tx = pool.begin().await.expect("tx");
    socle_store::ecosystem::upsert(&mut tx, model, &values)
        .await
        .expect("rows written");
    socle_store::ecosystem::set_links(&mut tx, model, &ids, &links)
        .await
        .expect("links written");
    tx.commit().await.expect("commit");
}

/// `count` people followed by `org` in `ecosystem`.
pub async fn seed(
    pool: &PgPool,
    ecosystem: &str,
    org: &str,
    prefix: &str,
    series: u32,
    count: u32,
) -> Vec<PersonRow> {
    let rows = people(prefix, series, count);
    place(pool, ecosystem, org, &rows).await;
    rows
}

/// Every access event on `topic`.
pub async fn trail(topic: &str) -> Vec<socle_domain::AccessEvent> {
    let reader =
        socle_kafka::tail::TrailReader::open(&brokers(), topic, 10_000, Duration::from_secs(10))
            .await
            .expect("trail opens");
    reader
        .read_to_end(&codec(), Duration::from_secs(10))
        .await
        .expect("trail reads")
        .into_iter()
        .map(|t| t.event)
        .collect()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}
