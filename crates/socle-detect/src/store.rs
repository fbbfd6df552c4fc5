//! Alerts and sanctions in PostgreSQL (`detect` schema).

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::detector::{Alert, SanctionKind};
use crate::{Error, Result};

/// A sanction as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Sanction {
    pub sanction_id: Uuid,
    pub user: String,
    pub kind: SanctionKind,
    pub reason: String,
    pub alert_id: Option<Uuid>,
    pub imposed_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Records `alert`, inside `tx`.
///
/// # Errors
/// [`Error::Database`].
pub async fn record_alert(tx: &mut Transaction<'_, Postgres>, alert: &Alert) -> Result<()> {
    let raised_at = DateTime::from_timestamp_micros(alert.raised_at).unwrap_or_else(Utc::now);
    sqlx::query(
        "INSERT INTO detect.alerts (alert_id, subject, rule, response, figures, event_ids, raised_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(alert.alert_id)
    .bind(&alert.subject)
    .bind(&alert.rule)
    .bind(alert.response.map(SanctionKind::as_str))
    .bind(serde_json::to_value(&alert.figures).map_err(|e| Error::Internal(e.to_string()))?)
    .bind(&alert.event_ids)
    .bind(raised_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Imposes a sanction, inside `tx`.
///
/// # Errors
/// [`Error::Database`].
pub async fn impose(tx: &mut Transaction<'_, Postgres>, s: &Sanction) -> Result<()> {
    sqlx::query(
        "INSERT INTO detect.sanctions (sanction_id, user_id, kind, reason, alert_id, imposed_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(s.sanction_id)
    .bind(&s.user)
    .bind(s.kind.as_str())
    .bind(&s.reason)
    .bind(s.alert_id)
    .bind(s.imposed_at)
    .bind(s.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn row_to_sanction(r: &sqlx::postgres::PgRow) -> Result<Sanction> {
    let kind: String = r.try_get("kind")?;
    Ok(Sanction {
        sanction_id: r.try_get("sanction_id")?,
        user: r.try_get("user_id")?,
        kind: SanctionKind::parse(&kind).ok_or_else(|| {
            Error::Internal(format!("unknown sanction kind {kind} in detect.sanctions"))
        })?,
        reason: r.try_get("reason")?,
        alert_id: r.try_get("alert_id")?,
        imposed_at: r.try_get("imposed_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// The sanctions in force for `user` (not lifted, not expired), most severe first.
///
/// # Errors
/// [`Error::Database`].
pub async fn active<'e, E>(executor: E, user: &str) -> Result<Vec<Sanction>>
where
    E: sqlx::PgExecutor<'e>,
{
    let rows = sqlx::query(
        "SELECT sanction_id, user_id, kind, reason, alert_id, imposed_at, expires_at \
         FROM detect.sanctions WHERE user_id = $1 AND lifted_at IS NULL \
         AND (expires_at IS NULL OR expires_at > now()) ORDER BY imposed_at",
    )
    .bind(user)
    .fetch_all(executor)
    .await?;
    let mut out: Vec<Sanction> = rows.iter().map(row_to_sanction).collect::<Result<_>>()?;
    out.sort_by_key(|s| std::cmp::Reverse(s.kind));
    Ok(out)
}

/// Lifts every sanction in force for `user` (only `kind` if given); returns those lifted.
///
/// # Errors
/// [`Error::Database`].
pub async fn lift(
    pool: &PgPool,
    user: &str,
    kind: Option<SanctionKind>,
    by: &str,
    reason: &str,
) -> Result<Vec<Sanction>> {
    let rows = sqlx::query(
        "UPDATE detect.sanctions SET lifted_at = now(), lifted_by = $3, lift_reason = $4 \
         WHERE user_id = $1 AND lifted_at IS NULL AND ($2::text IS NULL OR kind = $2) \
         RETURNING sanction_id, user_id, kind, reason, alert_id, imposed_at, expires_at",
    )
    .bind(user)
    .bind(kind.map(SanctionKind::as_str))
    .bind(by)
    .bind(reason)
    .fetch_all(pool)
    .await?;
    rows.iter().map(row_to_sanction).collect()
}
