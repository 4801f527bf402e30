//! The outbox relay: publishes the events the outbox holds to the bus (Redis: live pub/sub and
//! the bounded history stream notify-svc replays from), then marks them published.
//!
//! Delivery is at least once: an event is published again when the relay stops between
//! publishing and marking, or when Redis accepted the history entry but not the publish.
//! Every envelope has a unique id, so consumers drop duplicates.

use crate::db::outbox;
use common::bus::{Envelope, EventBus};
use common::db::{Db, DbError};
use common::infra::Infra;
use common::kv::StoreError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

pub use common::bus::{HISTORY_FIELD, HISTORY_STREAM};

/// How long published rows are kept (for operators) before they are deleted.
const PUBLISHED_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// The longest pause between attempts while Redis is failing.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Events claimed at a time.
    pub batch_size: i64,
    /// How long a claim keeps other relays off the rows (longer than publishing a batch).
    pub lease: Duration,
    /// Approximate length the history stream is trimmed to.
    pub history_maxlen: u64,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            batch_size: 100,
            lease: Duration::from_secs(30),
            history_maxlen: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("publishing failed after {published} event(s): {source}")]
    Publish {
        published: usize,
        #[source]
        source: StoreError,
    },
}

#[derive(Clone)]
pub struct OutboxRelay {
    db: Db,
    bus: Arc<dyn EventBus>,
    options: RelayOptions,
}

impl OutboxRelay {
    /// A relay publishing to the bus of `infra` (Redis, or the all-in-one mode's in-process one).
    pub fn new(db: Db, infra: &Infra, options: RelayOptions) -> Self {
        let bus = infra.bus(options.history_maxlen);
        OutboxRelay { db, bus, options }
    }

    /// Claims up to a batch of pending events, publishes them oldest first and marks them
    /// published; returns how many were published. On a Redis failure the rest of the batch
    /// is released at once (and stays pending) and the error is returned.
    pub async fn process_batch(&self) -> Result<usize, RelayError> {
        let token = uuid::Uuid::new_v4().to_string();
        let now = crate::db::now();
        let lease_until = now + span(self.options.lease);
        let limit = self.options.batch_size;
        let claim_token = token.clone();
        let claimed = self
            .db
            .run(move |c| outbox::claim(c, &claim_token, now, lease_until, limit))
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let mut done = Vec::with_capacity(claimed.len());
        let mut failure = None;
        for (i, event) in claimed.iter().enumerate() {
            match self.deliver(event).await {
                Ok(()) => done.push(event.id),
                Err(e) => {
                    failure = Some((claimed[i..].iter().map(|e| e.id).collect::<Vec<_>>(), e));
                    break;
                }
            }
        }
        let published = done.len();
        let (failed_ids, error) = match failure {
            Some((ids, e)) => (ids, Some(e)),
            None => (Vec::new(), None),
        };
        let message = error.as_ref().map(ToString::to_string).unwrap_or_default();
        self.db
            .run(move |c| {
                if !done.is_empty() {
                    outbox::mark_published(c, &done, &token, crate::db::now())?;
                }
                if !failed_ids.is_empty() {
                    outbox::release(c, &failed_ids, &token, &message)?;
                }
                Ok::<_, DbError>(())
            })
            .await?;
        match error {
            Some(source) => Err(RelayError::Publish { published, source }),
            None => Ok(published),
        }
    }

    /// Appends the event to the history stream, then publishes it live.
    async fn deliver(&self, event: &outbox::ClaimedEvent) -> Result<(), StoreError> {
        let envelope: Envelope = match serde_json::from_str(&event.payload) {
            Ok(e) => e,
            Err(e) => {
                // Cannot happen for rows this service wrote; never retried forever either.
                tracing::error!(event_id = %event.event_id, error = %e, "dropping an outbox row that is not an envelope");
                return Ok(());
            }
        };
        use tracing::Instrument;
        let span = common::continued_span!("outbox.publish", envelope.traceparent.as_deref());
        async {
            let mut envelope = envelope;
            // Consumers continue from this span.
            envelope.traceparent = common::telemetry::traceparent().or(envelope.traceparent);
            self.bus.publish_recorded(&envelope).await
        }
        .instrument(span)
        .await
    }

    /// Publishes until no pending event is left (or a failure).
    async fn drain(&self, stop: &watch::Receiver<bool>) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let n = self.process_batch().await?;
            total += n;
            if (n as i64) < self.options.batch_size || *stop.borrow() {
                return Ok(total);
            }
        }
    }

    /// Runs the relay in the background: every `interval`, and at once when `wakeup` is
    /// notified (after each insert). While Redis fails it backs off, up to a few seconds.
    pub fn spawn(self, wakeup: Arc<Notify>, interval: Duration) -> RelayTask {
        let (stop_tx, mut stop) = watch::channel(false);
        let join = tokio::spawn(async move {
            let mut backoff: Option<Duration> = None;
            let mut last_purge: Option<Instant> = None;
            loop {
                match self.drain(&stop).await {
                    Ok(n) => {
                        if backoff.take().is_some() {
                            tracing::info!(published = n, "outbox relay recovered");
                        }
                    }
                    Err(e) => {
                        let next = backoff.map_or(interval, |b| (b * 2).min(MAX_BACKOFF));
                        tracing::warn!(error = %e, retry_in_ms = next.as_millis() as u64, "outbox relay failed; events stay pending");
                        backoff = Some(next);
                    }
                }
                self.record_backlog().await;
                if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                    last_purge = Some(Instant::now());
                    self.purge().await;
                }
                if *stop.borrow() {
                    break;
                }
                match backoff {
                    // While failing, inserts do not cut the pause short.
                    Some(pause) => tokio::select! {
                        _ = stop.changed() => {}
                        _ = tokio::time::sleep(pause) => {}
                    },
                    None => tokio::select! {
                        _ = stop.changed() => {}
                        _ = wakeup.notified() => {}
                        _ = tokio::time::sleep(interval) => {}
                    },
                }
                if *stop.borrow() {
                    break;
                }
            }
            tracing::info!("outbox relay stopped");
        });
        RelayTask {
            stop: stop_tx,
            join,
        }
    }

    /// Events waiting to be published, for `/metrics`.
    async fn record_backlog(&self) {
        static BACKLOG: std::sync::OnceLock<common::metrics::Gauge> = std::sync::OnceLock::new();
        let gauge = BACKLOG.get_or_init(|| {
            common::metrics::global().gauge(
                "outbox_backlog",
                "Outbox events not yet published.",
                &[],
            )
        });
        if let Ok(n) = self.db.run(outbox::pending_count).await {
            gauge.set(&[], n as f64);
        }
    }

    async fn purge(&self) {
        let before = crate::db::now() - span(PUBLISHED_RETENTION);
        match self
            .db
            .run(move |c| outbox::purge_published(c, before))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old published outbox rows deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot purge the outbox"),
        }
    }
}

fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(7))
}

/// The running background relay.
pub struct RelayTask {
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
}

impl RelayTask {
    /// Stops after the batch in progress (whose failures release their rows), waiting at most
    /// `timeout`; an unfinished batch's leases run out and another relay takes the rows.
    pub async fn shutdown(self, timeout: Duration) {
        let _ = self.stop.send(true);
        let abort = self.join.abort_handle();
        if tokio::time::timeout(timeout, self.join).await.is_err() {
            tracing::warn!("outbox relay did not stop in time");
            abort.abort();
        }
    }
}
