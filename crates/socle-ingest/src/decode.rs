//! From bytes to an [`Ingress`] message: the frame, then the Avro body with the writer's schema,
//! resolved to socle's reader contract. Pure (the writer's schema is passed in), so that it can
//! be fuzzed without a registry; `fuzz/` drives these functions with arbitrary bytes.
//!
//! Every failure is a [`Rejection`] with a stable code: `frame.*` for the header (Confluent
//! framing only: the newer 0x01/GUID framing and schema ids carried in headers are refused with
//! their own codes), `schema.*` for the writer's schema, `avro.*` for the body.

use apache_avro::types::Value;
use apache_avro::Schema;
use serde::de::DeserializeOwned;
use socle_kafka::framing::Frame;
use socle_kafka::schemas::Contract;

use crate::contracts;
use crate::ingress::Ingress;
use crate::rules::Rejection;

/// Header names under which Confluent's newer serializers carry the schema id (or GUID)
/// instead of the payload's first bytes.
pub const SCHEMA_ID_HEADERS: [&str; 2] = ["__value_schema_id", "__key_schema_id"];

/// Largest block apache-avro may allocate for one decoded string, bytes or array while reading
/// a message (Kafka's own message limit is 1 MiB by default): a forged length cannot make the
/// process allocate gigabytes.
pub const MAX_ALLOCATION: usize = 8 * 1024 * 1024;

/// Every code this module returns.
pub const CODES: &[&str] = &[
    "frame.empty",
    "frame.too_short",
    "frame.guid_unsupported",
    "frame.unknown_magic",
    "frame.header_schema_id_unsupported",
    "schema.unknown_id",
    "schema.not_avro",
    "schema.unexpected_type",
    "schema.incompatible",
    "avro.undecodable",
    "avro.trailing_bytes",
];

/// Bounds apache-avro's allocations (process-wide; the first call wins).
pub fn limit_allocations() {
    let _ = apache_avro::util::max_allocation_bytes(MAX_ALLOCATION);
}

/// Checks the frame of `payload` (and that no header carries the schema id) and returns it.
///
/// # Errors
/// `frame.*`.
pub fn frame<'a>(payload: Option<&'a [u8]>, header_names: &[&str]) -> Result<Frame<'a>, Rejection> {
    if let Some(h) = header_names.iter().find(|h| SCHEMA_ID_HEADERS.contains(h)) {
        return Err(Rejection::new(
            "frame.header_schema_id_unsupported",
            format!("schema id in header {h} is not supported; put it in the payload (magic byte 0x00, 4-byte id)"),
            None,
        ));
    }
    Frame::parse(payload.unwrap_or_default())
        .map_err(|e| Rejection::new(e.code(), e.to_string(), None))
}

/// The ingress contract a writer's record name is a version of, if any.
pub fn reader_for(record_name: &str) -> Option<&'static Contract> {
    contracts::ingress()
        .into_iter()
        .find(|c| c.name == record_name)
}

/// The full name of a writer schema's top record.
pub fn record_name(schema: &Schema) -> Option<String> {
    match schema {
        Schema::Record(r) => Some(r.name.fullname(None)),
        _ => None,
    }
}

/// Decodes `body`, written with `writer`, as the ingress message of `reader`'s type.
/// `same` says that the writer is the reader contract itself (no resolution needed: the common,
/// fast case).
///
/// # Errors
/// `avro.undecodable`, `avro.trailing_bytes`, `schema.incompatible`.
pub fn body(
    writer: &Schema,
    reader: &Contract,
    same: bool,
    body: &[u8],
) -> Result<Ingress, Rejection> {
    let mut rest = body;
    // Fast path: apache-avro's `from_avro_datum` builds a resolved schema (a map of every named
    // type) on each call, which dominated ingestion's profile. It is only needed for references
    // to named types defined earlier in the schema; without any, decoding needs no names. If the
    // fast path fails (a reference, or a bad body), decode again the full way, whose error is
    // the one reported.
    let fast = apache_avro::from_avro_datum_schemata(writer, Vec::new(), &mut rest, None);
    let value = match fast {
        Ok(v) => v,
        Err(_) => {
            rest = body;
            apache_avro::from_avro_datum(writer, &mut rest, None)
                .map_err(|e| Rejection::new("avro.undecodable", e.to_string(), None))?
        }
    };
    if !rest.is_empty() {
        return Err(Rejection::new(
            "avro.trailing_bytes",
            format!("{} bytes left after the record", rest.len()),
            None,
        ));
    }
    let value = if same {
        value
    } else {
        value.resolve(&reader.schema).map_err(|e| {
            Rejection::new(
                "schema.incompatible",
                format!("writer schema does not resolve to {}: {e}", reader.name),
                None,
            )
        })?
    };
    typed(reader, value)
}

