//! Configuration: built-in defaults, overlaid by a file, then by `SOCLE__...` variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("default.toml");

/// All of socle's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kafka: Kafka,
    pub database: Database,
    pub registry: Registry,
    pub api: Api,
    pub topics: Topics,
    pub projector: Projector,
    pub agreements: AgreementsSettings,
    pub reference: ReferenceSettings,
    pub feeds: Feeds,
    pub auth: Auth,
    pub ingest: Ingest,
    pub seal: Seal,
    pub detect: Detect,
    pub health: Health,
    pub audit: AuditSettings,
}

/// Where each component without an HTTP API of its own serves `/health` and `/metrics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub ingest: SocketAddr,
    pub projector: SocketAddr,
    pub feed: SocketAddr,
    pub seal: SocketAddr,
    pub detect: SocketAddr,
    pub audit: SocketAddr,
}

/// The audit store's projection and the freshness of the auditors' answers (docs/audit.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Consumer group of `socle audit project`.
    pub group: String,
    /// Kafka's `group.instance.id`, unique and stable per instance (static group membership: a
    /// restarted instance gets its partitions back at once); empty: dynamic membership.
    pub group_instance_id: String,
    /// An auditor's query fails (instead of answering) when the audit store is more than this
    /// many trail entries behind the access topic...
    pub max_lag_entries: i64,
    /// ...or when its newest projected entry is older than the trail's by more than this.
    pub max_lag_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kafka {
    pub brokers: String,
    pub delivery_timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// Contains the password: never printed.
    pub url: SecretString,
    pub max_connections: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub url: String,
    pub listen: SocketAddr,
    /// Topic of the registry's own events (registrations, deletions, compatibility changes).
    pub events_topic: String,
    /// Unpublished registry events beyond which `socle registry` refuses changes (503).
    pub events_max_backlog: i64,
    /// `producer_organisation` (SIRET) in the registry events' envelope.
    pub events_organisation: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    pub listen: SocketAddr,
    /// A request's complete headers must arrive within this (docs/api.md, "Connection limits").
    pub header_read_timeout_ms: u64,
    /// A connection with nothing in progress and no byte moving for this long is closed.
    pub idle_timeout_ms: u64,
    /// A request, body included, not answered within this gets `408 request.timeout`.
    pub request_timeout_ms: u64,
    /// Connections open at once; one accepted past it is closed at once.
    pub max_connections: u32,
    /// At shutdown, how long in-flight requests are given (0: closed at once).
    pub shutdown_grace_ms: u64,
    /// The hard read budget: distinct people one actor may be shown per window.
    pub read_budget_persons: i64,
    pub read_budget_window_secs: u64,
}

impl Api {
    /// The hard read budget `socle serve` enforces.
    pub fn read_budget(&self) -> socle_api::ReadBudget {
        socle_api::ReadBudget {
            max_persons: self.read_budget_persons,
            window: Duration::from_secs(self.read_budget_window_secs),
        }
    }

    /// The connection limits `socle serve` applies.
    pub fn limits(&self) -> socle_api::ServeLimits {
        socle_api::ServeLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    pub persons: String,
    pub access: String,
    pub file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feeds {
    /// Each ecosystem's feed topic is `<topic_prefix><ecosystem>`.
    pub topic_prefix: String,
    /// Notices relayed per transaction.
    pub batch_size: i64,
    /// Pause when there is nothing to relay, in milliseconds.
    pub idle_ms: u64,
    /// SIRET recorded as the producer of the views and of the disclosure events.
    pub organisation: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementsSettings {
    /// Folder of the data-sharing agreements, one `<ecosystem>.toml` each.
    pub dir: PathBuf,
}

/// `[reference]`: the runtime referential (reference/README.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSettings {
    /// Folder with the upstream layout (`insee-cog/`, `rome-v460/`, `data-inclusion-schema/`,
    /// `france-travail-pass-emploi/`, `data-inclusion-api/`), relative to the working directory.
    pub dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Projector {
    pub group: String,
    /// Kafka's `group.instance.id`, unique and stable per instance (static group membership: a
    /// restarted instance gets its partitions back at once); empty: dynamic membership.
    pub group_instance_id: String,
    pub batch_size: usize,
    pub batch_timeout_ms: u64,
}

/// `socle seal` and the verifier (docs/audit.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    pub topics: Vec<String>,
    pub seal_topic: String,
    pub every_entries: usize,
    pub every_ms: u64,
    /// The signing key (PKCS#8 PEM): a secret file, never printed.
    pub private_key: PathBuf,
    /// The public key published with the deployment (SPKI PEM).
    pub public_key: PathBuf,
}

/// `socle detect` and the sanctions the API honours (docs/audit.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    pub group: String,
    /// Kafka's `group.instance.id`, unique and stable per instance (static group membership: a
    /// restarted instance gets its partitions back at once); empty: dynamic membership.
    pub group_instance_id: String,
    pub alerts_topic: String,
    pub sanctions_topic: String,
    /// How long the API caches a user's sanctions.
    pub guard_ttl_ms: u64,
    /// Thresholds; every key is optional (defaults in docs/audit.md).
    #[serde(default)]
    pub rules: socle_detect::Rules,
}

/// `socle ingest` (docs/ingest.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingest {
    pub group: String,
    /// Unique and stable per instance (e.g. suffixed with the pod ordinal).
    pub transactional_id: String,
    /// Kafka's `group.instance.id`, unique and stable per instance (static group membership: a
    /// restarted instance gets its partitions back at once); empty: dynamic membership.
    pub group_instance_id: String,
    pub france_travail_topic: String,
    pub cap_emploi_topic: String,
    pub missions_locales_topic: String,
    pub deadletter_topic: String,
    pub batch_size: usize,
    pub batch_timeout_ms: u64,
    pub transaction_timeout_ms: u64,
}

