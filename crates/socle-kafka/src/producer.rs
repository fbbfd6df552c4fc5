//! An idempotent producer that counts an event as sent only on its delivery report.
//!
//! `acks=all` and `enable.idempotence=true`: the broker has the event on every in-sync replica
//! before [`EventProducer::send`] returns, and retries never duplicate it. A full local queue is
//! back-pressure (`send` waits for room), not an error; a delivery that cannot be confirmed within
//! the delivery timeout is an error the caller must act on (the API answers 503).

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::{client_config, Error, Result};

/// Where an event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// A Kafka producer for socle's events.
#[derive(Clone)]
pub struct EventProducer {
    inner: FutureProducer,
    delivery_timeout: Duration,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("delivery_timeout", &self.delivery_timeout)
            .finish_non_exhaustive()
    }
}

impl EventProducer {
    /// A producer for `brokers` that gives up on a delivery after `delivery_timeout`.
    ///
    /// # Errors
    /// [`Error::Kafka`] if the client configuration is refused.
    pub fn new(brokers: &str, delivery_timeout: Duration) -> Result<Self> {
        let ms = delivery_timeout.as_millis().max(1).to_string();
        let inner: FutureProducer = client_config(brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "1")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", &ms)
            .set("request.timeout.ms", &ms)
            .create()?;
        Ok(EventProducer {
            inner,
            delivery_timeout,
        })
    }

    /// Sends `payload` keyed by `key` and waits for the broker's acknowledgement.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the delivery fails or is not confirmed within the delivery timeout.
    pub async fn send(&self, topic: &str, key: &str, payload: &[u8]) -> Result<Delivered> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        // The queue timeout bounds the wait for room in a full local queue (back-pressure).
        match self
            .inner
            .send(record, Timeout::After(self.delivery_timeout))
            .await
        {
            Ok(d) => Ok(Delivered {
                partition: d.partition,
                offset: d.offset,
            }),
            Err((e, _message)) => Err(Error::Kafka(e)),
        }
    }

    /// Waits until every queued event is delivered, for shutdown.
    ///
    /// # Errors
    /// [`Error::Kafka`] if some events are still undelivered after `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        Ok(self.inner.flush(Timeout::After(timeout))?)
    }
}
