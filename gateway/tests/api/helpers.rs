use actix_web::{App, HttpRequest, HttpResponse, web};
use common::config::{CommonConfig, DatabaseConfig, JwtConfig, Mode, Secret};
use common::jwt::SigningKeyPair;
use common::testing::TestDatabase;
use gateway::ratelimit::RateLimitConfig;
use gateway::routes::{RouteTable, Upstream};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

pub const ADMIN: (&str, &str) = ("root-admin", "admin-password-1");
pub const UPLOAD_LIMIT: usize = 4 * 1024 * 1024;
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn local(port: u16) -> CommonConfig {
    CommonConfig {
        mode: Mode::Development,
        bind_addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        management_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        shutdown_timeout_secs: 5,
        workers: 1,
    }
}

/// Answers every request with what it received: method, path, query, headers, body size.
async fn echo(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    HttpResponse::Ok()
        .insert_header(("x-upstream", "echo"))
        .json(json!({
            "method": req.method().as_str(),
            "path": req.path(),
            "query": req.query_string(),
            "headers": headers,
            "body_len": body.len(),
        }))
}

async fn slow() -> HttpResponse {
    tokio::time::sleep(Duration::from_secs(3)).await;
    HttpResponse::Ok().json(json!({"late": true}))
}

/// Refuses every request (a WebSocket upgrade too) with 503, saying what it received as
/// [`echo`] does, but for the body: an upgrade's would never end.
async fn refuse_with_echo(req: HttpRequest) -> HttpResponse {
    let echoed = echo(req, web::Bytes::new()).await;
    let mut answer = HttpResponse::ServiceUnavailable();
    match actix_web::body::to_bytes(echoed.into_body()).await {
        Ok(bytes) => answer.content_type("application/json").body(bytes),
        Err(_) => answer.finish(),
    }
}

/// An upstream that refuses everything, saying what it received; returns its base URL.
pub fn spawn_refusing_upstream() -> String {
    spawn_upstream(|| web::to(refuse_with_echo))
}

/// Starts a test upstream on a free port; returns its base URL.
fn spawn_upstream(handler: fn() -> actix_web::Route) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .default_service(handler())
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

/// A port nothing listens on.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

pub struct TestGateway {
    pub url: String,
    /// The management port: `/metrics`.
    pub management_url: String,
    pub client: reqwest::Client,
    pub auth_key: SigningKeyPair,
    _db: TestDatabase,
}

