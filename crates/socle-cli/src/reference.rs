//! `socle reference load`: the data·inclusion services into the catalogue the API serves.
//!
//! The snapshot sample's structures are published too (`StructurePublished`, keyed
//! `structure:<id>`), before the services that name them; they are not written to a table.
//!
//! Each service is published on the reference topic as `socle.reference.ServicePublished`
//! (`schemas/reference/ServicePublished.avsc`, keyed `service:<id>`, acks=all) and written into
//! `reference.services` (PostgreSQL), which `GET /services` reads. The input is a data·inclusion
//! API answer (`{"items": [...]}`), a JSON array of services, or the snapshot's sample file
//! (`sample_responses_from_snapshot.json`, whose services are under `test_list_services_all`),
//! by default the copy in the referential folder (`reference.dir`, reference/README.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use socle_domain::Envelope;
use socle_kafka::schemas::Contract;
use socle_kafka::EventProducer;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum ReferenceCommand {
    /// Load data·inclusion services: publish them on the reference topic and write the catalogue.
    Load {
        /// data·inclusion services (API answer, array, or the snapshot's sample file).
        /// Default: the snapshot's sample in the referential,
        /// `<reference.dir>/data-inclusion-api/sample_responses_from_snapshot.json`.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The reference topic.
        #[arg(long, default_value = "socle.reference")]
        topic: String,
        /// `reference_version` of this load (default: today's date).
        #[arg(long)]
        version: Option<String>,
        /// SIRET of the organisation that publishes the reference data.
        #[arg(long, default_value = "13002526500013")]
        organisation: String,
        /// Only write the catalogue table, publish nothing.
        #[arg(long)]
        no_publish: bool,
    },
}

/// The data·inclusion snapshot sample of the referential folder `dir` (reference/README.md).
fn default_file(dir: &Path) -> PathBuf {
    dir.join("data-inclusion-api/sample_responses_from_snapshot.json")
}

fn items(v: Option<Value>) -> Option<Vec<Value>> {
    match v {
        Some(Value::Object(mut o)) => items(o.remove("items")),
        Some(Value::Array(a)) => Some(a),
        _ => None,
    }
}

/// The services of a data·inclusion document.
fn services(doc: Value) -> anyhow::Result<Vec<Value>> {
    let found = match doc {
        Value::Array(a) => Some(a),
        Value::Object(mut o) => match o.remove("test_list_services_all") {
            Some(s) => items(Some(s)),
            None => items(o.remove("items")),
        },
        _ => None,
    };
    found.context("no services: expected {\"items\": [...]} or an array")
}

/// The structures of the snapshot's sample file (`test_list_structures_all`), if any.
fn structures(doc: &Value) -> Vec<Value> {
    items(doc.get("test_list_structures_all").cloned()).unwrap_or_default()
}

/// A data·inclusion structure, as read from the API.
#[derive(Debug, Deserialize)]
struct DiStructure {
    id: String,
    source: String,
    nom: String,
    siret: Option<String>,
    date_maj: NaiveDate,
    description: Option<String>,
    adresse: Option<String>,
    complement_adresse: Option<String>,
    code_postal: Option<String>,
    code_insee: Option<String>,
    commune: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    telephone: Option<String>,
    courriel: Option<String>,
    site_web: Option<String>,
    lien_source: Option<String>,
    horaires_accueil: Option<String>,
    accessibilite_lieu: Option<String>,
    #[serde(default)]
    reseaux_porteurs: Option<Vec<String>>,
}

/// `socle.reference.StructurePublished`, field for field.
#[derive(Debug, Serialize)]
struct StructurePublished {
    envelope: Envelope,
    reference_version: String,
    id: String,
    source: String,
    nom: String,
    siret: Option<String>,
    date_maj: i32,
    description: Option<String>,
    adresse: Option<String>,
    complement_adresse: Option<String>,
    code_postal: Option<String>,
    code_insee: Option<String>,
    commune: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    telephone: Option<String>,
    courriel: Option<String>,
    site_web: Option<String>,
    lien_source: Option<String>,
    horaires_accueil: Option<String>,
    accessibilite_lieu: Option<String>,
    reseaux_porteurs: Vec<String>,
}

fn days(d: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from((d - epoch).num_days()).unwrap_or(0)
}

