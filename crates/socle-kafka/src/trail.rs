//! The access trail: every read, search, write and refusal is appended to the access topic
//! before the answer leaves. Fail closed: if [`AccessTrail::record`] fails, the caller must not
//! disclose anything.

use std::sync::Arc;

use socle_domain::AccessEvent;

use crate::producer::{Delivered, EventProducer};
use crate::schemas::ACCESS_EVENT;
use crate::{Codec, Result};

/// Writes access events, keyed by the acting user so that each actor's trail is ordered.
#[derive(Debug, Clone)]
pub struct AccessTrail {
    producer: EventProducer,
    codec: Arc<Codec>,
    topic: String,
}

impl AccessTrail {
    pub fn new(producer: EventProducer, codec: Arc<Codec>, topic: impl Into<String>) -> Self {
        AccessTrail {
            producer,
            codec,
            topic: topic.into(),
        }
    }

    /// The access topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Appends `event` and waits until the broker has it on all in-sync replicas.
    ///
    /// # Errors
    /// Registry or Kafka errors: the event is not in the trail, so nothing may be disclosed.
    pub async fn record(&self, event: &AccessEvent) -> Result<Delivered> {
        let payload = self.codec.encode(&self.topic, &ACCESS_EVENT, event).await?;
        self.producer.send(&self.topic, &event.user, &payload).await
    }
}
