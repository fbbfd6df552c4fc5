//! Per-ecosystem read models: one PostgreSQL schema per ecosystem, holding only the people its
//! agreement puts in scope and only the fields it grants (the other columns do not exist), plus
//! the links (follows, prescriptions) that make up each organisation's caseload.
//!
//! Defence in depth: each ecosystem has a NOLOGIN role with `SELECT` on its own schema only, and
//! row-level security inside it lets that role see a person only when the caller's organisation
//! (`socle.organisation`, set per transaction) is linked to the person, or the person lives in one
//! of the caller's territories (`socle.territories`). The API reads through [`read_person`] and
//! [`caseload`], which assume the role for the transaction.

use std::collections::HashSet;

use chrono::NaiveDate;
use serde_json::{Map, Value};
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::core::Val;
use crate::{ident, Error, Result};

/// The shape of one ecosystem's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub ecosystem: String,
    /// Schema name, e.g. `eco_cap_emploi`.
    pub schema: String,
    /// Role the API assumes, e.g. `socle_eco_cap_emploi`.
    pub role: String,
    /// The agreement version the rows are built under.
    pub version: String,
    /// Granted columns and their SQL types (`text`, `date`, `boolean`).
    pub columns: Vec<(String, &'static str)>,
}

/// A link between an organisation and a person: the caseload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub person_id: Uuid,
    pub organisation: String,
    /// `follow` or `prescription`.
    pub kind: &'static str,
    pub ref_id: Uuid,
    pub territory: Option<String>,
    pub since: Option<NaiveDate>,
}

impl Model {
    fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|(c, _)| c == column)
    }
}

/// Creates the model's schema, tables, role, grants and row-level security if needed.
///
/// # Errors
/// [`Error::ModelOutdated`] when the schema was built under another agreement version (a replay
/// is needed), [`Error::Database`], [`Error::BadIdentifier`].
pub async fn ensure(tx: &mut Transaction<'_, Postgres>, model: &Model) -> Result<()> {
    let schema = ident(&model.schema)?;
    let role = ident(&model.role)?;
    for (c, t) in &model.columns {
        ident(c)?;
        if !matches!(*t, "text" | "date" | "boolean") {
            return Err(Error::BadIdentifier((*t).to_owned()));
        }
    }
    // Serialise model creation across projector instances (roles are cluster-wide).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('socle.models'))")
        .execute(&mut **tx)
        .await?;
    let built: Option<(String, Vec<String>)> = sqlx::query_as(
        "SELECT agreement_version, columns FROM projector.models WHERE schema_name = $1",
    )
    .bind(schema)
    .fetch_optional(&mut **tx)
    .await?;
    let wanted: Vec<String> = model.columns.iter().map(|(c, _)| c.clone()).collect();
    if let Some((version, columns)) = built {
        if version != model.version || columns != wanted {
            return Err(Error::ModelOutdated {
                ecosystem: model.ecosystem.clone(),
                built: version,
                wanted: model.version.clone(),
            });
        }
    }
    let columns: String = model
        .columns
        .iter()
        .map(|(c, t)| format!("{c} {t}, "))
        .collect();
    // A grant's territories only narrow the caseload, never widen it: with territories set, a
    // person of the organisation's caseload is reached only when the follow's territory, or
    // (where the model has them) the residence's département or commune, is one of them.
    let territories =
        "string_to_array(nullif(current_setting('socle.territories', true), ''), ',')";
    let residence: String = [
        ("residence_departement", "persons.residence_departement"),
        ("residence_commune", "persons.residence_commune"),
    ]
    .iter()
    .filter(|(c, _)| model.has(c))
    .map(|(_, col)| format!(" OR {col} = ANY ({territories})"))
    .collect();
    let territory =
        format!(" AND ({territories} IS NULL OR l.territory = ANY ({territories}){residence})");
    let statements = [
        format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.persons (person_id uuid PRIMARY KEY, {columns}\
             agreement_version text NOT NULL, in_scope_since timestamptz NOT NULL DEFAULT now(), \
             updated_at timestamptz NOT NULL DEFAULT now())"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.links (person_id uuid NOT NULL, \
             organisation text NOT NULL, kind text NOT NULL, ref_id uuid NOT NULL, \
             territory text, since date, PRIMARY KEY (person_id, kind, ref_id))"
        ),
        format!("CREATE INDEX IF NOT EXISTS links_organisation ON {schema}.links (organisation, person_id)"),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.notices (seq bigserial PRIMARY KEY, \
             person_id uuid NOT NULL, kind text NOT NULL, agreement_version text NOT NULL, \
             at timestamptz NOT NULL DEFAULT now(), published_at timestamptz)"
        ),
        format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN \
             CREATE ROLE {role} NOLOGIN; END IF; END $$"
        ),
        format!("GRANT {role} TO CURRENT_USER"),
        format!("GRANT USAGE ON SCHEMA {schema} TO {role}"),
        format!("GRANT SELECT ON {schema}.persons, {schema}.links TO {role}"),
        format!("ALTER TABLE {schema}.persons ENABLE ROW LEVEL SECURITY"),
        format!("ALTER TABLE {schema}.links ENABLE ROW LEVEL SECURITY"),
        format!("DROP POLICY IF EXISTS caseload ON {schema}.persons"),
        format!(
            "CREATE POLICY caseload ON {schema}.persons FOR SELECT TO {role} USING (EXISTS (\
             SELECT 1 FROM {schema}.links l WHERE l.person_id = persons.person_id \
             AND l.organisation = current_setting('socle.organisation', true){territory}))"
        ),
        format!("DROP POLICY IF EXISTS own_links ON {schema}.links"),
        format!(
            "CREATE POLICY own_links ON {schema}.links FOR SELECT TO {role} \
             USING (organisation = current_setting('socle.organisation', true))"
        ),
    ];
    for s in statements {
        sqlx::query(&s).execute(&mut **tx).await?;
    }
    // Indexes for the searches the API offers, on the columns this model has.
    for (column, expression) in [
        ("identity_family_name", "lower(identity_family_name)"),
        ("identity_given_name", "lower(identity_given_name)"),
        ("identity_birth_date", "identity_birth_date"),
        ("identity_nir", "identity_nir"),
    ] {
        if model.has(column) {
            sqlx::query(&format!(
                "CREATE INDEX IF NOT EXISTS persons_{column} ON {schema}.persons ({expression})"
            ))
            .execute(&mut **tx)
            .await?;
        }
    }
    sqlx::query(
        "INSERT INTO projector.models (schema_name, ecosystem, agreement_version, columns) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (schema_name) DO NOTHING",
    )
    .bind(schema)
    .bind(&model.ecosystem)
    .bind(&model.version)
    .bind(&wanted)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Upserts the in-scope `rows` (values in `model.columns` order) in one statement, and records a
