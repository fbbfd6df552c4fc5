//! Access decisions by `cedar-policy`.
//!
//! The API computes the facts (is there a grant in force, how did the caller authenticate, is the
//! person in the caller's caseload, which purpose) and the policies decide. Each `forbid` carries
//! a `@code` annotation: the stable code the API answers with and the trail records.

use std::path::Path;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Entities, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The facts a decision is made on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    pub user: &'a str,
    pub ecosystem: &'a str,
    pub action: &'a str,
    pub purpose: &'a str,
    pub habilitated: bool,
    pub requires_mfa: bool,
    pub mfa: bool,
    pub client: bool,
    pub personal_data: bool,
    pub in_caseload: bool,
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `allow`, or the code of the policy that refused (`auth.mfa_required`, ...), or
    /// `habilitation.none` when no policy permits.
    pub code: String,
    /// The ids of the policies that determined the decision.
    pub policies: Vec<String>,
}

/// The loaded policies.
#[derive(Debug)]
pub struct Engine {
    policies: PolicySet,
    version: String,
    authorizer: Authorizer,
    /// The `(name, text)` pairs the policies were built from, for the archive.
    texts: Vec<(String, String)>,
}

impl Engine {
    /// Loads every `*.cedar` file in `dir`, in name order.
    ///
    /// # Errors
    /// [`Error::Policy`] naming the file for I/O or syntax errors, or when no file declares a
    /// `// version:` line.
    pub fn load(dir: &Path) -> Result<Self> {
        let err = |file: &Path, message: String| Error::Policy {
            file: file.display().to_string(),
            message,
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| err(dir, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "cedar"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(err(dir, "no *.cedar file".into()));
        }
        let mut texts = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).map_err(|e| err(f, e.to_string()))?;
            texts.push((f.display().to_string(), text));
        }
        Self::from_texts(&texts)
    }

    /// Policies from `(name, text)` pairs.
    ///
    /// # Errors
    /// As [`Engine::load`].
    pub fn from_texts(texts: &[(String, String)]) -> Result<Self> {
        let mut all = String::new();
        let mut declared = Vec::new();
        let mut hasher = Sha256::new();
        for (name, text) in texts {
            let version = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("// version:"))
                .map(|v| v.trim().to_owned())
                .ok_or_else(|| Error::Policy {
                    file: name.clone(),
                    message: "no `// version: ...` line".into(),
                })?;
            declared.push(version);
            hasher.update(text.as_bytes());
            all.push_str(text);
            all.push('\n');
        }
        let policies = PolicySet::from_str(&all).map_err(|e| Error::Policy {
            file: texts
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            message: e.to_string(),
        })?;
        let digest = hasher.finalize();
        let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Engine {
            policies,
            version: format!("{}+{hash}", declared.join("+")),
            authorizer: Authorizer::new(),
            texts: texts.to_vec(),
        })
    }

    /// Keeps this version's texts in `habilitations.policy_texts` (once per version), so that
    /// decisions taken under it can be replayed after the files change.
    ///
    /// # Errors
    /// [`crate::Error`] from the database.
    pub async fn archive(&self, pool: &sqlx::PgPool) -> Result<()> {
        let texts: Vec<serde_json::Value> = self
            .texts
            .iter()
            .map(|(name, text)| serde_json::json!({ "name": name, "text": text }))
            .collect();
        sqlx::query(
            "INSERT INTO habilitations.policy_texts (version, texts) VALUES ($1, $2) \
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(&self.version)
        .bind(serde_json::Value::Array(texts))
        .execute(pool)
        .await?;
        Ok(())
    }

    /// The engine of an archived policy version, if it was archived.
    ///
    /// # Errors
    /// [`crate::Error`] from the database, or if the archived texts no longer build.
    pub async fn archived(pool: &sqlx::PgPool, version: &str) -> Result<Option<Engine>> {
        let texts: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT texts FROM habilitations.policy_texts WHERE version = $1")
                .bind(version)
                .fetch_optional(pool)
                .await?;
        let Some(serde_json::Value::Array(items)) = texts else {
            return Ok(None);
        };
        let pairs: Vec<(String, String)> = items
            .iter()
            .filter_map(|i| {
                Some((
                    i.get("name")?.as_str()?.to_owned(),
                    i.get("text")?.as_str()?.to_owned(),
                ))
            })
            .collect();
        Engine::from_texts(&pairs).map(Some)
    }

    /// The version recorded with every decision: declared version(s) + a hash of the text.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Decides on `facts`.
    ///
    /// # Errors
    /// [`Error::Evaluation`] if the request cannot be built (bad ids) or a policy errs; a policy
    /// error is also a refusal (cedar denies on error), never an allow.
    pub fn decide(&self, facts: &Facts<'_>) -> Result<Decision> {
        let ev = |e: &dyn std::fmt::Display| Error::Evaluation(e.to_string());
        let principal = EntityUid::from_type_name_and_id(
            EntityTypeName::from_str("User").map_err(|e| ev(&e))?,
            EntityId::new(facts.user),
        );
        let action = EntityUid::from_type_name_and_id(
            EntityTypeName::from_str("Action").map_err(|e| ev(&e))?,
            EntityId::new(facts.action),
        );
        let resource = EntityUid::from_type_name_and_id(
            EntityTypeName::from_str("Scope").map_err(|e| ev(&e))?,
            EntityId::new(facts.ecosystem),
        );
        let context = Context::from_json_value(
            json!({
                "habilitated": facts.habilitated,
                "requires_mfa": facts.requires_mfa,
                "mfa": facts.mfa,
                "client": facts.client,
                "personal_data": facts.personal_data,
                "in_caseload": facts.in_caseload,
                "purpose": facts.purpose,
            }),
            None,
        )
        .map_err(|e| ev(&e))?;
        let request =
            Request::new(principal, action, resource, context, None).map_err(|e| ev(&e))?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &Entities::empty());
        let diagnostics = response.diagnostics();
        if let Some(e) = diagnostics.errors().next() {
            return Err(ev(e));
        }
        let ids: Vec<_> = diagnostics.reason().cloned().collect();
        let allowed = response.decision() == cedar_policy::Decision::Allow;
        let code = if allowed {
            "allow".to_owned()
        } else {
            ids.iter()
                .filter_map(|id| self.policies.policy(id))
                .filter(|p| p.effect() == cedar_policy::Effect::Forbid)
                .filter_map(|p| p.annotation("code").map(str::to_owned))
                .min_by_key(|c| precedence(c))
                .unwrap_or_else(|| "habilitation.none".to_owned())
        };
        Ok(Decision {
            allowed,
            code,
            policies: ids.iter().map(ToString::to_string).collect(),
        })
    }
}

