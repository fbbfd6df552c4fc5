//! Replays `socle.habilitations` into `habilitations.*`.
//!
//! Each message is applied in one PostgreSQL transaction together with the next offset of its
//! partition (`habilitations.offsets`); on start the consumer reads those offsets and assigns the
//! partitions itself, so PostgreSQL — not Kafka's committed offsets — says where it is. Applying
//! is also idempotent (grant ids are primary keys), so a replay never changes the answer.
//!
//! **Authority fails closed.** A message that can never be applied (undecodable, schema not
//! found, another record type, an invalid grant, a null value, a database error that is not a
//! lost connection) is never skipped: the consumer stops at it, leaves its offset unstored, logs
//! it and reports it in its [`Status`] (`failed`), and the API refuses every decision that needs
//! a grant (503 `habilitations.unavailable`) and reports it in `/health` until it is resolved. A
//! revocation that cannot be read must never mean "still granted". The event is tried again
//! every [`RECHECK`] (the cause may be repaired, e.g. a deleted schema registered again): once it
//! applies, the replay goes on by itself.
//!
//! **Transient failures never stop it.** Kafka unreachable or restarting (librdkafka reconnects
//! by itself), the registry or PostgreSQL unreachable: the consumer logs, backs off (with
//! jitter, up to [`RETRY_MAX`]), reports `waiting` in its [`Status`] and keeps going; the message
//! in hand is applied again, never skipped. The blocking metadata and watermark requests run on
//! the blocking thread pool, never on the async runtime.
//!
//! Until it has applied everything the topic held when it started (`caught_up`), the API
//! refuses too: a revocation published before this instance started must be in force first.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use socle_kafka::Codec;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::grants::{
    apply_granted, apply_revoked, HabilitationGranted, HabilitationRevoked, GRANTED, REVOKED,
};
use crate::{Error, Result};

/// First delay after a transient failure; doubled at each failure in a row, up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(200);
/// Longest delay between two attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(10);
/// How long the consumer waits for a message before it checks, when it is waiting for Kafka or
/// not caught up yet, whether Kafka answers again and where the topic ends.
const IDLE: Duration = Duration::from_secs(1);
/// How often the event the replay stopped at is tried again (it stays stopped meanwhile).
pub const RECHECK: Duration = Duration::from_secs(30);
/// Timeout of one metadata or watermark request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the habilitations consumer stands, as the API's health reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct State {
    /// It has applied everything the topic held when it started, and holds no message it
    /// could not apply yet (false again while one waits on a transient failure: it may be a
    /// revocation).
    pub caught_up: bool,
    /// A transient failure it is riding out (Kafka, the registry or PostgreSQL unreachable).
    pub waiting: Option<String>,
    /// Why it stopped: an event it cannot apply, at `topic/partition@offset`. Never skipped
    /// (tried again every [`RECHECK`]).
    pub failed: Option<String>,
}

impl State {
    /// Whether the grants in PostgreSQL can be trusted now: caught up and not stopped.
    ///
    /// # Errors
    /// Why not, in words.
    pub fn trusted(&self) -> std::result::Result<(), String> {
        if let Some(failed) = &self.failed {
            return Err(format!("habilitations consumer stopped: {failed}"));
        }
        if !self.caught_up {
            return Err(match &self.waiting {
                Some(w) => format!("habilitations not replayed yet (waiting: {w})"),
                None => "habilitations not replayed yet".to_owned(),
            });
        }
        Ok(())
    }

    /// As [`State::trusted`], and not waiting on a transient failure either (for `/health`).
    ///
    /// # Errors
    /// Why not, in words.
    pub fn healthy(&self) -> std::result::Result<(), String> {
        self.trusted()?;
        match &self.waiting {
            Some(w) => Err(format!("habilitations consumer waiting: {w}")),
            None => Ok(()),
        }
    }
}

/// A consumer's [`State`], shared with whoever reports it (cheap to clone).
#[derive(Debug, Clone)]
pub struct Status(Arc<watch::Sender<State>>);

impl Default for Status {
    fn default() -> Self {
        Status(Arc::new(watch::Sender::new(State::default())))
    }
}

impl Status {
    /// A status that is not caught up yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The state now.
    #[must_use]
    pub fn state(&self) -> State {
        self.0.borrow().clone()
    }

