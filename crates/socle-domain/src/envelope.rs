//! The envelope carried by every event (`schemas/common/Envelope.avsc`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::to_micros;

/// Identity, timing and provenance of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// UUIDv7: unique, time-ordered, the de-duplication key.
    #[serde(with = "crate::uuid_str")]
    pub event_id: Uuid,
    /// When the fact happened, in microseconds since the epoch.
    pub occurred_at: i64,
    /// When it was recorded, in microseconds since the epoch.
    pub recorded_at: i64,
    /// SIRET of the organisation that produced the event.
    pub producer_organisation: String,
    /// User or system client that caused the event, if any.
    pub actor: Option<String>,
    #[serde(with = "crate::uuid_str::option")]
    pub correlation_id: Option<Uuid>,
    /// `event_id` of the event that caused this one.
    #[serde(with = "crate::uuid_str::option")]
    pub causation_id: Option<Uuid>,
    /// Version of this event type's contract.
    pub schema_version: i32,
}

impl Envelope {
    /// A new envelope for a fact that happened at `occurred_at`, recorded now.
    pub fn new(producer_organisation: impl Into<String>, occurred_at: DateTime<Utc>) -> Self {
        Envelope {
            event_id: Uuid::now_v7(),
            occurred_at: to_micros(occurred_at),
            recorded_at: to_micros(Utc::now()),
            producer_organisation: producer_organisation.into(),
            actor: None,
            correlation_id: None,
            causation_id: None,
            schema_version: 1,
        }
    }

    /// Sets the actor (user or client id) that caused the event.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
}
