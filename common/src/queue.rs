//! The job queue: a Redis Stream read by a consumer group. A job stays pending until it is
//! acknowledged, so a crashed worker's jobs can be reclaimed by another.

use crate::kv::{Redis, StoreError};
use async_trait::async_trait;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use std::time::Duration;

/// A job handed to a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The stream entry id, used to acknowledge.
    pub id: String,
    pub payload: serde_json::Value,
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Appends a job; returns its entry id.
    async fn enqueue(&self, payload: &serde_json::Value) -> Result<String, StoreError>;
    /// Waits up to `block` for a new job for this consumer.
    async fn next(&self, consumer: &str, block: Duration) -> Result<Option<Delivery>, StoreError>;
    /// Marks a job done; it will not be delivered again.
    async fn ack(&self, id: &str) -> Result<(), StoreError>;
    /// Takes over jobs another consumer received but has not acknowledged for `min_idle`.
    async fn reclaim(
        &self,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Jobs delivered but not yet acknowledged.
    async fn pending(&self) -> Result<u64, StoreError>;
    /// Shows that `consumer` is still working on job `id`, so nobody reclaims it: resets the
    /// job's idle time. False when the job is no longer pending for this consumer
    /// (acknowledged, gone, or taken over by another consumer).
    async fn touch(&self, consumer: &str, id: &str) -> Result<bool, StoreError>;
}

#[derive(Clone)]
pub struct RedisJobQueue {
    redis: Redis,
    stream: String,
    group: String,
    /// The connection blocking reads wait on, made on first use.
    blocking: std::sync::Arc<std::sync::OnceLock<redis::aio::ConnectionManager>>,
}

/// The longest wait `next` may be asked for.
pub const MAX_BLOCK: Duration = Duration::from_secs(60);

const FIELD: &str = "job";

impl RedisJobQueue {
    pub fn new(redis: Redis, stream: &str, group: &str) -> Self {
        let stream = redis.key(stream);
        RedisJobQueue {
            redis,
            stream,
            group: group.to_owned(),
            blocking: Default::default(),
        }
    }

    /// Creates the stream and its consumer group when missing.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let result: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.redis.conn())
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn blocking_conn(&self) -> Result<redis::aio::ConnectionManager, StoreError> {
        if let Some(conn) = self.blocking.get() {
            return Ok(conn.clone());
        }
        let conn = self.redis.dedicated(MAX_BLOCK)?;
        Ok(self.blocking.get_or_init(|| conn).clone())
    }

    fn decode(entry: &StreamId) -> Option<Delivery> {
        let raw: String = entry.get(FIELD)?;
        match serde_json::from_str(&raw) {
            Ok(payload) => Some(Delivery {
                id: entry.id.clone(),
                payload,
            }),
            Err(e) => {
                tracing::warn!(id = %entry.id, error = %e, "skipping a job that is not JSON");
                None
            }
        }
    }
}

#[async_trait]
impl JobQueue for RedisJobQueue {
    async fn enqueue(&self, payload: &serde_json::Value) -> Result<String, StoreError> {
        Ok(redis::cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg(FIELD)
            .arg(payload.to_string())
            .query_async(&mut self.redis.conn())
            .await?)
    }

    async fn next(&self, consumer: &str, block: Duration) -> Result<Option<Delivery>, StoreError> {
        self.ensure_group().await?;
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(block.min(MAX_BLOCK).as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut self.blocking_conn()?)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .find_map(|entry| Self::decode(&entry)))
    }

    async fn ack(&self, id: &str) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(id)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(())
    }

    async fn reclaim(
        &self,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.ensure_group().await?;
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(reply.claimed.iter().filter_map(Self::decode).collect())
    }

    async fn touch(&self, consumer: &str, id: &str) -> Result<bool, StoreError> {
        // Renews only an entry this consumer still owns: a worker whose job was taken over
        // must not take it back.
        let script = redis::Script::new(
            "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
             if #p == 0 then return 0 end
             redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
             return 1",
        );
        let renewed: i64 = script
            .key(&self.stream)
            .arg(&self.group)
            .arg(consumer)
            .arg(id)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(renewed == 1)
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        self.ensure_group().await?;
        let reply: redis::Value = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .query_async(&mut self.redis.conn())
            .await?;
        match reply {
            redis::Value::Array(items) => match items.first() {
                Some(redis::Value::Int(n)) => Ok((*n).max(0) as u64),
                _ => Ok(0),
            },
            _ => Ok(0),
        }
    }
}
