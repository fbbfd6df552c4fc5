//! The hard read budget: how many distinct people an actor may be shown in a sliding window,
//! counted in PostgreSQL so that every API instance shares it, and checked **before** a
//! disclosure (the detector only sees it after).
//!
//! One transaction per disclosure, serialised per actor by an advisory lock: the people already
//! shown in the window plus the new ones must stay within the budget, or nothing is recorded and
//! the caller is refused. Showing the same person again within the window counts once.

use std::time::Duration;

use sqlx::PgPool;

use crate::Result;

/// What the budget says about one disclosure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the budget: the people are recorded as shown now.
    Admitted,
    /// Past the budget: nothing recorded; retry after this long (when the oldest disclosure in
    /// the window leaves it).
    Refused { retry_after: Duration },
}

/// Admits the disclosure of `person_ids` to `actor` if the distinct people shown to `actor` in
/// the last `window`, these included, stay at most `max_persons`.
///
/// # Errors
/// [`crate::Error::Database`]: the caller must then refuse (the budget fails closed).
pub async fn admit(
    pool: &PgPool,
    actor: &str,
    person_ids: &[String],
    max_persons: i64,
    window: Duration,
) -> Result<Admission> {
    let window_secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX).max(1);
    let mut ids: Vec<String> = person_ids.to_vec();
    ids.sort();
    ids.dedup();
    let distinct = i64::try_from(ids.len()).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('socle.read_budget:' || $1))")
        .bind(actor)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM api.disclosures WHERE actor = $1 AND at < now() - make_interval(secs => $2)",
    )
    .bind(actor)
    .bind(window_secs as f64)
    .execute(&mut *tx)
    .await?;
    let (others, oldest): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM min(at) + make_interval(secs => $3) - now())::float8 \
         FROM api.disclosures WHERE actor = $1 AND NOT (person_id = ANY($2))",
    )
    .bind(actor)
    .bind(&ids)
    .bind(window_secs as f64)
    .fetch_one(&mut *tx)
    .await?;
    if others + distinct > max_persons {
        tx.rollback().await?;
        let retry = oldest
            .unwrap_or(window_secs as f64)
            .clamp(1.0, window_secs as f64);
        return Ok(Admission::Refused {
            retry_after: Duration::from_secs_f64(retry.ceil()),
        });
    }
    sqlx::query(
        "INSERT INTO api.disclosures (actor, person_id, at) SELECT $1, unnest($2::text[]), now() \
         ON CONFLICT (actor, person_id) DO UPDATE SET at = EXCLUDED.at",
    )
    .bind(actor)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Admission::Admitted)
}
