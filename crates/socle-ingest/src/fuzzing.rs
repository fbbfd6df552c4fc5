//! Entry points for `cargo fuzz` (`fuzz/fuzz_targets/`), shared with the regression tests that
//! replay every input the fuzzer ever found crashing (`fuzz/regressions/<target>/`), so that a
//! fixed crash stays fixed.
//!
//! Each takes arbitrary bytes and must return without panicking, whatever they hold; the
//! invariants it checks panic on purpose (that is how the fuzzer reports them).

use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use socle_domain::reference::{ReferencePaths, Referential};

use crate::contracts;
use crate::decode;
use crate::rules::{self, Context};

/// The runtime referential, from `SOCLE__REFERENCE__DIR` or the repository's `reference/`;
/// `None` if it cannot be loaded (the rules are then not exercised).
static REFERENTIAL: LazyLock<Option<Referential>> = LazyLock::new(|| {
    let dir = std::env::var_os("SOCLE__REFERENCE__DIR").map_or_else(
        || std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../reference")),
        std::path::PathBuf::from,
    );
    Referential::load(&ReferencePaths::under(&dir)).ok()
});

/// The frame check: any bytes, with or without a schema-id header.
pub fn frame(data: &[u8]) {
    let (headers, payload): (&[&str], &[u8]) = match data.split_first() {
        Some((h, rest)) if h % 7 == 0 => (&["__value_schema_id"], rest),
        Some((_, rest)) => (&[], rest),
        None => (&[], data),
    };
    if let Ok(frame) = decode::frame(Some(payload), headers) {
        assert!(headers.is_empty(), "a header-borne id was accepted");
        assert_eq!(payload.len(), frame.body.len() + 5);
        assert_eq!(&payload[5..], frame.body);
    }
}

/// Decoding an ingress body written with its own contract, then the business rules: the first
/// byte picks the contract, the rest is the Avro body.
pub fn ingress(data: &[u8]) {
    decode::limit_allocations();
    let Some((pick, body)) = data.split_first() else {
        return;
    };
    let all = contracts::ingress();
    let reader = all[usize::from(*pick) % all.len()];
    if let Ok(message) = decode::body(&reader.schema, reader, true, body) {
        // What decodes re-encodes, and decodes again to the same message (the bytes may differ:
        // Avro accepts over-long varints).
        let again = decode::encode_body(&message).expect("a decoded message re-encodes");
        let back = decode::body(&reader.schema, reader, true, &again).expect("re-encoded decodes");
        assert_eq!(back, message, "{}: decode/encode round trip", reader.name);
        check(&message);
    }
}

/// Decoding with a writer schema other than the reader (schema resolution): the first byte
/// picks the writer among the canonical person contracts and the ingress ones, the second the
/// ingress reader.
pub fn resolve(data: &[u8]) {
    decode::limit_allocations();
    let [w, r, body @ ..] = data else { return };
    let writers: Vec<_> = contracts::canonical()
        .into_iter()
        .chain(contracts::ingress())
        .collect();
    let writer = writers[usize::from(*w) % writers.len()];
    let readers = contracts::ingress();
    let reader = readers[usize::from(*r) % readers.len()];
    let same = writer.name == reader.name;
    if let Ok(message) = decode::body(&writer.schema, reader, same, body) {
        check(&message);
    }
}

fn check(message: &crate::ingress::Ingress) {
    let Some(referential) = REFERENTIAL.as_ref() else {
        return;
    };
    let now = Utc
        .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    for operator in socle_domain::person::OPERATORS {
        let ctx = Context {
            referential,
            operator,
            now,
        };
        let key = message.submission().operator_person_ref.clone();
        let _ = rules::check(message, Some(key.as_bytes()), &ctx);
    }
}
