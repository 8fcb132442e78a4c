//! Signing keys: generation, import, rotation, and the [`KeyRing`] that signs access
//! tokens, verifies them and publishes the JWKS.
//!
//! Keys live in the [`KeyStore`] (the SQLite file, mode 0600, by default): generated on
//! first start and loaded on every later one, so a restart invalidates no token. The `kid`
//! is the RFC 7638 thumbprint of the public key.
//!
//! A key's state is derived from two instants and the clock, never stored, so every
//! instance computes the same answer without coordination:
//! - **next**: published (`created_at`), not yet signing (`activates_at` in the future).
//!   Rotation publishes a key `key_prepublish_delay` before it signs — at least the JWKS
//!   `max-age` — so that no verifier with a cached JWKS sees a `kid` it does not know.
//! - **active**: the most recently activated key; it signs.
//! - **retiring**: superseded, still published until every token it signed has expired
//!   (successor's activation + access-token lifetime + leeway).
//! - **retired**: withdrawn from the JWKS.
//!
//! HS256 is available only through an explicitly configured shared secret; then nothing is
//! published (a shared secret has no public half).

use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::Serialize;
use tessera_verify::{KeySet, Policy, Verifier};

use crate::store::{KeyStore, SigningKeyRecord, StoreError};

/// Why keys could not be loaded, made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key material could not be used.
    #[error("signing key {kid}: {message}")]
    Invalid {
        /// The key's id (or what is known of it).
        kid: String,
        /// What is wrong.
        message: String,
    },
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

fn invalid(kid: &str, message: impl Into<String>) -> KeyError {
    KeyError::Invalid {
        kid: kid.to_owned(),
        message: message.into(),
    }
}

/// Algorithms tessera generates and imports asymmetric keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum SigningAlgorithm {
    /// Ed25519 (the default): small, fast, no parameter choices to get wrong.
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
}

impl SigningAlgorithm {
    fn jose(self) -> Algorithm {
        match self {
            Self::EdDSA => Algorithm::EdDSA,
            Self::ES256 => Algorithm::ES256,
            Self::RS256 => Algorithm::RS256,
        }
    }
}

fn pkcs8_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()))
}

fn encoding_key(alg: Algorithm, pem: &str) -> Result<EncodingKey, jsonwebtoken::errors::Error> {
    match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
}

fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: Option<&str>) -> Result<Jwk, String> {
    let mut jwk = Jwk::from_encoding_key(key, alg).map_err(|e| e.to_string())?;
    jwk.common.key_id = kid.map(str::to_owned);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}

/// A record for a PKCS#8 private key of `alg`, with its thumbprint `kid`.
fn record(
    alg: Algorithm,
    pkcs8_der: &[u8],
    created_at: i64,
    activates_at: i64,
) -> Result<SigningKeyRecord, KeyError> {
    let pem = pkcs8_pem(pkcs8_der);
    let key = encoding_key(alg, &pem).map_err(|e| invalid("new", e.to_string()))?;
    let kid = public_jwk(&key, alg, None)
        .and_then(|j| {
            j.thumbprint(ThumbprintHash::SHA256)
                .map_err(|e| e.to_string())
        })
        .map_err(|m| invalid("new", m))?;
    Ok(SigningKeyRecord {
        kid,
        alg: format!("{alg:?}"),
        private_pem: pem,
        created_at,
        activates_at,
    })
}

/// Generate a fresh key pair.
pub fn generate(
    alg: SigningAlgorithm,
    created_at: i64,
    activates_at: i64,
) -> Result<SigningKeyRecord, KeyError> {
    let failed = |_| invalid("new", "key generation failed");
    let der: Vec<u8> = match alg {
        SigningAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        SigningAlgorithm::ES256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(failed)?
                .as_ref()
                .to_vec()
        }
        SigningAlgorithm::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(failed)?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).map_err(failed)?;
            der.as_ref().to_vec()
        }
    };
    record(alg.jose(), &der, created_at, activates_at)
}

/// Read a PKCS#8 PEM private key (Ed25519, P-256, or RSA of at least 2048 bits); the
/// algorithm follows from the key.
pub fn import_pem(
    text: &str,
    created_at: i64,
    activates_at: i64,
) -> Result<SigningKeyRecord, KeyError> {
    let parsed = pem::parse(text).map_err(|e| invalid("import", format!("not a PEM file: {e}")))?;
    if parsed.tag() != "PRIVATE KEY" {
        return Err(invalid(
            "import",
            format!(
                "expected a PKCS#8 \"PRIVATE KEY\", found \"{}\" (convert with: openssl pkcs8 -topk8 -nocrypt)",
                parsed.tag()
            ),
        ));
    }
    let der = parsed.contents();
    if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        // Normalise to PKCS#8 v1, the form the JWT library reads.
        let v1 = kp
            .to_pkcs8v1()
            .map_err(|_| invalid("import", "unusable Ed25519 key"))?;
        return record(Algorithm::EdDSA, v1.as_ref(), created_at, activates_at);
    }
    if EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).is_ok() {
        return record(Algorithm::ES256, der, created_at, activates_at);
    }
    if let Ok(kp) = aws_lc_rs::rsa::KeyPair::from_pkcs8(der) {
        if kp.public_modulus_len() * 8 < 2048 {
            return Err(invalid("import", "RSA keys must have at least 2048 bits"));
        }
        return record(Algorithm::RS256, der, created_at, activates_at);
    }
    Err(invalid(
        "import",
        "unsupported key: use Ed25519, P-256 or RSA >= 2048 bits",
    ))
}