/// feed notice for each (`entered` or `updated`).
///
/// # Errors
/// [`Error::Database`].
pub async fn upsert(
    tx: &mut Transaction<'_, Postgres>,
    model: &Model,
    rows: &[(Uuid, Vec<Val>)],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let schema = ident(&model.schema)?;
    let n = model.columns.len();
    let mut select = vec!["$1::uuid[]".to_owned()];
    let mut names = vec!["person_id".to_owned()];
    for (i, (c, t)) in model.columns.iter().enumerate() {
        select.push(format!("${}::{t}[]", i + 2));
        names.push(c.clone());
    }
    let version_param = n + 2;
    let sets: Vec<String> = model
        .columns
        .iter()
        .map(|(c, _)| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let sql = format!(
        "WITH up AS (INSERT INTO {schema}.persons AS p ({names}, agreement_version) \
         SELECT *, ${version_param} FROM UNNEST({select}) \
         ON CONFLICT (person_id) DO UPDATE SET {sets}agreement_version = EXCLUDED.agreement_version, \
         updated_at = now() RETURNING person_id, (xmax = 0) AS entered) \
         INSERT INTO {schema}.notices (person_id, kind, agreement_version) \
         SELECT person_id, CASE WHEN entered THEN 'entered' ELSE 'updated' END, ${version_param} FROM up",
        names = names.join(", "),
        select = select.join(", "),
        sets = if sets.is_empty() { String::new() } else { format!("{}, ", sets.join(", ")) },
    );
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let mut query = sqlx::query(&sql).bind(ids);
    for (i, (_, t)) in model.columns.iter().enumerate() {
        query = match *t {
            "date" => query.bind(
                rows.iter()
                    .map(|(_, v)| match &v[i] {
                        Val::Date(d) => *d,
                        _ => None,
                    })
                    .collect::<Vec<Option<NaiveDate>>>(),
            ),
            "boolean" => query.bind(
                rows.iter()
                    .map(|(_, v)| match &v[i] {
                        Val::Bool(b) => *b,
                        _ => None,
                    })
                    .collect::<Vec<Option<bool>>>(),
            ),
            _ => query.bind(
                rows.iter()
                    .map(|(_, v)| match &v[i] {
                        Val::Text(s) => s.clone(),
                        _ => None,
                    })
                    .collect::<Vec<Option<String>>>(),
            ),
        };
    }
    query.bind(&model.version).execute(&mut **tx).await?;
    Ok(())
}

/// Removes `persons` from the model (they left its scope): their row and links go, and a `left`
/// notice is recorded for each one that was there.
///
/// # Errors
/// [`Error::Database`].
pub async fn remove(
    tx: &mut Transaction<'_, Postgres>,
    model: &Model,
    persons: &[Uuid],
) -> Result<Vec<Uuid>> {
    if persons.is_empty() {
        return Ok(Vec::new());
    }
    let schema = ident(&model.schema)?;
    sqlx::query(&format!(
        "DELETE FROM {schema}.links WHERE person_id = ANY($1)"
    ))
    .bind(persons)
    .execute(&mut **tx)
    .await?;
    let removed: Vec<Uuid> = sqlx::query_scalar(&format!(
        "WITH gone AS (DELETE FROM {schema}.persons WHERE person_id = ANY($1) RETURNING person_id) \
         INSERT INTO {schema}.notices (person_id, kind, agreement_version) \
         SELECT person_id, 'left', $2 FROM gone RETURNING person_id"
    ))
    .bind(persons)
    .bind(&model.version)
    .fetch_all(&mut **tx)
    .await?;
    Ok(removed)
}

/// Replaces the links of `persons` with `links`.
///
/// # Errors
/// [`Error::Database`].
pub async fn set_links(
    tx: &mut Transaction<'_, Postgres>,
    model: &Model,
    persons: &[Uuid],
    links: &[Link],
) -> Result<()> {
    let schema = ident(&model.schema)?;
    sqlx::query(&format!(
        "DELETE FROM {schema}.links WHERE person_id = ANY($1)"
    ))
    .bind(persons)
    .execute(&mut **tx)
    .await?;
    if links.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "INSERT INTO {schema}.links (person_id, organisation, kind, ref_id, territory, since) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::date[]) \
         ON CONFLICT DO NOTHING"
    ))
    .bind(links.iter().map(|l| l.person_id).collect::<Vec<_>>())
    .bind(links.iter().map(|l| l.organisation.clone()).collect::<Vec<_>>())
    .bind(links.iter().map(|l| l.kind.to_owned()).collect::<Vec<_>>())
    .bind(links.iter().map(|l| l.ref_id).collect::<Vec<_>>())
    .bind(links.iter().map(|l| l.territory.clone()).collect::<Vec<_>>())
    .bind(links.iter().map(|l| l.since).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Who is asking, for row-level security.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// SIRET of the caller's organisation.
    pub organisation: String,
    /// Départements the caller's habilitation covers (may be empty).
    pub territories: Vec<String>,
}

