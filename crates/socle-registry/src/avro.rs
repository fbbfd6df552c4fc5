//! Avro schemas: parsing into a small model, the canonical form that decides
//! "same schema", and the schema-resolution rules that decide compatibility.
//!
//! `apache-avro` validates the schema first (it is the reference parser for the
//! rest of socle); this module then builds its own model because the registry
//! needs things the crate does not expose in a convenient way: the fully
//! qualified name of every named type after namespace inheritance, field and
//! type aliases, and a compatibility check whose rules we can read and test
//! (see `docs/registry.md` for why `apache_avro::schema_compatibility` is not
//! used as is).

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};

/// A parse failure, with a message suitable for a 42201 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One Avro type; named types are referenced by full name.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(Box<Type>),
    Map(Box<Type>),
    Union(Vec<Type>),
    Named(String),
}

/// A record field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub aliases: Vec<String>,
    pub ty: Type,
    pub default: Option<Value>,
}

/// A named type (record, enum or fixed).
#[derive(Debug, Clone, PartialEq)]
pub enum Named {
    Record {
        fullname: String,
        aliases: Vec<String>,
        fields: Vec<Field>,
    },
    Enum {
        fullname: String,
        aliases: Vec<String>,
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed {
        fullname: String,
        aliases: Vec<String>,
        size: u64,
    },
}

impl Named {
    fn fullname(&self) -> &str {
        match self {
            Named::Record { fullname, .. }
            | Named::Enum { fullname, .. }
            | Named::Fixed { fullname, .. } => fullname,
        }
    }

    fn aliases(&self) -> &[String] {
        match self {
            Named::Record { aliases, .. }
            | Named::Enum { aliases, .. }
            | Named::Fixed { aliases, .. } => aliases,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Named::Record { .. } => "record",
            Named::Enum { .. } => "enum",
            Named::Fixed { .. } => "fixed",
        }
    }
}

/// A parsed Avro schema: its root type, every named type it defines or uses,
/// and its canonical form.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    pub root: Type,
    pub named: HashMap<String, Named>,
    /// Parsing Canonical Form extended with what changes resolution
    /// (defaults, aliases, enum defaults, logical types).
    pub canonical: String,
}

/// Parses `text`, resolving named types from `references` (texts of referenced
/// schemas, dependencies first).
///
/// # Errors
/// A [`ParseError`] when the text is not JSON or not a valid Avro schema.
pub fn parse(text: &str, references: &[String]) -> Result<AvroSchema, ParseError> {
    apache_avro::Schema::parse_str_with_list(text, references.iter())
        .map_err(|e| ParseError(format!("Invalid schema: {e}")))?;
    let mut parser = Parser::default();
    for reference in references {
        let value: Value = serde_json::from_str(reference)
            .map_err(|e| ParseError(format!("Invalid referenced schema: {e}")))?;
        let mut scratch = String::new();
        parser.parse_type(&value, "", &mut scratch)?;
        // Types defined by references are known, but written by name only.
        parser.emitted.clear();
        parser.emitted.extend(parser.named.keys().cloned());
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| ParseError(format!("Invalid schema: {e}")))?;
    let mut canonical = String::new();
    let root = parser.parse_type(&value, "", &mut canonical)?;
    Ok(AvroSchema {
        root,
        named: parser.named,
        canonical,
    })
}

#[derive(Default)]
struct Parser {
    named: HashMap<String, Named>,
    emitted: HashSet<String>,
}

fn primitive(name: &str) -> Option<Type> {
    Some(match name {
        "null" => Type::Null,
        "boolean" => Type::Boolean,
        "int" => Type::Int,
        "long" => Type::Long,
        "float" => Type::Float,
        "double" => Type::Double,
        "bytes" => Type::Bytes,
        "string" => Type::String,
        _ => return None,
    })
}

fn json_str(value: &Value) -> String {
    Value::String(value.as_str().unwrap_or_default().to_owned()).to_string()
}

fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}.{name}")
    }
}

fn namespace_of(fullname: &str) -> &str {
    fullname.rsplit_once('.').map_or("", |(ns, _)| ns)
}

