//! The decode → rules path offline (no registry: schema ids 1..=9 stand for the ingress
//! contracts in order), against the runtime referential in the repository's `reference/`.

use std::path::PathBuf;
use std::sync::LazyLock;

use chrono::Utc;
use socle_domain::reference::{ReferencePaths, Referential};
use socle_ingest::decode;
use socle_ingest::ingress::Ingress;
use socle_ingest::rules::{self, Context, Rejection};
use socle_ingest::synthetic::{self, Bad};
use uuid::Uuid;

fn reference_dir() -> PathBuf {
    std::env::var_os("SOCLE__REFERENCE__DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../reference")),
        PathBuf::from,
    )
}

static REFERENTIAL: LazyLock<Referential> = LazyLock::new(|| {
    Referential::load(&ReferencePaths::under(&reference_dir())).expect("reference/ loads")
});

fn id_of(m: &Ingress) -> u32 {
    let c = decode::contract_of(m);
    let pos = socle_ingest::contracts::ingress()
        .iter()
        .position(|x| x.name == c.name)
        .expect("ingress contract");
    u32::try_from(pos).expect("small") + 1
}

fn judge(operator: &str, key: &str, value: &[u8]) -> Result<Uuid, Rejection> {
    let frame = decode::frame(Some(value), &[])?;
    let contracts = socle_ingest::contracts::ingress();
    let Some(reader) = usize::try_from(frame.schema_id)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| contracts.get(i))
    else {
        return Err(Rejection::new("schema.unknown_id", "unknown", None));
    };
    let message = decode::body(&reader.schema, reader, true, frame.body)?;
    let ctx = Context {
        referential: &REFERENTIAL,
        operator,
        now: Utc::now(),
    };
    rules::check(&message, Some(key.as_bytes()), &ctx)
}

fn framed(m: &Ingress) -> Vec<u8> {
    socle_kafka::framing::Frame::encode(id_of(m), &decode::encode_body(m).expect("encodes"))
}

#[test]
fn a_whole_synthetic_life_passes_for_every_operator() {
    let now = Utc::now();
    for operator in socle_domain::person::OPERATORS {
        for n in [0, 1, 7, 12_345, 99_999_999] {
            let mut ids = Vec::new();
            for m in synthetic::life(operator, n, now) {
                let id = judge(operator, &synthetic::operator_ref(n), &framed(&m))
                    .unwrap_or_else(|r| panic!("{operator} person {n}: {m:?}: {r:?}"));
                ids.push(id);
            }
            // Every message of one person maps to the same person id, derived from the ref.
            assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
            assert_eq!(ids[0].get_version_num(), 5);
        }
    }
}

#[test]
fn each_kind_of_bad_input_gets_its_reason_code() {
    let now = Utc::now();
    for operator in socle_domain::person::OPERATORS {
        for bad in Bad::ALL {
            let (key, value) = bad.message(operator, 42, now, &id_of);
            let got = judge(operator, &key, &value).expect_err("refused");
            let want = if bad == Bad::UnknownSchemaId {
                "schema.unknown_id"
            } else {
                bad.code()
            };
            assert_eq!(got.code, want, "{operator} {bad:?}: {got:?}");
        }
    }
}

#[test]
fn an_operator_cannot_state_fields_it_does_not_own() {
    let now = Utc::now();
    // A Mission Locale states RQTH: refused, health data is not its to write.
    let mut life = synthetic::life("mission-locale", 3, now);
    let Ingress::SituationUpdated(mut s) = life.swap_remove(2) else {
        panic!("situation")
    };
    s.health.rqth = Some(true);
    let m = Ingress::SituationUpdated(s.clone());
    let r = judge("mission-locale", &synthetic::operator_ref(3), &framed(&m)).expect_err("refused");
    assert_eq!(
        (r.code, r.field),
        ("authz.field_not_writable", Some("health"))
    );
    // Cap Emploi states a France Travail registration category: refused.
    let mut life = synthetic::life("cap-emploi", 3, now);
    let Ingress::SituationUpdated(mut s) = life.swap_remove(2) else {
        panic!("situation")
    };
    s.registration_category = Some("B".into());
    let r = judge(
        "cap-emploi",
        &synthetic::operator_ref(3),
        &framed(&Ingress::SituationUpdated(s)),
    )
    .expect_err("refused");
    assert_eq!(
        (r.code, r.field),
        ("authz.field_not_writable", Some("registration_category"))
    );
}

