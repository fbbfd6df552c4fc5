//! Verifying bearer tokens against a JWKS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::{Error, Result};

/// What the verifier trusts.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The `iss` every token must carry, e.g. `https://idp.example/realms/socle`.
    pub issuer: String,
    /// The `aud` every token must carry, e.g. `socle-api`.
    pub audience: String,
    /// Where the issuer publishes its keys.
    pub jwks_url: String,
    /// `acr` values that mean a multi-factor session (besides `amr` containing one of
    /// [`MFA_AMR_VALUES`]).
    pub mfa_acr_values: Vec<String>,
    /// At most one JWKS refresh per this interval when an unknown key id shows up (and at most
    /// one attempt per this interval after a failed refresh).
    pub refresh_min_interval: Duration,
    /// Keys fetched longer ago than this are fetched again before they are used: a key the
    /// IdP has withdrawn stops being trusted within this bound
    /// ([`VerifierConfig::DEFAULT_MAX_KEY_AGE`] by default).
    pub max_key_age: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

impl VerifierConfig {
    /// The default of [`VerifierConfig::max_key_age`]: 15 minutes.
    pub const DEFAULT_MAX_KEY_AGE: Duration = Duration::from_secs(15 * 60);
}

/// What the key cache holds, for health checks: see [`Verifier::cached_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCacheStatus {
    /// Keys fetched within the maximum key age.
    Fresh { keys: usize, age: Duration },
    /// No usable keys (never fetched, empty set, or older than the maximum key age) and the
    /// last refresh failed with this error.
    Failing(String),
    /// No usable keys, and no failure known: a refresh is due.
    Stale,
}

/// The verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub`: the user, or the client id for a client-credentials token.
    pub subject: String,
    /// SIRET of the caller's organisation (claim `organisation`).
    pub organisation: String,
    /// The caller's ecosystem (claim `ecosystem`), e.g. `cap-emploi`.
    pub ecosystem: String,
    /// The user authenticated with several factors: `amr` has one of [`MFA_AMR_VALUES`]
    /// (RFC 8176), or `acr` is one of the configured MFA levels.
    pub mfa: bool,
    /// A **registered** machine client (an operator's system, client credentials), bound to
    /// its organisation; never a person at a keyboard. The verifier never sets it: a token's
    /// claims alone do not make a machine. It is set by [`Identity::with_machine_clients`]
    /// from the configured list of client ids (`auth.machine_clients`).
    pub client: bool,
    /// The token's `client_id` claim (RFC 9068), if any: the OAuth client the token was
    /// issued to. A machine only if registered (see [`Identity::with_machine_clients`]).
    pub client_id: Option<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// When the user authenticated: the OIDC `auth_time` claim only, seconds since the epoch,
    /// never the token's `iat` (a refreshed token has a new `iat` but no new authentication).
    /// A sanction that demands a new MFA step is satisfied only by a later one.
    pub authenticated_at: Option<i64>,
}

/// `amr` values (RFC 8176) that mean the user authenticated with a second factor: `mfa`
/// (multiple factors), `otp` (one-time password), `hwk` (proof of possession of a hardware key).
pub const MFA_AMR_VALUES: [&str; 3] = ["mfa", "otp", "hwk"];

impl Identity {
    /// Whether this token is a machine client's: its `client_id` is one of `registered` (the
    /// configured `auth.machine_clients`) **and** its subject is that client (RFC 9068: a
    /// client-credentials token's `sub` is the client id). A user's token issued through a
    /// registered client (`sub` = the user) is not a machine token, and neither is an
    /// unregistered `client_id == sub` token.
    pub fn is_machine_client(&self, registered: &[String]) -> bool {
        self.client_id
            .as_deref()
            .is_some_and(|c| c == self.subject && registered.iter().any(|r| r == c))
    }

    /// This identity with [`Identity::client`] decided by `registered` (see
    /// [`Identity::is_machine_client`]). A machine has no second factor and no user
    /// authentication: for a machine token `mfa` is false and `authenticated_at` none, whatever
    /// its claims say, so it never meets an MFA requirement or lifts a step-up.
    #[must_use]
    pub fn with_machine_clients(mut self, registered: &[String]) -> Self {
        self.client = self.is_machine_client(registered);
        if self.client {
            self.mfa = false;
            self.authenticated_at = None;
        }
        self
    }