fn simple_name(fullname: &str) -> &str {
    fullname.rsplit_once('.').map_or(fullname, |(_, n)| n)
}

impl Parser {
    fn parse_type(
        &mut self,
        value: &Value,
        namespace: &str,
        out: &mut String,
    ) -> Result<Type, ParseError> {
        match value {
            Value::String(name) => self.parse_name(name, namespace, out),
            Value::Array(branches) => {
                out.push('[');
                let mut types = Vec::with_capacity(branches.len());
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    types.push(self.parse_type(branch, namespace, out)?);
                }
                out.push(']');
                Ok(Type::Union(types))
            }
            Value::Object(obj) => self.parse_object(obj, namespace, out),
            other => Err(ParseError(format!("Invalid schema: unexpected {other}"))),
        }
    }

    fn parse_name(
        &mut self,
        name: &str,
        namespace: &str,
        out: &mut String,
    ) -> Result<Type, ParseError> {
        if let Some(t) = primitive(name) {
            out.push_str(&json_str(&Value::String(name.to_owned())));
            return Ok(t);
        }
        let candidates = [full_name(name, namespace), name.to_owned()];
        for fullname in candidates {
            if self.named.contains_key(&fullname) {
                out.push_str(&json_str(&Value::String(fullname.clone())));
                return Ok(Type::Named(fullname));
            }
        }
        Err(ParseError(format!("Invalid schema: unknown type {name}")))
    }

    fn parse_object(
        &mut self,
        obj: &Map<String, Value>,
        namespace: &str,
        out: &mut String,
    ) -> Result<Type, ParseError> {
        let ty = obj
            .get("type")
            .ok_or_else(|| ParseError("Invalid schema: missing \"type\"".into()))?;
        let Some(kind) = ty.as_str() else {
            // {"type": {...}} or {"type": [...]}: the attribute is the type.
            return self.parse_type(ty, namespace, out);
        };
        match kind {
            "record" | "error" | "enum" | "fixed" => self.parse_named(kind, obj, namespace, out),
            "array" => {
                let items = obj
                    .get("items")
                    .ok_or_else(|| ParseError("Invalid schema: array without items".into()))?;
                out.push_str("{\"type\":\"array\",\"items\":");
                let t = self.parse_type(items, namespace, out)?;
                out.push('}');
                Ok(Type::Array(Box::new(t)))
            }
            "map" => {
                let values = obj
                    .get("values")
                    .ok_or_else(|| ParseError("Invalid schema: map without values".into()))?;
                out.push_str("{\"type\":\"map\",\"values\":");
                let t = self.parse_type(values, namespace, out)?;
                out.push('}');
                Ok(Type::Map(Box::new(t)))
            }
            other => {
                let Some(t) = primitive(other) else {
                    return self.parse_name(other, namespace, out);
                };
                match obj.get("logicalType") {
                    Some(logical) => {
                        out.push_str(&format!(
                            "{{\"type\":{},\"logicalType\":{}",
                            json_str(ty),
                            logical
                        ));
                        for key in ["precision", "scale"] {
                            if let Some(v) = obj.get(key) {
                                out.push_str(&format!(",\"{key}\":{v}"));
                            }
                        }
                        out.push('}');
                    }
                    None => out.push_str(&json_str(ty)),
                }
                Ok(t)
            }
        }
    }

    fn parse_named(
        &mut self,
        kind: &str,
        obj: &Map<String, Value>,
        namespace: &str,
        out: &mut String,
    ) -> Result<Type, ParseError> {
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ParseError(format!("Invalid schema: {kind} without a name")))?;
        let own_ns = obj
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(namespace);
        let fullname = full_name(name, own_ns);
        let inner_ns = namespace_of(&fullname).to_owned();
        let aliases = aliases(obj.get("aliases"), &inner_ns);
        let emitted_before = !self.emitted.insert(fullname.clone());
        if emitted_before {
            return Err(ParseError(format!(
                "Invalid schema: type {fullname} defined twice"
            )));
        }
        out.push_str(&format!(
            "{{\"name\":{},\"type\":",
            json_str(&Value::String(fullname.clone()))
        ));
        let named = match kind {
            "enum" => {
                let symbols: Vec<String> = obj
                    .get("symbols")
                    .and_then(Value::as_array)
                    .ok_or_else(|| ParseError("Invalid schema: enum without symbols".into()))?
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect();
                let default = obj
                    .get("default")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                out.push_str(&format!(
                    "\"enum\",\"symbols\":{}",
                    Value::from(symbols.clone())
                ));
                if let Some(d) = &default {
                    out.push_str(&format!(",\"default\":{}", Value::from(d.clone())));
                }
                Named::Enum {
                    fullname: fullname.clone(),
                    aliases,
                    symbols,
                    default,
                }
            }
            "fixed" => {
                let size = obj
                    .get("size")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| ParseError("Invalid schema: fixed without size".into()))?;
                out.push_str(&format!("\"fixed\",\"size\":{size}"));
                if let Some(logical) = obj.get("logicalType") {
                    out.push_str(&format!(",\"logicalType\":{logical}"));
                }
                Named::Fixed {
                    fullname: fullname.clone(),
                    aliases,
                    size,
                }
            }
            _ => {
                // Register before the fields so that recursive references resolve.
                self.named.insert(
                    fullname.clone(),
                    Named::Record {
                        fullname: fullname.clone(),
                        aliases: aliases.clone(),
                        fields: Vec::new(),
                    },
                );
                out.push_str("\"record\",\"fields\":[");
                let raw_fields = obj
                    .get("fields")
                    .and_then(Value::as_array)
                    .ok_or_else(|| ParseError("Invalid schema: record without fields".into()))?;
                let mut fields = Vec::with_capacity(raw_fields.len());
                for (i, raw) in raw_fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    fields.push(self.parse_field(raw, &inner_ns, out)?);
                }
                out.push(']');
                Named::Record {
                    fullname: fullname.clone(),
                    aliases,
                    fields,
                }
            }
        };
        if !named.aliases().is_empty() {
            out.push_str(&format!(
                ",\"aliases\":{}",
                Value::from(named.aliases().to_vec())
            ));
        }
        out.push('}');
        self.named.insert(fullname.clone(), named);
        Ok(Type::Named(fullname))
    }

    fn parse_field(
        &mut self,
        raw: &Value,
        namespace: &str,
        out: &mut String,
    ) -> Result<Field, ParseError> {
        let obj = raw
            .as_object()
            .ok_or_else(|| ParseError("Invalid schema: a field must be an object".into()))?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ParseError("Invalid schema: field without a name".into()))?
            .to_owned();
        let raw_type = obj
            .get("type")
            .ok_or_else(|| ParseError(format!("Invalid schema: field {name} without a type")))?;
        out.push_str(&format!(
            "{{\"name\":{},\"type\":",
            Value::from(name.clone())
        ));
        let ty = self.parse_type(raw_type, namespace, out)?;
        let default = obj.get("default").cloned();
        if let Some(d) = &default {
            out.push_str(&format!(",\"default\":{d}"));
        }
        let field_aliases: Vec<String> = obj
            .get("aliases")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if !field_aliases.is_empty() {
            out.push_str(&format!(
                ",\"aliases\":{}",
                Value::from(field_aliases.clone())
            ));
        }
        out.push('}');
        Ok(Field {
            name,
            aliases: field_aliases,
            ty,
            default,
        })
    }
}

