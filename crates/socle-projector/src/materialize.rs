//! From the core state to each ecosystem's model: evaluate the agreement's scope for each touched
//! person, open the sealed groups the agreement grants, and write only those fields.

use std::collections::{BTreeSet, HashMap};

use apache_avro::types::Value;
use socle_agreements::{Agreement, Agreements, Field, PersonFacts};
use socle_domain::{DataKey, Sealed};
use socle_kafka::codec::from_datum;
use socle_kafka::pii::{open_identity, open_value};
use socle_kafka::schemas::{PERSON_CONTACT, PERSON_HEALTH, SEALED};
use socle_store::core::{CoreState, Val};
use socle_store::ecosystem::{Link, Model};
use sqlx::{Postgres, Transaction};
use tracing::warn;
use uuid::Uuid;

use crate::Result;

/// Where a build writes: the live models, a replay, or an as-of snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Schema of the core state.
    pub core: String,
    /// Prefix of the ecosystem schemas (`eco_` live).
    pub eco_prefix: String,
    /// Ecosystems built (all when `None`).
    pub only: Option<BTreeSet<String>>,
}

impl Layout {
    /// The live layout: `core` and `eco_<ecosystem>`.
    pub fn live() -> Layout {
        Layout {
            core: "core".into(),
            eco_prefix: "eco_".into(),
            only: None,
        }
    }
}

/// The models a layout maintains.
#[derive(Debug, Clone)]
pub struct Models {
    pub layout: Layout,
    pub entries: Vec<(Agreement, Model)>,
}

impl Models {
    /// The models of `agreements` under `layout`.
    pub fn new(agreements: &Agreements, layout: Layout) -> Models {
        let entries = agreements
            .all
            .iter()
            .filter(|a| {
                layout
                    .only
                    .as_ref()
                    .is_none_or(|o| o.contains(&a.ecosystem))
            })
            .map(|a| {
                let model = Model {
                    ecosystem: a.ecosystem.clone(),
                    schema: format!("{}{}", layout.eco_prefix, a.ecosystem.replace('-', "_")),
                    role: a.role(),
                    version: a.version.clone(),
                    columns: a
                        .granted_fields()
                        .into_iter()
                        .map(|f| (f.column(), f.sql_type().sql()))
                        .collect(),
                };
                (a.clone(), model)
            })
            .collect();
        Models { layout, entries }
    }

    /// Creates the core schema and every model if needed.
    ///
    /// # Errors
    /// Database errors, or a model built under another agreement version.
    pub async fn ensure(&self, tx: &mut Transaction<'_, Postgres>) -> Result<()> {
        // One creator at a time, the core schema included: two components starting together
        // would otherwise both run CREATE SCHEMA IF NOT EXISTS and one fail on pg_namespace's
        // unique index. (`socle migrate` creates them before any component starts.)
        socle_store::lock_schema(tx).await?;
        socle_store::core::ensure(tx, &self.layout.core).await?;
        for (_, model) in &self.entries {
            socle_store::ecosystem::ensure(tx, model).await?;
        }
        Ok(())
    }
}

/// Everything known about a person, personal groups opened.
struct Opened {
    facts: PersonFacts,
    values: HashMap<Field, Val>,
}

fn open_sealed(bytes: &Option<Vec<u8>>) -> Option<Sealed> {
    bytes
        .as_ref()
        .and_then(|b| from_datum::<Sealed>(b, &SEALED).ok())
}

fn avro_field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Record(fields) => fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| match v {
                Value::Union(_, inner) => inner.as_ref(),
                other => other,
            }),
        _ => None,
    }
}

