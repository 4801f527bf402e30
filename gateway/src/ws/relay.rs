//! The relay of an open pair of sockets: frames both ways, the gateway's own heartbeat on
//! each side, and the close of both when either ends.

use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Closed, Session};
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type UpstreamSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The largest message relayed either way (notify-svc's events are a few kilobytes).
pub const MAX_MESSAGE: usize = 1024 * 1024;
/// How often the gateway pings each side, and how long either may stay silent.
const HEARTBEAT: Duration = Duration::from_secs(20);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one frame may wait for the client (or notify-svc) to accept it.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a close frame may wait for a peer that is going away anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The payload of the gateway's own pings, whose pongs are not relayed.
const GATEWAY_PING: &[u8] = b"gateway";

enum Step {
    Client(Option<Result<AggregatedMessage, actix_ws::ProtocolError>>),
    Upstream(Option<Result<Message, tungstenite::Error>>),
    Heartbeat,
}

/// Why a relay ends, with the upstream socket when it still needs closing.
pub enum End {
    ClientClosed(Option<CloseReason>, UpstreamSocket),
    ClientGone(UpstreamSocket),
    ClientTooLarge(UpstreamSocket),
    ClientTooSlow(UpstreamSocket),
    ClientSilent(UpstreamSocket),
    UpstreamClosed(Option<CloseFrame>, UpstreamSocket),
    UpstreamLost,
}

impl End {
    pub fn kind(&self) -> &'static str {
        match self {
            End::ClientClosed(..) => "client closed",
            End::ClientGone(_) => "client gone",
            End::ClientTooLarge(_) => "client message too large",
            End::ClientTooSlow(_) => "client too slow",
            End::ClientSilent(_) => "client heartbeat timeout",
            End::UpstreamClosed(..) => "notify-svc closed",
            End::UpstreamLost => "notify-svc connection lost",
        }
    }

    /// Closes both sides as the end requires; each close is bounded in time.
    pub async fn close(self, session: Session) {
        let away = |why: &'static str| {
            Some(CloseFrame {
                code: CloseCode::Away.into_tungstenite(),
                reason: Utf8Bytes::from_static(why),
            })
        };
        let client_closed = matches!(self, End::ClientClosed(..));
        let (upstream_close, client_close, wait) = match self {
            End::ClientClosed(reason, up) => {
                let frame = reason.as_ref().map(close_frame);
                let echo = reason.map(|r| CloseReason::from(r.code));
                (Some((up, frame)), Some(echo), CLOSE_GRACE)
            }
            End::ClientGone(up) => (Some((up, away("client went away"))), None, CLOSE_GRACE),
            End::ClientTooLarge(up) => (
                Some((up, away("client went away"))),
                Some(Some((CloseCode::Size, "message too large").into())),
                CLOSE_GRACE,
            ),
            End::ClientTooSlow(up) => (
                Some((up, away("client too slow"))),
                Some(Some(
                    (
                        CloseCode::Again,
                        "too slow: events were not read in time; reconnect with last_event_id",
                    )
                        .into(),
                )),
                CLIENT_TIMEOUT,
            ),
            End::ClientSilent(up) => (
                Some((up, away("client heartbeat timeout"))),
                Some(Some(
                    (CloseCode::Policy, "heartbeat timeout: no pong in time").into(),
                )),
                CLOSE_GRACE,
            ),
            End::UpstreamClosed(frame, up) => {
                // Completes the close handshake tungstenite has answered.
                (Some((up, None)), Some(frame.map(close_reason)), CLOSE_GRACE)
            }
            End::UpstreamLost => (
                None,
                Some(Some(
                    (
                        CloseCode::Away,
                        "notify-svc went away; reconnect with last_event_id",
                    )
                        .into(),
                )),
                CLOSE_GRACE,
            ),
        };
        if let Some((mut up, frame)) = upstream_close {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                let _ = up.close(frame).await;
                // The client's own close waits for notify-svc's echo: once the client sees its
                // close answered, notify-svc has let go of the socket (and of the user's slot).
                if client_closed {
                    while let Some(Ok(msg)) = up.next().await {
                        if msg.is_close() {
                            break;
                        }
                    }
                }
            })
            .await;
        }
        if let Some(reason) = client_close {
            let _ = tokio::time::timeout(wait, session.close(reason)).await;
        }
    }
}

trait IntoTungstenite {
    fn into_tungstenite(self) -> tungstenite::protocol::frame::coding::CloseCode;
}

impl IntoTungstenite for CloseCode {
    fn into_tungstenite(self) -> tungstenite::protocol::frame::coding::CloseCode {
        u16::from(self).into()
    }
}

