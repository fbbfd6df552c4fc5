//! ROME 4.0 (v4.60), France Travail's job referential: 1,584 codes `^[A-N]\d{4}$`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{read_csv, ReferenceError, Result};

/// One ROME code (fiche métier) with its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RomeJob {
    pub code: String,
    pub label: String,
    /// OGR code of the appellation the label comes from.
    pub ogr: String,
    /// The code this one is a declination of (itself for a head fiche).
    pub parent: String,
    /// Ecological-transition class as published ("Emploi Vert", "Emploi Blanc", ...).
    pub transition_eco: Option<String>,
    pub regulated: Option<bool>,
    pub executive: Option<bool>,
    /// Codes people in this job commonly move to, in the order of the mobility file.
    pub mobility: Vec<String>,
}

/// The ROME referential, by code.
#[derive(Debug, Clone, Default)]
pub struct Rome {
    jobs: BTreeMap<String, RomeJob>,
}

#[derive(Deserialize)]
struct Row {
    code_rome: String,
    code_ogr: String,
    libelle_rome: String,
    transition_eco: String,
    emploi_reglemente: String,
    emploi_cadre: String,
    code_rome_parent: String,
}

#[derive(Deserialize)]
struct MobilityRow {
    code_rome: String,
    code_rome_cible: String,
    numero_ordre: String,
}

/// Whether `code` has the shape of a ROME 4.0 code: a capital A–N then 4 digits.
pub(crate) fn is_rome_shape(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5 && (b'A'..=b'N').contains(&b[0]) && b[1..].iter().all(u8::is_ascii_digit)
}

fn yes_no(s: &str) -> Option<bool> {
    match s {
        "O" => Some(true),
        "N" => Some(false),
        _ => None,
    }
}

impl Rome {
    /// Loads `unix_referentiel_code_rome_v460_utf8.csv` from `dir`, and the mobility links
    /// from `unix_rubrique_mobilite_v460_utf8.csv` when that file is there.
    ///
    /// # Errors
    /// A file is unreadable or malformed, a code does not have the ROME shape or repeats.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("unix_referentiel_code_rome_v460_utf8.csv");
        let mut jobs = BTreeMap::new();
        for row in read_csv::<Row>(&path)? {
            if !is_rome_shape(&row.code_rome) {
                return Err(ReferenceError::invalid(
                    &path,
                    format!("ROME code {:?}", row.code_rome),
                ));
            }
            let job = RomeJob {
                code: row.code_rome.clone(),
                label: row.libelle_rome,
                ogr: row.code_ogr,
                parent: row.code_rome_parent,
                transition_eco: Some(row.transition_eco).filter(|s| !s.is_empty()),
                regulated: yes_no(&row.emploi_reglemente),
                executive: yes_no(&row.emploi_cadre),
                mobility: Vec::new(),
            };
            if jobs.insert(row.code_rome.clone(), job).is_some() {
                return Err(ReferenceError::invalid(
                    &path,
                    format!("ROME code {:?} repeats", row.code_rome),
                ));
            }
        }

        let path = dir.join("unix_rubrique_mobilite_v460_utf8.csv");
        if path.exists() {
            let mut links = read_csv::<MobilityRow>(&path)?;
            links.sort_by_key(|l| l.numero_ordre.parse::<u32>().unwrap_or(u32::MAX));
            for link in links {
                if let Some(job) = jobs.get_mut(&link.code_rome) {
                    job.mobility.push(link.code_rome_cible);
                }
            }
        }
        Ok(Rome { jobs })
    }

    /// The job with this code.
    pub fn get(&self, code: &str) -> Option<&RomeJob> {
        self.jobs.get(code)
    }

    /// Every job, by code.
    pub fn jobs(&self) -> impl Iterator<Item = &RomeJob> {
        self.jobs.values()
    }

    /// How many codes the referential holds.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether the referential is empty.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}
