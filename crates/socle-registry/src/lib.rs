//! socle-registry: a Confluent-compatible schema registry backed by PostgreSQL.
//!
//! Producers and consumers of socle's topics, and the backbone itself, resolve
//! Avro schemas through this registry: it speaks the Confluent Schema Registry
//! REST API (subjects, versions, global ids, configuration, compatibility
//! checks, soft and hard deletes) so that any Confluent client works unchanged,
//! and keeps its state in the `registry` schema of socle's PostgreSQL database,
//! which makes it as durable as the rest of the backbone's state.
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
pub use crate::http::CONTENT_TYPE;

/// DDL of the registry's tables, idempotent.
const MIGRATION: &str = include_str!("../migrations/registry.sql");

/// Key of the advisory lock taken while the DDL runs (several instances may start at once).
const MIGRATION_LOCK: i64 = 20_000;

/// What happened to a subject version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationKind {
    /// A new version was registered.
    Registered,
    /// A version was soft-deleted (still readable with `deleted=true`).
    SoftDeleted,
    /// A version was permanently deleted.
    HardDeleted,
}

/// One change to the registry's contents, handed to a [`RegistrationSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRecord {
    pub kind: RegistrationKind,
    pub subject: String,
    pub version: i32,
    /// Global schema id.
    pub id: i32,
    /// `AVRO`, `JSON` or `PROTOBUF`.
    pub schema_type: String,
    pub schema: String,
    pub at: DateTime<Utc>,
}

/// Receives every registration and deletion after it is committed.
pub trait RegistrationSink: Send + Sync + 'static {
    /// Called once per changed subject version; must not block.
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
        Ok(Registry {
            core: Arc::new(core::Core { pool, sink: None }),
        })
    }

    async fn migrate(pool: &PgPool) -> Result<()> {
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

    /// Sends every committed registration and deletion to `sink`.
    #[must_use]
    pub fn with_sink(self, sink: Arc<dyn RegistrationSink>) -> Registry {
        let pool = self.core.pool.clone();
        Registry {
            core: Arc::new(core::Core {
                pool,
                sink: Some(sink),
            }),
        }
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
