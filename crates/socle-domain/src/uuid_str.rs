//! Serde for UUIDs as strings, as the Avro `uuid` logical type carries them.
//!
//! `uuid`'s own serde writes 16 raw bytes to non-human-readable serializers such as
//! apache-avro's, which the `uuid` logical type (a string) refuses; these helpers always use
//! the hyphenated text form.

use serde::{Deserialize, Deserializer, Serializer};
use uuid::Uuid;

pub fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&id.hyphenated())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    let text = String::deserialize(d)?;
    Uuid::parse_str(&text).map_err(serde::de::Error::custom)
}

/// The same for `Option<Uuid>` (an Avro union with null).
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(id: &Option<Uuid>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.serialize_some(&id.hyphenated().to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| Uuid::parse_str(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}
