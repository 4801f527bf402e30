//! Service identities on the internal plane.
//!
//! auth-svc issues **service tokens** by the OAuth 2.0 client-credentials grant (`POST /token`):
//! EdDSA JWTs signed with the same keys as user tokens, but with an audience of their own
//! ([`INTERNAL_AUDIENCE`]) and a `scope` naming the internal capabilities the calling service
//! was given. Every `/internal/` route requires one with its scope ([`require`]); a user's
//! token, an admin's included, is refused there (403), and a service token opens no user route
//! (its audience is not theirs).
//!
//! Callers get and cache their tokens with [`ServiceTokens`].

use crate::codes::ErrorCode;
use crate::config::{Env, Mode, Secret};
use crate::error::ApiError;
use crate::jwt::{JwtVerifier, TokenError};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use serde::{Deserialize, Serialize};
use std::future::{Ready, ready};
use std::time::{Duration, Instant};

/// The `aud` of every service token; user tokens carry `JWT_AUDIENCE` (`predictloop-api`).
pub const INTERNAL_AUDIENCE: &str = "predictloop-internal";

/// The internal capabilities, one scope each.
pub mod scopes {
    /// `GET /internal/models/{name}/active` (predict-svc): the active version and its file.
    pub const MODELS_READ: &str = "models:read";
    /// `POST /internal/models/{name}/versions` (predict-svc): register a candidate.
    pub const MODELS_REGISTER: &str = "models:register";
    /// `POST /internal/models/{name}/versions/{version}/promote` (predict-svc).
    pub const MODELS_PROMOTE: &str = "models:promote";
    /// `GET /internal/predictions/{id}` (predict-svc): a served prediction with its input.
    pub const PREDICTIONS_READ: &str = "predictions:read";
    /// `GET /internal/feedback/labelled` (feedback-svc): labelled feedback with its inputs.
    pub const FEEDBACK_READ: &str = "feedback:read";

    pub const ALL: &[&str] = &[
        MODELS_READ,
        MODELS_REGISTER,
        MODELS_PROMOTE,
        PREDICTIONS_READ,
        FEEDBACK_READ,
    ];
}

/// The services that call `/internal/` routes and the scopes they need: what development mode
/// generates credentials for, and what a deployment's `SERVICE_CLIENTS` should list.
pub const CALLERS: &[(&str, &[&str])] = &[
    (
        "retrain-worker",
        &[
            scopes::MODELS_READ,
            scopes::MODELS_REGISTER,
            scopes::MODELS_PROMOTE,
            scopes::FEEDBACK_READ,
        ],
    ),
    ("feedback-svc", &[scopes::PREDICTIONS_READ]),
];

/// The claims of a service token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceClaims {
    pub iss: String,
    pub aud: String,
    /// The client id of the calling service.
    pub sub: String,
    /// The granted scopes, space-separated (RFC 8693 §4.2).
    #[serde(default)]
    pub scope: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

impl ServiceClaims {
    /// Claims for `client_id` with `scopes`, valid for `ttl` from now.
    pub fn new(issuer: &str, client_id: &str, scopes: &[&str], ttl: Duration) -> Self {
        let now = chrono::Utc::now().timestamp();
        ServiceClaims {
            iss: issuer.to_owned(),
            aud: INTERNAL_AUDIENCE.to_owned(),
            sub: client_id.to_owned(),
            scope: scopes.join(" "),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs() as i64,
            jti: uuid::Uuid::now_v7().to_string(),
        }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// Checks the caller's service token for `scope`: 401 without a valid token, 403 for a user's
/// token or a service token without that scope.
pub async fn authorize(
    verifier: &JwtVerifier,
    req: &HttpRequest,
    scope: &str,
) -> Result<ServiceClaims, ApiError> {
    let token = crate::jwt::bearer_token(req, false).ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingToken,
            "This internal route needs a service token: send `Authorization: Bearer <token>` \
             (auth-svc's POST /token, client-credentials grant).",
        )
    })?;
    let claims: ServiceClaims = match verifier
        .verify_for::<ServiceClaims>(&token, INTERNAL_AUDIENCE)
        .await
    {
        Ok(claims) => claims,
        // Validly signed by our issuer, for another audience: a user's token.
        Err(TokenError::Audience) => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "A user's token does not open internal routes; they need a service token.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if !claims.has_scope(scope) {
        tracing::warn!(client = %claims.sub, scope, "service token without the route's scope");
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("This service token lacks the `{scope}` scope this route needs."),
        ));
    }
    Ok(claims)
}

