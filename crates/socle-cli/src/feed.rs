//! `socle feed`: relays each ecosystem model's notices to its outgoing feed topic.

use std::time::Duration;

use anyhow::Context;
use socle_kafka::{AccessTrail, EventProducer};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

pub async fn run(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = crate::pool(settings).await?;
    let codec = crate::codec(settings)?;
    let models = socle_projector::Models::new(
        &crate::agreements(settings)?,
        socle_projector::Layout::live(),
    );
    let producer = EventProducer::new(&settings.kafka.brokers, settings.delivery_timeout())
        .context("kafka producer")?;
    let trail = AccessTrail::new(
        producer.clone(),
        codec.clone(),
        settings.topics.access.clone(),
    );
    let config = socle_projector::feed::FeedConfig {
        topic_prefix: settings.feeds.topic_prefix.clone(),
        batch_size: settings.feeds.batch_size,
        idle: Duration::from_millis(settings.feeds.idle_ms),
        organisation: settings.feeds.organisation.clone(),
    };
    let probes = crate::ops::Probes::new("feed", &settings.kafka.brokers)?
        .with_pool(&pool)
        .with_registry(&settings.registry.url);
    crate::ops::with_health(settings.health.feed, probes, async {
        socle_projector::feed::run(
            pool.clone(),
            codec,
            producer,
            trail,
            models,
            config,
            shutdown,
        )
        .await
        .context("feed relay")
    })
    .await
}
