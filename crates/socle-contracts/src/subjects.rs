//! socle's subjects: which contract travels on which topic, registered as a contract.
//!
//! `schemas/subjects.toml` maps each topic to the `.avsc` files of the event types it carries
//! (the tables of `docs/events.md`; a test keeps the two in step). Each pair becomes the
//! subject `<topic>-<record full name>` (`TopicRecordNameStrategy`, so several event types
//! share one ordered topic), and [`apply`] makes the registry hold it:
//!
//! 1. the subject's compatibility is `BACKWARD_TRANSITIVE` (set only if it is not already, so
//!    that a second run records no compatibility event): every new version must read every
//!    earlier one, which is what a replay from offset 0 needs;
//! 2. the file's schema is a version of the subject: looked up first (no change, no event if
//!    it is), registered otherwise. The registry refuses an incompatible change with a 409,
//!    which [`apply`] reports as [`Error::Incompatible`] with the registry's message, and stops.
//!
//! Applying twice is a no-op. Personal-data records (`socle.pii.*`, only ever sealed inside an
//! event) and the embedded common records are not subjects: they never are a topic's value.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use apache_avro::Schema;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{Error, Result};

/// The compatibility level of every socle subject.
pub const COMPATIBILITY: &str = "BACKWARD_TRANSITIVE";

/// Content type of the registry's API.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    topic: Vec<TopicToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicToml {
    name: String,
    schemas: Vec<String>,
}

/// One contract as a subject: a record on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectContract {
    pub topic: String,
    /// Full name of the record, e.g. `socle.person.PersonRegistered`.
    pub record: String,
    /// `<topic>-<record>`.
    pub subject: String,
    /// The `.avsc` file, as named in the subjects file (relative to its folder).
    pub file: String,
    /// The schema text, registered as is.
    pub schema: String,
}

/// The contents of a subjects file, in file order.
#[derive(Debug, Clone)]
pub struct SubjectsFile {
    pub path: PathBuf,
    pub contracts: Vec<SubjectContract>,
}

impl SubjectsFile {
    /// Reads and checks `path`; schema files are relative to its folder.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing file, [`Error::Syntax`] for bad TOML or unknown keys,
    /// [`Error::Avro`] for a schema that is not an Avro record, [`Error::Invalid`] for an
    /// empty or duplicate topic, a path leaving the folder, or a subject listed twice.
    pub fn load(path: &Path) -> Result<SubjectsFile> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: shown.clone(),
            source,
        })?;
        let parsed: FileToml = toml::from_str(&text).map_err(|e| Error::Syntax {
            path: shown.clone(),
            message: e.message().to_owned(),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let invalid = |message: String| Error::Invalid {
            path: shown.clone(),
            message,
        };
        let mut topics = BTreeSet::new();
        let mut subjects = BTreeSet::new();
        let mut contracts = Vec::new();
        for topic in parsed.topic {
            if !valid_topic_name(&topic.name) {
                return Err(invalid(format!(
                    "invalid topic name {:?} (1 to 249 of a-z A-Z 0-9 . _ -)",
                    topic.name
                )));
            }
            if !topics.insert(topic.name.clone()) {
                return Err(invalid(format!("topic {} is listed twice", topic.name)));
            }
            if topic.schemas.is_empty() {
                return Err(invalid(format!("topic {} lists no schema", topic.name)));
            }
            for file in topic.schemas {
                let relative = Path::new(&file);
                if relative.is_absolute()
                    || relative
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    return Err(invalid(format!(
                        "{file}: schema paths are relative to the subjects file's folder, without '..'"
                    )));
                }
                let full = dir.join(relative);
                let schema = std::fs::read_to_string(&full).map_err(|source| Error::Io {
                    path: full.display().to_string(),
                    source,
                })?;
                let record = record_name(&schema).map_err(|message| Error::Avro {
                    path: full.display().to_string(),
                    message,
                })?;
                let subject = format!("{}-{record}", topic.name);
                if !subjects.insert(subject.clone()) {
                    return Err(invalid(format!("subject {subject} is listed twice")));
                }
                contracts.push(SubjectContract {
                    topic: topic.name.clone(),
                    record,
                    subject,
                    file,
                    schema,
                });
            }
        }
        if contracts.is_empty() {
            return Err(invalid("no [[topic]] declared".to_owned()));
        }
        Ok(SubjectsFile {
            path: path.to_owned(),
            contracts,
        })
    }
}

