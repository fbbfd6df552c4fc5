//! `socle seal`: the sealer, and its keys.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use socle_kafka::EventProducer;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum SealCommand {
    /// Chain the configured topics and write signed checkpoints (runs until stopped).
    Run,
    /// Generate a signing key pair (development; production keeps the private key secret).
    Keygen {
        /// Private key file (default: seal.private_key).
        #[arg(long)]
        private_key: Option<PathBuf>,
        /// Public key file (default: seal.public_key).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print the public key of the configured private key (what the deployment publishes).
    PublicKey,
}

pub async fn run(
    settings: &Settings,
    command: SealCommand,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match command {
        SealCommand::Run => seal(settings, shutdown).await,
        SealCommand::Keygen {
            private_key,
            public_key,
            force,
        } => keygen(
            private_key.unwrap_or_else(|| settings.seal.private_key.clone()),
            public_key.unwrap_or_else(|| settings.seal.public_key.clone()),
            force,
        ),
        SealCommand::PublicKey => {
            let key = socle_seal::keys::load_private(&settings.seal.private_key)?;
            print!("{}", socle_seal::keys::public_pem(&key.verifying_key())?);
            Ok(())
        }
    }
}

async fn seal(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let key = socle_seal::keys::load_private(&settings.seal.private_key)
        .context("seal.private_key (generate one with `socle seal keygen`)")?;
    let pool = crate::pool(settings).await?;
    let producer = EventProducer::new(&settings.kafka.brokers, settings.delivery_timeout())
        .context("kafka producer")?;
    let config = socle_seal::sealer::SealerConfig {
        brokers: settings.kafka.brokers.clone(),
        topics: settings.seal.topics.clone(),
        seal_topic: settings.seal.seal_topic.clone(),
        every_entries: settings.seal.every_entries,
        every: Duration::from_millis(settings.seal.every_ms),
    };
    let probes = crate::ops::Probes::new("seal", &settings.kafka.brokers)?
        .with_pool(&pool)
        .with_registry(&settings.registry.url);
    crate::ops::with_health(settings.health.seal, probes, async {
        socle_seal::sealer::run(
            config,
            pool.clone(),
            crate::codec(settings)?,
            producer,
            key,
            shutdown,
        )
        .await
        .context("sealer")
    })
    .await
}

fn keygen(private: PathBuf, public: PathBuf, force: bool) -> anyhow::Result<()> {
    for path in [&private, &public] {
        if path.exists() && !force {
            bail!(
                "{} exists: refusing to replace a key (use --force)",
                path.display()
            );
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let key = socle_seal::keys::generate();
    write_secret(&private, &socle_seal::keys::private_pem(&key)?)?;
    std::fs::write(&public, socle_seal::keys::public_pem(&key.verifying_key())?)
        .with_context(|| format!("writing {}", public.display()))?;
    println!(
        "private key {} (keep secret), public key {} (publish), key id {}",
        private.display(),
        public.display(),
        socle_seal::chain::key_id(&key.verifying_key())
    );
    Ok(())
}

fn write_secret(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    #[cfg(not(unix))]
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
