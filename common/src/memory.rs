//! In-process implementations of the bus, the job queue and the key-value store, behind the
//! same traits as the Redis ones: for the all-in-one development mode (every service in one
//! process, no Redis) and for unit tests of the logic above them. Never for a deployment: they
//! share nothing between processes and keep nothing across a restart.

use crate::bus::{Envelope, EventBus};
use crate::kv::{KeyValueStore, StoreError};
use crate::queue::{Delivery, JobQueue};
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, broadcast};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Pub/sub in one process, with the bounded history `publish_recorded` appends to.
#[derive(Clone)]
pub struct MemoryBus {
    live: broadcast::Sender<Envelope>,
    history: Arc<Mutex<History>>,
    history_maxlen: usize,
}

/// The recorded events, each numbered in the order it was recorded (from 1).
#[derive(Default)]
struct History {
    entries: VecDeque<(u64, Envelope)>,
    last: u64,
}

impl MemoryBus {
    pub fn new(history_maxlen: usize) -> Self {
        MemoryBus {
            live: broadcast::channel(4096).0,
            history: Arc::default(),
            history_maxlen: history_maxlen.max(1),
        }
    }

    /// The recorded events, oldest first.
    pub fn history(&self) -> Vec<Envelope> {
        lock(&self.history)
            .entries
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The newest recorded events with stream-style ids (`<seq>-0`, as the job queue's entries
    /// have), newest first: those recorded before the entry `before` (from the newest when
    /// `None`), at most `count`.
    pub fn history_before(&self, before: Option<&str>, count: usize) -> Vec<(String, Envelope)> {
        let before = before.and_then(seq_of);
        lock(&self.history)
            .entries
            .iter()
            .rev()
            .filter(|(seq, _)| before.is_none_or(|b| *seq < b))
            .take(count)
            .map(|(seq, envelope)| (entry_id(*seq), envelope.clone()))
            .collect()
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, event: &Envelope) -> Result<(), StoreError> {
        // Like pub/sub: nobody listening is not an error.
        let _ = self.live.send(event.clone());
        Ok(())
    }

    async fn publish_recorded(&self, event: &Envelope) -> Result<(), StoreError> {
        {
            let mut history = lock(&self.history);
            history.last += 1;
            let seq = history.last;
            history.entries.push_back((seq, event.clone()));
            while history.entries.len() > self.history_maxlen {
                history.entries.pop_front();
            }
        }
        self.publish(event).await
    }

    async fn subscribe(&self, kinds: &[&str]) -> Result<BoxStream<'static, Envelope>, StoreError> {
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        let receiver = self.live.subscribe();
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => return Some((event, receiver)),
                    // A subscriber that fell behind loses events, as with pub/sub.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(lost = n, "a slow bus subscriber lost events");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let filtered = futures_util::StreamExt::filter(stream, move |e| {
            let keep = kinds.iter().any(|k| k == &e.kind);
            async move { keep }
        });
        Ok(Box::pin(filtered))
    }
}

struct Entry {
    payload: serde_json::Value,
    /// The consumer it was delivered to, and when (delivery or last touch).
    owner: Option<(String, Instant)>,
}

#[derive(Default)]
struct QueueState {
    entries: BTreeMap<u64, Entry>,
    next: u64,
}

/// A job queue in one process with the Redis Stream's semantics: delivered once to one
/// consumer, pending until acknowledged, reclaimable after an idle time.
#[derive(Clone, Default)]
pub struct MemoryQueue {
    state: Arc<Mutex<QueueState>>,
    arrived: Arc<Notify>,
}

/// A Redis-Stream-style id (`<seq>-0`) for the queue's entries and the bus's history.
fn entry_id(seq: u64) -> String {
    format!("{seq}-0")
}