fn close_frame(reason: &CloseReason) -> CloseFrame {
    CloseFrame {
        code: reason.code.into_tungstenite(),
        reason: reason.description.clone().unwrap_or_default().into(),
    }
}

fn close_reason(frame: CloseFrame) -> CloseReason {
    CloseReason {
        code: u16::from(frame.code).into(),
        description: Some(frame.reason.to_string()).filter(|d| !d.is_empty()),
    }
}

/// A send to one side that gives up after [`SEND_TIMEOUT`]: `Err(true)` when it timed out,
/// `Err(false)` when that side is gone.
async fn bounded<E>(send: impl Future<Output = Result<(), E>>) -> Result<(), bool> {
    match tokio::time::timeout(SEND_TIMEOUT, send).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(false),
        Err(_) => Err(true),
    }
}

/// notify-svc stopped taking frames: when it closed the socket (a client over its message
/// budget gets 1008), its close frame is passed on rather than a 1001.
async fn upstream_gone(mut upstream: UpstreamSocket) -> End {
    let read = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(msg)) = upstream.next().await {
            if let Message::Close(frame) = msg {
                return Some(frame);
            }
        }
        None
    })
    .await;
    match read {
        Ok(Some(frame)) => End::UpstreamClosed(frame, upstream),
        _ => End::UpstreamLost,
    }
}

pub async fn relay(
    mut session: Session,
    mut client: actix_ws::AggregatedMessageStream,
    mut upstream: UpstreamSocket,
) -> End {
    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut upstream_heard = Instant::now();
    loop {
        let step = tokio::select! {
            msg = client.next() => Step::Client(msg),
            msg = upstream.next() => Step::Upstream(msg),
            _ = heartbeat.tick() => Step::Heartbeat,
        };
        match step {
            Step::Client(None) => return End::ClientGone(upstream),
            Step::Client(Some(Err(actix_ws::ProtocolError::Overflow))) => {
                return End::ClientTooLarge(upstream);
            }
            Step::Client(Some(Err(_))) => return End::ClientGone(upstream),
            Step::Client(Some(Ok(msg))) => {
                last_heard = Instant::now();
                let forward = match msg {
                    AggregatedMessage::Text(text) => match Utf8Bytes::try_from(text.into_bytes()) {
                        Ok(text) => Message::Text(text),
                        Err(_) => continue,
                    },
                    AggregatedMessage::Binary(bytes) => Message::Binary(bytes),
                    AggregatedMessage::Ping(bytes) => Message::Ping(bytes),
                    AggregatedMessage::Pong(bytes) if bytes.as_ref() == GATEWAY_PING => continue,
                    AggregatedMessage::Pong(bytes) => Message::Pong(bytes),
                    AggregatedMessage::Close(reason) => return End::ClientClosed(reason, upstream),
                };
                if bounded(upstream.send(forward)).await.is_err() {
                    return upstream_gone(upstream).await;
                }
            }
            Step::Upstream(None) | Step::Upstream(Some(Err(_))) => return End::UpstreamLost,
            Step::Upstream(Some(Ok(msg))) => {
                upstream_heard = Instant::now();
                let sent = match msg {
                    Message::Text(text) => match ByteString::try_from(Bytes::from(text)) {
                        Ok(text) => bounded(session.text(text)).await,
                        Err(_) => continue,
                    },
                    Message::Binary(bytes) => bounded(session.binary(bytes)).await,
                    Message::Ping(bytes) => bounded(session.ping(&bytes)).await,
                    Message::Pong(bytes) if bytes.as_ref() == GATEWAY_PING => continue,
                    Message::Pong(bytes) => bounded(session.pong(&bytes)).await,
                    Message::Close(frame) => return End::UpstreamClosed(frame, upstream),
                    Message::Frame(_) => continue,
                };
                match sent {
                    Ok(()) => {}
                    Err(true) => return End::ClientTooSlow(upstream),
                    Err(false) => return End::ClientGone(upstream),
                }
            }
            Step::Heartbeat => {
                if last_heard.elapsed() > CLIENT_TIMEOUT {
                    return End::ClientSilent(upstream);
                }
                let ping = Message::Ping(Bytes::from_static(GATEWAY_PING));
                if upstream_heard.elapsed() > CLIENT_TIMEOUT
                    || bounded(upstream.send(ping)).await.is_err()
                {
                    return End::UpstreamLost;
                }
                match bounded::<Closed>(session.ping(GATEWAY_PING)).await {
                    Ok(()) => {}
                    Err(true) => return End::ClientTooSlow(upstream),
                    Err(false) => return End::ClientGone(upstream),
                }
            }
        }
    }
}
