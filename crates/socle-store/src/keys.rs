//! The per-person data keys.

use socle_domain::DataKey;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::{Error, Result};

/// The person's key, created on first use. Concurrent callers get the same key.
///
/// # Errors
/// [`Error::Database`]; [`Error::MalformedKey`] if the stored key is erased or damaged.
pub async fn get_or_create(pool: &PgPool, person_id: Uuid) -> Result<DataKey> {
    let fresh = DataKey::generate();
    sqlx::query(
        "INSERT INTO keys.person_keys (person_id, key_id, key) VALUES ($1, $2, $3) \
         ON CONFLICT (person_id) DO NOTHING",
    )
    .bind(person_id)
    .bind(&fresh.key_id)
    .bind(&fresh.expose_bytes()[..])
    .execute(pool)
    .await?;
    find(pool, person_id)
        .await?
        .ok_or(Error::MalformedKey(person_id))
}

/// The person's key, or `None` if they have none or it was erased.
///
/// # Errors
/// [`Error::Database`]; [`Error::MalformedKey`] if the stored bytes are not a key.
pub async fn find(pool: &PgPool, person_id: Uuid) -> Result<Option<DataKey>> {
    let row = sqlx::query("SELECT key_id, key FROM keys.person_keys WHERE person_id = $1")
        .bind(person_id)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let key_id: String = row.try_get("key_id")?;
    let bytes: Option<Vec<u8>> = row.try_get("key")?;
    match bytes {
        None => Ok(None),
        Some(b) => DataKey::from_parts(key_id, &b)
            .map(Some)
            .ok_or(Error::MalformedKey(person_id)),
    }
}

/// The keys of `person_ids` that exist and are not erased.
///
/// # Errors
/// [`Error::Database`]; [`Error::MalformedKey`] if stored bytes are not a key.
pub async fn find_many(
    pool: &PgPool,
    person_ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, DataKey>> {
    let rows = sqlx::query(
        "SELECT person_id, key_id, key FROM keys.person_keys \
         WHERE person_id = ANY($1) AND key IS NOT NULL",
    )
    .bind(person_ids)
    .fetch_all(pool)
    .await?;
    let mut out = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let person_id: Uuid = row.try_get("person_id")?;
        let key_id: String = row.try_get("key_id")?;
        let bytes: Vec<u8> = row.try_get("key")?;
        let key = DataKey::from_parts(key_id, &bytes).ok_or(Error::MalformedKey(person_id))?;
        out.insert(person_id, key);
    }
    Ok(out)
}
