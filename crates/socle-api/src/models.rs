//! The per-ecosystem read models the API reads (built by the projector from the agreements,
//! `socle_store::ecosystem`): one schema per ecosystem holding only the people its agreement puts
//! in scope and only the fields it grants; PostgreSQL row-level security, under the ecosystem's
//! role, shows a caller only their organisation's caseload.
//!
//! On top of that the API answers with only the fields of the *purpose* invoked (an agreement
//! grants fields per purpose; the model holds their union).

use std::collections::HashMap;

use serde_json::{Map, Value};
use socle_agreements::Agreement;
use socle_store::ecosystem::Model;

/// One ecosystem's model and, per purpose, the columns it grants.
#[derive(Debug, Clone)]
pub struct EcoModel {
    pub model: Model,
    pub purposes: HashMap<String, Vec<String>>,
}

impl EcoModel {
    /// The agreement version recorded in access events.
    pub fn agreement_version(&self) -> &str {
        &self.model.version
    }

    /// Whether the model has `column` (the agreement grants it for some purpose).
    pub fn has(&self, column: &str) -> bool {
        self.model.columns.iter().any(|(c, _)| c == column)
    }

    /// Whether `purpose` itself grants `column` (not only some other purpose of the agreement).
    pub fn purpose_has(&self, purpose: &str, column: &str) -> bool {
        self.purposes
            .get(purpose)
            .is_some_and(|g| g.iter().any(|c| c == column))
    }

    /// Whether `purpose` may identify people: it grants an identity field. A non-identifying
    /// purpose (e.g. `pilotage`) reads aggregates only, never person ids (docs/api.md).
    pub fn identifying(&self, purpose: &str) -> bool {
        self.purposes
            .get(purpose)
            .is_some_and(|g| g.iter().any(|c| c.starts_with("identity_")))
    }

    /// `row` reduced to `person_id` and the columns `purpose` grants.
    pub fn for_purpose(&self, purpose: &str, row: Map<String, Value>) -> Map<String, Value> {
        let granted = self.purposes.get(purpose);
        row.into_iter()
            .filter(|(k, _)| {
                k == "person_id"
                    || k == "agreement_version"
                    || granted.is_some_and(|g| g.iter().any(|c| c == k))
            })
            .collect()
    }
}

/// The models, by ecosystem.
#[derive(Debug, Clone, Default)]
pub struct Ecosystems {
    by_name: HashMap<String, EcoModel>,
}

impl Ecosystems {
    /// From the projector's `(agreement, model)` entries.
    pub fn new(entries: &[(Agreement, Model)]) -> Self {
        Ecosystems {
            by_name: entries
                .iter()
                .map(|(a, m)| {
                    let purposes = a
                        .purposes
                        .iter()
                        .map(|p| (p.id.clone(), p.fields.iter().map(|f| f.column()).collect()))
                        .collect();
                    (
                        a.ecosystem.clone(),
                        EcoModel {
                            model: m.clone(),
                            purposes,
                        },
                    )
                })
                .collect(),
        }
    }

    pub fn get(&self, ecosystem: &str) -> Option<&EcoModel> {
        self.by_name.get(ecosystem)
    }
}