/// `[auth]`: who the API trusts, and the access rules that are configuration (docs/api.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// The OIDC issuer (`iss`) trusted; empty: `socle serve` refuses to start.
    pub issuer: String,
    /// Its JWKS.
    pub jwks_url: String,
    /// The audience (`aud`) tokens must be for.
    pub audience: String,
    /// `acr` values that mean a multi-factor session (besides `amr` containing `mfa`, `otp` or `hwk`).
    pub mfa_acr_values: Vec<String>,
    /// Actions that demand a multi-factor session whatever the grant says.
    pub mfa_actions: Vec<String>,
    /// The registered machine clients (operators' systems, client credentials): a token is a
    /// machine's only when its `client_id` is listed here and its `sub` is that client id
    /// (docs/api.md). Empty: every token is a person's.
    pub machine_clients: Vec<String>,
    pub jwks_refresh_min_interval_ms: u64,
    /// Keys fetched longer ago than this are fetched again before use: a key the IdP withdrew
    /// stops being trusted within this bound.
    pub jwks_max_key_age_secs: u64,
    pub leeway_secs: u64,
    pub nir_lookups_per_hour: u32,
    /// The cedar policies (`*.cedar`).
    pub policies_dir: PathBuf,
    /// Grants and revocations (`socle admin grant|revoke`, replayed by the API).
    pub habilitations_topic: String,
    /// `socle dev idp`: where it listens and keeps its key. Development only.
    pub dev_idp_listen: SocketAddr,
    pub dev_idp_dir: PathBuf,
}

impl Settings {
    /// Loads the defaults, then `file` if given, then the environment.
    ///
    /// # Errors
    /// A message naming the file or variable at fault: syntax, unknown key, wrong type.
    pub fn load(file: Option<&Path>) -> Result<Settings, config::ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, config::ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let env: std::collections::HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("SOCLE__"))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("SOCLE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), config::ConfigError> {
        let bad = |m: &str| Err(config::ConfigError::Message(m.to_owned()));
        if self.projector.batch_size == 0 {
            return bad("projector.batch_size must be at least 1");
        }
        if self.ingest.batch_size == 0 || self.ingest.transaction_timeout_ms == 0 {
            return bad("ingest.batch_size and ingest.transaction_timeout_ms must be at least 1");
        }
        if self.seal.every_entries == 0 || self.seal.every_ms == 0 {
            return bad("seal.every_entries and seal.every_ms must be at least 1");
        }
        if let Err(e) = self.detect.rules.check() {
            return bad(&format!("detect.rules: {e}"));
        }
        if self.audit.max_lag_entries < 0 || self.audit.max_lag_ms == 0 {
            return bad("audit.max_lag_entries must be at least 0 and audit.max_lag_ms at least 1");
        }
        if self
            .auth
            .machine_clients
            .iter()
            .any(|c| c.is_empty() || c.len() > 128 || !c.bytes().all(|b| b.is_ascii_graphic()))
        {
            return bad("auth.machine_clients: each client id is 1 to 128 printable ASCII characters without spaces");
        }
        if self.api.read_budget_persons < 1 || self.api.read_budget_window_secs == 0 {
            return bad("api.read_budget_persons and api.read_budget_window_secs must be at least 1 (the budget cannot be turned off)");
        }
        if self.kafka.delivery_timeout_ms == 0 {
            return bad("kafka.delivery_timeout_ms must be at least 1");
        }
        if self.registry.events_max_backlog < 1 || self.registry.events_topic.trim().is_empty() {
            return bad("registry.events_max_backlog must be at least 1 and registry.events_topic not empty");
        }
        if !self.registry.url.starts_with("http://") && !self.registry.url.starts_with("https://") {
            return bad("registry.url must start with http:// or https://");
        }
        let api = &self.api;
        for (key, ms) in [
            ("header_read_timeout_ms", api.header_read_timeout_ms),
            ("idle_timeout_ms", api.idle_timeout_ms),
            ("request_timeout_ms", api.request_timeout_ms),
        ] {
            if ms == 0 {
                return bad(&format!(
                    "api.{key} must be at least 1 (0 would close every connection at once)"
                ));
            }
        }
        if api.max_connections == 0 {
            return bad("api.max_connections must be at least 1 (0 would refuse every connection)");
        }
        if self.auth.jwks_max_key_age_secs == 0 {
            return bad("auth.jwks_max_key_age_secs must be at least 1 (0 would fetch the JWKS for every token)");
        }
        if self.auth.jwks_max_key_age_secs.saturating_mul(1000)
            < self.auth.jwks_refresh_min_interval_ms
        {
            return bad("auth.jwks_max_key_age_secs must not be shorter than auth.jwks_refresh_min_interval_ms (the keys would expire before a refresh is allowed)");
        }
        Ok(())
    }

    pub fn database_url(&self) -> &str {
        self.database.url.expose_secret()
    }

    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.kafka.delivery_timeout_ms)
    }
}

