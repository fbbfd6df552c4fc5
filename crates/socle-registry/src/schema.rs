//! Schema types, compatibility levels and modes: the registry's vocabulary,
//! independent of HTTP and PostgreSQL.

use std::fmt;
use std::str::FromStr;

use crate::{avro, json_schema, protobuf};

/// The format of a schema (`schemaType` in the API; absent means AVRO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    /// The name used by the API and stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

impl FromStr for SchemaType {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_uppercase().as_str() {
            "AVRO" => Ok(SchemaType::Avro),
            "JSON" => Ok(SchemaType::Json),
            "PROTOBUF" => Ok(SchemaType::Protobuf),
            _ => Err(()),
        }
    }
}

/// A schema parsed according to its type.
#[derive(Debug, Clone)]
pub enum Parsed {
    Avro(avro::AvroSchema),
    Json(serde_json::Value),
    Protobuf(protobuf::ProtoSchema),
}

/// A schema validated and reduced to the canonical text that decides identity.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    pub schema_type: SchemaType,
    pub parsed: Parsed,
    pub canonical: String,
}

/// Parses `text` as a schema of type `schema_type`; `references` holds the
/// texts of the schemas it references (Avro only).
///
/// # Errors
/// A message for a 42201 answer when the schema is invalid.
pub fn parse(
    schema_type: SchemaType,
    text: &str,
    references: &[String],
) -> Result<ParsedSchema, String> {
    if text.trim().is_empty() {
        return Err("Empty schema".into());
    }
    let (parsed, canonical) = match schema_type {
        SchemaType::Avro => {
            let s = avro::parse(text, references).map_err(|e| e.0)?;
            let canonical = s.canonical.clone();
            (Parsed::Avro(s), canonical)
        }
        SchemaType::Json => {
            let (v, canonical) = json_schema::parse(text)?;
            (Parsed::Json(v), canonical)
        }
        SchemaType::Protobuf => {
            let s = protobuf::parse(text)?;
            let canonical = s.canonical.clone();
            (Parsed::Protobuf(s), canonical)
        }
    };
    Ok(ParsedSchema {
        schema_type,
        parsed,
        canonical,
    })
}

/// Compatibility level of a subject or of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    /// The name used by the API and stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether a new schema is checked against every live version, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }
}

impl FromStr for Compatibility {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "NONE" => Compatibility::None,
            "BACKWARD" => Compatibility::Backward,
            "BACKWARD_TRANSITIVE" => Compatibility::BackwardTransitive,
            "FORWARD" => Compatibility::Forward,
            "FORWARD_TRANSITIVE" => Compatibility::ForwardTransitive,
            "FULL" => Compatibility::Full,
            "FULL_TRANSITIVE" => Compatibility::FullTransitive,
            _ => return Err(()),
        })
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Registry mode (global or per subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadWrite,
    ReadOnly,
    ReadOnlyOverride,
    Import,
}

impl Mode {
    /// The name used by the API and stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::ReadOnlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }
}

impl FromStr for Mode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "READWRITE" => Mode::ReadWrite,
            "READONLY" => Mode::ReadOnly,
            "READONLY_OVERRIDE" => Mode::ReadOnlyOverride,
            "IMPORT" => Mode::Import,
            _ => return Err(()),
        })
    }
}

/// Checks `new` against `existing` (oldest first) under `level`; returns the
/// reasons it is incompatible, each prefixed with the version it fails against.
pub fn check_compatibility(
    level: Compatibility,
    new: &ParsedSchema,
    existing: &[(i32, ParsedSchema)],
) -> Vec<String> {
    if level == Compatibility::None {
        return Vec::new();
    }
    let against: &[(i32, ParsedSchema)] = if level.transitive() {
        existing
    } else {
        existing
            .last()
            .map(std::slice::from_ref)
            .unwrap_or_default()
    };
    let mut errors = Vec::new();
    for (version, old) in against.iter().rev() {
        let mut found = Vec::new();
        if level.backward() {
            found.extend(pair(new, old));
        }
        if level.forward() {
            found.extend(pair(old, new));
        }
        errors.extend(
            found
                .into_iter()
                .map(|e| format!("{e} (oldSchemaVersion: {version}, compatibility: {level})")),
        );
    }
    errors
}

/// Can `reader` read what `writer` wrote? (For JSON Schema and Protobuf:
/// is `reader` an acceptable update of `writer`?)
fn pair(reader: &ParsedSchema, writer: &ParsedSchema) -> Vec<String> {
    match (&reader.parsed, &writer.parsed) {
        (Parsed::Avro(r), Parsed::Avro(w)) => avro::check(r, w),
        (Parsed::Json(r), Parsed::Json(w)) => json_schema::check(w, r),
        (Parsed::Protobuf(r), Parsed::Protobuf(w)) => protobuf::check(w, r),
        _ => vec![format!(
            "TYPE_MISMATCH: schema type {} cannot evolve from {}",
            reader.schema_type.as_str(),
            writer.schema_type.as_str()
        )],
    }
}