fn structure_published(s: DiStructure, version: &str, organisation: &str) -> StructurePublished {
    StructurePublished {
        envelope: Envelope::new(organisation.to_owned(), Utc::now()),
        reference_version: version.to_owned(),
        id: s.id,
        source: s.source,
        nom: s.nom,
        siret: s.siret,
        date_maj: days(s.date_maj),
        description: s.description,
        adresse: s.adresse,
        complement_adresse: s.complement_adresse,
        code_postal: s.code_postal,
        code_insee: s.code_insee,
        commune: s.commune,
        latitude: s.latitude,
        longitude: s.longitude,
        telephone: s.telephone,
        courriel: s.courriel,
        site_web: s.site_web,
        lien_source: s.lien_source,
        horaires_accueil: s.horaires_accueil,
        accessibilite_lieu: s.accessibilite_lieu,
        reseaux_porteurs: s.reseaux_porteurs.unwrap_or_default(),
    }
}

fn contract(name: &'static str, raw: &'static str) -> anyhow::Result<Contract> {
    Ok(Contract {
        name,
        raw,
        schema: apache_avro::Schema::parse_str(raw).with_context(|| format!("{name} contract"))?,
    })
}

/// A data·inclusion service, as read from the API (names as in data·inclusion v1).
#[derive(Debug, Deserialize)]
struct DiService {
    id: String,
    source: String,
    structure_id: String,
    nom: String,
    #[serde(default)]
    description: Option<String>,
    date_maj: NaiveDate,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    thematiques: Option<Vec<String>>,
    frais: Option<String>,
    frais_precisions: Option<String>,
    #[serde(default)]
    publics: Option<Vec<String>>,
    publics_precisions: Option<String>,
    conditions_acces: Option<String>,
    #[serde(default)]
    modes_accueil: Option<Vec<String>>,
    #[serde(default)]
    modes_mobilisation: Option<Vec<String>>,
    #[serde(default)]
    mobilisable_par: Option<Vec<String>>,
    mobilisation_precisions: Option<String>,
    lien_mobilisation: Option<String>,
    #[serde(default)]
    zone_eligibilite: Option<Vec<String>>,
    nombre_semaines: Option<i32>,
    volume_horaire_hebdomadaire: Option<f64>,
    horaires_accueil: Option<String>,
    adresse: Option<String>,
    complement_adresse: Option<String>,
    code_postal: Option<String>,
    code_insee: Option<String>,
    commune: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    telephone: Option<String>,
    courriel: Option<String>,
    contact_nom_prenom: Option<String>,
    lien_source: Option<String>,
}

/// `socle.reference.ServicePublished`, field for field.
#[derive(Debug, Serialize)]
struct ServicePublished {
    envelope: Envelope,
    reference_version: String,
    id: String,
    source: String,
    structure_id: String,
    nom: String,
    description: String,
    date_maj: i32,
    #[serde(rename = "type")]
    kind: Option<String>,
    thematiques: Vec<String>,
    frais: Option<String>,
    frais_precisions: Option<String>,
    publics: Vec<String>,
    publics_precisions: Option<String>,
    conditions_acces: Option<String>,
    modes_accueil: Vec<String>,
    modes_mobilisation: Vec<String>,
    mobilisable_par: Vec<String>,
    mobilisation_precisions: Option<String>,
    lien_mobilisation: Option<String>,
    zone_eligibilite: Vec<String>,
    nombre_semaines: Option<i32>,
    volume_horaire_hebdomadaire: Option<f64>,
    horaires_accueil: Option<String>,
    adresse: Option<String>,
    complement_adresse: Option<String>,
    code_postal: Option<String>,
    code_insee: Option<String>,
    commune: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    telephone: Option<String>,
    courriel: Option<String>,
    contact_nom_prenom: Option<String>,
    lien_source: Option<String>,
}

fn published(s: DiService, version: &str, organisation: &str) -> ServicePublished {
    ServicePublished {
        envelope: Envelope::new(organisation.to_owned(), Utc::now()),
        reference_version: version.to_owned(),
        id: s.id,
        source: s.source,
        structure_id: s.structure_id,
        nom: s.nom,
        description: s.description.unwrap_or_default(),
        date_maj: days(s.date_maj),
        kind: s.kind,
        thematiques: s.thematiques.unwrap_or_default(),
        frais: s.frais,
        frais_precisions: s.frais_precisions,
        publics: s.publics.unwrap_or_default(),
        publics_precisions: s.publics_precisions,
        conditions_acces: s.conditions_acces,
        modes_accueil: s.modes_accueil.unwrap_or_default(),
        modes_mobilisation: s.modes_mobilisation.unwrap_or_default(),
        mobilisable_par: s.mobilisable_par.unwrap_or_default(),
        mobilisation_precisions: s.mobilisation_precisions,
        lien_mobilisation: s.lien_mobilisation,
        zone_eligibilite: s.zone_eligibilite.unwrap_or_default(),
        nombre_semaines: s.nombre_semaines,
        volume_horaire_hebdomadaire: s.volume_horaire_hebdomadaire,
        horaires_accueil: s.horaires_accueil,
        adresse: s.adresse,
        complement_adresse: s.complement_adresse,
        code_postal: s.code_postal,
        code_insee: s.code_insee,
        commune: s.commune,
        latitude: s.latitude,
        longitude: s.longitude,
        telephone: s.telephone,
        courriel: s.courriel,
        contact_nom_prenom: s.contact_nom_prenom,
        lien_source: s.lien_source,
    }
}