fn de<T: DeserializeOwned>(value: &Value) -> Result<T, Rejection> {
    apache_avro::from_value(value)
        .map_err(|e| Rejection::new("avro.undecodable", e.to_string(), None))
}

/// The typed message for a value already in `reader`'s shape.
///
/// # Errors
/// `avro.undecodable` (e.g. a uuid field that is not a UUID), `schema.unexpected_type`.
pub fn typed(reader: &Contract, value: Value) -> Result<Ingress, Rejection> {
    use crate::contracts as c;
    let n = reader.name;
    Ok(if n == c::IN_PERSON_REGISTERED.name {
        Ingress::Registered(de(&value)?)
    } else if n == c::IN_IDENTITY_UPDATED.name {
        Ingress::IdentityUpdated(de(&value)?)
    } else if n == c::IN_CONTACT_UPDATED.name {
        Ingress::ContactUpdated(de(&value)?)
    } else if n == c::IN_SITUATION_UPDATED.name {
        Ingress::SituationUpdated(de(&value)?)
    } else if n == c::IN_FOLLOW_STARTED.name {
        Ingress::FollowStarted(de(&value)?)
    } else if n == c::IN_FOLLOW_ENDED.name {
        Ingress::FollowEnded(de(&value)?)
    } else if n == c::IN_PERSON_EXITED.name {
        Ingress::Exited(de(&value)?)
    } else if n == c::IN_SERVICE_PRESCRIBED.name {
        Ingress::ServicePrescribed(de(&value)?)
    } else if n == c::IN_APPOINTMENT_SCHEDULED.name {
        Ingress::AppointmentScheduled(de(&value)?)
    } else {
        return Err(Rejection::new(
            "schema.unexpected_type",
            format!("{n} is not an ingress contract"),
            None,
        ));
    })
}

/// Encodes an ingress message under its contract (for operators' test tools, the benchmark
/// generator and tests): the Avro body, without frame.
///
/// # Errors
/// When the message does not fit its contract (never expected for these types).
pub fn encode_body(message: &Ingress) -> Result<Vec<u8>, apache_avro::Error> {
    use crate::contracts as c;
    let (contract, value) = match message {
        Ingress::Registered(e) => (&*c::IN_PERSON_REGISTERED, apache_avro::to_value(e)?),
        Ingress::IdentityUpdated(e) => (&*c::IN_IDENTITY_UPDATED, apache_avro::to_value(e)?),
        Ingress::ContactUpdated(e) => (&*c::IN_CONTACT_UPDATED, apache_avro::to_value(e)?),
        Ingress::SituationUpdated(e) => (&*c::IN_SITUATION_UPDATED, apache_avro::to_value(e)?),
        Ingress::FollowStarted(e) => (&*c::IN_FOLLOW_STARTED, apache_avro::to_value(e)?),
        Ingress::FollowEnded(e) => (&*c::IN_FOLLOW_ENDED, apache_avro::to_value(e)?),
        Ingress::Exited(e) => (&*c::IN_PERSON_EXITED, apache_avro::to_value(e)?),
        Ingress::ServicePrescribed(e) => (&*c::IN_SERVICE_PRESCRIBED, apache_avro::to_value(e)?),
        Ingress::AppointmentScheduled(e) => {
            (&*c::IN_APPOINTMENT_SCHEDULED, apache_avro::to_value(e)?)
        }
    };
    apache_avro::to_avro_datum(&contract.schema, value.resolve(&contract.schema)?)
}

/// The contract of an ingress message.
pub fn contract_of(message: &Ingress) -> &'static Contract {
    use crate::contracts as c;
    match message {
        Ingress::Registered(_) => &c::IN_PERSON_REGISTERED,
        Ingress::IdentityUpdated(_) => &c::IN_IDENTITY_UPDATED,
        Ingress::ContactUpdated(_) => &c::IN_CONTACT_UPDATED,
        Ingress::SituationUpdated(_) => &c::IN_SITUATION_UPDATED,
        Ingress::FollowStarted(_) => &c::IN_FOLLOW_STARTED,
        Ingress::FollowEnded(_) => &c::IN_FOLLOW_ENDED,
        Ingress::Exited(_) => &c::IN_PERSON_EXITED,
        Ingress::ServicePrescribed(_) => &c::IN_SERVICE_PRESCRIBED,
        Ingress::AppointmentScheduled(_) => &c::IN_APPOINTMENT_SCHEDULED,
    }
}
