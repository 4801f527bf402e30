//! JSON Web Tokens: the claims, Ed25519 signing keys with their JWKS form, and the verifier
//! every service uses (EdDSA only; keys from a JWKS URL, cached, re-fetched on an unknown `kid`
//! and once they are older than the refresh period, so a key removed from the set stops being
//! trusted within that period).

use crate::codes::ErrorCode;
use crate::error::ApiError;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;
use std::time::Duration;
// Tokio's clock (the system's monotonic clock outside tests) so that tests can move it forward.
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role `{other}`")),
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user's id.
    pub sub: String,
    /// The user's name.
    pub name: String,
    pub role: Role,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// One public key in a JWKS document (RFC 8037 OKP form).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub crv: String,
    #[serde(default)]
    pub x: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// PKCS#8 v1 prefix of an Ed25519 private key: the DER header before the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the signing key is not a PEM `PRIVATE KEY` block")]
    NotPem,
    #[error("the signing key is not an Ed25519 PKCS#8 key")]
    NotEd25519,
    #[error("cannot generate a key: {0}")]
    Random(String),
    #[error("cannot sign a token: {0}")]
    Sign(String),
}

/// An Ed25519 signing key with its key id (the RFC 7638 thumbprint of its public key).
#[derive(Clone)]
pub struct SigningKeyPair {
    seed: [u8; 32],
    public: [u8; 32],
    kid: String,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyPair")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKeyPair {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let x = URL_SAFE_NO_PAD.encode(public);
        let thumbprint_input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(thumbprint_input.as_bytes()));
        let encoding = EncodingKey::from_ed_der(&Self::pkcs8_der(&seed));
        SigningKeyPair {
            seed,
            public,
            kid,
            encoding,
        }
    }

    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    fn pkcs8_der(seed: &[u8; 32]) -> Vec<u8> {
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(seed);
        der
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as `openssl genpkey -algorithm ed25519` writes.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PRIVATE KEY-----")
            .collect();
        if body.is_empty() {
            return Err(KeyError::NotPem);
        }
        let der = STANDARD.decode(body).map_err(|_| KeyError::NotPem)?;
        if der.len() != 48 || der[..16] != ED25519_PKCS8_PREFIX {
            return Err(KeyError::NotEd25519);
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&der[16..]);
        Ok(Self::from_seed(seed))
    }

    pub fn to_pem(&self) -> String {
        let b64 = STANDARD.encode(Self::pkcs8_der(&self.seed));
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(self.public),
            kid: Some(self.kid.clone()),
            use_: Some("sig".into()),
            alg: Some("EdDSA".into()),
        }
    }

    /// Signs claims as an EdDSA JWT carrying this key's `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| KeyError::Sign(e.to_string()))
    }
}

/// Why a token was refused: a 401 (`invalid_token`, `token_expired`), or a 503 when the keys
/// cannot be fetched.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("The token is malformed.")]
    Malformed,
    #[error("The token's algorithm is not accepted; only EdDSA is.")]
    Algorithm,
    #[error("The token was signed by an unknown key.")]
    UnknownKey,
    #[error("The token's signature is invalid.")]
    Signature,
    #[error("The token has expired.")]
    Expired,
    #[error("The token is not valid yet.")]
    NotYetValid,
    #[error("The token was issued by someone else.")]
    Issuer,
    #[error("The token is meant for another audience.")]
    Audience,
    #[error("The token's claims are invalid.")]
    Claims,
    #[error("The signing keys cannot be fetched right now.")]
    KeysUnavailable,
}

impl TokenError {
    /// `token_expired`, `auth_unavailable`, else `invalid_token`.
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::KeysUnavailable => ErrorCode::AuthUnavailable,
            TokenError::Malformed
            | TokenError::Algorithm
            | TokenError::UnknownKey
            | TokenError::Signature
            | TokenError::NotYetValid
            | TokenError::Issuer
            | TokenError::Audience
            | TokenError::Claims => ErrorCode::InvalidToken,
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

enum KeySource {
    /// Keys fetched from a JWKS URL.
    Remote {
        url: String,
        client: reqwest::Client,
    },
    /// Keys given at construction (auth-svc verifies its own tokens).
    Local,
}

/// Verifies access tokens. Share one per process (`web::Data<JwtVerifier>` is an `Arc`).
pub struct JwtVerifier {
    source: KeySource,
    keys: RwLock<HashMap<String, DecodingKey>>,
    validation: Validation,
    /// When a fetch was last tried; held while one runs.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    min_refresh_interval: Duration,
    /// When the keys held were fetched.
    fetched_at: RwLock<Option<Instant>>,
    /// Keys older than this are fetched again before a token is verified with them.
    max_key_age: Duration,
}

impl JwtVerifier {
    fn validation(issuer: &str, audience: &str) -> Validation {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = 30;
        v
    }

