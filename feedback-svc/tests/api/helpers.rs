//! Starting feedback-svc for a test and talking to it.

use actix_web::{App, HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::bus::{Envelope, EventBus, RedisBus, events};
use common::config::{Env, JwtConfig};
use common::db::{Db, PoolOptions};
use common::error::ErrorBody;
use common::jwt::{JwkSet, JwtVerifier, Role, SigningKeyPair};
use common::kv::Redis;
use common::service::RunningService;
use common::service_auth::{self, ServiceClaims};
use common::testing::{TestDatabase, redis_prefix, redis_url, serve_auth};
use contracts::predictions::ServedPrediction;
use feedback_svc::db::outbox::OutboxState;
use feedback_svc::{Config, OutboxRelay, RelayOptions};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A Redis URL nothing listens on.
pub const DEAD_REDIS: &str = "redis://127.0.0.1:1";

pub use common::testing::TempDir;

/// Where an app keeps its data; clones share the same database.
#[derive(Clone)]
pub enum Store {
    Postgres(Arc<TestDatabase>),
    Sqlite(Arc<TempDir>),
}

impl Store {
    pub fn postgres() -> Self {
        Store::Postgres(Arc::new(TestDatabase::create()))
    }

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

/// A stand-in for predict-svc's `GET /internal/predictions/{id}`, answering the records the
/// test put in it to a caller with a service token of scope `predictions:read`.
#[derive(Clone)]
pub struct FakePredict {
    pub url: String,
    records: Arc<Mutex<HashMap<String, ServedPrediction>>>,
}

impl FakePredict {
    pub fn start(key: &SigningKeyPair) -> Self {
        let records: Arc<Mutex<HashMap<String, ServedPrediction>>> = Arc::default();
        let data = web::Data::from(records.clone());
        let verifier = web::Data::new(JwtVerifier::local(
            &JwkSet {
                keys: vec![key.jwk()],
            },
            JwtConfig::DEFAULT_ISSUER,
            JwtConfig::DEFAULT_AUDIENCE,
        ));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = actix_web::HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(verifier.clone())
                .route(
                    "/internal/predictions/{id}",
                    web::get().to(
                        |req: HttpRequest,
                         verifier: web::Data<JwtVerifier>,
                         records: web::Data<Mutex<HashMap<String, ServedPrediction>>>,
                         id: web::Path<String>| async move {
                            if let Err(e) = service_auth::authorize(
                                &verifier,
                                &req,
                                service_auth::scopes::PREDICTIONS_READ,
                            )
                            .await
                            {
                                return actix_web::ResponseError::error_response(&e);
                            }
                            match records.lock().unwrap().get(id.as_str()) {
                                Some(p) => HttpResponse::Ok().json(p),
                                None => HttpResponse::NotFound().json(json!({
                                    "error": "not_found",
                                    "msg": format!("No prediction {id}."),
                                })),
                            }
                        },
                    ),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        FakePredict {
            url: format!("http://127.0.0.1:{port}"),
            records,
        }
    }

    /// Records a served prediction of `user` and returns its id.
    pub fn serve(&self, user: &TestUser, model: &str, version: i32, digit: u8) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        let mut probabilities = vec![0.01f32; 10];
        probabilities[usize::from(digit)] = 0.91;
        self.records.lock().unwrap().insert(
            id.clone(),
            ServedPrediction {
                id: id.clone(),
                user_id: user.sub.clone(),
                username: user.name.clone(),
                model: model.to_owned(),
                model_version: version,
                input: STANDARD.encode(input_of(&id)),
                probabilities,
                prediction: digit,
                probability: 0.91,
                created_at: chrono::Utc::now(),
                feedback_requested: false,
                rollout: None,
            },
        );
        id
    }
}

/// The 784 input bytes the fake predict-svc serves for a prediction id (distinct per id).
pub fn input_of(prediction_id: &str) -> Vec<u8> {
    let seed = prediction_id
        .bytes()
        .fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    (0..784u32)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: String,
    pub sub: String,
    pub token: String,
}

pub struct Options {
    pub store: Store,
    pub redis_url: String,
    pub relay_enabled: bool,
    /// predict-svc's URL; the fake one when `None`.
    pub predict_url: Option<String>,
}

impl Options {
    pub fn new(store: Store) -> Self {
        Options {
            store,
            redis_url: redis_url(),
            relay_enabled: true,
            predict_url: None,
        }
    }
}

/// feedback-svc's client secret at the test's token endpoint.
pub const SERVICE_SECRET: &str = "feedback-svc-test-secret-0123456789abcdef";

pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    /// The management port's `http://127.0.0.1:PORT`: `/internal/`, `/metrics`.
    pub management: String,
    /// A service token of retrain-worker with `feedback:read`.
    pub service: String,
    pub client: reqwest::Client,
    /// Keeps the test database until the app is dropped.
    _store: Store,
    pub redis_prefix: String,
    pub predict: FakePredict,
    pub db: Db,
    key: SigningKeyPair,
    running: Option<RunningService>,
}

/// feedback-svc on a fresh PostgreSQL database with its relay running.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::new(Store::postgres())).await
}