    /// Changes of the state, as they happen.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.0.subscribe()
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        self.0.send_if_modified(|s| {
            let before = s.clone();
            change(s);
            *s != before
        });
    }

    fn waiting(&self, why: String) {
        self.update(|s| s.waiting = Some(why));
    }

    fn resumed(&self) {
        self.update(|s| s.waiting = None);
    }
}

static PROCESS: OnceLock<Status> = OnceLock::new();

/// The status [`run`] reports to, once [`run`] (or [`init_process_status`]) was called in this
/// process (the API's own replay); `None` before. The API refuses grants and reports `/health`
/// from it.
#[must_use]
pub fn process_status() -> Option<Status> {
    PROCESS.get().cloned()
}

/// Creates this process's status (not caught up) if there is none yet, and returns it. Call it
/// before serving when [`run`] is spawned in the background, so that no request is answered
/// before the replay has started.
pub fn init_process_status() -> Status {
    PROCESS.get_or_init(Status::new).clone()
}

/// Runs until `shutdown`, reporting to this process's status ([`process_status`]): one
/// habilitations consumer per API process.
///
/// # Errors
/// Only a Kafka client that cannot be created (bad configuration). Everything else is either
/// retried or reported in the status (see the module documentation).
pub async fn run(
    brokers: &str,
    topic: &str,
    pool: PgPool,
    codec: Arc<Codec>,
    shutdown: CancellationToken,
) -> Result<()> {
    let status = init_process_status();
    run_with_status(brokers, topic, pool, codec, status, shutdown).await
}

/// As [`run`], reporting to `status`.
///
/// # Errors
/// As [`run`].
pub async fn run_with_status(
    brokers: &str,
    topic: &str,
    pool: PgPool,
    codec: Arc<Codec>,
    status: Status,
    shutdown: CancellationToken,
) -> Result<()> {
    status.update(|s| *s = State::default());
    let consumer: Arc<StreamConsumer> = Arc::new(
        socle_kafka::client_config(brokers)
            .set("group.id", "socle-habilitations")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            .create()?,
    );
    let mut backoff = Backoff::default();

    // Where the topic ends now: caught up once every partition is read up to there.
    let ends = loop {
        match watermarks(&consumer, topic).await {
            Ok(ends) => break ends,
            Err(why) => {
                warn!(topic, error = %why, "habilitations: waiting for Kafka");
                status.waiting(why);
                if !backoff.wait(&shutdown).await {
                    return Ok(());
                }
            }
        }
    };
    let stored: Vec<(i32, i64)> = loop {
        match sqlx::query_as(
            "SELECT partition, next_offset FROM habilitations.offsets WHERE topic = $1",
        )
        .bind(topic)
        .fetch_all(&pool)
        .await
        {
            Ok(rows) => break rows,
            Err(e) => {
                warn!(topic, error = %e, "habilitations: waiting for PostgreSQL");
                status.waiting(format!("postgres: {e}"));
                if !backoff.wait(&shutdown).await {
                    return Ok(());
                }
            }
        }
    };
    backoff.reset();
    status.resumed();
    let mut list = TopicPartitionList::new();
    // Partitions not read up to their end yet, and that end.
    let mut behind: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, (low, high)) in &ends {
        let from = stored.iter().find(|(sp, _)| sp == p).map(|(_, o)| *o);
        list.add_partition_offset(topic, *p, from.map_or(Offset::Beginning, Offset::Offset))?;
        let at = from.unwrap_or(*low).max(*low);
        if at < *high {
            behind.insert(*p, *high);
        }
    }
    consumer.assign(&list)?;
    info!(
        topic,
        partitions = ends.len(),
        behind = behind.len(),
        "habilitations consumer assigned"
    );
    if behind.is_empty() {
        status.update(|s| s.caught_up = true);
        info!(topic, "habilitations replayed: caught up");
    }

    loop {
        let received = tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            r = tokio::time::timeout(IDLE, consumer.recv()) => r,
        };
        let message = match received {
            Err(_idle) => {
                // Nothing to read: is Kafka back (after an error), and where does the topic
                // end (control records or deleted segments may hide the last offsets)?
                if status.state().waiting.is_some() || !behind.is_empty() {
                    idle_check(&consumer, topic, &status, &mut behind).await;
                }
                continue;
            }
            Ok(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                halt(&status, &format!("{topic}: fatal consumer error: {e}"));
                shutdown.cancelled().await;
                return Ok(());
            }
            Ok(Err(e)) => {
                // Broker restarting, all brokers down...: librdkafka reconnects by itself.
                warn!(topic, error = %e, "habilitations: kafka consumer error, retrying");
                status.waiting(format!("kafka: {e}"));
                if !backoff.wait(&shutdown).await {
                    return Ok(());
                }
                continue;
            }
            Ok(Ok(m)) => m,
        };
        backoff.reset();
        status.resumed();
        let (partition, offset) = (message.partition(), message.offset());
        let payload = message.payload().map(<[u8]>::to_vec);
        drop(message);
        // The message in hand is applied, or the consumer stops at it: never skipped.
        loop {
            match apply_one(&pool, &codec, topic, partition, offset, payload.as_deref()).await {
                Ok(()) => break,
                Err(e) if is_transient(&e) => {
                    warn!(topic, partition, offset, error = %e, "habilitations: cannot apply yet, retrying");
                    // Grants are stale by this message until it is applied.
                    status.update(|s| {
                        s.waiting = Some(e.to_string());
                        s.caught_up = false;
                    });
                    if !backoff.wait(&shutdown).await {
                        return Ok(());
                    }
                }
                Err(e) => {
                    halt(&status, &format!("{topic}/{partition}@{offset}: {e}"));
                    // Stopped at it, never past it: tried again now and then, since the cause
                    // may be repaired (a deleted schema registered again, a table restored).
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(RECHECK) => {}
                    }
                }
            }
        }
        backoff.reset();
        status.update(|s| {
            if s.failed.take().is_some() {
                info!(
                    topic,
                    partition, offset, "habilitations replay resumed: the event applies now"
                );
            }
            s.waiting = None;
        });
        if behind.get(&partition).is_some_and(|end| offset + 1 >= *end) {
            behind.remove(&partition);
            if behind.is_empty() {
                info!(topic, "habilitations replayed: caught up");
            }
        }
        if behind.is_empty() {
            status.update(|s| s.caught_up = true);
        }
    }
}

