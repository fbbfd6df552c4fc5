//! Avro through a Confluent-compatible schema registry.
//!
//! Subjects follow `TopicRecordNameStrategy` (`<topic>-<record full name>`), so several event
//! types can share one ordered topic. Encoding registers the contract under its subject the first
//! time and caches the id; decoding reads the writer's schema by the id in the frame (cached), then
//! resolves the value against our reader contract so that events written under any older
//! compatible version still decode.

use apache_avro::types::Value;
use apache_avro::Schema;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::framing::Frame;
use crate::schemas::Contract;
use crate::{Error, Result};

/// Encoder and decoder bound to one registry.
pub struct Codec {
    registry_url: String,
    encoder: AvroEncoder<'static>,
    decoder: AvroDecoder<'static>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("registry_url", &self.registry_url)
            .finish_non_exhaustive()
    }
}

/// A decoded payload: the writer's record name and schema id, and the value.
#[derive(Debug)]
pub struct Decoded {
    pub name: String,
    pub schema_id: u32,
    pub value: Value,
}

impl Codec {
    /// A codec for the registry at `registry_url` (e.g. `http://localhost:8081`).
    ///
    /// # Errors
    /// [`Error::Registry`] if the HTTP client cannot be built.
    pub fn new(registry_url: &str) -> Result<Self> {
        let settings = || {
            SrSettings::new_builder(registry_url.trim_end_matches('/').to_owned())
                .set_timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| Error::Registry(e.to_string()))
        };
        Ok(Codec {
            registry_url: registry_url.to_owned(),
            encoder: AvroEncoder::new(settings()?),
            decoder: AvroDecoder::new(settings()?),
        })
    }

    /// The registry's base URL.
    pub fn registry_url(&self) -> &str {
        &self.registry_url
    }

    /// The subject `contract` is registered under for `topic`.
    pub fn subject(topic: &str, contract: &Contract) -> String {
        format!("{topic}-{}", contract.name)
    }

    /// Encodes `item` under `contract` for `topic`, registering the contract if needed.
    ///
    /// # Errors
    /// [`Error::Registry`] if the registry refuses or cannot be reached, [`Error::Avro`] if
    /// `item` does not fit the contract.
    pub async fn encode<T: Serialize>(
        &self,
        topic: &str,
        contract: &Contract,
        item: &T,
    ) -> Result<Vec<u8>> {
        self.encoder
            .encode_struct(item, &strategy(topic, contract))
            .await
            .map_err(|e| {
                if e.retriable || e.error.contains("registry") || e.error.contains("schema") {
                    self.encoder.remove_errors_from_cache();
                }
                classify(e)
            })
    }

    /// Encodes an Avro `value` under `contract` for `topic`, registering the contract if needed.
    ///
    /// # Errors
    /// As [`Codec::encode`].
    pub async fn encode_value(
        &self,
        topic: &str,
        contract: &Contract,
        value: Value,
    ) -> Result<Vec<u8>> {
        // Resolution picks union branches and logical types, so callers can write plain values.
        let value = value.resolve(&contract.schema)?;
        self.encoder
            .encode_value(value, &strategy(topic, contract))
            .await
            .map_err(|e| {
                self.encoder.remove_errors_from_cache();
                classify(e)
            })
    }

    /// Decodes a framed payload with the writer's schema.
    ///
    /// # Errors
    /// [`Error::Frame`] for a bad header, [`Error::Registry`] when the registry cannot be reached
    /// (transient), [`Error::Avro`] when the body does not decode or the id is unknown.
    pub async fn decode(&self, payload: &[u8]) -> Result<Decoded> {
        let frame = Frame::parse(payload)?;
        let decoded = self
            .decoder
            .decode_with_schema(Some(payload))
            .await
            .map_err(|e| {
                self.decoder.remove_errors_from_cache();
                classify(e)
            })?
            .ok_or(Error::Frame(crate::framing::FrameError::Empty))?;
        let name = match &decoded.schema.parsed {
            Schema::Record(r) => r.name.fullname(None),
            other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)),
        };
        Ok(Decoded {
            name,
            schema_id: frame.schema_id,
            value: decoded.value,
        })
    }

    /// Decodes a framed payload that must be of `contract`'s type, resolved to our version.
    ///
    /// # Errors
    /// As [`Codec::decode`], plus [`Error::UnexpectedType`] for another record type.
    pub async fn decode_as<T: DeserializeOwned>(
        &self,
        payload: &[u8],
        contract: &Contract,
    ) -> Result<T> {
        let decoded = self.decode(payload).await?;
        if decoded.name != contract.name {
            return Err(Error::UnexpectedType {
                expected: contract.name.to_owned(),
                found: decoded.name,
            });
        }
        from_value(decoded.value, contract)
    }
}

