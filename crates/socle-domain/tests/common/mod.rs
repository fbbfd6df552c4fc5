//! Finds the runtime referential (the repository's `reference/`, or `$SOCLE__REFERENCE__DIR`)
//! and the conformance material that is not part of it (`$SOCLE_SHARED_DATA`, or
//! `../../../shared/data` from this crate: the workplace's `shared/` beside the repository).

#![allow(dead_code)]

use std::path::PathBuf;

use socle_domain::reference::{ReferencePaths, Referential};

pub fn shared_data() -> PathBuf {
    if let Some(dir) = std::env::var_os("SOCLE_SHARED_DATA") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// The runtime referential's folder: what `reference.dir` points at by default.
pub fn reference_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SOCLE__REFERENCE__DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reference")
}

/// The referential as `socle ingest` loads it, from [`reference_dir`].
pub fn referential() -> Referential {
    let dir = reference_dir();
    Referential::load(&ReferencePaths::under(&dir))
        .unwrap_or_else(|e| panic!("loading the referential from {}: {e:?}", dir.display()))
}

pub fn read_json(relative: &str) -> serde_json::Value {
    let path = shared_data().join(relative);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
