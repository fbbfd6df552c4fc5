//! The reference loaders against the runtime referential (`reference/`), checked against the
//! upstream material vendored in `tests/conformance/` (JSON Schemas, the COG sample).

mod common;

use socle_domain::reference::{
    region_of_departement, AgencyNetwork, CommuneKind, InclusionLists, ReferencePaths, Referential,
};
use socle_domain::validate::InclusionList;

#[test]
fn cog_counts_and_quirks() {
    let r = common::referential();
    assert_eq!(r.cog.regions().count(), 18);
    assert_eq!(r.cog.departements().count(), 101);
    // 37,563 rows, 570 of them communes déléguées repeating their commune nouvelle's code.
    assert_eq!(r.cog.communes().count(), 36_993);
    let arrondissements = r
        .cog
        .communes()
        .filter(|c| c.kind == CommuneKind::ArrondissementMunicipal)
        .count();
    assert_eq!(arrondissements, 20 + 9 + 16);
    let arboys = r.commune("01015").expect("01015");
    assert_eq!(arboys.name, "Arboys en Bugey");
    assert_eq!(arboys.other_names, ["Arbignieu"]);
    assert_eq!(
        r.commune("75101").map(|c| c.kind),
        Some(CommuneKind::ArrondissementMunicipal)
    );
    assert_eq!(
        r.commune("75056").map(|c| c.kind),
        Some(CommuneKind::Commune)
    );
    // Régions come without their leading zero in the file.
    assert_eq!(r.region("1").map(|g| g.name.as_str()), Some("Guadeloupe"));
    assert_eq!(r.region("01").map(|g| g.code.as_str()), Some("01"));
    assert_eq!(r.region("94").map(|g| g.name.as_str()), Some("Corse"));
}

#[test]
fn every_departement_has_its_region_and_every_region_departements() {
    let r = common::referential();
    for d in r.cog.departements() {
        assert_eq!(Some(d.region.as_str()), region_of_departement(&d.code));
        assert!(r.region(&d.region).is_some(), "{}", d.code);
    }
    for g in r.cog.regions() {
        assert!(
            r.cog.departements().any(|d| d.region == g.code),
            "région {} has no département",
            g.code
        );
    }
    // Every commune's département exists (checked by the loader; asserted here as a fact).
    assert!(r
        .cog
        .communes()
        .all(|c| r.departement(&c.departement).is_some()));
}

#[test]
fn sample_communes_agree_with_the_cog() {
    // communes_sample_with_epci_postcodes.json gives département and région per commune.
    let r = common::referential();
    let sample = common::read_json("insee-cog/communes_sample_with_epci_postcodes.json");
    let sample = sample.as_array().expect("array");
    assert!(!sample.is_empty());
    for c in sample {
        let code = format!("{:05}", c["code"].as_u64().expect("code"));
        let commune = r.commune(&code).unwrap_or_else(|| panic!("{code}"));
        // The sample shortens arrondissements' names ("Paris 11e" for "Paris 11e Arrondissement").
        let name = c["nom"].as_str().expect("nom");
        assert!(
            commune.name.starts_with(name),
            "{code}: {} vs {name}",
            commune.name
        );
        let dep = format!("{:02}", c["departement"].as_u64().expect("departement"));
        assert_eq!(commune.departement, dep);
        let reg = format!("{:02}", c["region"].as_u64().expect("region"));
        assert_eq!(
            r.departement(&dep).map(|d| d.region.as_str()),
            Some(reg.as_str())
        );
    }
}

#[test]
fn rome_referential() {
    let r = common::referential();
    assert_eq!(r.rome.len(), 1_584);
    let j = r.rome("A1201").expect("A1201");
    assert_eq!(j.label, "Bûcheron / Bûcheronne");
    assert_eq!(j.regulated, Some(false));
    assert!(!j.mobility.is_empty());
    assert_eq!(r.rome("A1102").map(|j| j.parent.as_str()), Some("A1101"));
    // Every parent and every mobility target is itself a code of the referential.
    for job in r.rome.jobs() {
        assert!(
            r.rome(&job.parent).is_some(),
            "{} parent {}",
            job.code,
            job.parent
        );
        for target in &job.mobility {
            assert!(r.rome(target).is_some(), "{} → {target}", job.code);
        }
    }
}

