//! Reference data loaded from public files (the repository's `reference/`, see its README, or
//! any folder with the same upstream layout): territories (INSEE COG),
//! jobs (ROME 4.0), data·inclusion v1 reference lists, and the France Travail and Mission
//! Locale organisations.
//!
//! This is the one place in the domain crate that reads files, and only at paths the caller
//! gives: loaders take a path and return plain values, so the service decides where the
//! files live (the repository's seed, a mounted volume) and when to reload. Everything is
//! held in memory (about 40,000 communes, 1,600 jobs: a few megabytes) and looked up by code.
//!
//! The loaders are strict about what the business rules depend on (codes, their shape, their
//! links) and lenient about the rest (labels are kept as found). A malformed file is an error
//! naming the file, never a silently partial referential.

mod cog;
mod inclusion;
mod organisations;
mod rome;

pub(crate) use rome::is_rome_shape;

use std::path::{Path, PathBuf};

pub use cog::{
    departement_of_commune, region_of_departement, Cog, Commune, CommuneKind, Departement, Region,
};
pub use inclusion::{InclusionLists, ListEntry, ValueList};
pub use organisations::{Agency, AgencyNetwork, MissionLocaleStructure, Organisations};
pub use rome::{Rome, RomeJob};

use crate::validate::InclusionList;

/// `Result` with [`ReferenceError`] as the default error.
pub type Result<T, E = ReferenceError> = std::result::Result<T, E>;

/// A reference file could not be read or does not hold what it should.
///
/// Always an operations problem (wrong path, truncated file), never a sender's fault.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("cannot read reference file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reference file {path} is not valid CSV")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("reference file {path} is not the expected JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("reference file {path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

impl ReferenceError {
    pub(crate) fn invalid(path: &Path, detail: impl Into<String>) -> Self {
        ReferenceError::Invalid {
            path: path.to_owned(),
            detail: detail.into(),
        }
    }
}

/// Where each reference source lives. [`ReferencePaths::under`] gives the upstream layout that
/// the repository's `reference/` folder (and the workplace's `shared/data`) follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferencePaths {
    /// Folder with `insee_communes.csv`, `insee_departements.csv`, `insee_regions.csv`.
    pub insee_cog: PathBuf,
    /// Folder with `unix_referentiel_code_rome_v460_utf8.csv` (and the mobility file, if present).
    pub rome: PathBuf,
    /// data·inclusion v1 `extra/` folder (`thematiques.json`, `publics.json`, ...).
    pub data_inclusion_extra: PathBuf,
    /// Folder with `agences_pe.json`, `agences_milo.json`, `referentiel_structures_milo.json`.
    pub pass_emploi: PathBuf,
}

impl ReferencePaths {
    /// The layout of a referential folder such as `reference/` (the `reference.dir` setting).
    pub fn under(dir: &Path) -> Self {
        ReferencePaths {
            insee_cog: dir.join("insee-cog"),
            rome: dir.join("rome-v460"),
            data_inclusion_extra: dir.join("data-inclusion-schema/v1/extra"),
            pass_emploi: dir.join("france-travail-pass-emploi"),
        }
    }
}

/// All reference data, with lookups by code.
#[derive(Debug, Clone)]
pub struct Referential {
    pub cog: Cog,
    pub rome: Rome,
    pub inclusion: InclusionLists,
    pub organisations: Organisations,
}

impl Referential {
    /// Loads every source.
    ///
    /// # Errors
    /// The first file that is missing, unreadable or malformed.
    pub fn load(paths: &ReferencePaths) -> Result<Self> {
        Ok(Referential {
            cog: Cog::load(&paths.insee_cog)?,
            rome: Rome::load(&paths.rome)?,
            inclusion: InclusionLists::load(&paths.data_inclusion_extra)?,
            organisations: Organisations::load(&paths.pass_emploi)?,
        })
    }

    /// The commune (or arrondissement municipal) with this COG code.
    pub fn commune(&self, code: &str) -> Option<&Commune> {
        self.cog.commune(code)
    }

    /// The département with this COG code (`01`, `2A`, `971`).
    pub fn departement(&self, code: &str) -> Option<&Departement> {
        self.cog.departement(code)
    }

    /// The région with this COG code (`11`, or `1`/`01` for Guadeloupe).
    pub fn region(&self, code: &str) -> Option<&Region> {
        self.cog.region(code)
    }

    /// The ROME job with this code (`A1101`).
    pub fn rome(&self, code: &str) -> Option<&RomeJob> {
        self.rome.get(code)
    }

    /// Whether `value` is in a data·inclusion list.
    pub fn is_in(&self, list: InclusionList, value: &str) -> bool {
        self.inclusion.list(list).contains(value)
    }

    /// Whether `value` is a data·inclusion thématique.
    pub fn is_thematique(&self, value: &str) -> bool {
        self.is_in(InclusionList::Thematique, value)
    }

    /// Whether `value` is a data·inclusion public.
    pub fn is_public(&self, value: &str) -> bool {
        self.is_in(InclusionList::Public, value)
    }

    /// Whether `value` is a data·inclusion frais value.
    pub fn is_frais(&self, value: &str) -> bool {
        self.is_in(InclusionList::Frais, value)
    }

    /// Whether `value` is a data·inclusion mode d'accueil.
    pub fn is_mode_accueil(&self, value: &str) -> bool {
        self.is_in(InclusionList::ModeAccueil, value)
    }

    /// Whether `value` is a data·inclusion mode de mobilisation.
    pub fn is_mode_mobilisation(&self, value: &str) -> bool {
        self.is_in(InclusionList::ModeMobilisation, value)
    }

    /// Whether `value` is a data·inclusion personne mobilisatrice.
    pub fn is_personne_mobilisatrice(&self, value: &str) -> bool {
        self.is_in(InclusionList::PersonneMobilisatrice, value)
    }

    /// Whether `value` is a data·inclusion réseau porteur.
    pub fn is_reseau_porteur(&self, value: &str) -> bool {
        self.is_in(InclusionList::ReseauPorteur, value)
    }

    /// Whether `value` is a data·inclusion type de service.
    pub fn is_type_de_service(&self, value: &str) -> bool {
        self.is_in(InclusionList::TypeDeService, value)
    }

    /// The France Travail agency with this id in the pass-emploi referential.
    pub fn france_travail_agency(&self, id: u32) -> Option<&Agency> {
        self.organisations.france_travail_agency(id)
    }

    /// The Mission Locale agency with this id in the pass-emploi referential.
    pub fn mission_locale_agency(&self, id: u32) -> Option<&Agency> {
        self.organisations.mission_locale_agency(id)
    }

    /// The Mission Locale structure with this i-milo code (`11206S00`).
    pub fn mission_locale(&self, code: &str) -> Option<&MissionLocaleStructure> {
        self.organisations.mission_locale(code)
    }
}

/// Reads a whole reference file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ReferenceError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads and parses a JSON reference file.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    serde_json::from_slice(&read(path)?).map_err(|source| ReferenceError::Json {
        path: path.to_owned(),
        source,
    })
}

/// Reads a CSV reference file with a header row into records of type `T`.
pub(crate) fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let bytes = read(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes.as_slice());
    reader
        .deserialize()
        .collect::<std::result::Result<Vec<T>, _>>()
        .map_err(|source| ReferenceError::Csv {
            path: path.to_owned(),
            source,
        })
}
