//! socle-registry: a Confluent-compatible schema registry backed by PostgreSQL.
//!
//! Producers and consumers of socle's topics, and the backbone itself, resolve
//! Avro schemas through this registry: it speaks the Confluent Schema Registry
//! REST API (subjects, versions, global ids, configuration, compatibility
//! checks, soft and hard deletes) so that any Confluent client works unchanged,
//! and keeps its state in the `registry` schema of socle's PostgreSQL database,
//! which makes it as durable as the rest of the backbone's state.
//!
//! Every change (registration, deletion, compatibility change) can also be an
//! event: [`Registry::with_events`] writes it to an outbox table in the same
//! transaction as the change, with who made it (`X-Socle-User`), and a relay
//! ([`Registry::pending_events`]; `socle registry` runs the one in
//! `socle-contracts`) publishes it.
//!
//! ```no_run
//! # async fn run(pool: sqlx::PgPool) -> socle_registry::Result<()> {
//! let registry = socle_registry::Registry::new(pool).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! registry.serve(listener, std::future::pending()).await
//! # }
//! ```
//!
//! See `docs/registry.md` for the supported API, error codes, divergences from
//! Confluent's registry and the conformance results.

mod avro;
mod core;
mod error;
mod events;
mod http;
mod json_schema;
mod metrics;
mod protobuf;
pub mod schema;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

pub use crate::core::{SchemaReference, DEFAULT_COMPATIBILITY};
pub use crate::error::{Error, Result};
pub use crate::events::{PendingEvents, DEFAULT_MAX_BACKLOG};
pub use crate::http::{ANONYMOUS, CONTENT_TYPE, PRINCIPAL_HEADER};

/// DDL of the registry's tables, idempotent.
const MIGRATION: &str = include_str!("../migrations/registry.sql");

/// Key of the advisory lock taken while the DDL runs (several instances may start at once).
const MIGRATION_LOCK: i64 = 20_000;

/// What happened to a subject version, or to a compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RegistrationKind {
    /// A new version was registered.
    Registered,
    /// A version was soft-deleted (still readable with `deleted=true`).
    SoftDeleted,
    /// A version was permanently deleted.
    HardDeleted,
    /// The compatibility level of a subject (or the global one) changed.
    CompatibilityChanged,
}

/// One change to the registry's contents or configuration, handed to a
/// [`RegistrationSink`] and, when events are enabled
/// ([`Registry::with_events`]), stored in the `registry.events` outbox in the
/// same transaction as the change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegistrationRecord {
    /// UUIDv7 given when the change is committed; the event's id, kept across
    /// publication retries so that consumers can drop duplicates.
    pub event_id: String,
    pub kind: RegistrationKind,
    /// The subject; `""` for the global compatibility level.
    pub subject: String,
    /// Subject version (0 for [`RegistrationKind::CompatibilityChanged`]).
    pub version: i32,
    /// Global schema id (0 for [`RegistrationKind::CompatibilityChanged`]).
    pub id: i32,
    /// `AVRO`, `JSON` or `PROTOBUF` (empty for a compatibility change).
    pub schema_type: String,
    /// The schema text (empty for a compatibility change).
    pub schema: String,
    #[serde(default)]
    pub references: Vec<SchemaReference>,
    /// For a compatibility change: the level now in effect.
    #[serde(default)]
    pub compatibility: Option<String>,
    /// For a compatibility change: the level in effect before, if one was set.
    #[serde(default)]
    pub previous: Option<String>,
    /// Who made the change: the `X-Socle-User` header, else `anonymous`.
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// Receives every registration, deletion and compatibility change after it is
/// committed. A sink alone is best effort (a crash between the commit and the
/// call loses the notification); [`Registry::with_events`] is the durable path.
pub trait RegistrationSink: Send + Sync + 'static {
    /// Called once per changed subject version or level; must not block.
    fn record(&self, record: RegistrationRecord);
}

impl RegistrationSink for tokio::sync::mpsc::UnboundedSender<RegistrationRecord> {
    fn record(&self, record: RegistrationRecord) {
        if self.send(record).is_err() {
            tracing::warn!("registration sink closed; registration event dropped");
        }
    }
}

/// The schema registry service.
#[derive(Clone)]
pub struct Registry {
    core: Arc<core::Core>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Creates or migrates the registry's tables (PostgreSQL schema `registry`).
    ///
    /// # Errors
    /// [`Error::Database`] when PostgreSQL cannot be reached or the DDL fails.
    pub async fn new(pool: PgPool) -> Result<Registry> {
        Self::migrate(&pool).await?;
        Ok(Self::open(pool))
    }

