//! Who is calling, and the request id.

use axum::http::HeaderMap;
use uuid::Uuid;

/// The caller as named by the development identity headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub organisation: String,
}

pub const USER_HEADER: &str = "x-socle-user";
pub const ORGANISATION_HEADER: &str = "x-socle-organisation";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Why the caller could not be identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerError {
    Missing(&'static str),
    Invalid(&'static str),
}

impl std::fmt::Display for CallerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallerError::Missing(h) => write!(f, "header {h} is required"),
            CallerError::Invalid(h) => write!(
                f,
                "header {h} must be 1 to 128 printable ASCII characters without spaces"
            ),
        }
    }
}

fn header(headers: &HeaderMap, name: &'static str) -> Result<String, CallerError> {
    let value = headers.get(name).ok_or(CallerError::Missing(name))?;
    let text = value.to_str().map_err(|_| CallerError::Invalid(name))?;
    if text.is_empty() || text.len() > 128 || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CallerError::Invalid(name));
    }
    Ok(text.to_owned())
}

/// The caller named by the headers.
pub fn identify(headers: &HeaderMap) -> Result<Caller, CallerError> {
    Ok(Caller {
        user: header(headers, USER_HEADER)?,
        organisation: header(headers, ORGANISATION_HEADER)?,
    })
}

/// The caller's `X-Request-Id` if it is a sane token, else a fresh UUIDv7.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn identifies_and_refuses_precisely() {
        let mut h = HeaderMap::new();
        assert_eq!(identify(&h), Err(CallerError::Missing(USER_HEADER)));
        h.insert(USER_HEADER, HeaderValue::from_static("conseiller-1"));
        assert_eq!(identify(&h), Err(CallerError::Missing(ORGANISATION_HEADER)));
        h.insert(ORGANISATION_HEADER, HeaderValue::from_static("has space"));
        assert_eq!(identify(&h), Err(CallerError::Invalid(ORGANISATION_HEADER)));
        h.insert(
            ORGANISATION_HEADER,
            HeaderValue::from_static("13000548100010"),
        );
        assert_eq!(
            identify(&h),
            Ok(Caller {
                user: "conseiller-1".into(),
                organisation: "13000548100010".into()
            })
        );
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("a;DROP TABLE"));
        assert_ne!(request_id(&h), "a;DROP TABLE");
    }
}
