//! `socle audit`: read the access trail, export it, verify its seal.

use std::io::BufReader;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use socle_kafka::tail::TrailReader;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the last entries of the access trail.
    Tail {
        /// How many entries per partition to start from.
        #[arg(short = 'n', long, default_value_t = 20)]
        last: i64,
        /// Keep printing new entries as they arrive.
        #[arg(short, long)]
        follow: bool,
        /// One JSON document per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a sealed topic's entries and checkpoints to a file, for offline verification.
    Export {
        /// The sealed topic (default: topics.access).
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition.
        #[arg(long)]
        partition: Option<i32>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Project the access topic (and person topics, for timelines) into the audit store.
    Project,
    /// Who accessed a person in a period.
    WhoAccessed {
        #[arg(long)]
        person: String,
        #[command(flatten)]
        q: QueryArgs,
    },
    /// Everything a user (or an organisation) read or changed in a period.
    Actor {
        #[arg(long, conflicts_with = "org", required_unless_present = "org")]
        user: Option<String>,
        #[arg(long)]
        org: Option<String>,
        #[command(flatten)]
        q: QueryArgs,
    },
    /// A person's timeline: domain events and access events merged in order.
    Timeline {
        #[arg(long)]
        person: String,
        /// json or csv.
        #[arg(long, default_value = "json")]
        format: String,
        #[command(flatten)]
        q: QueryArgs,
    },
    /// The person's own access journal, without entries restricted for an investigation.
    Journal {
        #[arg(long)]
        person: String,
        #[command(flatten)]
        q: QueryArgs,
    },
    /// Withhold entries from persons' journals during an investigation (recorded on the trail).
    Restrict {
        /// One access event...
        #[arg(long, conflicts_with = "actor", required_unless_present = "actor")]
        event: Option<uuid::Uuid>,
        /// ...or everything one actor did in --from/--to.
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        q: QueryArgs,
    },
    /// Replay an access decision with the grants in force at its instant, beside what was decided.
    Replay {
        /// The access event's id.
        #[arg(long)]
        event: uuid::Uuid,
        #[command(flatten)]
        q: QueryArgs,
    },
    /// Verify the seal of a topic (online, from Kafka) or of an export file (offline).
    Verify {
        /// An export file written by `socle audit export` (offline); otherwise Kafka is read.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The sealed topic, online (default: topics.access).
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition (online).
        #[arg(long)]
        partition: Option<i32>,
        /// From this offset.
        #[arg(long)]
        from: Option<i64>,
        /// Up to this offset.
        #[arg(long)]
        to: Option<i64>,
        /// Public key (default: seal.public_key).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Who asks, and over which period: every query is itself an access event.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The auditor asking (recorded on the access trail).
    #[arg(long = "as", value_name = "USER")]
    auditor: String,
    /// SIRET of the auditor's organisation.
    #[arg(long, default_value = "00000000000000")]
    auditor_org: String,
    /// From this instant (RFC 3339) or date (YYYY-MM-DD, midnight UTC).
    #[arg(long)]
    from: Option<String>,
    /// Up to this instant or date (excluded).
    #[arg(long)]
    to: Option<String>,
    #[arg(long, default_value_t = 1000)]
    limit: i64,
}

fn instant(
    name: &str,
    v: &Option<String>,
) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    let Some(s) = v else { return Ok(None) };
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(Some(d.with_timezone(&chrono::Utc)));
    }
    let day = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("--{name} {s}: expected an RFC 3339 instant or YYYY-MM-DD"))?;
    Ok(day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
}

/// Appends the auditor's query to the access trail (fail closed), then returns the period.
async fn admit(
    settings: &Settings,
    q: &QueryArgs,
    action: &str,
    resource: String,
    person_ids: Vec<String>,
) -> anyhow::Result<socle_audit::queries::Period> {
    let period =
        socle_audit::queries::Period::new(instant("from", &q.from)?, instant("to", &q.to)?)?;
    let producer =
        socle_kafka::EventProducer::new(&settings.kafka.brokers, settings.delivery_timeout())
            .context("kafka producer")?;
    let trail = socle_kafka::AccessTrail::new(
        producer,
        crate::codec(settings)?,
        settings.topics.access.clone(),
    );
    let event = socle_domain::AccessEvent {
        envelope: socle_domain::Envelope::new(q.auditor_org.clone(), chrono::Utc::now())
            .with_actor(q.auditor.clone()),
        request_id: uuid::Uuid::now_v7().to_string(),
        user: q.auditor.clone(),
        organisation: q.auditor_org.clone(),
        ecosystem: None,
        purpose: Some("audit".into()),
        auth_strength: "client".into(),
        action: action.to_owned(),
        resource,
        person_ids,
        decision: socle_domain::Decision::Allow,
        reason: None,
        policy_version: None,
        agreement_version: None,
    };
    trail
        .record(&event)
        .await
        .context("recording the query on the access trail (nothing is shown without it)")?;
    Ok(period)
}

