//! The persons read model.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::Result;

/// One person as the read model holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct PersonRow {
    pub person_id: Uuid,
    pub operator: String,
    pub registering_organisation: String,
    pub registered_on: NaiveDate,
    pub commune: String,
    pub departement: String,
    pub nir: Option<String>,
    pub family_name: String,
    pub given_name: String,
    pub birth_date: NaiveDate,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub last_event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
}

/// The person `person_id`, if the read model has them.
///
/// # Errors
/// [`crate::Error::Database`].
pub async fn get(pool: &PgPool, person_id: Uuid) -> Result<Option<PersonRow>> {
    Ok(sqlx::query_as::<_, PersonRow>(
        "SELECT person_id, operator, registering_organisation, registered_on, commune, \
         departement, nir, family_name, given_name, birth_date, email, phone, last_event_id, \
         occurred_at FROM readmodel.persons WHERE person_id = $1",
    )
    .bind(person_id)
    .fetch_optional(pool)
    .await?)
}

/// How many persons the read model holds.
///
/// # Errors
/// [`crate::Error::Database`].
pub async fn count(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM readmodel.persons")
        .fetch_one(pool)
        .await?)
}

/// Upserts `rows` in one statement. Keeps the last row per person (log order), and never lets
/// an older event overwrite a newer state.
///
/// # Errors
/// [`crate::Error::Database`].
pub async fn upsert(tx: &mut Transaction<'_, Postgres>, rows: &[PersonRow]) -> Result<u64> {
    let mut latest: Vec<&PersonRow> = Vec::with_capacity(rows.len());
    let mut index = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        match index.get(&row.person_id) {
            Some(&i) => latest[i] = row,
            None => {
                index.insert(row.person_id, latest.len());
                latest.push(row);
            }
        }
    }
    macro_rules! column {
        ($field:ident) => {
            latest.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    let result = sqlx::query(include_str!("sql/upsert_persons.sql"))
        .bind(column!(person_id))
        .bind(column!(operator))
        .bind(column!(registering_organisation))
        .bind(column!(registered_on))
        .bind(column!(commune))
        .bind(column!(departement))
        .bind(column!(nir))
        .bind(column!(family_name))
        .bind(column!(given_name))
        .bind(column!(birth_date))
        .bind(column!(email))
        .bind(column!(phone))
        .bind(column!(last_event_id))
        .bind(column!(occurred_at))
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected())
}