#[test]
fn inclusion_lists_match_the_v1_json_schemas() {
    // The lists in extra/ and the enums of structure.json / service.json must agree: the
    // loader reads the lists, this test proves they are the ones the schema enforces.
    let r = common::referential();
    let service = common::read_json("data-inclusion-schema/v1/service.json");
    let structure = common::read_json("data-inclusion-schema/v1/structure.json");
    let cases = [
        (InclusionList::Thematique, &service, "Thematique"),
        (InclusionList::Public, &service, "Public"),
        (InclusionList::Frais, &service, "Frais"),
        (InclusionList::ModeAccueil, &service, "ModeAccueil"),
        (
            InclusionList::ModeMobilisation,
            &service,
            "ModeMobilisation",
        ),
        (
            InclusionList::PersonneMobilisatrice,
            &service,
            "PersonneMobilisatrice",
        ),
        (InclusionList::TypeDeService, &service, "TypeService"),
        (InclusionList::ReseauPorteur, &structure, "ReseauPorteur"),
    ];
    for (list, schema, def) in cases {
        let mut expected: Vec<&str> = schema["$defs"][def]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("$defs.{def}"))
            .iter()
            .map(|v| v.as_str().expect("string"))
            .collect();
        let mut got: Vec<&str> = r
            .inclusion
            .list(list)
            .entries()
            .iter()
            .map(|e| e.value.as_str())
            .collect();
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected, "{}", list.as_str());
    }
    assert!(r.is_thematique("choisir-un-metier--confirmer-son-choix-de-metier"));
    assert!(r.is_public("jeunes"));
    assert!(r.is_frais("payant"));
    assert!(r.is_mode_accueil("a-distance"));
    assert!(r.is_mode_mobilisation("telephoner"));
    assert!(r.is_personne_mobilisatrice("usagers"));
    assert!(r.is_reseau_porteur("mission-locale"));
    assert!(r.is_type_de_service("accompagnement"));
    assert!(!r.is_reseau_porteur("Mission Locale"));
    assert_eq!(
        r.inclusion
            .list(InclusionList::Frais)
            .get("gratuit")
            .map(|e| e.label.as_str()),
        Some("Gratuit")
    );
}

#[test]
fn sample_service_and_structure_use_listed_values() {
    // The data·inclusion API's generated sample validates against v1: its values must be in
    // our lists.
    let r = common::referential();
    // The copy in reference/: what `socle reference load` publishes by default.
    let path =
        common::reference_dir().join("data-inclusion-api/sample_responses_from_snapshot.json");
    let sample: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("the sample is in reference/"))
            .expect("json");
    let mut seen = 0;
    let mut walk = vec![&sample];
    while let Some(v) = walk.pop() {
        match v {
            serde_json::Value::Object(o) => {
                for (k, v) in o {
                    let list = match k.as_str() {
                        "thematiques" => Some(InclusionList::Thematique),
                        "publics" => Some(InclusionList::Public),
                        "modes_accueil" => Some(InclusionList::ModeAccueil),
                        "modes_mobilisation" => Some(InclusionList::ModeMobilisation),
                        "mobilisable_par" => Some(InclusionList::PersonneMobilisatrice),
                        "reseaux_porteurs" => Some(InclusionList::ReseauPorteur),
                        _ => None,
                    };
                    if let (Some(list), Some(values)) = (list, v.as_array()) {
                        for value in values {
                            let value = value.as_str().expect("string");
                            assert!(r.is_in(list, value), "{k}: {value}");
                            seen += 1;
                        }
                    }
                    walk.push(v);
                }
            }
            serde_json::Value::Array(a) => walk.extend(a),
            _ => {}
        }
    }
    assert!(seen > 0, "the sample has no list values");
}

#[test]
fn organisations() {
    let r = common::referential();
    assert_eq!(r.organisations.france_travail_agencies().count(), 894);
    assert_eq!(r.organisations.mission_locale_agencies().count(), 459);
    assert_eq!(r.organisations.mission_locales().count(), 450);
    let a = r.france_travail_agency(457).expect("agency 457");
    assert_eq!(a.network, AgencyNetwork::FranceTravail);
    assert_eq!(a.departement, "63");
    assert_eq!(
        r.mission_locale_agency(2).map(|a| a.departement.as_str()),
        Some("07")
    );
    let ml = r.mission_locale("11206S00").expect("11206S00");
    assert_eq!(ml.departement.as_deref(), Some("11"));
    assert!(r.mission_locale("2A004S00").is_some());
    assert!(r.organisations.agencies_in_departement("63").count() >= 3);
    // Agencies' départements are COG départements, except the source's 20 (Corsica) and
    // 975 (Saint-Pierre-et-Miquelon).
    for a in r
        .organisations
        .france_travail_agencies()
        .chain(r.organisations.mission_locale_agencies())
    {
        assert!(
            r.departement(&a.departement).is_some()
                || a.departement == "20"
                || a.departement == "975",
            "{} {}",
            a.id,
            a.departement
        );
    }
}

#[test]
fn missing_files_are_reported_with_their_path() {
    let mut paths = ReferencePaths::under(&common::reference_dir());
    paths.rome = paths.rome.join("nowhere");
    let err = Referential::load(&paths).expect_err("must fail");
    assert!(err.to_string().contains("nowhere"), "{err}");
    let err = InclusionLists::load(std::path::Path::new("/nonexistent")).expect_err("must fail");
    assert!(err.to_string().contains("thematiques.json"), "{err}");
}
