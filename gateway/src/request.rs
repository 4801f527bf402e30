//! What the edge establishes once per request and every later step reads: the request's id and
//! the client's address, kept in the request's extensions.

use actix_web::{HttpMessage, HttpRequest};
use std::net::IpAddr;

/// The header that names a request, on the way in, upstream and on every answer.
pub const REQUEST_ID: &str = "x-request-id";

/// The request's id, chosen once per request by [`crate::edge::check`], which also puts it on
/// the answer, whoever answers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A request id from the client is kept when it is short and plain; otherwise a new one.
pub fn request_id(req: &HttpRequest) -> String {
    if let Some(RequestId(id)) = req.extensions().get::<RequestId>() {
        return id.clone();
    }
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The client's address as the edge found it (the peer's, or the one a trusted proxy
/// forwarded; see [`crate::edge::client_address`]): the rate limits' key for a request without
/// a token, and the `X-Forwarded-For` sent upstream, on the HTTP path and the WebSocket alike.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl ClientAddress {
    /// The address the edge stored (none when the peer's address is unknown).
    pub fn of(req: &HttpRequest) -> Option<IpAddr> {
        req.extensions()
            .get::<ClientAddress>()
            .and_then(|ClientAddress(ip)| *ip)
    }
}
