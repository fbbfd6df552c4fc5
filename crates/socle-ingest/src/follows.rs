//! Follows belong to a person and an organisation: the one check of ingestion against state.
//!
//! A `FollowStarted` whose follow id already belongs to another person, organisation or
//! ecosystem is refused (`follow.id_conflict`: an id is never reassigned); a `FollowEnded` of a
//! follow that does not exist, or that belongs to another person, organisation or ecosystem, is
//! refused (`follow.not_owned`). Who a follow belongs to is judged, in this order, on
//!
//! 1. the batch itself, in input order (a follow started earlier in the batch can be ended later
//!    in it);
//! 2. the follow ids ingest already accepted (`ingest.follows`), and the projector's core state
//!    (`core.follows`, which also holds the follows accepted before `ingest.follows` existed),
//!    read from PostgreSQL in one round trip per batch.
//!
//! The new follow ids a batch accepts are claimed in `ingest.follows` while the batch is decided,
//! before its Kafka transaction opens, like the persons' keys: a failure there is transient (the
//! batch is rewound and read again). A claim whose batch then aborts is harmless: the batch is
//! read again from the same offsets and states the same follow for the same owner. An id two
//! instances claim at once goes to the first insert; the other batch is judged again against it.

use std::collections::HashMap;

use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::ingress::Ingress;
use crate::rules::{self, Rejection};
use crate::Result;

/// The live core state's schema, read for the follows.
pub const CORE_SCHEMA: &str = "core";

/// The codes of this module, documented in docs/ingest.md.
pub const CODES: &[&str] = &["follow.id_conflict", "follow.not_owned"];

/// Who a follow belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub person_id: Uuid,
    /// SIRET, without spaces or dots.
    pub organisation: String,
    pub ecosystem: String,
}

/// What a follow message states, for the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// `follow_id` starts for `owner`.
    Start { follow_id: Uuid, owner: Owner },
    /// `by` ends `follow_id`.
    End { follow_id: Uuid, by: Owner },
}

impl Claim {
    /// The claim of an accepted message read from `operator`'s topic about `person_id`, if it is
    /// a follow message.
    pub fn of(message: &Ingress, operator: &str, person_id: Uuid) -> Option<Claim> {
        let ecosystem = rules::ecosystem_of(operator).unwrap_or_default().to_owned();
        match message {
            Ingress::FollowStarted(e) => Some(Claim::Start {
                follow_id: e.follow_id,
                owner: Owner {
                    person_id,
                    organisation: compact(&e.organisation),
                    ecosystem: e.ecosystem.clone(),
                },
            }),
            Ingress::FollowEnded(e) => Some(Claim::End {
                follow_id: e.follow_id,
                by: Owner {
                    person_id,
                    organisation: compact(&e.organisation),
                    ecosystem,
                },
            }),
            _ => None,
        }
    }

    fn follow_id(&self) -> Uuid {
        match self {
            Claim::Start { follow_id, .. } | Claim::End { follow_id, .. } => *follow_id,
        }
    }
}

