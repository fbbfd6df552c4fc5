//! INSEE Code officiel géographique (2023): communes, départements, régions.
//!
//! Quirks of the source files, handled here so that nobody else has to:
//! - `insee_communes.csv` lists communes déléguées under the code of the commune nouvelle
//!   they merged into, right after it: the first row of a code is the current commune, the
//!   next ones are kept as [`Commune::other_names`]. It also lists the arrondissements
//!   municipaux of Paris, Lyon and Marseille under their own codes ([`CommuneKind`]).
//! - `insee_regions.csv` drops the leading zero (`1` for Guadeloupe); codes are stored with
//!   two digits and looked up either way.
//! - Neither file links a département to its région, nor a commune to its département: the
//!   commune's département is its code's prefix (3 characters overseas, 2 elsewhere), and the
//!   département → région table of the COG is below (checked against the files in tests).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::{read_csv, ReferenceError, Result};

/// Whether a COG commune code is a commune or an arrondissement municipal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommuneKind {
    Commune,
    /// Paris (751xx), Lyon (6938x) and Marseille (132xx) arrondissements.
    ArrondissementMunicipal,
}

/// A commune of the COG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commune {
    pub code: String,
    pub name: String,
    pub departement: String,
    pub kind: CommuneKind,
    /// Names of communes déléguées listed under the same code.
    pub other_names: Vec<String>,
}

/// A département of the COG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departement {
    pub code: String,
    pub name: String,
    /// Two-digit région code.
    pub region: String,
}

/// A région of the COG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Two digits (`01` Guadeloupe ... `94` Corse).
    pub code: String,
    pub name: String,
}

/// The territories, by code.
#[derive(Debug, Clone, Default)]
pub struct Cog {
    communes: HashMap<String, Commune>,
    departements: BTreeMap<String, Departement>,
    regions: BTreeMap<String, Region>,
}

#[derive(Deserialize)]
struct Row {
    code: String,
    nom: String,
}

/// The département code of a commune code (`97411` → `974`, `2A004` → `2A`); no lookup.
pub fn departement_of_commune(code: &str) -> Option<&str> {
    if code.len() != 5 || !code.is_ascii() {
        return None;
    }
    Some(if code.starts_with("97") || code.starts_with("98") {
        &code[..3]
    } else {
        &code[..2]
    })
}

/// The région code of a département code, per the COG since 2016.
pub fn region_of_departement(code: &str) -> Option<&'static str> {
    Some(match code {
        "971" => "01",
        "972" => "02",
        "973" => "03",
        "974" => "04",
        "976" => "06",
        "75" | "77" | "78" | "91" | "92" | "93" | "94" | "95" => "11",
        "18" | "28" | "36" | "37" | "41" | "45" => "24",
        "21" | "25" | "39" | "58" | "70" | "71" | "89" | "90" => "27",
        "14" | "27" | "50" | "61" | "76" => "28",
        "02" | "59" | "60" | "62" | "80" => "32",
        "08" | "10" | "51" | "52" | "54" | "55" | "57" | "67" | "68" | "88" => "44",
        "44" | "49" | "53" | "72" | "85" => "52",
        "22" | "29" | "35" | "56" => "53",
        "16" | "17" | "19" | "23" | "24" | "33" | "40" | "47" | "64" | "79" | "86" | "87" => "75",
        "09" | "11" | "12" | "30" | "31" | "32" | "34" | "46" | "48" | "65" | "66" | "81"
        | "82" => "76",
        "01" | "03" | "07" | "15" | "26" | "38" | "42" | "43" | "63" | "69" | "73" | "74" => "84",
        "04" | "05" | "06" | "13" | "83" | "84" => "93",
        "2A" | "2B" => "94",
        _ => return None,
    })
}

fn is_arrondissement(code: &str) -> bool {
    let Ok(n) = code.parse::<u32>() else {
        return false;
    };
    matches!(n, 75101..=75120 | 69381..=69389 | 13201..=13216)
}

/// Two-digit région code (`1` → `01`).
fn region_code(code: &str) -> String {
    if code.len() == 1 {
        format!("0{code}")
    } else {
        code.to_owned()
    }
}

impl Cog {
    /// Loads `insee_regions.csv`, `insee_departements.csv` and `insee_communes.csv` from `dir`.
    ///
    /// # Errors
    /// A file is unreadable or malformed, a département has no known région, or a commune's
    /// département is not in the départements file.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut cog = Cog::default();

        let path = dir.join("insee_regions.csv");
        for row in read_csv::<Row>(&path)? {
            let code = region_code(row.code.trim());
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ReferenceError::invalid(
                    &path,
                    format!("région code {code:?}"),
                ));
            }
            cog.regions.insert(
                code.clone(),
                Region {
                    code,
                    name: row.nom,
                },
            );
        }

        let path = dir.join("insee_departements.csv");
        for row in read_csv::<Row>(&path)? {
            let code = row.code.trim().to_owned();
            let region = region_of_departement(&code)
                .filter(|r| cog.regions.contains_key(*r))
                .ok_or_else(|| {
                    ReferenceError::invalid(
                        &path,
                        format!("département {code:?} has no known région"),
                    )
                })?;
            cog.departements.insert(
                code.clone(),
                Departement {
                    code,
                    name: row.nom,
                    region: region.to_owned(),
                },
            );
        }

        let path = dir.join("insee_communes.csv");
        for row in read_csv::<Row>(&path)? {
            let code = row.code.trim().to_owned();
            if let Some(existing) = cog.communes.get_mut(&code) {
                existing.other_names.push(row.nom);
                continue;
            }
            let departement = departement_of_commune(&code)
                .filter(|d| cog.departements.contains_key(*d))
                .ok_or_else(|| {
                    ReferenceError::invalid(
                        &path,
                        format!("commune {code:?} has no known département"),
                    )
                })?
                .to_owned();
            let kind = if is_arrondissement(&code) {
                CommuneKind::ArrondissementMunicipal
            } else {
                CommuneKind::Commune
            };
            cog.communes.insert(
                code.clone(),
                Commune {
                    code,
                    name: row.nom,
                    departement,
                    kind,
                    other_names: Vec::new(),
                },
            );
        }
        Ok(cog)
    }

    /// The commune or arrondissement municipal with this code.
    pub fn commune(&self, code: &str) -> Option<&Commune> {
        self.communes.get(code)
    }

    /// The département with this code.
    pub fn departement(&self, code: &str) -> Option<&Departement> {
        self.departements.get(code)
    }

    /// The région with this code, with or without its leading zero.
    pub fn region(&self, code: &str) -> Option<&Region> {
        self.regions.get(&region_code(code))
    }

    /// Every commune and arrondissement municipal, in no particular order.
    pub fn communes(&self) -> impl Iterator<Item = &Commune> {
        self.communes.values()
    }

    /// Every département, by code.
    pub fn departements(&self) -> impl Iterator<Item = &Departement> {
        self.departements.values()
    }

    /// Every région, by code.
    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(departement_of_commune("97411"), Some("974"));
        assert_eq!(departement_of_commune("2A004"), Some("2A"));
        assert_eq!(departement_of_commune("75056"), Some("75"));
        assert_eq!(departement_of_commune("7505"), None);
        assert_eq!(region_of_departement("2B"), Some("94"));
        assert_eq!(region_of_departement("20"), None);
        assert!(is_arrondissement("69381"));
        assert!(!is_arrondissement("69123"));
        assert_eq!(region_code("1"), "01");
    }
}
