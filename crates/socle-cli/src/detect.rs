//! `socle detect`: the bulk-extraction detector, sanctions for reviewers, and the simulation
//! that measures false positives.

use anyhow::Context;
use clap::Subcommand;
use socle_detect::runner::DetectConfig;
use socle_detect::SanctionKind;
use socle_kafka::EventProducer;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum DetectCommand {
    /// Watch the access topic: alerts, and sanctions the API honours (runs until stopped).
    Run,
    /// Lift a user's sanctions (a reviewer's decision, recorded as an event).
    Lift {
        #[arg(long)]
        user: String,
        /// Only this kind: throttle, require_mfa or suspend (default: all in force).
        #[arg(long)]
        kind: Option<String>,
        /// The reviewer.
        #[arg(long)]
        by: String,
        /// Why it is lifted.
        #[arg(long)]
        reason: String,
    },
    /// The sanctions in force for a user.
    Status {
        #[arg(long)]
        user: String,
    },
    /// Run a simulated day of normal work (and the 2024 pattern) through the configured rules.
    Simulate {
        #[arg(long, default_value_t = 50)]
        orgs: usize,
        #[arg(long, default_value_t = 20)]
        advisors_per_org: usize,
        #[arg(long, default_value_t = 100)]
        caseload: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub async fn run(
    settings: &Settings,
    command: DetectCommand,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let d = &settings.detect;
    match command {
        DetectCommand::Run => {
            let pool = crate::pool(settings).await?;
            let producer = EventProducer::new(&settings.kafka.brokers, settings.delivery_timeout())
                .context("kafka producer")?;
            let config = DetectConfig {
                brokers: settings.kafka.brokers.clone(),
                access_topic: settings.topics.access.clone(),
                alerts_topic: d.alerts_topic.clone(),
                sanctions_topic: d.sanctions_topic.clone(),
                group: d.group.clone(),
                group_instance_id: crate::settings::group_instance_id(&d.group_instance_id),
                rules: d.rules.clone(),
            };
            let probes = crate::ops::Probes::new("detect", &settings.kafka.brokers)?
                .with_pool(&pool)
                .with_registry(&settings.registry.url);
            crate::ops::with_health(settings.health.detect, probes, async {
                socle_detect::runner::run(
                    config,
                    pool.clone(),
                    crate::codec(settings)?,
                    producer,
                    None,
                    shutdown,
                )
                .await
                .context("detector")
            })
            .await
        }
        DetectCommand::Lift {
            user,
            kind,
            by,
            reason,
        } => {
            let kind = kind
                .map(|k| {
                    SanctionKind::parse(&k).with_context(|| {
                        format!("--kind {k}: expected throttle, require_mfa or suspend")
                    })
                })
                .transpose()?;
            let pool = crate::pool(settings).await?;
            let producer = EventProducer::new(&settings.kafka.brokers, settings.delivery_timeout())
                .context("kafka producer")?;
            let lifted = socle_detect::runner::lift(
                &pool,
                &*crate::codec(settings)?,
                &producer,
                &d.sanctions_topic,
                &user,
                kind,
                &by,
                &reason,
            )
            .await?;
            for s in lifted {
                println!(
                    "lifted {} on {} (imposed {} for {})",
                    s.kind.as_str(),
                    s.user,
                    s.imposed_at.to_rfc3339(),
                    s.reason
                );
            }
            Ok(())
        }
        DetectCommand::Status { user } => {
            let pool = crate::pool(settings).await?;
            // What the API's guard answers for this user now (no MFA session assumed).
            let guard = socle_detect::SanctionGuard::new(
                pool.clone(),
                std::time::Duration::from_millis(d.guard_ttl_ms),
                std::time::Duration::from_millis(d.rules.throttle_interval_ms),
            );
            let verdict = guard.check(&user, None).await?;
            println!(
                "the API answers {} for {user}{}",
                verdict.status(),
                verdict
                    .code()
                    .map_or_else(String::new, |c| format!(" ({c})"))
            );
            let active = socle_detect::store::active(&pool, &user).await?;
            if active.is_empty() {
                println!("no sanction in force for {user}");
            }
            for s in active {
                println!(
                    "{:<12} since {}  until {}  rule {}  alert {}",
                    s.kind.as_str(),
                    s.imposed_at.to_rfc3339(),
                    s.expires_at
                        .map_or_else(|| "lifted by a reviewer".to_owned(), |e| e.to_rfc3339()),
                    s.reason,
                    s.alert_id.map_or_else(|| "-".to_owned(), |a| a.to_string())
                );
            }
            Ok(())
        }
        DetectCommand::Simulate {
            orgs,
            advisors_per_org,
            caseload,
            seed,
        } => {
            use socle_detect::simulate;
            let day = simulate::normal_day(orgs, advisors_per_org, caseload, seed);
            let normal = simulate::judge(&d.rules, &day);
            let mut trail = day;
            let start = simulate::DAY_START + 14 * 3600 * 1_000_000;
            let thief = simulate::extraction("advisor-0-0", "90000000000000", 5000, 20.0, start);
            trail.extend(thief);
            trail.sort_by_key(|o| o.at);
            let attacked = simulate::judge(&d.rules, &trail);
            let report = serde_json::json!({
                "normal_day": {
                    "actors": normal.actors,
                    "events": normal.events,
                    "actors_alerted": normal.actors_alerted,
                    "actors_suspended": normal.actors_suspended,
                    "actors_throttled": normal.actors_throttled,
                    "actors_mfa": normal.actors_mfa,
                    "false_positive_rate": normal.actors_alerted as f64 / normal.actors.max(1) as f64,
                    "by_rule": normal.by_rule,
                },
                "with_extraction": {
                    "actors_suspended": attacked.actors_suspended,
                    "by_rule": attacked.by_rule,
                }
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}