/// Where a key is in its life at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing.
    Active,
    /// Superseded; published until its tokens have expired.
    Retiring,
    /// Withdrawn.
    Retired,
}

/// The state of each of `records` (sorted by activation) at `now`, given the longest
/// lifetime a token can have (`ttl` + leeway).
pub fn states(records: &[SigningKeyRecord], now: i64, token_lifetime: i64) -> Vec<KeyState> {
    let active = records.iter().rposition(|r| r.activates_at <= now);
    records
        .iter()
        .enumerate()
        .map(|(i, r)| match active {
            _ if r.activates_at > now => {
                if active.is_none() && i == 0 {
                    KeyState::Active
                } else {
                    KeyState::Next
                }
            }
            Some(a) if i == a => KeyState::Active,
            _ => {
                let successor = records.get(i + 1).map_or(now, |s| s.activates_at);
                if now < successor + token_lifetime {
                    KeyState::Retiring
                } else {
                    KeyState::Retired
                }
            }
        })
        .collect()
}

/// Verified tokens remembered per key ring (see `Verifier::with_cache`): a token seen again
/// costs a hash lookup instead of a signature check; expiry and revocation are still
/// checked on every request.
const VERIFIED_TOKEN_CACHE: usize = 65_536;

struct SigningKey {
    alg: Algorithm,
    key: EncodingKey,
    /// base64url of the JOSE header, computed once: it is the same for every token.
    header_b64: String,
    activates_at: i64,
}

#[derive(Serialize)]
struct JoseHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

fn signing_key(
    kid: &str,
    alg: Algorithm,
    key: EncodingKey,
    activates_at: i64,
) -> Result<SigningKey, KeyError> {
    let name = format!("{alg:?}");
    let header = serde_json::to_vec(&JoseHeader {
        alg: &name,
        typ: "at+jwt",
        kid,
    })
    .map_err(|e| invalid(kid, e.to_string()))?;
    Ok(SigningKey {
        alg,
        key,
        header_b64: URL_SAFE_NO_PAD.encode(header),
        activates_at,
    })
}

/// The `kid` of the one configured HS256 key.
pub const HS256_KID: &str = "hs256";

/// A snapshot of the keys: what signs, what verifies, what is published.
pub struct KeyRing {
    /// Keys that may sign, by activation; the newest activated one signs.
    signers: Vec<SigningKey>,
    verifier: Arc<Verifier>,
    jwks_json: Arc<str>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.signers.len())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Build from stored records as of `now`.
    pub fn from_records(
        records: &[SigningKeyRecord],
        policy: Policy,
        now: i64,
        token_lifetime: i64,
    ) -> Result<Self, KeyError> {
        let mut keys = KeySet::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        let mut signers = Vec::new();
        for (r, state) in records.iter().zip(states(records, now, token_lifetime)) {
            if state == KeyState::Retired {
                continue;
            }
            let alg: Algorithm = r
                .alg
                .parse()
                .map_err(|_| invalid(&r.kid, format!("unknown alg {}", r.alg)))?;
            let key =
                encoding_key(alg, &r.private_pem).map_err(|e| invalid(&r.kid, e.to_string()))?;
            let jwk = public_jwk(&key, alg, Some(&r.kid)).map_err(|m| invalid(&r.kid, m))?;
            let decoding =
                DecodingKey::from_jwk(&jwk).map_err(|e| invalid(&r.kid, e.to_string()))?;
            keys.insert(r.kid.clone(), alg, decoding);
            jwks.keys.push(jwk);
            signers.push(signing_key(&r.kid, alg, key, r.activates_at)?);
        }
        if signers.is_empty() {
            return Err(invalid("-", "no usable signing key"));
        }
        let jwks_json = serde_json::to_string(&jwks).map_err(|e| invalid("-", e.to_string()))?;
        Ok(Self {
            signers,
            verifier: Arc::new(Verifier::new(keys, policy).with_cache(VERIFIED_TOKEN_CACHE)),
            jwks_json: jwks_json.into(),
        })
    }

    /// A ring with one HS256 shared secret: signs and verifies; publishes nothing.
    pub fn hs256(secret: &[u8], policy: Policy) -> Result<Self, KeyError> {
        // Not derived from the secret: a fingerprint in every token's header would let
        // anyone test guesses of the secret against it without a single request.
        let kid = HS256_KID.to_owned();
        let mut keys = KeySet::new();
        keys.insert(
            kid.clone(),
            Algorithm::HS256,
            DecodingKey::from_secret(secret),
        );
        let signer = signing_key(&kid, Algorithm::HS256, EncodingKey::from_secret(secret), 0)?;
        Ok(Self {
            signers: vec![signer],
            verifier: Arc::new(Verifier::new(keys, policy).with_cache(VERIFIED_TOKEN_CACHE)),
            jwks_json: r#"{"keys":[]}"#.into(),
        })
    }

    fn active(&self, now: i64) -> Result<&SigningKey, KeyError> {
        self.signers
            .iter()
            .rev()
            .find(|k| k.activates_at <= now)
            .or(self.signers.first())
            .ok_or(KeyError::Sign)
    }

    /// Sign `claims` at `now` as a compact JWS with the active key and `typ: at+jwt`.
    pub fn sign<T: Serialize>(&self, claims: &T, now: i64) -> Result<String, KeyError> {
        let key = self.active(now)?;
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let message = format!("{}.{}", key.header_b64, URL_SAFE_NO_PAD.encode(payload));
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key.key, key.alg)
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
        let mut algs: Vec<String> = self
            .signers
            .iter()
            .map(|k| format!("{:?}", k.alg))
            .collect();
        algs.sort();
        algs.dedup();
        algs
    }
}