/// feedback-svc whose relay the test drives itself.
pub async fn spawn_app_without_relay() -> TestApp {
    let mut options = Options::new(Store::postgres());
    options.relay_enabled = false;
    spawn_app_with(options).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let key = SigningKeyPair::generate().unwrap();
    let auth_url = serve_auth(
        &key,
        &[(
            "feedback-svc",
            SERVICE_SECRET,
            &[service_auth::scopes::PREDICTIONS_READ],
        )],
    );
    let predict = FakePredict::start(&key);
    let prefix = redis_prefix();
    let vars: HashMap<String, String> = [
        ("APP_ENV", "development".to_owned()),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("HTTP_WORKERS", "2".to_owned()),
        ("SHUTDOWN_TIMEOUT_SECS", "5".to_owned()),
        ("DATABASE_URL", options.store.url()),
        ("REDIS_URL", options.redis_url.clone()),
        ("REDIS_PREFIX", prefix.clone()),
        ("AUTH_JWKS_URL", format!("{auth_url}/.well-known/jwks.json")),
        ("AUTH_URL", auth_url),
        ("SERVICE_CLIENT_SECRET", SERVICE_SECRET.to_owned()),
        (
            "PREDICT_INTERNAL_URL",
            options.predict_url.clone().unwrap_or(predict.url.clone()),
        ),
        ("OUTBOX_RELAY_ENABLED", options.relay_enabled.to_string()),
        ("OUTBOX_POLL_INTERVAL_MS", "100".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_env(Env::from_map(vars)).expect("test configuration is valid");
    let running = feedback_svc::build(config)
        .await
        .expect("feedback-svc starts");
    let port = running.port;
    let management_port = running.management_port;
    let db = Db::connect(
        &options.store.url(),
        PoolOptions {
            schemas: vec!["feedback".into()],
            max_size: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        management: format!("http://127.0.0.1:{management_port}"),
        service: key
            .sign(&ServiceClaims::new(
                JwtConfig::DEFAULT_ISSUER,
                "retrain-worker",
                &[service_auth::scopes::FEEDBACK_READ],
                Duration::from_secs(300),
            ))
            .unwrap(),
        client: reqwest::Client::new(),
        _store: options.store,
        redis_prefix: prefix,
        predict,
        db,
        key,
        running: Some(running),
    }
}

impl TestApp {
    /// The URL of this app's database.
    pub fn database_url(&self) -> String {
        self._store.url()
    }

    /// `path` on the port that serves it: the management port for `/internal/` and
    /// `/metrics`, the public one otherwise.
    pub fn url(&self, path: &str) -> String {
        if common::server::is_management_path(path.split('?').next().unwrap_or(path)) {
            format!("{}{path}", self.management)
        } else {
            format!("{}{path}", self.address)
        }
    }

    /// A service token of retrain-worker with these scopes.
    pub fn service_token(&self, scopes: &[&str]) -> String {
        self.key
            .sign(&ServiceClaims::new(
                JwtConfig::DEFAULT_ISSUER,
                "retrain-worker",
                scopes,
                Duration::from_secs(300),
            ))
            .unwrap()
    }

    /// A user (or admin) with a valid access token.
    pub fn user(&self, name: &str, role: Role) -> TestUser {
        let claims = common::testing::claims(name, role);
        TestUser {
            name: name.to_owned(),
            sub: claims.sub.clone(),
            token: self.key.sign(&claims).unwrap(),
        }
    }

    pub async fn post_feedback(&self, user: &TestUser, body: &Value) -> Response {
        self.post_feedback_with_key(user, body, None).await
    }

    pub async fn post_feedback_with_key(
        &self,
        user: &TestUser,
        body: &Value,
        key: Option<&str>,
    ) -> Response {
        let mut req = self
            .client
            .post(self.url("/feedback"))
            .bearer_auth(&user.token)
            .json(body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        req.send().await.unwrap()
    }

    /// Posts feedback that must be accepted; returns its id.
    pub async fn feedback_ok(&self, user: &TestUser, body: Value) -> i64 {
        let resp = self.post_feedback(user, &body).await;
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "posting {body}: {answer}");
        assert_eq!(answer["msg"], "Feedback submitted successfully");
        answer["id"].as_i64().expect("an integer id")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub async fn get_ok(&self, path: &str, token: Option<&str>) -> Value {
        let resp = self.get(path, token).await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn report(&self, admin: &TestUser) -> Value {
        self.get_ok("/admin/report", Some(&admin.token)).await
    }

    /// Every outbox row, oldest first.
    pub async fn outbox(&self) -> Vec<OutboxState> {
        self.db.run(feedback_svc::db::outbox::all).await.unwrap()
    }

    pub async fn feedback_count(&self) -> i64 {
        self.db
            .run(|c| {
                use diesel::prelude::*;
                use feedback_svc::db::schema::feedback::dsl::*;
                feedback
                    .count()
                    .get_result::<i64>(c)
                    .map_err(common::db::DbError::from)
            })
            .await
            .unwrap()
    }

    /// The Redis of this test (its prefix), on the real server.
    pub fn redis(&self) -> Redis {
        Redis::connect(&redis_url(), &self.redis_prefix).unwrap()
    }

    /// A relay of this app's outbox publishing to the real Redis.
    pub fn relay(&self, batch_size: i64) -> OutboxRelay {
        OutboxRelay::new(
            self.db.clone(),
            &common::infra::Infra::Redis(self.redis()),
            RelayOptions {
                batch_size,
                ..Default::default()
            },
        )
    }

    /// A live subscription to `feedback.created` under this test's prefix.
    pub async fn subscribe(&self) -> BoxStream<'static, Envelope> {
        RedisBus::new(self.redis())
            .subscribe(&[events::FEEDBACK_CREATED])
            .await
            .unwrap()
    }

    /// The envelopes in the history stream, oldest first.
    pub async fn history(&self) -> Vec<Envelope> {
        let redis = self.redis();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(redis.key(feedback_svc::relay::HISTORY_STREAM))
            .arg("-")
            .arg("+")
            .query_async(&mut redis.conn())
            .await
            .unwrap();
        reply
            .ids
            .iter()
            .map(|entry| {
                let raw: String = entry.get(feedback_svc::relay::HISTORY_FIELD).unwrap();
                serde_json::from_str(&raw).unwrap()
            })
            .collect()
    }

    /// Stops the server and its relay.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

/// The next envelope of a subscription, waiting at most `secs`.
pub async fn next_event(events: &mut BoxStream<'static, Envelope>, secs: u64) -> Option<Envelope> {
    tokio::time::timeout(Duration::from_secs(secs), events.next())
        .await
        .ok()
        .flatten()
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

/// Waits (up to `secs`) until `check` holds for the outbox rows; returns them.
pub async fn wait_for_outbox(
    app: &TestApp,
    secs: u64,
    check: impl Fn(&[OutboxState]) -> bool,
) -> Vec<OutboxState> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let rows = app.outbox().await;
        if check(&rows) {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox never reached the expected state: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
