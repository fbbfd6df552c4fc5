//! The OpenAPI document, generated from the handlers' annotations (`utoipa`) and served at
//! `/openapi.json`, so that the contract clients and Schemathesis test against is the code's.

use std::sync::LazyLock;

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// A problem document (RFC 9457).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProblemDoc {
    /// `https://socle.invalid/problems/<code>`.
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// Stable machine-readable code (docs/api.md lists them).
    code: String,
    request_id: Option<String>,
}

/// A person, with `person_id`, `agreement_version` and the fields the caller's agreement grants
/// for the purpose (named after the agreement's fields, e.g. `identity_family_name`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PersonDoc {
    /// UUID.
    person_id: String,
    agreement_version: String,
}

/// A page of people.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PageDoc {
    items: Vec<PersonDoc>,
    /// Pass as `after` for the next page; null on the last page.
    next: Option<String>,
}

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "socle API",
        description = "Read and search the people of your caseload; every access is recorded before the answer leaves. See docs/api.md."
    ),
    paths(
        crate::persons::read,
        crate::persons::search,
        crate::persons::caseload,
        crate::persons::lookup_nir,
        crate::commands::contact,
        crate::commands::prescribe,
        crate::commands::follow_start,
        crate::commands::follow_end,
        crate::commands::appointment,
        crate::services::list,
    ),
    components(schemas(ProblemDoc, PersonDoc, PageDoc)),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct ApiDoc;

static DOCUMENT: LazyLock<serde_json::Value> =
    LazyLock::new(|| serde_json::to_value(ApiDoc::openapi()).unwrap_or_default());

/// `GET /openapi.json`.
pub async fn document() -> Json<serde_json::Value> {
    Json(DOCUMENT.clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_lists_every_person_route_with_bearer_security() {
        let doc = super::DOCUMENT.clone();
        for path in [
            "/persons/{id}",
            "/persons",
            "/caseload",
            "/persons/by-nir/{nir}",
        ] {
            assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
        }
        assert!(doc["paths"]["/services"]["get"].is_object());
        for path in [
            "/persons/{id}/contact",
            "/persons/{id}/prescriptions",
            "/persons/{id}/follows",
            "/persons/{id}/follows/{follow_id}/end",
            "/persons/{id}/appointments",
        ] {
            assert!(doc["paths"][path]["post"].is_object(), "{path} missing");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
