#![allow(clippy::expect_used)]
//! Test support (feature `testing`): a fresh PostgreSQL database per test, dropped afterwards,
//! and a unique Redis key prefix per test, so tests share one server safely. The databases need
//! the `db` feature too.

#[cfg(feature = "db")]
use diesel::connection::SimpleConnection;

pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A directory of its own for one test (SQLite files, a data folder), removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("predictloop-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("creating a temporary directory");
        TempDir(dir)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4().simple())
}

/// A database created for one test and dropped when this value is dropped.
#[cfg(feature = "db")]
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

#[cfg(feature = "db")]
impl TestDatabase {
    pub fn create() -> Self {
        let admin_url = postgres_url();
        let name = format!("pl_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = crate::db::establish_postgres(&admin_url)
            .unwrap_or_else(|e| panic!("tests need PostgreSQL at {admin_url}: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("cannot create test database: {e}"));
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .unwrap_or_else(|| admin_url.clone());
        TestDatabase {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        }
    }
}

#[cfg(feature = "db")]
impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Blocking work off the async runtime's thread.
        let _ = std::thread::spawn(move || drop_database(&admin_url, &name)).join();
    }
}

/// Drops the database `name` of the server at `admin_url`, ending the connections to it
/// (blocking: from async code, call it through `spawn_blocking`).
#[cfg(feature = "db")]
pub fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let mut admin = crate::db::establish_postgres(admin_url).map_err(|e| e.to_string())?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .map_err(|e| e.to_string())
}

/// Serves `keys` as a JWKS document on a free port, as auth-svc would; returns its URL.
pub fn serve_jwks(keys: crate::jwt::JwkSet) -> String {
    use actix_web::{App, HttpResponse, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    let keys = web::Data::new(keys);
    let server = actix_web::HttpServer::new(move || {
        App::new().app_data(keys.clone()).route(
            "/.well-known/jwks.json",
            web::get().to(|k: web::Data<crate::jwt::JwkSet>| async move {
                HttpResponse::Ok().json(k.get_ref())
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/.well-known/jwks.json")
}

/// A stand-in for auth-svc's key and token endpoints, on a free port; returns its base URL.
///
/// `GET /.well-known/jwks.json` serves `key`'s public key; `POST /token` runs the
/// client-credentials grant for `clients` (id, secret, scopes) with HTTP Basic authentication,
/// issuing real service tokens signed by `key` with every scope the client is allowed.
pub fn serve_auth(key: &crate::jwt::SigningKeyPair, clients: &[(&str, &str, &[&str])]) -> String {
    use actix_web::{App, HttpRequest, HttpResponse, web};
    type Clients = Vec<(String, String, Vec<&'static str>)>;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    let keys = web::Data::new(crate::jwt::JwkSet {
        keys: vec![key.jwk()],
    });
    let signing = web::Data::new(key.clone());
    let clients: web::Data<Clients> = web::Data::new(
        clients
            .iter()
            .map(|(id, secret, scopes)| {
                let scopes = scopes
                    .iter()
                    .filter_map(|s| crate::service_auth::scopes::ALL.iter().find(|k| *k == s))
                    .copied()
                    .collect();
                ((*id).to_owned(), (*secret).to_owned(), scopes)
            })
            .collect(),
    );
    async fn token(
        req: HttpRequest,
        key: web::Data<crate::jwt::SigningKeyPair>,
        clients: web::Data<Clients>,
    ) -> HttpResponse {
        use base64::Engine;
        let basic = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let client = basic
            .as_deref()
            .and_then(|b| b.split_once(':'))
            .and_then(|(id, secret)| clients.iter().find(|(i, s, _)| i == id && s == secret));
        let Some((id, _, scopes)) = client else {
            return actix_web::ResponseError::error_response(&crate::ApiError::from(
                crate::ErrorCode::InvalidClient,
            ));
        };
        let ttl = std::time::Duration::from_secs(300);
        let claims = crate::service_auth::ServiceClaims::new(
            crate::config::JwtConfig::DEFAULT_ISSUER,
            id,
            scopes,
            ttl,
        );
        HttpResponse::Ok().json(serde_json::json!({
            "access_token": key.sign(&claims).expect("signing"),
            "token_type": "Bearer",
            "expires_in": ttl.as_secs(),
            "scope": claims.scope,
        }))
    }
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .app_data(keys.clone())
            .app_data(signing.clone())
            .app_data(clients.clone())
            .route(
                "/.well-known/jwks.json",
                web::get().to(|k: web::Data<crate::jwt::JwkSet>| async move {
                    HttpResponse::Ok().json(k.get_ref())
                }),
            )
            .route("/token", web::post().to(token))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

/// Claims of a valid access token for the default issuer and audience.
pub fn claims(name: &str, role: crate::jwt::Role) -> crate::jwt::Claims {
    let now = chrono::Utc::now().timestamp();
    crate::jwt::Claims {
        iss: crate::config::JwtConfig::DEFAULT_ISSUER.into(),
        aud: crate::config::JwtConfig::DEFAULT_AUDIENCE.into(),
        sub: uuid::Uuid::now_v7().to_string(),
        name: name.into(),
        role,
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: uuid::Uuid::now_v7().to_string(),
    }
}

/// The repository's root (for assets and trained models).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

/// Asserts that each error of a service answers with the status and code given, and with its
/// own sentence (its `Display`): the per-variant contract of a service's error type.
pub fn assert_answers<E>(cases: impl IntoIterator<Item = (E, u16, &'static str)>)
where
    E: std::fmt::Display + std::fmt::Debug,
    for<'a> crate::ApiError: From<&'a E>,
{
    for (error, status, code) in cases {
        let api = crate::ApiError::from(&error);
        let got = (api.status().as_u16(), api.code().as_str(), api.msg());
        assert_eq!(got, (status, code, error.to_string().as_str()), "{error:?}");
    }
}
