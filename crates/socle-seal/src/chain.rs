//! The hash chain and its signed tree heads, as pure functions.
//!
//! A leaf is SHA-256 over an entry's key and value **exactly as stored** in Kafka (ciphertext of
//! sealed personal fields included), so erasing a person's key never changes a leaf. The chain
//! binds each leaf to its offset and to everything before it in the partition:
//!
//! ```text
//! leaf   = SHA-256("socle-leaf-v1" || len(key) || key || len(value) || value)   (len: i64 BE, -1 = null)
//! h(0)   = 32 zero bytes
//! h(i)   = SHA-256("socle-chain-v1" || h(i-1) || offset_i (i64 BE) || leaf_i)
//! ```
//!
//! A checkpoint signs the tree head (topic, partition, interval, counts, hashes, time) with
//! Ed25519; its leaves travel with it so a verifier can name the exact entry that differs.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The chain hash before the first entry of a partition.
pub const GENESIS: Hash = [0u8; 32];

/// The leaf of one entry: its key and value bytes as stored.
pub fn leaf(key: Option<&[u8]>, value: Option<&[u8]>) -> Hash {
    let mut h = Sha256::new();
    h.update(b"socle-leaf-v1");
    for part in [key, value] {
        match part {
            Some(bytes) => {
                h.update((bytes.len() as i64).to_be_bytes());
                h.update(bytes);
            }
            None => h.update((-1i64).to_be_bytes()),
        }
    }
    h.finalize().into()
}

/// The chain hash after appending the entry at `offset` with `leaf` to `prev`.
pub fn link(prev: &Hash, offset: i64, leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(b"socle-chain-v1");
    h.update(prev);
    h.update(offset.to_be_bytes());
    h.update(leaf);
    h.finalize().into()
}

/// A signed tree head over one interval of one partition (`schemas/trail/Checkpoint.avsc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub count: i64,
    pub chained: i64,
    #[serde(with = "serde_bytes")]
    pub prev_hash: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
    pub sealed_at: i64,
    pub offsets: Vec<i64>,
    #[serde(with = "serde_bytes")]
    pub leaves: Vec<u8>,
    pub key_id: String,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// Builds and signs the checkpoint of `entries` (offset, leaf), chained after `prev`.
    /// `chained_before` is the number of entries chained in the partition before this interval.
    /// Returns `None` for an empty interval.
    pub fn seal(
        topic: &str,
        partition: i32,
        prev: Hash,
        chained_before: i64,
        entries: &[(i64, Hash)],
        sealed_at: i64,
        key: &SigningKey,
    ) -> Option<Checkpoint> {
        let (first, _) = entries.first()?;
        let (last, _) = entries.last()?;
        let mut hash = prev;
        let mut leaves = Vec::with_capacity(entries.len() * 32);
        for (offset, l) in entries {
            hash = link(&hash, *offset, l);
            leaves.extend_from_slice(l);
        }
        let mut cp = Checkpoint {
            topic: topic.to_owned(),
            partition,
            first_offset: *first,
            last_offset: *last,
            count: entries.len() as i64,
            chained: chained_before + entries.len() as i64,
            prev_hash: prev.to_vec(),
            hash: hash.to_vec(),
            sealed_at,
            offsets: entries.iter().map(|(o, _)| *o).collect(),
            leaves,
            key_id: key_id(&key.verifying_key()),
            signature: Vec::new(),
        };
        cp.signature = key.sign(&cp.tree_head()).to_bytes().to_vec();
        Some(cp)
    }

    /// The exact bytes signed: everything but the leaves and offsets, which the hash binds.
    pub fn tree_head(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(160 + self.topic.len());
        b.extend_from_slice(b"socle-checkpoint-v1");
        b.extend_from_slice(&(self.topic.len() as u32).to_be_bytes());
        b.extend_from_slice(self.topic.as_bytes());
        b.extend_from_slice(&self.partition.to_be_bytes());
        b.extend_from_slice(&self.first_offset.to_be_bytes());
        b.extend_from_slice(&self.last_offset.to_be_bytes());
        b.extend_from_slice(&self.count.to_be_bytes());
        b.extend_from_slice(&self.chained.to_be_bytes());
        b.extend_from_slice(&(self.prev_hash.len() as u32).to_be_bytes());
        b.extend_from_slice(&self.prev_hash);
        b.extend_from_slice(&(self.hash.len() as u32).to_be_bytes());
        b.extend_from_slice(&self.hash);
        b.extend_from_slice(&self.sealed_at.to_be_bytes());
        b.extend_from_slice(self.key_id.as_bytes());
        b
    }

    /// Whether the signature is valid for `key`.
    pub fn signature_valid(&self, key: &VerifyingKey) -> bool {
        let Ok(sig) = Signature::from_slice(&self.signature) else {
            return false;
        };
        key.verify(&self.tree_head(), &sig).is_ok()
    }

    /// The (offset, leaf) pairs the checkpoint seals, or `None` if they are malformed
    /// (leaves not a multiple of 32 bytes, or not one per offset).
    pub fn entries(&self) -> Option<Vec<(i64, Hash)>> {
        if self.leaves.len() % 32 != 0 || self.leaves.len() / 32 != self.offsets.len() {
            return None;
        }
        Some(
            self.offsets
                .iter()
                .zip(self.leaves.chunks_exact(32))
                .map(|(o, l)| {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(l);
                    (*o, h)
                })
                .collect(),
        )
    }

    /// The same entries as consecutive checkpoints of at most `max_entries` each, re-signed
    /// with `key` (same `sealed_at`): they chain from this checkpoint's `prev_hash` to its
    /// `hash`, so the partition's chain head is unchanged. `None` if `max_entries` is 0 or the
    /// checkpoint's leaves are inconsistent (nothing trustworthy to split).
    pub fn split(&self, max_entries: usize, key: &SigningKey) -> Option<Vec<Checkpoint>> {
        if max_entries == 0 || !self.leaves_consistent() {
            return None;
        }
        let entries = self.entries()?;
        let mut prev = <Hash>::try_from(self.prev_hash.as_slice()).ok()?;
        let mut chained = self.chained - self.count;
        let mut pieces = Vec::with_capacity(entries.len().div_ceil(max_entries));
        for chunk in entries.chunks(max_entries) {
            let cp = Checkpoint::seal(
                &self.topic,
                self.partition,
                prev,
                chained,
                chunk,
                self.sealed_at,
                key,
            )?;
            prev = <Hash>::try_from(cp.hash.as_slice()).ok()?;
            chained = cp.chained;
            pieces.push(cp);
        }
        let last = pieces.last()?;
        (last.hash == self.hash && last.chained == self.chained).then_some(pieces)
    }

    /// Whether the leaves chain from `prev_hash` to `hash` and agree with the counts.
    pub fn leaves_consistent(&self) -> bool {
        let Some(entries) = self.entries() else {
            return false;
        };
        let Ok(prev) = <Hash>::try_from(self.prev_hash.as_slice()) else {
            return false;
        };
        if entries.len() as i64 != self.count
            || entries.first().map(|e| e.0) != Some(self.first_offset)
            || entries.last().map(|e| e.0) != Some(self.last_offset)
        {
            return false;
        }
        let hash = entries.iter().fold(prev, |h, (o, l)| link(&h, *o, l));
        hash.as_slice() == self.hash.as_slice()
    }
}

