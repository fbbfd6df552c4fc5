//! The export file: a sealed topic's entries and their checkpoints, one JSON document per line,
//! so an auditor can verify offline, with nothing but the file and the public key.
//!
//! ```text
//! {"kind":"entry","topic":"socle.access","partition":0,"offset":0,"timestamp":1764380000000,"key":"<base64>","value":"<base64>"}
//! {"kind":"checkpoint","topic":"socle.access","partition":0,"first_offset":0,"last_offset":999,...,"signature":"<hex>"}
//! ```
//! Bytes are base64 (standard alphabet), hashes and signatures hex. Lines keep the order in
//! which entries were read; the verifier judges that order.

use std::io::{BufRead, Write};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::chain::Checkpoint;
use crate::verify::Entry;
use crate::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Entry {
        topic: String,
        partition: i32,
        offset: i64,
        timestamp: Option<i64>,
        key: Option<String>,
        value: Option<String>,
    },
    Checkpoint {
        topic: String,
        partition: i32,
        first_offset: i64,
        last_offset: i64,
        count: i64,
        chained: i64,
        prev_hash: String,
        hash: String,
        sealed_at: i64,
        offsets: Vec<i64>,
        leaves: String,
        key_id: String,
        signature: String,
    },
}

/// Writes `entries` then `checkpoints` to `out`.
///
/// # Errors
/// [`Error::Export`] when writing fails.
pub fn write(out: &mut impl Write, entries: &[Entry], checkpoints: &[Checkpoint]) -> Result<()> {
    let io = |e: std::io::Error| Error::Export(format!("writing: {e}"));
    for e in entries {
        let line = Line::Entry {
            topic: e.topic.clone(),
            partition: e.partition,
            offset: e.offset,
            timestamp: e.timestamp,
            key: e.key.as_ref().map(|k| B64.encode(k)),
            value: e.value.as_ref().map(|v| B64.encode(v)),
        };
        serde_json::to_writer(&mut *out, &line).map_err(|e| Error::Export(e.to_string()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    for c in checkpoints {
        let line = Line::Checkpoint {
            topic: c.topic.clone(),
            partition: c.partition,
            first_offset: c.first_offset,
            last_offset: c.last_offset,
            count: c.count,
            chained: c.chained,
            prev_hash: hex::encode(&c.prev_hash),
            hash: hex::encode(&c.hash),
            sealed_at: c.sealed_at,
            offsets: c.offsets.clone(),
            leaves: hex::encode(&c.leaves),
            key_id: c.key_id.clone(),
            signature: hex::encode(&c.signature),
        };
        serde_json::to_writer(&mut *out, &line).map_err(|e| Error::Export(e.to_string()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Reads an export file.
///
/// # Errors
/// [`Error::Export`] naming the line that is not a valid entry or checkpoint.
pub fn read(input: impl BufRead) -> Result<(Vec<Entry>, Vec<Checkpoint>)> {
    let (mut entries, mut checkpoints) = (Vec::new(), Vec::new());
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| Error::Export(format!("line {n}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad =
            |what: &str, e: &dyn std::fmt::Display| Error::Export(format!("line {n}: {what}: {e}"));
        let parsed: Line =
            serde_json::from_str(&line).map_err(|e| bad("not an entry or checkpoint", &e))?;
        match parsed {
            Line::Entry {
                topic,
                partition,
                offset,
                timestamp,
                key,
                value,
            } => {
                let decode = |s: Option<String>, what: &str| {
                    s.map(|s| B64.decode(s).map_err(|e| bad(what, &e)))
                        .transpose()
                };
                entries.push(Entry {
                    topic,
                    partition,
                    offset,
                    timestamp,
                    key: decode(key, "key is not base64")?,
                    value: decode(value, "value is not base64")?,
                });
            }
            Line::Checkpoint {
                topic,
                partition,
                first_offset,
                last_offset,
                count,
                chained,
                prev_hash,
                hash,
                sealed_at,
                offsets,
                leaves,
                key_id,
                signature,
            } => {
                let unhex = |s: &str, what: &str| hex::decode(s).map_err(|e| bad(what, &e));
                checkpoints.push(Checkpoint {
                    topic,
                    partition,
                    first_offset,
                    last_offset,
                    count,
                    chained,
                    prev_hash: unhex(&prev_hash, "prev_hash is not hex")?,
                    hash: unhex(&hash, "hash is not hex")?,
                    sealed_at,
                    offsets,
                    leaves: unhex(&leaves, "leaves are not hex")?,
                    key_id,
                    signature: unhex(&signature, "signature is not hex")?,
                });
            }
        }
    }
    Ok((entries, checkpoints))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_lines_are_named() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
        let e = Entry {
            topic: "t".into(),
            partition: 2,
            offset: 5,
            timestamp: Some(1),
            key: None,
            value: Some(vec![0, 1, 2]),
        };
        let cp = Checkpoint::seal("t", 2, crate::chain::GENESIS, 0, &[(5, e.leaf())], 9, &key)
            .expect("cp");
        let mut buf = Vec::new();
        write(
            &mut buf,
            std::slice::from_ref(&e),
            std::slice::from_ref(&cp),
        )
        .expect("write");
        let (es, cps) = read(buf.as_slice()).expect("read");
        assert_eq!((es, cps), (vec![e], vec![cp]));
        let err = read("\n{\"kind\":\"entry\"}\n".as_bytes()).expect_err("incomplete line");
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
