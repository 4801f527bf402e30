use common::config::{
    Backends, CommonConfig, DatabaseConfig, JwtConfig, Mode, RedisConfig, Secret,
};
use common::jwt::{JwkSet, Role, SigningKeyPair};
use common::service_auth::{ServiceClaims, scopes};
use common::testing::{TestDatabase, claims, redis_prefix, redis_url, repo_root, serve_jwks};
use predict_svc::engine::BatchConfig;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub fn model_dir() -> PathBuf {
    std::env::var("MODEL_DIR").map_or_else(|_| repo_root().join("data/models"), PathBuf::from)
}

pub fn ort_dylib() -> PathBuf {
    std::env::var("ORT_DYLIB_PATH").map_or_else(
        |_| repo_root().join("assets/onnxruntime/libonnxruntime.so.1.31.1"),
        PathBuf::from,
    )
}

pub fn mnist_test() -> digits::Dataset {
    let dir =
        std::env::var("MNIST_DIR").map_or_else(|_| repo_root().join("assets/mnist"), PathBuf::from);
    digits::load_test(&dir).expect("MNIST test digits (run `cargo xtask setup`)")
}

/// Shared by the replicas of one test: the database, the Redis namespace, the signing key.
pub struct Backing {
    pub db: Arc<TestDatabase>,
    pub prefix: String,
    pub key: SigningKeyPair,
    pub jwks_url: String,
}

impl Backing {
    pub fn new() -> Self {
        let key = SigningKeyPair::generate().unwrap();
        let jwks_url = serve_jwks(JwkSet {
            keys: vec![key.jwk()],
        });
        Backing {
            db: Arc::new(TestDatabase::create()),
            prefix: redis_prefix(),
            key,
            jwks_url,
        }
    }
}

pub struct TestApp {
    pub url: String,
    /// Where `/internal/` and `/metrics` are served.
    pub management_url: String,
    pub client: reqwest::Client,
    pub user: String,
    pub admin: String,
    /// A service token with every internal scope.
    pub service: String,
    key: SigningKeyPair,
}

pub fn config(backing: &Backing, batch: BatchConfig) -> predict_svc::Config {
    predict_svc::Config {
        common: CommonConfig {
            mode: Mode::Development,
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            management_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            shutdown_timeout_secs: 5,
            workers: 2,
        },
        backends: Backends {
            database: DatabaseConfig {
                url: Secret::new(backing.db.url.clone()),
                migrate_on_start: true,
            },
            redis: RedisConfig {
                url: redis_url(),
                prefix: backing.prefix.clone(),
            },
            jwt: JwtConfig {
                jwks_url: backing.jwks_url.clone(),
                issuer: JwtConfig::DEFAULT_ISSUER.into(),
                audience: JwtConfig::DEFAULT_AUDIENCE.into(),
                jwks_refresh: JwtConfig::DEFAULT_JWKS_REFRESH,
            },
        },
        ort_dylib_path: ort_dylib(),
        model_dir: model_dir(),
        max_upload_bytes: 5 * 1024 * 1024,
        preprocessing: predict_svc::gate::Preprocessing::new(Default::default(), 2, 8),
        oip_max_batch: 256,
        batch,
        prediction_ttl: Duration::from_secs(24 * 3600),
        registry_sync: Duration::from_secs(30),
        rollout: rollout::Policy::default(),
        rollout_max_age: Duration::from_secs(7 * 24 * 3600),
        feedback_share: 0.2,
        shadow_sample: 1.0,
        shadow_queue: 256,
    }
}

pub const BATCHING: BatchConfig = BatchConfig {
    max_size: 32,
    max_wait: Duration::from_millis(2),
    sessions: 2,
};

pub async fn spawn_with(backing: &Backing, config: predict_svc::Config) -> TestApp {
    // Serving in the background until the test's runtime ends.
    let server = predict_svc::build(config).await.unwrap();
    let url = format!("http://127.0.0.1:{}", server.port);
    let management_url = format!("http://127.0.0.1:{}", server.management_port);
    TestApp {
        url,
        management_url,
        client: reqwest::Client::new(),
        user: backing.key.sign(&claims("ana", Role::User)).unwrap(),
        admin: backing.key.sign(&claims("boss", Role::Admin)).unwrap(),
        service: service_token(&backing.key, scopes::ALL),
        key: backing.key.clone(),
    }
}

pub async fn spawn_app() -> (TestApp, Backing) {
    let backing = Backing::new();
    let app = spawn_with(&backing, config(&backing, BATCHING)).await;
    (app, backing)
}

/// A service token of `retrain-worker` with these scopes, signed by the test's key.
pub fn service_token(key: &SigningKeyPair, scopes: &[&str]) -> String {
    key.sign(&ServiceClaims::new(
        JwtConfig::DEFAULT_ISSUER,
        "retrain-worker",
        scopes,
        Duration::from_secs(300),
    ))
    .unwrap()
}

impl TestApp {
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A URL on the management port.
    pub fn internal(&self, path: &str) -> String {
        format!("{}{path}", self.management_url)
    }

    /// A service token with only these scopes.
    pub fn service_with(&self, scopes: &[&str]) -> String {
        service_token(&self.key, scopes)
    }

    pub async fn upload(&self, version: &str, name: &str, bytes: Vec<u8>) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        self.client
            .post(self.at(&format!("/api/{version}/predict")))
            .bearer_auth(&self.user)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }
}

pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    body
}