    pub fn remote(config: &crate::config::JwtConfig) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        JwtVerifier {
            source: KeySource::Remote {
                url: config.jwks_url.clone(),
                client,
            },
            keys: RwLock::new(HashMap::new()),
            validation: Self::validation(&config.issuer, &config.audience),
            refresh: tokio::sync::Mutex::new(None),
            // At most one fetch a second: a flood of made-up `kid`s cannot hammer auth-svc,
            // while a real key rotation is picked up at once.
            min_refresh_interval: Duration::from_secs(1),
            fetched_at: RwLock::new(None),
            max_key_age: config.jwks_refresh,
        }
    }

    pub fn local(keys: &JwkSet, issuer: &str, audience: &str) -> Self {
        let verifier = JwtVerifier {
            source: KeySource::Local,
            keys: RwLock::new(HashMap::new()),
            validation: Self::validation(issuer, audience),
            refresh: tokio::sync::Mutex::new(None),
            min_refresh_interval: Duration::ZERO,
            fetched_at: RwLock::new(None),
            // Given keys are never fetched again.
            max_key_age: Duration::MAX,
        };
        verifier.install(keys);
        verifier
    }

    fn install(&self, set: &JwkSet) -> usize {
        let mut map = HashMap::new();
        for jwk in &set.keys {
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
                continue;
            }
            let Some(kid) = &jwk.kid else { continue };
            if let Ok(key) = DecodingKey::from_ed_components(&jwk.x) {
                map.insert(kid.clone(), key);
            }
        }
        let n = map.len();
        if let Ok(mut keys) = self.keys.write() {
            *keys = map;
        }
        n
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().ok()?.get(kid).cloned()
    }

    /// Fetches the JWKS again, at most once per interval however many callers ask.
    pub async fn refresh_keys(&self) -> Result<usize, TokenError> {
        if !matches!(self.source, KeySource::Remote { .. }) {
            return Ok(0);
        }
        let mut last = self.refresh.lock().await;
        self.fetch(&mut last).await
    }

    /// Whether the keys held are older than the refresh period.
    fn keys_expired(&self) -> bool {
        matches!(self.source, KeySource::Remote { .. })
            && self
                .fetched_at
                .read()
                .ok()
                .and_then(|at| *at)
                .is_some_and(|at| at.elapsed() >= self.max_key_age)
    }

    /// The periodic re-fetch, before verifying with keys older than the refresh period. When
    /// another request is fetching already, this one goes on with the keys held. When the
    /// fetch fails (auth-svc restarting), the keys held stay in use, and are asked for again
    /// at most once per minimum interval: an outage of the key endpoint does not refuse every
    /// token.
    async fn refresh_expired_keys(&self) {
        let Ok(mut last) = self.refresh.try_lock() else {
            return;
        };
        // Another request may have fetched them between the check and the lock.
        if self.keys_expired() {
            let _ = self.fetch(&mut last).await;
        }
    }

    /// One fetch of the JWKS (with `last`, the time of the last try, locked), unless the
    /// last try was less than the minimum interval ago.
    async fn fetch(&self, last: &mut Option<Instant>) -> Result<usize, TokenError> {
        let KeySource::Remote { url, client } = &self.source else {
            return Ok(0);
        };
        // With no key at all, always try: nothing could be verified otherwise.
        let have_keys = self.keys.read().is_ok_and(|k| !k.is_empty());
        if let Some(at) = *last
            && have_keys
            && at.elapsed() < self.min_refresh_interval
        {
            return Ok(0);
        }
        *last = Some(Instant::now());
        let set: JwkSet = async {
            client
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await
        }
        .await
        .map_err(|e: reqwest::Error| {
            tracing::warn!(error = %e, jwks_url = %url, "cannot fetch the JWKS");
            TokenError::KeysUnavailable
        })?;
        let n = self.install(&set);
        if let Ok(mut at) = self.fetched_at.write() {
            *at = Some(Instant::now());
        }
        tracing::info!(keys = n, "signing keys refreshed");
        Ok(n)
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        if self.keys_expired() {
            self.refresh_expired_keys().await;
        }
        let key = match self.key(&kid) {
            Some(k) => k,
            None => {
                self.refresh_keys().await?;
                self.key(&kid).ok_or(TokenError::UnknownKey)?
            }
        };
        use jsonwebtoken::errors::ErrorKind as K;
        jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidIssuer => TokenError::Issuer,
                K::InvalidAudience => TokenError::Audience,
                K::InvalidSignature => TokenError::Signature,
                K::InvalidAlgorithm => TokenError::Algorithm,
                K::MissingRequiredClaim(_) | K::Json(_) => TokenError::Claims,
                _ => TokenError::Malformed,
            })
    }
}

