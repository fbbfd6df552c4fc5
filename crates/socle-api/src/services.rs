//! The services catalogue: data·inclusion services, reference data for everyone authenticated.
//!
//! The catalogue is not personal data, so it needs no grant: a valid token is enough. It is
//! still an access like any other: each read (and each refusal) appends an access event, with
//! no person id, before the answer leaves.
//!
//! The services live in `reference.services` (PostgreSQL), created by idempotent DDL the first
//! time it is needed ([`ensure_schema`]) and filled by `socle reference load` ([`upsert`]).
//! Each row keeps the data·inclusion document as received, plus the columns the filters use.

// A problem is built at most once per request, on the way out: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::OnceCell;
use tracing::warn;

use crate::access::Access;
use crate::problem::{bad_request, Problem};
use crate::AppState;

/// Largest page of services.
pub const MAX_LIMIT: i64 = 200;

const DDL: &str = "
CREATE SCHEMA IF NOT EXISTS reference;
CREATE TABLE IF NOT EXISTS reference.services (
    id text PRIMARY KEY,
    source text NOT NULL,
    structure_id text NOT NULL,
    nom text NOT NULL,
    thematiques text[] NOT NULL DEFAULT '{}',
    code_insee text,
    doc jsonb NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS services_thematiques ON reference.services USING gin (thematiques);
CREATE INDEX IF NOT EXISTS services_code_insee ON reference.services (code_insee);
";

static READY: OnceCell<()> = OnceCell::const_new();

/// Creates `reference.services` if needed (idempotent; serialized by an advisory lock so that
/// instances starting together do not race).
///
/// # Errors
/// PostgreSQL errors.
pub async fn ensure_schema(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('socle.reference.services'))")
        .execute(&mut *tx)
        .await?;
    for statement in DDL.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// One data·inclusion service, as far as the catalogue needs to read it (the whole document is
/// kept as received).
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceDoc {
    pub id: String,
    pub source: String,
    pub structure_id: String,
    pub nom: String,
    #[serde(default)]
    pub thematiques: Vec<String>,
    pub code_insee: Option<String>,
}

/// Writes (or replaces) `services`, each a data·inclusion service document. Returns how many.
///
/// # Errors
/// A document without `id`, `source`, `structure_id` or `nom` (its index and why), or
/// PostgreSQL errors.
pub async fn upsert(pool: &PgPool, services: &[Value]) -> Result<usize, UpsertError> {
    ensure_schema(pool).await?;
    let mut tx = pool.begin().await?;
    for (i, doc) in services.iter().enumerate() {
        let s: ServiceDoc = serde_json::from_value(doc.clone())
            .map_err(|e| UpsertError::Invalid(i, e.to_string()))?;
        if s.id.trim().is_empty() {
            return Err(UpsertError::Invalid(i, "empty id".into()));
        }
        sqlx::query(
            "INSERT INTO reference.services (id, source, structure_id, nom, thematiques, code_insee, doc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET source = EXCLUDED.source, \
             structure_id = EXCLUDED.structure_id, nom = EXCLUDED.nom, \
             thematiques = EXCLUDED.thematiques, code_insee = EXCLUDED.code_insee, \
             doc = EXCLUDED.doc, loaded_at = now()",
        )
        .bind(&s.id)
        .bind(&s.source)
        .bind(&s.structure_id)
        .bind(&s.nom)
        .bind(&s.thematiques)
        .bind(&s.code_insee)
        .bind(doc)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(services.len())
}

/// Why services could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum UpsertError {
    #[error("service #{0} is not a data·inclusion service: {1}")]
    Invalid(usize, String),
    #[error("PostgreSQL: {0}")]
    Store(#[from] sqlx::Error),
}

/// `GET /services` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesQuery {
    /// A data·inclusion thématique, e.g. `mobilite--etre-accompagne-dans-son-parcours-mobilite`.
    pub thematique: Option<String>,
    /// INSEE commune code.
    pub commune: Option<String>,
    pub limit: Option<i64>,
}

/// A page of services.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServicePage {
    /// data·inclusion service documents, by id.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
}

fn check(q: &ServicesQuery) -> Result<i64, Problem> {
    if let Some(t) = &q.thematique {
        let ok = !t.is_empty()
            && t.len() <= 120
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(bad_request(
                "services.invalid_thematique",
                "thematique is 1 to 120 of [a-z0-9-] (a data·inclusion thématique)",
            ));
        }
    }
    if let Some(c) = &q.commune {
        socle_domain::validate::commune_code(c)
            .map_err(|e| bad_request("services.invalid_commune", format!("commune: {e}")))?;
    }
    match q.limit {
        None => Ok(50),
        Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
        Some(_) => Err(bad_request(
            "request.invalid_limit",
            format!("limit is between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// `GET /services?thematique=&commune=&limit=`: the data·inclusion services catalogue.
#[utoipa::path(get, path = "/services", tag = "reference",
    params(("thematique" = Option<String>, Query, description = "A data·inclusion thématique"),
           ("commune" = Option<String>, Query, description = "INSEE commune code"),
           ("limit" = Option<i64>, Query, description = "1 to 200, default 50")),
    responses(
        (status = 200, description = "Services that match, by id", body = ServicePage),
        (status = 400, description = "Invalid filter", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Access trail, store or identity provider unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ServicesQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let mut access = Access::new(&headers, "services.list", "/services".to_owned());
    let outcome = async {
        access.authenticate(&state, &headers).await?;
        let Query(q) = query.map_err(|e| bad_request("request.invalid_query", e.body_text()))?;
        let limit = check(&q)?;
        READY
            .get_or_try_init(|| ensure_schema(&state.pool))
            .await
            .map_err(|e| store_problem(&e))?;
        let items: Vec<Value> = sqlx::query_scalar(
            "SELECT doc FROM reference.services \
             WHERE ($1::text IS NULL OR $1 = ANY (thematiques)) \
             AND ($2::text IS NULL OR code_insee = $2) ORDER BY id LIMIT $3",
        )
        .bind(&q.thematique)
        .bind(&q.commune)
        .bind(limit)
        .fetch_all(&state.pool)
        .await
        .map_err(|e| store_problem(&e))?;
        Ok(Json(ServicePage { items }).into_response())
    }
    .await;
    access.finish(&state, "/services", outcome).await
}

fn store_problem(e: &dyn std::fmt::Display) -> Problem {
    warn!(error = %e, "services catalogue unavailable");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store.unavailable",
        "Catalogue unavailable",
        "the services catalogue cannot be read; retry later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(t: Option<&str>, c: Option<&str>, l: Option<i64>) -> ServicesQuery {
        ServicesQuery {
            thematique: t.map(str::to_owned),
            commune: c.map(str::to_owned),
            limit: l,
        }
    }

    #[test]
    fn filters_are_checked() {
        assert_eq!(check(&q(None, None, None)).unwrap(), 50);
        assert_eq!(
            check(&q(Some("a'; DROP"), None, None)).unwrap_err().code,
            "services.invalid_thematique"
        );
        assert_eq!(
            check(&q(None, Some("7505"), None)).unwrap_err().code,
            "services.invalid_commune"
        );
        assert_eq!(
            check(&q(None, None, Some(0))).unwrap_err().code,
            "request.invalid_limit"
        );
    }
}
