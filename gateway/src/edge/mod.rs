//! The first step of every request, whatever the route: limits on the request line and headers
//! (checked before any routing), CORS by allowlist, the request's id, and who the client is
//! ([`ClientAddress`], settled once here for every later step); on the way out, security headers
//! and the `X-Request-Id` on every answer.

pub mod client_address;
mod cors;

pub use client_address::Cidr;

use crate::request::{ClientAddress, REQUEST_ID, RequestId};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use common::config::Env;
use common::{ApiError, ErrorCode};

#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    /// Origins (`scheme://host[:port]`) whose pages may call the API from a browser.
    pub cors_origins: Vec<String>,
    pub max_uri_bytes: usize,
    /// The request's header names and values together.
    pub max_header_bytes: usize,
    /// Proxies in front of the gateway whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
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
            trusted_proxies: read_trusted_proxies(env),
        }
    }

    pub fn defaults() -> Self {
        EdgeConfig {
            cors_origins: vec![],
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            trusted_proxies: vec![],
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.cors_origins.iter().any(|o| o == origin)
    }
}

fn read_trusted_proxies(env: &mut Env) -> Vec<Cidr> {
    env.or("TRUSTED_PROXIES", String::new())
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|s| match Cidr::parse(s) {
            Some(c) => Some(c),
            None => {
                env.problem(format!(
                    "TRUSTED_PROXIES: `{s}` is not an IP address or CIDR"
                ));
                None
            }
        })
        .collect()
}

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

/// The middleware: `App::wrap(from_fn(edge::check))`, with [`EdgeConfig`] as app data.
pub async fn check(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let config = req
        .app_data::<web::Data<EdgeConfig>>()
        .cloned()
        .unwrap_or_else(|| web::Data::new(EdgeConfig::defaults()));
    let origin = cors::origin(&req);
    let allowed_origin = origin
        .as_deref()
        .filter(|o| config.allows(o))
        .map(str::to_owned);
    let early = over_limits(&req, &config)
        .or_else(|| cors::preflight(&req, origin.is_some(), allowed_origin.as_deref()));
    let request_id = settle(&req, &config);

    let mut response = match early {
        Some(answer) => req.into_response(answer).map_into_right_body(),
        None => next.call(req).await?.map_into_left_body(),
    };
    let headers = response.headers_mut();
    stamp(headers, &request_id);
    cors::stamp(headers, origin.is_some(), allowed_origin);
    Ok(response)
}

/// The refusal of a request line or headers over their limits.
fn over_limits(req: &ServiceRequest, config: &EdgeConfig) -> Option<HttpResponse> {
    let uri_len = req.uri().to_string().len();
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let (code, msg) = if uri_len > config.max_uri_bytes {
        (
            ErrorCode::UriTooLong,
            format!(
                "The request target may be at most {} bytes.",
                config.max_uri_bytes
            ),
        )
    } else if header_bytes > config.max_header_bytes {
        (
            ErrorCode::HeadersTooLarge,
            format!(
                "The request headers may be at most {} bytes in all.",
                config.max_header_bytes
            ),
        )
    } else {
        return None;
    };
    Some(ApiError::new(code, msg).error_response())
}

/// Settles the request's id and its client's address, once, in the request's extensions.
fn settle(req: &ServiceRequest, config: &EdgeConfig) -> String {
    let request_id = crate::request::request_id(req.request());
    let client = client_address::of_request(req.request(), &config.trusted_proxies);
    let mut extensions = req.extensions_mut();
    extensions.insert(RequestId(request_id.clone()));
    extensions.insert(ClientAddress(client));
    // The request's span (trace_http's, around this middleware) logs the id the answer carries.
    tracing::Span::current().record("request_id", request_id.as_str());
    request_id
}

/// The security headers an answer lacks, and the request's id unless the answer names one.
fn stamp(headers: &mut HeaderMap, request_id: &str) {
    for (name, value) in SECURITY_HEADERS {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    // Every answer, the gateway's own refusals included, names the request it answers.
    if !headers.contains_key(REQUEST_ID)
        && let Ok(value) = HeaderValue::from_str(request_id)
    {
        headers.insert(HeaderName::from_static(REQUEST_ID), value);
    }
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

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let var =
            |value: &str| Env::from_map([("TRUSTED_PROXIES".to_owned(), value.to_owned())].into());
        let mut env = var("10.0.0.0/8, ::1");
        assert_eq!(EdgeConfig::read(&mut env).trusted_proxies.len(), 2);
        env.finish().unwrap();
        let mut env = var("10.0.0.0/8, proxy.local");
        EdgeConfig::read(&mut env);
        assert!(
            env.finish()
                .unwrap_err()
                .to_string()
                .contains("TRUSTED_PROXIES")
        );
    }
}