async fn audit_pool(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    // The audit schema is created by `socle migrate` (checked here).
    crate::pool(settings).await
}

/// The audit store measured against the access trail (`[audit]` bounds): the answer's freshness,
/// or the refusal to answer from a store too far behind (`audit.store_behind`) or whose lag
/// cannot be measured (`audit.freshness_unknown`).
async fn fresh(
    settings: &Settings,
    pool: &sqlx::PgPool,
) -> anyhow::Result<socle_audit::freshness::Freshness> {
    use socle_audit::freshness::{Bounds, FreshnessCheck, Stale};
    let check =
        FreshnessCheck::new(&settings.kafka.brokers, &settings.topics.access).with_bounds(Bounds {
            max_lag_entries: settings.audit.max_lag_entries,
            max_lag: Duration::from_millis(settings.audit.max_lag_ms),
        });
    match check.check(pool).await {
        Ok(f) => Ok(f),
        Err(e) => {
            if let Stale::Behind { freshness, .. } = &e {
                eprintln!("{}", serde_json::to_string_pretty(&**freshness)?);
            }
            bail!("{}: {}", e.code(), e)
        }
    }
}

fn print_page(
    page: socle_audit::queries::Page<socle_audit::queries::AccessRow>,
    freshness: socle_audit::freshness::Freshness,
) -> anyhow::Result<()> {
    let truncated = page.truncated;
    let answer = socle_audit::freshness::Answer { page, freshness };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    if truncated {
        eprintln!("more rows match than --limit: narrow the period or raise the limit");
    }
    Ok(())
}

