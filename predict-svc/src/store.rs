//! Served predictions, kept retrievable by id (for feedback and retraining) without the
//! request waiting on PostgreSQL: a key-value store with a time to live.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::kv::{KeyValueStore, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// One served prediction, as `GET /internal/predictions/{id}` answers it.
pub use contracts::predictions::ServedPrediction as StoredPrediction;

/// The 28×28 grey input as stored: base64.
pub fn encode_input(grid: &[u8]) -> String {
    STANDARD.encode(grid)
}

#[derive(Clone)]
pub struct PredictionStore {
    kv: Arc<dyn KeyValueStore>,
    ttl: Duration,
}

impl PredictionStore {
    pub fn new(kv: Arc<dyn KeyValueStore>, ttl: Duration) -> Self {
        PredictionStore { kv, ttl }
    }

    fn key(id: &str) -> String {
        format!("predictions:{id}")
    }

    pub async fn put(&self, prediction: &StoredPrediction) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec(prediction).map_err(|e| StoreError::Decode(e.to_string()))?;
        self.kv
            .set(&Self::key(&prediction.id), &bytes, Some(self.ttl))
            .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<StoredPrediction>, StoreError> {
        match self.kv.get(&Self::key(id)).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Decode(e.to_string())),
        }
    }
}
