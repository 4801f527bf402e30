//! CORS by allowlist: a preflight from a listed origin is answered here (never proxied), and
//! every answer to a listed origin says which headers its scripts may read.

use actix_web::HttpResponse;
use actix_web::ResponseError;
use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use common::{ApiError, ErrorCode};

/// Headers a browser may send cross-origin, and the ones its scripts may read.
const ALLOWED_HEADERS: &str = "authorization, content-type, idempotency-key, x-request-id";
const EXPOSED_HEADERS: &str = "ratelimit, ratelimit-policy, retry-after, x-request-id";
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";

/// The request's `Origin`, when it sends one.
pub fn origin(req: &ServiceRequest) -> Option<String> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The answer to a CORS preflight (`OPTIONS` with an origin and a method to ask about), with
/// `allowed` the request's origin when it is listed; other requests get none.
pub fn preflight(
    req: &ServiceRequest,
    has_origin: bool,
    allowed: Option<&str>,
) -> Option<HttpResponse> {
    let is_preflight = req.method() == Method::OPTIONS
        && has_origin
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if !is_preflight {
        return None;
    }
    Some(match allowed {
        Some(o) => HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, o))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .insert_header((header::VARY, "Origin"))
            .finish(),
        None => ApiError::from(ErrorCode::CorsOriginNotAllowed).error_response(),
    })
}

/// The CORS headers of any answer: the listed origin and what its scripts may read, and
/// `Vary: Origin` whenever the request named an origin.
pub fn stamp(headers: &mut HeaderMap, has_origin: bool, allowed: Option<String>) {
    if let Some(origin) = allowed
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
    if has_origin {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}