impl JwtVerifier {
    /// Verifies a token issued by the same issuer and signed by the same keys, but meant for
    /// `audience` instead of the user tokens' one (the service tokens of the internal plane),
    /// decoding its claims as `T`.
    pub async fn verify_for<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = match self.key(&kid) {
            Some(k) => k,
            None => {
                self.refresh_keys().await?;
                self.key(&kid).ok_or(TokenError::UnknownKey)?
            }
        };
        let mut validation = self.validation.clone();
        validation.set_audience(&[audience]);
        use jsonwebtoken::errors::ErrorKind as K;
        jsonwebtoken::decode::<T>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidIssuer => TokenError::Issuer,
                K::InvalidAudience => TokenError::Audience,
                K::InvalidSignature => TokenError::Signature,
                K::InvalidAlgorithm => TokenError::Algorithm,
                K::MissingRequiredClaim(_) | K::Json(_) => TokenError::Claims,
                _ => TokenError::Malformed,
            })
    }
}

/// The bearer token of a request: the `Authorization` header, else (for browsers opening a
/// WebSocket) the `access_token` query parameter when `allow_query` is set.
pub fn bearer_token(req: &HttpRequest, allow_query: bool) -> Option<String> {
    if let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
            .filter(|t| !t.is_empty());
    }
    if allow_query {
        return web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .ok()?
            .get("access_token")
            .cloned();
    }
    None
}

/// The 500 of a service that did not register its [`JwtVerifier`] (a bug, logged).
pub(crate) fn verifier_missing() -> ApiError {
    ApiError::internal(&*anyhow::anyhow!("JwtVerifier missing from app data"))
}

async fn authenticate(req: HttpRequest) -> Result<Claims, ApiError> {
    let verifier = req
        .app_data::<web::Data<JwtVerifier>>()
        .cloned()
        .ok_or_else(verifier_missing)?;
    let token = bearer_token(&req, false).ok_or(ErrorCode::MissingToken)?;
    Ok(verifier.verify(&token).await?)
}

/// Extractor: the verified claims of the caller (401 JSON when absent or invalid).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(req).await.map(Authenticated) })
    }
}

/// Extractor: the verified claims of an admin (401 without a valid token, 403 for a non-admin).
#[derive(Debug, Clone)]
pub struct AdminUser(pub Claims);

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let claims = authenticate(req).await?;
            if !claims.is_admin() {
                return Err(ErrorCode::Forbidden.into());
            }
            Ok(AdminUser(claims))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "iss".into(),
            aud: "aud".into(),
            sub: "u1".into(),
            name: "ana".into(),
            role: Role::User,
            iat: now,
            nbf: now,
            exp: now + 600,
            jti: "j".into(),
        }
    }

    #[test]
    fn pem_round_trip_keeps_the_key_id() {
        let k = SigningKeyPair::generate().unwrap();
        let back = SigningKeyPair::from_pem(&k.to_pem()).unwrap();
        assert_eq!(k.kid(), back.kid());
        assert!(SigningKeyPair::from_pem("nonsense").is_err());
    }

    #[tokio::test]
    async fn verifies_own_tokens_and_refuses_others() {
        let now = chrono::Utc::now().timestamp();
        let k = SigningKeyPair::generate().unwrap();
        let other = SigningKeyPair::generate().unwrap();
        let v = JwtVerifier::local(
            &JwkSet {
                keys: vec![k.jwk()],
            },
            "iss",
            "aud",
        );
        let good = k.sign(&claims(now)).unwrap();
        assert_eq!(v.verify(&good).await.unwrap().name, "ana");
        let unknown = other.sign(&claims(now)).unwrap();
        assert_eq!(v.verify(&unknown).await, Err(TokenError::UnknownKey));
        let mut expired = claims(now - 7200);
        expired.exp = now - 3600;
        assert_eq!(
            v.verify(&k.sign(&expired).unwrap()).await,
            Err(TokenError::Expired)
        );
        let mut future = claims(now);
        future.nbf = now + 3600;
        assert_eq!(
            v.verify(&k.sign(&future).unwrap()).await,
            Err(TokenError::NotYetValid)
        );
        let mut aud = claims(now);
        aud.aud = "x".into();
        assert_eq!(
            v.verify(&k.sign(&aud).unwrap()).await,
            Err(TokenError::Audience)
        );
        // Tampered payload: role switched to admin without re-signing.
        let parts: Vec<&str> = good.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["role"] = "admin".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        );
        assert_eq!(v.verify(&forged).await, Err(TokenError::Signature));
        // alg: none
        let none_header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, k.kid()));
        let none = format!("{none_header}.{}.", parts[1]);
        assert!(v.verify(&none).await.is_err());
    }
}
