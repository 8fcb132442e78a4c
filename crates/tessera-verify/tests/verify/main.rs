//! Every refusal RFC 8725 asks for, one test each, against tokens signed with real keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};
use tessera_verify::{KeySet, Policy, Verifier, VerifyError};

const ISS: &str = "http://127.0.0.1:8080";
const AUD: &str = "tessera";
const NOW: i64 = 1_800_000_000;

struct Signer {
    kid: String,
    key: EncodingKey,
}

fn ed25519(kid: &str) -> (Signer, Jwk) {
    let doc = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).unwrap();
    let key = EncodingKey::from_ed_der(doc.as_ref());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).unwrap();
    jwk.common.key_id = Some(kid.into());
    (
        Signer {
            kid: kid.into(),
            key,
        },
        jwk,
    )
}

fn public_jwk_of(s: &Signer) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(&s.key, Algorithm::EdDSA).unwrap();
    jwk.common.key_id = Some(s.kid.clone());
    jwk
}

fn setup() -> (Signer, Verifier) {
    let (signer, jwk) = ed25519("k1");
    let keys = KeySet::from_jwks(&JwkSet { keys: vec![jwk] }).unwrap();
    (signer, Verifier::new(keys, Policy::new(ISS, AUD)))
}

fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "u1", "aud": AUD, "exp": NOW + 300, "iat": NOW,
        "jti": "j1", "client_id": "tessera", "role": "user", "username": "alice"
    })
}

fn header(s: &Signer) -> Value {
    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": s.kid})
}

fn enc(raw: &str) -> String {
    URL_SAFE_NO_PAD.encode(raw.as_bytes())
}

/// Signs raw header and payload text as given, so tests can send what no encoder would.
fn sign_raw(s: &Signer, alg: Algorithm, header: &str, payload: &str) -> String {
    let msg = format!("{}.{}", enc(header), enc(payload));
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &s.key, alg).unwrap();
    format!("{msg}.{sig}")
}

fn sign(s: &Signer, header: &Value, claims: &Value) -> String {
    sign_raw(
        s,
        Algorithm::EdDSA,
        &header.to_string(),
        &claims.to_string(),
    )
}

#[test]
fn a_good_token_verifies() {
    let (s, v) = setup();
    let c = v.verify(&sign(&s, &header(&s), &claims()), NOW).unwrap();
    assert_eq!(c.sub, "u1");
    assert_eq!(c.role, "user");
    assert_eq!(c.username, "alice");
}

#[test]
fn typ_is_case_insensitive_and_may_carry_application_prefix() {
    let (s, v) = setup();
    for typ in ["AT+JWT", "application/at+jwt"] {
        let mut h = header(&s);
        h["typ"] = json!(typ);
        assert!(v.verify(&sign(&s, &h, &claims()), NOW).is_ok(), "{typ}");
    }
}

#[test]
fn expiry_honours_the_leeway_and_no_more() {
    let (s, v) = setup();
    let t = sign(&s, &header(&s), &claims());
    assert!(v.verify(&t, NOW + 300 + 29).is_ok());
    assert_eq!(v.verify(&t, NOW + 300 + 30), Err(VerifyError::Expired));
}

#[test]
fn future_nbf_and_iat_are_refused() {
    let (s, v) = setup();
    let mut c = claims();
    c["nbf"] = json!(NOW + 120);
    assert_eq!(
        v.verify(&sign(&s, &header(&s), &c), NOW),
        Err(VerifyError::NotYetValid)
    );
    let mut c = claims();
    c["iat"] = json!(NOW + 120);
    assert_eq!(
        v.verify(&sign(&s, &header(&s), &c), NOW),
        Err(VerifyError::NotYetValid)
    );
}

#[test]
fn wrong_issuer_and_audience_are_refused() {
    let (s, v) = setup();
    let mut c = claims();
    c["iss"] = json!("http://evil.example");
    assert_eq!(
        v.verify(&sign(&s, &header(&s), &c), NOW),
        Err(VerifyError::WrongIssuer)
    );
    let mut c = claims();
    c["aud"] = json!(["other"]);
    assert_eq!(
        v.verify(&sign(&s, &header(&s), &c), NOW),
        Err(VerifyError::WrongAudience)
    );
    let mut c = claims();
    c["aud"] = json!(["other", AUD]);
    assert!(v.verify(&sign(&s, &header(&s), &c), NOW).is_ok());
}

