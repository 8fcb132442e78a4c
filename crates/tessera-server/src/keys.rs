//! The signing side of tokens: the [`KeyRing`] holds the private key that signs access
//! tokens and the public key set that verifies them and is published as the JWKS.
//!
//! Keys live in the [`KeyStore`](crate::store::KeyStore) (the SQLite file, mode 0600, by
//! default): generated on first start, loaded on every later one, so a restart invalidates
//! no token. The `kid` is the RFC 7638 thumbprint of the public key.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::Serialize;
use tessera_verify::{KeySet, Policy, Verifier};

use crate::store::{KeyStore, SigningKeyRecord, StoreError};

/// Why keys could not be loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored key material could not be used.
    #[error("signing key {kid}: {message}")]
    Invalid {
        /// The key's id.
        kid: String,
        /// What is wrong.
        message: String,
    },
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

struct SigningKey {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    /// base64url of the JOSE header, computed once: it is the same for every token.
    header_b64: String,
}

/// Signing key, public keys and the verifier built from them.
pub struct KeyRing {
    active: SigningKey,
    verifier: Arc<Verifier>,
    jwks_json: Arc<str>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("kid", &self.active.kid)
            .finish_non_exhaustive()
    }
}

fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: Option<&str>) -> Result<Jwk, String> {
    let mut jwk = Jwk::from_encoding_key(key, alg).map_err(|e| e.to_string())?;
    jwk.common.key_id = kid.map(str::to_owned);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}

/// A fresh Ed25519 key with its thumbprint `kid`.
pub fn generate_ed25519(now: i64) -> Result<SigningKeyRecord, KeyError> {
    let invalid = |m: String| KeyError::Invalid {
        kid: "new".into(),
        message: m,
    };
    let doc = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
        .map_err(|_| invalid("key generation failed".into()))?;
    let key = EncodingKey::from_ed_der(doc.as_ref());
    let kid = public_jwk(&key, Algorithm::EdDSA, None)
        .and_then(|j| {
            j.thumbprint(ThumbprintHash::SHA256)
                .map_err(|e| e.to_string())
        })
        .map_err(invalid)?;
    Ok(SigningKeyRecord {
        kid,
        alg: "EdDSA".into(),
        private_der: doc.as_ref().to_vec(),
        created_at: now,
    })
}

#[derive(Serialize)]
struct JoseHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

impl KeyRing {
    /// Load the stored keys, generating and storing one on first start.
    pub async fn load_or_create(
        store: &dyn KeyStore,
        policy: Policy,
        now: i64,
    ) -> Result<Self, KeyError> {
        let mut records = store.signing_keys().await?;
        if records.is_empty() {
            let fresh = generate_ed25519(now)?;
            store.add_signing_key(&fresh).await?;
            // Re-read: if another instance raced us, everyone settles on what is stored.
            records = store.signing_keys().await?;
        }
        Self::from_records(&records, policy)
    }

    fn from_records(records: &[SigningKeyRecord], policy: Policy) -> Result<Self, KeyError> {
        let mut keys = KeySet::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        let mut active = None;
        for r in records {
            let invalid = |m: String| KeyError::Invalid {
                kid: r.kid.clone(),
                message: m,
            };
            let alg: Algorithm = r
                .alg
                .parse()
                .map_err(|_| invalid(format!("unknown alg {}", r.alg)))?;
            if alg != Algorithm::EdDSA {
                return Err(invalid("only EdDSA keys are supported".into()));
            }
            let key = EncodingKey::from_ed_der(&r.private_der);
            let jwk = public_jwk(&key, alg, Some(&r.kid)).map_err(invalid)?;
            let decoding =
                jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| invalid(e.to_string()))?;
            keys.insert(r.kid.clone(), alg, decoding);
            jwks.keys.push(jwk);
            let header = serde_json::to_vec(&JoseHeader {
                alg: &r.alg,
                typ: "at+jwt",
                kid: &r.kid,
            })
            .map_err(|e| invalid(e.to_string()))?;
            active = Some(SigningKey {
                kid: r.kid.clone(),
                alg,
                key,
                header_b64: URL_SAFE_NO_PAD.encode(header),
            });
        }
        let active = active.ok_or_else(|| KeyError::Invalid {
            kid: "-".into(),
            message: "no signing key".into(),
        })?;
        let jwks_json = serde_json::to_string(&jwks).map_err(|e| KeyError::Invalid {
            kid: "-".into(),
            message: e.to_string(),
        })?;
        Ok(Self {
            active,
            verifier: Arc::new(Verifier::new(keys, policy)),
            jwks_json: jwks_json.into(),
        })
    }

    /// Sign `claims` as a compact JWS with the active key and `typ: at+jwt`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let message = format!(
            "{}.{}",
            self.active.header_b64,
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &self.active.key, self.active.alg)
            .map_err(|_| KeyError::Sign)?;
        Ok(format!("{message}.{sig}"))
    }

    /// The verifier for tokens signed by this ring.
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// The public JWKS document (RFC 7517), as served.
    pub fn jwks_json(&self) -> &Arc<str> {
        &self.jwks_json
    }

    /// Algorithms in use, for the RFC 8414 metadata.
    pub fn algorithms(&self) -> Vec<String> {
        vec![format!("{:?}", self.active.alg)]
    }
}
