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

mod relay;

use crate::auth::{self, Verified};
use crate::error::GatewayError;
use crate::ratelimit::{LimitHeaders, RateLimiter, key};
use crate::request::{ClientAddress, REQUEST_ID, request_id};
use crate::routes::Upstream;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use common::jwt::JwtVerifier;
use common::{ApiError, ErrorCode};
use relay::{MAX_MESSAGE, UpstreamSocket, relay};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The path, also the rate limits' route name.
pub const PATH: &str = "/ws";

/// Where `/ws` goes, and who may open it.
pub struct WsProxy {
    /// notify-svc's `/ws` as a `ws://` URL.
    upstream: Option<String>,
    connect_timeout: Duration,
    verifier: Arc<JwtVerifier>,
    limiter: Arc<RateLimiter>,
}

impl WsProxy {
    /// `notify`: notify-svc's base URL (`http(s)://…`).
    pub fn new(
        notify: Option<&str>,
        connect_timeout: Duration,
        verifier: Arc<JwtVerifier>,
        limiter: Arc<RateLimiter>,
    ) -> Self {
        let upstream = notify.map(|base| {
            let ws_base = match base.strip_prefix("https://") {
                Some(rest) => format!("wss://{rest}"),
                None => format!("ws://{}", base.trim_start_matches("http://")),
            };
            format!("{ws_base}/ws")
        });
        WsProxy {
            upstream,
            connect_timeout,
            verifier,
            limiter,
        }
    }

    /// An admin's verified token, within the rate limits (counted by the same rule as the
    /// HTTP path's): the headers for the answer.
    async fn admit(&self, req: &HttpRequest) -> Result<(Verified, LimitHeaders), GatewayError> {
        let verified = auth::verify(&self.verifier, req, true).await?;
        if !verified.claims.is_admin() {
            tracing::info!(user = %verified.claims.name, "a non-admin asked for the admins' WebSocket");
            return Err(GatewayError::Forbidden);
        }
        let client = key::client_key(Some(&verified.claims), ClientAddress::of(req));
        let headers = self.limiter.check(PATH, PATH, &client).await.admit()?;
        Ok((verified, headers))
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
        // The client's address as the edge settled it, as on the HTTP path.
        if let Some(client) = ClientAddress::of(req) {
            set("x-forwarded-for", &client.to_string());
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
    ws: web::Data<WsProxy>,
) -> Result<HttpResponse, ApiError> {
    let (Verified { token, claims }, limit_headers) = match ws.admit(&req).await {
        Ok(admitted) => admitted,
        // A 429 with its Retry-After and RateLimit headers, as every other route's.
        Err(e) => return Err(refused(e)),
    };
    let (mut response, session, client) =
        actix_ws::handle(&req, body).map_err(|_| ErrorCode::WebsocketRequired)?;
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
