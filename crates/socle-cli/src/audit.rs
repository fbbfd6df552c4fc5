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

pub async fn run(
    settings: &Settings,
    command: AuditCommand,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match command {
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
