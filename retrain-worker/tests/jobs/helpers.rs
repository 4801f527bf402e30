use common::bus::{Envelope, EventBus, RedisBus, events};
use common::config::Env;
use common::db::Db;
use common::infra::Infra;
use common::jwt::{Role, SigningKeyPair};
use common::kv::Redis;
use common::service::RunningService;
use common::service_auth::{CALLERS, ServiceClaims, scopes};
use common::testing::{TestDatabase, claims, redis_prefix, redis_url, repo_root, serve_auth};
use contracts::models::{ARTIFACT_CONTENT_TYPE, ModelVersion, Registration};
use futures_util::StreamExt;
use retrain_worker::worker::Worker;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn path_from_env(var: &str, default: &str) -> String {
    std::env::var(var)
        .map_or_else(|_| repo_root().join(default), PathBuf::from)
        .display()
        .to_string()
}

/// The services' client secrets at the test's token endpoint.
const RETRAIN_SECRET: &str = "retrain-worker-test-secret-0123456789abcdef";
const FEEDBACK_SECRET: &str = "feedback-svc-test-secret-0123456789abcdef";

/// predict-svc and feedback-svc on one fresh database and Redis namespace, ready for workers.
pub struct Cluster {
    pub db: TestDatabase,
    pub prefix: String,
    /// The stand-in auth-svc issuing service tokens.
    pub auth_url: String,
    /// predict-svc's public port.
    pub predict_url: String,
    /// predict-svc's management port (`/internal/`).
    pub predict_internal_url: String,
    pub feedback_internal_url: String,
    /// A service token with every internal scope.
    pub service: String,
    pub admin: String,
    pub user: String,
    pub client: reqwest::Client,
    _feedback: RunningService,
}

/// A retrain-worker in this process.
pub struct InProcess {
    pub url: String,
    pub app: Option<RunningService>,
}

/// A worker the test drives job by job ([`Worker::process_next`]), beside a replica that only
/// answers the job API.
pub struct Stepper {
    pub url: String,
    pub api: RunningService,
    pub worker: Worker,
}

