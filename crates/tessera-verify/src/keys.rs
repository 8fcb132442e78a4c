//! Public keys by `kid`, each pinned to one algorithm.
//!
//! RFC 8725 §3.1: the algorithm must come from the key, not from the token. A [`KeySet`]
//! therefore stores, for every `kid`, the one [`Algorithm`] that key may be used with, and
//! the verifier refuses a token whose header names anything else.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Why a key set could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// The JWKS document is not valid JSON of the right shape.
    #[error("invalid JWKS document: {0}")]
    Json(#[from] serde_json::Error),
    /// A key has no `kid`; tessera's tokens always name their key.
    #[error("a key in the JWKS has no kid")]
    MissingKid,
    /// A key type or curve tessera does not verify with.
    #[error("key {kid}: unsupported key type or curve")]
    Unsupported {
        /// The key's id.
        kid: String,
    },
    /// The key's `alg` contradicts its type (e.g. `alg: HS256` on an RSA key).
    #[error("key {kid}: alg does not fit the key type")]
    AlgorithmMismatch {
        /// The key's id.
        kid: String,
    },
    /// The key material could not be decoded.
    #[error("key {kid}: {source}")]
    Key {
        /// The key's id.
        kid: String,
        /// What the JWT library said.
        source: jsonwebtoken::errors::Error,
    },
}

/// One verification key and the only algorithm it is used with.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The algorithm this key verifies; a token naming another is refused.
    pub algorithm: Algorithm,
    /// The decoded key material.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Verification keys by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// An empty key set: verifies nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Build from a JWKS document as served at `/.well-known/jwks.json`.
    pub fn from_jwks_json(json: &str) -> Result<Self, KeySetError> {
        let set: JwkSet = serde_json::from_str(json)?;
        Self::from_jwks(&set)
    }

    /// Build from parsed JWKs. Symmetric (`oct`) keys are refused: a shared secret is never
    /// published, and accepting one from a key set is how HS256/RS256 confusion happens.
    pub fn from_jwks(set: &JwkSet) -> Result<Self, KeySetError> {
        let mut keys = KeySet::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().ok_or(KeySetError::MissingKid)?;
            let algorithm = algorithm_for(jwk, &kid)?;
            let key = DecodingKey::from_jwk(jwk).map_err(|source| KeySetError::Key {
                kid: kid.clone(),
                source,
            })?;
            keys.insert(kid, algorithm, key);
        }
        Ok(keys)
    }

    /// Add (or replace) a key. Use this for an HS256 secret configured on both sides.
    pub fn insert(&mut self, kid: impl Into<String>, algorithm: Algorithm, key: DecodingKey) {
        self.keys
            .insert(kid.into(), VerifyingKey { algorithm, key });
    }

    /// The key with this id.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The algorithm a JWK may be used with, derived from its type and curve; a stated `alg`
/// must agree with the type.
fn algorithm_for(jwk: &Jwk, kid: &str) -> Result<Algorithm, KeySetError> {
    let unsupported = || KeySetError::Unsupported {
        kid: kid.to_owned(),
    };
    let mismatch = || KeySetError::AlgorithmMismatch {
        kid: kid.to_owned(),
    };
    let stated = jwk.common.key_algorithm;
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err(unsupported()),
        },
        AlgorithmParameters::RSA(_) => match stated {
            None | Some(KeyAlgorithm::RS256) => Algorithm::RS256,
            Some(KeyAlgorithm::RS384) => Algorithm::RS384,
            Some(KeyAlgorithm::RS512) => Algorithm::RS512,
            Some(KeyAlgorithm::PS256) => Algorithm::PS256,
            Some(KeyAlgorithm::PS384) => Algorithm::PS384,
            Some(KeyAlgorithm::PS512) => Algorithm::PS512,
            Some(_) => return Err(mismatch()),
        },
        _ => return Err(unsupported()),
    };
    if let Some(stated) = stated {
        let fits = match (stated, algorithm) {
            (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
            | (KeyAlgorithm::ES256, Algorithm::ES256)
            | (KeyAlgorithm::ES384, Algorithm::ES384) => true,
            (_, a) => matches!(
                a,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
        };
        if !fits {
            return Err(mismatch());
        }
    }
    Ok(algorithm)
}