/// When several policies refuse, the one the caller can act on first wins: authenticate
/// strongly, then the rest.
fn precedence(code: &str) -> u8 {
    match code {
        "auth.mfa_required" => 0,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")).unwrap()
    }

    fn facts() -> Facts<'static> {
        Facts {
            user: "u",
            ecosystem: "cap-emploi",
            action: "person.read",
            purpose: "accompagnement",
            habilitated: true,
            requires_mfa: true,
            mfa: true,
            client: false,
            personal_data: true,
            in_caseload: true,
        }
    }

    #[test]
    fn the_repository_policies_decide_as_documented() {
        let e = engine();
        assert!(e.version().starts_with("2026-11-29.1+"), "{}", e.version());
        let d = e.decide(&facts()).unwrap();
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.code, "allow");

        let d = e
            .decide(&Facts {
                mfa: false,
                ..facts()
            })
            .unwrap();
        assert_eq!((d.allowed, d.code.as_str()), (false, "auth.mfa_required"));
        // A client (operator's system) is not a person at a keyboard: no second factor to ask.
        let d = e
            .decide(&Facts {
                mfa: false,
                client: true,
                ..facts()
            })
            .unwrap();
        assert!(d.allowed);
        let d = e
            .decide(&Facts {
                habilitated: false,
                ..facts()
            })
            .unwrap();
        assert_eq!((d.allowed, d.code.as_str()), (false, "habilitation.none"));
        let d = e
            .decide(&Facts {
                in_caseload: false,
                ..facts()
            })
            .unwrap();
        assert_eq!(
            (d.allowed, d.code.as_str()),
            (false, "scope.outside_caseload")
        );
        // MFA first when several refuse.
        let d = e
            .decide(&Facts {
                in_caseload: false,
                mfa: false,
                ..facts()
            })
            .unwrap();
        assert_eq!(d.code, "auth.mfa_required");
        let nir = Facts {
            action: "person.lookup_nir",
            in_caseload: false,
            ..facts()
        };
        assert_eq!(e.decide(&nir).unwrap().code, "purpose.not_allowed");
        assert!(
            e.decide(&Facts {
                purpose: "orientation",
                ..nir
            })
            .unwrap()
            .allowed
        );
    }

    #[test]
    fn a_policy_without_version_or_with_a_syntax_error_is_refused() {
        let e = Engine::from_texts(&[(
            "a.cedar".into(),
            "permit(principal, action, resource);".into(),
        )])
        .unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
        let e = Engine::from_texts(&[("a.cedar".into(), "// version: 1\npermit(principal".into())])
            .unwrap_err();
        assert!(e.to_string().contains("a.cedar"), "{e}");
    }
}