/// The sequence number of an [`entry_id`].
fn seq_of(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

impl MemoryQueue {
    fn take_next(&self, consumer: &str) -> Option<Delivery> {
        let mut state = lock(&self.state);
        let (seq, entry) = state.entries.iter_mut().find(|(_, e)| e.owner.is_none())?;
        entry.owner = Some((consumer.to_owned(), Instant::now()));
        Some(Delivery {
            id: entry_id(*seq),
            payload: entry.payload.clone(),
        })
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn enqueue(&self, payload: &serde_json::Value) -> Result<String, StoreError> {
        let id = {
            let mut state = lock(&self.state);
            state.next += 1;
            let seq = state.next;
            state.entries.insert(
                seq,
                Entry {
                    payload: payload.clone(),
                    owner: None,
                },
            );
            entry_id(seq)
        };
        self.arrived.notify_waiters();
        Ok(id)
    }

    async fn next(&self, consumer: &str, block: Duration) -> Result<Option<Delivery>, StoreError> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            let arrived = self.arrived.notified();
            if let Some(delivery) = self.take_next(consumer) {
                return Ok(Some(delivery));
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Ok(self.take_next(consumer));
            }
        }
    }

    async fn ack(&self, id: &str) -> Result<(), StoreError> {
        if let Some(seq) = seq_of(id) {
            lock(&self.state).entries.remove(&seq);
        }
        Ok(())
    }

    async fn reclaim(
        &self,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut state = lock(&self.state);
        let now = Instant::now();
        Ok(state
            .entries
            .iter_mut()
            .filter(|(_, e)| {
                e.owner
                    .as_ref()
                    .is_some_and(|(_, at)| now.duration_since(*at) >= min_idle)
            })
            .take(count.max(1))
            .map(|(seq, e)| {
                e.owner = Some((consumer.to_owned(), now));
                Delivery {
                    id: entry_id(*seq),
                    payload: e.payload.clone(),
                }
            })
            .collect())
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        Ok(lock(&self.state)
            .entries
            .values()
            .filter(|e| e.owner.is_some())
            .count() as u64)
    }

    async fn touch(&self, consumer: &str, id: &str) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let entry = seq_of(id).and_then(|seq| state.entries.get_mut(&seq));
        match entry {
            Some(e) if e.owner.as_ref().is_some_and(|(owner, _)| owner == consumer) => {
                e.owner = Some((consumer.to_owned(), Instant::now()));
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// A value and when it expires.
type Stored = (Vec<u8>, Option<Instant>);

/// Keyed values with expiry, in one process, at most [`MemoryKv::max_entries`] of them.
#[derive(Clone)]
pub struct MemoryKv {
    values: Arc<Mutex<HashMap<String, Stored>>>,
    writes: Arc<std::sync::atomic::AtomicU64>,
    max_entries: usize,
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self::with_max_entries(DEFAULT_MAX_ENTRIES)
    }
}

/// Expired values are dropped on reading them, and all at once every this many writes, so a
/// long-running process does not keep what nobody reads again.
const SWEEP_EVERY: u64 = 1024;

/// How many values the store keeps by default (the all-in-one mode's served predictions, about
/// 1.5 KiB each: 150 MiB at most): past it, those closest to expiring go first.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

impl MemoryKv {
    pub fn with_max_entries(max_entries: usize) -> Self {
        MemoryKv {
            values: Arc::default(),
            writes: Arc::default(),
            max_entries: max_entries.max(1),
        }
    }

    /// The most values it keeps.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Counts a write; every [`SWEEP_EVERY`] writes, removes every expired value. Past
    /// [`Self::max_entries`], it also removes the values closest to expiring (the oldest, for
    /// values stored with one lifetime) down to nine tenths of it, so that this costly step
    /// comes once in many writes.
    fn after_write(&self, values: &mut HashMap<String, Stored>) {
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let full = values.len() > self.max_entries;
        if full || (n + 1).is_multiple_of(SWEEP_EVERY) {
            let now = Instant::now();
            values.retain(|_, (_, until)| until.is_none_or(|t| t > now));
        }
        if values.len() > self.max_entries {
            let keep = self.max_entries - self.max_entries / 10;
            let excess = values.len() - keep;
            // Ordered by expiry, those that never expire last; the cut-off found in linear
            // time, without copying any key.
            let order = |until: &Option<Instant>| (until.is_none(), *until);
            let mut expiries: Vec<_> = values.values().map(|(_, until)| order(until)).collect();
            let cutoff = *expiries.select_nth_unstable(excess - 1).1;
            // Everything before the cut-off goes, then as many at it as are still needed.
            values.retain(|_, (_, until)| order(until) >= cutoff);
            let mut at_cutoff = excess.saturating_sub(expiries.len() - values.len());
            values.retain(|_, (_, until)| {
                let drop = at_cutoff > 0 && order(until) == cutoff;
                at_cutoff -= usize::from(drop);
                !drop
            });
        }
    }

    /// How many values are held (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        lock(&self.values).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn live<'a>(values: &'a mut HashMap<String, Stored>, key: &str) -> Option<&'a mut Stored> {
        let expired = values
            .get(key)
            .is_some_and(|(_, until)| until.is_some_and(|t| t <= Instant::now()));
        if expired {
            values.remove(key);
        }
        values.get_mut(key)
    }
}

#[async_trait]
impl KeyValueStore for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut values = lock(&self.values);
        Ok(Self::live(&mut values, key).map(|(v, _)| v.clone()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let until = ttl.map(|t| Instant::now() + t);
        let mut values = lock(&self.values);
        values.insert(key.to_owned(), (value.to_vec(), until));
        self.after_write(&mut values);
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut values = lock(&self.values);
        if Self::live(&mut values, key).is_some() {
            return Ok(false);
        }
        values.insert(key.to_owned(), (value.to_vec(), Some(Instant::now() + ttl)));
        self.after_write(&mut values);
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut values = lock(&self.values);
        let existed = Self::live(&mut values, key).is_some();
        values.remove(key);
        Ok(existed)
    }

    async fn incr_in_window(
        &self,
        key: &str,
        by: i64,
        window: Duration,
    ) -> Result<i64, StoreError> {
        let mut values = lock(&self.values);
        let current = match Self::live(&mut values, key) {
            Some((bytes, until)) => {
                let n = std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| StoreError::Decode(format!("{key} is not a counter")))?;
                (n + by, *until)
            }
            None => (by, Some(Instant::now() + window)),
        };
        values.insert(
            key.to_owned(),
            (current.0.to_string().into_bytes(), current.1),
        );
        self.after_write(&mut values);
        Ok(current.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use futures_util::StreamExt;
    use serde_json::json;

    #[tokio::test]
    async fn the_bus_delivers_the_subscribed_kinds_and_keeps_a_bounded_history() {
        let bus = MemoryBus::new(2);
        let mut feedback = bus.subscribe(&["feedback.created"]).await.unwrap();
        for i in 0..3 {
            bus.publish_recorded(&Envelope::new("feedback.created", json!({"i": i})))
                .await
                .unwrap();
        }
        bus.publish(&Envelope::new("model.promoted", json!({})))
            .await
            .unwrap();
        for i in 0..3 {
            assert_eq!(feedback.next().await.unwrap().data["i"], i);
        }
        let history: Vec<_> = bus.history().iter().map(|e| e.data["i"].clone()).collect();
        assert_eq!(history, vec![json!(1), json!(2)]);
    }

    #[tokio::test]
    async fn jobs_go_to_one_consumer_stay_pending_and_are_reclaimed_after_idling() {
        let q = MemoryQueue::default();
        let a = q.enqueue(&json!({"n": 1})).await.unwrap();
        let b = q.enqueue(&json!({"n": 2})).await.unwrap();
        let first = q
            .next("w1", Duration::from_millis(10))
            .await
            .unwrap()
            .unwrap();
        let second = q
            .next("w2", Duration::from_millis(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.id.as_str(), second.id.as_str()),
            (a.as_str(), b.as_str())
        );
        assert_eq!(q.next("w3", Duration::from_millis(10)).await.unwrap(), None);
        assert_eq!(q.pending().await.unwrap(), 2);
        q.ack(&b).await.unwrap();
        // w1 keeps its job alive; then it stops and the job is taken over.
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(q.touch("w1", &a).await.unwrap());
        assert!(
            q.reclaim("w3", Duration::from_millis(50), 10)
                .await
                .unwrap()
                .is_empty()
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        let reclaimed = q
            .reclaim("w3", Duration::from_millis(50), 10)
            .await
            .unwrap();
        assert_eq!(reclaimed.len(), 1);
        assert_eq!(reclaimed[0].payload, json!({"n": 1}));
        // w1 no longer owns it and cannot take it back.
        assert!(!q.touch("w1", &a).await.unwrap());
        q.ack(&a).await.unwrap();
        assert_eq!(q.pending().await.unwrap(), 0);
        assert!(!q.touch("w3", &a).await.unwrap());
    }

    #[tokio::test]
    async fn a_waiting_consumer_gets_a_job_enqueued_while_it_waits() {
        let q = MemoryQueue::default();
        let waiting = {
            let q = q.clone();
            tokio::spawn(async move { q.next("w", Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.enqueue(&json!({"late": true})).await.unwrap();
        let got = waiting.await.unwrap().unwrap().unwrap();
        assert_eq!(got.payload, json!({"late": true}));
    }

    #[tokio::test]
    async fn values_expire_and_counters_count_within_their_window() {
        let kv = MemoryKv::default();
        kv.set("a", b"1", Some(Duration::from_millis(30)))
            .await
            .unwrap();
        assert_eq!(kv.get("a").await.unwrap(), Some(b"1".to_vec()));
        assert!(
            !kv.set_if_absent("a", b"2", Duration::from_secs(1))
                .await
                .unwrap()
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(kv.get("a").await.unwrap(), None);
        assert!(
            kv.set_if_absent("a", b"2", Duration::from_secs(1))
                .await
                .unwrap()
        );
        assert!(kv.delete("a").await.unwrap());
        assert!(!kv.delete("a").await.unwrap());
        let window = Duration::from_millis(40);
        assert_eq!(kv.incr_in_window("c", 2, window).await.unwrap(), 2);
        assert_eq!(kv.incr_in_window("c", 3, window).await.unwrap(), 5);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(kv.incr_in_window("c", 1, window).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn past_its_capacity_the_store_drops_the_values_closest_to_expiring() {
        let kv = MemoryKv::with_max_entries(100);
        kv.set("forever", b"f", None).await.unwrap();
        for i in 0..250 {
            kv.set(&format!("p-{i}"), b"x", Some(Duration::from_secs(3600)))
                .await
                .unwrap();
            assert!(kv.len() <= 100, "{} values after {i}", kv.len());
            assert!(kv.len() >= (i + 2).min(90), "{} values after {i}", kv.len());
        }
        // The newest stay, the oldest went, and what never expires was kept.
        assert_eq!(kv.get("p-249").await.unwrap(), Some(b"x".to_vec()));
        assert_eq!(kv.get("p-200").await.unwrap(), Some(b"x".to_vec()));
        assert_eq!(kv.get("p-0").await.unwrap(), None);
        assert_eq!(kv.get("p-100").await.unwrap(), None);
        assert_eq!(kv.get("forever").await.unwrap(), Some(b"f".to_vec()));
        assert_eq!(MemoryKv::default().max_entries(), DEFAULT_MAX_ENTRIES);

        // Values alike in expiry (here: none) are dropped just as far as needed.
        let kv = MemoryKv::with_max_entries(100);
        for i in 0..150 {
            kv.set(&format!("f-{i}"), b"x", None).await.unwrap();
        }
        assert!((90..=100).contains(&kv.len()), "{}", kv.len());
    }

    #[tokio::test]
    async fn expired_values_nobody_reads_are_swept_by_later_writes() {
        let kv = MemoryKv::default();
        for i in 0..100 {
            kv.set(&format!("old-{i}"), b"x", Some(Duration::from_millis(10)))
                .await
                .unwrap();
        }
        kv.set("kept", b"y", None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 0..SWEEP_EVERY {
            kv.set(&format!("new-{i}"), b"z", Some(Duration::from_secs(60)))
                .await
                .unwrap();
        }
        // The 101 writes before and the 923 after the pause made a sweep: only the expired
        // values went.
        assert_eq!(kv.len(), SWEEP_EVERY as usize + 1);
        assert_eq!(kv.get("kept").await.unwrap(), Some(b"y".to_vec()));
    }
}
