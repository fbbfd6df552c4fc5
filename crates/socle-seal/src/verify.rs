//! The verifier: given the entries of a sealed topic (read from Kafka or from an export file)
//! and the checkpoints of the seal topic, say exactly what differs from what was sealed.
//!
//! Checkpoints are trusted only if their Ed25519 signature verifies with the published public
//! key and their leaves chain to the signed hash. Entries are then matched to the sealed leaves
//! **by content** (the leaf is the hash of the exact key and value bytes), not by the offset they
//! claim, so renumbering offsets cannot hide a deletion: a sealed leaf nobody presents is a
//! deleted entry; a presented entry whose content was never sealed is an altered entry (its
//! offset was sealed with other bytes) or an inserted one; a sealed entry presented out of order
//! is a reordered entry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::chain::{key_id, leaf, Checkpoint, Hash, GENESIS};

/// One entry of a sealed topic, with its bytes exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Broker timestamp, milliseconds since the epoch (informative, not sealed).
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl Entry {
    pub fn leaf(&self) -> Hash {
        leaf(self.key.as_deref(), self.value.as_deref())
    }
}

/// Something the verifier found wrong. Offsets are the ones the seal recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    /// A sealed entry is missing.
    Deleted {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// The entry at this offset is not the one that was sealed there.
    Altered {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// An entry that was never sealed sits inside a sealed interval.
    Inserted {
        topic: String,
        partition: i32,
        /// The offset it claims.
        offset: i64,
    },
    /// A sealed entry comes out of its sealed order (or under another offset).
    Reordered {
        topic: String,
        partition: i32,
        /// Where the seal put it.
        sealed_offset: i64,
        /// The offset it claims now.
        found_at: i64,
        /// The sealed offset of the entry presented just before it.
        after: Option<i64>,
    },
    /// A checkpoint whose signature does not verify with the public key.
    BadSignature {
        topic: String,
        partition: i32,
        last_offset: i64,
        detail: String,
    },
    /// A checkpoint whose leaves do not chain to its signed hash.
    BadLeaves {
        topic: String,
        partition: i32,
        last_offset: i64,
    },
    /// Consecutive checkpoints do not chain: a checkpoint (and what it sealed) is missing.
    MissingCheckpoint {
        topic: String,
        partition: i32,
        /// Last offset of the checkpoint before the gap (none: the start of the partition).
        after: Option<i64>,
        /// First offset of the checkpoint after the gap.
        before: i64,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Deleted { topic, partition, offset } => {
                write!(f, "DELETED   {topic}/{partition}@{offset}: the sealed entry is missing")
            }
            Finding::Altered { topic, partition, offset } => write!(
                f,
                "ALTERED   {topic}/{partition}@{offset}: the bytes differ from the sealed entry"
            ),
            Finding::Inserted { topic, partition, offset } => write!(
                f,
                "INSERTED  {topic}/{partition}@{offset}: this entry was never sealed"
            ),
            Finding::Reordered { topic, partition, sealed_offset, found_at, after } => {
                write!(f, "REORDERED {topic}/{partition}: the entry sealed at {sealed_offset} is presented at {found_at}")?;
                match after {
                    Some(a) => write!(f, ", after the entry sealed at {a}"),
                    None => Ok(()),
                }
            }
            Finding::BadSignature { topic, partition, last_offset, detail } => write!(
                f,
                "BAD SIGNATURE {topic}/{partition} checkpoint at {last_offset}: {detail}"
            ),
            Finding::BadLeaves { topic, partition, last_offset } => write!(
                f,
                "BAD LEAVES {topic}/{partition} checkpoint at {last_offset}: its leaves do not chain to its signed hash"
            ),
            Finding::MissingCheckpoint { topic, partition, after, before } => match after {
                Some(a) => write!(
                    f,
                    "MISSING CHECKPOINT {topic}/{partition} between {a} and {before}: the chain is broken"
                ),
                None => write!(
                    f,
                    "MISSING CHECKPOINT {topic}/{partition} before {before}: the chain does not start at the beginning"
                ),
            },
        }
    }
}

