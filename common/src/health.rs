//! `GET /health` (liveness: the process answers) and `GET /ready` (readiness: every dependency
//! the service needs answers).

use crate::codes::ErrorCode;
use actix_web::{HttpResponse, web};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// One dependency checked by `/ready`.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    fn name(&self) -> &str;
    async fn check(&self) -> Result<(), String>;
}

#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, check: impl ReadinessCheck + 'static) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Runs every check concurrently, each bounded by a timeout.
    pub async fn report(&self) -> (bool, Map<String, Value>) {
        let results = futures_util::future::join_all(self.checks.iter().map(|c| async move {
            let outcome = tokio::time::timeout(Duration::from_secs(3), c.check())
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
            (c.name().to_owned(), outcome)
        }))
        .await;
        let mut all_ok = true;
        let mut map = Map::new();
        for (name, outcome) in results {
            let value = match outcome {
                Ok(()) => "ok".to_owned(),
                Err(e) => {
                    all_ok = false;
                    format!("unavailable: {e}")
                }
            };
            map.insert(name, Value::String(value));
        }
        (all_ok, map)
    }
}

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn ready(readiness: web::Data<Readiness>) -> HttpResponse {
    let (ok, checks) = readiness.report().await;
    if ok {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}))
    } else {
        let code = ErrorCode::NotReady;
        HttpResponse::build(code.status()).json(json!({
            "status": "unavailable",
            "error": code,
            "msg": code.default_message(),
            "checks": checks,
        }))
    }
}

/// Registers `/health` and `/ready` with the given checks.
pub fn configure(readiness: Readiness) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(readiness))
            .route("/health", web::get().to(health))
            .route("/ready", web::get().to(ready));
    }
}

#[cfg(feature = "db")]
pub struct DbCheck(pub crate::db::Db);

#[cfg(feature = "db")]
#[async_trait]
impl ReadinessCheck for DbCheck {
    fn name(&self) -> &str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

pub struct RedisCheck(pub crate::kv::Redis);

#[async_trait]
impl ReadinessCheck for RedisCheck {
    fn name(&self) -> &str {
        "redis"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// An upstream HTTP service whose `/health` must answer 200.
pub struct HttpCheck {
    pub name: String,
    pub url: String,
    pub client: reqwest::Client,
}

#[async_trait]
impl ReadinessCheck for HttpCheck {
    fn name(&self) -> &str {
        &self.name
    }
    async fn check(&self) -> Result<(), String> {
        let resp = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", resp.status()))
        }
    }
}
