//! `socle`: one binary, one subcommand per component.

mod audit;
mod demo;
mod detect;
mod dev;
mod feed;
mod habilitations;
mod ingest;
mod migrate;
mod ops;
mod reference;
mod replay;
mod schemas;
mod seal;
mod settings;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use socle_kafka::admin::{Applied, TopicsFile};
use socle_kafka::{AccessTrail, Codec, EventProducer};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::settings::Settings;

/// socle, the shared data backbone of the public employment network.
#[derive(Debug, Parser)]
#[command(name = "socle", version, about)]
struct Cli {
    /// Configuration file overlaid on the built-in defaults (then SOCLE__... variables apply).
    #[arg(long, global = true, env = "SOCLE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or migrate every schema socle keeps in PostgreSQL (run once, before any component).
    Migrate,
    /// Serve the Confluent-compatible schema registry.
    Registry,
    /// Project the canonical topics into the PostgreSQL read models.
    Project,
    /// Serve the HTTP API.
    Serve,
    /// Run the registry, the projector, the feed relay and the API in one process (development;
    /// `make up` runs every component as its own process instead).
    All {
        /// Use the registry at registry.url instead of starting one.
        #[arg(long)]
        no_registry: bool,
    },
    /// Validate the operators' ingress topics into the canonical topic, or dead-letter.
    Ingest {
        #[command(subcommand)]
        command: Option<ingest::IngestCommand>,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Development tools: an identity provider and its tokens (never in production).
    Dev {
        #[command(subcommand)]
        command: dev::DevCommand,
    },
    /// Relay each ecosystem's model changes to its outgoing feed topic.
    Feed,
    /// Rebuild a model from the first offset, or build the models as of an instant.
    Replay(replay::ReplayArgs),
    /// Load the synthetic demo dataset.
    Demo {
        #[command(subcommand)]
        command: DemoCommand,
    },
    /// Publish events.
    Produce {
        #[command(subcommand)]
        command: ProduceCommand,
    },
    /// Read, export and verify the access trail.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Seal topics: hash chain and signed checkpoints.
    Seal {
        #[command(subcommand)]
        command: seal::SealCommand,
    },
    /// Detect bulk extraction on the access trail; alerts and sanctions.
    Detect {
        #[command(subcommand)]
        command: detect::DetectCommand,
    },
    /// Reference data: load the data·inclusion services catalogue.
    Reference {
        #[command(subcommand)]
        command: reference::ReferenceCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Grant a habilitation (published on auth.habilitations_topic).
    Grant(habilitations::GrantArgs),
    /// Revoke a habilitation before its expiry.
    Revoke(habilitations::RevokeArgs),
    /// Kafka topics.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// socle's contracts as registry subjects.
    Schemas {
        #[command(subcommand)]
        command: schemas::SchemasCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create or update the topics declared in the topics file.
    Apply {
        /// Topics file (default: topics.file from the configuration).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum DemoCommand {
    /// Publish the demo persons on the operators' ingress topics (as their IS would, through
    /// `socle ingest` and its rules) and wait until they are readable.
    Load {
        /// How many persons.
        #[arg(long, default_value_t = 20)]
        count: usize,
        /// How long to wait for the projector, in seconds.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
}

#[derive(Debug, Subcommand)]
enum ProduceCommand {
    /// Register a person: a `PersonRegistered` on the operator's ingress topic, checked and
    /// sealed by `socle ingest` like any operator message (dead-lettered if it breaks a rule).
    PersonRegistered(PersonArgs),
}

#[derive(Debug, clap::Args)]
struct PersonArgs {
    /// Pseudonymous id (default: a new UUIDv7).
    #[arg(long)]
    person_id: Option<uuid::Uuid>,
    /// france-travail, cap-emploi or mission-locale.
    #[arg(long)]
    operator: String,
    /// SIRET of the registering organisation.
    #[arg(long)]
    organisation: String,
    #[arg(long)]
    family_name: String,
    #[arg(long)]
    given_name: String,
    /// YYYY-MM-DD.
    #[arg(long)]
    birth_date: chrono::NaiveDate,
    #[arg(long)]
    nir: Option<String>,
    /// INSEE commune code.
    #[arg(long)]
    commune: String,
    /// INSEE département code.
    #[arg(long)]
    departement: String,
    #[arg(long)]
    email: Option<String>,
    /// The operator's own reference of the person (default: 11 digits derived from the person
    /// id, the shape of a France Travail identifier).
    #[arg(long)]
    operator_ref: Option<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain, never a Debug dump.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref()).context("configuration")?;
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    match cli.command {
        Command::Migrate => migrate::run(&settings).await,
        Command::Registry => run_registry(&settings, shutdown).await,
        Command::Project => run_projector(&settings, shutdown).await,
        Command::Serve => run_api(&settings, shutdown).await,
        Command::Ingest { command } => ingest::run(&settings, command, shutdown).await,
        Command::All { no_registry } => run_all(settings, no_registry, shutdown).await,
        Command::Admin {
            command:
                AdminCommand::Topics {
                    command: TopicsCommand::Apply { file },
                },
        } => apply_topics(&settings, file).await,
        Command::Admin {
            command: AdminCommand::Schemas { command },
        } => schemas::run(&settings, command, shutdown).await,
        Command::Dev { command } => dev::run(&settings, command, shutdown).await,
        Command::Admin {
            command: AdminCommand::Grant(args),
        } => habilitations::grant(&settings, args).await,
        Command::Admin {
            command: AdminCommand::Revoke(args),
        } => habilitations::revoke(&settings, args).await,
        Command::Replay(args) => replay::run(&settings, args, shutdown).await,
        Command::Feed => feed::run(&settings, shutdown).await,
        Command::Demo {
            command: DemoCommand::Load { count, wait },
        } => load_demo(&settings, count, Duration::from_secs(wait)).await,
        Command::Produce {
            command: ProduceCommand::PersonRegistered(args),
        } => produce_person(&settings, args).await,
        Command::Audit { command } => audit::run(&settings, command, shutdown).await,
        Command::Seal { command } => seal::run(&settings, command, shutdown).await,
        Command::Detect { command } => detect::run(&settings, command, shutdown).await,
        Command::Reference { command } => reference::run(&settings, command, shutdown).await,
    }
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = term.recv() => {},
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        info!("shutdown requested");
        shutdown.cancel();
    });
}

pub(crate) async fn pool(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    let pool = socle_store::connect(settings.database_url(), settings.database.max_connections)
        .await
        .context("connecting to PostgreSQL (database.url)")?;
    // Schemas are created by `socle migrate` alone; a component only checks them.
    migrate::check(&pool, settings).await?;
    Ok(pool)
}

pub(crate) fn codec(settings: &Settings) -> anyhow::Result<Arc<Codec>> {
    Ok(Arc::new(
        Codec::new(&settings.registry.url).context("schema registry client")?,
    ))
}

async fn run_registry(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = pool(settings).await?;
    let registry = socle_registry::Registry::open(pool);
    // Registrations are events: registered in its own store, published from its outbox.
    let (registry, relay) = socle_contracts::events::start(
        registry,
        socle_contracts::events::EventsConfig {
            brokers: settings.kafka.brokers.clone(),
            topic: settings.registry.events_topic.clone(),
            organisation: settings.registry.events_organisation.clone(),
            delivery_timeout: settings.delivery_timeout(),
            max_backlog: settings.registry.events_max_backlog,
        },
        shutdown.clone(),
    )
    .await
    .context("starting the registry's events")?;
    let listener = tokio::net::TcpListener::bind(settings.registry.listen)
        .await
        .with_context(|| format!("binding registry.listen {}", settings.registry.listen))?;
    info!(listen = %settings.registry.listen, "schema registry listening");
    let stop = shutdown.clone();
    let served = registry
        .serve(listener, async move { stop.cancelled().await })
        .await
        .context("registry");
    // The relay makes a last attempt, then leaves what is unpublished in the outbox.
    shutdown.cancel();
    relay.await.context("registry events relay")?;
    served?;
    Ok(())
}

/// The data-sharing agreements (`agreements.dir`), validated.
pub(crate) fn agreements(settings: &Settings) -> anyhow::Result<socle_agreements::Agreements> {
    socle_agreements::Agreements::load_dir(&settings.agreements.dir).with_context(|| {
        format!(
            "loading the agreements in {}",
            settings.agreements.dir.display()
        )
    })
}

async fn run_projector(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = pool(settings).await?;
    let config = socle_projector::ProjectorConfig {
        brokers: settings.kafka.brokers.clone(),
        topic: settings.topics.persons.clone(),
        group: settings.projector.group.clone(),
        batch_size: settings.projector.batch_size,
        batch_timeout: Duration::from_millis(settings.projector.batch_timeout_ms),
    };
    let models =
        socle_projector::Models::new(&agreements(settings)?, socle_projector::Layout::live());
    let probes = ops::Probes::new("projector", &settings.kafka.brokers)?
        .with_pool(&pool)
        .with_registry(&settings.registry.url);
    ops::with_health(settings.health.projector, probes, async {
        socle_projector::run_as(
            config,
            crate::settings::group_instance_id(&settings.projector.group_instance_id),
            pool.clone(),
            codec(settings)?,
            models,
            shutdown,
        )
        .await
        .context("projector")
    })
    .await
}

async fn run_api(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = pool(settings).await?;
    let codec = codec(settings)?;
    let producer = EventProducer::new(&settings.kafka.brokers, settings.delivery_timeout())
        .context("kafka producer")?;
    let trail = AccessTrail::new(
        producer.clone(),
        codec.clone(),
        settings.topics.access.clone(),
    );
    let http = reqwest_client()?;
    let auth = &settings.auth;
    let verifier = socle_auth::Verifier::new(
        socle_auth::VerifierConfig {
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            jwks_url: auth.jwks_url.clone(),
            mfa_acr_values: auth.mfa_acr_values.clone(),
            refresh_min_interval: Duration::from_millis(auth.jwks_refresh_min_interval_ms),
            max_key_age: Duration::from_secs(auth.jwks_max_key_age_secs),
            leeway: Duration::from_secs(auth.leeway_secs),
        },
        http.clone(),
    )
    .context("[auth] issuer, jwks_url and audience must be set (development: `socle dev idp`, see docs/api.md)")?;
    let engine = socle_policy::Engine::load(&auth.policies_dir).context("access policies")?;
    // The per-ecosystem models the API reads (created by `socle migrate`, checked by `pool`).
    let models =
        socle_projector::Models::new(&agreements(settings)?, socle_projector::Layout::live());
    info!(policy_version = engine.version(), "access policies loaded");
    // Keep this policy version's texts, so decisions taken under it can be replayed later.
    engine
        .archive(&pool)
        .await
        .context("archiving the policy version")?;
    // This instance keeps its own replay of the habilitations topic; its status exists before
    // the first request, so that no request is answered from grants not yet replayed.
    let _ = socle_policy::consumer::init_process_status();
    let consumer = tokio::spawn({
        let (brokers, topic) = (
            settings.kafka.brokers.clone(),
            auth.habilitations_topic.clone(),
        );
        let (pool, codec, shutdown) = (pool.clone(), codec.clone(), shutdown.clone());
        async move {
            if let Err(e) =
                socle_policy::consumer::run(&brokers, &topic, pool, codec, shutdown.clone()).await
            {
                error!(error = %e, "habilitations consumer stopped; stopping the API");
                shutdown.cancel();
            }
        }
    });
    // Write commands go to the same ingress topics `socle ingest` reads.
    socle_api::commands::configure(socle_api::commands::IngressTopics {
        france_travail: settings.ingest.france_travail_topic.clone(),
        cap_emploi: settings.ingest.cap_emploi_topic.clone(),
        missions_locales: settings.ingest.missions_locales_topic.clone(),
    });
    // The detector's sanctions table is read per request (cached briefly) to honour suspensions.
    let sanctions_pool = pool.clone();
    let state = socle_api::AppState {
        pool,
        trail,
        codec,
        brokers: settings.kafka.brokers.clone(),
        http,
        verifier,
        engine: Arc::new(engine),
        access: Arc::new(
            socle_api::AccessSettings::new(
                auth.mfa_actions.clone(),
                auth.mfa_acr_values.first().cloned().unwrap_or_default(),
                auth.nir_lookups_per_hour,
            )
            .with_machine_clients(auth.machine_clients.clone())
            .with_read_budget(settings.api.read_budget())
            .with_audit_freshness(socle_audit::freshness::Bounds {
                max_lag_entries: settings.audit.max_lag_entries,
                max_lag: Duration::from_millis(settings.audit.max_lag_ms),
            }),
        ),
        nir_limiter: Arc::default(),
        ecosystems: Arc::new(socle_api::models::Ecosystems::new(&models.entries)),
        sanctions: Arc::new(socle_detect::SanctionGuard::new(
            sanctions_pool,
            Duration::from_millis(settings.detect.guard_ttl_ms),
            Duration::from_millis(settings.detect.rules.throttle_interval_ms),
        )),
    };
    let listener = tokio::net::TcpListener::bind(settings.api.listen)
        .await
        .with_context(|| format!("binding api.listen {}", settings.api.listen))?;
    let limits = settings.api.limits();
    info!(listen = %settings.api.listen, ?limits, "API listening");
    let stop = shutdown.clone();
    socle_api::serve_with(listener, state, limits, async move {
        stop.cancelled().await;
    })
    .await
    .context("API")?;
    shutdown.cancel();
    let _ = consumer.await;
    // Access events still queued are delivered before exit.
    producer
        .flush(Duration::from_secs(10))
        .context("flushing the access trail")?;
    Ok(())
}

fn reqwest_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("HTTP client")
}

async fn run_all(
    settings: Settings,
    no_registry: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let mut tasks = JoinSet::new();
    if !no_registry {
        let (s, t) = (settings.clone(), shutdown.clone());
        tasks.spawn(async move { ("registry", run_registry(&s, t).await) });
        wait_for_registry(&settings.registry.url, Duration::from_secs(30)).await?;
    }
    let (s, t) = (settings.clone(), shutdown.clone());
    tasks.spawn(async move { ("projector", run_projector(&s, t).await) });
    let (s, t) = (settings.clone(), shutdown.clone());
    tasks.spawn(async move { ("feed", feed::run(&s, t).await) });
    let (s, t) = (settings.clone(), shutdown.clone());
    tasks.spawn(async move { ("api", run_api(&s, t).await) });
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let (name, result) = joined.context("component task panicked")?;
        match result {
            Ok(()) => info!(component = name, "stopped"),
            Err(e) => {
                error!(
                    component = name,
                    error = format!("{e:#}"),
                    "failed; stopping the others"
                );
                failure.get_or_insert(e.context(name));
            }
        }
        // One component ending ends them all (drain deadline: each finishes its work in hand).
        shutdown.cancel();
    }
    failure.map_or(Ok(()), Err)
}

