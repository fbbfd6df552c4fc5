//! The schema registry as ingestion uses it: writer schemas by id (fetched once, cached) and
//! the ids of the contracts it writes (registered once at start).
//!
//! A small client of the Confluent REST API rather than `socle_kafka::Codec`, because ingestion
//! needs to tell apart "the registry does not know this id" (the message's fault: dead letter)
//! from "the registry is unreachable" (ours: retry the batch), and to decode with the writer's
//! schema resolved once per id, not per message.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use apache_avro::Schema;
use socle_kafka::schemas::Contract;

use crate::decode::{reader_for, record_name};
use crate::rules::Rejection;
use crate::{Error, Result};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A writer schema, as named by a message's schema id.
#[derive(Debug)]
pub struct Writer {
    pub id: u32,
    pub schema: Schema,
    /// The ingress contract it is a version of, or why it cannot be read.
    pub reader: std::result::Result<&'static Contract, Rejection>,
    /// Whether it is exactly the reader contract (no resolution needed).
    pub same: bool,
}

/// Registry client with its caches.
#[derive(Debug)]
pub struct Registry {
    base: String,
    http: reqwest::Client,
    writers: RwLock<HashMap<u32, Arc<Writer>>>,
    /// Ids the registry did not know, and when it said so: a flood of messages naming an
    /// unknown id costs one lookup per id per [`UNKNOWN_TTL`], not one per message.
    unknown: RwLock<HashMap<u32, Instant>>,
}

/// How long "the registry does not know this id" is believed (an id may be registered later).
pub const UNKNOWN_TTL: Duration = Duration::from_secs(30);

impl Registry {
    /// A client of the registry at `base` (e.g. `http://localhost:8081`).
    ///
    /// # Errors
    /// [`Error::Registry`] if the HTTP client cannot be built.
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Registry(format!("HTTP client: {e}")))?;
        Ok(Registry {
            base: base.trim_end_matches('/').to_owned(),
            http,
            writers: RwLock::new(HashMap::new()),
            unknown: RwLock::new(HashMap::new()),
        })
    }

    /// The writer schema with id `id`: `Ok(Err(rejection))` when the registry does not know the
    /// id or it is not an Avro record (the message's fault).
    ///
    /// # Errors
    /// [`Error::Registry`] when the registry cannot be reached or answers with a server error.
    pub async fn writer(&self, id: u32) -> Result<std::result::Result<Arc<Writer>, Rejection>> {
        if let Some(w) = self.cached(id) {
            return Ok(Ok(w));
        }
        let unknown = || {
            Rejection::new(
                "schema.unknown_id",
                format!("the registry has no schema with id {id}"),
                None,
            )
        };
        let known_unknown = self
            .unknown
            .read()
            .ok()
            .and_then(|u| u.get(&id).copied())
            .is_some_and(|at| at.elapsed() < UNKNOWN_TTL);
        if known_unknown {
            return Ok(Err(unknown()));
        }
        let url = format!("{}/schemas/ids/{id}", self.base);
        let response = self
            .http
            .get(&url)
            .header("Accept", CONTENT_TYPE)
            .send()
            .await
            .map_err(|e| Error::Registry(format!("GET {url}: {e}")))?;
        let status = response.status();
        if status.as_u16() == 404 {
            if let Ok(mut u) = self.unknown.write() {
                u.retain(|_, at| at.elapsed() < UNKNOWN_TTL);
                u.insert(id, Instant::now());
            }
            return Ok(Err(unknown()));
        }
        if !status.is_success() {
            return Err(Error::Registry(format!("GET {url}: status {status}")));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| Error::Registry(format!("GET {url}: {e}")))?;
        let kind = body["schemaType"].as_str().unwrap_or("AVRO");
        let text = body["schema"].as_str().unwrap_or_default();
        let schema = match (kind, Schema::parse_str(text)) {
            ("AVRO", Ok(s)) => s,
            _ => {
                return Ok(Err(Rejection::new(
                    "schema.not_avro",
                    format!("schema {id} is {kind}, not an Avro record socle can read"),
                    None,
                )))
            }
        };
        let name = record_name(&schema).unwrap_or_default();
        let reader = reader_for(&name).ok_or_else(|| {
            Rejection::new(
                "schema.unexpected_type",
                format!("schema {id} is {name:?}, not an ingress contract (schemas/ingress/)"),
                None,
            )
        });
        let same = reader
            .as_ref()
            .is_ok_and(|r| r.schema.canonical_form() == schema.canonical_form());
        let writer = Arc::new(Writer {
            id,
            schema,
            reader,
            same,
        });
        if let Ok(mut cache) = self.writers.write() {
            cache.insert(id, writer.clone());
        }
        Ok(Ok(writer))
    }

    fn cached(&self, id: u32) -> Option<Arc<Writer>> {
        self.writers.read().ok()?.get(&id).cloned()
    }

    /// Registers `contract` under `<topic>-<record name>` (TopicRecordNameStrategy) and returns
    /// its id; the registry answers with the existing id when it already has it.
    ///
    /// # Errors
    /// [`Error::Registry`] when the registry refuses (e.g. incompatible) or cannot be reached.
    pub async fn register(&self, topic: &str, contract: &Contract) -> Result<u32> {
        let subject = format!("{topic}-{}", contract.name);
        let url = format!("{}/subjects/{subject}/versions", self.base);
        let response = self
            .http
            .post(&url)
            .header("Content-Type", CONTENT_TYPE)
            .json(&serde_json::json!({ "schema": contract.raw }))
            .send()
            .await
            .map_err(|e| Error::Registry(format!("POST {url}: {e}")))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| Error::Registry(format!("POST {url}: status {status}: {e}")))?;
        match body["id"].as_u64().and_then(|id| u32::try_from(id).ok()) {
            Some(id) if status.is_success() => Ok(id),
            _ => Err(Error::Registry(format!(
                "registering {subject}: status {status}: {body}"
            ))),
        }
    }
}
