//! Starting auth-svc for a test and talking to it.

use auth_svc::Config;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::config::Env;
use common::error::ErrorBody;
use common::jwt::{Claims, JwkSet, JwtVerifier, Role, SigningKeyPair};
use common::service::RunningService;
use common::testing::TestDatabase;
use reqwest::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A password every rule accepts.
pub const PASSWORD: &str = "correct horse battery staple";

pub use common::testing::TempDir;

/// Where an app keeps its data; clones share the same database.
#[derive(Clone)]
pub enum Store {
    Postgres(Arc<TestDatabase>),
    Sqlite(Arc<TempDir>),
}

impl Store {
    /// A fresh PostgreSQL database, dropped with the last clone.
    pub fn postgres() -> Self {
        Store::Postgres(Arc::new(TestDatabase::create()))
    }

    /// A fresh directory holding `main.db` (and the attached `auth.db`).
    pub fn sqlite() -> Self {
        Store::Sqlite(Arc::new(TempDir::new()))
    }

    pub fn url(&self) -> String {
        match self {
            Store::Postgres(db) => db.url.clone(),
            Store::Sqlite(dir) => format!("sqlite://{}/main.db", dir.0.display()),
        }
    }
}

/// The service clients every test app knows (`SERVICE_CLIENTS`); feedback-svc's secret is
/// configured by its digest.
pub const RETRAIN_SECRET: &str = "retrain-secret-0123456789abcdef0123456789";
pub const FEEDBACK_SECRET: &str = "feedback-secret-0123456789abcdef012345678";

/// The environment a test app is configured from: development mode, port 0, the cheapest
/// bcrypt cost, a fixed signing key. Everything else keeps the service's defaults.
pub fn test_env(database_url: &str, key: &SigningKeyPair) -> HashMap<String, String> {
    [
        ("APP_ENV", "development".to_owned()),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("HTTP_WORKERS", "2".to_owned()),
        ("SHUTDOWN_TIMEOUT_SECS", "5".to_owned()),
        ("BCRYPT_COST", "4".to_owned()),
        ("DATABASE_URL", database_url.to_owned()),
        ("JWT_SIGNING_KEY", key.to_pem()),
        (
            "SERVICE_CLIENTS",
            format!(
                "retrain-worker:{RETRAIN_SECRET}=models:read,models:register,models:promote,feedback:read; \
                 feedback-svc:sha256:{}=predictions:read",
                common::digest::sha256_hex(FEEDBACK_SECRET.as_bytes())
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub config: Config,
    pub signing_key: SigningKeyPair,
    pub service: RunningService,
    pub store: Store,
}

/// auth-svc on a fresh PostgreSQL database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Store::postgres(), None).await
}

/// auth-svc on the given store, with an admin to bootstrap (user name, password).
pub async fn spawn_app_with(store: Store, admin: Option<(&str, &str)>) -> TestApp {
    let key = SigningKeyPair::generate().unwrap();
    let mut vars = test_env(&store.url(), &key);
    if let Some((username, password)) = admin {
        vars.insert("ADMIN_USERNAME".into(), username.into());
        vars.insert("ADMIN_PASSWORD".into(), password.into());
    }
    let config = Config::from_env(Env::from_map(vars)).expect("test configuration is valid");
    assert_eq!(config.signing_key.kid(), key.kid());
    let running = auth_svc::build(config.clone())
        .await
        .expect("auth-svc starts");
    let port = running.port;
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::new(),
        config,
        signing_key: key,
        service: running,
        store,
    }
}

/// The body of a successful login or refresh.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A POST with a raw body and content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: &str) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/register",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/login",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/token/refresh", &json!({"refresh_token": refresh_token}))
            .await
    }

    /// `POST /logout` with the given bearer token (none when `None`) and JSON body.
    pub async fn logout(&self, token: Option<&str>, body: &Value) -> Response {
        let mut req = self.client.post(self.url("/logout")).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// Logs a session out (its access token, its refresh token): must be 204 with no body.
    pub async fn logout_ok(&self, pair: &TokenPair) {
        let resp = self
            .logout(
                Some(&pair.access_token),
                &json!({"refresh_token": pair.refresh_token}),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 204, "logging out");
        assert!(resp.text().await.unwrap().is_empty(), "a 204 has no body");
    }

    /// `GET /me` with the given bearer token (none when `None`).
    pub async fn me(&self, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url("/me"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub async fn jwks(&self) -> JwkSet {
        let resp = self
            .client
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.unwrap()
    }

    /// Registers a user and returns the 201 body.
    pub async fn register_ok(&self, username: &str, password: &str) -> Value {
        let resp = self.register(username, password).await;
        assert_eq!(resp.status().as_u16(), 201, "registering {username}");
        resp.json().await.unwrap()
    }

    /// Logs in and returns the pair.
    pub async fn login_ok(&self, username: &str, password: &str) -> TokenPair {
        let resp = self.login(username, password).await;
        assert_eq!(resp.status().as_u16(), 200, "logging in as {username}");
        resp.json().await.unwrap()
    }

    /// Registers then logs in.
    pub async fn signup(&self, username: &str) -> TokenPair {
        self.register_ok(username, PASSWORD).await;
        self.login_ok(username, PASSWORD).await
    }

    pub async fn refresh_ok(&self, refresh_token: &str) -> TokenPair {
        let resp = self.refresh(refresh_token).await;
        assert_eq!(resp.status().as_u16(), 200, "refreshing");
        resp.json().await.unwrap()
    }

    /// `GET /me` that must succeed; returns the user.
    pub async fn me_ok(&self, token: &str) -> Value {
        let resp = self.me(Some(token)).await;
        assert_eq!(resp.status().as_u16(), 200, "GET /me");
        resp.json().await.unwrap()
    }

    /// Valid claims for a user, as the service itself would issue them now.
    pub fn claims(&self, sub: &str, name: &str, role: Role) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: sub.to_owned(),
            name: name.to_owned(),
            role,
            iat: now,
            nbf: now,
            exp: now + 600,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// A verifier built only from what the service publishes.
    pub async fn verifier(&self) -> JwtVerifier {
        JwtVerifier::local(
            &self.jwks().await,
            &self.config.issuer,
            &self.config.audience,
        )
    }
}

/// Asserts a JSON error answer `{"error": code, "msg": …}` with that status.
pub async fn expect_error(resp: Response, status: u16, code: &str) -> ErrorBody {
    let got = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "status; body: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "content type `{content_type}`; body: {text}"
    );
    let body: ErrorBody =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not an error body ({e}): {text}"));
    assert_eq!(body.error, code, "error code; body: {text}");
    assert!(!body.msg.is_empty(), "empty msg: {text}");
    body
}

/// The decoded JSON of a JWT segment (0 = header, 1 = payload), without any verification.
pub fn jwt_segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The `password_hash` column of a user, read straight from the database.
pub async fn stored_password_hash(database_url: &str, username: &str) -> String {
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        password_hash: String,
    }

    let url = database_url.to_owned();
    let name = username.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = common::db::establish_postgres(&url).unwrap();
        let rows: Vec<Row> =
            diesel::sql_query("SELECT password_hash FROM auth.users WHERE username = $1")
                .bind::<Text, _>(&name)
                .load(&mut conn)
                .unwrap();
        assert_eq!(rows.len(), 1, "one row for {name}");
        rows.into_iter().next().unwrap().password_hash
    })
    .await
    .unwrap()
}
