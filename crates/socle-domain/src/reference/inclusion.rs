//! data·inclusion v1 reference lists (`schemas/v1/extra/*.json` of data-inclusion-schema):
//! each a JSON array of `{value, label, description}`. Values are the stable slugs that
//! structures and services carry; labels are for display.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::{read_json, ReferenceError, Result};
use crate::validate::InclusionList;

/// One value of a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListEntry {
    pub value: String,
    pub label: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A reference list, in file order, with lookup by value.
#[derive(Debug, Clone, Default)]
pub struct ValueList {
    entries: Vec<ListEntry>,
    index: HashMap<String, usize>,
}

impl ValueList {
    /// Whether `value` is in the list (exact, case-sensitive: values are slugs).
    pub fn contains(&self, value: &str) -> bool {
        self.index.contains_key(value)
    }

    /// The entry for `value`.
    pub fn get(&self, value: &str) -> Option<&ListEntry> {
        self.index.get(value).map(|&i| &self.entries[i])
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[ListEntry] {
        &self.entries
    }

    /// How many values the list holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Every data·inclusion list socle validates against.
#[derive(Debug, Clone, Default)]
pub struct InclusionLists {
    lists: BTreeMap<&'static str, ValueList>,
}

impl InclusionLists {
    /// Loads each list of [`InclusionList::ALL`] from the `extra/` folder `dir`.
    ///
    /// # Errors
    /// A file is missing or malformed, or a value repeats or is empty.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut lists = BTreeMap::new();
        for list in InclusionList::ALL {
            let path = dir.join(list.file_name());
            let entries: Vec<ListEntry> = read_json(&path)?;
            let mut index = HashMap::with_capacity(entries.len());
            for (i, e) in entries.iter().enumerate() {
                if e.value.is_empty() || index.insert(e.value.clone(), i).is_some() {
                    return Err(ReferenceError::invalid(
                        &path,
                        format!("value {:?} empty or repeated", e.value),
                    ));
                }
            }
            lists.insert(list.as_str(), ValueList { entries, index });
        }
        Ok(InclusionLists { lists })
    }

    /// The list `list` (empty if it was not loaded).
    pub fn list(&self, list: InclusionList) -> &ValueList {
        static EMPTY: std::sync::OnceLock<ValueList> = std::sync::OnceLock::new();
        self.lists
            .get(list.as_str())
            .unwrap_or_else(|| EMPTY.get_or_init(ValueList::default))
    }
}
