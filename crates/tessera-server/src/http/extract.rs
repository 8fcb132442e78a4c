//! Body extractors whose rejections are [`ApiError`]s, so that every malformed body gets
//! the same JSON error shape (400, 413 or 415) instead of axum's plain-text defaults.

use axum::extract::FromRequestParts;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

fn from_status(status: StatusCode, what: &str) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        _ => ApiError::invalid_request(format!("the body is not a valid {what} for this endpoint")),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        from_status(r.status(), "JSON document")
    }
}

impl From<FormRejection> for ApiError {
    fn from(r: FormRejection) -> Self {
        from_status(r.status(), "form")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(_: QueryRejection) -> Self {
        ApiError::invalid_request("the query string is not valid for this endpoint")
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::invalid_request("the path is not valid for this endpoint")
    }
}

/// Query parameters, refused as a JSON 400 when malformed.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(v))
    }
}

/// Path parameters, refused as a JSON 400 when malformed.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(v))
    }
}

/// A JSON body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

/// A JSON or `application/x-www-form-urlencoded` body, by `Content-Type`: browsers post
/// forms, programs post JSON, and both log in through the same endpoint.
pub struct JsonOrForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonOrForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ct.starts_with("application/x-www-form-urlencoded") {
            let axum::Form(v) = axum::Form::<T>::from_request(req, state).await?;
            Ok(Self(v))
        } else if ct.starts_with("application/json") || ct.contains("+json") {
            let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
            Ok(Self(v))
        } else {
            Err(ApiError::UnsupportedMediaType)
        }
    }
}

/// An `application/x-www-form-urlencoded` body as name/value pairs, refusing any parameter
/// given twice (RFC 6749 §3.1) — the OAuth endpoints' body.
pub struct OAuthForm(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let oauth = |description: &'static str| ApiError::oauth("invalid_request", description);
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
        {
            return Err(oauth("the body must be application/x-www-form-urlencoded"));
        }
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    oauth("the body could not be read")
                }
            })?;
        let mut params = std::collections::HashMap::new();
        for (k, v) in url::form_urlencoded::parse(&body) {
            if params.insert(k.into_owned(), v.into_owned()).is_some() {
                return Err(oauth("a parameter was sent more than once"));
            }
        }
        Ok(Self(params))
    }
}
