//! Forwarding a request to its upstream: the token is checked first, bodies are streamed both
//! ways with a size limit, hop-by-hop headers are dropped, and failures become 502/504 JSON.

use crate::error::GatewayError;
use crate::ratelimit::Verdict;
use crate::routes::{Access, BodyKind, Route};
use crate::state::GatewayState;
use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub const REQUEST_ID: &str = "x-request-id";

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

/// Refuses paths whose meaning could change on the way (dot segments, `//`, encoded `/`,
/// `\` or NUL), so that no upstream can be reached at a path the table did not approve.
fn path_is_clean(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%00")
        || lower.contains("%2e")
        || path.contains('\\')
    {
        return false;
    }
    !path.contains("//") && !path.split('/').any(|seg| seg == "." || seg == "..")
}

async fn authorize(
    state: &GatewayState,
    req: &HttpRequest,
    route: &Route,
) -> Result<(), GatewayError> {
    if route.access == Access::Public {
        return Ok(());
    }
    let token = common::jwt::bearer_token(req, false).ok_or(GatewayError::MissingToken)?;
    let claims = state.verifier.verify(&token).await?;
    if route.access == Access::Admin && !claims.is_admin() {
        return Err(GatewayError::Forbidden);
    }
    req.extensions_mut().insert(claims);
    Ok(())
}

/// The client's address: the peer's, or from `X-Forwarded-For` when the peer is a trusted proxy.
fn client_address(state: &GatewayState, req: &HttpRequest) -> Option<std::net::IpAddr> {
    // Every X-Forwarded-For line, in order: a proxy may add its own line rather than append.
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    crate::ratelimit::client_ip(
        req.peer_addr().map(|a| a.ip()),
        (!forwarded.is_empty()).then_some(forwarded.as_str()),
        &state.rate_limiter.config().trusted_proxies,
    )
}

/// Counts the request as `cost` against the limits of `route` (see
/// [`crate::ratelimit::RateLimiter::quota_route`]); the headers to send with the answer.
async fn rate_limit(
    state: &GatewayState,
    req: &HttpRequest,
    route: &str,
    path: &str,
    (cost, images): (u32, u32),
) -> Result<Vec<(&'static str, String)>, GatewayError> {
    let client = match req.extensions().get::<common::jwt::Claims>() {
        Some(claims) => format!("user:{}", claims.sub),
        None => format!(
            "ip:{}",
            client_address(state, req).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
        ),
    };
    match state
        .rate_limiter
        .check_n(route, path, &client, cost, images)
        .await
    {
        Verdict::Unlimited => Ok(vec![]),
        Verdict::Allowed(headers) => Ok(headers),
        Verdict::Refused {
            headers,
            retry_after,
            message,
        } => Err(GatewayError::RateLimited {
            message,
            retry_after,
            headers,
        }),
        Verdict::Unavailable => Err(GatewayError::RateLimitUnavailable),
    }
}

pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, GatewayError> {
    let path = req.path().to_owned();
    let method = req.method().clone();
    if !path_is_clean(&path) {
        return Err(GatewayError::InvalidPath);
    }
    let Some(route) = state.routes.lookup(&path) else {
        // A path the gateway answers itself (`/health`, `/ws`, ...), with another method.
        if req.resource_map().has_resource(&path) {
            return Err(GatewayError::MethodNotAllowed {
                method: method.to_string(),
                path,
            });
        }
        return Err(GatewayError::NotFound {
            method: method.to_string(),
            path,
        });
    };
    if !route.allows(method.as_str()) {
        return Err(GatewayError::MethodNotAllowed {
            method: method.to_string(),
            path,
        });
    }
    req.extensions_mut()
        .insert(common::metrics::RouteLabel(route.path.clone()));
    authorize(&state, &req, route).await?;
    // An infer request counts once per image it carries, against its model's predict quota:
    // one here, so that a client with nothing left is refused before sending its body; the
    // rest once the body's shape is read, before it is forwarded.
    let infer = method == actix_web::http::Method::POST
        && crate::ratelimit::oip_infer_model(&path).is_some();
    let quota_route = state
        .rate_limiter
        .quota_route(&route.path, &path)
        .to_owned();
    let mut limit_headers = rate_limit(&state, &req, &quota_route, &path, (1, 1)).await?;

    let limit = match route.body {
        BodyKind::Upload => state.max_upload_bytes,
        BodyKind::Json => state.max_body_bytes,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    let has_body =
        declared.is_some_and(|n| n > 0) || req.headers().contains_key(header::TRANSFER_ENCODING);

    let upstream = route.upstream;
    let base = state
        .upstreams
        .get(&upstream)
        .map(String::as_str)
        .unwrap_or_default();
    let url = match req.uri().query() {
        Some(q) => format!("{base}{path}?{q}"),
        None => format!("{base}{path}"),
    };
    let request_id = request_id(&req);

    let reqwest_method = reqwest::Method::from_bytes(method.as_str().as_bytes()).map_err(|_| {
        GatewayError::MethodNotAllowed {
            method: method.to_string(),
            path: path.clone(),
        }
    })?;
    let mut outgoing = state.client.request(reqwest_method, &url);
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
    outgoing = outgoing.header(REQUEST_ID, request_id.as_str());
    // The upstream's span is a child of this request's span at the gateway.
    outgoing = common::telemetry::inject(outgoing);
    if let Some(client) = client_address(&state, &req) {
        outgoing = outgoing.header("x-forwarded-for", client.to_string());
    }
    outgoing = outgoing.header(
        "x-forwarded-proto",
        req.connection_info().scheme().to_owned(),
    );

    let exceeded = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(AtomicBool::new(false));
    if infer && has_body {
        let body = read_body(
            payload,
            BodyLimits {
                bytes: limit,
                idle: state.body_timeout,
            },
        )
        .await?;
        let images = oip_images(&body);
        if images > 1 {
            limit_headers =
                rate_limit(&state, &req, &quota_route, &path, (images - 1, images)).await?;
        }
        outgoing = outgoing.body(body);
    } else if has_body {
        outgoing = outgoing.body(reqwest::Body::wrap_stream(stream_body(
            payload,
            BodyLimits {
                bytes: limit,
                idle: state.body_timeout,
            },
            exceeded.clone(),
            stalled.clone(),
        )));
    }

    let response = match outgoing.send().await {
        Ok(r) => r,
        Err(e) => {
            if exceeded.load(Ordering::SeqCst) {
                return Err(GatewayError::PayloadTooLarge { limit });
            }
            if stalled.load(Ordering::SeqCst) {
                return Err(GatewayError::BodyTimeout(state.body_timeout));
            }
            return Err(upstream_error(upstream.name(), &e, &request_id));
        }
    };

    let status = actix_web::http::StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    let mut builder = HttpResponse::build(status);
    for (name, value) in response.headers() {
        if is_hop_by_hop(name.as_str())
            || name.as_str() == REQUEST_ID
            || name.as_str() == "content-length"
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            builder.append_header((n, v));
        }
    }
    builder.insert_header((REQUEST_ID, request_id.clone()));
    for (name, value) in limit_headers {
        builder.insert_header((name, value));
    }
    let length = response.content_length();
    let upstream_name = upstream.name();
    let body = response.bytes_stream().map(move |chunk| {
        chunk.map_err(|e| {
            tracing::warn!(upstream = upstream_name, error = %e, "upstream body failed mid-stream");
            actix_web::error::ErrorBadGateway(e)
        })
    });
    // A body of known length keeps its length (no chunked encoding); others stream as they come.
    Ok(match length {
        Some(n) => builder.body(actix_web::body::SizedStream::new(n, body)),
        None => builder.streaming(body),
    })
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

/// How many images an infer body carries: the sum of its inputs' first dimensions, read without
/// keeping the data (an unknown field is skipped, not stored). A body that shows no shape counts
/// as one; predict-svc refuses it.
pub fn oip_images(body: &[u8]) -> u32 {
    #[derive(serde::Deserialize)]
    struct Request {
        inputs: Vec<Input>,
    }
    #[derive(serde::Deserialize)]
    struct Input {
        shape: Vec<i64>,
    }
    match serde_json::from_slice::<Request>(body) {
        Ok(request) => request
            .inputs
            .iter()
            .map(|input| {
                input
                    .shape
                    .first()
                    .copied()
                    .unwrap_or(1)
                    .clamp(1, i64::from(u32::MAX)) as u32
            })
            .fold(0_u32, u32::saturating_add)
            .max(1),
        Err(_) => 1,
    }
}

/// The whole body, within the route's limit and the idle timeout.
async fn read_body(mut payload: web::Payload, limits: BodyLimits) -> Result<Bytes, GatewayError> {
    let mut body = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(limits.idle, payload.next()).await {
            Err(_) => return Err(GatewayError::BodyTimeout(limits.idle)),
            Ok(None) => return Ok(body.freeze()),
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "client body failed");
                return Err(GatewayError::PayloadTooLarge {
                    limit: limits.bytes,
                });
            }
            Ok(Some(Ok(chunk))) => {
                if body.len() + chunk.len() > limits.bytes {
                    return Err(GatewayError::PayloadTooLarge {
                        limit: limits.bytes,
                    });
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
}

struct BodyLimits {
    bytes: usize,
    /// The longest pause allowed between two pieces of the body.
    idle: std::time::Duration,
}

/// Moves the client's body (an actix stream, tied to its worker thread) into a channel that
/// the HTTP client can read from any thread, counting bytes against the route's limit and
/// cutting off a client that stops sending.
fn stream_body(
    mut payload: web::Payload,
    limits: BodyLimits,
    exceeded: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    actix_web::rt::spawn(async move {
        let mut seen = 0usize;
        loop {
            let chunk = match tokio::time::timeout(limits.idle, payload.next()).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(_) => {
                    stalled.store(true, Ordering::SeqCst);
                    let _ = tx
                        .send(Err(std::io::Error::other(
                            "the client stopped sending its body",
                        )))
                        .await;
                    break;
                }
            };
            let item = match chunk {
                Ok(bytes) => {
                    seen += bytes.len();
                    if seen > limits.bytes {
                        exceeded.store(true, Ordering::SeqCst);
                        Err(std::io::Error::other("body over the limit"))
                    } else {
                        Ok(bytes)
                    }
                }
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

#[cfg(test)]
mod tests {
    use super::{oip_images, path_is_clean};

    #[test]
    fn an_infer_body_counts_its_images() {
        let body = |shape: &str| {
            format!(
                r#"{{"id":"x","inputs":[{{"name":"input","data":[0,0],"shape":{shape},"datatype":"FP32"}}]}}"#
            )
        };
        assert_eq!(oip_images(body("[7,784]").as_bytes()), 7);
        assert_eq!(oip_images(body("[3,1,28,28]").as_bytes()), 3);
        assert_eq!(oip_images(body("[-5,784]").as_bytes()), 1);
        assert_eq!(oip_images(body("[]").as_bytes()), 1);
        assert_eq!(oip_images(body("[99999999999,784]").as_bytes()), u32::MAX);
        assert_eq!(oip_images(b"{not json"), 1);
    }

    #[test]
    fn suspicious_paths_are_refused() {
        assert!(path_is_clean("/api/v1/predict"));
        assert!(path_is_clean("/admin/retrain/"));
        assert!(!path_is_clean("/admin/models/../../internal/x"));
        assert!(!path_is_clean("/admin/./report"));
        assert!(!path_is_clean("/admin//report"));
        assert!(!path_is_clean("/admin/models%2f..%2finternal"));
        assert!(!path_is_clean("/login%00"));
    }
}
