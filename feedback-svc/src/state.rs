use crate::predictions::PredictClient;
use common::db::Db;
use std::sync::Arc;
use tokio::sync::Notify;

pub struct AppState {
    pub db: Db,
    pub predictions: PredictClient,
    /// Wakes the outbox relay right after an event is written.
    pub relay_wakeup: Arc<Notify>,
}
