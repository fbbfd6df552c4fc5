//! A person's main fields as one plain record (fixtures, demo data). The read models themselves
//! are per ecosystem: see [`crate::ecosystem`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

/// A person's main fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct PersonRow {
    pub person_id: Uuid,
    pub operator: String,
    pub registering_organisation: String,
    pub registered_on: NaiveDate,
    pub commune: String,
    pub departement: String,
    pub nir: Option<String>,
    pub family_name: String,
    pub given_name: String,
    pub birth_date: NaiveDate,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub last_event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
}
