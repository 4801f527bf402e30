//! The third step of the HTTP path (after the edge and routing): who may call the route. A
//! verified token's claims go into the request's extensions for the rate limits to read.

use crate::error::GatewayError;
use crate::ratelimit::RateLimiting;
use crate::routes::{Access, Route};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use common::jwt::{Claims, JwtVerifier, bearer_token};
use std::sync::Arc;

/// Checks the route's access, then hands the request to the rate limits.
pub struct Auth {
    verifier: Arc<JwtVerifier>,
    next: RateLimiting,
}

impl Auth {
    pub fn new(verifier: Arc<JwtVerifier>, next: RateLimiting) -> Self {
        Auth { verifier, next }
    }

    pub async fn handle(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        route: &Route,
    ) -> Result<HttpResponse, GatewayError> {
        if route.access != Access::Public {
            let Verified { claims, .. } = verify(&self.verifier, req, false).await?;
            if route.access == Access::Admin && !claims.is_admin() {
                return Err(GatewayError::Forbidden);
            }
            req.extensions_mut().insert(claims);
        }
        self.next.handle(req, payload, route).await
    }
}

/// A request's bearer token and its verified claims.
pub struct Verified {
    pub token: String,
    pub claims: Claims,
}

/// The request's token (`Authorization: Bearer`, or `?access_token=` when `from_query`),
/// verified: 401 without one or with a bad one.
pub async fn verify(
    verifier: &JwtVerifier,
    req: &HttpRequest,
    from_query: bool,
) -> Result<Verified, GatewayError> {
    let token = bearer_token(req, from_query).ok_or(GatewayError::MissingToken)?;
    let claims = verifier.verify(&token).await?;
    Ok(Verified { token, claims })
}
