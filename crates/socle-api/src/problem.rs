//! Errors as `application/problem+json` (RFC 9457), each with a stable `code`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A problem document.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `person.invalid_id`.
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Sent as the `WWW-Authenticate` header (401s), not in the body.
    #[serde(skip)]
    pub www_authenticate: Option<String>,
    /// Sent as the `Retry-After` header (429s, in whole seconds), not in the body.
    #[serde(skip)]
    pub retry_after: Option<std::time::Duration>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            kind: format!("https://socle.invalid/problems/{code}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            code,
            request_id: None,
            www_authenticate: None,
            retry_after: None,
        }
    }

    pub fn with_www_authenticate(mut self, challenge: String) -> Self {
        self.www_authenticate = Some(challenge);
        self
    }

    /// Adds a `Retry-After` header (whole seconds, at least 1).
    #[must_use]
    pub fn with_retry_after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn with_request_id(mut self, id: &str) -> Self {
        self.request_id = Some(id.to_owned());
        self
    }

    pub fn trail_unavailable() -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "trail.unavailable",
            "Access trail unavailable",
            "the access could not be recorded in the trail, so nothing is disclosed; retry later",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(v) = self
            .www_authenticate
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(after) = self.retry_after {
            let secs = after.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// A problem for a request the framework could not parse (body, query, path).
pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
}

pub async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "route.not_found",
        "Not found",
        "no such route",
    )
}

pub async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "route.method_not_allowed",
        "Method not allowed",
        "this route does not accept that method",
    )
}
