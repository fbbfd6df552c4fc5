//! The registry's operations on PostgreSQL, with Confluent's rules for
//! versions, soft and hard deletes, configuration and modes. The HTTP layer
//! only decodes requests and encodes answers around these functions.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};

use crate::schema::{self, Compatibility, Mode, ParsedSchema, SchemaType};
use crate::{events, Error, RegistrationKind, RegistrationRecord, RegistrationSink, Result};

/// Key of the advisory lock that serialises writes (registrations, deletes).
const WRITE_LOCK: i64 = 0x736f_636c_6572_6567; // "soclereg"

/// Compatibility level when none was ever configured (Confluent's default).
pub const DEFAULT_COMPATIBILITY: Compatibility = Compatibility::Backward;

/// A reference from one schema to another registered one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema under a subject, as the API returns it.
#[derive(Debug, Clone)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema_type: String,
    pub schema: String,
    pub references: Vec<SchemaReference>,
}

/// A schema as submitted for registration, lookup or compatibility check.
#[derive(Debug, Clone, Default)]
pub struct SchemaInput {
    pub schema: Option<String>,
    pub schema_type: Option<String>,
    pub references: Vec<SchemaReference>,
    pub id: Option<i32>,
    pub version: Option<i32>,
}

/// Which version a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

impl VersionSpec {
    /// Parses `latest`, `-1` or a version in `[1, 2^31-1]`.
    ///
    /// # Errors
    /// [`Error::InvalidVersion`] (42202) for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        if text.eq_ignore_ascii_case("latest") || text == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match text.parse::<i32>() {
            Ok(n) if n > 0 => Ok(VersionSpec::Number(n)),
            _ => Err(Error::InvalidVersion(text.to_owned())),
        }
    }
}

/// A schema as stored, by id.
#[derive(Debug, Clone)]
pub struct StoredSchema {
    pub id: i32,
    pub schema_type: String,
    pub schema: String,
    pub references: Vec<SchemaReference>,
}

/// The registry's state and behaviour, shared by all request handlers.
pub struct Core {
    pub pool: PgPool,
    pub sink: Option<Arc<dyn RegistrationSink>>,
    /// `Some(bound)` when changes are recorded in the `registry.events` outbox.
    pub max_backlog: Option<i64>,
}

type VersionRow = (
    i32,
    i32,
    bool,
    String,
    String,
    sqlx::types::Json<Vec<SchemaReference>>,
);

type ListRow = (
    String,
    i32,
    i32,
    String,
    String,
    sqlx::types::Json<Vec<SchemaReference>>,
);

fn to_subject_version(subject: &str, row: VersionRow) -> SubjectVersion {
    let (version, id, _deleted, schema_type, schema, references) = row;
    SubjectVersion {
        subject: subject.to_owned(),
        version,
        id,
        schema_type,
        schema,
        references: references.0,
    }
}

