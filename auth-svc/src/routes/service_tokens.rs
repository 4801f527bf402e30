//! `POST /token`: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4) by which the services
//! obtain their service tokens for the `/internal/` routes. Not in the gateway's route table.
//!
//! The client authenticates with HTTP Basic (`client_id:client_secret`) or with `client_id` and
//! `client_secret` in the form body, not both. Answers and errors are RFC 6749's (§5.1, §5.2),
//! the errors with this project's `msg` beside `error_description`.

// The steps of a grant return the refusal to answer as their error: an `HttpResponse`, built
// once on a path that ends the request, so its size does not matter.
#![allow(clippy::result_large_err)]

use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::ErrorCode;
use common::service_auth::ServiceClaims;
use serde_json::json;
use std::collections::HashMap;

/// Largest form body: a grant request is a few short fields.
const FORM_LIMIT: usize = 4 * 1024;

/// An RFC 6749 §5.2 error.
fn oauth_error(code: ErrorCode, description: &str) -> HttpResponse {
    let status = code.status();
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"predictloop\""),
        ));
    }
    response.json(json!({
        "error": code,
        "msg": description,
        "error_description": description,
    }))
}

fn invalid_request(description: &str) -> HttpResponse {
    oauth_error(ErrorCode::InvalidRequest, description)
}

/// A body that is not a form (wrong media type, too large, not decodable) is `invalid_request`.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(FORM_LIMIT)
        .error_handler(|err, _req| {
            let description = format!(
                "The body must be an application/x-www-form-urlencoded form of at most \
                 {FORM_LIMIT} bytes: {err}."
            );
            actix_web::error::InternalError::from_response(err, invalid_request(&description))
                .into()
        })
}

/// The client id and secret of an `Authorization: Basic` header, when there is one.
fn basic_credentials(req: &HttpRequest) -> Option<Result<(String, String), ()>> {
    let value = req.headers().get(header::AUTHORIZATION)?;
    let parsed = (|| {
        let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        Some((id.to_owned(), secret.to_owned()))
    })();
    Some(parsed.ok_or(()))
}

pub async fn issue(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    grant(&state, &req, &form.into_inner()).unwrap_or_else(|refusal| refusal)
}

/// The token for an authenticated client and a valid grant, or the OAuth error to answer.
fn grant(
    state: &AppState,
    req: &HttpRequest,
    form: &HashMap<String, String>,
) -> Result<HttpResponse, HttpResponse> {
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let (client_id, secret) = client_credentials(req, field("client_id"), field("client_secret"))?;
    let Some(client) = state.service_clients.authenticate(&client_id, &secret) else {
        tracing::warn!(
            client_id = ?client_id.chars().take(64).collect::<String>(),
            "service client authentication failed"
        );
        return Err(oauth_error(
            ErrorCode::InvalidClient,
            ErrorCode::InvalidClient.default_message(),
        ));
    };
    match field("grant_type") {
        None => return Err(invalid_request("grant_type is required.")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(oauth_error(
                ErrorCode::UnsupportedGrantType,
                ErrorCode::UnsupportedGrantType.default_message(),
            ));
        }
    }
    let granted = granted_scopes(&client.scopes, field("scope"))?;
    let claims = ServiceClaims::new(&state.issuer, &client.id, &granted, state.service_ttl);
    let token = state
        .key
        .sign(&claims)
        .map_err(|e| actix_web::ResponseError::error_response(&common::ApiError::internal(&e)))?;
    tracing::info!(client = %client.id, scope = %claims.scope, "service token issued");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": state.service_ttl.as_secs(),
            "scope": claims.scope,
        })))
}

/// The client's id and secret, from HTTP Basic or from the body (one way only).
fn client_credentials(
    req: &HttpRequest,
    body_id: Option<&str>,
    body_secret: Option<&str>,
) -> Result<(String, String), HttpResponse> {
    let body_credentials = match (body_id, body_secret) {
        (Some(id), Some(secret)) => Some((id.to_owned(), secret.to_owned())),
        (None, None) => None,
        _ => {
            return Err(oauth_error(
                ErrorCode::InvalidClient,
                "Send both client_id and client_secret, or use HTTP Basic authentication.",
            ));
        }
    };
    match (basic_credentials(req), body_credentials) {
        (Some(_), Some(_)) => Err(invalid_request(
            "Authenticate the client one way only: HTTP Basic or the body, not both.",
        )),
        (Some(Ok(creds)), None) | (None, Some(creds)) => Ok(creds),
        (Some(Err(())), None) | (None, None) => Err(oauth_error(
            ErrorCode::InvalidClient,
            "Client authentication is required: HTTP Basic with client_id:client_secret.",
        )),
    }
}

/// The scopes to grant: all the client's when none is requested, else the requested ones, each
/// of which the client must be allowed; never none.
fn granted_scopes(
    allowed: &[&'static str],
    requested: Option<&str>,
) -> Result<Vec<&'static str>, HttpResponse> {
    let granted: Vec<&'static str> = match requested {
        None => allowed.to_vec(),
        Some(requested) => {
            let mut granted = Vec::new();
            for scope in requested.split(' ').filter(|s| !s.is_empty()) {
                let Some(scope) = allowed.iter().find(|s| **s == scope) else {
                    return Err(oauth_error(
                        ErrorCode::InvalidScope,
                        ErrorCode::InvalidScope.default_message(),
                    ));
                };
                if !granted.contains(scope) {
                    granted.push(*scope);
                }
            }
            granted
        }
    };
    if granted.is_empty() {
        return Err(oauth_error(
            ErrorCode::InvalidScope,
            "This client is allowed no scope.",
        ));
    }
    Ok(granted)
}
