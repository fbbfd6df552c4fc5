//! `socle admin grant` and `socle admin revoke`: habilitations are published as events on
//! `auth.habilitations_topic`; every API instance replays them into PostgreSQL.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use socle_domain::time::to_micros;
use socle_domain::Envelope;
use socle_kafka::{Codec, EventProducer};
use socle_policy::grants::{GrantPublisher, HabilitationGranted, HabilitationRevoked};
use uuid::Uuid;

use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct GrantArgs {
    #[arg(long)]
    pub user: String,
    /// SIRET of the user's organisation.
    #[arg(long)]
    pub org: String,
    #[arg(long)]
    pub ecosystem: String,
    /// Comma-separated: person.read, person.search, person.lookup_nir, person.write,
    /// caseload.list, services.list, audit.query.
    #[arg(long, value_delimiter = ',', required = true)]
    pub actions: Vec<String>,
    /// The finalité served, e.g. accompagnement, orientation.
    #[arg(long)]
    pub purpose: String,
    /// Comma-separated INSEE codes (département or commune); none: the whole caseload.
    #[arg(long, value_delimiter = ',')]
    pub territories: Vec<String>,
    /// RFC 3339 (default: now).
    #[arg(long)]
    pub from: Option<DateTime<Utc>>,
    /// RFC 3339; every grant expires.
    #[arg(long)]
    pub until: DateTime<Utc>,
    /// Whether the actions need a multi-factor session (default true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub requires_mfa: bool,
    /// Who grants (recorded in the event).
    #[arg(long)]
    pub by: String,
}

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    #[arg(long)]
    pub grant_id: Uuid,
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub org: String,
    #[arg(long)]
    pub by: String,
    /// A reason code (never free text).
    #[arg(long)]
    pub reason_code: Option<String>,
}

fn publisher(settings: &Settings) -> anyhow::Result<GrantPublisher> {
    Ok(GrantPublisher {
        producer: EventProducer::new(&settings.kafka.brokers, settings.delivery_timeout())
            .context("kafka producer")?,
        codec: Arc::new(Codec::new(&settings.registry.url).context("schema registry client")?),
        topic: settings.auth.habilitations_topic.clone(),
    })
}

pub async fn grant(settings: &Settings, a: GrantArgs) -> anyhow::Result<()> {
    let grant = HabilitationGranted {
        envelope: Envelope::new(a.org.clone(), Utc::now()).with_actor(a.by.clone()),
        grant_id: Uuid::now_v7(),
        user: a.user,
        organisation: a.org,
        ecosystem: a.ecosystem,
        actions: a.actions,
        territories: a.territories,
        activities: Vec::new(),
        purpose: a.purpose,
        valid_from: to_micros(a.from.unwrap_or_else(Utc::now)),
        valid_until: to_micros(a.until),
        requires_mfa: a.requires_mfa,
        granted_by: a.by,
    };
    publisher(settings)?
        .grant(&grant)
        .await
        .context("publishing the grant")?;
    println!("granted {} to {}", grant.grant_id, grant.user);
    Ok(())
}

pub async fn revoke(settings: &Settings, a: RevokeArgs) -> anyhow::Result<()> {
    let revocation = HabilitationRevoked {
        envelope: Envelope::new(a.org.clone(), Utc::now()).with_actor(a.by.clone()),
        grant_id: a.grant_id,
        user: a.user,
        organisation: a.org,
        effective_at: to_micros(Utc::now()),
        revoked_by: a.by,
        reason_code: a.reason_code,
    };
    publisher(settings)?
        .revoke(&revocation)
        .await
        .context("publishing the revocation")?;
    println!("revoked {}", revocation.grant_id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Grant {
        #[command(flatten)]
        args: super::GrantArgs,
    }

    #[test]
    fn the_grant_help_lists_every_action_a_grant_may_name() {
        let help = Grant::command().render_long_help().to_string();
        for action in socle_policy::grants::ACTIONS {
            assert!(
                help.contains(action),
                "--actions help omits {action}: {help}"
            );
        }
    }
}