    /// `none`, `password`, `mfa` or `client`, as recorded in access events.
    pub fn auth_strength(&self) -> &'static str {
        if self.client {
            "client"
        } else if self.mfa {
            "mfa"
        } else {
            "password"
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: i64,
    organisation: Option<String>,
    ecosystem: Option<String>,
    acr: Option<String>,
    #[serde(default)]
    amr: Vec<String>,
    client_id: Option<String>,
    /// OIDC `auth_time`: when the user last authenticated (with the factors of `amr`/`acr`).
    auth_time: Option<i64>,
    iat: Option<i64>,
}

type Keys = HashMap<String, (DecodingKey, Algorithm)>;

/// Verifies tokens; cheap to clone (shared cache).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

/// The keys and when they were fetched.
#[derive(Default)]
struct Cache {
    keys: Keys,
    /// When the keys were fetched (none: never).
    fetched_at: Option<Instant>,
    /// Incremented by every refresh attempt that completed (success or failure): a waiter that
    /// sees it changed knows a refresh happened while it waited, and does not fetch again.
    generation: u64,
    /// When the last refresh was attempted, and its error if it failed.
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

impl Cache {
    fn fresh(&self, max_age: Duration) -> bool {
        self.fetched_at.is_some_and(|t| t.elapsed() < max_age)
    }
}

struct Inner {
    config: VerifierConfig,
    http: reqwest::Client,
    cache: RwLock<Cache>,
    /// Held for the whole of a refresh: one fetch at a time (single flight). Verifications that
    /// need keys wait on it, then read what the refresh brought instead of fetching again.
    refreshing: Mutex<()>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.config.issuer)
            .field("audience", &self.inner.config.audience)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `config`; keys are fetched on first use.
    ///
    /// # Errors
    /// [`Error::NotConfigured`] when issuer, audience or JWKS URL is empty.
    pub fn new(config: VerifierConfig, http: reqwest::Client) -> Result<Self> {
        if config.issuer.is_empty() || config.audience.is_empty() || config.jwks_url.is_empty() {
            return Err(Error::NotConfigured);
        }
        Ok(Verifier {
            inner: Arc::new(Inner {
                config,
                http,
                cache: RwLock::new(Cache::default()),
                refreshing: Mutex::new(()),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }

    /// Fetches the JWKS now (at start-up), or waits for the refresh already in progress and
    /// returns what it brought (one fetch at a time).
    ///
    /// # Errors
    /// [`Error::JwksUnavailable`].
    pub async fn refresh(&self) -> Result<usize> {
        let seen = self.inner.cache.read().await.generation;
        let _flight = self.inner.refreshing.lock().await;
        let cache = self.inner.cache.read().await;
        if cache.generation != seen {
            return match &cache.last_error {
                None => Ok(cache.keys.len()),
                Some(e) => Err(Error::JwksUnavailable(e.clone())),
            };
        }
        drop(cache);
        self.fetch_locked().await
    }

    /// What the cache holds, without fetching anything: for `/health`, which must not turn
    /// unauthenticated calls into JWKS fetches.
    pub async fn cached_status(&self) -> KeyCacheStatus {
        let cache = self.inner.cache.read().await;
        if cache.fresh(self.inner.config.max_key_age) && !cache.keys.is_empty() {
            return KeyCacheStatus::Fresh {
                keys: cache.keys.len(),
                age: cache.fetched_at.map(|t| t.elapsed()).unwrap_or_default(),
            };
        }
        match &cache.last_error {
            Some(e) => KeyCacheStatus::Failing(e.clone()),
            None => KeyCacheStatus::Stale,
        }
    }

    /// The keys for health checks: the cached ones while fresh; when they are missing or older
    /// than the maximum key age, one refresh (single flight, at most once per
    /// `refresh_min_interval`); after a failed refresh, that failure until the interval passes.
    ///
    /// # Errors
    /// [`Error::JwksUnavailable`] with the last refresh's error.
    pub async fn ensure_keys(&self) -> Result<usize> {
        match self.cached_status().await {
            KeyCacheStatus::Fresh { keys, .. } => return Ok(keys),
            KeyCacheStatus::Failing(_) | KeyCacheStatus::Stale => {}
        }
        let seen = self.inner.cache.read().await.generation;
        let _flight = self.inner.refreshing.lock().await;
        {
            let cache = self.inner.cache.read().await;
            let usable = cache.fresh(self.inner.config.max_key_age) && !cache.keys.is_empty();
            if usable {
                return Ok(cache.keys.len());
            }
            if cache.generation != seen || self.recently_attempted(&cache) {
                return Err(Error::JwksUnavailable(
                    cache.last_error.clone().unwrap_or_else(|| {
                        "the identity provider published no usable key".to_owned()
                    }),
                ));
            }
        }
        let n = self.fetch_locked().await?;
        if n == 0 {
            return Err(Error::JwksUnavailable(
                "the identity provider published no usable key".to_owned(),
            ));
        }
        Ok(n)
    }

    fn recently_attempted(&self, cache: &Cache) -> bool {
        cache
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.inner.config.refresh_min_interval)
    }

    /// Fetches the key set; the caller holds `refreshing`.
    async fn fetch_locked(&self) -> Result<usize> {
        let fetched = self.fetch().await;
        let mut cache = self.inner.cache.write().await;
        cache.generation += 1;
        cache.last_attempt = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                let n = keys.len();
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
                cache.last_error = None;
                Ok(n)
            }
            Err(e) => {
                cache.last_error = Some(match &e {
                    Error::JwksUnavailable(m) => m.clone(),
                    other => other.to_string(),
                });
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<Keys> {
        let set: JwkSet = self
            .inner
            .http
            .get(&self.inner.config.jwks_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| Error::JwksUnavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| Error::JwksUnavailable(format!("not a JWK set: {e}")))?;
        let mut keys = Keys::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p)
                    if p.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (key, alg));
            }
        }
        Ok(keys)
    }