/// Middleware guarding a resource or scope with [`authorize`], before any body is read:
///
/// ```ignore
/// web::resource("/internal/x").wrap(from_fn(|req, next| require(scopes::MODELS_READ, req, next)))
/// ```
///
/// The verified claims go into the request's extensions ([`ServiceCaller`] extracts them).
pub async fn require<B: MessageBody>(
    scope: &'static str,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    // Defence in depth behind `split_planes`: never on the public port.
    if req.request().conn_data::<crate::server::Plane>() == Some(&crate::server::Plane::Public) {
        let error = crate::http::no_such_route(req.request());
        return Ok(req.error_response(error).map_into_right_body());
    }
    let Some(verifier) = req.app_data::<web::Data<JwtVerifier>>().cloned() else {
        let error = crate::jwt::verifier_missing();
        return Ok(req.error_response(error).map_into_right_body());
    };
    match authorize(&verifier, req.request(), scope).await {
        Ok(claims) => {
            req.extensions_mut().insert(claims);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(error) => Ok(req.error_response(error).map_into_right_body()),
    }
}

/// Extractor: the verified claims of the calling service, on a route guarded by [`require`].
#[derive(Debug, Clone)]
pub struct ServiceCaller(pub ServiceClaims);

impl FromRequest for ServiceCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<ServiceClaims>()
                .cloned()
                .map(ServiceCaller)
                .ok_or_else(|| {
                    ApiError::internal(&*anyhow::anyhow!(
                        "ServiceCaller on a route without `require`"
                    ))
                }),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The caller's side
// ---------------------------------------------------------------------------------------------

/// Where and as whom a service asks for its tokens.
#[derive(Debug, Clone)]
pub struct ServiceClientConfig {
    /// auth-svc's token endpoint.
    pub token_url: String,
    pub client_id: String,
    /// `None` only in development mode without `SERVICE_CLIENT_SECRET`: calls then fail with a
    /// clear error instead of going out without a token.
    pub client_secret: Option<Secret>,
}

impl ServiceClientConfig {
    pub const DEFAULT_AUTH_URL: &'static str = "http://127.0.0.1:8081";

    /// `AUTH_URL` (auth-svc's base URL), `SERVICE_CLIENT_ID` (`default_id` when unset) and
    /// `SERVICE_CLIENT_SECRET` (required outside development mode).
    pub fn read(env: &mut Env, mode: Mode, default_id: &str) -> Self {
        let auth_url = env.or("AUTH_URL", Self::DEFAULT_AUTH_URL.to_owned());
        if !(auth_url.starts_with("http://") || auth_url.starts_with("https://")) {
            env.problem(format!(
                "AUTH_URL: expected an http:// or https:// URL, got `{auth_url}`"
            ));
        }
        let client_id = env.or("SERVICE_CLIENT_ID", default_id.to_owned());
        let client_secret: Option<Secret> = env.optional("SERVICE_CLIENT_SECRET");
        if client_secret.is_none() && !mode.is_development() {
            env.problem(
                "SERVICE_CLIENT_SECRET is required outside development mode: this service's \
                 secret in auth-svc's SERVICE_CLIENTS, for its calls to /internal/ routes",
            );
        }
        ServiceClientConfig {
            token_url: format!("{}/token", auth_url.trim_end_matches('/')),
            client_id,
            client_secret,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceTokenError {
    #[error(
        "no service credentials: set SERVICE_CLIENT_SECRET (and SERVICE_CLIENT_ID) to this \
         service's entry in auth-svc's SERVICE_CLIENTS"
    )]
    NotConfigured,
    #[error("auth-svc's token endpoint is unreachable: {0}")]
    Unreachable(reqwest::Error),
    #[error("auth-svc refused the service credentials ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("auth-svc's token answer is not understood: {0}")]
    Invalid(String),
}

/// A failed call through [`ServiceTokens::send`].
#[derive(Debug, thiserror::Error)]
pub enum ServiceCallError {
    #[error(transparent)]
    Token(#[from] ServiceTokenError),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

struct Cached {
    token: String,
    /// When to fetch a new one: well before it expires.
    refresh_at: Instant,
}

/// A service's tokens: fetched from auth-svc on first use, cached, and fetched again when
/// four fifths of their lifetime have passed (or after a 401). Share one per process.
pub struct ServiceTokens {
    config: ServiceClientConfig,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: String,
    expires_in: u64,
}

impl ServiceTokens {
    pub fn new(config: ServiceClientConfig) -> reqwest::Result<Self> {
        Ok(ServiceTokens {
            config,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5))
                .build()?,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.config.client_id
    }

    /// A valid token, from the cache or freshly issued (one fetch however many callers wait).
    pub async fn token(&self) -> Result<String, ServiceTokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets the cached token (the callee refused it: the keys may have been rotated).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<Cached, ServiceTokenError> {
        let secret = self
            .config
            .client_secret
            .as_ref()
            .ok_or(ServiceTokenError::NotConfigured)?;
        let started = Instant::now();
        let response = crate::telemetry::inject(
            self.http
                .post(&self.config.token_url)
                .basic_auth(&self.config.client_id, Some(secret.expose()))
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body("grant_type=client_credentials"),
        )
        .send()
        .await
        .map_err(ServiceTokenError::Unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(ServiceTokenError::Refused {
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|e| ServiceTokenError::Invalid(e.to_string()))?;
        if !answer.token_type.eq_ignore_ascii_case("bearer") || answer.access_token.is_empty() {
            return Err(ServiceTokenError::Invalid(format!(
                "token_type `{}`",
                answer.token_type
            )));
        }
        tracing::debug!(
            client = %self.config.client_id,
            expires_in = answer.expires_in,
            "service token obtained"
        );
        Ok(Cached {
            token: answer.access_token,
            refresh_at: started + Duration::from_secs(answer.expires_in) * 4 / 5,
        })
    }

    /// Sends `request` with a service token; on a 401 (a token the callee no longer accepts),
    /// once more with a fresh one.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ServiceCallError> {
        let retry = request.try_clone();
        let token = self.token().await?;
        let response = crate::telemetry::inject(request.bearer_auth(token))
            .send()
            .await?;
        match retry {
            Some(again) if response.status() == reqwest::StatusCode::UNAUTHORIZED => {
                self.invalidate().await;
                let token = self.token().await?;
                Ok(crate::telemetry::inject(again.bearer_auth(token))
                    .send()
                    .await?)
            }
            _ => Ok(response),
        }
    }
}

/// A random client secret (256 bits, URL-safe base64): what development mode generates.
pub fn generate_secret() -> Result<String, getrandom::Error> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Development mode's credentials: a fresh secret for each of [`CALLERS`].
pub struct DevelopmentClients {
    /// auth-svc's `SERVICE_CLIENTS`.
    pub service_clients: String,
    /// Each caller's client id and secret.
    pub secrets: Vec<(&'static str, String)>,
}

pub fn development_clients() -> Result<DevelopmentClients, getrandom::Error> {
    let mut entries = Vec::new();
    let mut secrets = Vec::new();
    for (id, scopes) in CALLERS {
        let secret = generate_secret()?;
        entries.push(format!("{id}:{secret}={}", scopes.join(",")));
        secrets.push((*id, secret));
    }
    Ok(DevelopmentClients {
        service_clients: entries.join(";"),
        secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{JwkSet, Role, SigningKeyPair};

    #[tokio::test]
    async fn service_tokens_open_their_scopes_only_and_user_tokens_none() {
        let key = SigningKeyPair::generate().unwrap();
        let verifier = JwtVerifier::local(
            &JwkSet {
                keys: vec![key.jwk()],
            },
            "predictloop",
            "predictloop-api",
        );
        let req = |token: &str| {
            actix_web::test::TestRequest::default()
                .insert_header(("Authorization", format!("Bearer {token}")))
                .to_http_request()
        };
        let service = key
            .sign(&ServiceClaims::new(
                "predictloop",
                "feedback-svc",
                &[scopes::PREDICTIONS_READ],
                Duration::from_secs(60),
            ))
            .unwrap();
        let ok = authorize(&verifier, &req(&service), scopes::PREDICTIONS_READ)
            .await
            .unwrap();
        assert_eq!(ok.sub, "feedback-svc");
        let denied = authorize(&verifier, &req(&service), scopes::MODELS_PROMOTE)
            .await
            .unwrap_err();
        assert_eq!(denied.status().as_u16(), 403);
        // A service token is no user token either.
        assert!(verifier.verify(&service).await.is_err());
        let mut admin = crate::jwt::Claims {
            iss: "predictloop".into(),
            aud: "predictloop-api".into(),
            sub: "u".into(),
            name: "boss".into(),
            role: Role::Admin,
            iat: 0,
            nbf: 0,
            exp: 0,
            jti: "j".into(),
        };
        let now = chrono::Utc::now().timestamp();
        (admin.iat, admin.nbf, admin.exp) = (now, now, now + 60);
        let admin = key.sign(&admin).unwrap();
        let refused = authorize(&verifier, &req(&admin), scopes::PREDICTIONS_READ)
            .await
            .unwrap_err();
        assert_eq!(refused.status().as_u16(), 403);
        let other = SigningKeyPair::generate().unwrap();
        let forged = other
            .sign(&ServiceClaims::new(
                "predictloop",
                "x",
                scopes::ALL,
                Duration::from_secs(60),
            ))
            .unwrap();
        let refused = authorize(&verifier, &req(&forged), scopes::PREDICTIONS_READ)
            .await
            .unwrap_err();
        assert_eq!(refused.status().as_u16(), 401);
        let none = actix_web::test::TestRequest::default().to_http_request();
        let refused = authorize(&verifier, &none, scopes::PREDICTIONS_READ)
            .await
            .unwrap_err();
        assert_eq!(refused.status().as_u16(), 401);
    }

    #[tokio::test]
    async fn a_caller_keeps_its_token_until_told_otherwise() {
        let key = SigningKeyPair::generate().unwrap();
        let secret = "caller-secret-0123456789abcdef0123456789";
        let auth = crate::testing::serve_auth(
            &key,
            &[("feedback-svc", secret, &[scopes::PREDICTIONS_READ])],
        );
        let config = |secret: Option<&str>| ServiceClientConfig {
            token_url: format!("{auth}/token"),
            client_id: "feedback-svc".into(),
            client_secret: secret.map(Secret::new),
        };
        let tokens = ServiceTokens::new(config(Some(secret))).unwrap();
        let first = tokens.token().await.unwrap();
        assert_eq!(tokens.token().await.unwrap(), first, "cached");
        tokens.invalidate().await;
        let second = tokens.token().await.unwrap();
        assert_ne!(second, first, "a fresh token after invalidate");
        let verifier = JwtVerifier::local(
            &JwkSet {
                keys: vec![key.jwk()],
            },
            crate::config::JwtConfig::DEFAULT_ISSUER,
            crate::config::JwtConfig::DEFAULT_AUDIENCE,
        );
        let claims: ServiceClaims = verifier
            .verify_for(&second, INTERNAL_AUDIENCE)
            .await
            .unwrap();
        assert_eq!(claims.sub, "feedback-svc");
        assert!(claims.has_scope(scopes::PREDICTIONS_READ));
        // A wrong secret is refused by auth-svc; no secret at all never leaves the process.
        let wrong = ServiceTokens::new(config(Some("not-the-secret"))).unwrap();
        assert!(matches!(
            wrong.token().await,
            Err(ServiceTokenError::Refused { status: 401, .. })
        ));
        let none = ServiceTokens::new(config(None)).unwrap();
        assert!(matches!(
            none.token().await,
            Err(ServiceTokenError::NotConfigured)
        ));
    }

    #[test]
    fn development_clients_cover_every_caller() {
        let DevelopmentClients {
            service_clients: clients,
            secrets,
        } = development_clients().unwrap();
        assert_eq!(secrets.len(), CALLERS.len());
        for (id, secret) in &secrets {
            assert!(clients.contains(&format!("{id}:{secret}=")), "{clients}");
            assert!(secret.len() >= 43);
        }
    }
}