    /// The registry on tables already created by [`Registry::migrate`] (`socle migrate`).
    #[must_use]
    pub fn open(pool: PgPool) -> Registry {
        Registry {
            core: Arc::new(core::Core {
                pool,
                sink: None,
                max_backlog: None,
            }),
        }
    }

    /// Creates or migrates the registry's tables (serialised by an advisory lock).
    ///
    /// # Errors
    /// [`Error::Database`] when PostgreSQL cannot be reached or the DDL fails.
    pub async fn migrate(pool: &PgPool) -> Result<()> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        // Statement by statement: `raw_sql` futures are not `Send` for every
        // lifetime, which would stop callers from spawning this one.
        for statement in MIGRATION.split(";\n").map(str::trim).filter(|s| {
            s.lines()
                .any(|l| !l.trim().is_empty() && !l.trim().starts_with("--"))
        }) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sends every committed registration, deletion and compatibility change to `sink`.
    #[must_use]
    pub fn with_sink(self, sink: Arc<dyn RegistrationSink>) -> Registry {
        Registry {
            core: Arc::new(core::Core {
                pool: self.core.pool.clone(),
                sink: Some(sink),
                max_backlog: self.core.max_backlog,
            }),
        }
    }

    /// Records every change as an event in the `registry.events` outbox, in the
    /// same transaction as the change, for a relay to publish
    /// ([`Registry::pending_events`]). Changes are refused (503, error code
    /// 50301) while `max_backlog` events or more wait for publication:
    /// back-pressure rather than an unbounded queue, and never a silent drop.
    #[must_use]
    pub fn with_events(self, max_backlog: i64) -> Registry {
        Registry {
            core: Arc::new(core::Core {
                pool: self.core.pool.clone(),
                sink: self.core.sink.clone(),
                max_backlog: Some(max_backlog.max(1)),
            }),
        }
    }

    /// Registers `schema` (Avro) under `subject` in-process, as `actor`, with
    /// the same rules as `POST /subjects/{subject}/versions`; returns its id.
    /// Used by the registry to register its own event contracts before it serves.
    ///
    /// # Errors
    /// As the HTTP registration: 42201 invalid, 409 incompatible, 42205 read-only.
    pub async fn register_schema(&self, subject: &str, schema: &str, actor: &str) -> Result<i32> {
        let input = core::SchemaInput {
            schema: Some(schema.to_owned()),
            ..core::SchemaInput::default()
        };
        self.core.register(subject, &input, false, actor).await
    }

    /// The id of `schema` (Avro) if it is a live version of `subject`: what
    /// [`Registry::register_schema`] would return without changing anything, and
    /// answered in read-only mode too.
    ///
    /// # Errors
    /// 42201 for an invalid schema, 50001 when PostgreSQL fails.
    pub async fn lookup_schema(&self, subject: &str, schema: &str) -> Result<Option<i32>> {
        let input = core::SchemaInput {
            schema: Some(schema.to_owned()),
            ..core::SchemaInput::default()
        };
        match self.core.lookup(subject, &input, false).await {
            Ok(found) => Ok(Some(found.id)),
            Err(Error::SubjectNotFound(_) | Error::SchemaNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets the compatibility level of `subject` (`""` = global) in-process, as `actor`.
    ///
    /// # Errors
    /// 42203 for an unknown level, 50001 when PostgreSQL fails.
    pub async fn set_compatibility(&self, subject: &str, level: &str, actor: &str) -> Result<()> {
        let level = level.parse().map_err(|()| Error::InvalidCompatibility)?;
        self.core.set_config(subject, level, actor).await
    }

    /// Leases up to `limit` unpublished registration events, oldest first, for
    /// a relay to publish; `None` while another relay holds the lease.
    ///
    /// # Errors
    /// [`Error::Database`] when PostgreSQL fails.
    pub async fn pending_events(&self, limit: i64) -> Result<Option<PendingEvents>> {
        PendingEvents::lease(&self.core.pool, limit).await
    }

    /// Number of registration events waiting to be published.
    ///
    /// # Errors
    /// [`Error::Database`] when PostgreSQL fails.
    pub async fn events_backlog(&self) -> Result<i64> {
        events::backlog(&self.core.pool).await
    }

    /// The HTTP API (Confluent REST API, plus `/health` and `/metrics`).
    pub fn router(&self) -> axum::Router {
        http::router(Arc::clone(&self.core))
    }

    /// Serves the API on `listener` until `shutdown` completes.
    ///
    /// # Errors
    /// [`Error::Io`] when the server fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "schema registry listening");
        }
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// An error and its causes, for logs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
