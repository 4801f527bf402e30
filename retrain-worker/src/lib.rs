//! retrain-worker: consumes the retrain job queue, trains, evaluates and promotes models (schema `retrain`).
//! This first version is the service's frame: configuration, health, readiness, shutdown.

pub mod config;
pub mod train;

pub use config::Config;

use actix_web::{App, web};
use common::db::{Db, PoolOptions};
use common::health::{DbCheck, Readiness, RedisCheck};
use common::jwt::JwtVerifier;
use common::kv::Redis;
use common::server::RunningServer;

/// Connects to its dependencies and binds the server (not yet running).
pub async fn build(config: Config) -> anyhow::Result<RunningServer> {
    let db = Db::connect(
        config.database_url.expose(),
        PoolOptions {
            schemas: vec!["retrain".into()],
            create_database: config.common.mode.is_development(),
            ..Default::default()
        },
    )
    .await?;
    let redis = Redis::connect(&config.redis_url, &config.redis_prefix)?;
    let verifier = web::Data::new(JwtVerifier::remote(&config.jwt));
    let readiness = Readiness::new().with(DbCheck(db)).with(RedisCheck(redis));
    let server = common::server::start(&config.common, move || {
        App::new()
            .app_data(verifier.clone())
            .configure(common::http::configure_extractors)
            .configure(common::health::configure(readiness.clone()))
            .default_service(web::to(common::http::not_found))
    })?;
    Ok(server)
}
