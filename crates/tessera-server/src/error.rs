//! The HTTP layer's one error type: it alone decides status, `error` code and
//! `WWW-Authenticate`. What went wrong inside is logged here and never sent.
//!
//! Codes are stable API: clients may match on `error`. The token endpoint uses the
//! RFC 6749 §5.2 codes; bearer failures the RFC 6750 §3.1 ones.

use axum::http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::password::HashError;
use crate::store::StoreError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{code}: {description}")]
    BadRequest {
        /// Stable code, e.g. `invalid_request`, `invalid_username`.
        code: &'static str,
        /// Human-readable detail (never echoes secrets).
        description: String,
    },
    /// 401: no credential, or a credential that is not (or no longer) valid.
    #[error("unauthorized")]
    Unauthorized {
        /// A bearer token was presented: adds `error="invalid_token"` (RFC 6750 §3.1).
        invalid_token: bool,
    },
    /// 401 from `/v1/login`: unknown user and wrong password are the same answer.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// 403.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 404.
    #[error("not found")]
    NotFound,
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// 413.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 429: too many attempts; retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds for `Retry-After`.
        retry_after: u32,
    },
    /// An RFC 6749 §5.2 error from the token endpoint.
    #[error("oauth error {code}")]
    OAuth {
        /// HTTP status (400, or 401 for `invalid_client`).
        status: StatusCode,
        /// RFC 6749 code.
        code: &'static str,
        /// Detail.
        description: &'static str,
    },
    /// 503: a dependency (store, hashing capacity) is not available; retry later.
    #[error("service unavailable")]
    Unavailable {
        /// Seconds for `Retry-After`.
        retry_after: u32,
        /// What was unavailable (logged).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// 500: a bug or an unexpected backend failure (logged, not described).
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::BadRequest {
            code: "invalid_request",
            description: description.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable {
                retry_after: 1,
                source: Some(Box::new(e)),
            },
            StoreError::Conflict(what) => Self::Conflict(what),
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Saturated => Self::Unavailable {
                retry_after: 1,
                source: Some(Box::new(e)),
            },
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<crate::keys::KeyError> for ApiError {
    fn from(e: crate::keys::KeyError) -> Self {
        Self::Internal(Box::new(e))
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

const CHALLENGE: &str = r#"Bearer realm="tessera""#;
const CHALLENGE_INVALID: &str = r#"Bearer realm="tessera", error="invalid_token""#;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use StatusCode as S;
        let (status, code, description): (StatusCode, &str, Option<String>) = match &self {
            Self::BadRequest { code, description } => {
                (S::BAD_REQUEST, code, Some(description.clone()))
            }
            Self::Unauthorized {
                invalid_token: true,
            } => (
                S::UNAUTHORIZED,
                "invalid_token",
                Some("the access token is invalid, expired or revoked".into()),
            ),
            Self::Unauthorized {
                invalid_token: false,
            } => (
                S::UNAUTHORIZED,
                "unauthorized",
                Some("authentication required".into()),
            ),
            Self::InvalidCredentials => (
                S::UNAUTHORIZED,
                "invalid_credentials",
                Some("invalid username or password".into()),
            ),
            Self::Forbidden(code) => (S::FORBIDDEN, code, None),
            Self::NotFound => (S::NOT_FOUND, "not_found", None),
            Self::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "method_not_allowed", None),
            Self::Conflict(what) => (S::CONFLICT, "conflict", Some((*what).into())),
            Self::PayloadTooLarge => (S::PAYLOAD_TOO_LARGE, "payload_too_large", None),
            Self::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                Some("send application/json or application/x-www-form-urlencoded".into()),
            ),
            Self::TooManyRequests { .. } => (
                S::TOO_MANY_REQUESTS,
                "too_many_requests",
                Some("too many login attempts; retry later".into()),
            ),
            Self::OAuth {
                status,
                code,
                description,
            } => (*status, code, Some((*description).into())),
            Self::Unavailable { source, .. } => {
                tracing::warn!(error = ?source, "dependency unavailable");
                (S::SERVICE_UNAVAILABLE, "temporarily_unavailable", None)
            }
            Self::Internal(source) => {
                tracing::error!(error = ?source, "internal error");
                (S::INTERNAL_SERVER_ERROR, "server_error", None)
            }
        };
        let body = Body {
            error: code,
            error_description: description.as_deref(),
        };
        let mut res = (status, axum::Json(body)).into_response();
        let headers = res.headers_mut();
        match &self {
            Self::Unauthorized {
                invalid_token: true,
            } => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(CHALLENGE_INVALID),
                );
            }
            Self::Unauthorized { .. } | Self::InvalidCredentials => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
            }
            Self::OAuth { status, .. } => {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if *status == StatusCode::UNAUTHORIZED {
                    headers.insert(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"Basic realm="tessera""#),
                    );
                }
            }
            Self::Unavailable { retry_after, .. } | Self::TooManyRequests { retry_after } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        res
    }
}
