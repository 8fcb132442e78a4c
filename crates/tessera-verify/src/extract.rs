//! axum glue: an extractor that yields the verified claims of a bearer token.
//!
//! ```ignore
//! async fn handler(Bearer(claims): Bearer) -> String { claims.sub }
//! let app = Router::new().route("/", get(handler)).with_state(Arc::new(verifier));
//! ```

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::bearer::bearer_token;
use crate::{AccessClaims, Verifier};

/// The verified claims of the request's `Authorization: Bearer` token.
#[derive(Debug, Clone)]
pub struct Bearer(pub AccessClaims);

/// Why [`Bearer`] refused a request: a 401 with the RFC 6750 §3 challenge.
#[derive(Debug)]
pub struct BearerRejection {
    /// `true` when a token was presented (then `error="invalid_token"` is added).
    pub token_presented: bool,
    /// `invalid_request` when the header itself was malformed.
    pub malformed: bool,
}

impl IntoResponse for BearerRejection {
    fn into_response(self) -> Response {
        let (status, challenge, code) = if self.malformed {
            (
                StatusCode::BAD_REQUEST,
                r#"Bearer realm="tessera", error="invalid_request""#,
                "invalid_request",
            )
        } else if self.token_presented {
            (
                StatusCode::UNAUTHORIZED,
                r#"Bearer realm="tessera", error="invalid_token""#,
                "invalid_token",
            )
        } else {
            (
                StatusCode::UNAUTHORIZED,
                r#"Bearer realm="tessera""#,
                "unauthorized",
            )
        };
        let body = format!(r#"{{"error":"{code}"}}"#);
        let mut res = (status, [("content-type", "application/json")], body).into_response();
        res.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        res
    }
}

impl<S> FromRequestParts<S> for Bearer
where
    S: Send + Sync,
    Arc<Verifier>: FromRef<S>,
{
    type Rejection = BearerRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let values = parts
            .headers
            .get_all(AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes());
        let token = match bearer_token(values) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Err(BearerRejection {
                    token_presented: false,
                    malformed: false,
                });
            }
            Err(_) => {
                return Err(BearerRejection {
                    token_presented: true,
                    malformed: true,
                });
            }
        };
        let verifier = Arc::<Verifier>::from_ref(state);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        verifier
            .verify(token, now)
            .map(Bearer)
            .map_err(|_| BearerRejection {
                token_presented: true,
                malformed: false,
            })
    }
}
