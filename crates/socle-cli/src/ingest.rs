//! `socle ingest`: the operators' ingress topics into the canonical persons topic (see
//! docs/ingest.md), and a synthetic sender to try it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use socle_domain::reference::{ReferencePaths, Referential};
use socle_ingest::{IngestConfig, Source};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum IngestCommand {
    /// Consume the ingress topics until stopped (the default).
    Run,
    /// Publish synthetic ingress messages (valid people, optionally a share of broken ones) on
    /// an operator's ingress topic, as that operator's IS would.
    Synthetic {
        /// france-travail, cap-emploi or mission-locale.
        #[arg(long, default_value = "france-travail")]
        operator: String,
        /// How many people (5 messages each: registration, contact, situation, follow start/end).
        #[arg(long, default_value_t = 10)]
        persons: u64,
        /// First person number (to send new people on a second run).
        #[arg(long, default_value_t = 0)]
        first: u64,
        /// Percentage of broken messages mixed in (each kind of bad input in turn).
        #[arg(long, default_value_t = 0)]
        bad_percent: u64,
    },
}

pub async fn run(
    settings: &Settings,
    command: Option<IngestCommand>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match command.unwrap_or(IngestCommand::Run) {
        IngestCommand::Run => ingest(settings, shutdown).await,
        IngestCommand::Synthetic {
            operator,
            persons,
            first,
            bad_percent,
        } => synthetic(settings, &operator, first, persons, bad_percent).await,
    }
}

/// The ingress sources from the settings.
pub fn sources(settings: &Settings) -> Vec<Source> {
    let i = &settings.ingest;
    vec![
        Source {
            topic: i.france_travail_topic.clone(),
            operator: "france-travail".into(),
        },
        Source {
            topic: i.cap_emploi_topic.clone(),
            operator: "cap-emploi".into(),
        },
        Source {
            topic: i.missions_locales_topic.clone(),
            operator: "mission-locale".into(),
        },
    ]
}

fn referential(dir: &Path) -> anyhow::Result<Referential> {
    Referential::load(&ReferencePaths::under(dir)).with_context(|| {
        format!(
            "loading the referential under reference.dir = {} (reference/README.md)",
            dir.display()
        )
    })
}

async fn ingest(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let i = &settings.ingest;
    let referential = Arc::new(referential(&settings.reference.dir)?);
    let pool = crate::pool(settings).await?;
    let config = IngestConfig {
        brokers: settings.kafka.brokers.clone(),
        registry_url: settings.registry.url.clone(),
        group: i.group.clone(),
        transactional_id: i.transactional_id.clone(),
        group_instance_id: crate::settings::group_instance_id(&i.group_instance_id),
        sources: sources(settings),
        persons_topic: settings.topics.persons.clone(),
        deadletter_topic: i.deadletter_topic.clone(),
        batch_size: i.batch_size,
        batch_timeout: Duration::from_millis(i.batch_timeout_ms),
        transaction_timeout: Duration::from_millis(i.transaction_timeout_ms),
    };
    let probes = crate::ops::Probes::new("ingest", &settings.kafka.brokers)?
        .with_pool(&pool)
        .with_registry(&settings.registry.url);
    crate::ops::with_health(settings.health.ingest, probes, async {
        let totals = socle_ingest::run(config, pool.clone(), referential, shutdown)
            .await
            .context("ingest")?;
        info!(
            published = totals.published,
            dead_lettered = totals.dead_lettered,
            "ingest finished"
        );
        Ok(())
    })
    .await
}

