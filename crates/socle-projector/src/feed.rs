//! Per-ecosystem feeds: each model's notices (a person entered, changed in, or left the
//! ecosystem's scope), relayed to the ecosystem's outgoing topic as `socle.feed.PersonView`.
//!
//! The notices are an outbox written in the same transaction as the model, so nothing the
//! model shows is missed by the feed. For each batch the relay first appends a disclosure access
//! event (ecosystem, agreement version, every person id) to the access trail — fail closed, as
//! for the API: no trail, no disclosure — then publishes the views (`acks=all`), then marks the
//! notices published. A crash between publishing and marking republishes those views: delivery is
//! at least once, and `sequence` lets consumers drop what they already applied.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value as Avro;
use chrono::Utc;
use serde_json::Value;
use socle_domain::{AccessEvent, AuthStrength, Decision, Envelope};
use socle_kafka::schemas::PERSON_VIEW;
use socle_kafka::{AccessTrail, Codec, EventProducer};
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::{Models, Result};

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Feed topics are `<prefix><ecosystem>` (`socle.feed.` by default).
    pub topic_prefix: String,
    /// Notices relayed per transaction.
    pub batch_size: i64,
    /// Pause when there is nothing to relay.
    pub idle: Duration,
    /// SIRET recorded as the producing organisation of the views and disclosures.
    pub organisation: String,
}

