use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use common::ApiError;
use common::jwt::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("No route for {method} {path}.")]
    NotFound { method: String, path: String },
    #[error("{method} is not allowed on {path}.")]
    MethodNotAllowed { method: String, path: String },
    #[error(
        "The request path is not acceptable (dot segments, empty segments or encoded slashes)."
    )]
    InvalidPath,
    #[error("Token de acceso requerido: send `Authorization: Bearer <token>`.")]
    MissingToken,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("Acceso no autorizado: this route is for admins.")]
    Forbidden,
    #[error("The body is larger than the {limit} bytes this route accepts.")]
    PayloadTooLarge { limit: usize },
    #[error("{0} is unavailable.")]
    BadGateway(&'static str),
    #[error("{0} did not answer in time.")]
    GatewayTimeout(&'static str),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
        headers: Vec<(&'static str, String)>,
    },
    #[error("Rate limits cannot be checked right now; try again shortly.")]
    RateLimitUnavailable,
    #[error("The request body stopped arriving for {0:?}; the request was cut off.")]
    BodyTimeout(std::time::Duration),
}

impl From<&GatewayError> for ApiError {
    fn from(e: &GatewayError) -> Self {
        let msg = e.to_string();
        match e {
            GatewayError::NotFound { .. } => ApiError::not_found(msg),
            GatewayError::MethodNotAllowed { .. } => {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", msg)
            }
            GatewayError::InvalidPath => ApiError::bad_request("invalid_path", msg),
            GatewayError::MissingToken => ApiError::unauthorized("missing_token", msg),
            GatewayError::Token(t) => ApiError::from(*t),
            GatewayError::Forbidden => ApiError::forbidden(msg),
            GatewayError::PayloadTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", msg)
            }
            GatewayError::BadGateway(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "upstream_unavailable", msg)
            }
            GatewayError::GatewayTimeout(_) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", msg)
            }
            GatewayError::RateLimited { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", msg)
            }
            GatewayError::BodyTimeout(_) => {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", msg)
            }
            GatewayError::RateLimitUnavailable => {
                ApiError::unavailable("rate_limit_unavailable", msg)
            }
        }
    }
}

impl ResponseError for GatewayError {
    fn status_code(&self) -> StatusCode {
        ApiError::from(self).status()
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = ApiError::from(self).error_response();
        if let GatewayError::RateLimited {
            retry_after,
            headers,
            ..
        } = self
        {
            let wait = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let extra = headers
                .iter()
                .map(|(n, v)| (*n, v.clone()))
                .chain(std::iter::once(("retry-after", wait.to_string())));
            for (name, value) in extra {
                if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&value) {
                    response.headers_mut().insert(
                        actix_web::http::header::HeaderName::from_static(name),
                        value,
                    );
                }
            }
        }
        response
    }
}