fn avro_text(v: &Value, name: &str) -> Option<String> {
    match avro_field(v, name)? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn avro_bool(v: &Value, name: &str) -> Option<bool> {
    match avro_field(v, name)? {
        Value::Boolean(b) => Some(*b),
        _ => None,
    }
}

fn avro_date(v: &Value, name: &str) -> Option<chrono::NaiveDate> {
    match avro_field(v, name)? {
        Value::Date(d) | Value::Int(d) => socle_domain::time::from_days(*d),
        _ => None,
    }
}

fn open(state: &CoreState, key: Option<&DataKey>) -> Opened {
    let mut values: HashMap<Field, Val> = HashMap::new();
    let t = |v: &Option<String>| Val::Text(v.clone());
    values.insert(Field::RegistrationOperator, t(&state.registration_operator));
    values.insert(
        Field::RegistrationOrganisation,
        t(&state.registration_organisation),
    );
    values.insert(Field::RegistrationDate, Val::Date(state.registration_date));
    values.insert(Field::ResidenceCommune, t(&state.residence_commune));
    values.insert(Field::ResidenceDepartement, t(&state.residence_departement));
    values.insert(
        Field::SituationRegistrationCategory,
        t(&state.situation_registration_category),
    );
    values.insert(
        Field::SituationRsaBeneficiary,
        Val::Bool(state.situation_rsa_beneficiary),
    );
    values.insert(
        Field::OrientationReferentOperator,
        t(&state.orientation_referent_operator),
    );
    values.insert(Field::OrientationPathway, t(&state.orientation_pathway));
    values.insert(Field::ExitDate, Val::Date(state.exit_date));
    values.insert(Field::ExitDestination, t(&state.exit_destination));

    let mut birth_date = None;
    if let Some(key) = key {
        let person = state.person_id;
        if let Some(sealed) = open_sealed(&state.identity_sealed) {
            match open_identity(key, person, &sealed) {
                Ok(identity) => {
                    birth_date = identity.birth_date();
                    values.insert(Field::IdentityNir, Val::Text(identity.nir.clone()));
                    values.insert(
                        Field::IdentityFamilyName,
                        Val::Text(Some(identity.family_name.clone())),
                    );
                    values.insert(
                        Field::IdentityGivenName,
                        Val::Text(Some(identity.given_name.clone())),
                    );
                    values.insert(Field::IdentityBirthDate, Val::Date(birth_date));
                    values.insert(Field::ContactEmail, Val::Text(identity.email.clone()));
                    values.insert(Field::ContactPhone, Val::Text(identity.phone.clone()));
                }
                Err(e) => warn!(person_id = %person, error = %e, "identity does not open"),
            }
        }
        // A contact update is newer than the contact details given at registration.
        if let Some(sealed) = open_sealed(&state.contact_sealed) {
            match open_value(key, person, &sealed, &PERSON_CONTACT) {
                Ok(v) => {
                    values.insert(Field::ContactEmail, Val::Text(avro_text(&v, "email")));
                    values.insert(Field::ContactPhone, Val::Text(avro_text(&v, "phone")));
                    let address: Vec<String> =
                        ["address_line", "address_complement", "postal_code"]
                            .iter()
                            .filter_map(|f| avro_text(&v, f))
                            .collect();
                    values.insert(
                        Field::ContactAddress,
                        Val::Text((!address.is_empty()).then(|| address.join(", "))),
                    );
                }
                Err(e) => warn!(person_id = %person, error = %e, "contact does not open"),
            }
        }
        if let Some(sealed) = open_sealed(&state.health_sealed) {
            match open_value(key, person, &sealed, &PERSON_HEALTH) {
                Ok(v) => {
                    values.insert(Field::HealthRqth, Val::Bool(avro_bool(&v, "rqth")));
                    values.insert(
                        Field::HealthRqthUntil,
                        Val::Date(avro_date(&v, "rqth_until")),
                    );
                    values.insert(Field::HealthBoeth, Val::Bool(avro_bool(&v, "boeth")));
                }
                Err(e) => warn!(person_id = %person, error = %e, "health situation does not open"),
            }
        }
    }
    let facts = PersonFacts {
        registration_operator: state.registration_operator.clone(),
        referent_operator: state.orientation_referent_operator.clone(),
        departement: state.residence_departement.clone(),
        birth_date,
        rsa_beneficiary: state.situation_rsa_beneficiary,
        followed_by_ecosystems: state
            .follows
            .iter()
            .filter(|f| f.ended_on.is_none())
            .map(|f| f.ecosystem.clone())
            .collect(),
        prescribed_to: state
            .prescriptions
            .iter()
            .filter_map(|p| p.structure_siret.clone())
            .collect(),
        as_of: state.last_occurred_at.map(|t| t.date_naive()),
    };
    Opened { facts, values }
}

/// Recomputes every model's rows and links for `persons` from the core state.
///
/// # Errors
/// Database errors.
pub async fn refresh(
    tx: &mut Transaction<'_, Postgres>,
    models: &Models,
    keys: &HashMap<Uuid, DataKey>,
    persons: &[Uuid],
) -> Result<()> {
    if persons.is_empty() {
        return Ok(());
    }
    let states = socle_store::core::load(tx, &models.layout.core, persons).await?;
    let opened: Vec<(Uuid, &CoreState, Opened)> = persons
        .iter()
        .filter_map(|id| states.get(id).map(|s| (*id, s, open(s, keys.get(id)))))
        .collect();
    for (agreement, model) in &models.entries {
        let granted: Vec<Field> = agreement.granted_fields().into_iter().collect();
        let mut rows = Vec::new();
        let mut links = Vec::new();
        let mut out = Vec::new();
        for (id, state, o) in &opened {
            // A person with no registration yet (e.g. a follow arriving first) is not
            // materialised: there is nothing to show.
            let registered = state.registration_operator.is_some();
            if registered && agreement.in_scope(&o.facts) {
                let values = granted
                    .iter()
                    .map(|f| o.values.get(f).cloned().unwrap_or(Val::Text(None)))
                    .collect();
                rows.push((*id, values));
                links.extend(links_for(agreement, state));
            } else {
                out.push(*id);
            }
        }
        let in_ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
        socle_store::ecosystem::upsert(tx, model, &rows).await?;
        socle_store::ecosystem::set_links(tx, model, &in_ids, &links).await?;
        socle_store::ecosystem::remove(tx, model, &out).await?;
    }
    Ok(())
}

fn links_for(agreement: &Agreement, state: &CoreState) -> Vec<Link> {
    use socle_agreements::Include;
    let mut links: Vec<Link> = Vec::new();
    // The organisation that registered the person, for an ecosystem that takes in the people
    // registered with that operator.
    let registered_here = agreement.include.iter().any(|r| {
        matches!(r, Include::RegisteredWithOperator { operator }
            if state.registration_operator.as_ref() == Some(operator))
    });
    if let (true, Some(org)) = (registered_here, &state.registration_organisation) {
        links.push(Link {
            person_id: state.person_id,
            organisation: org.clone(),
            kind: "registration",
            ref_id: state.person_id,
            territory: state.residence_departement.clone(),
            since: state.registration_date,
        });
    }
    links.extend(
        state
            .follows
            .iter()
            .filter(|f| f.ended_on.is_none() && f.ecosystem == agreement.ecosystem)
            .map(|f| Link {
                person_id: state.person_id,
                organisation: f.organisation.clone(),
                kind: "follow",
                ref_id: f.follow_id,
                territory: Some(f.territory.clone()),
                since: Some(f.started_on),
            }),
    );
    links.extend(state.prescriptions.iter().filter_map(|p| {
        let siret = p.structure_siret.as_ref()?;
        agreement.organisations.contains(siret).then(|| Link {
            person_id: state.person_id,
            organisation: siret.clone(),
            kind: "prescription",
            ref_id: p.prescription_id,
            territory: None,
            since: None,
        })
    }));
    links
}