async fn synthetic(
    settings: &Settings,
    operator: &str,
    first: u64,
    persons: u64,
    bad_percent: u64,
) -> anyhow::Result<()> {
    let source = sources(settings)
        .into_iter()
        .find(|s| s.operator == operator)
        .with_context(|| {
            format!("unknown operator {operator:?}; expected france-travail, cap-emploi or mission-locale")
        })?;
    let mut sender = IngressSender::new(settings).await?;
    let id_of = sender.ids(&source.topic).await?;
    let id_of = |m: &socle_ingest::ingress::Ingress| {
        id_of
            .get(socle_ingest::decode::contract_of(m).name)
            .copied()
            .unwrap_or(0)
    };
    let producer = sender.producer.clone();
    let now = chrono::Utc::now();
    let (mut good, mut bad) = (0u64, 0u64);
    let mut pending = Vec::new();
    for n in first..first + persons {
        let mut messages: Vec<(String, Vec<u8>)> = Vec::new();
        for m in socle_ingest::synthetic::life(operator, n, now) {
            let body = socle_ingest::decode::encode_body(&m)?;
            messages.push((
                socle_ingest::synthetic::operator_ref(n),
                socle_kafka::framing::Frame::encode(id_of(&m), &body),
            ));
            good += 1;
        }
        // One broken message every 100 / bad_percent good ones, each kind in turn.
        if bad_percent > 0 && (n * 5 * bad_percent / 100) != ((n + 1) * 5 * bad_percent / 100) {
            let kinds = socle_ingest::synthetic::Bad::ALL;
            let kind = kinds[usize::try_from(bad % kinds.len() as u64).unwrap_or(0)];
            // About another person, so the good person's own life stays whole.
            messages.push(kind.message(operator, n + 1_000_000_000, now, &id_of));
            bad += 1;
        }
        for (key, value) in messages {
            let mut record = FutureRecord::to(&source.topic).key(&key).payload(&value);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    // A full local queue: wait for what is in flight, then retry.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        for d in pending.drain(..) {
                            delivered(d.await)?;
                        }
                    }
                    Err((e, _)) => return Err(e).context("sending"),
                }
            }
        }
        if pending.len() >= 10_000 {
            for d in pending.drain(..) {
                delivered(d.await)?;
            }
        }
    }
    for d in pending {
        delivered(d.await)?;
    }
    println!(
        "sent {good} valid and {bad} broken messages about {persons} people to {}",
        source.topic
    );
    Ok(())
}

/// Publishes ingress messages on an operator's ingress topic exactly as that operator's IS
/// would (contracts registered under the topic's subjects, Confluent framing), so that what the
/// demo and the CLI publish goes through `socle ingest` and all its rules like any other message.
pub struct IngressSender {
    registry: socle_ingest::registry::Registry,
    producer: FutureProducer,
    ids: std::collections::HashMap<String, std::collections::HashMap<&'static str, u32>>,
}

impl IngressSender {
    pub async fn new(settings: &Settings) -> anyhow::Result<IngressSender> {
        let producer: FutureProducer = socle_kafka::client_config(&settings.kafka.brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .context("kafka producer")?;
        Ok(IngressSender {
            registry: socle_ingest::registry::Registry::new(&settings.registry.url)?,
            producer,
            ids: std::collections::HashMap::new(),
        })
    }

    /// The schema ids of the ingress contracts under `topic`'s subjects (registered if needed).
    async fn ids(
        &mut self,
        topic: &str,
    ) -> anyhow::Result<std::collections::HashMap<&'static str, u32>> {
        if let Some(ids) = self.ids.get(topic) {
            return Ok(ids.clone());
        }
        let mut ids = std::collections::HashMap::new();
        for c in socle_ingest::contracts::ingress() {
            ids.insert(c.name, self.registry.register(topic, c).await?);
        }
        self.ids.insert(topic.to_owned(), ids.clone());
        Ok(ids)
    }

    /// Sends `message` on `operator`'s ingress topic, keyed by the operator's reference of the
    /// person, and waits for the broker's acknowledgement.
    pub async fn send(
        &mut self,
        settings: &Settings,
        operator: &str,
        message: &socle_ingest::ingress::Ingress,
    ) -> anyhow::Result<()> {
        let topic = sources(settings)
            .into_iter()
            .find(|s| s.operator == operator)
            .map(|s| s.topic)
            .with_context(|| format!("unknown operator {operator:?}; expected france-travail, cap-emploi or mission-locale"))?;
        let ids = self.ids(&topic).await?;
        let id = ids
            .get(socle_ingest::decode::contract_of(message).name)
            .copied()
            .context("ingress contract not registered")?;
        let body = socle_ingest::decode::encode_body(message)?;
        let value = socle_kafka::framing::Frame::encode(id, &body);
        let key = message.submission().operator_person_ref.clone();
        let record = FutureRecord::to(&topic).key(&key).payload(&value);
        match self.producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e).with_context(|| format!("sending to {topic}")),
        }
    }
}

fn delivered<E>(
    d: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, E>,
) -> anyhow::Result<()> {
    match d {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e).context("delivery"),
        Err(_) => anyhow::bail!("delivery report dropped"),
    }
}
