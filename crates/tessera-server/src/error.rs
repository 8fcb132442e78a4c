//! The HTTP layer's one error type: it alone decides status, `error` code and
//! `WWW-Authenticate`. What went wrong inside is logged here and never sent.
//!
//! Codes are stable API: clients may match on `error`. The token endpoint uses the
//! RFC 6749 §5.2 codes; bearer failures the RFC 6750 §3.1 ones.

use axum::http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use tessera_core::Error;

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
    /// 403 to a bearer-authenticated request: the token is valid but does not allow this
    /// (RFC 6750 §3.1 `insufficient_scope`); the body's code says what is missing.
    #[error("insufficient scope: {0}")]
    InsufficientScope(&'static str),
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
        description: std::borrow::Cow<'static, str>,
        /// Answer with `WWW-Authenticate: Basic` (RFC 6749 §5.2): only when the request
        /// tried HTTP Basic, so a browser never shows a credentials prompt it was not
        /// asked for (and never starts attaching Basic credentials to this site).
        basic_challenge: bool,
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

impl ApiError {
    /// The one constructor of RFC 6749 §5.2 errors: 401 for `invalid_client` (with a Basic
    /// challenge), 400 for every other code.
    pub fn oauth(
        code: &'static str,
        description: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Self {
        let status = if code == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        Self::OAuth {
            status,
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }

    /// The same error, answering with a Basic challenge if `tried_basic` and it is a 401.
    pub fn challenging_basic(mut self, tried_basic: bool) -> Self {
        if let Self::OAuth {
            status,
            basic_challenge,
            ..
        } = &mut self
        {
            *basic_challenge = tried_basic && *status == StatusCode::UNAUTHORIZED;
        }
        self
    }

    /// A core error as the OAuth endpoints say it: input errors become RFC 6749
    /// `invalid_request` (or the input's own OAuth code); the rest as everywhere.
    pub fn from_oauth(e: Error) -> Self {
        match e {
            Error::InvalidInput { code, description } => {
                let code = if code.starts_with("invalid_") && OAUTH_CODES.contains(&code) {
                    code
                } else {
                    "invalid_request"
                };
                Self::oauth(code, description)
            }
            other => other.into(),
        }
    }
}

/// RFC 6749 §5.2 codes an input error may carry as itself.
const OAUTH_CODES: &[&str] = &["invalid_request", "invalid_scope"];

/// How the HTTP API says each core error: status codes and `error` codes are stable API.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidInput { code, description } => Self::BadRequest { code, description },
            Error::InvalidCredentials => Self::InvalidCredentials,
            Error::Unauthenticated => Self::Unauthorized {
                invalid_token: false,
            },
            Error::Throttled { retry_after } => Self::TooManyRequests { retry_after },
            Error::InvalidGrant(description) => Self::oauth("invalid_grant", description),
            Error::InvalidClient(description) => Self::oauth("invalid_client", description),
            Error::UnauthorizedClient => Self::oauth(
                "unauthorized_client",
                "the token was not issued to this client",
            ),
            Error::Forbidden(code) => Self::Forbidden(code),
            Error::NotFound => Self::NotFound,
            Error::Conflict(what) => Self::Conflict(what),
            e @ (Error::StaleRevocationState | Error::Unavailable(_)) => Self::Unavailable {
                retry_after: 1,
                source: Some(Box::new(e)),
            },
            e => Self::Internal(Box::new(e)),
        }
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
            Self::Forbidden(code) | Self::InsufficientScope(code) => (S::FORBIDDEN, code, None),
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
                ..
            } => (*status, code, Some(description.to_string())),
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
            Self::InsufficientScope(_) => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Bearer realm="tessera", error="insufficient_scope""#,
                    ),
                );
            }
            Self::Unauthorized { .. } | Self::InvalidCredentials => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
            }
            Self::OAuth {
                basic_challenge, ..
            } => {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if *basic_challenge {
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
