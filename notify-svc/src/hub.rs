//! The `admins` room of one process: the live events from the bus fanned out to every member's
//! bounded queue, duplicates dropped, a member that lets its queue fill up told to leave.
//!
//! Nothing here is shared between replicas: each process serves its own sockets from the same
//! Redis subscription pattern, and counts its own sockets, per process and per user.

use crate::protocol::EventFrame;
use common::bus::Envelope;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// The most recent ids, to drop an event delivered twice (the bus is at least once).
#[derive(Debug)]
pub struct RecentIds {
    order: VecDeque<Uuid>,
    set: HashSet<Uuid>,
    capacity: usize,
}

impl RecentIds {
    pub fn new(capacity: usize) -> Self {
        RecentIds {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn contains(&self, id: &Uuid) -> bool {
        self.set.contains(id)
    }

    /// Records an id; false when it was already among the recent ones.
    pub fn insert(&mut self, id: Uuid) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// Counters, published on `/metrics` by [`export_metrics`].
#[derive(Debug, Default)]
struct Counters {
    open_sockets: AtomicU64,
    events_received: AtomicU64,
    duplicates_dropped: AtomicU64,
    events_replayed: AtomicU64,
    slow_clients_dropped: AtomicU64,
    heartbeat_timeouts: AtomicU64,
    connections_refused: AtomicU64,
    user_limit_refused: AtomicU64,
    flooders_closed: AtomicU64,
    subscription_losses: AtomicU64,
}

/// A snapshot of the hub's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// WebSockets open now.
    pub open_sockets: u64,
    /// Of those, members of the `admins` room.
    pub admins: u64,
    pub events_received: u64,
    pub duplicates_dropped: u64,
    pub events_replayed: u64,
    pub slow_clients_dropped: u64,
    pub heartbeat_timeouts: u64,
    /// Upgrades refused because the process had `WS_MAX_CONNECTIONS` sockets open.
    pub connections_refused: u64,
    /// Upgrades refused because the user had `WS_MAX_CONNECTIONS_PER_USER` sockets open.
    pub user_limit_refused: u64,
    /// Sockets closed (1008) for sending more messages than their budget.
    pub flooders_closed: u64,
    pub subscription_losses: u64,
}

/// Why no socket slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefused {
    /// The user holds `WS_MAX_CONNECTIONS_PER_USER` sockets already (this many).
    UserLimit(usize),
    /// The process holds `WS_MAX_CONNECTIONS` sockets.
    ProcessLimit,
}

/// Why a member was told to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Its send queue was full: it does not read as fast as events arrive.
    TooSlow,
}

struct Member {
    queue: mpsc::Sender<EventFrame>,
    kick: Arc<watch::Sender<Option<Kick>>>,
}

pub struct Hub {
    members: Mutex<HashMap<u64, Member>>,
    next_id: AtomicU64,
    seen: Mutex<RecentIds>,
    send_queue: usize,
    max_connections: u64,
    /// Open sockets per user (token subject); a user with none has no entry.
    per_user: Mutex<HashMap<String, usize>>,
    max_per_user: usize,
    counters: Counters,
    shutdown: watch::Sender<bool>,
}

/// Every event id the hub remembers, at least this many (more with a large replay limit).
const MIN_REMEMBERED: usize = 4_096;

impl Hub {
    pub fn new(
        send_queue: usize,
        max_connections: usize,
        max_per_user: usize,
        replay_limit: usize,
    ) -> Self {
        Hub {
            members: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            seen: Mutex::new(RecentIds::new(MIN_REMEMBERED.max(replay_limit * 2))),
            send_queue: send_queue.max(1),
            max_connections: max_connections as u64,
            per_user: Mutex::new(HashMap::new()),
            max_per_user: max_per_user.max(1),
            counters: Counters::default(),
            shutdown: watch::channel(false).0,
        }
    }

    fn members(&self) -> MutexGuard<'_, HashMap<u64, Member>> {
        // A panic while holding the lock leaves the map consistent (every step is one insert
        // or remove), so a poisoned lock is still usable.
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn per_user(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        // Every step is one update of one entry: a poisoned lock is still consistent.
        self.per_user.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one of the process's socket slots for `user` (the token's subject): refused when
    /// the user already holds `max_per_user` of them, or when all the process's are taken.
    pub fn open_socket(self: &Arc<Self>, user: &str) -> Result<SocketSlot, SlotRefused> {
        let mut per_user = self.per_user();
        let held = per_user.get(user).copied().unwrap_or(0);
        if held >= self.max_per_user {
            self.counters
                .user_limit_refused
                .fetch_add(1, Ordering::Relaxed);
            return Err(SlotRefused::UserLimit(held));
        }
        let before = self.counters.open_sockets.fetch_add(1, Ordering::SeqCst);
        if before >= self.max_connections {
            self.counters.open_sockets.fetch_sub(1, Ordering::SeqCst);
            self.counters
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            return Err(SlotRefused::ProcessLimit);
        }
        *per_user.entry(user.to_owned()).or_insert(0) += 1;
        Ok(SocketSlot {
            hub: self.clone(),
            user: user.to_owned(),
        })
    }

