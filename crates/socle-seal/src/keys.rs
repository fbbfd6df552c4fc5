//! Ed25519 key files: the private key (PKCS#8 PEM, kept secret by the sealer) and the public key
//! (SPKI PEM, published with the deployment so anyone can verify).

use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::{Error, Result};

/// A fresh signing key from the operating system's random source.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// The PKCS#8 PEM text of `key`.
///
/// # Errors
/// [`Error::Key`] if encoding fails.
pub fn private_pem(key: &SigningKey) -> Result<String> {
    Ok(key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| Error::Key(format!("encoding the private key: {e}")))?
        .to_string())
}

/// The SPKI PEM text of `key`.
///
/// # Errors
/// [`Error::Key`] if encoding fails.
pub fn public_pem(key: &VerifyingKey) -> Result<String> {
    key.to_public_key_pem(Default::default())
        .map_err(|e| Error::Key(format!("encoding the public key: {e}")))
}

/// Reads a PKCS#8 PEM private key.
///
/// # Errors
/// [`Error::Key`] naming the file when it cannot be read or is not an Ed25519 private key.
pub fn load_private(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Key(format!("{}: {e}", path.display())))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        Error::Key(format!(
            "{}: not an Ed25519 PKCS#8 PEM private key ({e})",
            path.display()
        ))
    })
}

/// Reads an SPKI PEM public key.
///
/// # Errors
/// [`Error::Key`] naming the file when it cannot be read or is not an Ed25519 public key.
pub fn load_public(path: &Path) -> Result<VerifyingKey> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Key(format!("{}: {e}", path.display())))?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| {
        Error::Key(format!(
            "{}: not an Ed25519 public key in PEM ({e})",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let dir = std::env::temp_dir().join(format!("socle-seal-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key = generate();
        let (sk, pk) = (dir.join("seal.key"), dir.join("seal.pub"));
        std::fs::write(&sk, private_pem(&key).expect("pem")).expect("write");
        std::fs::write(&pk, public_pem(&key.verifying_key()).expect("pem")).expect("write");
        assert_eq!(load_private(&sk).expect("load").to_bytes(), key.to_bytes());
        assert_eq!(load_public(&pk).expect("load"), key.verifying_key());
        let e = load_public(&sk).expect_err("a private key is not a public key");
        assert!(e.to_string().contains("seal.key"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
