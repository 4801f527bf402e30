//! One client's WebSocket, from the upgrade to the close.
//!
//! Every send is bounded: a client that does not accept a frame within the client timeout, or
//! lets its queue of live events fill up (the hub then kicks it), is closed with 1013 and
//! leaves the room at once, so a slow reader holds at most its queue and the socket's buffers.

use crate::config::WsSettings;
use crate::history::History;
use crate::hub::{Hub, Kick, Membership, RecentIds, SocketSlot, until};
use crate::protocol::{self, ClientRequest, EventFrame};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Closed};
use bytestring::ByteString;
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
    _slot: SocketSlot,
}

impl Connection {
    pub fn new(
        shared: Arc<Shared>,
        claims: Claims,
        session: actix_ws::Session,
        slot: SocketSlot,
    ) -> Self {
        let (kick_tx, kick) = watch::channel(None);
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
            _slot: slot,
        };
        // Admins join on connect, as in the seed, and before the upgrade is answered: an event
        // published once the client is connected reaches it. Joining before any replay is what
        // makes the switch from history to live lose nothing (live events wait in the queue).
        if connection.claims.is_admin() {
            connection.join();
        }
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
        if self.claims.is_admin()
            && let Some(id) = resume_from
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
                Step::Client(Some(Ok(msg))) => {
                    self.last_heard = Instant::now();
                    self.on_client(msg).await
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

    async fn send_error(&mut self, code: &str, msg: &str) -> Result<(), End> {
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
                    "invalid_message",
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
        let admin = self.claims.is_admin();
        match protocol::parse_request(text) {
            Ok(ClientRequest::JoinAdmin) if admin => {
                self.join();
                self.send_text(protocol::message(protocol::JOINED_ADMINS))
                    .await
            }
            Ok(ClientRequest::Resume { last_event_id }) if admin => {
                self.replay(last_event_id).await
            }
            Ok(_) => {
                tracing::info!(user = %self.claims.name, "a non-admin asked to join the admins room");
                self.send_error(
                    "forbidden",
                    "Acceso no autorizado: only admins may join the admins room.",
                )
                .await
            }
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
                        "replay_unavailable",
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
            return self.send_error("replay_unavailable", &msg).await;
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