/// A `group_instance_id` setting as the components take it: `None` (dynamic membership) when
/// empty.
pub fn group_instance_id(setting: &str) -> Option<String> {
    let id = setting.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_load_and_environment_overrides() {
        let s = Settings::load_from(None, env(&[])).expect("defaults load");
        assert_eq!(s.kafka.brokers, "localhost:9092");
        assert_eq!(s.api.listen.port(), 8080);
        let s = Settings::load_from(
            None,
            env(&[
                ("SOCLE__KAFKA__BROKERS", "k:19092"),
                ("SOCLE__PROJECTOR__BATCH_SIZE", "7"),
            ]),
        )
        .expect("overrides load");
        assert_eq!(s.kafka.brokers, "k:19092");
        assert_eq!(s.projector.batch_size, 7);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let e = Settings::load_from(None, env(&[("SOCLE__KAFKA__BROKER", "x")]))
            .expect_err("unknown key refused");
        assert!(e.to_string().contains("broker"), "{e}");
        let e = Settings::load_from(None, env(&[("SOCLE__API__LISTEN", "not an address")]))
            .expect_err("bad address refused");
        assert!(
            e.to_string().contains("listen") || e.to_string().contains("address"),
            "{e}"
        );
        let e = Settings::load_from(None, env(&[("SOCLE__PROJECTOR__BATCH_SIZE", "0")]))
            .expect_err("zero batch refused");
        assert!(e.to_string().contains("batch_size"), "{e}");
    }

    #[test]
    fn connection_limits_and_key_age_are_settings_and_impossible_ones_are_refused() {
        let s = Settings::load_from(None, env(&[])).expect("defaults load");
        assert_eq!(s.api.limits(), socle_api::ServeLimits::default());
        assert_eq!(s.auth.jwks_max_key_age_secs, 15 * 60);
        let s = Settings::load_from(
            None,
            env(&[
                ("SOCLE__API__MAX_CONNECTIONS", "64"),
                ("SOCLE__API__HEADER_READ_TIMEOUT_MS", "2000"),
                ("SOCLE__AUTH__JWKS_MAX_KEY_AGE_SECS", "60"),
            ]),
        )
        .expect("overrides load");
        assert_eq!(s.api.limits().max_connections, 64);
        assert_eq!(
            s.api.limits().header_read_timeout,
            Duration::from_millis(2000)
        );
        assert_eq!(s.auth.jwks_max_key_age_secs, 60);
        let e = Settings::load_from(None, env(&[("SOCLE__API__MAX_CONNECTIONS", "0")]))
            .expect_err("no connection at all refused");
        assert!(
            e.to_string()
                .contains("api.max_connections must be at least 1"),
            "{e}"
        );
        let e = Settings::load_from(None, env(&[("SOCLE__API__IDLE_TIMEOUT_MS", "0")]))
            .expect_err("zero idle timeout refused");
        assert!(
            e.to_string()
                .contains("api.idle_timeout_ms must be at least 1"),
            "{e}"
        );
        let e = Settings::load_from(None, env(&[("SOCLE__AUTH__JWKS_MAX_KEY_AGE_SECS", "10")]))
            .expect_err("keys expiring before a refresh is allowed refused");
        assert!(e.to_string().contains("auth.jwks_max_key_age_secs"), "{e}");
    }

    #[test]
    fn machine_clients_are_registered_in_a_config_file() {
        let s = Settings::load_from(None, env(&[])).expect("defaults load");
        assert!(s.auth.machine_clients.is_empty(), "no machine by default");
        let dir = std::env::temp_dir().join(format!("socle-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("machines.toml");
        std::fs::write(&file, "[auth]\nmachine_clients = [\"si-agence-paris\"]\n")
            .expect("written");
        let s = Settings::load_from(Some(&file), env(&[])).expect("loads");
        assert_eq!(s.auth.machine_clients, vec!["si-agence-paris".to_owned()]);
        std::fs::write(&file, "[auth]\nmachine_clients = [\"\"]\n").expect("written");
        let e = Settings::load_from(Some(&file), env(&[])).expect_err("empty id refused");
        assert!(e.to_string().contains("machine_clients"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_database_password_never_prints() {
        let s = Settings::load_from(None, env(&[])).expect("defaults load");
        assert!(!format!("{s:?}").contains("socle:socle@"));
    }
}