fn halt(status: &Status, why: &str) {
    error!(
        reason = why,
        "habilitations consumer stopped at an event it cannot apply: grants are refused until \
         it is resolved (fail closed)"
    );
    status.update(|s| {
        s.failed = Some(why.to_owned());
        s.waiting = None;
    });
}

/// Whether trying the same message again later can succeed: a service unreachable, never a
/// fault of the message itself.
fn is_transient(e: &Error) -> bool {
    match e {
        Error::Kafka(k) => !k.is_poison(),
        Error::Consumer(_) => true,
        Error::Database(db) => match db {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(d) => d.code().is_some_and(|c| {
                // Connection exceptions, serialization failures and deadlocks, insufficient
                // resources, operator intervention (server shutting down), system errors.
                ["08", "40", "53", "57", "58"]
                    .iter()
                    .any(|class| c.starts_with(class))
            }),
            _ => false,
        },
        Error::Migration(_)
        | Error::Policy { .. }
        | Error::Evaluation(_)
        | Error::InvalidGrant(_) => false,
    }
}

/// Applies one message and stores the next offset of its partition, in one transaction.
async fn apply_one(
    pool: &PgPool,
    codec: &Codec,
    topic: &str,
    partition: i32,
    offset: i64,
    payload: Option<&[u8]>,
) -> Result<()> {
    let payload = payload.ok_or_else(|| {
        Error::InvalidGrant("a message without a value (not a grant nor a revocation)".into())
    })?;
    let mut tx = pool.begin().await?;
    apply(&mut tx, codec, payload).await?;
    sqlx::query(
        "INSERT INTO habilitations.offsets (topic, partition, next_offset) VALUES ($1,$2,$3) \
         ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
    )
    .bind(topic)
    .bind(partition)
    .bind(offset + 1)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The partitions of `topic` and their (low, high) watermarks, asked on the blocking pool.
async fn watermarks(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
) -> std::result::Result<BTreeMap<i32, (i64, i64)>, String> {
    let (consumer, topic) = (consumer.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
            .map_err(|e| format!("kafka: {e}"))?;
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| format!("kafka: no metadata for topic {topic}"))?;
        if let Some(e) = t.error() {
            return Err(format!(
                "kafka: topic {topic}: {}",
                rdkafka::types::RDKafkaErrorCode::from(e)
            ));
        }
        if t.partitions().is_empty() {
            return Err(format!("kafka: topic {topic} has no partition"));
        }
        t.partitions()
            .iter()
            .map(|p| {
                consumer
                    .fetch_watermarks(&topic, p.id(), METADATA_TIMEOUT)
                    .map(|w| (p.id(), w))
                    .map_err(|e| format!("kafka: watermarks of {topic}/{}: {e}", p.id()))
            })
            .collect()
    })
    .await
    .map_err(|e| format!("metadata task failed: {e}"))?
}

