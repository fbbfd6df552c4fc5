//! `socle dev idp` and `socle dev token`: a development identity provider.
//!
//! The key lives in `auth.dev_idp_dir` (`.local/dev-idp/` by default). The API trusts it only
//! if `[auth] issuer` and `jwks_url` point at it; never do that outside a developer's machine.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use socle_auth::dev::{DevIdp, TokenRequest};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Serve the development IdP's JWKS and OIDC discovery document.
    Idp,
    /// Mint a token signed by the development IdP (printed on stdout).
    Token {
        /// `sub`: the user (or client id with --client).
        #[arg(long)]
        user: String,
        /// SIRET of the user's organisation.
        #[arg(long)]
        org: String,
        /// france-travail, cap-emploi, missions-locales, departement-NN, partenaires.
        #[arg(long)]
        ecosystem: String,
        /// A multi-factor session (`amr` with `mfa`, the MFA `acr`, `auth_time` = now): also a
        /// new multi-factor authentication, which lifts a step-up sanction imposed before it.
        #[arg(long)]
        mfa: bool,
        /// A client-credentials token (`client_id` = `sub`, no `auth_time`). The API treats it
        /// as an operator's system only if the id is in `auth.machine_clients`.
        #[arg(long)]
        client: bool,
        /// A refreshed token: the user authenticated this many seconds ago (`auth_time` in the
        /// past, `iat` now), which does not lift a step-up sanction imposed since.
        #[arg(long, value_name = "SECONDS", conflicts_with = "client")]
        auth_age: Option<i64>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        /// Audience (default: auth.audience).
        #[arg(long)]
        audience: Option<String>,
    },
}

fn issuer(settings: &Settings) -> String {
    format!("http://{}", settings.auth.dev_idp_listen)
}

pub async fn run(
    settings: &Settings,
    cmd: DevCommand,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let idp = DevIdp::load_or_create(&settings.auth.dev_idp_dir, &issuer(settings))
        .context("development IdP key")?;
    match cmd {
        DevCommand::Idp => {
            let listener = tokio::net::TcpListener::bind(settings.auth.dev_idp_listen)
                .await
                .with_context(|| {
                    format!(
                        "binding auth.dev_idp_listen {}",
                        settings.auth.dev_idp_listen
                    )
                })?;
            info!(
                issuer = idp.issuer(),
                kid = idp.kid(),
                "development IdP listening (trust it in development only)"
            );
            axum::serve(listener, Arc::new(idp).router())
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .context("development IdP")?;
            Ok(())
        }
        DevCommand::Token {
            user,
            org,
            ecosystem,
            mfa,
            client,
            auth_age,
            ttl,
            audience,
        } => {
            anyhow::ensure!(ttl > 0, "--ttl must be at least 1 second");
            anyhow::ensure!(
                auth_age.is_none_or(|a| a >= 0),
                "--auth-age must not be negative"
            );
            let issued_at = socle_auth::dev::now();
            let mut overrides = serde_json::Map::new();
            if let Some(age) = auth_age {
                overrides.insert("auth_time".into(), (issued_at - age).into());
            }
            let token = idp.mint_with(
                &TokenRequest {
                    user,
                    organisation: org,
                    ecosystem,
                    audience: audience.unwrap_or_else(|| settings.auth.audience.clone()),
                    mfa,
                    client,
                    issued_at,
                    ttl,
                },
                &overrides,
            )?;
            println!("{token}");
            Ok(())
        }
    }
}