impl SubjectsFile {
    /// The `.avsc` files under the subjects file's folder that it does not map, as paths
    /// relative to that folder, sorted: `socle.pii.*` and `socle.common.*` records (never a
    /// topic's value) and files that are not JSON with a namespace left aside.
    ///
    /// # Errors
    /// [`Error::Io`] when the folder cannot be read.
    pub fn unmapped(&self) -> Result<Vec<String>> {
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_owned();
        let mapped: BTreeSet<&str> = self.contracts.iter().map(|c| c.file.as_str()).collect();
        let mut files = Vec::new();
        avsc_files(&dir, &mut files)?;
        let mut out = Vec::new();
        for path in files {
            let namespace = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|j| j["namespace"].as_str().map(str::to_owned))
                .unwrap_or_default();
            if namespace == "socle.pii" || namespace == "socle.common" {
                continue;
            }
            let relative = path
                .strip_prefix(&dir)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            if !mapped.contains(relative.as_str()) {
                out.push(relative);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Every `.avsc` under `dir`, recursively.
fn avsc_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Io {
                path: dir.display().to_string(),
                source,
            })?
            .path();
        if path.is_dir() {
            avsc_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "avsc") {
            out.push(path);
        }
    }
    Ok(())
}

/// Kafka's rule for topic names.
fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Full name of the record `schema` defines.
fn record_name(schema: &str) -> std::result::Result<String, String> {
    match Schema::parse_str(schema).map_err(|e| e.to_string())? {
        Schema::Record(r) => Ok(r.name.fullname(None)),
        other => Err(format!(
            "a {:?}, not a record",
            apache_avro::schema::SchemaKind::from(&other)
        )),
    }
}

/// What [`apply`] did to one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub subject: String,
    /// The compatibility level was set (it was another level, or none of its own).
    pub compatibility_set: bool,
    /// The schema's version and global id under the subject.
    pub version: i64,
    pub id: i64,
    /// The schema was registered now (a new version); `false` when it was already there.
    pub registered: bool,
}

/// A client of a Confluent-compatible registry for [`apply`].
#[derive(Debug, Clone)]
pub struct RegistryClient {
    base: Url,
    http: reqwest::Client,
    actor: String,
}