/// Relays notices of every model until `shutdown`.
///
/// # Errors
/// Database errors that retrying does not cure.
pub async fn run(
    pool: PgPool,
    codec: Arc<Codec>,
    producer: EventProducer,
    trail: AccessTrail,
    models: Models,
    config: FeedConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    info!(prefix = %config.topic_prefix, "feed relay started");
    let mut delay = Duration::from_millis(200);
    loop {
        let mut relayed = 0;
        let mut failed = false;
        for (agreement, model) in &models.entries {
            match relay_once(
                &pool,
                &codec,
                &producer,
                &trail,
                model,
                &agreement.ecosystem,
                &config,
            )
            .await
            {
                Ok(n) => relayed += n,
                Err(e) => {
                    failed = true;
                    warn!(ecosystem = %agreement.ecosystem, error = %e, "feed relay failed, will retry");
                }
            }
        }
        let pause = if failed {
            delay = (delay * 2).min(Duration::from_secs(10));
            delay
        } else {
            delay = Duration::from_millis(200);
            if relayed == 0 {
                config.idle
            } else {
                Duration::ZERO
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
    info!("feed relay stopped");
    Ok(())
}

/// Relays one batch of `model`'s unpublished notices; returns how many.
///
/// # Errors
/// Database, registry or Kafka errors: nothing is marked published then.
pub async fn relay_once(
    pool: &PgPool,
    codec: &Codec,
    producer: &EventProducer,
    trail: &AccessTrail,
    model: &socle_store::ecosystem::Model,
    ecosystem: &str,
    config: &FeedConfig,
) -> Result<usize> {
    let schema = socle_store::ident(&model.schema)?;
    let mut tx = pool.begin().await.map_err(socle_store::Error::from)?;
    let rows = sqlx::query(&format!(
        "SELECT n.seq, n.person_id, n.kind, n.agreement_version, \
         to_jsonb(p) - 'person_id' - 'agreement_version' - 'in_scope_since' - 'updated_at' AS fields \
         FROM {schema}.notices n LEFT JOIN {schema}.persons p ON p.person_id = n.person_id \
         WHERE n.published_at IS NULL ORDER BY n.seq LIMIT $1 FOR UPDATE OF n SKIP LOCKED"
    ))
    .bind(config.batch_size)
    .fetch_all(&mut *tx)
    .await
    .map_err(socle_store::Error::from)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let topic = format!("{}{ecosystem}", config.topic_prefix);
    let mut views = Vec::with_capacity(rows.len());
    let mut seqs = Vec::with_capacity(rows.len());
    for row in &rows {
        let seq: i64 = row.try_get("seq").map_err(socle_store::Error::from)?;
        let person: Uuid = row.try_get("person_id").map_err(socle_store::Error::from)?;
        let kind: String = row.try_get("kind").map_err(socle_store::Error::from)?;
        let version: String = row
            .try_get("agreement_version")
            .map_err(socle_store::Error::from)?;
        let fields: Option<Value> = row.try_get("fields").map_err(socle_store::Error::from)?;
        // A person who left since the notice was written is sent as having left.
        let (change, fields) = match (kind.as_str(), fields) {
            ("left", _) | (_, None) => ("LEFT", HashMap::new()),
            ("entered", Some(f)) => ("ENTERED", text_fields(&f)),
            (_, Some(f)) => ("UPDATED", text_fields(&f)),
        };
        seqs.push(seq);
        views.push((person, version, seq, change, fields));
    }
    // Disclosure first: the trail has it before any view leaves.
    let mut disclosure = AccessEvent {
        envelope: Envelope::new(config.organisation.clone(), Utc::now()).with_actor("socle-feed"),
        request_id: Uuid::now_v7().to_string(),
        user: "socle-feed".into(),
        organisation: config.organisation.clone(),
        ecosystem: Some(ecosystem.to_owned()),
        purpose: None,
        auth_strength: AuthStrength::Client.as_str().into(),
        action: "feed.disclose".into(),
        resource: topic.clone(),
        person_ids: views.iter().map(|v| v.0.to_string()).collect(),
        decision: Decision::Allow,
        reason: None,
        policy_version: None,
        agreement_version: views.first().map(|v| v.1.clone()),
    };
    disclosure.person_ids.dedup();
    trail.record(&disclosure).await?;
    for (person, version, seq, change, fields) in views {
        let envelope = Envelope::new(config.organisation.clone(), Utc::now());
        let value = Avro::Record(vec![
            ("envelope".into(), envelope_value(&envelope)),
            ("person_id".into(), Avro::String(person.to_string())),
            ("ecosystem".into(), Avro::String(ecosystem.to_owned())),
            ("agreement_version".into(), Avro::String(version)),
            ("sequence".into(), Avro::Long(seq)),
            (
                "change".into(),
                Avro::Enum(change_index(change), change.to_owned()),
            ),
            (
                "fields".into(),
                Avro::Map(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k, v.map_or(Avro::Null, Avro::String)))
                        .collect(),
                ),
            ),
        ]);
        let payload = codec.encode_value(&topic, &PERSON_VIEW, value).await?;
        producer.send(&topic, &person.to_string(), &payload).await?;
    }
    sqlx::query(&format!(
        "UPDATE {schema}.notices SET published_at = now() WHERE seq = ANY($1)"
    ))
    .bind(&seqs)
    .execute(&mut *tx)
    .await
    .map_err(socle_store::Error::from)?;
    tx.commit().await.map_err(socle_store::Error::from)?;
    Ok(seqs.len())
}

fn change_index(change: &str) -> u32 {
    match change {
        "ENTERED" => 0,
        "UPDATED" => 1,
        _ => 2,
    }
}

/// The granted fields as text, named as in the agreements (`identity.family_name`).
fn text_fields(fields: &Value) -> HashMap<String, Option<String>> {
    let Value::Object(map) = fields else {
        return HashMap::new();
    };
    map.iter()
        .map(|(column, v)| {
            let name = socle_agreements::Field::ALL
                .iter()
                .find(|f| f.column() == *column)
                .map_or_else(|| column.clone(), |f| f.name().to_owned());
            let text = match v {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
            (name, text)
        })
        .collect()
}

fn envelope_value(e: &Envelope) -> Avro {
    let opt = |v: Option<String>| v.map_or(Avro::Null, Avro::String);
    Avro::Record(vec![
        ("event_id".into(), Avro::String(e.event_id.to_string())),
        ("occurred_at".into(), Avro::TimestampMicros(e.occurred_at)),
        ("recorded_at".into(), Avro::TimestampMicros(e.recorded_at)),
        (
            "producer_organisation".into(),
            Avro::String(e.producer_organisation.clone()),
        ),
        ("actor".into(), opt(e.actor.clone())),
        (
            "correlation_id".into(),
            opt(e.correlation_id.map(|u| u.to_string())),
        ),
        (
            "causation_id".into(),
            opt(e.causation_id.map(|u| u.to_string())),
        ),
        ("schema_version".into(), Avro::Int(e.schema_version)),
    ])
}
