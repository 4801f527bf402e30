//! predict-svc: image upload → preprocessing → ONNX Runtime inference; the v1/v2 APIs and the
//! Open Inference Protocol; the model registry (schema `models`) with hot swap on promotion.

pub mod config;
pub mod controller;
pub mod db;
pub mod engine;
mod error;
pub mod gate;
pub mod outcomes;
pub mod registry;
mod routes;
pub mod shadow;
mod state;
pub mod store;

pub use config::Config;
pub use error::PredictError;
pub use routes::oip_body_limit;

use actix_web::web;
use common::bus::DEFAULT_HISTORY_MAXLEN;
use common::health::{DbCheck, Readiness};
use common::infra::Infra;
use common::jwt::JwtVerifier;
use common::service::{RunningService, ServiceApp};
use std::sync::Arc;

/// Connects, migrates, imports the initial models on first start, loads the active versions
/// and starts serving, with the model swapper following promotions in the background.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let env = engine::environment(&config.ort_dylib_path)?;
    let db = db::SCHEMA
        .open(&config.backends.database, config.common.mode)
        .await?;
    registry::import_initial(&db, &config.model_dir).await?;

    let infra = Infra::connect(&config.backends.redis.url, &config.backends.redis.prefix)?;
    let bus = infra.bus(DEFAULT_HISTORY_MAXLEN);
    let models = Arc::new(registry::ModelSet::new(env, config.batch, db.clone()));
    models.sync_with_registry().await?;
    let swapper = registry::spawn_swapper(models.clone(), bus.clone(), config.registry_sync);
    let store = store::PredictionStore::new(infra.kv(), config.prediction_ttl);
    let controller = Arc::new(controller::Controller::new(
        db.clone(),
        bus.clone(),
        models.clone(),
        config.rollout.clone(),
        config.rollout_max_age,
    ));
    let (shadow, shadow_worker) =
        shadow::Shadow::start(store.clone(), config.shadow_queue, config.shadow_sample);
    let rollout_tasks = common::service::AbortOnStop(vec![
        tokio::spawn(shadow_worker.run_forever()),
        outcomes::spawn_feed(controller.clone(), store.clone(), bus.clone()),
        outcomes::spawn_expiry(controller.clone(), config.registry_sync),
    ]);

    let state = web::Data::new(state::AppState {
        db: db.clone(),
        models,
        store,
        bus,
        max_upload_bytes: config.max_upload_bytes,
        preprocessing: config.preprocessing.clone(),
        oip_max_batch: config.oip_max_batch,
        controller,
        shadow,
        feedback_share: config.feedback_share,
    });
    let verifier = web::Data::new(JwtVerifier::remote(&config.backends.jwt));
    let readiness = infra.ready_check(Readiness::new().with(DbCheck(db)));
    ServiceApp::new("predict-svc", readiness, routes::configure)
        .data(state)
        .data(verifier)
        .serve(
            &config.common,
            vec![Box::new(swapper), Box::new(rollout_tasks)],
        )
        .await
}
