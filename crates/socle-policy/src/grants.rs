//! Grants as events (`schemas/habilitation/*.avsc`) and as rows (`habilitations.*`).

use std::sync::{Arc, LazyLock};

use apache_avro::Schema;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use socle_domain::time::{from_micros, to_micros};
use socle_domain::Envelope;
use socle_kafka::schemas::Contract;
use socle_kafka::{Codec, EventProducer};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{Error, Result};

fn contract(name: &'static str, raw: &'static str) -> Contract {
    let schema = Schema::parse_str(raw)
        .unwrap_or_else(|e| panic!("compiled-in schema {name} does not parse: {e}"));
    Contract { name, raw, schema }
}

/// `socle.habilitation.HabilitationGranted`.
pub static GRANTED: LazyLock<Contract> = LazyLock::new(|| {
    contract(
        "socle.habilitation.HabilitationGranted",
        include_str!("../../../schemas/habilitation/HabilitationGranted.avsc"),
    )
});

/// `socle.habilitation.HabilitationRevoked`.
pub static REVOKED: LazyLock<Contract> = LazyLock::new(|| {
    contract(
        "socle.habilitation.HabilitationRevoked",
        include_str!("../../../schemas/habilitation/HabilitationRevoked.avsc"),
    )
});

/// `HabilitationGranted`, as on the topic (times in microseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HabilitationGranted {
    pub envelope: Envelope,
    #[serde(with = "socle_domain::uuid_str")]
    pub grant_id: Uuid,
    pub user: String,
    pub organisation: String,
    pub ecosystem: String,
    pub actions: Vec<String>,
    pub territories: Vec<String>,
    pub activities: Vec<String>,
    pub purpose: String,
    pub valid_from: i64,
    pub valid_until: i64,
    pub requires_mfa: bool,
    pub granted_by: String,
}

/// `HabilitationRevoked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HabilitationRevoked {
    pub envelope: Envelope,
    #[serde(with = "socle_domain::uuid_str")]
    pub grant_id: Uuid,
    pub user: String,
    pub organisation: String,
    pub effective_at: i64,
    pub revoked_by: String,
    pub reason_code: Option<String>,
}

/// Actions a grant may name.
pub const ACTIONS: &[&str] = &[
    "person.read",
    "person.search",
    "person.lookup_nir",
    "person.write",
    "caseload.list",
    "services.list",
    // Querying the audit store (auditors, DPOs, fraud investigators; docs/audit.md).
    "audit.query",
];

impl HabilitationGranted {
    /// Checks what the schema cannot: known actions, a bounded period, a SIRET.
    ///
    /// # Errors
    /// [`Error::InvalidGrant`] naming the fault.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidGrant(m));
        if self.user.is_empty() || self.user.len() > 128 {
            return bad("user must be 1 to 128 characters".into());
        }
        if self.organisation.len() != 14 || !self.organisation.bytes().all(|b| b.is_ascii_digit()) {
            return bad(format!("organisation {} is not a SIRET", self.organisation));
        }
        if self.actions.is_empty() {
            return bad("a grant names at least one action".into());
        }
        if let Some(a) = self.actions.iter().find(|a| !ACTIONS.contains(&a.as_str())) {
            return bad(format!(
                "unknown action {a} (known: {})",
                ACTIONS.join(", ")
            ));
        }
        if self.valid_until <= self.valid_from {
            return bad("valid_until must be after valid_from".into());
        }
        if self.purpose.is_empty() {
            return bad("a grant names its purpose".into());
        }
        Ok(())
    }
}

fn ts(us: i64) -> Result<DateTime<Utc>> {
    from_micros(us).ok_or_else(|| Error::InvalidGrant(format!("timestamp {us} out of range")))
}