/// What a verification covered and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Entries presented.
    pub entries: u64,
    /// Entries matched to a sealed leaf.
    pub verified: u64,
    /// Entries after the last checkpoint (awaiting the next one: not a finding).
    pub unsealed: u64,
    /// Checkpoints whose signature and leaves verify.
    pub checkpoints: u64,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Which part of each partition to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    /// Only checkpoints ending at or after this offset, and entries from it on.
    pub from: Option<i64>,
    /// Only checkpoints starting at or before this offset, and entries up to it.
    pub to: Option<i64>,
}

impl Range {
    fn keeps_checkpoint(&self, cp: &Checkpoint) -> bool {
        self.from.is_none_or(|f| cp.last_offset >= f)
            && self.to.is_none_or(|t| cp.first_offset <= t)
    }
}

/// One partition's entries (in the order presented) and checkpoints.
type PartitionInput<'a> = (Vec<&'a Entry>, Vec<&'a Checkpoint>);

/// Verifies `entries` (in the order presented) against `checkpoints` with `key`.
pub fn verify(
    entries: &[Entry],
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
    range: Range,
) -> Report {
    let mut report = Report::default();
    let mut by_partition: BTreeMap<(String, i32), PartitionInput<'_>> = BTreeMap::new();
    for e in entries {
        by_partition
            .entry((e.topic.clone(), e.partition))
            .or_default()
            .0
            .push(e);
    }
    for cp in checkpoints {
        if range.keeps_checkpoint(cp) {
            by_partition
                .entry((cp.topic.clone(), cp.partition))
                .or_default()
                .1
                .push(cp);
        }
    }
    let expected_key_id = key_id(key);
    for ((topic, partition), (entries, cps)) in by_partition {
        verify_partition(
            &topic,
            partition,
            &entries,
            cps,
            key,
            &expected_key_id,
            range,
            &mut report,
        );
    }
    report
}

