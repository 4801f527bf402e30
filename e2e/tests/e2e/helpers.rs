use common::jwt::SigningKeyPair;
use common::testing::{TempDir, TestDatabase, redis_prefix, redis_url, repo_root};
use serde_json::{Value, json};
use std::path::PathBuf;

pub const ADMIN: (&str, &str) = ("e2e-admin", "e2e-admin-password");

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

/// Which backends the cross-service tests run on: `postgres` (PostgreSQL and Redis, the
/// default) or `embedded` (SQLite and the in-process bus, queue and stores of the all-in-one
/// mode), from `PREDICTLOOP_TEST_BACKEND`. `cargo xtask test` runs the suite on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Embedded,
}

impl Backend {
    pub fn from_env() -> Backend {
        match std::env::var("PREDICTLOOP_TEST_BACKEND").as_deref() {
            Ok("embedded") => Backend::Embedded,
            Ok("postgres") | Err(_) => Backend::Postgres,
            Ok(other) => panic!("PREDICTLOOP_TEST_BACKEND={other}: expected postgres or embedded"),
        }
    }

    /// [`Backend::from_env`], with the tests' Redis server on PostgreSQL.
    pub fn from_env_with_redis() -> (Backend, Option<String>) {
        let backend = Backend::from_env();
        (backend, (backend == Backend::Postgres).then(redis_url))
    }
}

/// The whole system as the all-in-one process runs it (`predictloop`): every service, the
/// gateway in front, on a fresh database and bus (see [`Backend`]).
pub struct System {
    pub gateway: String,
    pub client: reqwest::Client,
    /// auth-svc's signing key, to forge tokens that are validly signed but wrong otherwise.
    pub signing_key: SigningKeyPair,
    _system: predictloop::System,
    _db: Option<TestDatabase>,
    _data: TempDir,
}

impl System {
    pub async fn start() -> System {
        Self::start_configured(|settings| settings).await
    }

    /// The system with some variables changed from the tests' defaults.
    pub async fn start_configured(
        configure: impl FnOnce(predictloop::Settings) -> predictloop::Settings,
    ) -> System {
        let (backend, redis) = Backend::from_env_with_redis();
        Self::start_with(backend, redis.as_deref(), configure).await
    }

    /// The system on PostgreSQL and the Redis server at `redis`.
    pub async fn start_on(redis: &str) -> System {
        Self::start_with(Backend::Postgres, Some(redis), |settings| settings).await
    }

    async fn start_with(
        backend: Backend,
        redis: Option<&str>,
        configure: impl FnOnce(predictloop::Settings) -> predictloop::Settings,
    ) -> System {
        let (settings, prepared) = Prepared::new(backend, redis);
        let system = predictloop::System::start(configure(settings))
            .await
            .unwrap();
        System {
            gateway: system.url(),
            client: reqwest::Client::new(),
            signing_key: prepared.signing_key,
            _system: system,
            _db: prepared.db,
            _data: prepared.data,
        }
    }

    /// Tries to start the system (on the backend of [`Backend::from_env`]) with a configuration
    /// that must fail; returns the error.
    pub async fn start_failing(
        configure: impl FnOnce(predictloop::Settings) -> predictloop::Settings,
    ) -> anyhow::Error {
        let (backend, redis) = Backend::from_env_with_redis();
        let (settings, _prepared) = Prepared::new(backend, redis.as_deref());
        match predictloop::System::start(configure(settings)).await {
            Ok(_) => panic!("the system started"),
            Err(e) => e,
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    /// `path` on a service's public port (`auth-svc`, `predict-svc`, `feedback-svc`,
    /// `retrain-worker`), or the gateway's.
    pub fn public(&self, service: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports(service).0)
    }

    /// `path` on a service's (or the gateway's) management port.
    pub fn management(&self, service: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports(service).1)
    }

    fn ports(&self, service: &str) -> (u16, u16) {
        if service == "gateway" {
            return (self._system.port, self._system.management_port);
        }
        *self
            ._system
            .services
            .get(service)
            .unwrap_or_else(|| panic!("no service {service}"))
    }

    /// A service token with these scopes, signed by auth-svc's key.
    pub fn service_token(&self, scopes: &[&str]) -> String {
        self.signing_key
            .sign(&common::service_auth::ServiceClaims::new(
                common::config::JwtConfig::DEFAULT_ISSUER,
                "e2e",
                scopes,
                std::time::Duration::from_secs(300),
            ))
            .unwrap()
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

/// What a started system's settings point at, kept for as long as the system runs.
struct Prepared {
    signing_key: SigningKeyPair,
    db: Option<TestDatabase>,
    data: TempDir,
}

impl Prepared {
    /// The tests' settings on `backend`, with a fresh data folder and, on PostgreSQL, a fresh
    /// database and Redis prefix.
    fn new(backend: Backend, redis: Option<&str>) -> (predictloop::Settings, Prepared) {
        let signing_key = SigningKeyPair::generate().unwrap();
        let data = TempDir::new();
        // Each service reads its configuration as in production, from variables.
        let mut settings = predictloop::Settings::default()
            .set("APP_ENV", "development")
            .set("BIND_ADDR", "127.0.0.1:0")
            .set("DATA_DIR", data.0.display().to_string())
            .set("SHUTDOWN_TIMEOUT_SECS", "5")
            .set("JWT_SIGNING_KEY", signing_key.to_pem())
            .set("ADMIN_USERNAME", ADMIN.0)
            .set("ADMIN_PASSWORD", ADMIN.1)
            .set("BCRYPT_COST", "4")
            .set(
                "ORT_DYLIB_PATH",
                path_from_env(
                    "ORT_DYLIB_PATH",
                    "assets/onnxruntime/libonnxruntime.so.1.31.1",
                ),
            )
            .set("MODEL_DIR", path_from_env("MODEL_DIR", "data/models"))
            .set("MNIST_DIR", path_from_env("MNIST_DIR", "assets/mnist"))
            .set("WEB_DIR", repo_root().join("web").display().to_string())
            .set("RETRAIN_RECLAIM_IDLE_SECS", "10")
            // Real limits, counted in the rate-limit store, high enough for the suites' traffic.
            .set("RATE_LIMIT_DEFAULT", "100000/day")
            .set(
                "RATE_LIMIT_ROUTES",
                "/api/v1/predict=100000/day; /api/v2/predict=100000/day",
            )
            .set("RATE_LIMIT_EXEMPT", "/health,/ready");
        let db = match (backend, redis) {
            (Backend::Postgres, Some(redis)) => {
                let db = TestDatabase::create();
                settings = settings
                    .set("DATABASE_URL", db.url.clone())
                    .set("REDIS_URL", redis)
                    .set("REDIS_PREFIX", redis_prefix());
                Some(db)
            }
            _ => None,
        };
        (
            settings,
            Prepared {
                signing_key,
                db,
                data,
            },
        )
    }
}
