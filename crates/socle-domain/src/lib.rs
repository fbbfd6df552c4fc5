//! The socle domain: the events operators and socle exchange, and the rules about them.
//!
//! Pure types and logic, no I/O. The Avro contracts these types follow live in `schemas/`
//! at the repository root; each struct here mirrors one schema field for field, so that
//! `apache-avro`'s serde support can encode and decode them without hand-written mapping.

pub mod access;
pub mod envelope;
pub mod person;
pub mod pii;
pub mod reference;
pub mod time;
pub mod uuid_str;
pub mod validate;

pub use access::{AccessEvent, AuthStrength, Decision};
pub use envelope::Envelope;
pub use person::{PersonIdentity, PersonRegistered};
pub use pii::{DataKey, PiiError, Sealed};
