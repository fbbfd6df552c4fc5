//! Topic declarations (`deploy/topics.toml`) applied to the cluster by `socle admin topics apply`.
//!
//! Applying is idempotent: missing topics are created, configuration entries that differ are
//! altered, partitions are added when the declaration asks for more (Kafka cannot remove any;
//! asking for fewer is reported as an error, never silently ignored).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;

use crate::{client_config, Error, Result};

/// The topics file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsFile {
    #[serde(rename = "topic")]
    pub topics: Vec<TopicSpec>,
}

/// One declared topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    #[serde(default = "one")]
    pub replication: i32,
    /// What the messages are keyed by (documentation; checked by the producers).
    pub key: Option<String>,
    pub purpose: Option<String>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

fn one() -> i32 {
    1
}

impl TopicsFile {
    /// Reads and checks a topics file.
    ///
    /// # Errors
    /// [`Error::Topics`] naming the file and what is wrong in it.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Topics(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::Topics(format!("{}: {e}", path.display())))
    }

    /// Parses and checks the text of a topics file.
    ///
    /// # Errors
    /// [`Error::Topics`] for a syntax error, an unknown key, a duplicate name or a count < 1.
    pub fn parse(text: &str) -> Result<Self> {
        let file: TopicsFile = toml::from_str(text).map_err(|e| Error::Topics(e.to_string()))?;
        let mut names = std::collections::HashSet::new();
        for t in &file.topics {
            if !names.insert(t.name.as_str()) {
                return Err(Error::Topics(format!("topic {} declared twice", t.name)));
            }
            if t.partitions < 1 || t.replication < 1 {
                return Err(Error::Topics(format!(
                    "topic {}: partitions and replication must be at least 1",
                    t.name
                )));
            }
            if t.name.is_empty()
                || !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(Error::Topics(format!("invalid topic name {:?}", t.name)));
            }
        }
        Ok(file)
    }

    /// The declaration of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&TopicSpec> {
        self.topics.iter().find(|t| t.name == name)
    }
}

/// What applying did to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Created,
    Altered(Vec<String>),
    Unchanged,
}

/// Applies `specs` to the cluster at `brokers`.
///
/// # Errors
/// [`Error::Kafka`] when the cluster refuses, [`Error::Topics`] when a topic has more
/// partitions than declared.
pub async fn apply(brokers: &str, specs: &[TopicSpec]) -> Result<Vec<(String, Applied)>> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers).create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let timeout = Duration::from_secs(10);
    let mut report = Vec::new();
    for spec in specs {
        let existing = {
            let metadata = admin.inner().fetch_metadata(Some(&spec.name), timeout)?;
            metadata
                .topics()
                .iter()
                .find(|t| t.name() == spec.name && t.error().is_none())
                .map(|t| t.partitions().len())
        };
        match existing {
            None => {
                let mut new = NewTopic::new(
                    &spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(spec.replication),
                );
                for (k, v) in &spec.config {
                    new = new.set(k, v);
                }
                for result in admin.create_topics([&new], &options).await? {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((name, code)) => {
                            return Err(Error::Topics(format!("creating {name}: {code}")))
                        }
                    }
                }
                report.push((spec.name.clone(), Applied::Created));
            }
            Some(current) => {
                let mut changes = Vec::new();
                let current = i32::try_from(current).unwrap_or(i32::MAX);
                if current > spec.partitions {
                    return Err(Error::Topics(format!(
                        "topic {} has {current} partitions, more than the {} declared; \
                         Kafka cannot remove partitions",
                        spec.name, spec.partitions
                    )));
                }
                if current < spec.partitions {
                    let count = usize::try_from(spec.partitions).unwrap_or(0);
                    let new = NewPartitions::new(&spec.name, count);
                    for result in admin.create_partitions([&new], &options).await? {
                        result.map_err(|(name, code)| {
                            Error::Topics(format!("adding partitions to {name}: {code}"))
                        })?;
                    }
                    changes.push(format!("partitions {current} -> {}", spec.partitions));
                }
                let described = admin
                    .describe_configs([&ResourceSpecifier::Topic(&spec.name)], &options)
                    .await?;
                let mut differing = Vec::new();
                for resource in described.into_iter().flatten() {
                    let entries = resource.entry_map();
                    for (k, v) in &spec.config {
                        let now = entries.get(k.as_str()).and_then(|e| e.value.as_deref());
                        if now != Some(v.as_str()) {
                            differing.push((k.as_str(), v.as_str()));
                        }
                    }
                }
                if !differing.is_empty() {
                    // Non-incremental alter: send every declared entry so none is reset.
                    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&spec.name));
                    for (k, v) in &spec.config {
                        alter = alter.set(k, v);
                    }
                    for result in admin.alter_configs([&alter], &options).await? {
                        result.map_err(|(_, code)| {
                            Error::Topics(format!("altering {}: {code}", spec.name))
                        })?;
                    }
                    changes.extend(differing.iter().map(|(k, v)| format!("{k}={v}")));
                }
                report.push((
                    spec.name.clone(),
                    if changes.is_empty() {
                        Applied::Unchanged
                    } else {
                        Applied::Altered(changes)
                    },
                ));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_declaration_and_refuses_mistakes() {
        let ok = TopicsFile::parse(
            "[[topic]]\nname = \"socle.persons\"\npartitions = 6\nkey = \"person_id\"\n\
             [topic.config]\n\"retention.ms\" = \"-1\"\n",
        )
        .expect("valid file");
        assert_eq!(ok.topics[0].partitions, 6);
        assert_eq!(ok.topics[0].config["retention.ms"], "-1");
        let unknown = TopicsFile::parse("[[topic]]\nname = \"a\"\npartitions = 1\ncolour = 2\n");
        assert!(matches!(unknown, Err(Error::Topics(m)) if m.contains("colour")));
        let twice = TopicsFile::parse(
            "[[topic]]\nname = \"a\"\npartitions = 1\n[[topic]]\nname = \"a\"\npartitions = 1\n",
        );
        assert!(matches!(twice, Err(Error::Topics(m)) if m.contains("twice")));
        let zero = TopicsFile::parse("[[topic]]\nname = \"a\"\npartitions = 0\n");
        assert!(zero.is_err());
        let bad_name = TopicsFile::parse("[[topic]]\nname = \"a b\"\npartitions = 1\n");
        assert!(bad_name.is_err());
    }
}