impl TestGateway {
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.at(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_with(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.at(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, username: &str, password: &str) {
        let r = self
            .post_json(
                "/register",
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    pub async fn login(&self, username: &str, password: &str) -> Value {
        let r = self
            .post_json(
                "/login",
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn token(&self, username: &str, password: &str) -> String {
        self.login(username, password).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A fresh user's access token.
    pub async fn user_token(&self) -> String {
        let name = format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        self.register(&name, "password-123").await;
        self.token(&name, "password-123").await
    }

    pub async fn admin_token(&self) -> String {
        self.token(ADMIN.0, ADMIN.1).await
    }
}

/// The one origin the test gateways let browsers call from.
pub const ALLOWED_ORIGIN: &str = "https://app.example.com";
/// How long the test gateways wait for a stalled body.
pub const BODY_TIMEOUT_MS: u64 = 800;

/// The gateway in front of: the real auth-svc; an echo upstream as predict-svc and
/// feedback-svc; a slow one as retrain-worker; nothing (a closed port) as notify-svc.
pub async fn spawn_gateway() -> TestGateway {
    spawn_limited_gateway(None, String::new(), RateLimitConfig::disabled()).await
}

/// The same, with rate limits counted in the Redis at `redis_url` under `prefix`.
pub async fn spawn_limited_gateway(
    redis_url: Option<String>,
    prefix: String,
    rate_limit: RateLimitConfig,
) -> TestGateway {
    spawn_gateway_serving(redis_url, prefix, rate_limit, repo_web()).await
}

/// The repository's web pages (its `node_modules` only after `cargo xtask setup`).
pub fn repo_web() -> gateway::pages::WebConfig {
    gateway::pages::WebConfig::at(concat!(env!("CARGO_MANIFEST_DIR"), "/../web"))
}

/// [`spawn_limited_gateway`], serving the web pages from `web`.
pub async fn spawn_gateway_serving(
    redis_url: Option<String>,
    prefix: String,
    rate_limit: RateLimitConfig,
    web: gateway::pages::WebConfig,
) -> TestGateway {
    spawn_gateway_with(Setup {
        redis_url,
        prefix,
        rate_limit,
        web,
        trusted_proxies: vec![],
        notify_url: None,
    })
    .await
}

/// What a test gateway is started with.
pub struct Setup {
    pub redis_url: Option<String>,
    pub prefix: String,
    pub rate_limit: RateLimitConfig,
    pub web: gateway::pages::WebConfig,
    /// The proxies whose `X-Forwarded-For` it believes.
    pub trusted_proxies: Vec<gateway::edge::Cidr>,
    /// notify-svc's URL (none: a closed port).
    pub notify_url: Option<String>,
}

/// The gateway of [`spawn_gateway`], as `setup` says.
pub async fn spawn_gateway_with(setup: Setup) -> TestGateway {
    let Setup {
        redis_url,
        prefix,
        rate_limit,
        web,
        trusted_proxies,
        notify_url,
    } = setup;
    let db = TestDatabase::create();
    let auth_key = SigningKeyPair::generate().unwrap();
    let auth = auth_svc::build(auth_svc::Config {
        common: local(0),
        database: DatabaseConfig {
            url: Secret::new(db.url.clone()),
            migrate_on_start: true,
        },
        signing_key: auth_key.clone(),
        issuer: JwtConfig::DEFAULT_ISSUER.into(),
        audience: JwtConfig::DEFAULT_AUDIENCE.into(),
        access_token_ttl: Duration::from_secs(900),
        refresh_token_ttl: Duration::from_secs(3600),
        bcrypt_cost: 4,
        admin: Some(auth_svc::config::AdminBootstrap {
            username: ADMIN.0.into(),
            password: Secret::new(ADMIN.1),
        }),
        service_clients: Default::default(),
        service_token_ttl: Duration::from_secs(300),
    })
    .await
    .unwrap();
    let auth_url = format!("http://127.0.0.1:{}", auth.port);

    let echo_url = spawn_upstream(|| web::to(echo));
    let slow_url = spawn_upstream(|| web::to(slow));
    let upstreams = HashMap::from([
        (Upstream::Auth, auth_url.clone()),
        (Upstream::Predict, echo_url.clone()),
        (Upstream::Feedback, echo_url),
        (Upstream::Retrain, slow_url),
        (Upstream::Notify, notify_url.unwrap_or_else(closed_port_url)),
    ]);
    let gw = gateway::build(gateway::Config {
        common: local(0),
        jwt: JwtConfig {
            jwks_url: format!("{auth_url}/.well-known/jwks.json"),
            issuer: JwtConfig::DEFAULT_ISSUER.into(),
            audience: JwtConfig::DEFAULT_AUDIENCE.into(),
            jwks_refresh: JwtConfig::DEFAULT_JWKS_REFRESH,
        },
        upstreams,
        routes: RouteTable::defaults(),
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(1000),
        max_upload_bytes: UPLOAD_LIMIT,
        max_body_bytes: BODY_LIMIT,
        redis_url,
        redis_prefix: prefix,
        rate_limit,
        edge: gateway::edge::EdgeConfig {
            cors_origins: vec![ALLOWED_ORIGIN.to_owned()],
            trusted_proxies,
            ..gateway::edge::EdgeConfig::defaults()
        },
        body_timeout: Duration::from_millis(BODY_TIMEOUT_MS),
        web,
    })
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{}", gw.port);
    let management_url = format!("http://127.0.0.1:{}", gw.management_port);
    gw.spawn();
    TestGateway {
        url,
        management_url,
        client: reqwest::Client::new(),
        auth_key,
        _db: db,
    }
}

/// Asserts a JSON error answer with the given status and code.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}