#[test]
fn personal_values_never_appear_in_the_reason() {
    let now = Utc::now();
    let (key, value) = Bad::NirKey.message("france-travail", 42, now, &id_of);
    let r = judge("france-travail", &key, &value).expect_err("refused");
    let reg = synthetic::registered("france-travail", 42, now);
    let nir = reg.identity.nir.expect("nir");
    assert_eq!(r.field, Some("identity.nir"));
    assert!(!r.detail.contains(&nir[..13]), "{}", r.detail);
    let (key, value) = Bad::BirthDateAgeTooLow.message("france-travail", 42, now, &id_of);
    let r = judge("france-travail", &key, &value).expect_err("refused");
    assert!(
        !r.detail.chars().any(|c| c.is_ascii_digit()),
        "{}",
        r.detail
    );
}

#[test]
fn rome_and_data_inclusion_values_are_checked_against_the_referential() {
    use socle_ingest::ingress::{PersonExited, ServicePrescribed};
    let now = Utc::now();
    let sub = synthetic::submission("france-travail", 5, 9, now);
    let exited = |rome: &str| {
        Ingress::Exited(PersonExited {
            submission: sub.clone(),
            operator: "france-travail".into(),
            organisation: synthetic::organisation("france-travail"),
            exited_on: socle_domain::time::to_days(now.date_naive()),
            destination: "EMPLOYMENT".into(),
            contract: Some("CDI".into()),
            rome: Some(rome.into()),
            reason_code: None,
        })
    };
    let key = synthetic::operator_ref(5);
    assert!(judge("france-travail", &key, &framed(&exited("M1805"))).is_ok());
    assert_eq!(
        judge("france-travail", &key, &framed(&exited("Z9999")))
            .expect_err("bad")
            .code,
        "rome.format"
    );
    assert_eq!(
        judge("france-travail", &key, &framed(&exited("A9999")))
            .expect_err("bad")
            .code,
        "rome.unknown"
    );
    let prescribed = |t: &str| {
        Ingress::ServicePrescribed(ServicePrescribed {
            submission: sub.clone(),
            prescription_id: Uuid::new_v4(),
            prescriber_organisation: synthetic::organisation("france-travail"),
            service_id: "dora--1234".into(),
            structure_id: "dora--99".into(),
            structure_siret: None,
            thematiques: vec![t.into()],
            prescribed_on: socle_domain::time::to_days(now.date_naive()),
            advisor: None,
        })
    };
    let known = REFERENTIAL
        .inclusion
        .list(socle_domain::validate::InclusionList::Thematique)
        .entries()[0]
        .value
        .clone();
    assert!(judge("france-travail", &key, &framed(&prescribed(&known))).is_ok());
    assert_eq!(
        judge(
            "france-travail",
            &key,
            &framed(&prescribed("pas-une-thematique"))
        )
        .expect_err("bad")
        .code,
        "inclusion.thematique.unknown"
    );
}

#[test]
fn header_borne_schema_ids_are_refused_with_their_own_reason() {
    let r = decode::frame(Some(&[0, 0, 0, 0, 1, 2]), &["__value_schema_id"]).expect_err("refused");
    assert_eq!(r.code, "frame.header_schema_id_unsupported");
}

#[test]
fn every_code_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ingest.md"))
        .expect("docs/ingest.md");
    for code in rules::CODES
        .iter()
        .chain(decode::CODES)
        .chain(socle_ingest::follows::CODES)
        .chain(&["pii.key_erased"])
    {
        assert!(
            doc.contains(&format!("`{code}`")),
            "{code} missing from docs/ingest.md"
        );
    }
}

#[test]
fn a_writer_schema_with_references_to_named_types_still_decodes() {
    // The same record as socle.ingress.FollowEnded, but with a second field of a named type
    // already defined (a reference): the decoder needs the names, which the fast path lacks.
    let writer = apache_avro::Schema::parse_str(
        r#"{"type":"record","name":"R","namespace":"t","fields":[
            {"name":"a","type":{"type":"record","name":"P","fields":[{"name":"x","type":"string"}]}},
            {"name":"b","type":"P"}]}"#,
    )
    .expect("parses");
    let value = apache_avro::types::Value::Record(vec![
        (
            "a".into(),
            apache_avro::types::Value::Record(vec![("x".into(), "1".into())]),
        ),
        (
            "b".into(),
            apache_avro::types::Value::Record(vec![("x".into(), "2".into())]),
        ),
    ]);
    let body = apache_avro::to_avro_datum(&writer, value).expect("encodes");
    // Not an ingress record: the decode itself must succeed (the error comes from resolution).
    let reader = socle_ingest::contracts::ingress()[5];
    let r = decode::body(&writer, reader, false, &body).expect_err("not a FollowEnded");
    assert_eq!(r.code, "schema.incompatible", "{r:?}");
}

