//! One client's WebSocket, from the upgrade to the close.
//!
//! Every send is bounded: a client that does not accept a frame within the client timeout, or
//! lets its queue of live events fill up (the hub then kicks it), is closed with 1013 and
//! leaves the room at once, so a slow reader holds at most its queue and the socket's buffers.
//! Every client message spends from a token bucket (`WS_MESSAGE_RATE` a second, up to
//! `WS_MESSAGE_BURST` at once); a client that overspends it is closed with 1008.
//!
//! Only admins get here (the route refuses anyone else before the upgrade).

use crate::config::WsSettings;
use crate::history::History;
use crate::hub::{Hub, Kick, Membership, RecentIds, SocketSlot, until};
use crate::protocol::{self, ClientRequest, EventFrame};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Closed};
use bytestring::ByteString;
use common::ErrorCode;
use common::jwt::Claims;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// How long a close frame may wait for a client that is going away anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Ids sent on one connection that are remembered, so a `resume` does not repeat them.
const SENT_REMEMBERED: usize = 64;
/// How long replayed ids are remembered, to drop their live copies still in flight.
const REPLAY_OVERLAP: Duration = Duration::from_secs(30);
/// Tokens living longer than this are treated as expiring then (a year).
const MAX_TOKEN_LIFE_SECS: i64 = 365 * 24 * 3600;

/// What every connection of the process shares.
pub struct Shared {
    pub hub: Arc<Hub>,
    pub history: History,
    pub settings: WsSettings,
}

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// The client closed (its close frame, echoed).
    ClientClosed(Option<CloseReason>),
    /// The connection is gone; nothing can be sent.
    Gone,
    /// The hub found its queue full.
    Kicked,
    /// A frame waited longer than the client timeout to be accepted.
    Stalled,
    HeartbeatTimeout,
    TokenExpired,
    /// The client sent more messages than its budget allows.
    Flooded,
    Shutdown,
    Protocol(actix_ws::ProtocolError),
}

/// Replayed event ids, remembered for a while after a replay.
struct ReplayOverlap {
    ids: HashSet<Uuid>,
    until: Instant,
}

enum Step {
    Shutdown,
    Kicked,
    Expired,
    Client(Option<Result<AggregatedMessage, actix_ws::ProtocolError>>),
    Live(Option<EventFrame>),
    Heartbeat,
}

pub struct Connection {
    shared: Arc<Shared>,
    claims: Claims,
    session: actix_ws::Session,
    /// Kept so the receiver below never sees the channel closed.
    kick_tx: Arc<watch::Sender<Option<Kick>>>,
    kick: watch::Receiver<Option<Kick>>,
    membership: Option<Membership>,
    sent: RecentIds,
    replayed: Option<ReplayOverlap>,
    last_heard: Instant,
    budget: MessageBudget,
    /// Released when the connection ends, before its close frame when the client closed.
    slot: Option<SocketSlot>,
}

