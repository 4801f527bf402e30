//! The Redis connection shared by a service, and the key-value store behind rate limits,
//! idempotency keys and short-lived records.

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("stored value is not valid: {0}")]
    Decode(String),
}

/// A Redis client with a lazily (re)connecting multiplexed connection and a key prefix that
/// namespaces every key and channel (a deployment's, or a test's).
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
}

impl Redis {
    /// Does not wait for Redis: the connection is made on first use and re-made after a loss,
    /// so a service starts (and reports not ready) while Redis is down.
    pub fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Redis {
            client,
            conn,
            prefix: prefix.to_owned(),
        })
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A connection of its own for commands that block (XREADGROUP … BLOCK), so that they
    /// neither hold up the shared connection nor trip its response timeout.
    pub fn dedicated(&self, longest_block: Duration) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(longest_block + Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        Ok(ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            config,
        )?)
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }
}

/// Short-lived keyed values. Keys are namespaced by the store's prefix.
#[async_trait]
pub trait KeyValueStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;
    /// Sets the value only when the key is absent; true when it was set.
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;
    /// Adds `by` to a counter that expires `window` after its first increment; returns the new value.
    async fn incr_in_window(&self, key: &str, by: i64, window: Duration)
    -> Result<i64, StoreError>;
}

fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

#[async_trait]
impl KeyValueStore for Redis {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut self.conn())
            .await?)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        let _: () = cmd.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.conn())
            .await?;
        Ok(reply.is_some())
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let n: i64 = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut self.conn())
            .await?;
        Ok(n > 0)
    }

    async fn incr_in_window(
        &self,
        key: &str,
        by: i64,
        window: Duration,
    ) -> Result<i64, StoreError> {
        // One atomic step: the expiry is set by the increment that creates the counter.
        let script = redis::Script::new(
            "local v = redis.call('INCRBY', KEYS[1], ARGV[1])
             if v == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
             return v",
        );
        Ok(script
            .key(self.key(key))
            .arg(by)
            .arg(millis(window))
            .invoke_async(&mut self.conn())
            .await?)
    }
}
