//! `socle replay`: rebuild a model from the first offset, build the models as of an instant,
//! or list what changed in one person's record between two instants.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use socle_projector::replay::{self, Source};
use tokio_util::sync::CancellationToken;
use tracing::info;
use uuid::Uuid;

use crate::settings::Settings;

/// Replay history into read models.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["ecosystem", "as_of", "person"]))]
pub struct ReplayArgs {
    /// Rebuild this ecosystem's model from the first offset and swap it in (repeatable).
    #[arg(long)]
    ecosystem: Vec<String>,
    /// Build every model as it was at this instant (RFC 3339) into read-only schemas.
    #[arg(long)]
    as_of: Option<DateTime<Utc>>,
    /// List what changed in this person's record between --from and --to.
    #[arg(long, requires_all = ["from", "to"])]
    person: Option<Uuid>,
    #[arg(long)]
    from: Option<DateTime<Utc>>,
    #[arg(long)]
    to: Option<DateTime<Utc>>,
}

/// Progress of a build: a bar with rate and ETA on a terminal (stderr), a log line every 5 s
/// otherwise (and at the start and the end).
struct Reporter {
    bar: Option<ProgressBar>,
    /// When the last log line was written (none yet: `None`), and what it said.
    last: std::sync::Mutex<(Option<Instant>, (u64, u64))>,
}

impl Reporter {
    fn new() -> Reporter {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} offsets ({per_sec}, ETA {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Reporter {
            bar,
            last: std::sync::Mutex::new((None, (0, 0))),
        }
    }

    /// Offsets read so far, out of how many (it grows while a rebuild catches up with the live
    /// projector).
    fn report(&self, done: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total.max(done));
                bar.set_position(done);
            }
            None => {
                if let Ok(mut last) = self.last.lock() {
                    let due = last.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
                    let finished = done >= total && last.1 != (done, total);
                    if due || finished {
                        info!(done, total, "replay progress (offsets read)");
                        *last = (Some(Instant::now()), (done, total));
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

pub async fn run(
    settings: &Settings,
    args: ReplayArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = crate::pool(settings).await?;
    let codec = crate::codec(settings)?;
    let agreements = crate::agreements(settings)?;
    let source = Source {
        brokers: settings.kafka.brokers.clone(),
        topic: settings.topics.persons.clone(),
        batch_size: settings.projector.batch_size,
    };
    if !args.ecosystem.is_empty() {
        let ecosystems: BTreeSet<String> = args.ecosystem.into_iter().collect();
        let started = Instant::now();
        let reporter = Reporter::new();
        let rebuilt = replay::rebuild(
            &pool,
            codec,
            &agreements,
            &ecosystems,
            &source,
            &settings.projector.group,
            &|done, total| reporter.report(done, total),
            &shutdown,
        )
        .await;
        reporter.finish();
        // A failed or interrupted rebuild has dropped the schemas it created.
        let rebuilt = rebuilt.context("rebuild")?;
        println!(
            "rebuilt {} from {} events in {:.1}s and swapped in",
            rebuilt.ecosystems.join(", "),
            rebuilt.events,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if let Some(at) = args.as_of {
        let reporter = Reporter::new();
        let snapshot = replay::as_of(
            &pool,
            codec,
            &agreements,
            at,
            &source,
            &|done, total| reporter.report(done, total),
            &shutdown,
        )
        .await;
        reporter.finish();
        let snapshot = snapshot.context("as-of build")?;
        println!("models as of {} (read-only):", snapshot.at.to_rfc3339());
        for (ecosystem, schema) in snapshot.schemas {
            println!("  {ecosystem:<20} {schema}");
        }
        return Ok(());
    }
    let (Some(person), Some(from), Some(to)) = (args.person, args.from, args.to) else {
        bail!("give --ecosystem, --as-of, or --person with --from and --to");
    };
    if from > to {
        bail!("--from {from} is after --to {to}");
    }
    let reporter = Reporter::new();
    let diffs = replay::person_history(
        &pool,
        codec,
        &agreements,
        person,
        (from, to),
        &source,
        &|done, total| reporter.report(done, total),
        &shutdown,
    )
    .await;
    reporter.finish();
    let diffs = diffs.context("person history")?;
    for d in diffs {
        let state = |m: &Option<serde_json::Map<String, serde_json::Value>>| {
            if m.is_some() {
                "in scope"
            } else {
                "not in scope"
            }
        };
        println!(
            "{}: {} -> {}",
            d.ecosystem,
            state(&d.before),
            state(&d.after)
        );
        for field in d.changed {
            let get = |m: &Option<serde_json::Map<String, serde_json::Value>>| {
                m.as_ref()
                    .and_then(|m| m.get(&field))
                    .map_or("-".to_owned(), |v| v.to_string())
            };
            println!("    {field}: {} -> {}", get(&d.before), get(&d.after));
        }
    }
    Ok(())
}
