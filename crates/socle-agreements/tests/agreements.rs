//! The agreements shipped in `deploy/agreements/` load, and mistakes are refused precisely.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::NaiveDate;
use socle_agreements::{Agreement, Agreements, Error, Field, PersonFacts};

fn shipped() -> Agreements {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/agreements");
    Agreements::load_dir(&dir).expect("the shipped agreements are valid")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

#[test]
fn shipped_agreements_load_with_the_expected_grants() {
    let all = shipped();
    let names: BTreeSet<&str> = all.all.iter().map(|a| a.ecosystem.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "cap-emploi",
            "departement-93",
            "france-travail",
            "missions-locales",
            "partenaires"
        ])
    );
    for a in &all.all {
        let health = a.granted_fields().iter().any(|f| f.is_health());
        assert_eq!(
            health,
            a.ecosystem == "cap-emploi",
            "only cap-emploi sees health fields"
        );
        assert!(a.version.starts_with("2026.1+"), "{}", a.version);
    }
    let partenaires = all.get("partenaires").expect("partenaires");
    assert!(!partenaires.granted_fields().contains(&Field::IdentityNir));
    assert_eq!(partenaires.schema(), "eco_partenaires");
    assert_eq!(
        all.get("cap-emploi").expect("ce").role(),
        "socle_eco_cap_emploi"
    );
}

#[test]
fn scope_rules_select_the_right_people() {
    let all = shipped();
    let ce = all.get("cap-emploi").expect("cap-emploi");
    let ml = all.get("missions-locales").expect("missions-locales");
    let d93 = all.get("departement-93").expect("departement-93");
    let ft = all.get("france-travail").expect("france-travail");
    let part = all.get("partenaires").expect("partenaires");

    // Registered with France Travail, followed by a Mission Locale, 19 years old, in the 75.
    let mut young = PersonFacts {
        registration_operator: Some("france-travail".into()),
        departement: Some("75".into()),
        birth_date: Some(date(2007, 3, 1)),
        as_of: Some(date(2026, 11, 29)),
        followed_by_ecosystems: BTreeSet::from(["missions-locales".to_owned()]),
        ..PersonFacts::default()
    };
    assert!(ft.in_scope(&young));
    assert!(ml.in_scope(&young));
    assert!(!ce.in_scope(&young), "Cap Emploi does not follow them");
    assert!(!d93.in_scope(&young));
    assert!(!part.in_scope(&young));

    // Past 25, the Missions Locales lose them even though the follow is open.
    young.as_of = Some(date(2033, 3, 1));
    assert!(!ml.in_scope(&young));

    // RSA beneficiary living in the 93, registered with France Travail.
    let rsa = PersonFacts {
        registration_operator: Some("france-travail".into()),
        departement: Some("93".into()),
        rsa_beneficiary: Some(true),
        ..PersonFacts::default()
    };
    assert!(d93.in_scope(&rsa));
    assert!(!d93.in_scope(&PersonFacts {
        rsa_beneficiary: Some(false),
        ..rsa.clone()
    }));

    // Prescribed to a listed training body.
    let prescribed = PersonFacts {
        prescribed_to: BTreeSet::from(["90000300500015".to_owned()]),
        ..PersonFacts::default()
    };
    assert!(part.in_scope(&prescribed));
    assert!(!part.in_scope(&PersonFacts::default()));
}

fn parse(text: &str) -> Result<Agreement, Error> {
    Agreement::parse("test.toml", text)
}

const HEAD: &str = r#"
ecosystem = "x"
version = "1"
title = "t"
legal_basis = "b"
retention_days = 30
"#;

fn message(r: Result<Agreement, Error>) -> String {
    match r {
        Err(Error::Invalid { file, message }) => {
            assert_eq!(file, "test.toml");
            message
        }
        other => panic!("expected an invalid agreement, got {other:?}"),
    }
}

#[test]
fn mistakes_are_refused_with_a_precise_message() {
    let scope = "[scope]\n[[scope.include]]\nrule = \"followed_by_ecosystem\"\n";
    let ok = format!(
        "{HEAD}[[purpose]]\nid = \"p\"\nlabel = \"l\"\nfields = [\"identity.given_name\"]\n{scope}"
    );
    assert!(parse(&ok).is_ok());

    let unknown_field = ok.replace("identity.given_name", "identity.shoe_size");
    assert!(message(parse(&unknown_field)).contains("unknown field \"identity.shoe_size\""));

    let health = ok.replace("identity.given_name", "health.rqth");
    assert!(message(parse(&health)).contains("sensitive_legal_basis"));

    let unknown_key = ok.replace(
        "retention_days = 30",
        "retention_days = 30\ncolour = \"blue\"",
    );
    assert!(message(parse(&unknown_key)).contains("colour"));

    let twice =
        format!("{ok}[[purpose]]\nid = \"p\"\nlabel = \"l\"\nfields = [\"identity.given_name\"]\n");
    assert!(message(parse(&twice)).contains("declared twice"));

    let never = format!("{ok}[scope.restrict]\nage_min = 30\nage_max = 20\n");
    assert!(message(parse(&never)).contains("can never match"));

    let bad_rule = ok.replace("followed_by_ecosystem", "followed_by_anyone");
    assert!(message(parse(&bad_rule)).contains("followed_by_anyone"));

    let bad_operator = ok.replace(
        "rule = \"followed_by_ecosystem\"",
        "rule = \"referent_operator\"\noperator = \"pole-emploi\"",
    );
    assert!(message(parse(&bad_operator)).contains("unknown operator"));

    let no_orgs = ok.replace("followed_by_ecosystem", "prescribed_to_organisations");
    assert!(message(parse(&no_orgs)).contains("can never match"));

    let bad_dep = format!("{ok}[scope.restrict]\ndepartements = [\"20\"]\n");
    assert!(message(parse(&bad_dep)).contains("not a département"));
}

#[test]
fn any_edit_changes_the_version() {
    let scope = "[scope]\n[[scope.include]]\nrule = \"followed_by_ecosystem\"\n";
    let a = format!(
        "{HEAD}[[purpose]]\nid = \"p\"\nlabel = \"l\"\nfields = [\"identity.given_name\"]\n{scope}"
    );
    let b = a.replace("label = \"l\"", "label = \"L\"");
    let (a, b) = (parse(&a).expect("a"), parse(&b).expect("b"));
    assert_ne!(a.version, b.version);
    assert!(a.version.starts_with("1+"));
}
