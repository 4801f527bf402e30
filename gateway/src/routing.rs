//! The second step of the HTTP path (after the edge): which route of the table serves the
//! request. A path the table does not know is 404, a method the route does not take 405.

use crate::auth::Auth;
use crate::error::GatewayError;
use crate::routes::{Route, RouteTable};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

/// Finds the request's route, then hands the request to auth.
pub struct Routing {
    table: RouteTable,
    next: Auth,
}

impl Routing {
    pub fn new(table: RouteTable, next: Auth) -> Self {
        Routing { table, next }
    }

    pub async fn handle(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
    ) -> Result<HttpResponse, GatewayError> {
        let route = self.resolve(req)?;
        self.next.handle(req, payload, route).await
    }

    fn resolve(&self, req: &HttpRequest) -> Result<&Route, GatewayError> {
        let path = req.path();
        if !path_is_clean(path) {
            return Err(GatewayError::InvalidPath);
        }
        let method = req.method().as_str();
        match self.table.lookup(path) {
            Some(route) if route.allows(method) => {
                req.extensions_mut()
                    .insert(common::metrics::RouteLabel(route.path.clone()));
                Ok(route)
            }
            // A route with another method, or a path the gateway answers itself (`/health`,
            // `/ws`, ...) with another method.
            Some(_) => Err(not_allowed(req)),
            None if req.resource_map().has_resource(path) => Err(not_allowed(req)),
            None => Err(GatewayError::NotFound {
                method: method.to_owned(),
                path: path.to_owned(),
            }),
        }
    }
}

fn not_allowed(req: &HttpRequest) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    }
}

/// The default service: every request no other service took goes through the table.
pub async fn handler(
    req: HttpRequest,
    payload: web::Payload,
    routing: web::Data<Routing>,
) -> Result<HttpResponse, GatewayError> {
    routing.handle(&req, payload).await
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

#[cfg(test)]
mod tests {
    use super::path_is_clean;

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
