//! The write path: everything that enters socle's canonical topics goes through here.
//!
//! Operators' information systems publish on their own ingress topic, in the ingress contracts
//! (`schemas/ingress/`), with personal fields in clear since they do not hold socle's per-person
//! keys. [`run`] (`socle ingest`) reads those topics and, for each message, checks the frame,
//! decodes it with the writer's registered schema ([`decode`]), applies the business rules with
//! the real references and checks that the operator may say this ([`rules`]), seals the
//! personal fields with the person's key ([`canonicalize`]), and publishes the canonical event on
//! the persons topic, or a dead letter with the original bytes and a precise reason. Outputs and
//! input offsets are committed in one Kafka transaction: nothing lost, nothing published twice.
//!
//! [`Publisher`] is the older direct path (seal, encode, publish one registration), used by the
//! demo loader and `socle produce`.

pub mod canonical;
pub mod canonicalize;
pub mod contracts;
pub mod decode;
pub mod follows;
pub mod fuzzing;
pub mod ingress;
pub mod keys;
pub mod registry;
pub mod rules;
mod run;
pub mod synthetic;

pub use run::{run, IngestConfig, Ingestor, Source, Taken, Totals};

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use socle_domain::time::to_days;
use socle_domain::{Envelope, PersonIdentity, PersonRegistered};
use socle_kafka::pii::seal_identity;
use socle_kafka::producer::Delivered;
use socle_kafka::schemas::PERSON_REGISTERED;
use socle_kafka::{Codec, EventProducer};
use sqlx::PgPool;
use uuid::Uuid;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an event was not published.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kafka(#[from] socle_kafka::Error),
    #[error(transparent)]
    Store(#[from] socle_store::Error),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("kafka: {0}")]
    Consumer(#[from] rdkafka::error::KafkaError),
    #[error("schema registry: {0}")]
    Registry(String),
    #[error("transaction aborted, the batch will be read again: {0}")]
    Aborted(Box<Error>),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// Whether retrying the same batch later can help (a service unreachable, a transaction
    /// aborted). Never true for a fault of the message itself: those are dead-lettered.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kafka(k) => !k.is_poison(),
            Error::Store(s) => s.is_transient(),
            Error::Registry(_) | Error::Aborted(_) => true,
            Error::Consumer(e) => !matches!(
                e,
                rdkafka::error::KafkaError::Transaction(t) if t.is_fatal()
            ),
            Error::Invalid(_) | Error::Internal(_) => false,
        }
    }
}

/// A registration as an operator states it, before sealing.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Pseudonymous id; a fresh UUIDv7 when the operator has none yet.
    pub person_id: Uuid,
    pub operator: String,
    pub registering_organisation: String,
    pub registered_on: NaiveDate,
    pub commune: String,
    pub departement: String,
    pub identity: PersonIdentity,
    /// Who stated it (user or system client).
    pub actor: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// What was published.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub event_id: Uuid,
    pub person_id: Uuid,
    pub delivered: Delivered,
}

/// Publishes person events to the canonical persons topic.
#[derive(Debug, Clone)]
pub struct Publisher {
    pool: PgPool,
    codec: Arc<Codec>,
    producer: EventProducer,
    topic: String,
}

impl Publisher {
    pub fn new(
        pool: PgPool,
        codec: Arc<Codec>,
        producer: EventProducer,
        topic: impl Into<String>,
    ) -> Self {
        Publisher {
            pool,
            codec,
            producer,
            topic: topic.into(),
        }
    }

    /// Seals and publishes `registration`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an unknown operator or empty names; key store, registry or Kafka
    /// errors otherwise (nothing was published).
    pub async fn register(&self, registration: Registration) -> Result<Published> {
        if !socle_domain::person::OPERATORS.contains(&registration.operator.as_str()) {
            return Err(Error::Invalid(format!(
                "unknown operator {:?}; expected one of {:?}",
                registration.operator,
                socle_domain::person::OPERATORS
            )));
        }
        if registration.identity.family_name.trim().is_empty()
            || registration.identity.given_name.trim().is_empty()
        {
            return Err(Error::Invalid("family and given names are required".into()));
        }
        let key = socle_store::keys::get_or_create(&self.pool, registration.person_id).await?;
        let personal = seal_identity(&key, registration.person_id, &registration.identity)?;
        let mut envelope = Envelope::new(
            registration.registering_organisation.clone(),
            registration.occurred_at,
        );
        envelope.actor = registration.actor;
        let event = PersonRegistered {
            envelope,
            person_id: registration.person_id,
            operator: registration.operator,
            registering_organisation: registration.registering_organisation,
            registered_on: to_days(registration.registered_on),
            commune: registration.commune,
            departement: registration.departement,
            personal,
        };
        let payload = self
            .codec
            .encode(&self.topic, &PERSON_REGISTERED, &event)
            .await?;
        let delivered = self
            .producer
            .send(&self.topic, &event.person_id.to_string(), &payload)
            .await?;
        Ok(Published {
            event_id: event.envelope.event_id,
            person_id: event.person_id,
            delivered,
        })
    }
}