/// Takes the model's role and the viewer's organisation and territories for the rest of `tx`,
/// so that row-level security applies to everything `tx` reads in the model.
///
/// # Errors
/// [`Error::Database`], [`Error::BadIdentifier`].
pub async fn assume(
    tx: &mut Transaction<'_, Postgres>,
    model: &Model,
    viewer: &Viewer,
) -> Result<()> {
    let role = ident(&model.role)?;
    sqlx::query(&format!("SET LOCAL ROLE {role}"))
        .execute(&mut **tx)
        .await?;
    sqlx::query("SELECT set_config('socle.organisation', $1, true), set_config('socle.territories', $2, true)")
        .bind(&viewer.organisation)
        .bind(viewer.territories.join(","))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The person as `viewer` may see them in `model`: `None` if not in the ecosystem's scope or not
/// in the viewer's caseload or territory (PostgreSQL's row-level security decides).
///
/// # Errors
/// [`Error::Database`].
pub async fn read_person(
    pool: &PgPool,
    model: &Model,
    viewer: &Viewer,
    person_id: Uuid,
) -> Result<Option<Map<String, Value>>> {
    let schema = ident(&model.schema)?;
    let mut tx = pool.begin().await?;
    assume(&mut tx, model, viewer).await?;
    let row: Option<Value> = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(p) - 'in_scope_since' - 'updated_at' FROM {schema}.persons p \
         WHERE person_id = $1"
    ))
    .bind(person_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.and_then(|v| match v {
        Value::Object(m) => Some(m),
        _ => None,
    }))
}

/// The viewer's caseload in `model`, by person id, after `after`, at most `limit` (keyset
/// pagination).
///
/// # Errors
/// [`Error::Database`].
pub async fn caseload(
    pool: &PgPool,
    model: &Model,
    viewer: &Viewer,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Map<String, Value>>> {
    let schema = ident(&model.schema)?;
    let mut tx = pool.begin().await?;
    assume(&mut tx, model, viewer).await?;
    let rows: Vec<Value> = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(p) - 'in_scope_since' - 'updated_at' FROM {schema}.persons p \
         WHERE EXISTS (SELECT 1 FROM {schema}.links l WHERE l.person_id = p.person_id) \
         AND ($1::uuid IS NULL OR p.person_id > $1) ORDER BY p.person_id LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .collect())
}

