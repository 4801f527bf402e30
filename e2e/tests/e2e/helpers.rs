use common::config::{CommonConfig, Env, JwtConfig, Mode, Secret};
use common::jwt::SigningKeyPair;
use common::testing::{TestDatabase, redis_prefix, redis_url, repo_root};
use gateway::routes::{RouteTable, Upstream};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub const ADMIN: (&str, &str) = ("e2e-admin", "e2e-admin-password");

fn local() -> CommonConfig {
    CommonConfig {
        mode: Mode::Development,
        bind_addr: "127.0.0.1:0".parse().unwrap(),
        shutdown_timeout_secs: 5,
        workers: 2,
    }
}

fn path_from_env(var: &str, default: &str) -> String {
    std::env::var(var)
        .map_or_else(|_| repo_root().join(default), PathBuf::from)
        .display()
        .to_string()
}

pub fn mnist_train() -> digits::Dataset {
    digits::load_train(&PathBuf::from(path_from_env("MNIST_DIR", "assets/mnist")))
        .expect("run `cargo xtask setup`")
}

pub fn mnist_test() -> digits::Dataset {
    digits::load_test(&PathBuf::from(path_from_env("MNIST_DIR", "assets/mnist")))
        .expect("run `cargo xtask setup`")
}

/// The system on one fresh database and Redis namespace: auth-svc, predict-svc, feedback-svc,
/// notify-svc and the gateway in front of them.
pub struct System {
    pub gateway: String,
    pub client: reqwest::Client,
    /// auth-svc's signing key, to forge tokens that are validly signed but wrong otherwise.
    pub signing_key: SigningKeyPair,
    _db: TestDatabase,
    _feedback: feedback_svc::RunningApp,
    _notify: notify_svc::RunningApp,
    _retrain: retrain_worker::RunningApp,
}

impl System {
    pub async fn start() -> System {
        Self::start_on(&redis_url()).await
    }