/// First 8 bytes of SHA-256 of the public key, hex: names the key a checkpoint was signed with.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn a_sealed_checkpoint_verifies_and_any_change_breaks_it() {
        let entries: Vec<(i64, Hash)> = (0..5)
            .map(|i| (i, leaf(Some(b"user"), Some(&[i as u8; 10]))))
            .collect();
        let cp = Checkpoint::seal("t", 0, GENESIS, 0, &entries, 1, &key()).expect("non-empty");
        assert!(cp.signature_valid(&key().verifying_key()));
        assert!(cp.leaves_consistent());
        let mut forged = cp.clone();
        forged.last_offset = 9;
        assert!(!forged.signature_valid(&key().verifying_key()));
        let mut swapped = cp.clone();
        swapped.leaves.swap(0, 32);
        assert!(!swapped.leaves_consistent());
        let other = SigningKey::from_bytes(&[8u8; 32]);
        assert!(!cp.signature_valid(&other.verifying_key()));
    }

    #[test]
    fn a_split_checkpoint_chains_to_the_same_head_in_bounded_pieces() {
        let entries: Vec<(i64, Hash)> = (10..35)
            .map(|i| (i, leaf(Some(b"user"), Some(&[i as u8; 10]))))
            .collect();
        let prev = link(&GENESIS, 3, &leaf(None, None));
        let cp = Checkpoint::seal("t", 2, prev, 7, &entries, 99, &key()).expect("non-empty");
        let pieces = cp.split(10, &key()).expect("split");
        assert_eq!(
            pieces.iter().map(|p| p.count).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        assert_eq!(pieces[0].prev_hash, cp.prev_hash);
        for w in pieces.windows(2) {
            assert_eq!(w[0].hash, w[1].prev_hash);
            assert_eq!(w[0].last_offset + 1, w[1].first_offset);
        }
        let last = pieces.last().expect("pieces");
        assert_eq!(
            (&last.hash, last.chained, last.last_offset),
            (&cp.hash, cp.chained, 34)
        );
        assert_eq!(pieces[0].chained, 17);
        for p in &pieces {
            assert!(p.signature_valid(&key().verifying_key()) && p.leaves_consistent());
            assert_eq!(p.sealed_at, 99);
        }
        assert!(cp.split(0, &key()).is_none());
        let mut bad = cp.clone();
        bad.leaves.swap(0, 40);
        assert!(
            bad.split(10, &key()).is_none(),
            "inconsistent leaves are not re-signed"
        );
    }

    #[test]
    fn leaves_distinguish_null_from_empty() {
        assert_ne!(leaf(None, Some(b"x")), leaf(Some(b""), Some(b"x")));
        assert_ne!(leaf(Some(b"ab"), Some(b"c")), leaf(Some(b"a"), Some(b"bc")));
    }
}