    /// The key named `kid`. Cached keys are used while younger than `max_key_age`. An unknown
    /// `kid`, or keys past their age, lead to one refresh: concurrent callers wait for the
    /// refresh in progress (single flight) and then read its result instead of fetching again;
    /// an unknown `kid` refreshes at most once per `refresh_min_interval`.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm)> {
        let max_age = self.inner.config.max_key_age;
        let seen = {
            let cache = self.inner.cache.read().await;
            if cache.fresh(max_age) {
                if let Some(k) = cache.keys.get(kid) {
                    return Ok(k.clone());
                }
            }
            cache.generation
        };
        let _flight = self.inner.refreshing.lock().await;
        {
            let cache = self.inner.cache.read().await;
            let fresh = cache.fresh(max_age);
            if fresh {
                if let Some(k) = cache.keys.get(kid) {
                    return Ok(k.clone());
                }
            }
            if cache.generation != seen {
                // A refresh completed while we waited: its answer is ours.
                return Err(match &cache.last_error {
                    Some(e) => Error::JwksUnavailable(e.clone()),
                    None => Error::UnknownKey,
                });
            }
            if self.recently_attempted(&cache) {
                if fresh {
                    return Err(Error::UnknownKey);
                }
                if let Some(e) = &cache.last_error {
                    return Err(Error::JwksUnavailable(e.clone()));
                }
            }
        }
        self.fetch_locked().await?;
        self.inner
            .cache
            .read()
            .await
            .keys
            .get(kid)
            .cloned()
            .ok_or(Error::UnknownKey)
    }

    /// Verifies `token` and returns who it names.
    ///
    /// # Errors
    /// One [`Error`] variant per reason: malformed, algorithm, key, signature, expiry,
    /// not-before, issuer, audience, claims; [`Error::JwksUnavailable`] if keys cannot be had.
    pub async fn verify(&self, token: &str) -> Result<Identity> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| Error::Malformed(e.to_string()))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(Error::UnsupportedAlgorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(Error::MissingKeyId)?;
        let (key, alg) = self.key(&kid).await?;
        if alg != header.alg {
            return Err(Error::BadSignature);
        }
        let config = &self.inner.config;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = config.leeway.as_secs();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => Error::Expired,
                K::ImmatureSignature => Error::NotYetValid,
                K::InvalidIssuer => Error::WrongIssuer,
                K::InvalidAudience => Error::WrongAudience,
                K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidRsaKey(_) => {
                    Error::BadSignature
                }
                K::MissingRequiredClaim(c) if c == "sub" => Error::BadClaim("sub"),
                _ => Error::Malformed(e.to_string()),
            }
        })?;
        identity(data.claims, &config.mfa_acr_values)
    }
}