async fn wait_for_registry(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest_client()?;
    let deadline = tokio::time::Instant::now() + timeout;
    let probe = format!("{}/subjects", url.trim_end_matches('/'));
    loop {
        if let Ok(r) = client.get(&probe).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the schema registry at {url} did not answer within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn apply_topics(settings: &Settings, file: Option<PathBuf>) -> anyhow::Result<()> {
    let path = file.unwrap_or_else(|| settings.topics.file.clone());
    let topics = TopicsFile::load(&path)?;
    for (name, applied) in socle_kafka::admin::apply(&settings.kafka.brokers, &topics.topics)
        .await
        .context("applying topics")?
    {
        match applied {
            Applied::Created => println!("created   {name}"),
            Applied::Altered(changes) => println!("altered   {name}: {}", changes.join(", ")),
            Applied::Unchanged => println!("unchanged {name}"),
        }
    }
    Ok(())
}

async fn load_demo(settings: &Settings, count: usize, wait: Duration) -> anyhow::Result<()> {
    let mut sender = ingest::IngressSender::new(settings).await?;
    let mut messages = 0;
    for i in 0..count {
        for (operator, message) in demo::ingress(i) {
            sender
                .send(settings, operator, &message)
                .await
                .with_context(|| format!("publishing demo person {i}"))?;
            messages += 1;
        }
    }
    println!(
        "published {messages} messages about {count} demo persons on the operators' ingress topics \
         (a third followed by a Mission Locale, a third by Cap Emploi)"
    );
    let pool = pool(settings).await?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if socle_store::ecosystem::person_ids(&pool, "eco_france_travail")
            .await?
            .contains(&demo::DEMO_PERSON)
        {
            println!("demo person {} is readable", demo::DEMO_PERSON);
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "demo person {} not projected within {wait:?}: are `socle ingest` and `socle project` running? \
                 (rejected messages are in the dead-letter topic: `make logs`)",
                demo::DEMO_PERSON
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn produce_person(settings: &Settings, args: PersonArgs) -> anyhow::Result<()> {
    use socle_ingest::ingress::{Identity, Ingress, PersonRegistered, Submission};
    let person_id = args.person_id.unwrap_or_else(uuid::Uuid::now_v7);
    let now = chrono::Utc::now();
    let message = Ingress::Registered(PersonRegistered {
        submission: Submission {
            event_id: uuid::Uuid::now_v7(),
            occurred_at: now.timestamp_micros(),
            producer_organisation: args.organisation.clone(),
            actor: Some("socle-cli".to_owned()),
            correlation_id: None,
            operator_person_ref: args
                .operator_ref
                .clone()
                .unwrap_or_else(|| format!("{:011}", person_id.as_u128() % 100_000_000_000)),
            person_id: Some(person_id),
        },
        operator: args.operator.clone(),
        registering_organisation: args.organisation,
        registered_on: socle_domain::time::to_days(now.date_naive()),
        commune: args.commune,
        departement: args.departement,
        identity: Identity {
            nir: args.nir,
            family_name: args.family_name,
            given_name: args.given_name,
            birth_date: socle_domain::time::to_days(args.birth_date),
            email: args.email,
            phone: None,
        },
    });
    let mut sender = ingest::IngressSender::new(settings).await?;
    sender.send(settings, &args.operator, &message).await?;
    println!(
        "registration of person {person_id} sent to {}'s ingress topic: `socle ingest` checks it \
         (a message that breaks a rule goes to {} with its reason)",
        args.operator, settings.ingest.deadletter_topic
    );
    Ok(())
}
