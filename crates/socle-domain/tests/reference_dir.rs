//! The repository's `reference/` folder on its own (no `shared/data` needed): it loads, it holds
//! exactly the files `SHA256SUMS` lists (each named in its README), and their bytes match.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use socle_domain::reference::{ReferencePaths, Referential};

/// The folder itself, not `$SOCLE__REFERENCE__DIR`: this checks what the repository ships.
fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reference")
}

/// The folder's own files: documentation and tooling, not reference data.
const OWN: [&str; 3] = ["README.md", "SHA256SUMS", "update.sh"];

fn files_under(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("readable folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            out.insert(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn listed() -> BTreeSet<String> {
    let sums = std::fs::read_to_string(folder().join("SHA256SUMS")).expect("SHA256SUMS");
    sums.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (hash, path) = l.split_once("  ").expect("`<sha256>  <path>` lines");
            assert_eq!(hash.len(), 64, "{l}");
            path.to_owned()
        })
        .collect()
}

#[test]
fn the_repository_referential_loads() {
    let r = Referential::load(&ReferencePaths::under(&folder())).expect("reference/ loads");
    assert!(r.commune("75056").is_some());
    assert!(r.rome("A1101").is_some());
    assert!(r.is_thematique("mobilite--acceder-a-un-vehicule"));
    assert!(r.mission_locale("11206S00").is_some());
    assert!(folder()
        .join("data-inclusion-api/sample_responses_from_snapshot.json")
        .is_file());
}

#[test]
fn the_folder_holds_exactly_the_listed_files_each_documented() {
    let root = folder();
    let mut present = BTreeSet::new();
    files_under(&root, &root, &mut present);
    for own in OWN {
        assert!(present.remove(own), "reference/{own} is missing");
    }
    assert_eq!(
        present,
        listed(),
        "reference/ and reference/SHA256SUMS disagree: run reference/update.sh"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    for file in &present {
        assert!(
            readme.contains(&format!("`{file}`")),
            "reference/README.md does not list {file}"
        );
    }
}

#[test]
fn the_files_match_their_checksums() {
    // `sha256sum` (coreutils) rather than a hashing dependency for one test.
    let Ok(out) = std::process::Command::new("sha256sum")
        .args(["--check", "--quiet", "--strict", "SHA256SUMS"])
        .current_dir(folder())
        .output()
    else {
        eprintln!("sha256sum not found: checksums not verified");
        return;
    };
    assert!(
        out.status.success(),
        "reference/ differs from SHA256SUMS: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_runtime_layout_is_the_loaders() {
    // `reference.dir` points at this layout; the tests' helper finds the same folder by default.
    let paths = ReferencePaths::under(&folder());
    for dir in [
        &paths.insee_cog,
        &paths.rome,
        &paths.data_inclusion_extra,
        &paths.pass_emploi,
    ] {
        assert!(dir.is_dir(), "{}", dir.display());
    }
    if std::env::var_os("SOCLE__REFERENCE__DIR").is_none() {
        assert_eq!(
            common::reference_dir().canonicalize().expect("exists"),
            folder().canonicalize().expect("exists")
        );
    }
}
