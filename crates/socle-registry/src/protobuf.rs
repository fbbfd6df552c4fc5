//! Protobuf support: a small `.proto` parser (messages, nested messages and
//! enums, fields, oneofs, maps) and the wire-level compatibility rules that
//! Confluent applies: a field's type may only change within a wire-compatible
//! group, and a message may not disappear. Adding or removing fields is safe.

use std::collections::BTreeMap;

/// A parsed `.proto` file: every message by full name, with its fields by number.
#[derive(Debug, Clone, Default)]
pub struct ProtoSchema {
    pub messages: BTreeMap<String, BTreeMap<u64, ProtoField>>,
    pub canonical: String,
}

/// A field: its name and declared type (scalar name or a type name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoField {
    pub name: String,
    pub ty: String,
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '"' || c == '\'' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err("unterminated string".into());
            }
            i += 1;
            tokens.push(chars[start..i].iter().collect());
        } else if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' || c == '+' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-' | '+'))
            {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if "{}[]()<>;=,:".contains(c) {
            tokens.push(c.to_string());
            i += 1;
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
    schema: ProtoSchema,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn next(&mut self) -> Result<String, String> {
        let t = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or_else(|| "unexpected end of input".to_owned())?;
        self.pos += 1;
        Ok(t)
    }

    fn expect(&mut self, want: &str) -> Result<(), String> {
        let got = self.next()?;
        if got == want {
            Ok(())
        } else {
            Err(format!("expected '{want}', found '{got}'"))
        }
    }

    /// Skips to the end of the current statement (`;`) or balanced block.
    fn skip_statement(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        loop {
            let t = self.next()?;
            match t.as_str() {
                "{" => depth += 1,
                "}" => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| "unbalanced '}'".to_owned())?;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                ";" if depth == 0 => return Ok(()),
                _ => {}
            }
        }
    }

    fn file(&mut self) -> Result<(), String> {
        let mut package = String::new();
        let mut seen_syntax = false;
        while let Some(t) = self.peek() {
            match t {
                "syntax" | "edition" => {
                    self.next()?;
                    self.expect("=")?;
                    let v = self.next()?;
                    if !matches!(
                        v.trim_matches(|c| c == '"' || c == '\''),
                        "proto2" | "proto3" | "2023" | "2024"
                    ) {
                        return Err(format!("unknown syntax {v}"));
                    }
                    self.expect(";")?;
                    seen_syntax = true;
                }
                "package" => {
                    self.next()?;
                    package = self.next()?;
                    self.expect(";")?;
                }
                "import" | "option" => self.skip_statement()?,
                "message" => {
                    self.next()?;
                    self.message(&package)?;
                }
                "enum" | "service" | "extend" => {
                    self.next()?;
                    self.next()?;
                    self.block()?;
                }
                ";" => {
                    self.next()?;
                }
                other => return Err(format!("unexpected '{other}'")),
            }
        }
        if !seen_syntax && self.schema.messages.is_empty() {
            return Err("no message or syntax declaration".into());
        }
        Ok(())
    }

    fn block(&mut self) -> Result<(), String> {
        if self.peek() != Some("{") {
            return Err("expected '{'".into());
        }
        self.skip_statement()
    }

    fn message(&mut self, scope: &str) -> Result<(), String> {
        let name = self.next()?;
        if !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(format!("invalid message name '{name}'"));
        }
        let full = if scope.is_empty() {
            name
        } else {
            format!("{scope}.{name}")
        };
        self.expect("{")?;
        let mut fields = BTreeMap::new();
        self.message_body(&full, &mut fields)?;
        self.schema.messages.insert(full, fields);
        Ok(())
    }

    fn message_body(
        &mut self,
        full: &str,
        fields: &mut BTreeMap<u64, ProtoField>,
    ) -> Result<(), String> {
        loop {
            let t = self.next()?;
            match t.as_str() {
                "}" => return Ok(()),
                ";" => {}
                "message" => self.message(full)?,
                "enum" | "extend" => {
                    self.next()?;
                    self.block()?;
                }
                "option" | "reserved" | "extensions" => self.skip_statement()?,
                "oneof" => {
                    self.next()?;
                    self.expect("{")?;
                    self.message_body(full, fields)?;
                }
                "optional" | "repeated" | "required" => {
                    let ty = self.next()?;
                    let ty = if t == "repeated" {
                        format!("repeated {ty}")
                    } else {
                        ty
                    };
                    self.field(ty, fields)?;
                }
                "map" => {
                    self.expect("<")?;
                    let k = self.next()?;
                    self.expect(",")?;
                    let v = self.next()?;
                    self.expect(">")?;
                    self.field(format!("map<{k},{v}>"), fields)?;
                }
                _ => self.field(t, fields)?,
            }
        }
    }

    fn field(&mut self, ty: String, fields: &mut BTreeMap<u64, ProtoField>) -> Result<(), String> {
        let name = self.next()?;
        if !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(format!("invalid field name '{name}'"));
        }
        self.expect("=")?;
        let number: u64 = self
            .next()?
            .parse()
            .map_err(|_| format!("invalid field number for '{name}'"))?;
        if number == 0 {
            return Err(format!("field number 0 for '{name}'"));
        }
        if self.peek() == Some("[") {
            while self.next()? != "]" {}
        }
        self.expect(";")?;
        fields.insert(number, ProtoField { name, ty });
        Ok(())
    }
}

