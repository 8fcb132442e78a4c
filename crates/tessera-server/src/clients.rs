//! Confidential OAuth clients (resource servers) and HTTP Basic client authentication
//! (RFC 6749 §2.3.1).

use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::session::hash_token;
use crate::store::{Client, ClientStore};

/// A new client and its secret, shown once.
pub struct NewClient {
    /// The stored client.
    pub client: Client,
    /// The secret in clear: printed once, never stored.
    pub secret: String,
}

/// Register a confidential client.
pub async fn create(store: &dyn ClientStore, name: &str, now: i64) -> Result<NewClient, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::invalid_request(
            "client names are 1-100 characters",
        ));
    }
    let mut id = [0u8; 12];
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| ApiError::Internal("CSPRNG failure".into()))?;
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| ApiError::Internal("CSPRNG failure".into()))?;
    let id = format!("c_{}", URL_SAFE_NO_PAD.encode(id));
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let client = Client {
        id,
        name: name.to_owned(),
        secret_hash: hash_token(&secret),
        created_at: now,
    };
    store.create_client(&client).await?;
    Ok(NewClient { client, secret })
}

fn invalid_client() -> ApiError {
    ApiError::OAuth {
        status: StatusCode::UNAUTHORIZED,
        code: "invalid_client",
        description: "client authentication failed",
    }
}

/// The client authenticated by the request's `Authorization: Basic` header; `Ok(None)`
/// when there is no Basic header; `invalid_client` when there is one and it fails.
///
/// The secret is compared as a SHA-256 hash in constant time; an unknown client id costs
/// the same comparison against a fixed hash.
pub async fn authenticate(
    store: &dyn ClientStore,
    headers: &HeaderMap,
) -> Result<Option<Client>, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::OAuth {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            description: "more than one Authorization header",
        });
    }
    let value = value.to_str().map_err(|_| invalid_client())?;
    let Some((scheme, creds)) = value.split_once(' ') else {
        return Err(invalid_client());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(creds.trim())
        .map_err(|_| invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid_client())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(invalid_client)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    let (id, secret) = (
        decode(id).ok_or_else(invalid_client)?,
        decode(secret).ok_or_else(invalid_client)?,
    );
    let client = store.client_by_id(&id).await?;
    let presented = hash_token(&secret);
    let expected = client
        .as_ref()
        .map(|c| c.secret_hash.clone())
        .unwrap_or_else(|| vec![0u8; 32]);
    let matches: bool = presented.ct_eq(&expected).into();
    match client {
        Some(c) if matches => Ok(Some(c)),
        _ => Err(invalid_client()),
    }
}
