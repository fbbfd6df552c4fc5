//! Sealing and opening the personal fields of events (see `socle_domain::pii`).

use socle_domain::person::PERSON_IDENTITY as IDENTITY_NAME;
use socle_domain::{DataKey, PersonIdentity, Sealed};
use uuid::Uuid;

use crate::codec::{from_datum, to_datum};
use crate::schemas::PERSON_IDENTITY;
use crate::{Error, Result};

/// Seals `identity` for `person_id` with the person's key.
///
/// # Errors
/// [`Error::Avro`] or [`Error::Pii`] (not expected with a valid identity and key).
pub fn seal_identity(key: &DataKey, person_id: Uuid, identity: &PersonIdentity) -> Result<Sealed> {
    let plaintext = to_datum(identity, &PERSON_IDENTITY)?;
    Ok(key.seal(person_id, IDENTITY_NAME, &plaintext)?)
}

/// Opens a sealed identity.
///
/// # Errors
/// [`Error::Pii`] when the block is not a `PersonIdentity` sealed for this person and key,
/// [`Error::Avro`] when the plaintext does not decode.
pub fn open_identity(key: &DataKey, person_id: Uuid, sealed: &Sealed) -> Result<PersonIdentity> {
    if sealed.content != IDENTITY_NAME {
        return Err(Error::UnexpectedType {
            expected: IDENTITY_NAME.to_owned(),
            found: sealed.content.clone(),
        });
    }
    let plaintext = key.open(person_id, sealed)?;
    from_datum(&plaintext, &PERSON_IDENTITY)
}

/// Opens a sealed block whose content is the record of `contract`, as an Avro value.
///
/// # Errors
/// [`Error::UnexpectedType`] when the block holds another record, [`Error::Pii`] when it does
/// not open for this person and key, [`Error::Avro`] when the plaintext does not decode.
pub fn open_value(
    key: &DataKey,
    person_id: Uuid,
    sealed: &Sealed,
    contract: &crate::schemas::Contract,
) -> Result<apache_avro::types::Value> {
    if sealed.content != contract.name {
        return Err(Error::UnexpectedType {
            expected: contract.name.to_owned(),
            found: sealed.content.clone(),
        });
    }
    let plaintext = key.open(person_id, sealed)?;
    let mut reader = plaintext.as_slice();
    let value = apache_avro::from_avro_datum(&contract.schema, &mut reader, None)?;
    Ok(value)
}