#[test]
fn an_appointment_is_checked_then_becomes_a_canonical_appointment_scheduled() {
    use socle_ingest::ingress::AppointmentScheduled;
    let now = Utc::now();
    let key = synthetic::operator_ref(6);
    let sub = synthetic::submission("cap-emploi", 6, 1, now);
    let good = AppointmentScheduled {
        submission: sub,
        appointment_id: Uuid::new_v4(),
        organisation: synthetic::organisation("cap-emploi"),
        scheduled_for: (now + chrono::Duration::days(7)).timestamp_micros(),
        duration_minutes: Some(45),
        mode: "VIDEO".into(),
        kind: "suivi".into(),
        advisor: Some("conseillere.demo".into()),
        accompaniment_id: None,
        commune: Some("75056".into()),
    };
    let with = |f: &dyn Fn(&mut AppointmentScheduled)| {
        let mut a = good.clone();
        f(&mut a);
        framed(&Ingress::AppointmentScheduled(a))
    };
    let person = judge("cap-emploi", &key, &with(&|_| {})).expect("a good appointment passes");
    let refused = |f: &dyn Fn(&mut AppointmentScheduled)| {
        let r = judge("cap-emploi", &key, &with(f)).expect_err("refused");
        (r.code, r.field)
    };
    assert_eq!(
        refused(&|a| a.duration_minutes = Some(0)),
        ("field.out_of_range", Some("duration_minutes"))
    );
    assert_eq!(
        refused(&|a| a.duration_minutes = Some(rules::MAX_APPOINTMENT_MINUTES + 1)).0,
        "field.out_of_range"
    );
    assert_eq!(
        refused(&|a| a.commune = Some("99999".into())).1,
        Some("commune")
    );
    assert_eq!(
        refused(&|a| a.organisation = "12345678901234".into()).1,
        Some("organisation")
    );
    assert_eq!(
        refused(&|a| a.kind = "  ".into()),
        ("field.empty", Some("kind"))
    );
    assert_eq!(
        refused(&|a| a.scheduled_for = (now + chrono::Duration::days(400)).timestamp_micros()),
        ("date.in_future", Some("scheduled_for"))
    );
    assert_eq!(
        refused(&|a| a.scheduled_for = -3_000_000_000_000_000).1,
        Some("scheduled_for")
    );
    assert_eq!(
        refused(&|a| a.scheduled_for = i64::MIN).1,
        Some("scheduled_for")
    );

    // Canonicalized: socle's envelope, the person, the same facts, the mode as a symbol.
    let m = Ingress::AppointmentScheduled(good.clone());
    let (contract, bytes) =
        socle_ingest::canonicalize::canonical(&m, "cap-emploi", person, None, 7)
            .expect("canonical");
    assert_eq!(contract.name, "socle.person.AppointmentScheduled");
    let back = apache_avro::from_avro_datum(&contract.schema, &mut &bytes[..], None)
        .expect("decodes under the canonical contract");
    let apache_avro::types::Value::Record(fields) = back else {
        panic!("record")
    };
    let get = |n: &str| {
        fields
            .iter()
            .find(|(f, _)| f == n)
            .map(|(_, v)| v.clone())
            .expect(n)
    };
    use apache_avro::types::Value as V;
    assert_eq!(get("person_id"), V::Uuid(person));
    assert_eq!(get("appointment_id"), V::Uuid(good.appointment_id));
    assert_eq!(get("mode"), V::Enum(2, "VIDEO".into()));
    assert_eq!(get("scheduled_for"), V::TimestampMicros(good.scheduled_for));
    assert_eq!(get("kind"), V::String("suivi".into()));
    assert_eq!(
        get("commune"),
        V::Union(1, Box::new(V::String("75056".into())))
    );
    let V::Record(env) = get("envelope") else {
        panic!("envelope")
    };
    assert!(env.contains(&(
        "event_id".to_owned(),
        V::Uuid(socle_ingest::canonicalize::event_id(
            "cap-emploi",
            &good.submission
        ))
    )));
}
