//! Finds the shared reference data: `$SOCLE_SHARED_DATA`, or `../../../shared/data` from
//! this crate (the layout of the workplace: `shared/` beside the repository).

#![allow(dead_code)]

use std::path::PathBuf;

use socle_domain::reference::{ReferencePaths, Referential};

pub fn shared_data() -> PathBuf {
    if let Some(dir) = std::env::var_os("SOCLE_SHARED_DATA") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

pub fn referential() -> Referential {
    let dir = shared_data();
    Referential::load(&ReferencePaths::under(&dir))
        .unwrap_or_else(|e| panic!("loading the referential from {}: {e:?}", dir.display()))
}

pub fn read_json(relative: &str) -> serde_json::Value {
    let path = shared_data().join(relative);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