    /// The system using the Redis server at `redis`.
    pub async fn start_on(redis: &str) -> System {
        let db = TestDatabase::create();
        let prefix = redis_prefix();
        let signing_key = SigningKeyPair::generate().unwrap();
        let auth = auth_svc::build(auth_svc::Config {
            common: local(),
            database_url: Secret::new(db.url.clone()),
            signing_key: signing_key.clone(),
            issuer: JwtConfig::DEFAULT_ISSUER.into(),
            audience: JwtConfig::DEFAULT_AUDIENCE.into(),
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(3600),
            bcrypt_cost: 4,
            admin: Some(auth_svc::config::AdminBootstrap {
                username: ADMIN.0.into(),
                password: Secret::new(ADMIN.1),
            }),
        })
        .await
        .unwrap();
        let auth_url = format!("http://127.0.0.1:{}", auth.port);
        auth.spawn();
        let jwks_url = format!("{auth_url}/.well-known/jwks.json");

        // Each service reads its configuration as in production, from variables.
        let shared: Vec<(&str, String)> = vec![
            ("BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("APP_ENV", "development".to_owned()),
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", redis.to_owned()),
            ("REDIS_PREFIX", prefix.clone()),
            ("AUTH_JWKS_URL", jwks_url.clone()),
        ];
        let env = |extra: Vec<(&str, String)>| {
            Env::from_map(
                shared
                    .iter()
                    .cloned()
                    .chain(extra)
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<HashMap<String, String>>(),
            )
        };

        let predict = predict_svc::build(
            predict_svc::Config::from_env(env(vec![
                (
                    "ORT_DYLIB_PATH",
                    path_from_env(
                        "ORT_DYLIB_PATH",
                        "assets/onnxruntime/libonnxruntime.so.1.31.1",
                    ),
                ),
                ("MODEL_DIR", path_from_env("MODEL_DIR", "data/models")),
            ]))
            .unwrap(),
        )
        .await
        .unwrap();
        let predict_url = format!("http://127.0.0.1:{}", predict.port);
        predict.spawn();

        let feedback = feedback_svc::build(
            feedback_svc::Config::from_env(env(vec![("PREDICT_URL", predict_url.clone())]))
                .unwrap(),
        )
        .await
        .unwrap();
        let feedback_url = format!("http://127.0.0.1:{}", feedback.port);
        let feedback = feedback.spawn();

        let notify = notify_svc::build(notify_svc::Config::from_env(env(vec![])).unwrap())
            .await
            .unwrap();
        let notify_url = format!("http://127.0.0.1:{}", notify.port);
        let notify = notify.spawn();

        let retrain = retrain_worker::build(
            retrain_worker::Config::from_env(env(vec![
                ("PREDICT_URL", predict_url.clone()),
                ("FEEDBACK_URL", feedback_url.clone()),
                ("MNIST_DIR", path_from_env("MNIST_DIR", "assets/mnist")),
                ("RETRAIN_RECLAIM_IDLE_SECS", "10".to_owned()),
            ]))
            .unwrap(),
        )
        .await
        .unwrap();
        let retrain_url = format!("http://127.0.0.1:{}", retrain.port);
        let retrain = retrain.spawn();

        let gw = gateway::build(gateway::Config {
            common: local(),
            jwt: JwtConfig {
                jwks_url,
                issuer: JwtConfig::DEFAULT_ISSUER.into(),
                audience: JwtConfig::DEFAULT_AUDIENCE.into(),
            },
            upstreams: HashMap::from([
                (Upstream::Auth, auth_url),
                (Upstream::Predict, predict_url),
                (Upstream::Feedback, feedback_url),
                (Upstream::Notify, notify_url),
                (Upstream::Retrain, retrain_url),
            ]),
            routes: RouteTable::defaults(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            max_upload_bytes: 10 * 1024 * 1024,
            max_body_bytes: 1024 * 1024,
            redis_url: Some(redis.to_owned()),
            redis_prefix: prefix.clone(),
            // Real limits, counted in Redis, high enough for the suites' traffic.
            rate_limit: gateway::ratelimit::RateLimitConfig {
                enabled: true,
                default: gateway::ratelimit::parse_limits("100000/day").unwrap(),
                routes: vec![],
                exempt: vec!["/health".into(), "/ready".into()],
                fail_open: true,
                timeout: Duration::from_millis(250),
                trusted_proxies: vec![],
            },
            edge: gateway::edge::EdgeConfig::defaults(),
            body_timeout: Duration::from_secs(10),
            web: gateway::pages::WebConfig::at(concat!(env!("CARGO_MANIFEST_DIR"), "/../web")),
        })
        .await
        .unwrap();
        let gateway = format!("http://127.0.0.1:{}", gw.port);
        gw.spawn();
        System {
            gateway,
            client: reqwest::Client::new(),
            signing_key,
            _db: db,
            _feedback: feedback,
            _notify: notify,
            _retrain: retrain,
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    pub fn ws_url(&self, token: &str) -> String {
        format!(
            "{}/ws?access_token={token}",
            self.gateway.replacen("http://", "ws://", 1)
        )
    }

    async fn log_in(&self, username: &str, password: &str) -> String {
        let creds = json!({"username": username, "password": password});
        let r: Value = self
            .client
            .post(self.at("/login"))
            .json(&creds)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"].as_str().unwrap().to_owned()
    }

    /// Registers a new user and logs in through the gateway; returns the access token.
    pub async fn user(&self, name: &str) -> String {
        let creds = json!({"username": name, "password": "password-123"});
        let r = self
            .client
            .post(self.at("/register"))
            .json(&creds)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        self.log_in(name, "password-123").await
    }

    pub async fn admin(&self) -> String {
        self.log_in(ADMIN.0, ADMIN.1).await
    }

    pub async fn upload(
        &self,
        token: &str,
        version: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
        self.client
            .post(self.at(&format!("/api/{version}/predict")))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }
}
