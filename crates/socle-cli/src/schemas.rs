//! `socle admin schemas apply`: registers socle's contracts under their subjects.
//!
//! Reads `schemas/subjects.toml` (which contract travels on which topic) and makes the
//! registry at `registry.url` hold each one under `<topic>-<record full name>` with
//! `BACKWARD_TRANSITIVE` compatibility (crate `socle-contracts`, module `subjects`). Run by
//! `make up` after `socle admin topics apply`; idempotent; a contract change that breaks
//! compatibility is refused with the registry's 409 message and a non-zero exit.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use socle_contracts::subjects::{self, RegistryClient, SubjectsFile};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Register every contract of the subjects file under its subject (BACKWARD_TRANSITIVE).
    Apply {
        /// Subjects file; the schema paths in it are relative to its folder.
        #[arg(long, default_value = "schemas/subjects.toml")]
        file: PathBuf,
        /// Who makes the changes (recorded in the registry's events as X-Socle-User).
        #[arg(long, env = "SOCLE_ADMIN_USER", default_value = "socle-admin")]
        user: String,
    },
}

/// Runs a `socle admin schemas` command.
///
/// # Errors
/// A bad subjects file, an unreachable registry, or a contract the registry refuses.
pub async fn run(
    settings: &Settings,
    command: SchemasCommand,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match command {
        SchemasCommand::Apply { file, user } => {
            let subjects = SubjectsFile::load(&file)?;
            let client = RegistryClient::new(&settings.registry.url, &user)?;
            let applied = tokio::select! {
                () = shutdown.cancelled() => anyhow::bail!("interrupted"),
                applied = subjects::apply(&client, &subjects) => applied,
            }
            .with_context(|| format!("applying {}", file.display()))?;
            let mut changed = 0;
            for a in &applied {
                let what = match (a.registered, a.compatibility_set) {
                    (true, _) => "registered",
                    (false, true) => "level set ",
                    (false, false) => "unchanged ",
                };
                if a.registered || a.compatibility_set {
                    changed += 1;
                }
                println!("{what} {} version {} id {}", a.subject, a.version, a.id);
            }
            println!(
                "{} subjects, {changed} changed, compatibility {}",
                applied.len(),
                subjects::COMPATIBILITY
            );
            // A contract nobody mapped to a topic is not registered: say so, loudly.
            for file in subjects.unmapped()? {
                eprintln!(
                    "warning: {file} is not in {} (no topic): not registered",
                    subjects.path.display()
                );
            }
            Ok(())
        }
    }
}