    /// Sockets `user` holds in this process.
    pub fn sockets_of(&self, user: &str) -> usize {
        self.per_user().get(user).copied().unwrap_or(0)
    }

    /// Joins the room: live events arrive on the membership's queue from now on.
    pub fn join(self: &Arc<Self>, kick: Arc<watch::Sender<Option<Kick>>>) -> Membership {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, events) = mpsc::channel(self.send_queue);
        self.members().insert(id, Member { queue, kick });
        Membership {
            hub: self.clone(),
            id,
            events,
        }
    }

    /// Fans a bus event out to every member, unless it was seen already or admins are not
    /// told about its type; true when it was sent.
    pub fn publish(&self, envelope: &Envelope) -> bool {
        self.counters
            .events_received
            .fetch_add(1, Ordering::Relaxed);
        let Some(frame) = EventFrame::from_envelope(envelope) else {
            return false;
        };
        let fresh = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(frame.id);
        if !fresh {
            self.counters
                .duplicates_dropped
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let mut members = self.members();
        members.retain(|_, member| match member.queue.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters
                    .slow_clients_dropped
                    .fetch_add(1, Ordering::Relaxed);
                member.kick.send_replace(Some(Kick::TooSlow));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        true
    }

    /// Whether the hub has fanned out an event with this id recently.
    pub fn has_seen(&self, id: &Uuid) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Tells every connection the process is stopping.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn count_replayed(&self, n: usize) {
        self.counters
            .events_replayed
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn count_heartbeat_timeout(&self) {
        self.counters
            .heartbeat_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A client that stopped accepting frames, found by the connection itself.
    pub fn count_slow_client(&self) {
        self.counters
            .slow_clients_dropped
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A socket closed for sending more than its message budget.
    pub fn count_flooder(&self) {
        self.counters
            .flooders_closed
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_subscription_loss(&self) {
        self.counters
            .subscription_losses
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            open_sockets: c.open_sockets.load(Ordering::SeqCst),
            admins: self.members().len() as u64,
            events_received: c.events_received.load(Ordering::Relaxed),
            duplicates_dropped: c.duplicates_dropped.load(Ordering::Relaxed),
            events_replayed: c.events_replayed.load(Ordering::Relaxed),
            slow_clients_dropped: c.slow_clients_dropped.load(Ordering::Relaxed),
            heartbeat_timeouts: c.heartbeat_timeouts.load(Ordering::Relaxed),
            connections_refused: c.connections_refused.load(Ordering::Relaxed),
            user_limit_refused: c.user_limit_refused.load(Ordering::Relaxed),
            flooders_closed: c.flooders_closed.load(Ordering::Relaxed),
            subscription_losses: c.subscription_losses.load(Ordering::Relaxed),
        }
    }
}

/// Publishes the hub's counters on `/metrics`, read at each scrape. Holds the hub weakly, so a
/// stopped service (in tests) leaves nothing behind but its last values.
pub fn export_metrics(hub: &Arc<Hub>) {
    let registry = common::metrics::global();
    let open = registry.gauge(
        "websocket_connections_open",
        "WebSockets open now, and of those the members of the admins room.",
        &["kind"],
    );
    let counted = registry.counter(
        "websocket_events_total",
        "Socket events: bus events received, duplicates dropped, events replayed, slow clients \
         dropped, heartbeat timeouts, connections refused (process cap, per-user cap), clients \
         closed for flooding, bus subscription losses.",
        &["what"],
    );
    let hub = Arc::downgrade(hub);
    registry.on_render(move || {
        let Some(hub) = hub.upgrade() else {
            return;
        };
        let s = hub.stats();
        open.set(&["all"], s.open_sockets as f64);
        open.set(&["admins"], s.admins as f64);
        for (what, n) in [
            ("received", s.events_received),
            ("duplicate_dropped", s.duplicates_dropped),
            ("replayed", s.events_replayed),
            ("slow_client_dropped", s.slow_clients_dropped),
            ("heartbeat_timeout", s.heartbeat_timeouts),
            ("connection_refused", s.connections_refused),
            ("user_limit_refused", s.user_limit_refused),
            ("flooder_closed", s.flooders_closed),
            ("subscription_lost", s.subscription_losses),
        ] {
            counted.set_total(&[what], n);
        }
    });
}

/// Resolves once the watched value satisfies `ready` (or its sender is gone). The borrow the
/// watch hands back is dropped here, so the caller's future stays `Send`.
pub async fn until<T>(rx: &mut watch::Receiver<T>, ready: impl FnMut(&T) -> bool) {
    let _ = rx.wait_for(ready).await;
}

/// One open socket, counted (for the process and for its user) while it lives.
pub struct SocketSlot {
    hub: Arc<Hub>,
    user: String,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut per_user = self.hub.per_user();
        if let Some(n) = per_user.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_user.remove(&self.user);
            }
        }
        self.hub
            .counters
            .open_sockets
            .fetch_sub(1, Ordering::SeqCst);
    }
}

/// A place in the room; leaving is dropping it.
pub struct Membership {
    hub: Arc<Hub>,
    id: u64,
    pub events: mpsc::Receiver<EventFrame>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.members().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::tests::feedback_event;
    use serde_json::json;

    fn kick() -> (
        Arc<watch::Sender<Option<Kick>>>,
        watch::Receiver<Option<Kick>>,
    ) {
        let (tx, rx) = watch::channel(None);
        (Arc::new(tx), rx)
    }

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut r = RecentIds::new(2);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        assert!(r.insert(ids[0]));
        assert!(!r.insert(ids[0]));
        assert!(r.insert(ids[1]));
        assert!(r.insert(ids[2]));
        assert!(!r.contains(&ids[0]));
        assert!(r.contains(&ids[2]));
    }

    #[tokio::test]
    async fn events_reach_every_member_once() {
        let hub = Arc::new(Hub::new(4, 10, 10, 0));
        let (k1, _) = kick();
        let (k2, _) = kick();
        let mut a = hub.join(k1);
        let mut b = hub.join(k2);
        let env = feedback_event(1);
        assert!(hub.publish(&env));
        assert!(!hub.publish(&env), "a duplicate is dropped");
        assert!(!hub.publish(&Envelope::new("other.kind", json!({}))));
        assert_eq!(a.events.recv().await.unwrap().id, env.id);
        assert_eq!(b.events.recv().await.unwrap().id, env.id);
        assert!(a.events.try_recv().is_err());
        assert_eq!(hub.stats().duplicates_dropped, 1);
        drop(a);
        assert_eq!(hub.stats().admins, 1);
    }

    #[tokio::test]
    async fn a_member_with_a_full_queue_is_kicked_and_the_others_keep_receiving() {
        let hub = Arc::new(Hub::new(2, 10, 10, 0));
        let (slow_kick, mut slow_kicked) = kick();
        let (fast_kick, fast_kicked) = kick();
        let _slow = hub.join(slow_kick);
        let mut fast = hub.join(fast_kick);
        for i in 0..3 {
            hub.publish(&feedback_event(i));
            fast.events.recv().await.unwrap();
        }
        slow_kicked.changed().await.unwrap();
        assert_eq!(*slow_kicked.borrow(), Some(Kick::TooSlow));
        assert_eq!(*fast_kicked.borrow(), None);
        let stats = hub.stats();
        assert_eq!((stats.admins, stats.slow_clients_dropped), (1, 1));
    }

    #[test]
    fn socket_slots_are_bounded() {
        let hub = Arc::new(Hub::new(1, 2, 10, 0));
        let a = hub.open_socket("ann").unwrap();
        let _b = hub.open_socket("bob").unwrap();
        assert_eq!(
            hub.open_socket("cat").err(),
            Some(SlotRefused::ProcessLimit)
        );
        assert_eq!(hub.sockets_of("cat"), 0, "a refused slot counts for nobody");
        drop(a);
        assert!(hub.open_socket("cat").is_ok());
        assert_eq!(hub.stats().connections_refused, 1);
    }

    #[test]
    fn each_user_holds_at_most_its_share_and_a_dropped_slot_frees_one() {
        let hub = Arc::new(Hub::new(1, 100, 2, 0));
        let first = hub.open_socket("ann").unwrap();
        let _second = hub.open_socket("ann").unwrap();
        assert_eq!(
            hub.open_socket("ann").err(),
            Some(SlotRefused::UserLimit(2))
        );
        // Another user is not held back by ann.
        let other = hub.open_socket("bob").unwrap();
        assert_eq!((hub.sockets_of("ann"), hub.stats().open_sockets), (2, 3));
        drop(first);
        assert_eq!(hub.sockets_of("ann"), 1);
        let _third = hub.open_socket("ann").unwrap();
        drop(other);
        assert_eq!(hub.sockets_of("bob"), 0);
        let stats = hub.stats();
        assert_eq!((stats.user_limit_refused, stats.open_sockets), (1, 2));
    }
}