pub async fn run(
    settings: &Settings,
    command: AuditCommand,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use socle_audit::queries;
    match command {
        AuditCommand::Project => {
            let pool = audit_pool(settings).await?;
            let config = socle_audit::project::AuditProjectorConfig {
                brokers: settings.kafka.brokers.clone(),
                access_topic: settings.topics.access.clone(),
                person_topics: vec![settings.topics.persons.clone()],
                group: settings.audit.group.clone(),
                group_instance_id: crate::settings::group_instance_id(
                    &settings.audit.group_instance_id,
                ),
                batch_size: 1000,
                batch_timeout: Duration::from_millis(100),
            };
            let probes = crate::ops::Probes::new("audit", &settings.kafka.brokers)?
                .with_pool(&pool)
                .with_registry(&settings.registry.url);
            crate::ops::with_health(settings.health.audit, probes, async {
                socle_audit::project::run(config, pool.clone(), crate::codec(settings)?, shutdown)
                    .await
                    .context("audit projector")
            })
            .await
        }
        AuditCommand::WhoAccessed { person, q } => {
            let period = admit(
                settings,
                &q,
                "audit.who_accessed",
                format!("who-accessed:{person}"),
                vec![person.clone()],
            )
            .await?;
            let pool = audit_pool(settings).await?;
            let freshness = fresh(settings, &pool).await?;
            print_page(
                queries::who_accessed(&pool, &person, period, q.limit).await?,
                freshness,
            )
        }
        AuditCommand::Actor { user, org, q } => {
            let actor = match (user, org) {
                (Some(u), _) => queries::Actor::User(u),
                (None, Some(o)) => queries::Actor::Organisation(o),
                (None, None) => bail!("--user or --org is required"),
            };
            let resource = match &actor {
                queries::Actor::User(u) => format!("actor:{u}"),
                queries::Actor::Organisation(o) => format!("organisation:{o}"),
            };
            let period = admit(settings, &q, "audit.actor", resource, vec![]).await?;
            let pool = audit_pool(settings).await?;
            let freshness = fresh(settings, &pool).await?;
            print_page(
                queries::actor(&pool, &actor, period, q.limit).await?,
                freshness,
            )
        }
        AuditCommand::Timeline { person, format, q } => {
            if format != "json" && format != "csv" {
                bail!("--format {format}: expected json or csv");
            }
            let period = admit(
                settings,
                &q,
                "audit.timeline",
                format!("timeline:{person}"),
                vec![person.clone()],
            )
            .await?;
            let pool = audit_pool(settings).await?;
            let freshness = fresh(settings, &pool).await?;
            let page = queries::timeline(&pool, &person, period, q.limit).await?;
            let truncated = page.truncated;
            if format == "csv" {
                print!("{}", queries::timeline_csv(&page.rows)?);
                // The CSV holds rows only: its freshness goes to stderr.
                eprintln!(
                    "freshness: {}",
                    serde_json::to_string(&freshness).unwrap_or_default()
                );
            } else {
                let answer = socle_audit::freshness::Answer { page, freshness };
                println!("{}", serde_json::to_string_pretty(&answer)?);
            }
            if truncated {
                eprintln!("more rows match than --limit: narrow the period or raise the limit");
            }
            Ok(())
        }
        AuditCommand::Journal { person, q } => {
            let period = admit(
                settings,
                &q,
                "audit.journal",
                format!("journal:{person}"),
                vec![person.clone()],
            )
            .await?;
            let pool = audit_pool(settings).await?;
            let freshness = fresh(settings, &pool).await?;
            print_page(
                queries::journal(&pool, &person, period, q.limit).await?,
                freshness,
            )
        }
        AuditCommand::Replay { event, q } => {
            admit(
                settings,
                &q,
                "audit.replay",
                format!("replay:{event}"),
                vec![],
            )
            .await?;
            let pool = audit_pool(settings).await?;
            let engine =
                socle_policy::Engine::load(&settings.auth.policies_dir).with_context(|| {
                    format!(
                        "loading the policies in {}",
                        settings.auth.policies_dir.display()
                    )
                })?;
            let replay =
                socle_audit::replay::replay(&pool, &engine, &settings.auth.mfa_actions, event)
                    .await?;
            println!("{}", serde_json::to_string_pretty(&replay)?);
            if !replay.policy_version_matches {
                eprintln!(
                    "the policy version recorded ({}) is not the one loaded ({}): the replay uses the loaded one",
                    replay.decided_policy_version.as_deref().unwrap_or("none"),
                    replay.replayed_policy_version
                );
            }
            if replay.depends_on_caseload {
                match (replay.in_caseload_then, &replay.replayed) {
                    (Some(followed), Some(r)) => eprintln!(
                        "the decision depends on the caseload fact: replayed with the caseload as it was \
                         then (the organisation {} the person): {}",
                        if followed { "followed" } else { "did not follow" },
                        if r.allowed { "allowed" } else { "refused" }
                    ),
                    _ => eprintln!(
                        "the decision depends on the caseload fact, which cannot be told for this event \
                         (no single person concerned, or no core state here): both answers are shown"
                    ),
                }
            }
            Ok(())
        }
        AuditCommand::Restrict {
            event,
            actor,
            reason,
            q,
        } => {
            let what = match (event, actor) {
                (Some(e), _) => queries::Restricted::Event(e),
                (None, Some(user)) => queries::Restricted::Actor {
                    user,
                    period: queries::Period::new(instant("from", &q.from)?, instant("to", &q.to)?)?,
                },
                (None, None) => bail!("--event or --actor is required"),
            };
            let resource = match &what {
                queries::Restricted::Event(e) => format!("restrict:event:{e}"),
                queries::Restricted::Actor { user, .. } => format!("restrict:actor:{user}"),
            };
            // The flag, its reason and its author are an event on the sealed trail first.
            admit_with_reason(settings, &q, &resource, &reason).await?;
            let pool = audit_pool(settings).await?;
            let id = queries::restrict(&pool, &what, &reason, &q.auditor).await?;
            println!(
                "restriction {id} recorded ({resource}) by {}: {reason}",
                q.auditor
            );
            Ok(())
        }
        AuditCommand::Tail { last, follow, json } => {
            audit_tail(settings, last, follow, json, shutdown).await
        }
        AuditCommand::Export {
            topic,
            partition,
            out,
        } => export(settings, topic, partition, out).await,
        AuditCommand::Verify {
            file,
            topic,
            partition,
            from,
            to,
            public_key,
            json,
        } => {
            let key_path = public_key.unwrap_or_else(|| settings.seal.public_key.clone());
            let key = socle_seal::keys::load_public(&key_path).context("public key")?;
            let (entries, checkpoints) = match file {
                Some(path) => {
                    let f = std::fs::File::open(&path)
                        .with_context(|| format!("opening {}", path.display()))?;
                    socle_seal::export::read(BufReader::new(f))
                        .with_context(|| format!("reading {}", path.display()))?
                }
                None => read_online(settings, topic, partition).await?,
            };
            let report =
                socle_seal::verify(&entries, &checkpoints, &key, socle_seal::Range { from, to });
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for f in &report.findings {
                    println!("{f}");
                }
                println!(
                    "{} entries, {} verified against {} checkpoints, {} not yet sealed, {} findings",
                    report.entries,
                    report.verified,
                    report.checkpoints,
                    report.unsealed,
                    report.findings.len()
                );
            }
            if !report.is_clean() {
                bail!(
                    "the trail does not verify: {} findings",
                    report.findings.len()
                );
            }
            Ok(())
        }
    }
}

