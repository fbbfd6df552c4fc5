//! Every case of `fr-id-test-vectors/fr_ids.json`, with its expected verdict, and the
//! reference-backed checks against the real INSEE and ROME files. The vectors are read from the
//! workplace's shared data, not from the repository (why: tests/conformance/README.md).

mod common;

use serde_json::Value;
use socle_domain::validate::{self, FranceTravailId, InclusionList, Nir, Siren, Siret};

/// Runs `check` on every case of `group` and returns how many were checked; fails listing
/// every case whose verdict differs.
fn run_cases(group: &str, check: impl Fn(&str) -> Result<(), validate::ValidationError>) -> usize {
    let vectors = common::fr_ids();
    let cases = vectors[group]
        .as_array()
        .unwrap_or_else(|| panic!("group {group}"));
    let mut wrong = Vec::new();
    for case in cases {
        let (value, valid) = match case {
            Value::String(s) => (s.as_str(), true),
            Value::Object(o) => (
                o["value"].as_str().expect("value"),
                o["valid"].as_bool().expect("valid"),
            ),
            other => panic!("unexpected case {other}"),
        };
        let got = check(value);
        if got.is_ok() != valid {
            wrong.push(format!(
                "{value:?}: expected valid={valid}, got {got:?} ({case})"
            ));
        }
    }
    assert!(wrong.is_empty(), "{group}:\n{}", wrong.join("\n"));
    cases.len()
}

#[test]
fn siret_vectors() {
    let n = run_cases("siret_valid_online", |s| Siret::parse(s).map(drop));
    assert_eq!(n, 51);
    assert_eq!(run_cases("siret_cases", |s| Siret::parse(s).map(drop)), 14);
}

#[test]
fn siren_vectors() {
    assert_eq!(
        run_cases("siren_valid_online", |s| Siren::parse(s).map(drop)),
        13
    );
    assert_eq!(run_cases("siren_cases", |s| Siren::parse(s).map(drop)), 7);
}

#[test]
fn nir_vectors() {
    assert_eq!(run_cases("nir_cases", |s| Nir::parse(s).map(drop)), 18);
}

#[test]
fn france_travail_id_vectors() {
    assert_eq!(
        run_cases("france_travail_id_cases", |s| FranceTravailId::parse(s)
            .map(drop)),
        8
    );
}

#[test]
fn every_group_is_covered() {
    let vectors = common::fr_ids();
    let covered = [
        "siret_valid_online",
        "siren_valid_online",
        "siret_cases",
        "siren_cases",
        "nir_cases",
        "france_travail_id_cases",
    ];
    for key in vectors.as_object().expect("object").keys() {
        assert!(
            key.starts_with('_') || covered.contains(&key.as_str()),
            "group {key} of fr_ids.json is not tested"
        );
    }
}

#[test]
fn vector_reasons_are_precise() {
    let code = |r: Result<(), validate::ValidationError>| r.err().map(|e| e.code());
    assert_eq!(
        code(Siret::parse("73282932000079").map(drop)),
        Some("siret.bad_checksum")
    );
    assert_eq!(
        code(Siret::parse("35600000049838").map(drop)),
        Some("siret.la_poste_checksum")
    );
    assert_eq!(
        code(Siret::parse("azertyqwerty").map(drop)),
        Some("siret.characters")
    );
    assert_eq!(
        code(Siret::parse("120000153000111").map(drop)),
        Some("siret.length")
    );
    assert_eq!(
        code(Siren::parse("1200001531").map(drop)),
        Some("siren.length")
    );
    assert_eq!(
        code(Nir::parse("295109912611199").map(drop)),
        Some("nir.bad_key")
    );
    assert_eq!(
        code(Nir::parse("253072C07300443").map(drop)),
        Some("nir.departement")
    );
    assert_eq!(
        code(Nir::parse("6546546546546703").map(drop)),
        Some("nir.length")
    );
    assert_eq!(
        code(Nir::parse("941208078200575").map(drop)),
        Some("nir.sex")
    );
    assert_eq!(
        code(Nir::parse("269054958815780").map(drop)),
        Some("nir.specimen")
    );
    assert_eq!(
        code(FranceTravailId::parse("A2345678").map(drop)),
        Some("france_travail_id.format")
    );
}