/// All person ids of a model, with a digest of each row, for comparing two builds.
///
/// # Errors
/// [`Error::Database`].
pub async fn checksum(pool: &PgPool, schema: &str) -> Result<String> {
    let schema = ident(schema)?;
    let row = sqlx::query(&format!(
        "SELECT coalesce(md5(string_agg(md5((to_jsonb(p) - 'in_scope_since' - 'updated_at')::text), \
         '' ORDER BY person_id)), '') AS persons, \
         (SELECT coalesce(md5(string_agg(md5(to_jsonb(l)::text), '' ORDER BY person_id, kind, ref_id)), '') \
          FROM {schema}.links l) AS links FROM {schema}.persons p"
    ))
    .fetch_one(pool)
    .await?;
    let persons: String = row.try_get("persons")?;
    let links: String = row.try_get("links")?;
    Ok(format!("{persons}/{links}"))
}

/// The persons of `schema`, for tests and comparisons.
///
/// # Errors
/// [`Error::Database`].
pub async fn person_ids(pool: &PgPool, schema: &str) -> Result<HashSet<Uuid>> {
    let schema = ident(schema)?;
    Ok(
        sqlx::query_scalar(&format!("SELECT person_id FROM {schema}.persons"))
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect(),
    )
}

/// Criteria of a search within a caseload; every given criterion must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub nir: Option<String>,
}

/// Searches the viewer's caseload (row-level security applies: people linked to the viewer's
/// organisation or in its territories), never the whole model. A criterion on a field the
/// agreement does not grant is refused rather than ignored.
///
/// # Errors
/// [`Error::NotGranted`] naming the field, [`Error::Database`].
pub async fn search(
    pool: &PgPool,
    model: &Model,
    viewer: &Viewer,
    criteria: &Search,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Map<String, Value>>> {
    let schema = ident(&model.schema)?;
    let wanted = [
        ("identity_family_name", criteria.family_name.is_some()),
        ("identity_given_name", criteria.given_name.is_some()),
        ("identity_birth_date", criteria.birth_date.is_some()),
        ("identity_nir", criteria.nir.is_some()),
    ];
    for (column, asked) in wanted {
        if asked && !model.has(column) {
            return Err(Error::NotGranted(column.to_owned()));
        }
    }
    let cond = |column: &str, param: usize, cast: &str, ci: bool| {
        if !model.has(column) {
            "TRUE".to_owned()
        } else if ci {
            format!("(${param}::{cast} IS NULL OR lower({column}) = lower(${param}))")
        } else {
            format!("(${param}::{cast} IS NULL OR {column} = ${param})")
        }
    };
    let sql = format!(
        "SELECT to_jsonb(p) - 'in_scope_since' - 'updated_at' FROM {schema}.persons p WHERE {} AND {} AND {} AND {} \
         AND ($5::uuid IS NULL OR p.person_id > $5) ORDER BY p.person_id LIMIT $6",
        cond("identity_family_name", 1, "text", true),
        cond("identity_given_name", 2, "text", true),
        cond("identity_birth_date", 3, "date", false),
        cond("identity_nir", 4, "text", false),
    );
    let mut tx = pool.begin().await?;
    assume(&mut tx, model, viewer).await?;
    let rows: Vec<Value> = sqlx::query_scalar(&sql)
        .bind(&criteria.family_name)
        .bind(&criteria.given_name)
        .bind(criteria.birth_date)
        .bind(&criteria.nir)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .collect())
}

/// The person with this exact NIR anywhere in the ecosystem's model, outside the viewer's
/// caseload: only for a purpose that requires it (orientation of a newly registered person);
/// the caller records and rate-limits it. Reads as the model's owner, so row-level security
/// does not apply — but only this ecosystem's people and granted fields are reachable.
///
/// # Errors
/// [`Error::NotGranted`] when the agreement does not grant the NIR, [`Error::Database`].
pub async fn lookup_nir(
    pool: &PgPool,
    model: &Model,
    nir: &str,
) -> Result<Option<Map<String, Value>>> {
    let schema = ident(&model.schema)?;
    if !model.has("identity_nir") {
        return Err(Error::NotGranted("identity_nir".to_owned()));
    }
    let row: Option<Value> = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(p) - 'in_scope_since' - 'updated_at' FROM {schema}.persons p WHERE identity_nir = $1"
    ))
    .bind(nir)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|v| match v {
        Value::Object(m) => Some(m),
        _ => None,
    }))
}