pub async fn run(
    settings: &Settings,
    cmd: ReferenceCommand,
    _shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let ReferenceCommand::Load {
        file,
        topic,
        version,
        organisation,
        no_publish,
    } = cmd;
    socle_domain::validate::Siret::parse(&organisation)
        .map_err(|e| anyhow::anyhow!("--organisation: {e}"))?;
    let file = file.unwrap_or_else(|| default_file(&settings.reference.dir));
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let found = structures(&doc);
    let items = services(doc)?;
    let version = version.unwrap_or_else(|| Utc::now().date_naive().to_string());
    // Every entry is checked before anything is published or written.
    let typed = items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value::<DiService>(v.clone())
                .with_context(|| format!("service #{i} is not a data·inclusion service"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let typed_structures = found
        .iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value::<DiStructure>(v.clone())
                .with_context(|| format!("structure #{i} is not a data·inclusion structure"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !no_publish {
        let service_contract = contract(
            "socle.reference.ServicePublished",
            include_str!("../../../schemas/reference/ServicePublished.avsc"),
        )?;
        let structure_contract = contract(
            "socle.reference.StructurePublished",
            include_str!("../../../schemas/reference/StructurePublished.avsc"),
        )?;
        let codec = crate::codec(settings)?;
        let producer = EventProducer::new(&settings.kafka.brokers, settings.delivery_timeout())
            .context("kafka producer")?;
        // Structures first: a service names its structure.
        for s in typed_structures {
            let key = format!("structure:{}", s.id);
            let event = structure_published(s, &version, &organisation);
            let payload = codec
                .encode(&topic, &structure_contract, &event)
                .await
                .with_context(|| format!("encoding {key}"))?;
            producer
                .send(&topic, &key, &payload)
                .await
                .with_context(|| format!("publishing {key} on {topic}"))?;
        }
        for s in typed {
            let key = format!("service:{}", s.id);
            let event = published(s, &version, &organisation);
            let payload = codec
                .encode(&topic, &service_contract, &event)
                .await
                .with_context(|| format!("encoding {key}"))?;
            producer
                .send(&topic, &key, &payload)
                .await
                .with_context(|| format!("publishing {key} on {topic}"))?;
        }
        println!(
            "published {} structures and {} services on {topic}",
            found.len(),
            items.len()
        );
    }
    let pool = crate::pool(settings).await?;
    let n = socle_api::services::upsert(&pool, &items).await?;
    println!("catalogue: {n} services in reference.services");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_found_in_each_accepted_shape() {
        let one = serde_json::json!({"id": "a"});
        assert_eq!(services(serde_json::json!([one.clone()])).unwrap().len(), 1);
        assert_eq!(
            services(serde_json::json!({"items": [one.clone()]}))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            services(serde_json::json!({"test_list_services_all": {"items": [one]}}))
                .unwrap()
                .len(),
            1
        );
        assert!(services(serde_json::json!({"nothing": 1})).is_err());
        assert!(services(serde_json::json!("x")).is_err());
        let sample = serde_json::json!({"test_list_structures_all": {"items": [{"id": "s"}]}});
        assert_eq!(structures(&sample).len(), 1);
        assert!(structures(&serde_json::json!([])).is_empty());
    }

    #[test]
    fn the_default_file_is_the_repository_sample_and_loads() {
        // `reference.dir` defaults to `reference`, relative to the repository root.
        let settings = Settings::load_from(None, std::iter::empty()).expect("built-in defaults");
        assert_eq!(settings.reference.dir, std::path::Path::new("reference"));
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let file = default_file(&repo.join(&settings.reference.dir));
        let text = std::fs::read_to_string(&file).expect("the sample is in reference/");
        let doc: Value = serde_json::from_str(&text).expect("json");
        let found = structures(&doc);
        let items = services(doc).expect("services");
        assert!(!items.is_empty() && !found.is_empty());
        for s in items {
            serde_json::from_value::<DiService>(s).expect("a data·inclusion service");
        }
        for s in found {
            serde_json::from_value::<DiStructure>(s).expect("a data·inclusion structure");
        }
    }
}
