use crate::registry::ModelSet;
use crate::store::PredictionStore;
use common::bus::EventBus;
use common::db::Db;
use std::sync::Arc;

pub struct AppState {
    pub db: Db,
    pub models: Arc<ModelSet>,
    pub store: PredictionStore,
    pub bus: Arc<dyn EventBus>,
    pub max_upload_bytes: usize,
    pub preprocessing: Arc<crate::gate::Preprocessing>,
    pub oip_max_batch: usize,
    pub controller: Arc<crate::controller::Controller>,
    pub shadow: crate::shadow::Shadow,
    /// Share of answers that ask for a label.
    pub feedback_share: f64,
}