/// How the server's keys are configured.
#[derive(Clone)]
pub struct KeyPolicy {
    /// Verification policy.
    pub policy: Policy,
    /// Algorithm for generated keys.
    pub algorithm: SigningAlgorithm,
    /// HS256 secret: overrides everything else.
    pub hs256_secret: Option<Arc<[u8]>>,
    /// Longest a token lives (ttl + leeway), seconds.
    pub token_lifetime: i64,
}

/// The live key ring, swapped atomically when the store changes (rotation reaches a
/// running server without restart) or as keys move through their states with time.
pub struct Keys {
    ring: ArcSwap<KeyRing>,
    config: KeyPolicy,
}

impl Keys {
    /// Load from the store, generating a first key if there is none.
    pub async fn load_or_create(
        store: &dyn KeyStore,
        config: KeyPolicy,
        now: i64,
    ) -> Result<Self, KeyError> {
        if let Some(secret) = &config.hs256_secret {
            let ring = KeyRing::hs256(secret, config.policy.clone())?;
            return Ok(Self {
                ring: ArcSwap::from_pointee(ring),
                config,
            });
        }
        let mut records = store.signing_keys().await?;
        if records.is_empty() {
            let fresh = generate(config.algorithm, now, now)?;
            match store.add_signing_key(&fresh).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            // Re-read: if another instance raced us, everyone settles on what is stored.
            records = store.signing_keys().await?;
        }
        let ring =
            KeyRing::from_records(&records, config.policy.clone(), now, config.token_lifetime)?;
        Ok(Self {
            ring: ArcSwap::from_pointee(ring),
            config,
        })
    }

    /// Rebuild the ring from the store as of `now`.
    pub async fn reload(&self, store: &dyn KeyStore, now: i64) -> Result<(), KeyError> {
        if self.config.hs256_secret.is_some() {
            return Ok(());
        }
        let records = store.signing_keys().await?;
        let ring = KeyRing::from_records(
            &records,
            self.config.policy.clone(),
            now,
            self.config.token_lifetime,
        )?;
        self.ring.store(Arc::new(ring));
        Ok(())
    }

    /// The current ring.
    pub fn ring(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.ring.load()
    }

    /// How the keys are configured.
    pub fn policy(&self) -> &KeyPolicy {
        &self.config
    }
}

impl crate::Core {
    /// Every stored key with its state now.
    pub async fn signing_keys(&self) -> Result<Vec<(SigningKeyRecord, KeyState)>, crate::Error> {
        let records = self.stores.keys.signing_keys().await?;
        let states = states(&records, self.now(), self.keys.policy().token_lifetime);
        Ok(records.into_iter().zip(states).collect())
    }

    /// Add a new key of `algorithm` (default: the configured one), published now and
    /// signing after `prepublish` — at least the JWKS cache lifetime, so that no verifier
    /// meets a `kid` it has not fetched.
    pub async fn rotate_key(
        &self,
        algorithm: Option<SigningAlgorithm>,
        prepublish: std::time::Duration,
    ) -> Result<SigningKeyRecord, crate::Error> {
        let now = self.now();
        let alg = algorithm.unwrap_or(self.keys.policy().algorithm);
        let new = generate(alg, now, now + crate::policy::secs(prepublish))?;
        self.stores.keys.add_signing_key(&new).await?;
        Ok(new)
    }

    /// Import a PKCS#8 PEM private key as the next key, signing after `prepublish`.
    pub async fn import_key(
        &self,
        pem: &str,
        prepublish: std::time::Duration,
    ) -> Result<SigningKeyRecord, crate::Error> {
        let now = self.now();
        let new = import_pem(pem, now, now + crate::policy::secs(prepublish))
            .map_err(|e| crate::Error::invalid("invalid_key", e.to_string()))?;
        self.stores.keys.add_signing_key(&new).await?;
        Ok(new)
    }
}