/// When idle: clears `waiting` once Kafka answers again, and marks as reached the partitions
/// whose consumer position is past their end (trailing control records, deleted segments).
async fn idle_check(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    status: &Status,
    behind: &mut BTreeMap<i32, i64>,
) {
    match watermarks(consumer, topic).await {
        Ok(_) => status.resumed(),
        Err(why) => {
            status.waiting(why);
            return;
        }
    }
    if behind.is_empty() {
        return;
    }
    if let Ok(positions) = consumer.position() {
        for e in positions.elements_for_topic(topic) {
            if let Offset::Offset(at) = e.offset() {
                if behind.get(&e.partition()).is_some_and(|end| at >= *end) {
                    behind.remove(&e.partition());
                }
            }
        }
        if behind.is_empty() {
            status.update(|s| s.caught_up = true);
            info!(topic, "habilitations replayed: caught up");
        }
    }
}

/// Exponential backoff with jitter (50–150 % of the nominal delay).
#[derive(Debug)]
struct Backoff {
    delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { delay: RETRY_FIRST }
    }
}

impl Backoff {
    fn reset(&mut self) {
        self.delay = RETRY_FIRST;
    }

    /// Sleeps the next delay; false if `shutdown` came first.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let random = std::collections::hash_map::RandomState::new().hash_one(self.delay);
        let factor = 0.5 + (random % 1000) as f64 / 1000.0;
        let pause = self.delay.mul_f64(factor);
        self.delay = (self.delay * 2).min(RETRY_MAX);
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(pause) => true,
        }
    }
}

async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    codec: &Codec,
    payload: &[u8],
) -> Result<()> {
    let decoded = codec.decode(payload).await?;
    if decoded.name == GRANTED.name {
        let g: HabilitationGranted = socle_kafka::codec::from_value(decoded.value, &GRANTED)?;
        apply_granted(tx, &g).await
    } else if decoded.name == REVOKED.name {
        let r: HabilitationRevoked = socle_kafka::codec::from_value(decoded.value, &REVOKED)?;
        apply_revoked(tx, &r).await
    } else {
        Err(Error::InvalidGrant(format!(
            "unexpected record {}",
            decoded.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_trusted_only_caught_up_and_not_stopped() {
        let mut s = State::default();
        assert!(s.trusted().is_err(), "not caught up yet");
        s.caught_up = true;
        assert!(s.trusted().is_ok());
        s.waiting = Some("kafka: down".into());
        assert!(s.trusted().is_ok(), "caught up, riding out an outage");
        assert!(s.healthy().is_err(), "health says what it waits for");
        s.failed = Some("t/0@3: unknown schema".into());
        let why = s.trusted().expect_err("stopped");
        assert!(why.contains("t/0@3"), "{why}");
    }

    #[test]
    fn poison_is_never_transient() {
        assert!(!is_transient(&Error::InvalidGrant("x".into())));
        assert!(!is_transient(&Error::Kafka(
            socle_kafka::Error::UnknownSchema("id 7".into())
        )));
        assert!(is_transient(&Error::Database(sqlx::Error::PoolTimedOut)));
    }

    #[tokio::test]
    async fn backoff_grows_with_jitter_and_is_bounded() {
        let mut b = Backoff::default();
        let stop = CancellationToken::new();
        stop.cancel();
        for _ in 0..10 {
            assert!(!b.wait(&stop).await, "shutdown comes first");
        }
        assert_eq!(b.delay, RETRY_MAX);
        b.reset();
        assert_eq!(b.delay, RETRY_FIRST);
    }
}