async fn admit_with_reason(
    settings: &Settings,
    q: &QueryArgs,
    resource: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let producer =
        socle_kafka::EventProducer::new(&settings.kafka.brokers, settings.delivery_timeout())
            .context("kafka producer")?;
    let trail = socle_kafka::AccessTrail::new(
        producer,
        crate::codec(settings)?,
        settings.topics.access.clone(),
    );
    let event = socle_domain::AccessEvent {
        envelope: socle_domain::Envelope::new(q.auditor_org.clone(), chrono::Utc::now())
            .with_actor(q.auditor.clone()),
        request_id: uuid::Uuid::now_v7().to_string(),
        user: q.auditor.clone(),
        organisation: q.auditor_org.clone(),
        ecosystem: None,
        purpose: Some("audit".into()),
        auth_strength: "client".into(),
        action: "audit.restrict".into(),
        resource: resource.to_owned(),
        person_ids: vec![],
        decision: socle_domain::Decision::Allow,
        reason: Some(reason.to_owned()),
        policy_version: None,
        agreement_version: None,
    };
    trail
        .record(&event)
        .await
        .context("recording the restriction on the access trail")?;
    Ok(())
}

async fn read_online(
    settings: &Settings,
    topic: Option<String>,
    partition: Option<i32>,
) -> anyhow::Result<(Vec<socle_seal::Entry>, Vec<socle_seal::Checkpoint>)> {
    let topic = topic.unwrap_or_else(|| settings.topics.access.clone());
    let timeout = Duration::from_secs(30);
    let codec = crate::codec(settings)?;
    let entries = socle_seal::read::entries(&settings.kafka.brokers, &topic, partition, timeout)
        .await
        .with_context(|| format!("reading {topic}"))?;
    let mut checkpoints = socle_seal::read::checkpoints(
        &settings.kafka.brokers,
        &codec,
        &settings.seal.seal_topic,
        &topic,
        timeout,
    )
    .await
    .with_context(|| format!("reading the checkpoints on {}", settings.seal.seal_topic))?;
    if let Some(p) = partition {
        checkpoints.retain(|c| c.partition == p);
    }
    Ok((entries, checkpoints))
}

async fn export(
    settings: &Settings,
    topic: Option<String>,
    partition: Option<i32>,
    out: PathBuf,
) -> anyhow::Result<()> {
    let (entries, checkpoints) = read_online(settings, topic, partition).await?;
    let f = std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = std::io::BufWriter::new(f);
    socle_seal::export::write(&mut w, &entries, &checkpoints)?;
    println!(
        "{} entries and {} checkpoints written to {}",
        entries.len(),
        checkpoints.len(),
        out.display()
    );
    Ok(())
}

async fn audit_tail(
    settings: &Settings,
    last: i64,
    follow: bool,
    json: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let codec = crate::codec(settings)?;
    let timeout = Duration::from_secs(10);
    let reader = TrailReader::open(
        &settings.kafka.brokers,
        &settings.topics.access,
        last,
        timeout,
    )
    .await
    .context("opening the access trail")?;
    let print = |t: &socle_kafka::tail::Tailed| {
        if json {
            println!("{}", tailed_json(t));
        } else {
            println!("{}", tailed_line(t));
        }
    };
    let events = reader.read_to_end(&codec, timeout).await?;
    if !json {
        println!(
            "{:<27} {:<7} {:<20} {:<15} {:<12} {:<20} PERSONS",
            "WHEN", "DECISION", "USER", "ORGANISATION", "ACTION", "REASON"
        );
    }
    for t in &events {
        print(t);
    }
    if follow {
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                n = reader.next(&codec) => n?,
            };
            print(&next);
        }
    }
    Ok(())
}

fn when(t: &socle_kafka::tail::Tailed) -> String {
    socle_domain::time::from_micros(t.event.envelope.recorded_at)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| t.event.envelope.recorded_at.to_string())
}

fn tailed_line(t: &socle_kafka::tail::Tailed) -> String {
    let e = &t.event;
    format!(
        "{:<27} {:<8} {:<20} {:<15} {:<12} {:<20} {}",
        when(t),
        e.decision.as_str(),
        e.user,
        e.organisation,
        e.action,
        e.reason.as_deref().unwrap_or("-"),
        if e.person_ids.is_empty() {
            "-".to_owned()
        } else {
            e.person_ids.join(",")
        }
    )
}

fn tailed_json(t: &socle_kafka::tail::Tailed) -> serde_json::Value {
    let e = &t.event;
    serde_json::json!({
        "partition": t.partition,
        "offset": t.offset,
        "event_id": e.envelope.event_id,
        "recorded_at": when(t),
        "request_id": e.request_id,
        "user": e.user,
        "organisation": e.organisation,
        "auth_strength": e.auth_strength,
        "action": e.action,
        "resource": e.resource,
        "person_ids": e.person_ids,
        "decision": e.decision.as_str(),
        "reason": e.reason,
    })
}