fn aliases(value: Option<&Value>, namespace: &str) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| full_name(s, namespace))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that data written with `writer` can be read with `reader`, following
/// the Avro specification's schema-resolution rules. Returns the reasons it
/// cannot (empty when compatible).
pub fn check(reader: &AvroSchema, writer: &AvroSchema) -> Vec<String> {
    let mut checker = Checker {
        reader,
        writer,
        assumed: HashSet::new(),
    };
    let mut errors = Vec::new();
    checker.check(&reader.root, &writer.root, "", &mut errors);
    errors
}

struct Checker<'a> {
    reader: &'a AvroSchema,
    writer: &'a AvroSchema,
    /// Pairs of named types already being compared (recursive types).
    assumed: HashSet<(String, String)>,
}

enum Resolved<'a> {
    Plain(&'a Type),
    Named(&'a Named),
}

fn resolve<'a>(schema: &'a AvroSchema, ty: &'a Type) -> Resolved<'a> {
    match ty {
        Type::Named(name) => match schema.named.get(name) {
            Some(named) => Resolved::Named(named),
            None => Resolved::Plain(ty),
        },
        other => Resolved::Plain(other),
    }
}

fn describe(r: &Resolved<'_>) -> String {
    match r {
        Resolved::Named(n) => format!("{} {}", n.kind(), n.fullname()),
        Resolved::Plain(t) => type_name(t).to_owned(),
    }
}

fn type_name(t: &Type) -> &str {
    match t {
        Type::Null => "null",
        Type::Boolean => "boolean",
        Type::Int => "int",
        Type::Long => "long",
        Type::Float => "float",
        Type::Double => "double",
        Type::Bytes => "bytes",
        Type::String => "string",
        Type::Array(_) => "array",
        Type::Map(_) => "map",
        Type::Union(_) => "union",
        Type::Named(n) => n,
    }
}

/// Writer primitive `w` can be read as reader primitive `r` (same or promoted).
fn promotable(w: &Type, r: &Type) -> bool {
    use Type::*;
    matches!(
        (w, r),
        (Null, Null)
            | (Boolean, Boolean)
            | (Int, Int | Long | Float | Double)
            | (Long, Long | Float | Double)
            | (Float, Float | Double)
            | (Double, Double)
            | (String, String | Bytes)
            | (Bytes, Bytes | String)
    )
}

/// Java's `SchemaCompatibility.schemaNameEquals`: unqualified names, or the
/// writer's full name among the reader's aliases.
fn names_match(reader: &Named, writer: &Named) -> bool {
    simple_name(reader.fullname()) == simple_name(writer.fullname())
        || reader.aliases().iter().any(|a| a == writer.fullname())
}

impl Checker<'_> {
    fn check(&mut self, r: &Type, w: &Type, path: &str, errors: &mut Vec<String>) -> bool {
        if let Type::Union(branches) = w {
            let mut ok = true;
            for (i, branch) in branches.iter().enumerate() {
                if !self.check(r, branch, &format!("{path}/{i}"), errors) {
                    ok = false;
                }
            }
            return ok;
        }
        if let Type::Union(branches) = r {
            for branch in branches {
                let mut scratch = Vec::new();
                if self.check(branch, w, path, &mut scratch) {
                    return true;
                }
            }
            let wr = resolve(self.writer, w);
            errors.push(format!(
                "TYPE_MISMATCH at '{}': reader union lacks writer type {}",
                display_path(path),
                describe(&wr)
            ));
            return false;
        }
        let (rr, wr) = (resolve(self.reader, r), resolve(self.writer, w));
        match (&rr, &wr) {
            (Resolved::Plain(Type::Array(ri)), Resolved::Plain(Type::Array(wi))) => {
                self.check(ri, wi, &format!("{path}/items"), errors)
            }
            (Resolved::Plain(Type::Map(rv)), Resolved::Plain(Type::Map(wv))) => {
                self.check(rv, wv, &format!("{path}/values"), errors)
            }
            (Resolved::Plain(rt), Resolved::Plain(wt)) if promotable(wt, rt) => true,
            (Resolved::Named(rn), Resolved::Named(wn)) => self.check_named(rn, wn, path, errors),
            _ => {
                errors.push(format!(
                    "TYPE_MISMATCH at '{}': reader type {} not compatible with writer type {}",
                    display_path(path),
                    describe(&rr),
                    describe(&wr)
                ));
                false
            }
        }
    }

    fn check_named(&mut self, r: &Named, w: &Named, path: &str, errors: &mut Vec<String>) -> bool {
        if r.kind() != w.kind() {
            errors.push(format!(
                "TYPE_MISMATCH at '{}': reader {} {} vs writer {} {}",
                display_path(path),
                r.kind(),
                r.fullname(),
                w.kind(),
                w.fullname()
            ));
            return false;
        }
        if !names_match(r, w) {
            errors.push(format!(
                "NAME_MISMATCH at '{}': expected {}, found {}",
                display_path(path),
                w.fullname(),
                r.fullname()
            ));
            return false;
        }
        let key = (r.fullname().to_owned(), w.fullname().to_owned());
        if !self.assumed.insert(key.clone()) {
            return true;
        }
        let ok = match (r, w) {
            (Named::Fixed { size: rs, .. }, Named::Fixed { size: ws, .. }) => {
                if rs == ws {
                    true
                } else {
                    errors.push(format!(
                        "FIXED_SIZE_MISMATCH at '{}': expected {ws}, found {rs}",
                        display_path(path)
                    ));
                    false
                }
            }
            (
                Named::Enum {
                    symbols: rsym,
                    default,
                    ..
                },
                Named::Enum { symbols: wsym, .. },
            ) => {
                let reader_symbols: BTreeSet<&String> = rsym.iter().collect();
                let missing: Vec<&String> = wsym
                    .iter()
                    .filter(|s| !reader_symbols.contains(s))
                    .collect();
                if missing.is_empty() || default.is_some() {
                    true
                } else {
                    errors.push(format!(
                        "MISSING_ENUM_SYMBOLS at '{}/symbols': reader lacks {}",
                        display_path(path),
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    false
                }
            }
            (Named::Record { fields: rf, .. }, Named::Record { fields: wf, .. }) => {
                let mut ok = true;
                for (i, field) in rf.iter().enumerate() {
                    let found = wf.iter().find(|f| f.name == field.name).or_else(|| {
                        field
                            .aliases
                            .iter()
                            .find_map(|a| wf.iter().find(|f| &f.name == a))
                    });
                    match found {
                        Some(wfield) => {
                            if !self.check(
                                &field.ty,
                                &wfield.ty,
                                &format!("{path}/fields/{i}/type"),
                                errors,
                            ) {
                                ok = false;
                            }
                        }
                        None if field.default.is_some() => {}
                        None => {
                            errors.push(format!(
                                "READER_FIELD_MISSING_DEFAULT_VALUE at '{}/fields/{i}': the field '{}' in the new schema has no default value and is missing in the old schema",
                                display_path(path),
                                field.name
                            ));
                            ok = false;
                        }
                    }
                }
                ok
            }
            _ => false,
        };
        if !ok {
            self.assumed.remove(&key);
        }
        ok
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> AvroSchema {
        parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn reads(reader: &str, writer: &str) -> bool {
        check(&p(reader), &p(writer)).is_empty()
    }

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;

    #[test]
    fn namespace_inheritance_gives_one_canonical_form() {
        let inherited = p(
            r#"{"type":"record","name":"Outer","namespace":"com.x","fields":[{"name":"i","type":{"type":"record","name":"Inner","fields":[]}}]}"#,
        );
        let explicit = p(
            r#"{"type":"record","name":"Outer","namespace":"com.x","fields":[{"name":"i","type":{"type":"record","name":"Inner","namespace":"com.x","fields":[]}}]}"#,
        );
        assert_eq!(inherited.canonical, explicit.canonical);
        let other = p(
            r#"{"type":"record","name":"Outer","namespace":"com.x","fields":[{"name":"i","type":{"type":"record","name":"Inner","namespace":"org.y","fields":[]}}]}"#,
        );
        assert_ne!(inherited.canonical, other.canonical);
    }

    #[test]
    fn whitespace_and_doc_do_not_change_identity_but_defaults_do() {
        let a = p(V1);
        let b = p(
            r#"{ "type" : "record", "doc": "x", "name" : "R", "fields" : [ {"name":"a","type":"string"} ] }"#,
        );
        assert_eq!(a.canonical, b.canonical);
        let c = p(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string","default":"z"}]}"#,
        );
        assert_ne!(a.canonical, c.canonical);
    }

    #[test]
    fn field_added_with_default_is_backward_compatible() {
        let v2 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
        assert!(reads(v2, V1));
        let v2_no_default = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#;
        assert!(!reads(v2_no_default, V1));
        // Removing a field: the new reader ignores it.
        assert!(reads(V1, v2_no_default));
    }

    #[test]
    fn promotions_follow_the_specification() {
        let rec = |t: &str| {
            format!(r#"{{"type":"record","name":"R","fields":[{{"name":"a","type":"{t}"}}]}}"#)
        };
        for (w, r, ok) in [
            ("int", "long", true),
            ("int", "float", true),
            ("int", "double", true),
            ("long", "float", true),
            ("long", "double", true),
            ("float", "double", true),
            ("string", "bytes", true),
            ("bytes", "string", true),
            ("long", "int", false),
            ("double", "float", false),
            ("string", "int", false),
            ("boolean", "int", false),
        ] {
            assert_eq!(reads(&rec(r), &rec(w)), ok, "writer {w} reader {r}");
        }
    }

    #[test]
    fn unions_enums_fixed_and_names() {
        let u = |t: &str| {
            format!(r#"{{"type":"record","name":"R","fields":[{{"name":"a","type":{t}}}]}}"#)
        };
        assert!(reads(
            &u(r#"["null","string","int"]"#),
            &u(r#"["null","string"]"#)
        ));
        assert!(!reads(
            &u(r#"["null","string"]"#),
            &u(r#"["null","string","int"]"#)
        ));
        assert!(reads(&u(r#"["null","string"]"#), &u(r#""string""#)));
        assert!(!reads(&u(r#""string""#), &u(r#"["null","string"]"#)));
        let e = |s: &str| u(&format!(r#"{{"type":"enum","name":"E","symbols":{s}}}"#));
        assert!(reads(&e(r#"["A","B"]"#), &e(r#"["A"]"#)));
        assert!(!reads(&e(r#"["A"]"#), &e(r#"["A","B"]"#)));
        let with_default = u(r#"{"type":"enum","name":"E","symbols":["A"],"default":"A"}"#);
        assert!(reads(&with_default, &e(r#"["A","B"]"#)));
        let f = |n: &str, s: u32| u(&format!(r#"{{"type":"fixed","name":"{n}","size":{s}}}"#));
        assert!(reads(&f("H", 16), &f("H", 16)));
        assert!(!reads(&f("H", 32), &f("H", 16)));
        assert!(!reads(&f("G", 16), &f("H", 16)));
        let renamed = r#"{"type":"record","name":"S","fields":[{"name":"a","type":"string"}]}"#;
        assert!(!reads(renamed, V1));
        let aliased = r#"{"type":"record","name":"S","aliases":["R"],"fields":[{"name":"a","type":"string"}]}"#;
        assert!(reads(aliased, V1));
    }

    #[test]
    fn field_aliases_and_nested_collections() {
        let aliased = r#"{"type":"record","name":"R","fields":[{"name":"b","type":"string","aliases":["a"]}]}"#;
        assert!(reads(aliased, V1));
        let m = |t: &str| {
            format!(
                r#"{{"type":"record","name":"R","fields":[{{"name":"m","type":{{"type":"map","values":"{t}"}}}},{{"name":"l","type":{{"type":"array","items":"{t}"}}}}]}}"#
            )
        };
        assert!(reads(&m("long"), &m("int")));
        assert!(!reads(&m("int"), &m("long")));
        assert!(!reads(&m("string"), &m("int")));
    }

    #[test]
    fn recursive_types_terminate() {
        let list = r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"],"default":null}]}"#;
        assert!(reads(list, list));
        let list2 = r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"],"default":null}]}"#;
        assert!(reads(list2, list));
        assert!(!reads(list, list2));
    }

    #[test]
    fn invalid_schemas_are_rejected() {
        for bad in [
            "not json",
            r#"{"this is not valid avro"}"#,
            r#"{"type":"record","name":"R"}"#,
            r#"{"type":"nope"}"#,
            "",
        ] {
            assert!(parse(bad, &[]).is_err(), "{bad}");
        }
    }
}

/// Cases where the Avro specification (and Java's `SchemaCompatibility`, which
/// Confluent uses) decide, used to compare our checker with apache-avro's.
#[cfg(test)]
pub(crate) const SPEC_CASES: &[(&str, &str, &str, bool)] = &[
    // (case, writer, reader, reader can read writer)
    ("int to long", r#""int""#, r#""long""#, true),
    ("long to int", r#""long""#, r#""int""#, false),
    ("string to bytes", r#""string""#, r#""bytes""#, true),
    ("bytes to string", r#""bytes""#, r#""string""#, true),
    ("float to double", r#""float""#, r#""double""#, true),
    (
        "add field with default",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}"#,
        true,
    ),
    (
        "add field without default",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#,
        false,
    ),
    (
        "field renamed with alias",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":"int","aliases":["a"]}]}"#,
        true,
    ),
    (
        "record renamed",
        r#"{"type":"record","name":"R","fields":[]}"#,
        r#"{"type":"record","name":"S","fields":[]}"#,
        false,
    ),
    (
        "record renamed with alias",
        r#"{"type":"record","name":"R","fields":[]}"#,
        r#"{"type":"record","name":"S","aliases":["R"],"fields":[]}"#,
        true,
    ),
    (
        "record namespace changed",
        r#"{"type":"record","name":"R","namespace":"a","fields":[]}"#,
        r#"{"type":"record","name":"R","namespace":"b","fields":[]}"#,
        true,
    ),
    (
        "enum symbol added",
        r#"{"type":"enum","name":"E","symbols":["A"]}"#,
        r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
        true,
    ),
    (
        "enum symbol removed",
        r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
        r#"{"type":"enum","name":"E","symbols":["A"]}"#,
        false,
    ),
    (
        "enum symbol removed, reader default",
        r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
        r#"{"type":"enum","name":"E","symbols":["A"],"default":"A"}"#,
        true,
    ),
    (
        "fixed size changed",
        r#"{"type":"fixed","name":"F","size":16}"#,
        r#"{"type":"fixed","name":"F","size":32}"#,
        false,
    ),
    (
        "union branch added",
        r#"["null","string"]"#,
        r#"["null","string","int"]"#,
        true,
    ),
    (
        "union branch removed",
        r#"["null","string","int"]"#,
        r#"["null","string"]"#,
        false,
    ),
    (
        "plain to union",
        r#""string""#,
        r#"["null","string"]"#,
        true,
    ),
    (
        "union to plain",
        r#"["null","string"]"#,
        r#""string""#,
        false,
    ),
    (
        "int into union with long",
        r#""int""#,
        r#"["null","long"]"#,
        true,
    ),
    (
        "array items promoted",
        r#"{"type":"array","items":"int"}"#,
        r#"{"type":"array","items":"long"}"#,
        true,
    ),
    (
        "map values changed",
        r#"{"type":"map","values":"int"}"#,
        r#"{"type":"map","values":"string"}"#,
        false,
    ),
];

#[cfg(test)]
mod spec_tests {
    use super::*;

    fn ours(writer: &str, reader: &str) -> bool {
        let w = parse(writer, &[]).expect("writer");
        let r = parse(reader, &[]).expect("reader");
        check(&r, &w).is_empty()
    }

    fn apache(writer: &str, reader: &str) -> bool {
        let w = apache_avro::Schema::parse_str(writer).expect("writer");
        let r = apache_avro::Schema::parse_str(reader).expect("reader");
        apache_avro::schema_compatibility::SchemaCompatibility::can_read(&w, &r).is_ok()
    }

    #[test]
    fn our_checker_follows_the_specification() {
        for (case, writer, reader, expected) in SPEC_CASES {
            assert_eq!(ours(writer, reader), *expected, "{case}");
        }
    }

    /// Documents where apache-avro 0.21's checker disagrees with the
    /// specification; fails when that list changes so docs/registry.md stays true.
    #[test]
    fn apache_avro_divergences_are_known() {
        let diverging: Vec<&str> = SPEC_CASES
            .iter()
            .filter(|(_, writer, reader, expected)| apache(writer, reader) != *expected)
            .map(|(case, ..)| *case)
            .collect();
        assert_eq!(diverging, KNOWN_APACHE_AVRO_DIVERGENCES);
    }

    const KNOWN_APACHE_AVRO_DIVERGENCES: &[&str] = &[
        "record renamed with alias",
        "enum symbol removed, reader default",
    ];
}