/// Records a grant (idempotent: replaying the same event changes nothing).
///
/// # Errors
/// [`Error::Database`], [`Error::InvalidGrant`].
pub async fn apply_granted(
    tx: &mut Transaction<'_, Postgres>,
    g: &HabilitationGranted,
) -> Result<()> {
    g.check()?;
    sqlx::query(
        "INSERT INTO habilitations.grants (grant_id, user_id, organisation, ecosystem, actions, \
         territories, activities, purpose, valid_from, valid_until, requires_mfa, granted_by, event_id) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) ON CONFLICT (grant_id) DO NOTHING",
    )
    .bind(g.grant_id)
    .bind(&g.user)
    .bind(&g.organisation)
    .bind(&g.ecosystem)
    .bind(&g.actions)
    .bind(&g.territories)
    .bind(&g.activities)
    .bind(&g.purpose)
    .bind(ts(g.valid_from)?)
    .bind(ts(g.valid_until)?)
    .bind(g.requires_mfa)
    .bind(&g.granted_by)
    .bind(g.envelope.event_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a revocation (idempotent; the earliest one counts).
///
/// # Errors
/// [`Error::Database`], [`Error::InvalidGrant`].
pub async fn apply_revoked(
    tx: &mut Transaction<'_, Postgres>,
    r: &HabilitationRevoked,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO habilitations.revocations (grant_id, user_id, organisation, effective_at, \
         revoked_by, reason_code, event_id) VALUES ($1,$2,$3,$4,$5,$6,$7) \
         ON CONFLICT (grant_id) DO UPDATE SET effective_at = LEAST(habilitations.revocations.effective_at, EXCLUDED.effective_at)",
    )
    .bind(r.grant_id)
    .bind(&r.user)
    .bind(&r.organisation)
    .bind(ts(r.effective_at)?)
    .bind(&r.revoked_by)
    .bind(&r.reason_code)
    .bind(r.envelope.event_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One grant in force.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Grant {
    pub grant_id: Uuid,
    pub purpose: String,
    pub territories: Vec<String>,
    pub activities: Vec<String>,
    pub requires_mfa: bool,
    pub valid_until: DateTime<Utc>,
}

/// The grants in force at `at` that let `user` of `organisation` do `action` in `ecosystem`
/// (for `purpose`, when given). Replayable: pass the time of a past access.
///
/// # Errors
/// [`Error::Database`].
pub async fn in_force(
    pool: &PgPool,
    user: &str,
    organisation: &str,
    ecosystem: &str,
    action: &str,
    purpose: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Vec<Grant>> {
    Ok(sqlx::query_as::<_, Grant>(
        "SELECT g.grant_id, g.purpose, g.territories, g.activities, g.requires_mfa, g.valid_until \
         FROM habilitations.grants g \
         WHERE g.user_id = $1 AND g.organisation = $2 AND g.ecosystem = $3 AND $4 = ANY(g.actions) \
           AND g.valid_from <= $5 AND g.valid_until > $5 \
           AND ($6::text IS NULL OR g.purpose = $6) \
           AND NOT EXISTS (SELECT 1 FROM habilitations.revocations r \
                           WHERE r.grant_id = g.grant_id AND r.effective_at <= $5) \
         ORDER BY g.valid_until DESC",
    )
    .bind(user)
    .bind(organisation)
    .bind(ecosystem)
    .bind(action)
    .bind(at)
    .bind(purpose)
    .fetch_all(pool)
    .await?)
}

/// Publishes grants and revocations on the habilitations topic (acks=all), keyed by user.
#[derive(Debug, Clone)]
pub struct GrantPublisher {
    pub producer: EventProducer,
    pub codec: Arc<Codec>,
    pub topic: String,
}

impl GrantPublisher {
    /// Publishes `grant` after checking it.
    ///
    /// # Errors
    /// [`Error::InvalidGrant`], registry or Kafka errors.
    pub async fn grant(&self, grant: &HabilitationGranted) -> Result<()> {
        grant.check()?;
        let payload = self.codec.encode(&self.topic, &GRANTED, grant).await?;
        self.producer
            .send(&self.topic, &grant.user, &payload)
            .await?;
        Ok(())
    }

    /// Publishes `revocation`.
    ///
    /// # Errors
    /// Registry or Kafka errors.
    pub async fn revoke(&self, revocation: &HabilitationRevoked) -> Result<()> {
        let payload = self.codec.encode(&self.topic, &REVOKED, revocation).await?;
        self.producer
            .send(&self.topic, &revocation.user, &payload)
            .await?;
        Ok(())
    }
}

/// A grant event for the common case, valid from `from` until `until`.
#[allow(clippy::too_many_arguments)]
pub fn new_grant(
    user: &str,
    organisation: &str,
    ecosystem: &str,
    actions: &[&str],
    purpose: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    granted_by: &str,
) -> HabilitationGranted {
    HabilitationGranted {
        envelope: Envelope::new(organisation, Utc::now()).with_actor(granted_by),
        grant_id: Uuid::now_v7(),
        user: user.to_owned(),
        organisation: organisation.to_owned(),
        ecosystem: ecosystem.to_owned(),
        actions: actions.iter().map(|s| (*s).to_owned()).collect(),
        territories: Vec::new(),
        activities: Vec::new(),
        purpose: purpose.to_owned(),
        valid_from: to_micros(from),
        valid_until: to_micros(until),
        requires_mfa: true,
        granted_by: granted_by.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_round_trip_through_the_avro_contract_and_are_checked() {
        let now = Utc::now();
        let g = new_grant(
            "u",
            "13000548100010",
            "cap-emploi",
            &["person.read"],
            "accompagnement",
            now,
            now + chrono::Duration::days(1),
            "admin",
        );
        let bytes = socle_kafka::codec::to_datum(&g, &GRANTED).unwrap();
        let back: HabilitationGranted = socle_kafka::codec::from_datum(&bytes, &GRANTED).unwrap();
        assert_eq!(back, g);
        g.check().unwrap();
        let mut bad = g.clone();
        bad.actions = vec!["person.everything".into()];
        assert!(bad
            .check()
            .unwrap_err()
            .to_string()
            .contains("unknown action"));
        let mut bad = g;
        bad.valid_until = bad.valid_from;
        assert!(bad.check().is_err());
    }
}
