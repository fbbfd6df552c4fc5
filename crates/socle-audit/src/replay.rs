//! Decision replay: "was access X allowed under the rules in force at the time?"
//!
//! The access event (from the audit store) gives who, what, for which purpose, how strongly
//! authenticated, and what was decided under which policy version. The grants in force at that
//! instant come from the habilitations events (`socle_policy::grants::in_force` with the event's
//! time); the cedar policies from the policy engine. The answer says what it could not establish
//! rather than guessing:
//! - the policy **version**: if the loaded version differs from the recorded one, the replay is
//!   marked `policy_version_matches = false`;
//! - the caseload fact ("organisation follows person") **as of** the instant: the decision is
//!   evaluated both ways (`depends_on_caseload` says whether it matters), and, when the event
//!   concerns one person and the core state is in this database, under the fact as it was
//!   (`in_caseload_then`, `replayed`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use socle_policy::{Engine, Facts};
use sqlx::PgPool;
use uuid::Uuid;

use crate::queries::AccessRow;
use crate::{Error, Result};

/// A policy decision, as replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    pub allowed: bool,
    pub code: String,
    pub policies: Vec<String>,
}

impl From<socle_policy::Decision> for Replayed {
    fn from(d: socle_policy::Decision) -> Self {
        Replayed {
            allowed: d.allowed,
            code: d.code,
            policies: d.policies,
        }
    }
}

/// What was decided then, beside what the rules give now for that instant.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    pub event: AccessRow,
    pub at: DateTime<Utc>,
    /// Grants in force at that instant for that user, organisation, ecosystem and action.
    pub grants_in_force: Vec<Uuid>,
    pub decided: String,
    pub decided_reason: Option<String>,
    pub decided_policy_version: Option<String>,
    pub replayed_policy_version: String,
    pub policy_version_matches: bool,
    /// The replayed decision if the person was in the caller's caseload...
    pub if_in_caseload: Replayed,
    /// ...and if not.
    pub if_not_in_caseload: Replayed,
    pub depends_on_caseload: bool,
    /// Whether the caller's organisation followed (or had registered) the person at that
    /// instant, from the core state's follows; `None` when it cannot be told (no single person
    /// concerned, or no core state in this database).
    pub in_caseload_then: Option<bool>,
    /// The replayed decision under the caseload fact as it was (when known).
    pub replayed: Option<Replayed>,
}

/// Replays access event `event_id`.
///
/// # Errors
/// [`Error::BadRequest`] when the event is not in the audit store or names no ecosystem;
/// [`Error::Internal`] when the policy engine fails; [`Error::Database`].
pub async fn replay(
    pool: &PgPool,
    engine: &Engine,
    mfa_actions: &[String],
    event_id: Uuid,
) -> Result<Replay> {
    let row = crate::queries::access_event(pool, event_id)
        .await?
        .ok_or_else(|| {
            Error::BadRequest(format!("access event {event_id} is not in the audit store"))
        })?;
    let ecosystem = row.ecosystem.clone().ok_or_else(|| {
        Error::BadRequest(format!(
            "access event {event_id} names no ecosystem: nothing to replay"
        ))
    })?;
    let grants = socle_policy::grants::in_force(
        pool,
        &row.user,
        &row.organisation,
        &ecosystem,
        &row.action,
        row.purpose.as_deref(),
        row.occurred_at,
    )
    .await
    .map_err(|e| Error::Internal(format!("habilitations: {e}")))?;
    let grant = grants.first();
    let purpose = row
        .purpose
        .clone()
        .or_else(|| grant.map(|g| g.purpose.clone()))
        .unwrap_or_default();
    let requires_mfa =
        mfa_actions.iter().any(|a| a == &row.action) || grant.is_some_and(|g| g.requires_mfa);
    // The rules in force then: the archived texts of the recorded policy version, if the
    // version loaded now is another one.
    let archived = match row.policy_version.as_deref() {
        Some(v) if v != engine.version() => Engine::archived(pool, v)
            .await
            .map_err(|e| Error::Internal(format!("policy archive: {e}")))?,
        _ => None,
    };
    let engine = archived.as_ref().unwrap_or(engine);
    // The caseload fact as it was, for the one person concerned.
    let in_caseload_then = match row.person_ids.as_slice() {
        [one] => match Uuid::parse_str(one) {
            Ok(person) => socle_store::core::followed_on(
                pool,
                "core",
                person,
                &row.organisation,
                row.occurred_at.date_naive(),
            )
            .await
            .ok(),
            Err(_) => None,
        },
        _ => None,
    };
    let decide = |in_caseload: bool| -> Result<Replayed> {
        let facts = Facts {
            user: &row.user,
            ecosystem: &ecosystem,
            action: &row.action,
            purpose: &purpose,
            habilitated: grant.is_some(),
            requires_mfa,
            mfa: row.auth_strength == "mfa",
            // As the API decides: a machine never meets a grant that requires MFA.
            client: row.auth_strength == "client" && !grant.is_some_and(|g| g.requires_mfa),
            personal_data: true,
            in_caseload,
        };
        engine
            .decide(&facts)
            .map(Replayed::from)
            .map_err(|e| Error::Internal(format!("policy engine: {e}")))
    };
    let (yes, no) = (decide(true)?, decide(false)?);
    let replayed = in_caseload_then.map(|then| if then { yes.clone() } else { no.clone() });
    Ok(Replay {
        at: row.occurred_at,
        grants_in_force: grants.iter().map(|g| g.grant_id).collect(),
        decided: row.decision.clone(),
        decided_reason: row.reason.clone(),
        decided_policy_version: row.policy_version.clone(),
        replayed_policy_version: engine.version().to_owned(),
        policy_version_matches: row.policy_version.as_deref() == Some(engine.version()),
        depends_on_caseload: yes.allowed != no.allowed,
        if_in_caseload: yes,
        if_not_in_caseload: no,
        in_caseload_then,
        replayed,
        event: row,
    })
}
