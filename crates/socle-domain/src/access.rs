//! Access events (`schemas/access/AccessEvent.avsc`): one per read, search, write or refusal.

use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;

/// What was decided for an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Decision {
    Allow,
    Deny,
    /// Allowed, but the answer could not be produced (e.g. store unavailable).
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "ALLOW",
            Decision::Deny => "DENY",
            Decision::Error => "ERROR",
        }
    }
}

/// How strongly the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStrength {
    None,
    Password,
    Mfa,
    Client,
}

impl AuthStrength {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthStrength::None => "none",
            AuthStrength::Password => "password",
            AuthStrength::Mfa => "mfa",
            AuthStrength::Client => "client",
        }
    }
}

/// `socle.access.AccessEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEvent {
    pub envelope: Envelope,
    pub request_id: String,
    /// User or client id of the caller.
    pub user: String,
    /// SIRET of the caller's organisation.
    pub organisation: String,
    pub ecosystem: Option<String>,
    pub purpose: Option<String>,
    /// One of [`AuthStrength::as_str`].
    pub auth_strength: String,
    /// `person.read`, `person.search`, `person.write`, ...
    pub action: String,
    /// What was asked for, e.g. `/persons/{id}`.
    pub resource: String,
    /// Every person id disclosed or targeted.
    pub person_ids: Vec<String>,
    pub decision: Decision,
    pub reason: Option<String>,
    pub policy_version: Option<String>,
    pub agreement_version: Option<String>,
}
