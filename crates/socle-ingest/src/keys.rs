//! Per-person keys for a whole batch in one round trip.
//!
//! `socle_store::keys::get_or_create` costs two queries per person; ingestion seals thousands
//! of events per second, so it fetches (and creates) a batch's keys at once, with the same
//! semantics: concurrent instances get the same key for a person (`ON CONFLICT DO NOTHING`,
//! then the stored row wins).

use std::collections::HashMap;

use socle_domain::DataKey;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::Result;

/// A person's key, or the fact that it was erased.
#[derive(Debug, Clone)]
pub enum PersonKey {
    Live(DataKey),
    Erased,
}

/// The keys of `person_ids` (duplicates allowed), created where missing.
///
/// # Errors
/// [`crate::Error::Store`] on database errors or a malformed stored key.
pub async fn get_or_create_many(
    pool: &PgPool,
    person_ids: &[Uuid],
) -> Result<HashMap<Uuid, PersonKey>> {
    let mut ids: Vec<Uuid> = person_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let fresh: Vec<DataKey> = ids.iter().map(|_| DataKey::generate()).collect();
    let key_ids: Vec<&str> = fresh.iter().map(|k| k.key_id.as_str()).collect();
    let bytes: Vec<Vec<u8>> = fresh.iter().map(|k| k.expose_bytes().to_vec()).collect();
    let rows = sqlx::query(include_str!("sql/keys_get_or_create.sql"))
        .bind(&ids)
        .bind(&key_ids)
        .bind(&bytes)
        .fetch_all(pool)
        .await
        .map_err(socle_store::Error::from)?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let person_id: Uuid = row.try_get("person_id").map_err(socle_store::Error::from)?;
        let key_id: String = row.try_get("key_id").map_err(socle_store::Error::from)?;
        let key: Option<Vec<u8>> = row.try_get("key").map_err(socle_store::Error::from)?;
        let key = match key {
            None => PersonKey::Erased,
            Some(b) => PersonKey::Live(
                DataKey::from_parts(key_id, &b)
                    .ok_or(socle_store::Error::MalformedKey(person_id))?,
            ),
        };
        out.insert(person_id, key);
    }
    // A row inserted by a concurrent instance after this statement's snapshot is not in the
    // result: read those again, each in a fresh statement.
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(slot) = out.entry(id) {
            let key = socle_store::keys::find(pool, id).await?;
            slot.insert(key.map_or(PersonKey::Erased, PersonKey::Live));
        }
    }
    Ok(out)
}
