//! A development identity provider: one ES256 key kept in a file, its JWKS and OIDC discovery
//! document served over HTTP, and a token minter.
//!
//! It exists so that the API can be exercised end to end (tests, `make up`, benchmarks) with the
//! very verification path production uses. It is trusted by nothing unless `[auth]` is pointed
//! at it, and it must never be: anyone who can read its key file can mint any identity.

use std::path::Path;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{Error, Result};

/// The key file name under the directory given to [`DevIdp::load_or_create`].
pub const KEY_FILE: &str = "dev-idp-es256.pk8";

/// The `acr` value the development IdP puts in multi-factor tokens.
pub const MFA_ACR: &str = "urn:socle:acr:mfa";

/// A development identity provider.
pub struct DevIdp {
    issuer: String,
    kid: String,
    x: String,
    y: String,
    encoding: EncodingKey,
}

impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdp")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What a minted token says.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub user: String,
    pub organisation: String,
    pub ecosystem: String,
    pub audience: String,
    /// A multi-factor session (`amr: ["pwd","otp","mfa"]`, `acr` = [`MFA_ACR`]).
    pub mfa: bool,
    /// A client-credentials token (`client_id` = `sub`, no `auth_time`). The API treats it as
    /// a machine only if `sub` is registered in `auth.machine_clients`.
    pub client: bool,
    /// Issued-at, seconds since the epoch (tests set it in the past to mint expired tokens).
    pub issued_at: i64,
    /// Lifetime in seconds.
    pub ttl: i64,
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    organisation: &'a str,
    ecosystem: &'a str,
    acr: &'a str,
    amr: Vec<&'a str>,
    /// OIDC `auth_time`: a user token says when the user authenticated (here: when the token
    /// was issued; [`DevIdp::mint_with`] can say otherwise, e.g. a refreshed token).
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
}

