//! Personal fields sealed with a key per person (crypto-shredding).
//!
//! Every personal field travels inside a [`Sealed`] record: the Avro binary encoding of a
//! `socle.pii.*` record, encrypted with AES-256-GCM under the person's own [`DataKey`]. The
//! associated data binds the ciphertext to its person, key and content type, so a sealed block
//! copied onto another person's event does not open. Erasing the person's key makes every copy
//! unreadable (old events, backups, exports) without rewriting any of them, and since the
//! trail's hashes cover the ciphertext, integrity proofs still verify after erasure.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The only algorithm sealed blocks use today.
pub const ALGORITHM: &str = "AES-256-GCM";

/// Why a sealed block could not be made or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PiiError {
    #[error("sealed with unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("sealed with key {found}, but the key given is {expected}")]
    WrongKey { expected: String, found: String },
    #[error("nonce must be 12 bytes, got {0}")]
    BadNonce(usize),
    #[error("sealed block does not open: altered, or not sealed for this person and content")]
    Tampered,
    #[error("encryption failed")]
    Encrypt,
}

/// A person's data key. Its bytes never leave the key store except to seal or open.
#[derive(Clone)]
pub struct DataKey {
    pub key_id: String,
    bytes: [u8; 32],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl DataKey {
    /// A fresh random key with a new id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        DataKey {
            key_id: Uuid::now_v7().to_string(),
            bytes,
        }
    }

    /// A key read back from the key store; `None` if `bytes` is not 32 bytes long.
    pub fn from_parts(key_id: impl Into<String>, bytes: &[u8]) -> Option<Self> {
        Some(DataKey {
            key_id: key_id.into(),
            bytes: bytes.try_into().ok()?,
        })
    }

    /// The raw key, for the key store only.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Seals `plaintext` (the Avro encoding of the record named `content`) for `person_id`.
    ///
    /// # Errors
    /// [`PiiError::Encrypt`] if the AEAD refuses (never expected with a valid key).
    pub fn seal(
        &self,
        person_id: Uuid,
        content: &str,
        plaintext: &[u8],
    ) -> Result<Sealed, PiiError> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(person_id, &self.key_id, content);
        let ciphertext = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| PiiError::Encrypt)?;
        Ok(Sealed {
            key_id: self.key_id.clone(),
            algorithm: ALGORITHM.to_owned(),
            content: content.to_owned(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a block sealed for `person_id` with this key.
    ///
    /// # Errors
    /// The block names another key or algorithm, or it was altered or moved.
    pub fn open(&self, person_id: Uuid, sealed: &Sealed) -> Result<Vec<u8>, PiiError> {
        if sealed.algorithm != ALGORITHM {
            return Err(PiiError::UnsupportedAlgorithm(sealed.algorithm.clone()));
        }
        if sealed.key_id != self.key_id {
            return Err(PiiError::WrongKey {
                expected: self.key_id.clone(),
                found: sealed.key_id.clone(),
            });
        }
        if sealed.nonce.len() != 12 {
            return Err(PiiError::BadNonce(sealed.nonce.len()));
        }
        let aad = associated_data(person_id, &sealed.key_id, &sealed.content);
        self.cipher()
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| PiiError::Tampered)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.bytes.into())
    }
}

fn associated_data(person_id: Uuid, key_id: &str, content: &str) -> Vec<u8> {
    format!("{person_id}|{key_id}|{content}").into_bytes()
}

/// `socle.pii.Sealed`: personal fields encrypted with the person's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub key_id: String,
    pub algorithm: String,
    /// Full name of the Avro record inside, e.g. `socle.pii.PersonIdentity`.
    pub content: String,
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_gives_the_plaintext_back() {
        let key = DataKey::generate();
        let person = Uuid::now_v7();
        let sealed = key
            .seal(person, "socle.pii.PersonIdentity", b"identity")
            .expect("seal");
        assert_ne!(sealed.ciphertext, b"identity");
        assert_eq!(key.open(person, &sealed).expect("open"), b"identity");
    }

    #[test]
    fn a_block_moved_to_another_person_does_not_open() {
        let key = DataKey::generate();
        let sealed = key
            .seal(Uuid::now_v7(), "socle.pii.PersonIdentity", b"identity")
            .expect("seal");
        assert_eq!(key.open(Uuid::now_v7(), &sealed), Err(PiiError::Tampered));
    }

    #[test]
    fn altered_ciphertext_or_content_is_detected() {
        let key = DataKey::generate();
        let person = Uuid::now_v7();
        let mut sealed = key
            .seal(person, "socle.pii.PersonIdentity", b"x")
            .expect("seal");
        sealed.ciphertext[0] ^= 1;
        assert_eq!(key.open(person, &sealed), Err(PiiError::Tampered));
        let mut sealed = key
            .seal(person, "socle.pii.PersonIdentity", b"x")
            .expect("seal");
        sealed.content = "socle.pii.Other".into();
        assert_eq!(key.open(person, &sealed), Err(PiiError::Tampered));
    }

    #[test]
    fn another_key_is_refused_by_id() {
        let person = Uuid::now_v7();
        let sealed = DataKey::generate().seal(person, "c", b"x").expect("seal");
        assert!(matches!(
            DataKey::generate().open(person, &sealed),
            Err(PiiError::WrongKey { .. })
        ));
    }

    #[test]
    fn debug_never_prints_the_key() {
        let key = DataKey::from_parts("k1", &[7u8; 32]).expect("32 bytes");
        assert!(!format!("{key:?}").contains('7'));
        assert!(DataKey::from_parts("k1", &[7u8; 31]).is_none());
    }
}