fn fingerprint(parsed: &ParsedSchema, references: &[SchemaReference]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(parsed.schema_type.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(parsed.canonical.as_bytes());
    for r in references {
        hasher.update([0]);
        hasher.update(format!("{}\u{1}{}\u{1}{}", r.name, r.subject, r.version).as_bytes());
    }
    let digest = hasher.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Core {
    /// All versions of `subject` (soft-deleted included), oldest first.
    async fn rows<'e, E>(&self, executor: E, subject: &str) -> Result<Vec<VersionRow>>
    where
        E: sqlx::Executor<'e, Database = Postgres>,
    {
        Ok(sqlx::query_as(
            "SELECT v.version, v.schema_id, v.deleted, s.schema_type, s.schema_text, s.references_json
               FROM registry.versions v JOIN registry.schemas s ON s.id = v.schema_id
              WHERE v.subject = $1 ORDER BY v.version",
        )
        .bind(subject)
        .fetch_all(executor)
        .await?)
    }

    /// Subjects with at least one live version (or any version with `deleted`).
    pub async fn subjects(&self, deleted: bool, prefix: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT subject FROM registry.versions
              WHERE ($1 OR NOT deleted) AND starts_with(subject, $2) ORDER BY subject",
        )
        .bind(deleted)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Version numbers of `subject`.
    ///
    /// # Errors
    /// 40401 when the subject has no version visible with `deleted`.
    pub async fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>> {
        let versions: Vec<i32> = self
            .rows(&self.pool, subject)
            .await?
            .into_iter()
            .filter(|r| deleted || !r.2)
            .map(|r| r.0)
            .collect();
        if versions.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    /// One version of `subject`.
    ///
    /// # Errors
    /// 40401 when no version of the subject is visible, 40402 when this one is not.
    pub async fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion> {
        let rows: Vec<VersionRow> = self
            .rows(&self.pool, subject)
            .await?
            .into_iter()
            .filter(|r| deleted || !r.2)
            .collect();
        if rows.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        }
        let row = match spec {
            VersionSpec::Latest => rows.into_iter().last(),
            VersionSpec::Number(n) => rows.into_iter().find(|r| r.0 == n),
        };
        row.map(|r| to_subject_version(subject, r))
            .ok_or_else(|| Error::VersionNotFound(spec_text(spec)))
    }

    async fn reference_texts(&self, references: &[SchemaReference]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack: Vec<(SchemaReference, bool)> = references
            .iter()
            .rev()
            .cloned()
            .map(|r| (r, false))
            .collect();
        // Depth-first, dependencies before dependents.
        while let Some((reference, expanded)) = stack.pop() {
            let key = (reference.subject.clone(), reference.version);
            if seen.contains(&key) {
                continue;
            }
            let spec = if reference.version == -1 {
                VersionSpec::Latest
            } else {
                VersionSpec::Number(reference.version)
            };
            let found = self
                .version(&reference.subject, spec, false)
                .await
                .map_err(|_| {
                    Error::InvalidSchema(format!(
                        "Invalid schema: reference {} to subject {} version {} not found",
                        reference.name, reference.subject, reference.version
                    ))
                })?;
            if expanded || found.references.is_empty() {
                seen.insert(key);
                out.push(found.schema);
            } else {
                stack.push((reference, true));
                for inner in found.references.iter().rev() {
                    stack.push((inner.clone(), false));
                }
            }
            if out.len() > 1000 {
                return Err(Error::InvalidSchema(
                    "Invalid schema: too many references".into(),
                ));
            }
        }
        Ok(out)
    }

    /// Validates a submitted schema.
    ///
    /// # Errors
    /// 42201 when it is missing, of an unknown type or invalid.
    pub async fn parse_input(&self, input: &SchemaInput) -> Result<ParsedSchema> {
        let text = input
            .schema
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Error::InvalidSchema("Empty schema".into()))?;
        let schema_type = match input.schema_type.as_deref() {
            None => SchemaType::Avro,
            Some(t) => t
                .parse()
                .map_err(|()| Error::InvalidSchema(format!("Invalid schema type {t}")))?,
        };
        let references = self.reference_texts(&input.references).await?;
        schema::parse(schema_type, text, &references).map_err(Error::InvalidSchema)
    }

    fn parse_stored(schema_type: &str, text: &str, references: &[String]) -> Option<ParsedSchema> {
        let schema_type = schema_type.parse().ok()?;
        schema::parse(schema_type, text, references).ok()
    }

    /// Live versions of `subject`, parsed, oldest first.
    async fn live_parsed<'e, E>(
        &self,
        executor: E,
        subject: &str,
    ) -> Result<Vec<(i32, ParsedSchema)>>
    where
        E: sqlx::Executor<'e, Database = Postgres>,
    {
        let mut out = Vec::new();
        for row in self.rows(executor, subject).await? {
            if row.2 {
                continue;
            }
            let references = self.reference_texts(&row.5 .0).await?;
            match Self::parse_stored(&row.3, &row.4, &references) {
                Some(parsed) => out.push((row.0, parsed)),
                None => tracing::warn!(subject, version = row.0, "stored schema no longer parses"),
            }
        }
        Ok(out)
    }

    /// Effective compatibility level of `subject` (its own, else the global one).
    pub async fn compatibility(&self, subject: Option<&str>) -> Result<Compatibility> {
        if let Some(s) = subject {
            if let Some(level) = self.config(s).await? {
                return Ok(level);
            }
        }
        Ok(self.config("").await?.unwrap_or(DEFAULT_COMPATIBILITY))
    }

    /// The level configured for `subject` ('' = global), if any.
    pub async fn config(&self, subject: &str) -> Result<Option<Compatibility>> {
        let level: Option<String> =
            sqlx::query_scalar("SELECT compatibility FROM registry.config WHERE subject = $1")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        Ok(level.and_then(|l| l.parse().ok()))
    }

    /// Sets the level of `subject` ('' = global), as `actor`. Setting the level
    /// already configured changes nothing and records no event.
    pub async fn set_config(&self, subject: &str, level: Compatibility, actor: &str) -> Result<()> {
        self.change_config(subject, Some(level), actor).await?;
        Ok(())
    }

    /// Removes the level of `subject` ('' = global), as `actor`; returns it.
    pub async fn delete_config(&self, subject: &str, actor: &str) -> Result<Option<Compatibility>> {
        self.change_config(subject, None, actor).await
    }

    /// Sets (`Some`) or removes (`None`) the level of `subject`; returns the
    /// level configured before. Any change of the configured level is an event.
    async fn change_config(
        &self,
        subject: &str,
        level: Option<Compatibility>,
        actor: &str,
    ) -> Result<Option<Compatibility>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        let configured = |subject: &str| {
            sqlx::query_scalar::<_, String>(
                "SELECT compatibility FROM registry.config WHERE subject = $1",
            )
            .bind(subject.to_owned())
        };
        let old: Option<Compatibility> = configured(subject)
            .fetch_optional(&mut *tx)
            .await?
            .and_then(|l| l.parse().ok());
        if old == level {
            return Ok(old);
        }
        // What a removal falls back to: the global level, or the default for the global one.
        let fallback = if subject.is_empty() {
            DEFAULT_COMPATIBILITY
        } else {
            configured("")
                .fetch_optional(&mut *tx)
                .await?
                .and_then(|l| l.parse().ok())
                .unwrap_or(DEFAULT_COMPATIBILITY)
        };
        self.check_backlog(&mut tx).await?;
        match level {
            Some(level) => {
                sqlx::query(
                    "INSERT INTO registry.config (subject, compatibility) VALUES ($1, $2)
                     ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
                )
                .bind(subject)
                .bind(level.as_str())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM registry.config WHERE subject = $1")
                    .bind(subject)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let records = vec![RegistrationRecord {
            event_id: uuid::Uuid::now_v7().to_string(),
            kind: RegistrationKind::CompatibilityChanged,
            subject: subject.to_owned(),
            version: 0,
            id: 0,
            schema_type: String::new(),
            schema: String::new(),
            references: Vec::new(),
            compatibility: Some(level.unwrap_or(fallback).as_str().to_owned()),
            previous: old.map(|l| l.as_str().to_owned()),
            actor: actor.to_owned(),
            at: Utc::now(),
        }];
        self.record(&mut tx, &records).await?;
        tx.commit().await?;
        self.notify(records);
        Ok(old)
    }

    /// The mode configured for `subject` ('' = global), if any.
    pub async fn mode(&self, subject: &str) -> Result<Option<Mode>> {
        let mode: Option<String> =
            sqlx::query_scalar("SELECT mode FROM registry.modes WHERE subject = $1")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        Ok(mode.and_then(|m| m.parse().ok()))
    }

    /// Effective mode of `subject` (its own, else the global one).
    pub async fn effective_mode(&self, subject: &str) -> Result<Mode> {
        if let Some(mode) = self.mode(subject).await? {
            return Ok(mode);
        }
        Ok(self.mode("").await?.unwrap_or(Mode::ReadWrite))
    }

    /// Sets the mode of `subject` ('' = global).
    pub async fn set_mode(&self, subject: &str, mode: Mode) -> Result<()> {
        sqlx::query(
            "INSERT INTO registry.modes (subject, mode) VALUES ($1, $2)
             ON CONFLICT (subject) DO UPDATE SET mode = EXCLUDED.mode",
        )
        .bind(subject)
        .bind(mode.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the mode of `subject`; returns it.
    pub async fn delete_mode(&self, subject: &str) -> Result<Option<Mode>> {
        let old: Option<String> =
            sqlx::query_scalar("DELETE FROM registry.modes WHERE subject = $1 RETURNING mode")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        Ok(old.and_then(|m| m.parse().ok()))
    }

    async fn ensure_writable(&self, subject: &str) -> Result<()> {
        match self.effective_mode(subject).await? {
            Mode::ReadOnly | Mode::ReadOnlyOverride => Err(Error::OperationNotPermitted(format!(
                "Subject {subject} is in read-only mode"
            ))),
            Mode::ReadWrite | Mode::Import => Ok(()),
        }
    }

    /// A record of a change to a subject version.
    fn version_record(
        kind: RegistrationKind,
        subject: &str,
        version: i32,
        stored: &StoredSchema,
        actor: &str,
    ) -> RegistrationRecord {
        RegistrationRecord {
            event_id: uuid::Uuid::now_v7().to_string(),
            kind,
            subject: subject.to_owned(),
            version,
            id: stored.id,
            schema_type: stored.schema_type.clone(),
            schema: stored.schema.clone(),
            references: stored.references.clone(),
            compatibility: None,
            previous: None,
            actor: actor.to_owned(),
            at: Utc::now(),
        }
    }

    /// Refuses a change while the outbox holds `max_backlog` unpublished
    /// events (to be called under the write lock, before changing anything).
    async fn check_backlog(&self, tx: &mut Transaction<'_, Postgres>) -> Result<()> {
        if let Some(max) = self.max_backlog {
            let waiting = events::backlog(&mut **tx).await?;
            if waiting >= max {
                return Err(Error::EventBacklogFull(waiting));
            }
        }
        Ok(())
    }

    /// Records `records` in the outbox within `tx`, when events are enabled.
    async fn record(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        records: &[RegistrationRecord],
    ) -> Result<()> {
        if self.max_backlog.is_some() {
            for record in records {
                events::insert(tx, record).await?;
            }
        }
        Ok(())
    }

    /// Hands committed `records` to the sink.
    fn notify(&self, records: Vec<RegistrationRecord>) {
        if let Some(sink) = &self.sink {
            for record in records {
                sink.record(record);
            }
        }
    }

    async fn stored_in(tx: &mut Transaction<'_, Postgres>, id: i32) -> Result<StoredSchema> {
        let (schema_type, schema, references): (
            String,
            String,
            sqlx::types::Json<Vec<SchemaReference>>,
        ) = sqlx::query_as(
            "SELECT schema_type, schema_text, references_json FROM registry.schemas WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
        Ok(StoredSchema {
            id,
            schema_type,
            schema,
            references: references.0,
        })
    }

    /// Registers a schema under `subject`; returns its global id.
    ///
    /// # Errors
    /// 42201 invalid schema, 409 incompatible, 42205 read-only mode.
    pub async fn register(
        &self,
        subject: &str,
        input: &SchemaInput,
        normalize: bool,
        actor: &str,
    ) -> Result<i32> {
        let mode = self.effective_mode(subject).await?;
        self.ensure_writable(subject).await?;
        let parsed = self.parse_input(input).await?;
        let print = fingerprint(&parsed, &input.references);
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = self.rows(&mut *tx, subject).await?;
        let existing_id: Option<i32> =
            sqlx::query_scalar("SELECT id FROM registry.schemas WHERE fingerprint = $1")
                .bind(&print)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(id) = existing_id {
            if rows.iter().any(|r| !r.2 && r.1 == id) {
                return Ok(id);
            }
        }
        if mode != Mode::Import {
            let level = self.compatibility(Some(subject)).await?;
            let existing = self.live_parsed(&mut *tx, subject).await?;
            let errors = schema::check_compatibility(level, &parsed, &existing);
            if !errors.is_empty() {
                return Err(Error::Incompatible {
                    subject: subject.to_owned(),
                    details: errors,
                });
            }
        }
        self.check_backlog(&mut tx).await?;
        let text = if normalize {
            parsed.canonical.clone()
        } else {
            input.schema.clone().unwrap_or_default()
        };
        let id = match existing_id {
            Some(id) => id,
            None => {
                let requested = input.id.filter(|i| *i > 0 && mode == Mode::Import);
                self.insert_schema(
                    &mut tx,
                    requested,
                    &parsed,
                    &text,
                    &print,
                    &input.references,
                )
                .await?
            }
        };
        let next = rows.iter().map(|r| r.0).max().unwrap_or(0) + 1;
        let version = match (mode, input.version) {
            (Mode::Import, Some(v)) if v > 0 => v,
            _ => next,
        };
        sqlx::query(
            "INSERT INTO registry.versions (subject, version, schema_id) VALUES ($1, $2, $3)",
        )
        .bind(subject)
        .bind(version)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let stored = Self::stored_in(&mut tx, id).await?;
        let records = vec![Self::version_record(
            RegistrationKind::Registered,
            subject,
            version,
            &stored,
            actor,
        )];
        self.record(&mut tx, &records).await?;
        tx.commit().await?;
        crate::metrics::REGISTRATIONS.inc();
        self.notify(records);
        Ok(id)
    }

    async fn insert_schema(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        requested: Option<i32>,
        parsed: &ParsedSchema,
        text: &str,
        print: &str,
        references: &[SchemaReference],
    ) -> Result<i32> {
        let id: i32 = match requested {
            Some(id) => id,
            None => {
                sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM registry.schemas")
                    .fetch_one(&mut **tx)
                    .await?
            }
        };
        sqlx::query(
            "INSERT INTO registry.schemas (id, schema_type, schema_text, canonical, references_json, fingerprint)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(parsed.schema_type.as_str())
        .bind(text)
        .bind(&parsed.canonical)
        .bind(sqlx::types::Json(references))
        .bind(print)
        .execute(&mut **tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::OperationNotPermitted(
                format!("Schema id {id} is already used by another schema"),
            ),
            _ => Error::Database(e),
        })?;
        Ok(id)
    }

    /// Finds `input` among the versions of `subject`.
    ///
    /// # Errors
    /// 40401 no such subject, 40403 schema not under it, 42201 invalid schema.
    pub async fn lookup(
        &self,
        subject: &str,
        input: &SchemaInput,
        deleted: bool,
    ) -> Result<SubjectVersion> {
        let rows: Vec<VersionRow> = self
            .rows(&self.pool, subject)
            .await?
            .into_iter()
            .filter(|r| deleted || !r.2)
            .collect();
        if rows.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        }
        let parsed = self.parse_input(input).await?;
        let print = fingerprint(&parsed, &input.references);
        let id: Option<i32> =
            sqlx::query_scalar("SELECT id FROM registry.schemas WHERE fingerprint = $1")
                .bind(&print)
                .fetch_optional(&self.pool)
                .await?;
        let mut matching: Vec<VersionRow> = rows.into_iter().filter(|r| Some(r.1) == id).collect();
        // Prefer a live version, then the newest.
        matching.sort_by_key(|r| (!r.2, r.0));
        matching
            .pop()
            .map(|r| to_subject_version(subject, r))
            .ok_or_else(|| Error::SchemaNotFound(String::new()))
    }

    /// Checks `input` against a version of `subject` (or all live versions when
    /// `spec` is `None`) with the subject's level; returns the incompatibilities.
    ///
    /// # Errors
    /// 40401/40402 when the named version does not exist, 42201 invalid schema.
    pub async fn check(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        input: &SchemaInput,
    ) -> Result<Vec<String>> {
        let level = self.compatibility(Some(subject)).await?;
        let live = self.live_parsed(&self.pool, subject).await?;
        let against: Vec<(i32, ParsedSchema)> = match spec {
            None => live,
            Some(VersionSpec::Latest) => live.into_iter().last().into_iter().collect(),
            Some(VersionSpec::Number(n)) => {
                let found: Vec<_> = live.into_iter().filter(|(v, _)| *v == n).collect();
                if found.is_empty() {
                    return Err(Error::VersionNotFound(n.to_string()));
                }
                found
            }
        };
        let parsed = self.parse_input(input).await?;
        Ok(schema::check_compatibility(level, &parsed, &against))
    }

    /// A schema by its global id (only while some version, even soft-deleted, uses it).
    ///
    /// # Errors
    /// 40403 when there is none.
    pub async fn schema_by_id(&self, id: i32) -> Result<StoredSchema> {
        let row: Option<(String, String, sqlx::types::Json<Vec<SchemaReference>>)> = sqlx::query_as(
            "SELECT schema_type, schema_text, references_json FROM registry.schemas s
              WHERE id = $1 AND EXISTS (SELECT 1 FROM registry.versions v WHERE v.schema_id = s.id)",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let (schema_type, schema, references) =
            row.ok_or_else(|| Error::SchemaNotFound(id.to_string()))?;
        Ok(StoredSchema {
            id,
            schema_type,
            schema,
            references: references.0,
        })
    }

    /// (subject, version) pairs using schema `id`.
    ///
    /// # Errors
    /// 40403 when there is none.
    pub async fn id_versions(&self, id: i32, deleted: bool) -> Result<Vec<(String, i32)>> {
        let rows: Vec<(String, i32)> = sqlx::query_as(
            "SELECT subject, version FROM registry.versions
              WHERE schema_id = $1 AND ($2 OR NOT deleted) ORDER BY subject, version",
        )
        .bind(id)
        .bind(deleted)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(Error::SchemaNotFound(id.to_string()));
        }
        Ok(rows)
    }

    /// Schemas under subjects starting with `prefix` (`GET /schemas`).
    pub async fn list(
        &self,
        prefix: &str,
        deleted: bool,
        latest_only: bool,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<SubjectVersion>> {
        let rows: Vec<ListRow> =
            sqlx::query_as(
                "SELECT v.subject, v.version, v.schema_id, s.schema_type, s.schema_text, s.references_json
                   FROM registry.versions v JOIN registry.schemas s ON s.id = v.schema_id
                  WHERE ($1 OR NOT v.deleted) AND starts_with(v.subject, $2)
                    AND (NOT $3 OR v.version = (SELECT MAX(w.version) FROM registry.versions w
                                                 WHERE w.subject = v.subject AND ($1 OR NOT w.deleted)))
                  ORDER BY v.subject, v.version OFFSET $4 LIMIT $5",
            )
            .bind(deleted)
            .bind(prefix)
            .bind(latest_only)
            .bind(offset.max(0))
            .bind(if limit <= 0 { i64::MAX } else { limit })
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(subject, version, id, schema_type, schema, references)| SubjectVersion {
                    subject,
                    version,
                    id,
                    schema_type,
                    schema,
                    references: references.0,
                },
            )
            .collect())
    }

    /// Ids of live schemas that reference `subject` version `version`.
    pub async fn referenced_by(&self, subject: &str, version: i32) -> Result<Vec<i32>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT s.id FROM registry.schemas s JOIN registry.versions v ON v.schema_id = s.id
              WHERE NOT v.deleted AND s.references_json @> jsonb_build_array(jsonb_build_object('subject', $1::text, 'version', $2::int))
              ORDER BY s.id",
        )
        .bind(subject)
        .bind(version)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes a subject, softly or (after a soft delete) permanently.
    ///
    /// # Errors
    /// 40401, 40404 (already soft-deleted), 40405 (permanent before soft), 42206.
    pub async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
        actor: &str,
    ) -> Result<Vec<i32>> {
        self.ensure_writable(subject).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = self.rows(&mut *tx, subject).await?;
        if rows.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        }
        let live: Vec<&VersionRow> = rows.iter().filter(|r| !r.2).collect();
        for row in &live {
            if !self.referenced_by(subject, row.0).await?.is_empty() {
                return Err(Error::ReferenceExists(subject.to_owned(), row.0));
            }
        }
        let versions: Vec<i32>;
        self.check_backlog(&mut tx).await?;
        if permanent {
            if !live.is_empty() {
                return Err(Error::SubjectNotSoftDeleted(subject.to_owned()));
            }
            versions = rows.iter().map(|r| r.0).collect();
            sqlx::query("DELETE FROM registry.versions WHERE subject = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            for table in ["registry.config", "registry.modes"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE subject = $1"))
                    .bind(subject)
                    .execute(&mut *tx)
                    .await?;
            }
        } else {
            if live.is_empty() {
                return Err(Error::SubjectSoftDeleted(subject.to_owned()));
            }
            versions = live.iter().map(|r| r.0).collect();
            sqlx::query("UPDATE registry.versions SET deleted = true WHERE subject = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
        }
        let kind = if permanent {
            RegistrationKind::HardDeleted
        } else {
            RegistrationKind::SoftDeleted
        };
        let records: Vec<RegistrationRecord> = rows
            .iter()
            .filter(|r| versions.contains(&r.0))
            .map(|row| {
                let stored = StoredSchema {
                    id: row.1,
                    schema_type: row.3.clone(),
                    schema: row.4.clone(),
                    references: row.5 .0.clone(),
                };
                Self::version_record(kind, subject, row.0, &stored, actor)
            })
            .collect();
        self.record(&mut tx, &records).await?;
        tx.commit().await?;
        self.notify(records);
        Ok(versions)
    }

    /// Deletes one version, softly or (after a soft delete) permanently.
    ///
    /// # Errors
    /// 40401, 40402, 40406 (already soft-deleted), 40407 (permanent before soft), 42206.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
        actor: &str,
    ) -> Result<i32> {
        self.ensure_writable(subject).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = self.rows(&mut *tx, subject).await?;
        let visible: Vec<&VersionRow> = rows.iter().filter(|r| permanent || !r.2).collect();
        if visible.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        }
        let row = match spec {
            VersionSpec::Latest => visible.last().copied(),
            VersionSpec::Number(n) => visible.iter().copied().find(|r| r.0 == n),
        }
        .ok_or_else(|| Error::VersionNotFound(spec_text(spec)))?;
        let version = row.0;
        self.check_backlog(&mut tx).await?;
        if permanent {
            if !row.2 {
                return Err(Error::VersionNotSoftDeleted(subject.to_owned(), version));
            }
            sqlx::query("DELETE FROM registry.versions WHERE subject = $1 AND version = $2")
                .bind(subject)
                .bind(version)
                .execute(&mut *tx)
                .await?;
        } else {
            if !self.referenced_by(subject, version).await?.is_empty() {
                return Err(Error::ReferenceExists(subject.to_owned(), version));
            }
            sqlx::query(
                "UPDATE registry.versions SET deleted = true WHERE subject = $1 AND version = $2",
            )
            .bind(subject)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        }
        let stored = StoredSchema {
            id: row.1,
            schema_type: row.3.clone(),
            schema: row.4.clone(),
            references: row.5 .0.clone(),
        };
        let kind = if permanent {
            RegistrationKind::HardDeleted
        } else {
            RegistrationKind::SoftDeleted
        };
        let records = vec![Self::version_record(kind, subject, version, &stored, actor)];
        self.record(&mut tx, &records).await?;
        tx.commit().await?;
        self.notify(records);
        Ok(version)
    }

    /// Whether some version (live or soft-deleted) exists under `subject`.
    pub async fn subject_exists(&self, subject: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM registry.versions WHERE subject = $1)",
            )
            .bind(subject)
            .fetch_one(&self.pool)
            .await?,
        )
    }
}

fn spec_text(spec: VersionSpec) -> String {
    match spec {
        VersionSpec::Latest => "latest".to_owned(),
        VersionSpec::Number(n) => n.to_string(),
    }
}