fn identity(claims: Claims, mfa_acr_values: &[String]) -> Result<Identity> {
    let subject = claims
        .sub
        .filter(|s| is_token(s, 128))
        .ok_or(Error::BadClaim("sub"))?;
    let organisation = claims
        .organisation
        .filter(|s| s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(Error::BadClaim("organisation"))?;
    let ecosystem = claims
        .ecosystem
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        .ok_or(Error::BadClaim("ecosystem"))?;
    // A machine is known by configuration, never guessed from the claims: see
    // `Identity::with_machine_clients`.
    let client_id = claims.client_id.filter(|c| is_token(c, 128));
    let mfa = claims
        .amr
        .iter()
        .any(|m| MFA_AMR_VALUES.contains(&m.as_str()))
        || claims
            .acr
            .as_deref()
            .is_some_and(|a| mfa_acr_values.iter().any(|v| v == a));
    // OIDC: the authentication precedes the token. An `auth_time` after `iat` (or after `exp`
    // when there is no `iat`) is not a real authentication time: it could satisfy every future
    // step-up.
    if let Some(t) = claims.auth_time {
        if t > claims.iat.unwrap_or(claims.exp) || t < 0 {
            return Err(Error::BadClaim("auth_time"));
        }
    }
    Ok(Identity {
        subject,
        organisation,
        ecosystem,
        mfa,
        client: false,
        client_id,
        expires_at: claims.exp,
        authenticated_at: claims.auth_time,
    })
}

fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(amr: &[&str], acr: Option<&str>, client_id: Option<&str>) -> Claims {
        Claims {
            sub: Some("u1".into()),
            exp: 1,
            organisation: Some("13000548100010".into()),
            ecosystem: Some("cap-emploi".into()),
            acr: acr.map(str::to_owned),
            amr: amr.iter().map(|s| (*s).to_owned()).collect(),
            client_id: client_id.map(str::to_owned),
            auth_time: None,
            iat: Some(1),
        }
    }

    #[test]
    fn mfa_comes_from_amr_or_a_configured_acr() {
        let acr = vec!["urn:socle:acr:mfa".to_owned()];
        assert!(!identity(claims(&["pwd"], None, None), &acr).unwrap().mfa);
        assert!(
            identity(claims(&["pwd", "mfa"], None, None), &acr)
                .unwrap()
                .mfa
        );
        assert!(
            identity(claims(&[], Some("urn:socle:acr:mfa"), None), &acr)
                .unwrap()
                .mfa
        );
        assert!(
            !identity(claims(&[], Some("urn:other"), None), &acr)
                .unwrap()
                .mfa
        );
        // RFC 8176 second factors.
        for second in ["otp", "hwk"] {
            assert!(
                identity(claims(&["pwd", second], None, None), &acr)
                    .unwrap()
                    .mfa
            );
        }
        assert!(
            !identity(claims(&["pwd", "kba"], None, None), &acr)
                .unwrap()
                .mfa
        );
    }

    #[test]
    fn the_authentication_time_is_auth_time_never_iat() {
        // A refreshed token: a new `iat`, no `auth_time`: no known authentication time.
        let mut c = claims(&["mfa"], None, None);
        c.iat = Some(2_000);
        c.exp = 2_300;
        assert_eq!(identity(c, &[]).unwrap().authenticated_at, None);
        let mut c = claims(&["mfa"], None, None);
        (c.iat, c.exp, c.auth_time) = (Some(2_000), 2_300, Some(1_500));
        assert_eq!(identity(c, &[]).unwrap().authenticated_at, Some(1_500));
        // An authentication after the token was issued is not one.
        let mut c = claims(&["mfa"], None, None);
        (c.iat, c.exp, c.auth_time) = (Some(2_000), 2_300, Some(2_001));
        assert!(matches!(
            identity(c, &[]),
            Err(Error::BadClaim("auth_time"))
        ));
        let mut c = claims(&["mfa"], None, None);
        (c.iat, c.exp, c.auth_time) = (None, 2_300, Some(2_301));
        assert!(matches!(
            identity(c, &[]),
            Err(Error::BadClaim("auth_time"))
        ));
    }

    #[test]
    fn machine_clients_are_known_by_configuration_never_guessed() {
        let registered = vec!["si-agence".to_owned()];
        // `client_id == sub` alone is not a machine: a user token until registered.
        let id = identity(claims(&[], None, Some("u1")), &[]).unwrap();
        assert!(!id.client);
        assert_eq!(id.client_id.as_deref(), Some("u1"));
        assert!(!id.clone().with_machine_clients(&registered).client);
        assert_eq!(id.auth_strength(), "password");
        // Registered, and the subject is the client: a machine, with no second factor and no
        // user authentication whatever its claims say.
        let mut c = claims(&["mfa"], None, Some("si-agence"));
        c.sub = Some("si-agence".into());
        c.auth_time = Some(1);
        let id = identity(c, &[]).unwrap().with_machine_clients(&registered);
        assert!(id.client);
        assert!(!id.mfa);
        assert_eq!(id.authenticated_at, None);
        assert_eq!(id.auth_strength(), "client");
        // A user's token issued through the registered client (`sub` is the user): not a machine.
        let id = identity(claims(&["mfa"], None, Some("si-agence")), &[])
            .unwrap()
            .with_machine_clients(&registered);
        assert!(!id.client);
        assert!(id.mfa);
    }

    #[test]
    fn bad_claims() {
        let mut c = claims(&[], None, None);
        c.organisation = Some("1300".into());
        assert!(matches!(
            identity(c, &[]),
            Err(Error::BadClaim("organisation"))
        ));
        let mut c = claims(&[], None, None);
        c.ecosystem = Some("Cap Emploi".into());
        assert!(matches!(
            identity(c, &[]),
            Err(Error::BadClaim("ecosystem"))
        ));
    }
}
