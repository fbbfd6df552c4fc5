//! France Travail agencies and Missions Locales, from the pass-emploi referential
//! (France-Travail/pass-emploi-api seeders).
//!
//! Agencies carry pass-emploi's numeric id, a name and a département; that source gives
//! départements as numbers, so `1` becomes `01`, and `20` is kept as found (the pre-1976
//! code for Corsica, which the source uses for both 2A and 2B). Mission Locale structures
//! carry their i-milo code (`11206S00`: 5 characters, `S`, 2 digits).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::{read_json, ReferenceError, Result};

/// Which network an agency belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgencyNetwork {
    FranceTravail,
    MissionLocale,
}

/// An agency of France Travail or of a Mission Locale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agency {
    pub id: u32,
    pub network: AgencyNetwork,
    pub name: String,
    pub region_name: String,
    /// Two digits, or three overseas; `20` for Corsica as the source has it.
    pub departement: String,
    pub timezone: String,
}

/// A Mission Locale structure (the legal entity), by i-milo code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissionLocaleStructure {
    pub code: String,
    pub official_name: String,
    pub usual_name: Option<String>,
    pub region: Option<String>,
    pub departement: Option<String>,
    pub timezone: String,
}

/// The organisations, by id and code.
#[derive(Debug, Clone, Default)]
pub struct Organisations {
    france_travail: BTreeMap<u32, Agency>,
    mission_locale_agencies: BTreeMap<u32, Agency>,
    mission_locales: HashMap<String, MissionLocaleStructure>,
}

#[derive(Deserialize)]
struct AgencyRow {
    id: u32,
    nom_agence: String,
    nom_region: String,
    code_departement: u32,
    timezone: String,
}

#[derive(Deserialize)]
struct StructureRow {
    id: String,
    nom_officiel: String,
    nom_usuel: Option<String>,
    code_region: Option<String>,
    code_departement: Option<String>,
    timezone: String,
}

fn load_agencies(path: &Path, network: AgencyNetwork) -> Result<BTreeMap<u32, Agency>> {
    let rows: Vec<AgencyRow> = read_json(path)?;
    let mut out = BTreeMap::new();
    for r in rows {
        let agency = Agency {
            id: r.id,
            network,
            name: r.nom_agence,
            region_name: r.nom_region,
            departement: format!("{:02}", r.code_departement),
            timezone: r.timezone,
        };
        if out.insert(r.id, agency).is_some() {
            return Err(ReferenceError::invalid(
                path,
                format!("agency id {} repeats", r.id),
            ));
        }
    }
    Ok(out)
}

/// Whether `code` has the shape of an i-milo structure code.
fn is_milo_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 8
        && b[..5].iter().all(u8::is_ascii_alphanumeric)
        && b[5] == b'S'
        && b[6..].iter().all(u8::is_ascii_digit)
}

impl Organisations {
    /// Loads `agences_pe.json`, `agences_milo.json` and `referentiel_structures_milo.json`.
    ///
    /// # Errors
    /// A file is unreadable or malformed, an id repeats, or an i-milo code is malformed.
    pub fn load(dir: &Path) -> Result<Self> {
        let france_travail =
            load_agencies(&dir.join("agences_pe.json"), AgencyNetwork::FranceTravail)?;
        let mission_locale_agencies =
            load_agencies(&dir.join("agences_milo.json"), AgencyNetwork::MissionLocale)?;
        let path = dir.join("referentiel_structures_milo.json");
        let rows: Vec<StructureRow> = read_json(&path)?;
        let mut mission_locales = HashMap::with_capacity(rows.len());
        for r in rows {
            if !is_milo_code(&r.id) {
                return Err(ReferenceError::invalid(
                    &path,
                    format!("i-milo code {:?}", r.id),
                ));
            }
            let s = MissionLocaleStructure {
                code: r.id.clone(),
                official_name: r.nom_officiel,
                usual_name: r.nom_usuel,
                region: r.code_region,
                departement: r.code_departement,
                timezone: r.timezone,
            };
            if mission_locales.insert(r.id.clone(), s).is_some() {
                return Err(ReferenceError::invalid(
                    &path,
                    format!("i-milo code {:?} repeats", r.id),
                ));
            }
        }
        Ok(Organisations {
            france_travail,
            mission_locale_agencies,
            mission_locales,
        })
    }

    /// The France Travail agency with this pass-emploi id.
    pub fn france_travail_agency(&self, id: u32) -> Option<&Agency> {
        self.france_travail.get(&id)
    }

    /// The Mission Locale agency with this pass-emploi id.
    pub fn mission_locale_agency(&self, id: u32) -> Option<&Agency> {
        self.mission_locale_agencies.get(&id)
    }

    /// The Mission Locale structure with this i-milo code.
    pub fn mission_locale(&self, code: &str) -> Option<&MissionLocaleStructure> {
        self.mission_locales.get(code)
    }

    /// Every France Travail agency, by id.
    pub fn france_travail_agencies(&self) -> impl Iterator<Item = &Agency> {
        self.france_travail.values()
    }

    /// Every Mission Locale agency, by id.
    pub fn mission_locale_agencies(&self) -> impl Iterator<Item = &Agency> {
        self.mission_locale_agencies.values()
    }

    /// Every Mission Locale structure, in no particular order.
    pub fn mission_locales(&self) -> impl Iterator<Item = &MissionLocaleStructure> {
        self.mission_locales.values()
    }

    /// Agencies of both networks in a département (as the source codes it).
    pub fn agencies_in_departement<'a>(
        &'a self,
        departement: &'a str,
    ) -> impl Iterator<Item = &'a Agency> + 'a {
        self.france_travail
            .values()
            .chain(self.mission_locale_agencies.values())
            .filter(move |a| a.departement == departement)
    }
}
