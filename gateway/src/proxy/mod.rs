//! The last step of the HTTP path: forwarding the request to its upstream. Bodies are streamed
//! both ways with a size limit, hop-by-hop headers are dropped, and failures become 502/504 JSON.

mod body;
mod headers;

pub use body::{Body, BodyLimits};

use crate::error::GatewayError;
use crate::request::{REQUEST_ID, request_id};
use crate::routes::{BodyKind, Route, Upstream};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// Where and how requests are forwarded.
pub struct ProxySettings {
    /// Base URL of each upstream service.
    pub upstreams: HashMap<Upstream, String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Body limits: uploads (image routes) and everything else.
    pub max_upload_bytes: usize,
    pub max_body_bytes: usize,
    /// A client that sends nothing of its body for this long is cut off (408).
    pub body_timeout: Duration,
}

pub struct Proxy {
    client: reqwest::Client,
    settings: ProxySettings,
}

impl Proxy {
    pub fn new(settings: ProxySettings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Proxy { client, settings })
    }

    /// The HTTP client to the upstreams (readiness checks share its pool).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The request's body, refused at once when it declares more than its route accepts.
    pub fn accept_body(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        route: &Route,
    ) -> Result<Body, GatewayError> {
        let limits = BodyLimits {
            bytes: match route.body {
                BodyKind::Upload => self.settings.max_upload_bytes,
                BodyKind::Json => self.settings.max_body_bytes,
            },
            idle: self.settings.body_timeout,
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.bytes as u64) {
            return Err(GatewayError::PayloadTooLarge {
                limit: limits.bytes,
            });
        }
        let has_body = declared.is_some_and(|n| n > 0)
            || req.headers().contains_key(header::TRANSFER_ENCODING);
        Ok(if has_body {
            Body::Pending(payload, limits)
        } else {
            Body::Empty
        })
    }

    /// Sends the request to its route's upstream; the answer goes back with the request's id
    /// and `extra` headers (the rate limits').
    pub async fn forward(
        &self,
        req: &HttpRequest,
        route: &Route,
        body: Body,
        extra: Vec<(&'static str, String)>,
    ) -> Result<HttpResponse, GatewayError> {
        let request_id = request_id(req);
        let outgoing = self.upstream_request(req, route, &request_id)?;
        let (outgoing, watch) = body.attach(outgoing);
        let upstream = route.upstream.name();
        let response = outgoing.send().await.map_err(|e| {
            watch
                .failure()
                .unwrap_or_else(|| upstream_error(upstream, &e, &request_id))
        })?;
        Ok(respond(response, upstream, &request_id, extra))
    }

    /// The request to the upstream: same method, path and query, the headers that may cross.
    fn upstream_request(
        &self,
        req: &HttpRequest,
        route: &Route,
        request_id: &str,
    ) -> Result<reqwest::RequestBuilder, GatewayError> {
        let path = req.path();
        let base = self
            .settings
            .upstreams
            .get(&route.upstream)
            .map(String::as_str)
            .unwrap_or_default();
        let url = match req.uri().query() {
            Some(q) => format!("{base}{path}?{q}"),
            None => format!("{base}{path}"),
        };
        let method =
            reqwest::Method::from_bytes(req.method().as_str().as_bytes()).map_err(|_| {
                GatewayError::MethodNotAllowed {
                    method: req.method().to_string(),
                    path: path.to_owned(),
                }
            })?;
        let outgoing = self.client.request(method, &url);
        Ok(headers::to_upstream(outgoing, req, request_id))
    }
}

fn upstream_error(name: &'static str, e: &reqwest::Error, request_id: &str) -> GatewayError {
    if e.is_timeout() {
        tracing::warn!(upstream = name, request_id, "upstream timed out");
        GatewayError::GatewayTimeout(name)
    } else {
        tracing::warn!(upstream = name, request_id, error = %e, "upstream unavailable");
        GatewayError::BadGateway(name)
    }
}

/// The upstream's answer as the client's: its status and headers, the request's id and
/// `extra` headers, and its body streamed as it comes.
fn respond(
    response: reqwest::Response,
    upstream: &'static str,
    request_id: &str,
    extra: Vec<(&'static str, String)>,
) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    let mut builder = HttpResponse::build(status);
    headers::to_client(&mut builder, response.headers());
    builder.insert_header((REQUEST_ID, request_id.to_owned()));
    for (name, value) in extra {
        builder.insert_header((name, value));
    }
    let length = response.content_length();
    let body = response.bytes_stream().map(move |chunk| {
        chunk.map_err(|e| {
            tracing::warn!(upstream, error = %e, "upstream body failed mid-stream");
            actix_web::error::ErrorBadGateway(e)
        })
    });
    // A body of known length keeps its length (no chunked encoding); others stream as they come.
    match length {
        Some(n) => builder.body(actix_web::body::SizedStream::new(n, body)),
        None => builder.streaming(body),
    }
}
