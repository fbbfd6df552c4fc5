//! Finds the runtime referential (the repository's `reference/`, or `$SOCLE__REFERENCE__DIR`)
//! and the conformance material that is not part of it: the copies in the repository's
//! `tests/conformance/` (or `$SOCLE_SHARED_DATA`, a folder with the workplace's `shared/data`
//! layout), and the one set that is not vendored, read from `$SOCLE_SHARED_DATA` or the
//! workplace's `shared/data` beside the repository (see [`read_shared_json`]).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use socle_domain::reference::{ReferencePaths, Referential};

/// The conformance material vendored in the repository (`tests/conformance/`, same layout as
/// the workplace's `shared/data`), or `$SOCLE_SHARED_DATA` when set.
pub fn conformance_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SOCLE_SHARED_DATA") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

/// The workplace's shared data folder: `$SOCLE_SHARED_DATA`, or `shared/data` beside the
/// repository. Only for material that is not vendored in `tests/conformance/`.
pub fn shared_data() -> PathBuf {
    if let Some(dir) = std::env::var_os("SOCLE_SHARED_DATA") {
        return PathBuf::from(dir);
    }
    // crates/socle-domain → the repository → the folder that holds it.
    let beside = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("../../.."), Path::to_path_buf);
    beside.join("shared/data")
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

/// A JSON file of the vendored conformance material, by its path under [`conformance_dir`].
pub fn read_json(relative: &str) -> serde_json::Value {
    parse_json(&conformance_dir().join(relative))
}

/// A JSON file of conformance material that is *not* vendored in `tests/conformance/`, read from
/// [`shared_data`]; `why_not_vendored` goes into the failure message when it is missing.
pub fn read_shared_json(relative: &str, why_not_vendored: &str) -> serde_json::Value {
    let path = shared_data().join(relative);
    if !path.is_file() {
        let folder = path.parent().unwrap_or(&path);
        let from = if std::env::var_os("SOCLE_SHARED_DATA").is_some() {
            "SOCLE_SHARED_DATA".to_owned()
        } else {
            format!(
                "the workplace's shared data, {}, beside the repository (or set \
                 SOCLE_SHARED_DATA to a folder with the same layout)",
                shared_data().display()
            )
        };
        panic!(
            "{} is missing: this test reads {relative} from {from}. It is not vendored in \
             tests/conformance/: {why_not_vendored} (tests/conformance/README.md, \
             \"Not vendored\").",
            folder.display(),
        );
    }
    parse_json(&path)
}

fn parse_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// `fr-id-test-vectors/fr_ids.json`, the identifier test vectors: not vendored (its licence is
/// not settled), so read from the workplace's shared data.
pub fn fr_ids() -> serde_json::Value {
    read_shared_json(
        "fr-id-test-vectors/fr_ids.json",
        "its licence is not settled (shared/data/README.md gives \"facts (identifiers)\", and \
         the file's _provenance takes its values from the test suites of python-stdnum, \
         LGPL-2.1+, and gip-inclusion/les-emplois, AGPL-3.0)",
    )
}
