//! The registry's errors, each mapped to Confluent's HTTP status and
//! `error_code`, so that clients written for Confluent's registry react the
//! same way (for example, a 40401 is "no such subject", never a 500).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Every way a registry operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' Version {1} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, i32),
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, i32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotFound(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .details.join(", "))]
    Incompatible {
        subject: String,
        details: Vec<String>,
    },
    #[error("{0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibility,
    #[error("Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT")]
    InvalidMode,
    #[error("{0}")]
    OperationNotPermitted(String),
    #[error("One or more references exist to the schema {{subject={0}, version={1}}}")]
    ReferenceExists(String, i32),
    #[error("{0}")]
    UnprocessableEntity(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("HTTP 404 Not Found")]
    RouteNotFound,
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    #[error("HTTP 415 Unsupported Media Type")]
    UnsupportedMediaType,
    #[error("{0} registration events are waiting to be published (is Kafka reachable?); changes are refused until they are")]
    EventBacklogFull(i64),
    #[error("Error in the backend data store")]
    Database(#[from] sqlx::Error),
    #[error("Error while serving HTTP")]
    Io(#[from] std::io::Error),
}

/// Results of registry operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Confluent's HTTP status and `error_code` for this error.
    pub fn codes(&self) -> (StatusCode, u32) {
        match self {
            Error::SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
            Error::VersionNotFound(_) => (StatusCode::NOT_FOUND, 40402),
            Error::SchemaNotFound(_) => (StatusCode::NOT_FOUND, 40403),
            Error::SubjectSoftDeleted(_) => (StatusCode::NOT_FOUND, 40404),
            Error::SubjectNotSoftDeleted(_) => (StatusCode::NOT_FOUND, 40405),
            Error::VersionSoftDeleted(..) => (StatusCode::NOT_FOUND, 40406),
            Error::VersionNotSoftDeleted(..) => (StatusCode::NOT_FOUND, 40407),
            Error::SubjectConfigNotFound(_) => (StatusCode::NOT_FOUND, 40408),
            Error::SubjectModeNotFound(_) => (StatusCode::NOT_FOUND, 40409),
            Error::Incompatible { .. } => (StatusCode::CONFLICT, 409),
            Error::InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            Error::InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
            Error::InvalidCompatibility => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            Error::InvalidMode => (StatusCode::UNPROCESSABLE_ENTITY, 42204),
            Error::OperationNotPermitted(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42205),
            Error::ReferenceExists(..) => (StatusCode::UNPROCESSABLE_ENTITY, 42206),
            Error::UnprocessableEntity(_) => (StatusCode::UNPROCESSABLE_ENTITY, 422),
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, 400),
            Error::RouteNotFound => (StatusCode::NOT_FOUND, 404),
            Error::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 405),
            Error::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, 415),
            Error::EventBacklogFull(_) => (StatusCode::SERVICE_UNAVAILABLE, 50301),
            Error::Database(_) | Error::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.codes();
        if status.is_server_error() {
            tracing::error!(error = %crate::error_chain(&self), "registry request failed");
        }
        let body = serde_json::json!({ "error_code": code, "message": self.to_string() });
        crate::http::json_response(status, &body)
    }
}
