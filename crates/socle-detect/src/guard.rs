//! What the API calls on each request: is this user under a sanction, and what must happen?
//!
//! Reads the sanctions in force from PostgreSQL, cached per user for a short TTL (so a
//! suspension takes effect within the TTL, at the cost of one indexed query per user per TTL).
//! Fails closed: if the sanctions cannot be read, the caller must refuse (503), as it does when
//! the trail cannot be written.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::detector::SanctionKind;
use crate::store::{self, Sanction};
use crate::Result;

/// What the API must do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No sanction in force.
    Allow,
    /// Suspended until a reviewer lifts it: refuse (403 `actor.suspended`).
    Suspended {
        reason: String,
        since: DateTime<Utc>,
    },
    /// Refuse unless the caller authenticated with MFA after `since` (401 `auth.mfa_step_up`).
    RequireMfa {
        reason: String,
        since: DateTime<Utc>,
    },
    /// Too soon after the previous request under a throttle: refuse (429, `Retry-After`).
    Throttled { retry_after: Duration },
}

impl Verdict {
    /// Stable problem code for the refusal (none for [`Verdict::Allow`]).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Verdict::Allow => None,
            Verdict::Suspended { .. } => Some("actor.suspended"),
            Verdict::RequireMfa { .. } => Some("auth.mfa_step_up"),
            Verdict::Throttled { .. } => Some("actor.throttled"),
        }
    }

    /// HTTP status for the refusal (200 for [`Verdict::Allow`]).
    pub fn status(&self) -> u16 {
        match self {
            Verdict::Allow => 200,
            Verdict::Suspended { .. } => 403,
            Verdict::RequireMfa { .. } => 401,
            Verdict::Throttled { .. } => 429,
        }
    }
}

struct Cached {
    read_at: Instant,
    sanctions: Vec<Sanction>,
}

/// Whether a multi-factor authentication at `mfa_at` meets a step-up sanction imposed at
/// `imposed_at`: only one strictly after it (`auth_time` has whole seconds: an authentication
/// in the same second as the sanction, but earlier, must not count, so the same second does
/// not either).
pub fn step_up_met(mfa_at: Option<DateTime<Utc>>, imposed_at: DateTime<Utc>) -> bool {
    mfa_at.is_some_and(|t| t > imposed_at)
}

/// The per-request sanction check, with its cache.
pub struct SanctionGuard {
    pool: PgPool,
    ttl: Duration,
    throttle_interval: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    last_request: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for SanctionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SanctionGuard")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SanctionGuard {
    /// A guard reading `pool`, caching each user's sanctions for `ttl`; a throttled user gets
    /// one request per `throttle_interval`.
    pub fn new(pool: PgPool, ttl: Duration, throttle_interval: Duration) -> Self {
        SanctionGuard {
            pool,
            ttl,
            throttle_interval,
            cache: Mutex::new(HashMap::new()),
            last_request: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict for a request by `user`, who authenticated with MFA at `mfa_at` (if at all).
    ///
    /// `mfa_at` must be the time of an actual multi-factor **authentication**: the OIDC
    /// `auth_time` of a token whose `amr`/`acr` says MFA, never the token's `iat` (a refreshed
    /// token has a new `iat` but no new authentication), and `None` for a token without
    /// `auth_time` or without MFA, and for a machine client. A `require_mfa` sanction is met only
    /// by an `mfa_at` strictly after it was imposed ([`step_up_met`]).
    ///
    /// # Errors
    /// [`crate::Error::Database`] when the sanctions cannot be read: refuse the request.
    pub async fn check(&self, user: &str, mfa_at: Option<DateTime<Utc>>) -> Result<Verdict> {
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(user)
                .filter(|c| c.read_at.elapsed() < self.ttl)
                .map(|c| c.sanctions.clone())
        };
        let sanctions = match cached {
            Some(s) => s,
            None => {
                let s = store::active(&self.pool, user).await?;
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() > 100_000 {
                    cache.retain(|_, c| c.read_at.elapsed() < self.ttl);
                }
                cache.insert(
                    user.to_owned(),
                    Cached {
                        read_at: Instant::now(),
                        sanctions: s.clone(),
                    },
                );
                s
            }
        };
        let now = Utc::now();
        let in_force = sanctions
            .iter()
            .filter(|s| s.expires_at.is_none_or(|e| e > now));
        let mut throttled = false;
        for s in in_force {
            match s.kind {
                SanctionKind::Suspend => {
                    return Ok(Verdict::Suspended {
                        reason: s.reason.clone(),
                        since: s.imposed_at,
                    })
                }
                SanctionKind::RequireMfa if !step_up_met(mfa_at, s.imposed_at) => {
                    return Ok(Verdict::RequireMfa {
                        reason: s.reason.clone(),
                        since: s.imposed_at,
                    })
                }
                SanctionKind::RequireMfa => {}
                SanctionKind::Throttle => throttled = true,
            }
        }
        if throttled {
            let mut last = self.last_request.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if let Some(prev) = last.get(user) {
                let since = now.duration_since(*prev);
                if since < self.throttle_interval {
                    return Ok(Verdict::Throttled {
                        retry_after: self.throttle_interval - since,
                    });
                }
            }
            last.insert(user.to_owned(), now);
        }
        Ok(Verdict::Allow)
    }

    /// Forgets the cached sanctions of `user` (after a lift in this process).
    pub fn invalidate(&self, user: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_up_is_met_only_by_an_authentication_after_the_sanction() {
        let imposed = DateTime::<Utc>::from_timestamp(1_800_000_000, 500_000_000).unwrap();
        let at = |s: i64| DateTime::<Utc>::from_timestamp(s, 0);
        // No known authentication (a refreshed token without auth_time, a machine): not met.
        assert!(!step_up_met(None, imposed));
        // Before, or within the same second (auth_time has whole seconds): not met.
        assert!(!step_up_met(at(1_799_999_000), imposed));
        assert!(!step_up_met(at(1_800_000_000), imposed));
        // After: met.
        assert!(step_up_met(at(1_800_000_001), imposed));
    }
}
