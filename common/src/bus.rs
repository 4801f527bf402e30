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

/// Event type names; the events themselves are `contracts::Event`.
pub use contracts::events::kinds as events;

/// The Redis Stream of recent events that notify-svc replays missed ones from.
pub const HISTORY_STREAM: &str = "events:history";
/// The stream entry's field holding the envelope JSON.
pub const HISTORY_FIELD: &str = "event";

/// An event as it travels: its `type` and `data` are a [`contracts::Event`] (see
/// [`Envelope::of`] and [`Envelope::event`]); the bus itself carries any type, so a consumer
/// skips what it does not know instead of failing on it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// UUIDv7: unique and time-ordered, so consumers can drop duplicates.
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    /// The contract's version ([`contracts::events::EVENT_VERSION`]); 1 when absent.
    #[serde(default = "first_version")]
    pub version: u16,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub data: serde_json::Value,
}

fn first_version() -> u16 {
    1
}

impl Envelope {
    /// The envelope of a typed event, in the current trace.
    pub fn of(event: &contracts::Event) -> Self {
        Self::new(event.kind(), event.data())
    }

    /// The typed event, when its type is one this build knows.
    pub fn event(&self) -> Result<contracts::Event, contracts::events::UnknownEvent> {
        contracts::Event::from_parts(&self.kind, &self.data)
    }

    pub fn new(kind: &str, data: serde_json::Value) -> Self {
        Envelope {
            id: uuid::Uuid::now_v7(),
            kind: kind.to_owned(),
            version: contracts::events::EVENT_VERSION,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use contracts::events::{Event, ModelPromoted};

    /// ARCHITECTURE.md's envelope, with the `version` the contract now carries.
    #[test]
    fn an_envelope_has_the_documented_shape_and_its_event_reads_back() {
        let example = serde_json::json!({
            "id": "0193e4b2-7c1a-7d4e-9f00-3a5b6c7d8e9f",
            "type": "model.promoted",
            "version": 1,
            "occurred_at": "2026-12-01T10:15:30.123456Z",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "data": {"model": "mnist-cnn", "version": 3, "sha256": "ab".repeat(32)},
        });
        let envelope: Envelope = serde_json::from_value(example.clone()).unwrap();
        assert_eq!(serde_json::to_value(&envelope).unwrap(), example);
        assert_eq!(
            envelope.event().unwrap(),
            Event::ModelPromoted(ModelPromoted {
                model: "mnist-cnn".into(),
                version: 3,
                sha256: "ab".repeat(32),
            })
        );
        // Written before envelopes had a version: version 1.
        let mut old = example;
        old.as_object_mut().unwrap().remove("version");
        assert_eq!(serde_json::from_value::<Envelope>(old).unwrap().version, 1);

        let built = Envelope::of(&envelope.event().unwrap());
        assert_eq!(
            (built.kind.as_str(), built.version),
            (events::MODEL_PROMOTED, 1)
        );
        assert_eq!(built.data, envelope.data);
        // A type this build does not know is an error to skip, not a panic.
        assert!(
            Envelope::new("user.created", serde_json::json!({}))
                .event()
                .is_err()
        );
    }
}