#[allow(clippy::too_many_arguments)]
fn verify_partition(
    topic: &str,
    partition: i32,
    entries: &[&Entry],
    mut cps: Vec<&Checkpoint>,
    key: &VerifyingKey,
    expected_key_id: &str,
    range: Range,
    report: &mut Report,
) {
    // The seal topic may carry a checkpoint twice (republished after a crash): same head, once.
    cps.sort_by(|a, b| (a.last_offset, &a.hash).cmp(&(b.last_offset, &b.hash)));
    cps.dedup_by(|a, b| a == b);

    let mut trusted: Vec<&Checkpoint> = Vec::new();
    // Intervals whose checkpoint is not trusted: entries there are unverifiable, not "inserted".
    let mut untrusted: Vec<(i64, i64)> = Vec::new();
    for cp in cps {
        if !cp.signature_valid(key) {
            let detail = if cp.key_id != expected_key_id {
                format!(
                    "signed with key {} where the public key is {expected_key_id}",
                    cp.key_id
                )
            } else {
                "the signature does not verify with the public key".to_owned()
            };
            report.findings.push(Finding::BadSignature {
                topic: topic.to_owned(),
                partition,
                last_offset: cp.last_offset,
                detail,
            });
            untrusted.push((cp.first_offset, cp.last_offset));
        } else if !cp.leaves_consistent() {
            report.findings.push(Finding::BadLeaves {
                topic: topic.to_owned(),
                partition,
                last_offset: cp.last_offset,
            });
            untrusted.push((cp.first_offset, cp.last_offset));
        } else {
            trusted.push(cp);
        }
    }
    report.checkpoints += trusted.len() as u64;

    // The chain across checkpoints: each starts where the previous ended.
    let mut previous: Option<&Checkpoint> = None;
    for cp in &trusted {
        let broken = match previous {
            Some(p) => cp.prev_hash != p.hash || cp.chained != p.chained + cp.count,
            None => range.from.is_none() && (cp.prev_hash != GENESIS || cp.chained != cp.count),
        };
        if broken {
            report.findings.push(Finding::MissingCheckpoint {
                topic: topic.to_owned(),
                partition,
                after: previous.map(|p| p.last_offset),
                before: cp.first_offset,
            });
        }
        previous = Some(cp);
    }

    // What was sealed: offset -> leaf, and leaf -> offset.
    let mut sealed: BTreeMap<i64, Hash> = BTreeMap::new();
    for cp in &trusted {
        for (o, l) in cp.entries().unwrap_or_default() {
            sealed.insert(o, l);
        }
    }
    let by_leaf: HashMap<Hash, i64> = sealed.iter().map(|(o, l)| (*l, *o)).collect();
    let sealed_end = sealed.keys().next_back().copied();
    let in_untrusted = |o: i64| untrusted.iter().any(|(a, b)| *a <= o && o <= *b);

    let mut matched: HashSet<i64> = HashSet::new();
    // Entries whose content was never sealed, judged once every entry has been seen: one that
    // sits at a sealed offset nobody else presents is that entry altered; otherwise it is inserted.
    let mut unknown: Vec<i64> = Vec::new();
    let mut last_sealed: Option<i64> = None;
    for e in entries {
        if range.from.is_some_and(|f| e.offset < f) || range.to.is_some_and(|t| e.offset > t) {
            continue;
        }
        report.entries += 1;
        let l = e.leaf();
        if let Some(&sealed_offset) = by_leaf.get(&l) {
            if !matched.insert(sealed_offset) {
                // The same sealed entry presented twice: the second copy was inserted.
                report.findings.push(Finding::Inserted {
                    topic: topic.to_owned(),
                    partition,
                    offset: e.offset,
                });
                continue;
            }
            report.verified += 1;
            let out_of_order = last_sealed.is_some_and(|prev| sealed_offset < prev);
            if out_of_order || sealed_offset != e.offset {
                report.findings.push(Finding::Reordered {
                    topic: topic.to_owned(),
                    partition,
                    sealed_offset,
                    found_at: e.offset,
                    after: last_sealed,
                });
            }
            last_sealed = Some(last_sealed.map_or(sealed_offset, |p| p.max(sealed_offset)));
        } else if in_untrusted(e.offset) {
            // Covered by a checkpoint already reported as bad.
        } else if sealed_end.is_none_or(|end| e.offset > end) {
            report.unsealed += 1;
        } else {
            unknown.push(e.offset);
        }
    }
    let mut altered: HashSet<i64> = HashSet::new();
    for offset in unknown {
        let finding =
            if sealed.contains_key(&offset) && !matched.contains(&offset) && altered.insert(offset)
            {
                Finding::Altered {
                    topic: topic.to_owned(),
                    partition,
                    offset,
                }
            } else {
                Finding::Inserted {
                    topic: topic.to_owned(),
                    partition,
                    offset,
                }
            };
        report.findings.push(finding);
    }
    for o in sealed.keys() {
        if range.from.is_some_and(|f| *o < f) || range.to.is_some_and(|t| *o > t) {
            continue;
        }
        if !matched.contains(o) && !altered.contains(o) {
            report.findings.push(Finding::Deleted {
                topic: topic.to_owned(),
                partition,
                offset: *o,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn entry(offset: i64, body: &str) -> Entry {
        Entry {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp: None,
            key: Some(b"user".to_vec()),
            value: Some(body.as_bytes().to_vec()),
        }
    }

    fn sealed(n: i64, per_checkpoint: usize) -> (Vec<Entry>, Vec<Checkpoint>, SigningKey) {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let entries: Vec<Entry> = (0..n).map(|i| entry(i, &format!("event {i}"))).collect();
        let mut cps = Vec::new();
        let (mut prev, mut chained) = (GENESIS, 0);
        for chunk in entries.chunks(per_checkpoint) {
            let leaves: Vec<(i64, Hash)> = chunk.iter().map(|e| (e.offset, e.leaf())).collect();
            let cp = Checkpoint::seal("t", 0, prev, chained, &leaves, 1, &key).expect("cp");
            prev = cp.hash.as_slice().try_into().expect("32 bytes");
            chained = cp.chained;
            cps.push(cp);
        }
        (entries, cps, key)
    }

    fn run(entries: &[Entry], cps: &[Checkpoint], key: &SigningKey) -> Report {
        verify(entries, cps, &key.verifying_key(), Range::default())
    }

    #[test]
    fn an_untouched_trail_is_clean() {
        let (entries, cps, key) = sealed(25, 10);
        let r = run(&entries, &cps, &key);
        assert!(r.is_clean(), "{:?}", r.findings);
        assert_eq!((r.entries, r.verified, r.checkpoints), (25, 25, 3));
    }

    #[test]
    fn each_tampering_is_named_precisely() {
        let (entries, cps, key) = sealed(25, 10);
        let t = "t".to_owned();

        let mut deleted = entries.clone();
        deleted.remove(7);
        assert_eq!(
            run(&deleted, &cps, &key).findings,
            vec![Finding::Deleted {
                topic: t.clone(),
                partition: 0,
                offset: 7
            }]
        );

        let mut altered = entries.clone();
        altered[12].value = Some(b"event 12 but different".to_vec());
        assert_eq!(
            run(&altered, &cps, &key).findings,
            vec![Finding::Altered {
                topic: t.clone(),
                partition: 0,
                offset: 12
            }]
        );

        let mut inserted = entries.clone();
        inserted.insert(5, entry(5, "forged"));
        let f = run(&inserted, &cps, &key).findings;
        assert!(
            f.contains(&Finding::Inserted {
                topic: t.clone(),
                partition: 0,
                offset: 5
            }),
            "{f:?}"
        );

        let mut reordered = entries.clone();
        reordered.swap(3, 4);
        let f = run(&reordered, &cps, &key).findings;
        assert!(
            f.iter().any(|x| matches!(
                x,
                Finding::Reordered {
                    sealed_offset: 3,
                    ..
                }
            )),
            "{f:?}"
        );
        assert!(!f
            .iter()
            .any(|x| matches!(x, Finding::Deleted { .. } | Finding::Altered { .. })));

        let mut forged = cps.clone();
        forged[1].hash[0] ^= 1;
        let f = run(&entries, &forged, &key).findings;
        assert!(
            f.iter().any(|x| matches!(
                x,
                Finding::BadSignature {
                    last_offset: 19,
                    ..
                }
            )),
            "{f:?}"
        );

        let mut missing = cps.clone();
        missing.remove(1);
        let f = run(&entries, &missing, &key).findings;
        assert!(
            f.contains(&Finding::MissingCheckpoint {
                topic: t.clone(),
                partition: 0,
                after: Some(9),
                before: 20
            }),
            "{f:?}"
        );
    }

    #[test]
    fn renumbering_offsets_does_not_hide_a_deletion() {
        let (entries, cps, key) = sealed(10, 10);
        let mut renumbered: Vec<Entry> = entries.clone();
        renumbered.remove(4);
        for e in renumbered.iter_mut().skip(4) {
            e.offset -= 1;
        }
        let f = run(&renumbered, &cps, &key).findings;
        assert!(
            f.contains(&Finding::Deleted {
                topic: "t".into(),
                partition: 0,
                offset: 4
            }),
            "{f:?}"
        );
    }

    #[test]
    fn entries_after_the_last_checkpoint_are_unsealed_not_findings() {
        let (mut entries, cps, key) = sealed(10, 10);
        entries.push(entry(10, "new"));
        let r = run(&entries, &cps, &key);
        assert!(r.is_clean());
        assert_eq!(r.unsealed, 1);
    }
}
