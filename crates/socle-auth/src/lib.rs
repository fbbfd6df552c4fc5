//! Who is calling: OIDC bearer tokens (JWT) verified against the identity provider's JWKS.
//!
//! The 2024 breach went through advisor accounts protected by a password alone. So the API never
//! trusts a caller's word about who they are: it verifies a signed token (RS256 or ES256 only,
//! never `none` or HMAC) from one configured issuer, for one audience, within its validity
//! window, and reads from it the organisation (SIRET), the ecosystem and how strongly the user
//! authenticated (`acr`/`amr`, so that personal data can demand a multi-factor session).
//!
//! Keys come from the issuer's JWKS, cached for at most `max_key_age`; a token signed with a key
//! id we do not know triggers one refresh, at most once per `refresh_min_interval`, and one at a
//! time (concurrent verifications wait for the refresh in flight and read its result), so a
//! flood of forged key ids cannot turn the API into a JWKS amplifier. Health checks read the
//! cache ([`Verifier::cached_status`], [`Verifier::ensure_keys`]) instead of fetching.
//!
//! [`dev`] is a development identity provider (a key under `.local/`, a JWKS endpoint and a
//! token minter). Nothing trusts it unless the `[auth]` configuration names it.

pub mod dev;
mod verify;

pub use verify::MFA_AMR_VALUES;
pub use verify::{Identity, KeyCacheStatus, Verifier, VerifierConfig};

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a token was refused, or keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no bearer token: send `Authorization: Bearer <token>`")]
    MissingToken,
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the token's algorithm {0} is not accepted (RS256 or ES256 only)")]
    UnsupportedAlgorithm(String),
    #[error("the token names no key id (kid)")]
    MissingKeyId,
    #[error("the token is signed with a key the identity provider does not publish")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token lacks the claim {0} or it is invalid")]
    BadClaim(&'static str),
    #[error("the identity provider's keys cannot be fetched: {0}")]
    JwksUnavailable(String),
    #[error("authentication is not configured ([auth] issuer, jwks_url, audience)")]
    NotConfigured,
    #[error("development IdP key: {0}")]
    Key(String),
    #[error("I/O on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl Error {
    /// The stable code carried by the API's problem documents.
    pub fn code(&self) -> &'static str {
        match self {
            Error::MissingToken => "auth.missing_token",
            Error::Malformed(_) | Error::MissingKeyId => "auth.malformed_token",
            Error::UnsupportedAlgorithm(_) => "auth.unsupported_algorithm",
            Error::UnknownKey | Error::BadSignature => "auth.bad_signature",
            Error::Expired => "auth.token_expired",
            Error::NotYetValid => "auth.token_not_yet_valid",
            Error::WrongIssuer => "auth.wrong_issuer",
            Error::WrongAudience => "auth.wrong_audience",
            Error::BadClaim(_) => "auth.bad_claim",
            Error::JwksUnavailable(_) => "auth.jwks_unavailable",
            Error::NotConfigured => "auth.not_configured",
            Error::Key(_) | Error::Io { .. } => "auth.internal",
        }
    }

    /// Whether the fault is ours or the IdP's (retry later), not the caller's token.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::JwksUnavailable(_) | Error::NotConfigured | Error::Key(_) | Error::Io { .. }
        )
    }
}
