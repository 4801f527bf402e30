//! The fourth step of the HTTP path (after the edge, routing and auth): the rate limits.
//!
//! As in the prototype (Flask-Limiter), a route with limits of its own uses only those; every
//! other route gets the default limits; each route counts separately, per client. The client is
//! the verified token's subject, else the address the edge settled. Answers carry the
//! `RateLimit-Policy` / `RateLimit` headers of the IETF httpapi draft.
//!
//! - [`rules`]: which limits apply (the configuration), [`parse`]: its variables' text;
//! - [`key`]: whose count a request is, and how much it is worth;
//! - [`store`]: the counts in the shared store, and its failure mode;
//! - [`response`]: the headers and refusals.

pub mod key;
pub mod parse;
pub mod response;
pub mod rules;
pub mod store;

pub use key::{oip_images, oip_infer_model};
pub use parse::{parse_limits, parse_oip_quotas, parse_route_limits};
pub use response::{LimitHeaders, Verdict};
pub use rules::RateLimitConfig;
pub use store::RateLimiter;

use crate::error::GatewayError;
use crate::proxy::Proxy;
use crate::routes::Route;
use actix_web::{HttpRequest, HttpResponse, web};
use std::sync::Arc;

/// Counts the request against its limits, then hands it to the proxy.
pub struct RateLimiting {
    limiter: Arc<RateLimiter>,
    next: Proxy,
}

impl RateLimiting {
    pub fn new(limiter: Arc<RateLimiter>, next: Proxy) -> Self {
        RateLimiting { limiter, next }
    }

    pub async fn handle(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        route: &Route,
    ) -> Result<HttpResponse, GatewayError> {
        let path = req.path();
        let quota_route = self.limiter.quota_route(&route.path, path);
        let client = key::client(req);
        // An infer request counts once per image it carries, against its model's predict quota:
        // one here, so that a client with nothing left is refused before sending its body; the
        // rest once the body's shape is read, before it is forwarded.
        let mut headers = self
            .limiter
            .check_n(quota_route, path, &client, 1, 1)
            .await
            .admit()?;
        let mut body = self.next.accept_body(req, payload, route)?;
        if key::is_infer(req) {
            body = body.read_whole().await?;
            let images = body.whole().map_or(1, |bytes| oip_images(bytes));
            if images > 1 {
                headers = self
                    .limiter
                    .check_n(quota_route, path, &client, images - 1, images)
                    .await
                    .admit()?;
            }
        }
        self.next.forward(req, route, body, headers).await
    }
}
