//! Opaque secrets: session tokens, refresh tokens, client secrets.
//!
//! Each is 32 bytes from the system CSPRNG (256 bits), base64url-encoded (43 characters).
//! Stores keep only the SHA-256 of a secret ([`TokenHash`]): a copy of the database yields
//! nothing usable. A secret with 256 bits of entropy needs no slow hash, and lookup by hash
//! means no secret is ever compared with a data-dependent early exit.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::Error;

/// A fresh opaque secret (43 base64url characters, 256 bits of entropy).
pub fn generate() -> Result<String, Error> {
    let mut buf = [0u8; 32];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| Error::internal("CSPRNG failure"))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// `n` random bytes, base64url-encoded (for identifiers such as client ids).
pub fn random_id(n: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| Error::internal("CSPRNG failure"))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// `n` random bytes (for keys).
pub fn random_bytes(n: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| Error::internal("CSPRNG failure"))?;
    Ok(buf)
}

/// The stored form of a secret: its SHA-256.
pub fn hash(secret: &str) -> Vec<u8> {
    digest(&SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// Lower-case hex of a hash, for keys and feed events.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The bytes of a lower-case or upper-case hex string.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// A `Debug` stand-in for a secret or a hash of one.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_fresh_and_hex_roundtrips() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(hash(&a).len(), 32);
        let bytes = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