fn vars_for(
    db_url: &str,
    prefix: &str,
    auth_url: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let jwks_url = format!("{auth_url}/.well-known/jwks.json");
    let mut vars: Vec<(String, String)> = [
        ("BIND_ADDR", "127.0.0.1:0"),
        ("APP_ENV", "development"),
        ("DATABASE_URL", db_url),
        ("REDIS_PREFIX", prefix),
        ("AUTH_JWKS_URL", &jwks_url),
        ("AUTH_URL", auth_url),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.push(("REDIS_URL".into(), redis_url()));
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    vars
}

fn env_of(vars: Vec<(String, String)>) -> Env {
    Env::from_map(vars.into_iter().collect::<HashMap<_, _>>())
}

impl Cluster {
    pub async fn start() -> Cluster {
        let db = TestDatabase::create();
        let prefix = redis_prefix();
        let key = SigningKeyPair::generate().unwrap();
        let scopes_of = |id: &str| CALLERS.iter().find(|(c, _)| *c == id).unwrap().1;
        let auth_url = serve_auth(
            &key,
            &[
                (
                    "retrain-worker",
                    RETRAIN_SECRET,
                    scopes_of("retrain-worker"),
                ),
                ("feedback-svc", FEEDBACK_SECRET, scopes_of("feedback-svc")),
            ],
        );
        let vars = |extra: &[(&str, &str)]| vars_for(&db.url, &prefix, &auth_url, extra);
        let ort = path_from_env(
            "ORT_DYLIB_PATH",
            "assets/onnxruntime/libonnxruntime.so.1.31.1",
        );
        let models = path_from_env("MODEL_DIR", "data/models");
        let predict = predict_svc::build(
            predict_svc::Config::from_env(env_of(vars(&[
                ("ORT_DYLIB_PATH", &ort),
                ("MODEL_DIR", &models),
            ])))
            .unwrap(),
        )
        .await
        .unwrap();
        let predict_url = format!("http://127.0.0.1:{}", predict.port);
        let predict_internal_url = format!("http://127.0.0.1:{}", predict.management_port);
        let feedback = feedback_svc::build(
            feedback_svc::Config::from_env(env_of(vars(&[
                ("PREDICT_INTERNAL_URL", &predict_internal_url),
                ("SERVICE_CLIENT_SECRET", FEEDBACK_SECRET),
            ])))
            .unwrap(),
        )
        .await
        .unwrap();
        let feedback_internal_url = format!("http://127.0.0.1:{}", feedback.management_port);
        let service = key
            .sign(&ServiceClaims::new(
                common::config::JwtConfig::DEFAULT_ISSUER,
                "retrain-worker",
                scopes::ALL,
                Duration::from_secs(300),
            ))
            .unwrap();
        Cluster {
            db,
            prefix,
            auth_url,
            predict_url,
            predict_internal_url,
            feedback_internal_url,
            service,
            admin: key.sign(&claims("boss", Role::Admin)).unwrap(),
            user: key.sign(&claims("ana", Role::User)).unwrap(),
            client: reqwest::Client::new(),
            _feedback: feedback,
        }
    }

    /// The variables every service of this cluster reads, plus `extra`.
    pub fn vars(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        vars_for(&self.db.url, &self.prefix, &self.auth_url, extra)
    }

    /// A worker's variables: this cluster's services, MNIST, a short reclaim time for tests.
    pub fn worker_vars(&self, consumer: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mnist = path_from_env("MNIST_DIR", "assets/mnist");
        let mut base: Vec<(&str, &str)> = vec![
            ("PREDICT_INTERNAL_URL", &self.predict_internal_url),
            ("FEEDBACK_INTERNAL_URL", &self.feedback_internal_url),
            ("SERVICE_CLIENT_SECRET", RETRAIN_SECRET),
            ("MNIST_DIR", &mnist),
            ("RETRAIN_CONSUMER", consumer),
            ("RETRAIN_RECLAIM_IDLE_SECS", "2"),
            ("RETRAIN_EVAL_SAMPLE", "2000"),
        ];
        base.extend_from_slice(extra);
        self.vars(&base)
    }

    pub async fn worker(&self, consumer: &str, extra: &[(&str, &str)]) -> InProcess {
        let vars = self.worker_vars(consumer, extra);
        let config = retrain_worker::Config::from_env(env_of(vars)).unwrap();
        let app = retrain_worker::build(config).await.unwrap();
        InProcess {
            url: format!("http://127.0.0.1:{}", app.port),
            app: Some(app),
        }
    }

    pub async fn stepper(&self, consumer: &str, extra: &[(&str, &str)]) -> Stepper {
        let mut api_vars = extra.to_vec();
        api_vars.push(("RETRAIN_WORKER_ENABLED", "false"));
        let api = self.worker(consumer, &api_vars).await;
        let vars = self.worker_vars(consumer, extra);
        let config = retrain_worker::Config::from_env(env_of(vars)).unwrap();
        let db = Db::open_service(
            config.backends.database.url.expose(),
            "retrain",
            config.common.mode,
            false,
            retrain_worker::db::SCHEMA.postgres,
            retrain_worker::db::SCHEMA.sqlite,
        )
        .await
        .unwrap();
        let infra =
            Infra::connect(&config.backends.redis.url, &config.backends.redis.prefix).unwrap();
        Stepper {
            url: api.url,
            api: api.app.unwrap(),
            worker: Worker::new(&config, db, &infra).await.unwrap(),
        }
    }

    pub async fn post_job(&self, worker: &str, body: Value) -> Value {
        let r = self
            .client
            .post(format!("{worker}/admin/retrain"))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        r.json().await.unwrap()
    }

    pub async fn job(&self, worker: &str, id: &str) -> Value {
        let r = self
            .client
            .get(format!("{worker}/admin/retrain/{id}"))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Polls the job until `done` says so.
    pub async fn wait_job(
        &self,
        worker: &str,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let job = self.job(worker, id).await;
            if done(&job) {
                return job;
            }
            assert!(started.elapsed() < within, "job never got there: {job}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_final(&self, worker: &str, id: &str) -> Value {
        self.wait_job(worker, id, Duration::from_secs(600), |j| {
            ["succeeded", "rejected", "failed"].contains(&j["state"].as_str().unwrap_or(""))
        })
        .await
    }

    /// predict-svc's registry entry of `model`.
    pub async fn registry(&self, model: &str) -> Value {
        let list: Value = self
            .client
            .get(format!("{}/admin/models", self.predict_url))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == model)
            .cloned()
            .unwrap()
    }

    /// Registers a copy of the initial model as a new version (not from a job); its number.
    pub async fn register_copy(&self, model: &str, source: &str) -> i32 {
        let bytes = std::fs::read(
            PathBuf::from(path_from_env("MODEL_DIR", "data/models")).join(format!("{model}.onnx")),
        )
        .unwrap();
        let r = self
            .client
            .post(format!(
                "{}/internal/models/{model}/versions",
                self.predict_internal_url
            ))
            .bearer_auth(&self.service)
            .query(&Registration {
                source_job_id: Some(source.to_owned()),
                metrics: None,
            })
            .header("content-type", ARTIFACT_CONTENT_TYPE)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<ModelVersion>().await.unwrap().version
    }

    /// An admin promotes a version by hand.
    pub async fn promote(&self, model: &str, version: i32) {
        let r = self
            .client
            .post(format!(
                "{}/admin/models/{model}/versions/{version}/promote",
                self.predict_url
            ))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// What the v1 API (mnist-mlp) answers for a test digit.
    pub async fn predict_v1(&self, png: Vec<u8>) -> Value {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(png).file_name("d.png"),
        );
        let r = self
            .client
            .post(format!("{}/api/v1/predict", self.predict_url))
            .bearer_auth(&self.user)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Subscribes to the cluster's retrain events.
    pub async fn events(&self) -> futures_util::stream::BoxStream<'static, Envelope> {
        let bus = RedisBus::new(Redis::connect(&redis_url(), &self.prefix).unwrap());
        bus.subscribe(&[events::RETRAIN_PROGRESS, events::RETRAIN_FINISHED])
            .await
            .unwrap()
    }
}

/// Collects events until `until` matches one, or `within` passes.
pub async fn collect_events(
    stream: &mut futures_util::stream::BoxStream<'static, Envelope>,
    within: Duration,
    until: impl Fn(&Envelope) -> bool,
) -> Vec<Envelope> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, stream.next()).await {
        let stop = until(&event);
        seen.push(event);
        if stop {
            break;
        }
    }
    seen
}

pub fn mnist_test() -> digits::Dataset {
    digits::load_test(&PathBuf::from(path_from_env("MNIST_DIR", "assets/mnist"))).unwrap()
}

pub async fn assert_error(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["msg"].as_str().is_some_and(|m| !m.is_empty()));
    body
}
