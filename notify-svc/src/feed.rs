//! The process's one subscription to the bus, feeding the hub (Redis pub/sub, or the
//! all-in-one mode's in-process bus).
//!
//! Pub/sub loses what is published while nobody listens, so after the subscription is lost
//! and made again, the events appended to the history meanwhile are fanned out from there (the
//! hub drops the ones it had already seen). A dead Redis connection is noticed by pinging it.

use crate::history::{History, stream_id_le};
use crate::hub::{Hub, until};
use crate::protocol::SUBSCRIBED;
use common::bus::{Envelope, EventBus};
use common::health::ReadinessCheck;
use common::infra::Infra;
use common::kv::Redis;
use common::memory::MemoryBus;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

/// How often the subscription's connection is checked (and the history's tip noted).
const PING_EVERY: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Whether the subscription is live, for `/ready`.
#[derive(Clone, Default)]
pub struct FeedStatus(Arc<AtomicBool>);

impl FeedStatus {
    pub fn is_live(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    fn set(&self, live: bool) {
        self.0.store(live, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl ReadinessCheck for FeedStatus {
    fn name(&self) -> &str {
        "subscription"
    }
    async fn check(&self) -> Result<(), String> {
        if self.is_live() {
            Ok(())
        } else {
            Err("not subscribed to the event bus".into())
        }
    }
}

struct Feed {
    redis: Redis,
    hub: Arc<Hub>,
    history: History,
    status: FeedStatus,
    /// The most events recovered from the history after a lost subscription.
    gap_limit: usize,
}

/// Where the history stood some time before the subscription was lost: everything appended
/// after it was either delivered live or missed.
#[derive(Default)]
struct Anchors {
    older: Option<String>,
    newer: Option<String>,
}

impl Anchors {
    fn advance(&mut self, tip: Option<String>) {
        self.older = self.newer.take().or(self.older.take());
        self.newer = tip;
    }
}

enum Ended {
    Lost,
    Shutdown,
}

/// Starts the subscription and waits (up to `wait`) until it is live, so that a socket
/// opened right after start-up misses nothing. With Redis down it keeps trying in the
/// background and the service reports not ready.
pub async fn start(
    infra: &Infra,
    hub: Arc<Hub>,
    history: History,
    gap_limit: usize,
    wait: Duration,
) -> FeedStatus {
    let redis = match infra {
        Infra::Redis(redis) => redis.clone(),
        Infra::Memory(m) => return start_in_process(&m.bus, hub).await,
    };
    let status = FeedStatus::default();
    let feed = Feed {
        redis,
        hub,
        history,
        status: status.clone(),
        gap_limit,
    };
    let (live_tx, live_rx) = oneshot::channel();
    tokio::spawn(feed.run(live_tx));
    if tokio::time::timeout(wait, live_rx).await.is_err() {
        tracing::warn!("not subscribed to the event bus yet; retrying in the background");
    }
    status
}

/// The all-in-one mode: the in-process bus cannot be lost, so the subscription is made once
/// and lives until shutdown.
async fn start_in_process(bus: &MemoryBus, hub: Arc<Hub>) -> FeedStatus {
    let status = FeedStatus::default();
    let mut events = match bus.subscribe(&SUBSCRIBED).await {
        Ok(events) => events,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to the in-process bus");
            return status;
        }
    };
    status.set(true);
    let live = status.clone();
    tokio::spawn(async move {
        let mut shutdown = hub.shutdown_signal();
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(envelope) => push(&hub, &envelope),
                    None => break,
                },
                _ = until(&mut shutdown, |s| *s) => break,
            }
        }
        live.set(false);
    });
    status
}

/// Hands one bus event to the hub, in the trace it was published in.
fn push(hub: &Hub, envelope: &Envelope) {
    let span = common::continued_span!("notify.push", envelope.traceparent.as_deref());
    let _entered = span.enter();
    tracing::debug!(event = %envelope.kind, id = %envelope.id, "pushing to admins");
    hub.publish(envelope);
}

impl Feed {
    async fn run(self, live: oneshot::Sender<()>) {
        let mut live = Some(live);
        let mut backoff = MIN_BACKOFF;
        let mut anchors: Option<Anchors> = None;
        let mut shutdown = self.hub.shutdown_signal();
        loop {
            match self.subscribe().await {
                Ok((sink, stream)) => {
                    backoff = MIN_BACKOFF;
                    let tip = self.history.tip().await.ok().flatten();
                    if let Some(previous) = anchors.take() {
                        self.recover(previous.older.or(previous.newer)).await;
                    }
                    let mut current = Anchors::default();
                    current.advance(tip);
                    self.status.set(true);
                    tracing::info!("subscribed to the event bus");
                    if let Some(tx) = live.take() {
                        let _ = tx.send(());
                    }
                    let ended = self.pump(sink, stream, &mut current).await;
                    self.status.set(false);
                    anchors = Some(current);
                    if let Ended::Shutdown = ended {
                        return;
                    }
                    self.hub.count_subscription_loss();
                    tracing::warn!("lost the event bus subscription; subscribing again");
                }
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot subscribe to the event bus"
                ),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = until(&mut shutdown, |s| *s) => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn subscribe(&self) -> anyhow::Result<(PubSubSink, PubSubStream)> {
        let mut pubsub =
            tokio::time::timeout(CONNECT_TIMEOUT, self.redis.client().get_async_pubsub())
                .await
                .map_err(|_| anyhow::anyhow!("timed out connecting to Redis"))??;
        let channels: Vec<String> = SUBSCRIBED
            .iter()
            .map(|kind| self.redis.key(&Envelope::channel(kind)))
            .collect();
        pubsub.subscribe(channels).await?;
        Ok(pubsub.split())
    }

    async fn pump(
        &self,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
        anchors: &mut Anchors,
    ) -> Ended {
        let mut shutdown = self.hub.shutdown_signal();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => self.deliver(&msg),
                    None => return Ended::Lost,
                },
                _ = ping.tick() => {
                    let alive = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        return Ended::Lost;
                    }
                    if let Ok(tip) = self.history.tip().await {
                        anchors.advance(tip);
                    }
                }
                _ = until(&mut shutdown, |s| *s) => return Ended::Shutdown,
            }
        }
    }

    fn deliver(&self, msg: &redis::Msg) {
        let payload: String = match msg.get_payload() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "dropping a bus message that is not text");
                return;
            }
        };
        match serde_json::from_str::<Envelope>(&payload) {
            Ok(envelope) => push(&self.hub, &envelope),
            Err(e) => tracing::warn!(error = %e, "dropping a bus message that is not an envelope"),
        }
    }

    /// Fans out what the history gained after `anchor` that the hub has not seen.
    async fn recover(&self, anchor: Option<String>) {
        let scan = self
            .history
            .scan_back(self.gap_limit, |entry| {
                anchor
                    .as_deref()
                    .and_then(|a| stream_id_le(&entry.stream_id, a))
                    .unwrap_or(false)
            })
            .await;
        match scan {
            Ok(scan) => {
                let recovered = scan
                    .entries
                    .iter()
                    .filter(|e| !self.hub.has_seen(&e.envelope.id))
                    .filter(|e| self.hub.publish(&e.envelope))
                    .count();
                if recovered > 0 {
                    tracing::info!(
                        recovered,
                        "delivered events published while the subscription was down"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the history to recover missed events")
            }
        }
    }
}