#[test]
fn territories_against_the_cog() {
    let r = common::referential();
    assert_eq!(
        validate::commune("75056", &r).map(|c| c.name.as_str()),
        Ok("Paris")
    );
    assert_eq!(
        validate::commune("2a004", &r).map(|c| c.name.as_str()),
        Ok("Ajaccio")
    );
    assert_eq!(
        validate::commune("97411", &r).map(|c| c.departement.as_str()),
        Ok("974")
    );
    assert_eq!(
        validate::commune("75000", &r).map_err(|e| e.code()),
        Err("cog.commune.unknown")
    );
    assert_eq!(
        validate::commune("750", &r).map_err(|e| e.code()),
        Err("cog.commune.format")
    );
    assert_eq!(
        validate::departement("2B", &r).map(|d| d.region.as_str()),
        Ok("94")
    );
    assert_eq!(
        validate::departement("976", &r).map(|d| d.name.as_str()),
        Ok("Mayotte")
    );
    // 20 (Corsica before 1976) and 975 (Saint-Pierre-et-Miquelon, a collectivité) are not
    // départements of the COG.
    assert_eq!(
        validate::departement("20", &r).map_err(|e| e.code()),
        Err("cog.departement.unknown")
    );
    assert_eq!(
        validate::departement("975", &r).map_err(|e| e.code()),
        Err("cog.departement.unknown")
    );
    assert!(validate::commune_in_departement("59350", "59", &r).is_ok());
    assert_eq!(
        validate::commune_in_departement("59350", "62", &r).map_err(|e| e.code()),
        Err("cog.commune.not_in_departement")
    );
}

#[test]
fn rome_against_the_referential() {
    let r = common::referential();
    assert_eq!(
        validate::rome("A1101", &r).map(|j| j.label.as_str()),
        Ok("Conducteur / Conductrice d'engins agricoles")
    );
    assert!(validate::rome("M1805", &r).is_ok());
    assert_eq!(
        validate::rome("N9999", &r).map_err(|e| e.code()),
        Err("rome.unknown")
    );
    assert_eq!(
        validate::rome("Z1101", &r).map_err(|e| e.code()),
        Err("rome.format")
    );
}

#[test]
fn inclusion_values() {
    let r = common::referential();
    assert!(validate::inclusion_value(InclusionList::Frais, "gratuit", &r).is_ok());
    assert_eq!(
        validate::inclusion_value(InclusionList::Frais, "Gratuit", &r).map_err(|e| e.code()),
        Err("inclusion.frais.unknown")
    );
    assert_eq!(
        validate::inclusion_value(InclusionList::Thematique, "peche-a-la-ligne", &r)
            .map_err(|e| e.code()),
        Err("inclusion.thematique.unknown")
    );
}

#[test]
fn synthetic_nirs_with_cog_birth_places_validate() {
    // The demo dataset builds NIRs from real COG communes: make sure every département's
    // shape round-trips through the NIR rules (Corsica included).
    let r = common::referential();
    let mut checked = 0;
    for d in r.cog.departements() {
        if d.code.len() != 2 {
            continue; // overseas: the 3rd digit belongs to the commune part of the NIR
        }
        let dep_for_key = match d.code.as_str() {
            "2A" => "19",
            "2B" => "18",
            other => other,
        };
        let body = format!("18503{}123456", d.code);
        let numeric: u64 = format!("18503{dep_for_key}123456").parse().expect("digits");
        let nir = format!("{body}{:02}", 97 - numeric % 97);
        assert!(Nir::parse(&nir).is_ok(), "{nir}");
        checked += 1;
    }
    assert_eq!(checked, 96);
}

#[test]
fn every_reason_code_is_documented() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md");
    let doc = std::fs::read_to_string(&path).expect("docs/events.md");
    for code in validate::CODES {
        let documented = doc.contains(&format!("`{code}`"))
            || code
                .strip_prefix("inclusion.")
                .and_then(|c| c.strip_suffix(".unknown"))
                .is_some_and(|list| {
                    doc.contains("`inclusion.<list>.unknown`") && doc.contains(list)
                });
        assert!(documented, "{code} is not in docs/events.md");
    }
}
