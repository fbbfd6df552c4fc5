//! Data-sharing agreements (conventions de partage) as reviewable data.
//!
//! One TOML file per ecosystem in `deploy/agreements/` says who the ecosystem is, for which
//! purposes (finalités) and on which legal basis it may see which people and which fields. The
//! projector builds each ecosystem's read model from it — only people in scope, only granted
//! fields, the columns of other fields do not even exist — and the API names the agreement
//! version in every access event. Files are validated at start with precise errors, so a typo
//! cannot silently widen or narrow what an ecosystem sees.

mod field;
mod scope;

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use field::Field;
pub use scope::{Include, PersonFacts, Restrict};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with an agreement file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{file}: cannot read: {message}")]
    Io { file: String, message: String },
    #[error("two agreements for ecosystem {0}")]
    Duplicate(String),
}

/// Operators of the network, as events name them.
pub const OPERATORS: [&str; 3] = ["france-travail", "cap-emploi", "mission-locale"];

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgreement {
    ecosystem: String,
    version: String,
    title: String,
    legal_basis: String,
    /// Article 9 GDPR basis: required to grant any health-related field.
    sensitive_legal_basis: Option<String>,
    retention_days: u32,
    #[serde(default)]
    organisations: Vec<String>,
    #[serde(rename = "purpose")]
    purposes: Vec<RawPurpose>,
    scope: RawScope,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurpose {
    id: String,
    label: String,
    fields: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    include: Vec<Include>,
    #[serde(default)]
    restrict: Restrict,
}

/// One purpose (finalité) and the fields it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose {
    pub id: String,
    pub label: String,
    pub fields: BTreeSet<Field>,
}

/// A validated agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    pub ecosystem: String,
    /// `<version as written>+<first 8 hex digits of the file's SHA-256>`: any edit changes it.
    pub version: String,
    pub title: String,
    pub legal_basis: String,
    pub sensitive_legal_basis: Option<String>,
    pub retention_days: u32,
    /// SIRETs of the ecosystem's organisations that do not follow people themselves
    /// (e.g. training bodies receiving prescriptions).
    pub organisations: BTreeSet<String>,
    pub purposes: Vec<Purpose>,
    pub include: Vec<Include>,
    pub restrict: Restrict,
}

impl Agreement {
    /// Parses and validates the text of an agreement file named `file` (for messages).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the file and what is wrong: syntax, unknown key, unknown field,
    /// duplicate purpose, health field without an article 9 basis, a rule that can never match.
    pub fn parse(file: &str, text: &str) -> Result<Agreement> {
        let invalid = |message: String| Error::Invalid {
            file: file.to_owned(),
            message,
        };
        let raw: RawAgreement = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if !is_ecosystem_name(&raw.ecosystem) {
            return Err(invalid(format!(
                "ecosystem {:?} must be lower-case letters, digits and dashes",
                raw.ecosystem
            )));
        }
        if raw.version.trim().is_empty() {
            return Err(invalid("version is empty".into()));
        }
        if raw.retention_days == 0 {
            return Err(invalid("retention_days must be at least 1".into()));
        }
        if raw.purposes.is_empty() {
            return Err(invalid("at least one [[purpose]] is required".into()));
        }
        let mut purposes = Vec::new();
        let mut ids = BTreeSet::new();
        for p in raw.purposes {
            if !ids.insert(p.id.clone()) {
                return Err(invalid(format!("purpose {:?} declared twice", p.id)));
            }
            if p.fields.is_empty() {
                return Err(invalid(format!("purpose {:?} grants no field", p.id)));
            }
            let mut fields = BTreeSet::new();
            for name in &p.fields {
                let field = Field::parse(name).ok_or_else(|| {
                    invalid(format!(
                        "purpose {:?}: unknown field {name:?} (known: {})",
                        p.id,
                        Field::ALL
                            .iter()
                            .map(|f| f.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                if field.is_health() && raw.sensitive_legal_basis.is_none() {
                    return Err(invalid(format!(
                        "purpose {:?} grants the health-related field {name} but the agreement \
                         has no sensitive_legal_basis (GDPR art. 9)",
                        p.id
                    )));
                }
                fields.insert(field);
            }
            purposes.push(Purpose {
                id: p.id,
                label: p.label,
                fields,
            });
        }
        for siret in &raw.organisations {
            if siret.len() != 14 || !siret.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!(
                    "organisation {siret:?} is not a 14-digit SIRET"
                )));
            }
        }
        scope::check(&raw.scope.include, &raw.scope.restrict, &raw.organisations)
            .map_err(invalid)?;
        let digest = Sha256::digest(text.as_bytes());
        let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        Ok(Agreement {
            version: format!("{}+{hash}", raw.version.trim()),
            ecosystem: raw.ecosystem,
            title: raw.title,
            legal_basis: raw.legal_basis,
            sensitive_legal_basis: raw.sensitive_legal_basis,
            retention_days: raw.retention_days,
            organisations: raw.organisations.into_iter().collect(),
            purposes,
            include: raw.scope.include,
            restrict: raw.scope.restrict,
        })
    }

    /// Every field any purpose grants: the columns of the ecosystem's read model.
    pub fn granted_fields(&self) -> BTreeSet<Field> {
        self.purposes
            .iter()
            .flat_map(|p| p.fields.iter().copied())
            .collect()
    }

    /// The fields granted for `purpose`, or `None` if the agreement has no such purpose.
    pub fn fields_for(&self, purpose: &str) -> Option<&BTreeSet<Field>> {
        self.purposes
            .iter()
            .find(|p| p.id == purpose)
            .map(|p| &p.fields)
    }

    /// Whether the person described by `facts` is in this ecosystem's scope.
    pub fn in_scope(&self, facts: &PersonFacts) -> bool {
        scope::in_scope(self, facts)
    }

    /// The PostgreSQL schema holding this ecosystem's read model (`eco_cap_emploi`...).
    pub fn schema(&self) -> String {
        format!("eco_{}", self.ecosystem.replace('-', "_"))
    }

    /// The PostgreSQL role the API uses for this ecosystem.
    pub fn role(&self) -> String {
        format!("socle_eco_{}", self.ecosystem.replace('-', "_"))
    }
}

fn is_ecosystem_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// All agreements of a deployment.
#[derive(Debug, Clone, Default)]
pub struct Agreements {
    pub all: Vec<Agreement>,
}

impl Agreements {
    /// Loads every `*.toml` in `dir`; the file name must be the ecosystem's name.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Invalid`] (naming the file), [`Error::Duplicate`].
    pub fn load_dir(dir: &Path) -> Result<Agreements> {
        let io = |message: String| Error::Io {
            file: dir.display().to_string(),
            message,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut all: Vec<Agreement> = Vec::new();
        for path in paths {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
                file: file.clone(),
                message: e.to_string(),
            })?;
            let agreement = Agreement::parse(&file, &text)?;
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            if stem != agreement.ecosystem {
                return Err(Error::Invalid {
                    file,
                    message: format!(
                        "file is named {stem:?} but declares ecosystem {:?}",
                        agreement.ecosystem
                    ),
                });
            }
            if all.iter().any(|a| a.ecosystem == agreement.ecosystem) {
                return Err(Error::Duplicate(agreement.ecosystem));
            }
            all.push(agreement);
        }
        if all.is_empty() {
            return Err(io("no agreement (*.toml) found".into()));
        }
        Ok(Agreements { all })
    }

    /// The agreement of `ecosystem`.
    pub fn get(&self, ecosystem: &str) -> Option<&Agreement> {
        self.all.iter().find(|a| a.ecosystem == ecosystem)
    }
}
