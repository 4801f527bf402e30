//! The shared infrastructure a service talks to besides its database: the event bus, the job
//! queue, the key-value store and the rate-limit store. `REDIS_URL` chooses it:
//!
//! - `redis://…` (or `rediss://…`): Redis, shared by every process and replica;
//! - `memory://NAME`: in-process implementations, for the all-in-one mode, where every service
//!   runs in one process. The process that hosts them registers them first
//!   ([`MemoryInfra::register`]); a `memory://` URL nobody registered is refused, so a service
//!   started on its own can never end up on a private bus that no other service shares.

use crate::bus::{EventBus, RedisBus};
use crate::health::{Readiness, RedisCheck};
use crate::kv::{KeyValueStore, Redis, StoreError};
use crate::memory::{MemoryBus, MemoryKv, MemoryQueue};
use crate::queue::{JobQueue, RedisJobQueue};
use crate::ratelimit::{MemoryRateLimiter, RateLimitStore, RedisRateLimiter};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The URL scheme of the in-process backends.
pub const MEMORY_SCHEME: &str = "memory://";

/// Events kept in the in-process history (as the Redis history stream keeps about as many).
const MEMORY_HISTORY: usize = crate::bus::DEFAULT_HISTORY_MAXLEN as usize;

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(transparent)]
    Redis(#[from] StoreError),
    #[error(
        "REDIS_URL `{0}` names no in-process backend: memory:// URLs exist only inside the all-in-one process (`predictloop`), which registers them; a service on its own needs redis://"
    )]
    UnknownMemory(String),
}

/// The in-process bus, queues, key-value store and rate-limit store of one all-in-one system.
#[derive(Clone)]
pub struct MemoryInfra {
    pub bus: MemoryBus,
    pub kv: MemoryKv,
    queues: Arc<Mutex<HashMap<String, MemoryQueue>>>,
    pub rate_limits: Arc<MemoryRateLimiter>,
}

fn registry() -> &'static Mutex<HashMap<String, MemoryInfra>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, MemoryInfra>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryInfra {
    /// Creates the backends named `name` in this process and returns their URL
    /// (`memory://name`), for the services' `REDIS_URL`. Registering a name again gives the
    /// backends already registered under it.
    pub fn register(name: &str) -> (MemoryInfra, String) {
        let infra = lock(registry())
            .entry(name.to_owned())
            .or_insert_with(|| MemoryInfra {
                bus: MemoryBus::new(MEMORY_HISTORY),
                kv: MemoryKv::default(),
                queues: Arc::default(),
                rate_limits: Arc::new(MemoryRateLimiter::default()),
            })
            .clone();
        (infra, format!("{MEMORY_SCHEME}{name}"))
    }

    /// Forgets the backends named `name` (the services holding them keep theirs).
    pub fn unregister(name: &str) {
        lock(registry()).remove(name);
    }

    /// The queue named `stream` (one per name, shared by its producers and consumers).
    pub fn queue(&self, stream: &str) -> MemoryQueue {
        lock(&self.queues)
            .entry(stream.to_owned())
            .or_default()
            .clone()
    }
}

/// A service's connection to the shared infrastructure, Redis or in-process.
#[derive(Clone)]
pub enum Infra {
    Redis(Redis),
    Memory(MemoryInfra),
}

impl Infra {
    /// Chooses the backend by the URL's scheme. Redis is not waited for (see
    /// [`Redis::connect`]); `prefix` namespaces its keys and channels.
    pub fn connect(url: &str, prefix: &str) -> Result<Infra, InfraError> {
        match url.strip_prefix(MEMORY_SCHEME) {
            Some(name) => lock(registry())
                .get(name)
                .cloned()
                .map(Infra::Memory)
                .ok_or_else(|| InfraError::UnknownMemory(url.to_owned())),
            None => Ok(Infra::Redis(Redis::connect(url, prefix)?)),
        }
    }

    /// True for the in-process backends.
    pub fn is_memory(&self) -> bool {
        matches!(self, Infra::Memory(_))
    }

    /// The event bus; recorded events are kept in a history of about `history_maxlen`.
    pub fn bus(&self, history_maxlen: u64) -> Arc<dyn EventBus> {
        match self {
            Infra::Redis(redis) => {
                Arc::new(RedisBus::new(redis.clone()).with_history_maxlen(history_maxlen))
            }
            Infra::Memory(m) => Arc::new(m.bus.clone()),
        }
    }

    pub fn kv(&self) -> Arc<dyn KeyValueStore> {
        match self {
            Infra::Redis(redis) => Arc::new(redis.clone()),
            Infra::Memory(m) => Arc::new(m.kv.clone()),
        }
    }

    /// The job queue `stream`, read by the consumer group `group`.
    pub fn queue(&self, stream: &str, group: &str) -> Arc<dyn JobQueue> {
        match self {
            Infra::Redis(redis) => Arc::new(RedisJobQueue::new(redis.clone(), stream, group)),
            Infra::Memory(m) => Arc::new(m.queue(stream)),
        }
    }

    pub fn rate_limits(&self) -> Arc<dyn RateLimitStore> {
        match self {
            Infra::Redis(redis) => Arc::new(RedisRateLimiter::new(redis.clone())),
            Infra::Memory(m) => m.rate_limits.clone(),
        }
    }

    /// Adds the readiness check of the backend (Redis answers PING; the in-process ones are
    /// always there).
    pub fn ready_check(&self, readiness: Readiness) -> Readiness {
        match self {
            Infra::Redis(redis) => readiness.with(RedisCheck(redis.clone())),
            Infra::Memory(_) => readiness,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::bus::Envelope;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn services_connecting_to_one_memory_url_share_its_backends() {
        let name = format!("infra-test-{}", uuid::Uuid::new_v4());
        let (_, url) = MemoryInfra::register(&name);
        let publisher = Infra::connect(&url, "").unwrap();
        let subscriber = Infra::connect(&url, "ignored-prefix").unwrap();
        assert!(publisher.is_memory());
        let mut events = subscriber
            .bus(10)
            .subscribe(&["feedback.created"])
            .await
            .unwrap();
        publisher
            .bus(10)
            .publish(&Envelope::new(
                "feedback.created",
                serde_json::json!({"n": 1}),
            ))
            .await
            .unwrap();
        assert_eq!(events.next().await.unwrap().data["n"], 1);

        let id = publisher
            .queue("jobs", "g")
            .enqueue(&serde_json::json!({"job": 7}))
            .await
            .unwrap();
        let got = subscriber
            .queue("jobs", "g")
            .next("w", std::time::Duration::from_millis(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.id, got.payload["job"].clone()), (id, 7.into()));
        assert!(
            publisher
                .queue("other", "g")
                .next("w", std::time::Duration::from_millis(10))
                .await
                .unwrap()
                .is_none()
        );

        publisher.kv().set("k", b"v", None).await.unwrap();
        assert_eq!(subscriber.kv().get("k").await.unwrap(), Some(b"v".to_vec()));
        MemoryInfra::unregister(&name);
    }

    #[test]
    fn an_unregistered_memory_url_is_refused_with_the_reason() {
        let err = Infra::connect("memory://nobody-registered-this", "")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("all-in-one"), "{err}");
    }
}
