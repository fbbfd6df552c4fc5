//! `deploy/topics.toml` declares every topic the event contracts name, in the shape
//! `socle admin topics apply` reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml::Value;

fn topics() -> BTreeMap<String, Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/topics.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for t in doc["topic"].as_array().expect("[[topic]]") {
        let name = t["name"].as_str().expect("name").to_owned();
        assert!(
            out.insert(name.clone(), t.clone()).is_none(),
            "{name} declared twice"
        );
    }
    out
}

fn config<'a>(t: &'a Value, key: &str) -> Option<&'a str> {
    t.get("config")?.get(key)?.as_str()
}

#[test]
fn every_topic_is_well_formed() {
    for (name, t) in topics() {
        assert!(name.starts_with("socle."), "{name}");
        let p = t["partitions"].as_integer().expect("partitions");
        assert!((1..=64).contains(&p), "{name}: {p} partitions");
        assert!(!t["key"].as_str().expect("key").is_empty(), "{name}");
        assert!(t["purpose"].as_str().expect("purpose").len() > 20, "{name}");
        let policy = config(&t, "cleanup.policy").expect("cleanup.policy");
        assert!(["delete", "compact"].contains(&policy), "{name}: {policy}");
        // Every config value is a string, as Kafka's admin API takes them.
        for (k, v) in t["config"].as_table().expect("config") {
            assert!(v.is_str(), "{name}: {k} must be a string");
        }
    }
}

#[test]
fn the_declared_topics_and_their_rules() {
    let topics = topics();
    let persons = &topics["socle.persons"];
    assert_eq!(persons["partitions"].as_integer(), Some(6));
    assert_eq!(persons["key"].as_str(), Some("person_id"));
    assert_eq!(config(persons, "cleanup.policy"), Some("delete"));
    assert_eq!(config(persons, "retention.ms"), Some("-1"));
    assert_eq!(
        config(&topics["socle.reference"], "cleanup.policy"),
        Some("compact")
    );
    for forever in ["socle.access", "socle.habilitations", "socle.schemas"] {
        assert_eq!(
            config(&topics[forever], "retention.ms"),
            Some("-1"),
            "{forever}"
        );
    }
    for required in [
        "socle.deadletter",
        "socle.ingress.france-travail",
        "socle.ingress.cap-emploi",
        "socle.ingress.missions-locales",
        "socle.feed.france-travail",
        "socle.feed.cap-emploi",
        "socle.feed.missions-locales",
    ] {
        assert!(topics.contains_key(required), "{required} missing");
    }
    // Topics that hold personal data in clear keep it for a bounded time.
    for (name, t) in &topics {
        if name.starts_with("socle.ingress.") || name == "socle.deadletter" {
            let ms: i64 = config(t, "retention.ms")
                .expect("retention.ms")
                .parse()
                .expect("number");
            assert!(ms > 0 && ms <= 31 * 24 * 3600 * 1000, "{name}: {ms}");
        }
    }
    // Feeds carry person events: same key and partitioning as socle.persons or fewer.
    for (name, t) in topics.iter().filter(|(n, _)| n.starts_with("socle.feed.")) {
        assert_eq!(t["key"].as_str(), Some("person_id"), "{name}");
    }
}