impl RegistryClient {
    /// A client for the registry at `url`, making changes as `actor` (`X-Socle-User`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a URL that does not parse.
    pub fn new(url: &str, actor: &str) -> Result<RegistryClient> {
        let base = Url::parse(url).map_err(|e| Error::Invalid {
            path: "registry.url".to_owned(),
            message: format!("{url}: {e}"),
        })?;
        if base.cannot_be_a_base() {
            return Err(Error::Invalid {
                path: "registry.url".to_owned(),
                message: format!("{url} is not an http(s) URL"),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|source| Error::Unreachable {
                url: url.to_owned(),
                source,
            })?;
        Ok(RegistryClient {
            base,
            http,
            actor: actor.to_owned(),
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for s in segments {
                path.push(s);
            }
        }
        url
    }

    /// Sends a request; returns the status and the JSON body (`Null` if none).
    async fn call(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let url = self.url(segments);
        let mut request = self
            .http
            .request(method, url.clone())
            .header("X-Socle-User", &self.actor)
            .header("Accept", CONTENT_TYPE);
        if let Some(body) = body {
            request = request
                .header("Content-Type", CONTENT_TYPE)
                .body(body.to_string());
        }
        let unreachable = |source| Error::Unreachable {
            url: self.base.to_string(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }
}

fn refused(subject: &str, status: StatusCode, body: &Value) -> Error {
    Error::Registry {
        subject: subject.to_owned(),
        status: status.as_u16(),
        code: body["error_code"].as_i64().unwrap_or(0),
        message: body["message"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned),
    }
}

/// Makes the registry hold every contract of `file` under its subject with
/// [`COMPATIBILITY`]; returns what was done, in file order. Stops at the first refusal.
///
/// # Errors
/// [`Error::Incompatible`] (with the registry's 409 message) for a contract change that
/// breaks compatibility, [`Error::Registry`] for another refusal, [`Error::Unreachable`].
pub async fn apply(client: &RegistryClient, file: &SubjectsFile) -> Result<Vec<Applied>> {
    let mut out = Vec::with_capacity(file.contracts.len());
    for contract in &file.contracts {
        out.push(apply_one(client, contract).await?);
    }
    Ok(out)
}

async fn apply_one(client: &RegistryClient, contract: &SubjectContract) -> Result<Applied> {
    let subject = contract.subject.as_str();
    let (status, body) = client
        .call(reqwest::Method::GET, &["config", subject], None)
        .await?;
    let current = match status {
        StatusCode::OK => body["compatibilityLevel"].as_str().map(str::to_owned),
        StatusCode::NOT_FOUND => None,
        _ => return Err(refused(subject, status, &body)),
    };
    let compatibility_set = current.as_deref() != Some(COMPATIBILITY);
    if compatibility_set {
        let (status, body) = client
            .call(
                reqwest::Method::PUT,
                &["config", subject],
                Some(json!({ "compatibility": COMPATIBILITY })),
            )
            .await?;
        if status != StatusCode::OK {
            return Err(refused(subject, status, &body));
        }
    }
    let schema = json!({ "schema": contract.schema });
    let lookup = |client: &RegistryClient| {
        let schema = schema.clone();
        let client = client.clone();
        async move {
            client
                .call(reqwest::Method::POST, &["subjects", subject], Some(schema))
                .await
        }
    };
    let (status, body) = lookup(client).await?;
    if status == StatusCode::OK {
        return Ok(Applied {
            subject: subject.to_owned(),
            compatibility_set,
            version: body["version"].as_i64().unwrap_or(0),
            id: body["id"].as_i64().unwrap_or(0),
            registered: false,
        });
    }
    if status != StatusCode::NOT_FOUND {
        return Err(refused(subject, status, &body));
    }
    let (status, body) = client
        .call(
            reqwest::Method::POST,
            &["subjects", subject, "versions"],
            Some(schema.clone()),
        )
        .await?;
    match status {
        StatusCode::OK => {}
        StatusCode::CONFLICT => {
            return Err(Error::Incompatible {
                subject: subject.to_owned(),
                path: contract.file.clone(),
                message: body["message"]
                    .as_str()
                    .map_or_else(|| body.to_string(), str::to_owned),
            })
        }
        _ => return Err(refused(subject, status, &body)),
    }
    let id = body["id"].as_i64().unwrap_or(0);
    let (status, body) = lookup(client).await?;
    if status != StatusCode::OK {
        return Err(refused(subject, status, &body));
    }
    Ok(Applied {
        subject: subject.to_owned(),
        compatibility_set,
        version: body["version"].as_i64().unwrap_or(0),
        id,
        registered: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(valid_topic_name("socle.persons"));
        assert!(valid_topic_name("socle.feed.departement-2A"));
        for bad in ["", ".", "..", "a b", "é", &"x".repeat(250)] {
            assert!(!valid_topic_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn only_records_are_contracts() {
        assert_eq!(
            record_name(r#"{"type":"record","name":"A","namespace":"n","fields":[]}"#),
            Ok("n.A".to_owned())
        );
        assert!(record_name(r#"{"type":"enum","name":"E","symbols":["X"]}"#).is_err());
        assert!(record_name("{").is_err());
    }
}
