//! Which headers cross the gateway: hop-by-hop headers never do, nor a client's claims about
//! who it is; the gateway adds the request's id, its trace context and the client's address.

use crate::request::{ClientAddress, REQUEST_ID};
use actix_web::HttpRequest;
use actix_web::HttpResponseBuilder;
use actix_web::http::header::{HeaderName, HeaderValue};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// Headers a client might send to pose as someone: no service trusts them, and the gateway
/// does not pass them on either.
fn is_identity_header(name: &str) -> bool {
    name.starts_with("x-user")
        || name.starts_with("x-auth")
        || name.starts_with("x-forwarded-")
        || name == "forwarded"
        || name == "x-real-ip"
}

/// The client's headers that go upstream, and the gateway's own.
pub fn to_upstream(
    mut outgoing: reqwest::RequestBuilder,
    req: &HttpRequest,
    request_id: &str,
) -> reqwest::RequestBuilder {
    for (name, value) in req.headers() {
        let n = name.as_str();
        if is_hop_by_hop(n)
            || is_identity_header(n)
            || n == "host"
            || n == REQUEST_ID
            || n == common::telemetry::TRACEPARENT
            || n == "tracestate"
        {
            continue;
        }
        outgoing = outgoing.header(n, value.as_bytes());
    }
    outgoing = outgoing.header(REQUEST_ID, request_id);
    // The upstream's span is a child of this request's span at the gateway.
    outgoing = common::telemetry::inject(outgoing);
    if let Some(client) = ClientAddress::of(req) {
        outgoing = outgoing.header("x-forwarded-for", client.to_string());
    }
    outgoing.header(
        "x-forwarded-proto",
        req.connection_info().scheme().to_owned(),
    )
}

/// The upstream's headers that go back to the client (the gateway sets the request's id and
/// the body's length itself).
pub fn to_client(builder: &mut HttpResponseBuilder, upstream: &reqwest::header::HeaderMap) {
    for (name, value) in upstream {
        if is_hop_by_hop(name.as_str())
            || name.as_str() == REQUEST_ID
            || name.as_str() == "content-length"
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            builder.append_header((n, v));
        }
    }
}
