//! The claims of a tessera access token (RFC 9068 §2.2, plus `role` and `username`).

use serde::{Deserialize, Serialize};

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience, serialized as a string.
    One(String),
    /// Several audiences, serialized as an array.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` names `wanted`.
    pub fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

/// Claims of an access token that passed verification.
///
/// Every registered claim RFC 9068 requires is a required field here: a token without one
/// does not deserialize, so it cannot verify. Duplicate members are refused by the
/// deserializer (serde rejects a repeated field), which closes the "which of the two `sub`s
/// did you check" class of confusion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the tessera server's public URL.
    pub iss: String,
    /// Subject: the user's stable id (not the username, which can change).
    pub sub: String,
    /// Audience: the resource servers this token is for.
    pub aud: Audience,
    /// Expiry, seconds since the Unix epoch.
    #[serde(with = "numeric_date")]
    pub exp: i64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(with = "numeric_date")]
    pub iat: i64,
    /// Not before, seconds since the Unix epoch (optional in tessera's tokens).
    #[serde(
        default,
        with = "numeric_date_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// Unique token id: the handle by which one access token is revoked.
    pub jti: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// The user's role at issuance.
    pub role: String,
    /// The user's name at issuance (display only; authorize on `sub`).
    pub username: String,
    /// The login (session or refresh family) this token belongs to, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Latest NumericDate accepted: 9999-12-31T23:59:59Z. Anything later is a malformed or
/// hostile value, not a real expiry.
pub const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

fn numeric_from(n: &serde_json::Number) -> Option<i64> {
    let v = if let Some(i) = n.as_i64() {
        i
    } else {
        let f = n.as_f64()?;
        if !f.is_finite() || f < 0.0 || f > MAX_NUMERIC_DATE as f64 {
            return None;
        }
        f.floor() as i64
    };
    (0..=MAX_NUMERIC_DATE).contains(&v).then_some(v)
}

mod numeric_date {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(*v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        super::numeric_from(&n).ok_or_else(|| D::Error::custom("NumericDate out of range"))
    }
}

mod numeric_date_opt {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_i64(*v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        super::numeric_from(&n)
            .map(Some)
            .ok_or_else(|| D::Error::custom("NumericDate out of range"))
    }
}
