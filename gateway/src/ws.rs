//! `GET /ws`: the admin WebSocket, proxied to notify-svc.
//!
//! The gateway checks the token itself (header, or `?access_token=` for browsers) and refuses
//! before any upgrade: 401 JSON without a valid token, 403 for anyone but an admin, 429 when
//! the upgrade is over the client's rate limits (the upgrade counts like any request: route
//! `/ws`, the default limits unless `RATE_LIMIT_ROUTES` names it). It then opens the upstream
//! socket before answering the client, so a notify-svc that is down is a 502 JSON answer rather
//! than a socket that closes at once, and notify-svc's own refusals (429 when the admin holds
//! `WS_MAX_CONNECTIONS_PER_USER` sockets there, 503 when it is full) come back as they are:
//! notify-svc holds the sockets, so it counts them, and each client socket here is one there. Frames are relayed both ways (text,
//! binary, ping, pong, close). The token travels upstream as a header; of the query only
//! `last_event_id` is passed on.
//!
//! Each hop watches its own liveness (tungstenite answers notify-svc's pings for the gateway,
//! so those say nothing about the client): the gateway pings both sides itself and closes the
//! pair when either stays silent.

use crate::config::Config;
use crate::error::GatewayError;
use crate::proxy::{REQUEST_ID, request_id};
use crate::ratelimit::Verdict;
use crate::routes::Upstream;
use crate::state::GatewayState;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Closed, Session};
use bytes::Bytes;
use bytestring::ByteString;
use common::ApiError;
use common::jwt::bearer_token;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type UpstreamSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The largest message relayed either way (notify-svc's events are a few kilobytes).
const MAX_MESSAGE: usize = 1024 * 1024;
/// How often the gateway pings each side, and how long either may stay silent.
const HEARTBEAT: Duration = Duration::from_secs(20);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one frame may wait for the client (or notify-svc) to accept it.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a close frame may wait for a peer that is going away anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The payload of the gateway's own pings, whose pongs are not relayed.
const GATEWAY_PING: &[u8] = b"gateway";
/// The path, also the rate limits' route name.
pub const PATH: &str = "/ws";

/// Where `/ws` goes.
pub struct WsProxy {
    /// notify-svc's `/ws` as a `ws://` URL.
    upstream: Option<String>,
    connect_timeout: Duration,
}

impl WsProxy {
    pub fn new(config: &Config) -> Self {
        let upstream = config.upstreams.get(&Upstream::Notify).map(|base| {
            let ws_base = match base.strip_prefix("https://") {
                Some(rest) => format!("wss://{rest}"),
                None => format!("ws://{}", base.trim_start_matches("http://")),
            };
            format!("{ws_base}/ws")
        });
        WsProxy {
            upstream,
            connect_timeout: config.connect_timeout,
        }
    }

    /// Opens the upstream socket; an HTTP answer from notify-svc (401, 400, 503…) is passed
    /// back to the client as it is.
    async fn connect(
        &self,
        req: &HttpRequest,
        token: &str,
        request_id: &str,
    ) -> Result<UpstreamSocket, Result<HttpResponse, GatewayError>> {
        let down = || Err(GatewayError::BadGateway(Upstream::Notify.name()));
        let Some(base) = &self.upstream else {
            return Err(down());
        };
        let url = match last_event_id(req.query_string()) {
            Some(pair) => format!("{base}?{pair}"),
            None => base.clone(),
        };
        let mut request = url.into_client_request().map_err(|e| {
            tracing::warn!(error = %e, url = %base, "notify-svc's WebSocket URL is not valid");
            down()
        })?;
        let headers = request.headers_mut();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = value.parse() {
                headers.insert(name, v);
            }
        };
        set("authorization", &format!("Bearer {token}"));
        set(REQUEST_ID, request_id);
        if let Some(peer) = req.peer_addr() {
            set("x-forwarded-for", &peer.ip().to_string());
        }
        // Small buffers: admin sockets are mostly idle, and tungstenite's 128 KiB defaults
        // made each proxied socket cost the gateway ~150 KiB.
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tungstenite::Error::Http(answer))) if answer.status().as_u16() >= 400 => {
                Err(Ok(relay_refusal(&answer, request_id)))
            }
            Ok(Err(e)) => {
                tracing::warn!(request_id, error = %e, "notify-svc's WebSocket is unavailable");
                Err(down())
            }
            Err(_) => {
                tracing::warn!(request_id, "notify-svc's WebSocket did not answer in time");
                Err(Err(GatewayError::GatewayTimeout(Upstream::Notify.name())))
            }
        }
    }
}