#[test]
fn every_required_claim_is_required() {
    let (s, v) = setup();
    for missing in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "role",
    ] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(missing);
        assert_eq!(
            v.verify(&sign(&s, &header(&s), &c), NOW),
            Err(VerifyError::InvalidClaims),
            "{missing}"
        );
    }
}

#[test]
fn non_numeric_and_out_of_range_dates_are_refused() {
    let (s, v) = setup();
    for exp in [
        json!("1800000300"),
        json!(-1),
        json!(1e300),
        json!(253_402_300_800i64),
        json!(null),
    ] {
        let mut c = claims();
        c["exp"] = exp.clone();
        assert_eq!(
            v.verify(&sign(&s, &header(&s), &c), NOW),
            Err(VerifyError::InvalidClaims),
            "{exp}"
        );
    }
}

#[test]
fn duplicate_members_are_refused() {
    let (s, v) = setup();
    let payload = claims().to_string().replacen('{', r#"{"sub":"admin","#, 1);
    let t = sign_raw(&s, Algorithm::EdDSA, &header(&s).to_string(), &payload);
    assert_eq!(v.verify(&t, NOW), Err(VerifyError::InvalidClaims));
    let h = header(&s).to_string().replacen('{', r#"{"alg":"none","#, 1);
    let t = sign_raw(&s, Algorithm::EdDSA, &h, &claims().to_string());
    assert!(matches!(v.verify(&t, NOW), Err(VerifyError::Malformed(_))));
}

#[test]
fn alg_none_and_alg_swaps_are_refused() {
    let (s, v) = setup();
    let good = sign(&s, &header(&s), &claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let none = enc(&json!({"alg":"none","typ":"at+jwt","kid":"k1"}).to_string());
    parts[0] = &none;
    assert_eq!(
        v.verify(&format!("{}.{}.", parts[0], parts[1]), NOW),
        Err(VerifyError::AlgorithmMismatch)
    );
    // HS256 keyed with the published public key itself, in every encoding an attacker
    // might try: the classic key-confusion attack.
    let jwks = serde_json::to_value(JwkSet {
        keys: vec![public_jwk_of(&s)],
    })
    .unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let raw = URL_SAFE_NO_PAD.decode(&x).unwrap();
    let mut h = header(&s);
    h["alg"] = json!("HS256");
    for secret in [raw.clone(), x.into_bytes(), jwks.to_string().into_bytes()] {
        let hs = Signer {
            kid: "k1".into(),
            key: EncodingKey::from_secret(&secret),
        };
        let t = sign_raw(&hs, Algorithm::HS256, &h.to_string(), &claims().to_string());
        assert_eq!(v.verify(&t, NOW), Err(VerifyError::AlgorithmMismatch));
    }
}

#[test]
fn forbidden_header_members_are_refused_by_name() {
    let (s, v) = setup();
    for (name, value) in [
        ("crit", json!(["exp"])),
        ("jwk", json!({"kty":"OKP"})),
        ("jku", json!("http://evil/jwks")),
        ("x5u", json!("http://evil/x5u")),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut h = header(&s);
        h[name] = value;
        assert!(
            matches!(v.verify(&sign(&s, &h, &claims()), NOW), Err(VerifyError::ForbiddenHeader(n)) if n == name),
            "{name}"
        );
    }
}

#[test]
fn wrong_or_missing_typ_is_refused() {
    let (s, v) = setup();
    for typ in [Some("JWT"), Some("id+jwt"), None] {
        let mut h = header(&s);
        match typ {
            Some(t) => h["typ"] = json!(t),
            None => {
                h.as_object_mut().unwrap().remove("typ");
            }
        }
        assert_eq!(
            v.verify(&sign(&s, &h, &claims()), NOW),
            Err(VerifyError::WrongType)
        );
    }
}

#[test]
fn unknown_kid_and_foreign_key_are_refused() {
    let (_, v) = setup();
    let (other, _) = ed25519("k1");
    let t = sign(&other, &header(&other), &claims());
    assert_eq!(v.verify(&t, NOW), Err(VerifyError::BadSignature));
    let (stranger, _) = ed25519("k9");
    let t = sign(&stranger, &header(&stranger), &claims());
    assert_eq!(v.verify(&t, NOW), Err(VerifyError::UnknownKey));
}

#[test]
fn tampered_payload_fails_the_signature() {
    let (s, v) = setup();
    let t = sign(&s, &header(&s), &claims());
    let parts: Vec<&str> = t.split('.').collect();
    let mut c = claims();
    c["role"] = json!("admin");
    let forged = format!("{}.{}.{}", parts[0], enc(&c.to_string()), parts[2]);
    assert_eq!(v.verify(&forged, NOW), Err(VerifyError::BadSignature));
}

#[test]
fn non_canonical_base64_and_json_serialization_are_refused() {
    let (s, v) = setup();
    let t = sign(&s, &header(&s), &claims());
    // Ed25519 signatures are 64 bytes: 86 base64url chars, the last carrying 2 spare bits.
    let (body, last) = t.split_at(t.len() - 1);
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    let sibling = &alphabet[(idx ^ 1)..=(idx ^ 1)];
    let t2 = format!("{body}{sibling}");
    assert!(matches!(v.verify(&t2, NOW), Err(VerifyError::Malformed(_))));
    let padded = format!("{t}==");
    assert!(matches!(
        v.verify(&padded, NOW),
        Err(VerifyError::Malformed(_))
    ));
    let json_serialization = r#"{"payload":"e30","signatures":[]}"#;
    assert!(matches!(
        v.verify(json_serialization, NOW),
        Err(VerifyError::Malformed(_))
    ));
    assert!(matches!(
        v.verify("a.b.c.d", NOW),
        Err(VerifyError::Malformed(_))
    ));
    // Truncated anywhere: never valid.
    for cut in [1, 10, 40, t.len() / 2, t.len() - 1] {
        assert!(v.verify(&t[..cut], NOW).is_err(), "truncated at {cut}");
    }
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let (_, v) = setup();
    let huge = "a".repeat(8193);
    assert_eq!(v.verify(&huge, NOW), Err(VerifyError::TooLarge));
}

#[test]
fn jwks_with_symmetric_keys_or_without_kid_is_refused() {
    let mut oct =
        Jwk::from_encoding_key(&EncodingKey::from_secret(b"s"), Algorithm::HS256).unwrap();
    oct.common.key_id = Some("h".into());
    assert!(KeySet::from_jwks(&JwkSet { keys: vec![oct] }).is_err());
    let (_, mut jwk) = ed25519("x");
    jwk.common.key_id = None;
    assert!(KeySet::from_jwks(&JwkSet { keys: vec![jwk] }).is_err());
}

#[test]
fn hs256_works_only_when_inserted_explicitly() {
    let mut keys = KeySet::new();
    keys.insert(
        "h1",
        Algorithm::HS256,
        DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    );
    let v = Verifier::new(keys, Policy::new(ISS, AUD));
    let s = Signer {
        kid: "h1".into(),
        key: EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    };
    let h = json!({"alg":"HS256","typ":"at+jwt","kid":"h1"});
    let t = sign_raw(&s, Algorithm::HS256, &h.to_string(), &claims().to_string());
    assert!(v.verify(&t, NOW).is_ok());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No input string makes the verifier panic, and random text never verifies.
        #[test]
        fn arbitrary_input_never_panics_or_verifies(s in ".{0,400}") {
            let (_, v) = setup();
            prop_assert!(v.verify(&s, NOW).is_err());
        }

        /// Flipping any one character of a valid token makes it invalid.
        #[test]
        fn any_single_character_change_is_refused(pos in 0usize..200, c in "[A-Za-z0-9_-]") {
            let (s, v) = setup();
            let t = sign(&s, &header(&s), &claims());
            let pos = pos % t.len();
            let mut chars: Vec<char> = t.chars().collect();
            let replacement = c.chars().next().unwrap();
            prop_assume!(chars[pos] != replacement && chars[pos] != '.');
            chars[pos] = replacement;
            let mutated: String = chars.into_iter().collect();
            prop_assert!(v.verify(&mutated, NOW).is_err());
        }
    }
}

#[test]
fn revocation_state_is_consulted_after_verification() {
    struct RevokeJti(&'static str);
    impl tessera_verify::RevocationCheck for RevokeJti {
        fn is_revoked(&self, c: &tessera_verify::AccessClaims) -> bool {
            c.jti == self.0
        }
    }
    let (s, v) = setup();
    let t = sign(&s, &header(&s), &claims());
    assert_eq!(
        v.verify_with(&t, NOW, &RevokeJti("j1")),
        Err(VerifyError::Revoked)
    );
    assert!(v.verify_with(&t, NOW, &RevokeJti("other")).is_ok());
}

mod cache {
    use super::*;

    struct RevokeJti(std::cell::Cell<bool>);
    impl tessera_verify::RevocationCheck for RevokeJti {
        fn is_revoked(&self, _: &tessera_verify::AccessClaims) -> bool {
            self.0.get()
        }
    }

    #[test]
    fn a_cached_token_still_expires_and_can_still_be_revoked() {
        let (s, v) = setup();
        let v = v.with_cache(16);
        let t = sign(&s, &header(&s), &claims());
        let revoked = RevokeJti(std::cell::Cell::new(false));
        assert!(v.verify_with(&t, NOW, &revoked).is_ok());
        assert!(
            v.verify_with(&t, NOW, &revoked).is_ok(),
            "served from the cache"
        );
        revoked.0.set(true);
        assert_eq!(v.verify_with(&t, NOW, &revoked), Err(VerifyError::Revoked));
        revoked.0.set(false);
        assert_eq!(
            v.verify_with(&t, NOW + 330, &revoked),
            Err(VerifyError::Expired)
        );
    }

    #[test]
    fn only_valid_tokens_are_cached_and_a_forgery_never_hits() {
        let (s, v) = setup();
        let v = v.with_cache(16);
        let t = sign(&s, &header(&s), &claims());
        assert!(v.verify(&t, NOW).is_ok());
        let mut forged = t.clone();
        forged.push('A');
        assert!(v.verify(&forged, NOW).is_err());
        assert!(v.verify(&forged, NOW).is_err());
        // A token refused for its time is not cached as valid for later either.
        let early = sign(&s, &header(&s), &{
            let mut c = claims();
            c["nbf"] = json!(NOW + 100);
            c
        });
        assert_eq!(v.verify(&early, NOW), Err(VerifyError::NotYetValid));
        assert!(v.verify(&early, NOW + 100).is_ok());
    }
}

/// RFC 7493 §2.1: a string must not hold a lone UTF-16 surrogate. JSON parsers disagree on
/// what one means (replace, keep, refuse), so a verifier that accepts it lets a token mean
/// different things to different services.
#[test]
fn lone_surrogates_are_refused_wherever_they_appear() {
    let (s, v) = setup();
    let h = header(&s).to_string();
    let p = claims().to_string();
    let cases = [
        (h.replacen('{', r#"{"x":"\ud800","#, 1), p.clone()),
        (h.clone(), p.replacen('{', r#"{"aud_hint":"\udc00","#, 1)),
        (h.clone(), p.replacen(r#""alice""#, r#""al\udbffice""#, 1)),
    ];
    for (header, payload) in cases {
        let t = sign_raw(&s, Algorithm::EdDSA, &header, &payload);
        assert!(v.verify(&t, NOW).is_err(), "accepted {header} {payload}");
    }
    // A proper pair (an emoji) is fine.
    let t = sign_raw(
        &s,
        Algorithm::EdDSA,
        &h,
        &p.replacen(r#""alice""#, r#""al\ud83d\ude00ice""#, 1),
    );
    assert!(v.verify(&t, NOW).is_ok());
}
