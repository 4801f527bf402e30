//! What every answer of the gateway gets, whatever the route: CORS by allowlist, security
//! headers, an `X-Request-Id`, and limits on the request line and headers (checked before any
//! routing).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use common::ApiError;
use common::config::Env;

#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    /// Origins (`scheme://host[:port]`) whose pages may call the API from a browser.
    pub cors_origins: Vec<String>,
    pub max_uri_bytes: usize,
    /// The request's header names and values together.
    pub max_header_bytes: usize,
}

impl EdgeConfig {
    pub fn read(env: &mut Env) -> Self {
        let cors_origins: Vec<String> = env
            .or("CORS_ALLOWED_ORIGINS", String::new())
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        for origin in &cors_origins {
            if origin == "*" {
                env.problem("CORS_ALLOWED_ORIGINS: `*` is not allowed; list the origins");
            } else if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin["https://".len().min(origin.len())..].contains('/')
            {
                env.problem(format!(
                    "CORS_ALLOWED_ORIGINS: `{origin}` is not an origin like https://app.example.com"
                ));
            }
        }
        EdgeConfig {
            cors_origins,
            max_uri_bytes: env.in_range("MAX_URI_BYTES", 8 * 1024, 256..=64 * 1024),
            max_header_bytes: env.in_range("MAX_HEADER_BYTES", 16 * 1024, 1024..=30 * 1024),
        }
    }

    pub fn defaults() -> Self {
        EdgeConfig {
            cors_origins: vec![],
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.cors_origins.iter().any(|o| o == origin)
    }
}

/// Headers a browser may send cross-origin, and the ones its scripts may read.
const ALLOWED_HEADERS: &str = "authorization, content-type, idempotency-key, x-request-id";
const EXPOSED_HEADERS: &str = "ratelimit, ratelimit-policy, retry-after, x-request-id";
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";

/// Security headers for every answer (set only where the answer has none of its own: the web
/// pages bring [`PAGE_CONTENT_SECURITY_POLICY`] and their cache policy).
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// The web pages' policy: scripts, styles and images from this origin only (drawings and dropped
/// images are `data:`/`blob:` URLs), API calls and the WebSocket to this host only. API answers
/// keep the policy that allows nothing.
pub const PAGE_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

fn refuse(status: StatusCode, code: &'static str, msg: String) -> HttpResponse {
    ApiError::new(status, code, msg).error_response()
}

/// The middleware: `App::wrap(from_fn(edge::check))`, with [`EdgeConfig`] as app data.
pub async fn check(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let config = req
        .app_data::<web::Data<EdgeConfig>>()
        .map(|c| c.get_ref().clone())
        .unwrap_or_else(EdgeConfig::defaults);
    let uri_len = req.uri().to_string().len();
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allowed_origin = origin
        .as_deref()
        .filter(|o| config.allows(o))
        .map(str::to_owned);

    let early = if uri_len > config.max_uri_bytes {
        Some(refuse(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "The request target may be at most {} bytes.",
                config.max_uri_bytes
            ),
        ))
    } else if header_bytes > config.max_header_bytes {
        Some(refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "The request headers may be at most {} bytes in all.",
                config.max_header_bytes
            ),
        ))
    } else if req.method() == Method::OPTIONS
        && origin.is_some()
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        // A CORS preflight: answered here, never proxied.
        Some(match &allowed_origin {
            Some(o) => HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, o.as_str()))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
                .insert_header((header::VARY, "Origin"))
                .finish(),
            None => refuse(
                StatusCode::FORBIDDEN,
                "cors_origin_not_allowed",
                "This origin may not call the API from a browser.".to_owned(),
            ),
        })
    } else {
        None
    };

    let request_id = crate::proxy::request_id(req.request());
    req.extensions_mut()
        .insert(crate::proxy::RequestId(request_id.clone()));
    // The request's span (trace_http's, around this middleware) logs the id the answer carries.
    tracing::Span::current().record("request_id", request_id.as_str());

    let mut response = match early {
        Some(answer) => req.into_response(answer).map_into_right_body(),
        None => next.call(req).await?.map_into_left_body(),
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    // Every answer, the gateway's own refusals included, names the request it answers.
    if !headers.contains_key(crate::proxy::REQUEST_ID)
        && let Ok(value) = HeaderValue::from_str(&request_id)
    {
        headers.insert(HeaderName::from_static(crate::proxy::REQUEST_ID), value);
    }
    if let Some(origin) = allowed_origin
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
    if origin.is_some() {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn origins_must_be_listed_one_by_one() {
        let mut env = Env::from_map(
            [(
                "CORS_ALLOWED_ORIGINS".to_owned(),
                "https://app.example.com, http://localhost:5173/".to_owned(),
            )]
            .into(),
        );
        let config = EdgeConfig::read(&mut env);
        env.finish().unwrap();
        assert!(config.allows("https://app.example.com"));
        assert!(config.allows("http://localhost:5173"));
        assert!(!config.allows("https://evil.example.com"));
        for bad in ["*", "app.example.com", "https://app.example.com/path"] {
            let mut env =
                Env::from_map([("CORS_ALLOWED_ORIGINS".to_owned(), bad.to_owned())].into());
            EdgeConfig::read(&mut env);
            assert!(env.finish().is_err(), "{bad}");
        }
    }
}
