//! Every `.avsc` under `schemas/` parses with apache-avro, and follows the contract rules
//! of `docs/events.md`:
//! - each embedded `socle.common.Envelope` and `socle.pii.Sealed` is, in canonical form, the
//!   one in `schemas/common/`;
//! - every event (a top-level record outside `socle.pii`) starts with the field `envelope`;
//! - a field named `personal` is always a `Sealed`, and the record it names exists;
//! - personal fields (names, NIR, birth date, contact, health) appear only in `socle.pii`
//!   records;
//! - the file name is the record's name, and full names are unique.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use apache_avro::Schema;
use serde_json::Value;

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn avsc_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            avsc_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "avsc") {
            out.push(p);
        }
    }
}

fn load(path: &Path) -> (Value, Schema) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema = Schema::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (json, schema)
}

fn full_name(record: &Value, enclosing_ns: Option<&str>) -> String {
    let name = record["name"].as_str().expect("name");
    if name.contains('.') {
        return name.to_owned();
    }
    match record["namespace"].as_str().or(enclosing_ns) {
        Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

/// Calls `visit(full name, record json)` for every named record defined in `v`.
fn walk_records<'a>(v: &'a Value, ns: Option<&'a str>, visit: &mut dyn FnMut(String, &'a Value)) {
    match v {
        Value::Object(o) => {
            let mut inner_ns = ns;
            if o.get("type").and_then(Value::as_str) == Some("record") {
                let name = full_name(v, ns);
                visit(name, v);
                inner_ns = o.get("namespace").and_then(Value::as_str).or(ns);
                for field in o["fields"].as_array().expect("fields") {
                    walk_records(&field["type"], inner_ns, visit);
                }
                return;
            }
            for key in ["type", "items", "values"] {
                if let Some(t) = o.get(key) {
                    walk_records(t, inner_ns, visit);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|t| walk_records(t, ns, visit)),
        _ => {}
    }
}

/// Field names that are personal data: allowed only inside `socle.pii` records.
const PERSONAL_FIELDS: &[&str] = &[
    "nir",
    "family_name",
    "given_name",
    "first_name",
    "last_name",
    "birth_date",
    "email",
    "phone",
    "address_line",
    "postal_address",
    "rqth",
    "rqth_until",
    "boeth",
    "health",
];

/// Top-level records that are not events and so carry no envelope: a seal checkpoint is a
/// self-contained signed tree head (docs/audit.md); what is verified is exactly its signed
/// fields, so it has no unsigned envelope.
const NOT_EVENTS: [&str; 1] = ["socle.trail.Checkpoint"];

#[test]
fn every_schema_follows_the_contract_rules() {
    let dir = schemas_dir();
    let canonical = |p: &str| load(&dir.join(p)).1.canonical_form();
    let envelope = canonical("common/Envelope.avsc");
    let sealed = canonical("common/Sealed.avsc");

    let mut files = Vec::new();
    avsc_files(&dir, &mut files);
    assert!(files.len() >= 30, "only {} schema files", files.len());

    let mut names = BTreeMap::new();
    let mut pii_records = BTreeSet::new();
    let mut sealed_contents = Vec::new();
    let (mut envelopes, mut sealeds) = (0, 0);
    for path in &files {
        // Ingress contracts carry personal fields in clear and no envelope, by design: operators
        // cannot seal (docs/ingest.md); crates/socle-ingest tests them.
        if path.parent().is_some_and(|p| p.ends_with("ingress")) {
            continue;
        }
        let (json, _) = load(path);
        let top = full_name(&json, None);
        let file_stem = path.file_stem().and_then(|s| s.to_str()).expect("stem");
        assert!(
            top.ends_with(&format!(".{file_stem}")),
            "{}: record {top}",
            path.display()
        );
        if let Some(other) = names.insert(top.clone(), path.clone()) {
            panic!(
                "{top} defined in {} and {}",
                other.display(),
                path.display()
            );
        }
        if top.starts_with("socle.pii.") {
            pii_records.insert(top.clone());
        }

        let mut problems = Vec::new();
        walk_records(&json, None, &mut |name, record| {
            let is_standalone = std::ptr::eq(record, &json);
            if name == "socle.common.Envelope" || name == "socle.pii.Sealed" {
                let expected = if name == "socle.common.Envelope" {
                    &envelope
                } else {
                    &sealed
                };
                let got = Schema::parse(record)
                    .expect("embedded record parses")
                    .canonical_form();
                if &got != expected {
                    problems.push(format!(
                        "{name} differs from schemas/common:\n{got}\n{expected}"
                    ));
                }
                if !is_standalone {
                    if name == "socle.common.Envelope" {
                        envelopes += 1;
                    } else {
                        sealeds += 1;
                    }
                }
                return;
            }
            if name.starts_with("socle.pii.") {
                return;
            }
            for field in record["fields"].as_array().expect("fields") {
                let fname = field["name"].as_str().expect("field name");
                if PERSONAL_FIELDS.contains(&fname) {
                    problems.push(format!("personal field {name}.{fname} outside socle.pii"));
                }
                if fname == "personal" {
                    let is_sealed =
                        |t: &Value| t.get("name").and_then(Value::as_str) == Some("Sealed");
                    let ok = match &field["type"] {
                        Value::Array(u) => u.iter().any(is_sealed),
                        t => is_sealed(t),
                    };
                    if !ok {
                        problems.push(format!("{name}.personal is not a socle.pii.Sealed"));
                    }
                    let doc = field["doc"].as_str().unwrap_or_default();
                    let content = doc.split_whitespace().next().unwrap_or_default().to_owned();
                    sealed_contents.push((name.clone(), content));
                }
            }
        });
        // Events: top-level records outside socle.pii and socle.common start with the envelope.
        if !top.starts_with("socle.pii.")
            && !top.starts_with("socle.common.")
            && !NOT_EVENTS.contains(&top.as_str())
        {
            let first = &json["fields"][0];
            if first["name"] != "envelope" || first["type"]["name"] != "Envelope" {
                problems.push(format!(
                    "{top}: first field is not envelope: socle.common.Envelope"
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "{}:\n{}",
            path.display(),
            problems.join("\n")
        );
    }

    // Every `personal` field's doc names the socle.pii record inside; that record exists.
    for (event, content) in &sealed_contents {
        assert!(
            pii_records.contains(content),
            "{event}.personal names {content:?}, which has no schema"
        );
    }
    let events = names
        .keys()
        .filter(|n| {
            !n.starts_with("socle.pii.")
                && !n.starts_with("socle.common.")
                && !NOT_EVENTS.contains(&n.as_str())
        })
        .count();
    assert_eq!(envelopes, events, "one embedded envelope per event");
    assert!(sealeds >= 4, "only {sealeds} sealed fields");
}

#[test]
fn the_embedded_copies_are_the_records_that_parse_standalone() {
    // apache-avro accepts each event with its embedded named types; the event's envelope
    // field resolves to the same schema as the standalone Envelope.
    let dir = schemas_dir();
    let (_, envelope) = load(&dir.join("common/Envelope.avsc"));
    let (_, event) = load(&dir.join("person/FollowStarted.avsc"));
    let Schema::Record(record) = event else {
        panic!("FollowStarted is a record")
    };
    assert_eq!(record.fields[0].name, "envelope");
    assert_eq!(
        record.fields[0].schema.canonical_form(),
        envelope.canonical_form()
    );
}