impl DevIdp {
    /// A fresh in-memory key (tests).
    ///
    /// # Errors
    /// [`Error::Key`] if the system random source fails.
    pub fn generate(issuer: &str) -> Result<Self> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|e| Error::Key(e.to_string()))?;
        Self::from_pkcs8(issuer, pkcs8.as_ref())
    }

    /// The key kept in `dir`/[`KEY_FILE`], created (mode 0600) on first use.
    ///
    /// # Errors
    /// [`Error::Io`] reading or writing the file, [`Error::Key`] for a corrupt key.
    pub fn load_or_create(dir: &Path, issuer: &str) -> Result<Self> {
        let path = dir.join(KEY_FILE);
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => Self::from_pkcs8(issuer, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io)?;
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|e| Error::Key(e.to_string()))?;
                write_private(&path, pkcs8.as_ref()).map_err(io)?;
                Self::from_pkcs8(issuer, pkcs8.as_ref())
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_pkcs8(issuer: &str, pkcs8: &[u8]) -> Result<Self> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| Error::Key(format!("not a P-256 PKCS#8 key: {e}")))?;
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(Error::Key("unexpected public key encoding".into()));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, point);
        let kid = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(DevIdp {
            issuer: issuer.trim_end_matches('/').to_owned(),
            kid,
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..65]),
            encoding: EncodingKey::from_ec_der(pkcs8),
        })
    }

    /// A key pair with another secret but the same key id (to forge tokens in tests).
    ///
    /// # Errors
    /// As [`DevIdp::generate`].
    pub fn impostor(&self) -> Result<Self> {
        let mut other = Self::generate(&self.issuer)?;
        other.kid.clone_from(&self.kid);
        Ok(other)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
            "kid": self.kid, "x": self.x, "y": self.y,
        }]})
    }

    /// The OIDC discovery document (`/.well-known/openid-configuration`).
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/jwks.json", self.issuer),
            "id_token_signing_alg_values_supported": ["ES256"],
            "acr_values_supported": [MFA_ACR],
            "grant_types_supported": ["client_credentials"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["token"],
        })
    }

    /// A signed token for `request`. A user token carries `auth_time` = `issued_at` (a fresh
    /// authentication, with a second factor if `mfa`); a client-credentials token none.
    ///
    /// # Errors
    /// [`Error::Key`] if signing fails.
    pub fn mint(&self, request: &TokenRequest) -> Result<String> {
        self.mint_with(request, &serde_json::Map::new())
    }

    /// As [`DevIdp::mint`], with some claims replaced: each key of `overrides` replaces the
    /// claim of that name, `null` removes it (tests: a refreshed token with an old or no
    /// `auth_time`, another `amr` or `acr`, a `client_id`...).
    ///
    /// # Errors
    /// [`Error::Key`] if signing fails.
    pub fn mint_with(
        &self,
        request: &TokenRequest,
        overrides: &serde_json::Map<String, Value>,
    ) -> Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let claims = MintedClaims {
            iss: &self.issuer,
            sub: &request.user,
            aud: &request.audience,
            iat: request.issued_at,
            nbf: request.issued_at,
            exp: request.issued_at + request.ttl,
            jti: uuid::Uuid::new_v4().to_string(),
            organisation: &request.organisation,
            ecosystem: &request.ecosystem,
            acr: if request.mfa {
                MFA_ACR
            } else {
                "urn:socle:acr:pwd"
            },
            amr: if request.mfa {
                vec!["pwd", "otp", "mfa"]
            } else {
                vec!["pwd"]
            },
            auth_time: (!request.client).then_some(request.issued_at),
            client_id: request.client.then_some(request.user.as_str()),
        };
        let mut claims = match serde_json::to_value(&claims) {
            Ok(Value::Object(m)) => m,
            _ => return Err(Error::Key("claims are not a JSON object".into())),
        };
        for (name, value) in overrides {
            if value.is_null() {
                claims.remove(name);
            } else {
                claims.insert(name.clone(), value.clone());
            }
        }
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| Error::Key(e.to_string()))
    }

    /// `/jwks.json` and `/.well-known/openid-configuration`.
    pub fn router(self: Arc<Self>) -> Router {
        let jwks = self.jwks();
        let discovery = self.discovery();
        Router::new()
            .route("/jwks.json", get(move || async move { Json(jwks) }))
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { Json(discovery) }),
            )
    }
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::{Verifier, VerifierConfig};

    fn request(mfa: bool) -> TokenRequest {
        TokenRequest {
            user: "conseiller.1".into(),
            organisation: "13000548100010".into(),
            ecosystem: "cap-emploi".into(),
            audience: "socle-api".into(),
            mfa,
            client: false,
            issued_at: now(),
            ttl: 300,
        }
    }

    async fn serve(idp: Arc<DevIdp>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, idp.router()).await });
        base
    }

    #[tokio::test]
    async fn minted_tokens_verify_and_every_bad_token_is_refused_precisely() {
        let idp = Arc::new(DevIdp::generate("http://idp.test").unwrap());
        let base = serve(idp.clone()).await;
        let verifier = Verifier::new(
            VerifierConfig {
                issuer: "http://idp.test".into(),
                audience: "socle-api".into(),
                jwks_url: format!("{base}/jwks.json"),
                mfa_acr_values: vec![MFA_ACR.into()],
                refresh_min_interval: Duration::from_secs(60),
                max_key_age: VerifierConfig::DEFAULT_MAX_KEY_AGE,
                leeway: Duration::from_secs(0),
            },
            reqwest::Client::new(),
        )
        .unwrap();
        let ok = verifier
            .verify(&idp.mint(&request(true)).unwrap())
            .await
            .unwrap();
        assert_eq!(ok.subject, "conseiller.1");
        assert!(ok.mfa);
        assert_eq!(ok.auth_strength(), "mfa");
        let pwd = verifier
            .verify(&idp.mint(&request(false)).unwrap())
            .await
            .unwrap();
        assert!(!pwd.mfa);
        // A fresh authentication says when it happened (OIDC `auth_time`).
        let req = request(true);
        let fresh = verifier.verify(&idp.mint(&req).unwrap()).await.unwrap();
        assert_eq!(fresh.authenticated_at, Some(req.issued_at));
        // A refreshed token: a new `iat`, the old `auth_time` (or none).
        let mut old = serde_json::Map::new();
        old.insert("auth_time".into(), json!(req.issued_at - 600));
        let refreshed = verifier.verify(&idp.mint_with(&req, &old).unwrap()).await;
        assert_eq!(
            refreshed.unwrap().authenticated_at,
            Some(req.issued_at - 600)
        );
        let mut none = serde_json::Map::new();
        none.insert("auth_time".into(), Value::Null);
        let refreshed = verifier.verify(&idp.mint_with(&req, &none).unwrap()).await;
        assert_eq!(refreshed.unwrap().authenticated_at, None);
        // A client-credentials token has no user authentication, and is no machine by itself.
        let mut client = request(false);
        client.client = true;
        let c = verifier.verify(&idp.mint(&client).unwrap()).await.unwrap();
        assert_eq!(c.authenticated_at, None);
        assert_eq!(c.client_id.as_deref(), Some("conseiller.1"));
        assert!(!c.client);

        let mut expired = request(true);
        expired.issued_at -= 3600;
        let e = verifier
            .verify(&idp.mint(&expired).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Expired), "{e}");

        let mut future = request(true);
        future.issued_at += 3600;
        let e = verifier
            .verify(&idp.mint(&future).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NotYetValid), "{e}");

        let mut other_aud = request(true);
        other_aud.audience = "another-api".into();
        let e = verifier
            .verify(&idp.mint(&other_aud).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::WrongAudience), "{e}");

        let forged = idp.impostor().unwrap().mint(&request(true)).unwrap();
        let e = verifier.verify(&forged).await.unwrap_err();
        assert!(matches!(e, Error::BadSignature), "{e}");

        let stranger = DevIdp::generate("http://idp.test").unwrap();
        let e = verifier
            .verify(&stranger.mint(&request(true)).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::UnknownKey), "{e}");

        let other_issuer = DevIdp::generate("http://evil.test").unwrap();
        let mut evil = other_issuer;
        evil.kid = idp.kid.clone();
        let e = verifier
            .verify(&evil.mint(&request(true)).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::WrongIssuer | Error::BadSignature), "{e}");

        let e = verifier.verify("not.a.jwt").await.unwrap_err();
        assert_eq!(e.code(), "auth.malformed_token");
        // alg=none / HS256 are refused before any key lookup.
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x"}),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        let e = verifier.verify(&hs).await.unwrap_err();
        assert!(matches!(e, Error::UnsupportedAlgorithm(_)), "{e}");
    }

    #[test]
    fn the_key_file_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("socle-idp-{}", uuid::Uuid::new_v4()));
        let a = DevIdp::load_or_create(&dir, "http://i").unwrap();
        let b = DevIdp::load_or_create(&dir, "http://i").unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.jwks(), b.jwks());
        let _ = std::fs::remove_dir_all(dir);
    }
}