fn compact(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// Judges the claims of a batch, in order, against `known` (the follows that exist, by id):
/// one verdict per claim (`None`: accepted), and the follows the accepted claims start.
pub fn judge(
    claims: &[Option<Claim>],
    known: &HashMap<Uuid, Owner>,
) -> (Vec<Option<Rejection>>, Vec<(Uuid, Owner)>) {
    let mut batch: HashMap<Uuid, Owner> = HashMap::new();
    let mut started = Vec::new();
    let verdicts = claims
        .iter()
        .map(|claim| {
            let claim = claim.as_ref()?;
            let id = claim.follow_id();
            let owner = batch.get(&id).or_else(|| known.get(&id));
            match claim {
                Claim::Start { owner: new, .. } => match owner {
                    Some(o) if o != new => Some(Rejection::new(
                        "follow.id_conflict",
                        format!(
                            "follow {id} already belongs to another person, organisation or \
                             ecosystem: a follow id is never reassigned; choose a new one"
                        ),
                        Some("follow_id"),
                    )),
                    Some(_) => None,
                    None => {
                        batch.insert(id, new.clone());
                        started.push((id, new.clone()));
                        None
                    }
                },
                Claim::End { by, .. } => match owner {
                    Some(o) if o == by => None,
                    Some(_) => Some(Rejection::new(
                        "follow.not_owned",
                        format!(
                            "follow {id} belongs to another person, organisation or ecosystem: \
                             only the organisation that started it ends it, for its own person"
                        ),
                        Some("follow_id"),
                    )),
                    None => Some(Rejection::new(
                        "follow.not_owned",
                        format!("follow {id} does not exist (or is not known to socle yet)"),
                        Some("follow_id"),
                    )),
                },
            }
        })
        .collect();
    (verdicts, started)
}

/// The owners of the follows named by `claims` that already exist: accepted by ingest, or in
/// the core state `core`.
///
/// # Errors
/// [`crate::Error::Store`] when PostgreSQL cannot be read (transient).
pub async fn known(
    pool: &PgPool,
    core: &str,
    claims: &[Option<Claim>],
) -> Result<HashMap<Uuid, Owner>> {
    let mut ids: Vec<Uuid> = claims.iter().flatten().map(Claim::follow_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut known: HashMap<Uuid, Owner> = socle_store::core::follow_owners(pool, core, &ids)
        .await?
        .into_iter()
        .map(|(id, o)| {
            (
                id,
                Owner {
                    person_id: o.person_id,
                    organisation: compact(&o.organisation),
                    ecosystem: o.ecosystem,
                },
            )
        })
        .collect();
    let rows = sqlx::query(
        "SELECT follow_id, person_id, organisation, ecosystem FROM ingest.follows \
         WHERE follow_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .map_err(socle_store::Error::from)?;
    for r in rows {
        let id: Uuid = r.try_get("follow_id").map_err(socle_store::Error::from)?;
        let owner = Owner {
            person_id: r.try_get("person_id").map_err(socle_store::Error::from)?,
            organisation: r
                .try_get("organisation")
                .map_err(socle_store::Error::from)?,
            ecosystem: r.try_get("ecosystem").map_err(socle_store::Error::from)?,
        };
        known.entry(id).or_insert(owner);
    }
    Ok(known)
}

/// Claims the follow ids a batch starts. Returns those another instance claimed first, with
/// their owner (empty when every claim is ours, including ids claimed by an earlier reading of
/// the same batch).
///
/// # Errors
/// [`crate::Error::Store`] when PostgreSQL cannot be written (transient).
pub async fn claim(pool: &PgPool, started: &[(Uuid, Owner)]) -> Result<HashMap<Uuid, Owner>> {
    if started.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = started.iter().map(|(id, _)| *id).collect();
    let claimed: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO ingest.follows (follow_id, person_id, organisation, ecosystem) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[]) \
         ON CONFLICT (follow_id) DO NOTHING RETURNING follow_id",
    )
    .bind(&ids)
    .bind(started.iter().map(|(_, o)| o.person_id).collect::<Vec<_>>())
    .bind(
        started
            .iter()
            .map(|(_, o)| o.organisation.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        started
            .iter()
            .map(|(_, o)| o.ecosystem.clone())
            .collect::<Vec<_>>(),
    )
    .fetch_all(pool)
    .await
    .map_err(socle_store::Error::from)?;
    let others: Vec<Uuid> = ids.into_iter().filter(|id| !claimed.contains(id)).collect();
    if others.is_empty() {
        return Ok(HashMap::new());
    }
    // Already there: ours (an earlier reading of this batch) or another's. Read in a statement
    // of its own, which sees a row a concurrent instance committed after the insert's snapshot.
    let rows = sqlx::query(
        "SELECT follow_id, person_id, organisation, ecosystem FROM ingest.follows \
         WHERE follow_id = ANY($1)",
    )
    .bind(&others)
    .fetch_all(pool)
    .await
    .map_err(socle_store::Error::from)?;
    let mut lost = HashMap::new();
    for r in rows {
        let id: Uuid = r.try_get("follow_id").map_err(socle_store::Error::from)?;
        let owner = Owner {
            person_id: r.try_get("person_id").map_err(socle_store::Error::from)?,
            organisation: r
                .try_get("organisation")
                .map_err(socle_store::Error::from)?,
            ecosystem: r.try_get("ecosystem").map_err(socle_store::Error::from)?,
        };
        if started.iter().any(|(s, o)| *s == id && *o != owner) {
            lost.insert(id, owner);
        }
    }
    Ok(lost)
}

/// [`judge`] against the stored follows, claiming the new ones: the verdict per claim.
///
/// # Errors
/// [`crate::Error::Store`] (transient).
pub async fn check(
    pool: &PgPool,
    core: &str,
    claims: &[Option<Claim>],
) -> Result<Vec<Option<Rejection>>> {
    let mut known = known(pool, core, claims).await?;
    loop {
        let (verdicts, started) = judge(claims, &known);
        let lost = claim(pool, &started).await?;
        if lost.is_empty() {
            return Ok(verdicts);
        }
        // Another instance took an id first: judge the batch again knowing it.
        known.extend(lost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(p: u128, org: &str) -> Owner {
        Owner {
            person_id: Uuid::from_u128(p),
            organisation: org.to_owned(),
            ecosystem: "cap-emploi".to_owned(),
        }
    }

    #[test]
    fn a_follow_started_and_ended_in_one_batch_passes() {
        let f = Uuid::from_u128(9);
        let claims = vec![
            Some(Claim::Start {
                follow_id: f,
                owner: owner(1, "A"),
            }),
            None,
            Some(Claim::End {
                follow_id: f,
                by: owner(1, "A"),
            }),
        ];
        let (verdicts, started) = judge(&claims, &HashMap::new());
        assert!(verdicts.iter().all(Option::is_none));
        assert_eq!(started, vec![(f, owner(1, "A"))]);
    }

    #[test]
    fn another_owner_is_refused() {
        let f = Uuid::from_u128(9);
        let known = HashMap::from([(f, owner(1, "A"))]);
        let claims = vec![
            Some(Claim::End {
                follow_id: f,
                by: owner(1, "B"),
            }),
            Some(Claim::End {
                follow_id: f,
                by: owner(2, "A"),
            }),
            Some(Claim::Start {
                follow_id: f,
                owner: owner(2, "B"),
            }),
            Some(Claim::End {
                follow_id: Uuid::from_u128(10),
                by: owner(1, "A"),
            }),
            Some(Claim::Start {
                follow_id: f,
                owner: owner(1, "A"),
            }),
            Some(Claim::End {
                follow_id: f,
                by: owner(1, "A"),
            }),
        ];
        let (verdicts, started) = judge(&claims, &known);
        let codes: Vec<Option<&str>> = verdicts
            .iter()
            .map(|v| v.as_ref().map(|r| r.code))
            .collect();
        assert_eq!(
            codes,
            vec![
                Some("follow.not_owned"),
                Some("follow.not_owned"),
                Some("follow.id_conflict"),
                Some("follow.not_owned"),
                None,
                None
            ]
        );
        assert!(started.is_empty(), "a known follow is not started again");
    }

    #[test]
    fn another_ecosystem_is_refused() {
        let f = Uuid::from_u128(9);
        let known = HashMap::from([(f, owner(1, "A"))]);
        let mut by = owner(1, "A");
        by.ecosystem = "france-travail".to_owned();
        let (verdicts, _) = judge(&[Some(Claim::End { follow_id: f, by })], &known);
        assert_eq!(
            verdicts[0].as_ref().map(|r| r.code),
            Some("follow.not_owned")
        );
    }
}