/// Resolves `value` (decoded with a writer's schema) against `contract` and deserializes it.
///
/// # Errors
/// [`Error::Avro`] when the value cannot be read as the contract.
pub fn from_value<T: DeserializeOwned>(value: Value, contract: &Contract) -> Result<T> {
    let resolved = value.resolve(&contract.schema)?;
    Ok(apache_avro::from_value(&resolved)?)
}

/// Avro binary of `item` under `contract`, without any frame (used inside sealed blocks).
///
/// # Errors
/// [`Error::Avro`] if `item` does not fit the contract.
pub fn to_datum<T: Serialize>(item: &T, contract: &Contract) -> Result<Vec<u8>> {
    let value = apache_avro::to_value(item)?.resolve(&contract.schema)?;
    Ok(apache_avro::to_avro_datum(&contract.schema, value)?)
}

/// Reads an unframed Avro binary written under `contract`.
///
/// # Errors
/// [`Error::Avro`] if the bytes do not decode as the contract.
pub fn from_datum<T: DeserializeOwned>(bytes: &[u8], contract: &Contract) -> Result<T> {
    let mut reader = bytes;
    let value = apache_avro::from_avro_datum(&contract.schema, &mut reader, None)?;
    if !reader.is_empty() {
        return Err(Error::Avro(format!(
            "{} trailing bytes after a {}",
            reader.len(),
            contract.name
        )));
    }
    Ok(apache_avro::from_value(&value)?)
}

/// `TopicRecordNameStrategy` with the contract supplied, so it is registered on first use.
fn strategy(topic: &str, contract: &Contract) -> SubjectNameStrategy {
    SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
        topic.to_owned(),
        SuppliedSchema {
            name: Some(contract.name.to_owned()),
            schema_type: SchemaType::Avro,
            schema: contract.raw.to_owned(),
            references: vec![],
            properties: None,
            tags: None,
        },
    )
}

fn classify(e: SRCError) -> Error {
    let text = match &e.cause {
        Some(cause) => format!("{}: {cause}", e.error),
        None => e.error.clone(),
    };
    let client_error = (400..500).any(|s| e.error.contains(&format!("status {s}")));
    if e.error.contains("Could not transform bytes") || e.error.contains("resolve") {
        Error::Avro(text)
    } else if !e.retriable && client_error {
        // The registry answered, and does not know this id: retrying cannot help.
        Error::UnknownSchema(text)
    } else {
        // Unreachable, or a server error: transient.
        Error::Registry(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemas::PERSON_IDENTITY;
    use socle_domain::PersonIdentity;

    #[test]
    fn datum_round_trip_and_trailing_bytes_are_refused() {
        let identity = PersonIdentity {
            nir: Some("269054958815780".into()),
            family_name: "Martin".into(),
            given_name: "Camille".into(),
            birth_date: 7000,
            email: None,
            phone: Some("0600000000".into()),
        };
        let mut bytes = to_datum(&identity, &PERSON_IDENTITY).expect("encode");
        let back: PersonIdentity = from_datum(&bytes, &PERSON_IDENTITY).expect("decode");
        assert_eq!(back, identity);
        bytes.push(0);
        assert!(matches!(
            from_datum::<PersonIdentity>(&bytes, &PERSON_IDENTITY),
            Err(Error::Avro(_))
        ));
    }
}
