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
        }
    }
}

impl ResponseError for GatewayError {
    fn status_code(&self) -> StatusCode {
        ApiError::from(self).status()
    }
    fn error_response(&self) -> HttpResponse {
        ApiError::from(self).error_response()
    }
}