/// A token bucket for a client's messages: `burst` at once, refilled at `rate` a second.
#[derive(Debug, Clone)]
pub struct MessageBudget {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl MessageBudget {
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        MessageBudget {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Spends one message at `now`; false when the budget is exhausted (nothing is spent).
    pub fn spend(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Connection {
    pub fn new(
        shared: Arc<Shared>,
        claims: Claims,
        session: actix_ws::Session,
        slot: SocketSlot,
    ) -> Self {
        let (kick_tx, kick) = watch::channel(None);
        let settings = &shared.settings;
        let budget = MessageBudget::new(
            settings.message_rate,
            settings.message_burst,
            Instant::now(),
        );
        let mut connection = Connection {
            shared,
            claims,
            session,
            kick_tx: Arc::new(kick_tx),
            kick,
            membership: None,
            sent: RecentIds::new(SENT_REMEMBERED),
            replayed: None,
            last_heard: Instant::now(),
            budget,
            slot: Some(slot),
        };
        // Admins join on connect, as in the seed, and before the upgrade is answered: an event
        // published once the client is connected reaches it. Joining before any replay is what
        // makes the switch from history to live lose nothing (live events wait in the queue).
        connection.join();
        connection
    }

    pub async fn run(mut self, mut stream: AggregatedMessageStream, resume_from: Option<Uuid>) {
        let end = self.serve(&mut stream, resume_from).await;
        tracing::debug!(user = %self.claims.name, end = ?end, "websocket closing");
        self.finish(end).await;
    }

    fn join(&mut self) {
        if self.membership.is_none() {
            self.membership = Some(self.shared.hub.join(self.kick_tx.clone()));
        }
    }

    async fn serve(
        &mut self,
        stream: &mut AggregatedMessageStream,
        resume_from: Option<Uuid>,
    ) -> End {
        if let Some(id) = resume_from
            && let Err(end) = self.replay(id).await
        {
            return end;
        }
        let every = self.shared.settings.heartbeat_interval;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let expiry = tokio::time::sleep_until(token_expiry(&self.claims));
        tokio::pin!(expiry);
        let mut shutdown = self.shared.hub.shutdown_signal();
        loop {
            let step = tokio::select! {
                biased;
                _ = until(&mut shutdown, |s| *s) => Step::Shutdown,
                _ = until(&mut self.kick, Option::is_some) => Step::Kicked,
                _ = &mut expiry => Step::Expired,
                // Ready once an interval, so that neither side's traffic can starve it.
                _ = heartbeat.tick() => Step::Heartbeat,
                frame = next_live(&mut self.membership) => Step::Live(frame),
                msg = stream.next() => Step::Client(msg),
            };
            let outcome = match step {
                Step::Shutdown => Err(End::Shutdown),
                Step::Kicked | Step::Live(None) => Err(End::Kicked),
                Step::Expired => Err(End::TokenExpired),
                Step::Client(None) => Err(End::Gone),
                Step::Client(Some(Err(e))) => Err(End::Protocol(e)),
                Step::Client(Some(Ok(AggregatedMessage::Close(reason)))) => {
                    Err(End::ClientClosed(reason))
                }
                Step::Client(Some(Ok(msg))) => {
                    self.last_heard = Instant::now();
                    if self.budget.spend(self.last_heard) {
                        self.on_client(msg).await
                    } else {
                        Err(End::Flooded)
                    }
                }
                Step::Live(Some(frame)) => self.on_live(frame).await,
                Step::Heartbeat => {
                    if self.last_heard.elapsed() > self.shared.settings.client_timeout {
                        Err(End::HeartbeatTimeout)
                    } else {
                        let timeout = self.shared.settings.client_timeout;
                        guarded(&mut self.kick, timeout, self.session.ping(b"")).await
                    }
                }
            };
            if let Err(end) = outcome {
                return end;
            }
        }
    }

    async fn send_text(&mut self, text: impl Into<ByteString>) -> Result<(), End> {
        let timeout = self.shared.settings.client_timeout;
        guarded(&mut self.kick, timeout, self.session.text(text)).await
    }

    async fn send_error(&mut self, code: ErrorCode, msg: &str) -> Result<(), End> {
        self.send_text(protocol::error(code, msg)).await
    }

    async fn on_live(&mut self, frame: EventFrame) -> Result<(), End> {
        if let Some(overlap) = &self.replayed {
            if overlap.until <= Instant::now() {
                self.replayed = None;
            } else if overlap.ids.contains(&frame.id) {
                return Ok(());
            }
        }
        if !self.sent.insert(frame.id) {
            return Ok(());
        }
        self.send_text(frame.text).await
    }

    async fn on_client(&mut self, msg: AggregatedMessage) -> Result<(), End> {
        match msg {
            AggregatedMessage::Text(text) => self.on_request(&text).await,
            AggregatedMessage::Binary(_) => {
                self.send_error(
                    ErrorCode::InvalidMessage,
                    "Binary frames are not understood: send JSON text frames.",
                )
                .await
            }
            AggregatedMessage::Ping(payload) => {
                let timeout = self.shared.settings.client_timeout;
                guarded(&mut self.kick, timeout, self.session.pong(&payload)).await
            }
            AggregatedMessage::Pong(_) => Ok(()),
            AggregatedMessage::Close(reason) => Err(End::ClientClosed(reason)),
        }
    }

    async fn on_request(&mut self, text: &str) -> Result<(), End> {
        match protocol::parse_request(text) {
            Ok(ClientRequest::JoinAdmin) => {
                self.join();
                self.send_text(protocol::message(protocol::JOINED_ADMINS))
                    .await
            }
            Ok(ClientRequest::Resume { last_event_id }) => self.replay(last_event_id).await,
            Err(e) => self.send_error(e.code(), &e.msg()).await,
        }
    }

    /// Sends what the history holds after `after`, skipping what this connection already
    /// sent; the live copies of replayed events are dropped for a while afterwards.
    async fn replay(&mut self, after: Uuid) -> Result<(), End> {
        let limit = self.shared.settings.replay_limit;
        let scan = match self.shared.history.after(after, limit).await {
            Ok(scan) => scan,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event history for a replay");
                return self
                    .send_error(
                        ErrorCode::ReplayUnavailable,
                        "The event history cannot be read right now: missed events were not replayed.",
                    )
                    .await;
            }
        };
        if !scan.found {
            let msg = format!(
                "Event {after} is not among the last {limit} events kept for replay: \
                 what was missed cannot be replayed; reload the data instead."
            );
            return self.send_error(ErrorCode::ReplayUnavailable, &msg).await;
        }
        let mut ids = HashSet::with_capacity(scan.entries.len());
        let mut replayed = 0;
        for entry in &scan.entries {
            let Some(frame) = EventFrame::from_envelope(&entry.envelope) else {
                continue;
            };
            ids.insert(frame.id);
            if self.sent.insert(frame.id) {
                self.send_text(frame.text).await?;
                replayed += 1;
            }
        }
        self.shared.hub.count_replayed(replayed);
        self.replayed = Some(ReplayOverlap {
            ids,
            until: Instant::now() + REPLAY_OVERLAP,
        });
        Ok(())
    }

    async fn finish(mut self, end: End) {
        // Leave the room first: the queue is freed whatever happens to the close frame.
        self.membership = None;
        // A client that closed (or vanished) is done with its socket: its slot is free before
        // the close is echoed, so a client that saw the echo may open another at once.
        if matches!(end, End::ClientClosed(_) | End::Gone) {
            self.slot = None;
        }
        let hub = &self.shared.hub;
        let too_slow = || {
            CloseReason::from((
                CloseCode::Again,
                "too slow: events were not read in time; reconnect with last_event_id",
            ))
        };
        let (reason, wait) = match end {
            End::Gone => return,
            End::ClientClosed(reason) => (reason.map(|r| CloseReason::from(r.code)), CLOSE_GRACE),
            // A slow client still gets its close frame after what is buffered, if it reads
            // again within the client timeout.
            End::Kicked => (Some(too_slow()), self.shared.settings.client_timeout),
            End::Stalled => {
                hub.count_slow_client();
                (Some(too_slow()), self.shared.settings.client_timeout)
            }
            End::HeartbeatTimeout => {
                hub.count_heartbeat_timeout();
                let reason = (CloseCode::Policy, "heartbeat timeout: no pong in time");
                (Some(reason.into()), CLOSE_GRACE)
            }
            End::TokenExpired => (
                Some(
                    (
                        CloseCode::Policy,
                        "token expired: reconnect with a fresh token",
                    )
                        .into(),
                ),
                CLOSE_GRACE,
            ),
            End::Flooded => {
                hub.count_flooder();
                let s = &self.shared.settings;
                let why = format!(
                    "too many messages: at most {} a second ({} at once)",
                    s.message_rate, s.message_burst
                );
                tracing::info!(user = %self.claims.name, "websocket closed for flooding");
                (Some((CloseCode::Policy, why.as_str()).into()), CLOSE_GRACE)
            }
            End::Shutdown => (
                Some((CloseCode::Away, "server shutting down; reconnect").into()),
                CLOSE_GRACE,
            ),
            End::Protocol(actix_ws::ProtocolError::Overflow) => (
                Some((CloseCode::Size, "message too large").into()),
                CLOSE_GRACE,
            ),
            End::Protocol(e) => {
                tracing::debug!(error = %e, "websocket protocol error");
                (Some(CloseCode::Protocol.into()), CLOSE_GRACE)
            }
        };
        let _ = tokio::time::timeout(wait, self.session.close(reason)).await;
    }
}

/// A send that gives up when the hub kicks the connection or the client takes too long.
async fn guarded(
    kick: &mut watch::Receiver<Option<Kick>>,
    timeout: Duration,
    send: impl Future<Output = Result<(), Closed>>,
) -> Result<(), End> {
    tokio::select! {
        sent = send => sent.map_err(|_| End::Gone),
        _ = until(kick, Option::is_some) => Err(End::Kicked),
        _ = tokio::time::sleep(timeout) => Err(End::Stalled),
    }
}

async fn next_live(membership: &mut Option<Membership>) -> Option<EventFrame> {
    match membership {
        Some(m) => m.events.recv().await,
        None => std::future::pending().await,
    }
}

/// When the token stops being valid, as an instant on the monotonic clock.
fn token_expiry(claims: &Claims) -> Instant {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    // Bounded so that no `exp` can overflow the clock.
    let left = claims.exp.saturating_sub(now).clamp(0, MAX_TOKEN_LIFE_SECS);
    Instant::now() + Duration::from_secs(left.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_budget_allows_a_burst_then_its_rate() {
        let start = Instant::now();
        let mut budget = MessageBudget::new(2, 3, start);
        assert!((0..3).all(|_| budget.spend(start)), "the burst at once");
        assert!(!budget.spend(start), "one more is over the budget");
        // Half a second gives back one message at 2 a second, no more.
        let later = start + Duration::from_millis(500);
        assert!(budget.spend(later));
        assert!(!budget.spend(later));
        // A long pause refills the bucket up to the burst only.
        let much_later = later + Duration::from_secs(60);
        assert!((0..3).all(|_| budget.spend(much_later)));
        assert!(!budget.spend(much_later));
    }

    #[test]
    fn a_steady_client_within_the_rate_is_never_refused() {
        let start = Instant::now();
        let mut budget = MessageBudget::new(4, 1, start);
        for i in 1..=1_000u64 {
            assert!(
                budget.spend(start + Duration::from_millis(250 * i)),
                "message {i}"
            );
        }
    }
}