/// Parses a `.proto` text.
///
/// # Errors
/// A message when the text is not a parseable `.proto` file.
pub fn parse(text: &str) -> Result<ProtoSchema, String> {
    let tokens = tokenize(text).map_err(|e| format!("Invalid protobuf schema: {e}"))?;
    let canonical = tokens.join(" ");
    let mut parser = Parser {
        tokens,
        pos: 0,
        schema: ProtoSchema::default(),
    };
    parser
        .file()
        .map_err(|e| format!("Invalid protobuf schema: {e}"))?;
    let mut schema = parser.schema;
    schema.canonical = canonical;
    Ok(schema)
}

fn wire_group(ty: &str) -> &str {
    match ty {
        "int32" | "uint32" | "int64" | "uint64" | "bool" => "varint",
        "sint32" | "sint64" => "zigzag",
        "fixed32" | "sfixed32" => "fixed32",
        "fixed64" | "sfixed64" => "fixed64",
        "string" | "bytes" => "length-delimited",
        other => other,
    }
}

/// Checks an `update` of an `original` schema (symmetric except for messages
/// removed from `original`).
pub fn check(original: &ProtoSchema, update: &ProtoSchema) -> Vec<String> {
    let mut errors = Vec::new();
    for (message, fields) in &original.messages {
        let Some(new_fields) = update.messages.get(message) else {
            errors.push(format!("MESSAGE_REMOVED: {message}"));
            continue;
        };
        for (number, field) in fields {
            if let Some(new_field) = new_fields.get(number) {
                if wire_group(&field.ty) != wire_group(&new_field.ty) {
                    errors.push(format!(
                        "FIELD_TYPE_CHANGED: {message} field {number} from {} to {}",
                        field.ty, new_field.ty
                    ));
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_wire_groups() {
        let v1 =
            parse("syntax = \"proto3\";\nmessage E { int32 id = 1; string s = 2; }").expect("v1");
        let v2 = parse(
            "syntax = \"proto3\"; message E { uint64 id = 1; bytes s = 2; optional string x = 3; }",
        )
        .expect("v2");
        let v3 = parse("syntax = \"proto3\"; message E { sint32 id = 1; }").expect("v3");
        assert!(check(&v1, &v2).is_empty());
        assert!(!check(&v1, &v3).is_empty());
        let nested = parse(
            "syntax = \"proto3\"; package p; message O { enum S { A = 0; } S s = 1; map<string, int32> m = 2; oneof k { string a = 3; } message I { int32 x = 1; } }",
        )
        .expect("nested");
        assert!(nested.messages.contains_key("p.O.I"));
        assert!(parse("this is not valid protobuf").is_err());
    }
}
