//! The event bus: typed envelopes published on Redis pub/sub channels `events.<type>`.
//!
//! Pub/sub loses messages while nobody listens: whatever must not be lost goes through an
//! outbox or a stream first; the bus is the live fan-out.

use crate::kv::{Redis, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// Event type names, the contract between publishers and consumers.
pub mod events {
    pub const FEEDBACK_CREATED: &str = "feedback.created";
    pub const RETRAIN_PROGRESS: &str = "retrain.progress";
    pub const RETRAIN_FINISHED: &str = "retrain.finished";
    pub const MODEL_PROMOTED: &str = "model.promoted";
}

/// The Redis Stream of recent events that notify-svc replays missed ones from.
pub const HISTORY_STREAM: &str = "events:history";
/// The stream entry's field holding the envelope JSON.
pub const HISTORY_FIELD: &str = "event";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// UUIDv7: unique and time-ordered, so consumers can drop duplicates.
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub data: serde_json::Value,
}

impl Envelope {
    pub fn new(kind: &str, data: serde_json::Value) -> Self {
        Envelope {
            id: uuid::Uuid::now_v7(),
            kind: kind.to_owned(),
            occurred_at: Utc::now(),
            // The trace it happens in, so its consumers continue that trace.
            traceparent: crate::telemetry::traceparent(),
            data,
        }
    }

    pub fn channel(kind: &str) -> String {
        format!("events.{kind}")
    }
}

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, event: &Envelope) -> Result<(), StoreError>;
    /// For events admins must be able to catch up on: appended to the bounded history that
    /// notify-svc replays from, then published live.
    async fn publish_recorded(&self, event: &Envelope) -> Result<(), StoreError>;
    /// A live stream of the events of the given types, from now on.
    async fn subscribe(&self, kinds: &[&str]) -> Result<BoxStream<'static, Envelope>, StoreError>;
}

/// The Redis pub/sub bus.
#[derive(Clone)]
pub struct RedisBus {
    redis: Redis,
    history_maxlen: u64,
}

/// Events kept in the history stream by default.
pub const DEFAULT_HISTORY_MAXLEN: u64 = 10_000;

impl RedisBus {
    pub fn new(redis: Redis) -> Self {
        RedisBus {
            redis,
            history_maxlen: DEFAULT_HISTORY_MAXLEN,
        }
    }

    /// Trims the history stream to about `n` events.
    pub fn with_history_maxlen(mut self, n: u64) -> Self {
        self.history_maxlen = n;
        self
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, event: &Envelope) -> Result<(), StoreError> {
        let payload =
            serde_json::to_string(event).map_err(|e| StoreError::Decode(e.to_string()))?;
        let _: i64 = redis::cmd("PUBLISH")
            .arg(self.redis.key(&Envelope::channel(&event.kind)))
            .arg(payload)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(())
    }

    async fn publish_recorded(&self, event: &Envelope) -> Result<(), StoreError> {
        let payload =
            serde_json::to_string(event).map_err(|e| StoreError::Decode(e.to_string()))?;
        let _: String = redis::cmd("XADD")
            .arg(self.redis.key(HISTORY_STREAM))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.history_maxlen)
            .arg("*")
            .arg(HISTORY_FIELD)
            .arg(payload)
            .query_async(&mut self.redis.conn())
            .await?;
        self.publish(event).await
    }

    async fn subscribe(&self, kinds: &[&str]) -> Result<BoxStream<'static, Envelope>, StoreError> {
        let mut pubsub = self.redis.client().get_async_pubsub().await?;
        for kind in kinds {
            pubsub
                .subscribe(self.redis.key(&Envelope::channel(kind)))
                .await?;
        }
        let stream = pubsub.into_on_message().filter_map(|msg| async move {
            let payload: String = msg.get_payload().ok()?;
            match serde_json::from_str::<Envelope>(&payload) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "dropping an event that is not an envelope");
                    None
                }
            }
        });
        Ok(stream.boxed())
    }
}