/// The `last_event_id=…` pair of a query string, verbatim (notify-svc validates it).
fn last_event_id(query: &str) -> Option<&str> {
    query
        .split('&')
        .find(|pair| pair.split('=').next() == Some("last_event_id"))
}

/// notify-svc's refusal of the upgrade, as the client's answer.
fn relay_refusal(
    answer: &tungstenite::http::Response<Option<Vec<u8>>>,
    request_id: &str,
) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(answer.status().as_u16())
        .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    let mut builder = HttpResponse::build(status);
    if let Some(ct) = answer.headers().get("content-type")
        && let Ok(ct) = HeaderValue::from_bytes(ct.as_bytes())
    {
        builder.insert_header((actix_web::http::header::CONTENT_TYPE, ct));
    }
    builder.insert_header((REQUEST_ID, request_id.to_owned()));
    builder.body(answer.body().clone().unwrap_or_default())
}

fn refused(e: GatewayError) -> ApiError {
    ApiError::from(&e)
}

pub async fn proxy(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<GatewayState>,
    ws: web::Data<WsProxy>,
) -> Result<HttpResponse, ApiError> {
    let token = bearer_token(&req, true).ok_or_else(|| refused(GatewayError::MissingToken))?;
    let claims = state
        .verifier
        .verify(&token)
        .await
        .map_err(|e| refused(GatewayError::Token(e)))?;
    if !claims.is_admin() {
        tracing::info!(user = %claims.name, "a non-admin asked for the admins' WebSocket");
        return Err(refused(GatewayError::Forbidden));
    }
    let limit_headers = match state
        .rate_limiter
        .check(PATH, PATH, &format!("user:{}", claims.sub))
        .await
    {
        Verdict::Unlimited => vec![],
        Verdict::Allowed(headers) => headers,
        Verdict::Refused {
            headers,
            retry_after,
            message,
        } => {
            // With its Retry-After and RateLimit headers, as every other route's.
            let e = GatewayError::RateLimited {
                message,
                retry_after,
                headers,
            };
            return Ok(e.error_response());
        }
        Verdict::Unavailable => return Err(refused(GatewayError::RateLimitUnavailable)),
    };
    let (mut response, session, client) = actix_ws::handle(&req, body).map_err(|_| {
        ApiError::bad_request(
            "websocket_required",
            "GET /ws is a WebSocket: send an upgrade request (`Connection: Upgrade`, `Upgrade: websocket`).",
        )
    })?;
    let request_id = request_id(&req);
    let upstream = match ws.connect(&req, &token, &request_id).await {
        Ok(socket) => socket,
        Err(Ok(answer)) => return Ok(answer),
        Err(Err(e)) => return Err(refused(e)),
    };
    let headers = limit_headers
        .into_iter()
        .chain(std::iter::once((REQUEST_ID, request_id.clone())));
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), v);
        }
    }
    tracing::info!(request_id, user = %claims.name, "websocket proxied to notify-svc");
    let client = client
        .max_frame_size(MAX_MESSAGE)
        .aggregate_continuations()
        .max_continuation_size(MAX_MESSAGE);
    actix_web::rt::spawn(async move {
        let end = relay(session.clone(), client, upstream).await;
        tracing::debug!(request_id, end = end.kind(), "websocket relay ended");
        end.close(session).await;
    });
    Ok(response)
}

enum Step {
    Client(Option<Result<AggregatedMessage, actix_ws::ProtocolError>>),
    Upstream(Option<Result<Message, tungstenite::Error>>),
    Heartbeat,
}

/// Why a relay ends, with the upstream socket when it still needs closing.
enum End {
    ClientClosed(Option<CloseReason>, UpstreamSocket),
    ClientGone(UpstreamSocket),
    ClientTooLarge(UpstreamSocket),
    ClientTooSlow(UpstreamSocket),
    ClientSilent(UpstreamSocket),
    UpstreamClosed(Option<CloseFrame>, UpstreamSocket),
    UpstreamLost,
}

impl End {
    fn kind(&self) -> &'static str {
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
    async fn close(self, session: Session) {
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

async fn relay(
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

#[cfg(test)]
mod tests {
    use super::last_event_id;

    #[test]
    fn only_last_event_id_is_passed_upstream() {
        assert_eq!(
            last_event_id("access_token=abc&last_event_id=0190-x"),
            Some("last_event_id=0190-x")
        );
        assert_eq!(last_event_id("access_token=abc"), None);
        assert_eq!(last_event_id("last_event_idx=1"), None);
        assert_eq!(last_event_id(""), None);
    }
}
