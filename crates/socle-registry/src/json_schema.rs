//! JSON Schema support: enough to store such schemas and to check the
//! compatibility rules that Confluent's JSON Schema checker applies to the
//! common cases (content model open or closed, required properties, types,
//! enums, numeric and length bounds). Socle's own contracts are Avro; this is
//! here so that a subject can hold JSON Schemas as Confluent allows.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Parses a JSON Schema; returns its canonical text (keys sorted, no spaces).
///
/// # Errors
/// A message when the text is not JSON or not a schema (object or boolean).
pub fn parse(text: &str) -> Result<(Value, String), String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("Invalid JSON schema: {e}"))?;
    if !(value.is_object() || value.is_boolean()) {
        return Err("Invalid JSON schema: a schema must be an object or a boolean".into());
    }
    let canonical = value.to_string();
    Ok((value, canonical))
}

/// Checks that data valid under `original` stays valid under `update`
/// (Confluent's direction for BACKWARD: original = old, update = new).
pub fn check(original: &Value, update: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    diff(original, update, "#", &mut errors);
    errors
}

fn types(schema: &Map<String, Value>) -> Option<BTreeSet<String>> {
    match schema.get("type")? {
        Value::String(s) => Some(BTreeSet::from([s.clone()])),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

fn is_open(schema: &Map<String, Value>) -> bool {
    !matches!(schema.get("additionalProperties"), Some(Value::Bool(false)))
}

fn required(schema: &Map<String, Value>) -> BTreeSet<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn diff(original: &Value, update: &Value, path: &str, errors: &mut Vec<String>) {
    let (Some(old), Some(new)) = (original.as_object(), update.as_object()) else {
        if original != update && update != &Value::Bool(true) {
            errors.push(format!("SCHEMA_CHANGED at '{path}'"));
        }
        return;
    };
    match (types(old), types(new)) {
        (Some(o), Some(n)) => {
            let widened = o
                .iter()
                .all(|t| n.contains(t) || (t == "integer" && n.contains("number")));
            if !widened {
                errors.push(format!("TYPE_CHANGED at '{path}': {o:?} to {n:?}"));
                return;
            }
        }
        (None, Some(n)) => errors.push(format!("TYPE_NARROWED at '{path}': now {n:?}")),
        _ => {}
    }
    bounds(old, new, path, errors);
    if let Some(new_enum) = new.get("enum").and_then(Value::as_array) {
        match old.get("enum").and_then(Value::as_array) {
            Some(old_enum) if old_enum.iter().all(|v| new_enum.contains(v)) => {}
            Some(_) => errors.push(format!("ENUM_ARRAY_NARROWED at '{path}/enum'")),
            None => errors.push(format!("ENUM_ARRAY_ADDED at '{path}/enum'")),
        }
    }
    if let (Some(oi), Some(ni)) = (old.get("items"), new.get("items")) {
        diff(oi, ni, &format!("{path}/items"), errors);
    }
    properties(old, new, path, errors);
}

fn properties(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<String>,
) {
    let empty = Map::new();
    let old_props = old
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_props = new
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let (old_required, new_required) = (required(old), required(new));
    for (name, schema) in new_props {
        let at = format!("{path}/properties/{name}");
        match old_props.get(name) {
            Some(old_schema) => {
                diff(old_schema, schema, &at, errors);
                if new_required.contains(name) && !old_required.contains(name) {
                    errors.push(format!("REQUIRED_ATTRIBUTE_ADDED at '{at}'"));
                }
            }
            None if is_open(old) => {
                errors.push(format!("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL at '{at}'"));
            }
            None if new_required.contains(name) => errors.push(format!(
                "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL at '{at}'"
            )),
            None => {}
        }
    }
    for name in old_props.keys() {
        if !new_props.contains_key(name) && !is_open(new) {
            errors.push(format!(
                "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL at '{path}/properties/{name}'"
            ));
        }
    }
    if is_open(old) && !is_open(new) {
        errors.push(format!("ADDITIONAL_PROPERTIES_REMOVED at '{path}'"));
    }
}

/// Upper bounds may only grow or go away; lower bounds may only shrink or go away.
fn bounds(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<String>,
) {
    const UPPER: [&str; 5] = [
        "maxLength",
        "maxItems",
        "maxProperties",
        "maximum",
        "exclusiveMaximum",
    ];
    const LOWER: [&str; 5] = [
        "minLength",
        "minItems",
        "minProperties",
        "minimum",
        "exclusiveMinimum",
    ];
    for (keys, tighter) in [(UPPER, f64::lt as fn(&f64, &f64) -> bool), (LOWER, f64::gt)] {
        for key in keys {
            let Some(n) = new.get(key).and_then(Value::as_f64) else {
                continue;
            };
            match old.get(key).and_then(Value::as_f64) {
                None => errors.push(format!("{key} added at '{path}'")),
                Some(o) if tighter(&n, &o) => {
                    errors.push(format!("{key} tightened at '{path}': {o} to {n}"));
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compatible(old: &str, new: &str) -> bool {
        let (o, _) = parse(old).expect("old");
        let (n, _) = parse(new).expect("new");
        check(&o, &n).is_empty()
    }

    #[test]
    fn open_and_closed_content_models() {
        let v1 = r#"{"type":"object","properties":{"a":{"type":"string"}}}"#;
        let v2 = r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}"#;
        assert!(!compatible(v1, v2));
        assert!(compatible(v2, v1));
        let c1 = r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#;
        let c2 = r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"additionalProperties":false}"#;
        let c2r = r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"required":["b"],"additionalProperties":false}"#;
        assert!(compatible(c1, c2));
        assert!(!compatible(c1, c2r));
        assert!(!compatible(c2, c1));
    }

    #[test]
    fn bounds_types_and_enums() {
        assert!(compatible(
            r#"{"type":"string","maxLength":5}"#,
            r#"{"type":"string","maxLength":9}"#
        ));
        assert!(!compatible(
            r#"{"type":"array","minItems":1}"#,
            r#"{"type":"array","minItems":3}"#
        ));
        assert!(compatible(r#"{"type":"integer"}"#, r#"{"type":"number"}"#));
        assert!(!compatible(r#"{"type":"number"}"#, r#"{"type":"integer"}"#));
        assert!(compatible(r#"{"enum":["A"]}"#, r#"{"enum":["A","B"]}"#));
        assert!(!compatible(r#"{"enum":["A","B"]}"#, r#"{"enum":["A"]}"#));
        assert!(parse("{not json").is_err());
        assert!(parse("12").is_err());
    }
}
