//! Forged, tampered and broken credentials.

use super::*;

pub(super) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn segment(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// HMAC-SHA256 (RFC 2104).
pub(super) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut k = if key.len() > BLOCK {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(BLOCK, 0);
    let pad = |byte: u8| k.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

pub(super) fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", segment(header), segment(claims));
    let mac = hmac_sha256(secret, input.as_bytes());
    format!("{input}.{}", b64(&mac))
}

/// Signs any header and claims with auth-svc's own Ed25519 key (its seed read back from PEM).
pub(super) struct Forger {
    seed: [u8; 32],
}

impl Forger {
    pub(super) fn new(key: &SigningKeyPair) -> Self {
        let body: String = key
            .to_pem()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(body).unwrap();
        Forger {
            seed: der[der.len() - 32..].try_into().unwrap(),
        }
    }

    pub(super) fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", segment(header), segment(claims));
        let signature = ed25519_dalek::SigningKey::from_bytes(&self.seed).sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }
}

/// Every kind of bad credential: (case, `Authorization` header value).
pub(super) fn bad_credentials(
    system: &System,
    user_access: &str,
    refresh: &str,
) -> Vec<(&'static str, Option<String>)> {
    let key = &system.signing_key;
    let mut credentials = malformed_credentials(key, refresh);
    credentials.extend(bad_signatures(key, user_access));
    credentials.extend(bad_claims(key));
    credentials
}

fn bearer(token: String) -> Option<String> {
    Some(format!("Bearer {token}"))
}

/// No token, another scheme, junk, or a token of the wrong kind.
fn malformed_credentials(
    key: &SigningKeyPair,
    refresh: &str,
) -> Vec<(&'static str, Option<String>)> {
    let admin = common::testing::claims(ADMIN.0, Role::Admin);
    vec![
        ("no Authorization header", None),
        ("Bearer and nothing", Some("Bearer".into())),
        ("Bearer and spaces", Some("Bearer    ".into())),
        (
            "Basic with the admin's password",
            Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", ADMIN.0, ADMIN.1))
            )),
        ),
        (
            "a valid token without the Bearer scheme",
            Some(key.sign(&admin).unwrap()),
        ),
        ("garbage", bearer("garbage".into())),
        ("three empty segments", bearer("..".into())),
        ("segments that are not base64", bearer("!!!.@@@.###".into())),
        ("five segments (JWE-like)", bearer("a.b.c.d.e".into())),
        ("8 KiB of junk", bearer("A".repeat(8 * 1024))),
        ("the refresh token", bearer(refresh.to_owned())),
    ]
}

/// Admin claims under a signature that is missing, of another algorithm or another key, or
/// kept from other claims.
fn bad_signatures(key: &SigningKeyPair, user_access: &str) -> Vec<(&'static str, Option<String>)> {
    let kid = key.kid().to_owned();
    let admin = common::testing::claims(ADMIN.0, Role::Admin);
    let claims = serde_json::to_value(&admin).unwrap();
    let eddsa = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let x = key.jwk().x;
    let hs = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let none = |alg: &str| {
        format!(
            "{}.{}.",
            segment(&json!({"alg": alg, "typ": "JWT", "kid": kid})),
            segment(&claims)
        )
    };
    let other_key = SigningKeyPair::generate().unwrap();
    let other = Forger::new(&other_key);
    // A user's real token with `role` swapped to admin, the signature kept.
    let tampered = {
        let parts: Vec<&str> = user_access.split('.').collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["role"] = json!("admin");
        format!("{}.{}.{}", parts[0], segment(&payload), parts[2])
    };
    let stripped = {
        let token = key.sign(&admin).unwrap();
        let (unsigned, _) = token.rsplit_once('.').unwrap();
        format!("{unsigned}.")
    };
    vec![
        ("alg none, no signature", bearer(none("none"))),
        ("alg NONE, no signature", bearer(none("NONE"))),
        ("alg EdDSA, signature stripped", bearer(stripped)),
        (
            "HS256 keyed with the public key bytes",
            bearer(hs256(&URL_SAFE_NO_PAD.decode(&x).unwrap(), &hs, &claims)),
        ),
        (
            "HS256 keyed with the public key's base64",
            bearer(hs256(x.as_bytes(), &hs, &claims)),
        ),
        (
            "an unknown kid (another key)",
            bearer(other_key.sign(&admin).unwrap()),
        ),
        (
            "the right kid, another key's signature",
            bearer(other.sign(&eddsa, &claims)),
        ),
        ("role tampered from user to admin", bearer(tampered)),
    ]
}

/// Validly signed tokens whose claims or header are wrong.
fn bad_claims(key: &SigningKeyPair) -> Vec<(&'static str, Option<String>)> {
    let forger = Forger::new(key);
    let admin = common::testing::claims(ADMIN.0, Role::Admin);
    let now = admin.iat;
    let claims = serde_json::to_value(&admin).unwrap();
    let with = |changes: &[(&str, Value)]| {
        let mut c = claims.clone();
        for (k, v) in changes {
            c[*k] = v.clone();
        }
        c
    };
    let without = |field: &str| {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(field);
        c
    };
    let eddsa = json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid()});
    let mut expired = admin.clone();
    expired.iat = now - 7200;
    expired.nbf = now - 7200;
    expired.exp = now - 3600;
    let mut early = admin.clone();
    early.nbf = now + 3600;
    early.exp = now + 7200;
    let mut wrong_aud = admin.clone();
    wrong_aud.aud = "someone-else".into();
    let mut wrong_iss = admin.clone();
    wrong_iss.iss = "https://evil.example".into();
    vec![
        ("expired", bearer(key.sign(&expired).unwrap())),
        (
            "not valid before an hour from now",
            bearer(key.sign(&early).unwrap()),
        ),
        ("wrong aud", bearer(key.sign(&wrong_aud).unwrap())),
        ("wrong iss", bearer(key.sign(&wrong_iss).unwrap())),
        (
            "no kid",
            bearer(forger.sign(&json!({"alg": "EdDSA", "typ": "JWT"}), &claims)),
        ),
        (
            "an SQL-injection kid",
            bearer(forger.sign(&json!({"alg": "EdDSA", "kid": SQL_OR}), &claims)),
        ),
        (
            "a path-traversal kid",
            bearer(forger.sign(
                &json!({"alg": "EdDSA", "kid": "../../../../etc/passwd"}),
                &claims,
            )),
        ),
        (
            "role superadmin, validly signed",
            bearer(forger.sign(&eddsa, &with(&[("role", json!("superadmin"))]))),
        ),
        (
            "exp as a string, validly signed",
            bearer(forger.sign(&eddsa, &with(&[("exp", json!((now + 900).to_string()))]))),
        ),
        (
            "no exp, validly signed",
            bearer(forger.sign(&eddsa, &without("exp"))),
        ),
        (
            "exp beyond i64, validly signed",
            bearer(forger.sign(&eddsa, &with(&[("exp", json!(1e300))]))),
        ),
        (
            "aud as a list of strangers, validly signed",
            bearer(forger.sign(&eddsa, &with(&[("aud", json!(["x", "y"]))]))),
        ),
    ]
}
