//! `socle migrate`: every schema socle keeps in PostgreSQL, created or migrated by one step
//! before any component starts, and the check each component makes at start instead of
//! creating schema itself.
//!
//! Why one step: components that each created what they needed on first use raced on a fresh
//! database (two `CREATE SCHEMA IF NOT EXISTS` at once fail on `pg_namespace`'s unique index),
//! and a component starting against an old schema ran on it. Now the order is fixed here, the
//! whole set is applied under advisory locks (sqlx's own for the migrations, socle's for the
//! models), and a component refuses to start, naming what is missing, until it has run.

use anyhow::{bail, Context};
use sqlx::PgPool;

use crate::settings::Settings;

/// The migration sets `run` applies (each crate owns its versions' range), for the check.
fn migrators() -> [(&'static str, &'static sqlx::migrate::Migrator); 5] {
    [
        ("store", socle_store::migrator()),
        ("habilitations", socle_policy::migrator()),
        ("seal", socle_seal::migrator()),
        ("audit", socle_audit::migrator()),
        ("detect", socle_detect::migrator()),
    ]
}

/// Applies everything, idempotently; prints what it did.
///
/// # Errors
/// PostgreSQL unreachable, a migration that fails or was altered after being applied, or an
/// ecosystem model built under another agreement version (a replay is needed).
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let pool = socle_store::connect(settings.database_url(), settings.database.max_connections)
        .await
        .context("connecting to PostgreSQL (database.url)")?;
    // Each crate's own migration set, in this order (each skips the others' versions).
    socle_store::migrate(&pool)
        .await
        .context("migrating store")?;
    socle_policy::migrate(&pool)
        .await
        .context("migrating habilitations")?;
    socle_seal::migrate(&pool).await.context("migrating seal")?;
    socle_audit::migrate(&pool)
        .await
        .context("migrating audit")?;
    socle_detect::migrate(&pool)
        .await
        .context("migrating detect")?;
    for (name, migrator) in migrators() {
        println!(
            "migrated  {name} ({} migrations)",
            migrator.migrations.len()
        );
    }
    socle_registry::Registry::migrate(&pool)
        .await
        .context("migrating the registry")?;
    println!("migrated  registry");
    socle_api::services::ensure_schema(&pool)
        .await
        .context("creating the services catalogue")?;
    println!("migrated  reference.services");
    let models = live_models(settings)?;
    let mut tx = pool.begin().await.context("PostgreSQL")?;
    models.ensure(&mut tx).await.context("ecosystem models")?;
    tx.commit().await.context("PostgreSQL")?;
    for (_, model) in &models.entries {
        println!("model     {} (agreement {})", model.schema, model.version);
    }
    Ok(())
}

fn live_models(settings: &Settings) -> anyhow::Result<socle_projector::Models> {
    Ok(socle_projector::Models::new(
        &crate::agreements(settings)?,
        socle_projector::Layout::live(),
    ))
}

/// Checks that `socle migrate` has run for this binary: every migration applied with the same
/// checksum, the registry's and the catalogue's tables there, every live model built under its
/// agreement's current version.
///
/// # Errors
/// What is missing, and that `socle migrate` must run.
pub async fn check(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let missing = missing(pool, settings).await?;
    if !missing.is_empty() {
        bail!(
            "the database is not migrated for this version of socle (missing: {}): run `socle migrate` first",
            missing.join(", ")
        );
    }
    Ok(())
}

async fn missing(pool: &PgPool, settings: &Settings) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(pool)
        .await
        .context("reading the applied migrations")?;
    let applied: Vec<(i64, Vec<u8>, bool)> = if table.is_some() {
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
            .fetch_all(pool)
            .await
            .context("reading the applied migrations")?
    } else {
        Vec::new()
    };
    for (name, migrator) in migrators() {
        for m in migrator.iter() {
            let ok = applied
                .iter()
                .any(|(v, sum, success)| *v == m.version && *success && **sum == *m.checksum);
            if !ok {
                missing.push(format!("{name} migration {}", m.version));
            }
        }
    }
    for table in ["registry.schemas", "reference.services", "projector.models"] {
        let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(table)
            .fetch_one(pool)
            .await
            .context("reading the catalog")?;
        if found.is_none() {
            missing.push(table.to_owned());
        }
    }
    if missing.is_empty() {
        let built: Vec<(String, String)> =
            sqlx::query_as("SELECT schema_name, agreement_version FROM projector.models")
                .fetch_all(pool)
                .await
                .context("reading projector.models")?;
        for (_, model) in &live_models(settings)?.entries {
            match built.iter().find(|(s, _)| *s == model.schema) {
                None => missing.push(format!("model {}", model.schema)),
                Some((_, v)) if *v != model.version => missing.push(format!(
                    "model {} at agreement {} (built under {v}: replay it)",
                    model.schema, model.version
                )),
                Some(_) => {}
            }
        }
    }
    Ok(missing)
}
