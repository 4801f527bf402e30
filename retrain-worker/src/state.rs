use std::sync::Arc;

use common::db::Db;
use common::queue::JobQueue;

/// What the job API's handlers share.
pub struct AppState {
    pub db: Db,
    pub queue: Arc<dyn JobQueue>,
}
