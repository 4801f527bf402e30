use actix_web::http::header::{HeaderName, HeaderValue};
use common::jwt::TokenError;
use common::{ApiError, ErrorCode};
use std::time::Duration;

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
        retry_after: Duration,
        headers: Vec<(&'static str, String)>,
    },
    #[error("Rate limits cannot be checked right now; try again shortly.")]
    RateLimitUnavailable,
    #[error("The request body stopped arriving for {0:?}; the request was cut off.")]
    BodyTimeout(Duration),
}

impl From<&GatewayError> for ApiError {
    fn from(e: &GatewayError) -> Self {
        let code = match e {
            GatewayError::NotFound { .. } => ErrorCode::NotFound,
            GatewayError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            GatewayError::InvalidPath => ErrorCode::InvalidPath,
            GatewayError::MissingToken => ErrorCode::MissingToken,
            GatewayError::Token(t) => return ApiError::from(*t),
            GatewayError::Forbidden => ErrorCode::Forbidden,
            GatewayError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            GatewayError::BadGateway(_) => ErrorCode::UpstreamUnavailable,
            GatewayError::GatewayTimeout(_) => ErrorCode::UpstreamTimeout,
            GatewayError::RateLimited {
                message,
                retry_after,
                headers,
            } => return rate_limited(message, *retry_after, headers),
            GatewayError::BodyTimeout(_) => ErrorCode::RequestTimeout,
            GatewayError::RateLimitUnavailable => ErrorCode::RateLimitUnavailable,
        };
        ApiError::new(code, e.to_string())
    }
}

common::respond_as_api_error!(GatewayError);

/// The 429 with its `RateLimit` headers and `Retry-After` (whole seconds, rounded up).
fn rate_limited(message: &str, retry_after: Duration, headers: &[(&str, String)]) -> ApiError {
    let mut error = ApiError::new(ErrorCode::RateLimited, message.to_owned());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            error = error.with_header(name, value);
        }
    }
    error.with_retry_after(retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    #[test]
    fn each_error_keeps_its_code_status_and_sentence() {
        use GatewayError::*;
        let (method, path) = ("GET".to_owned(), "/x".to_owned());
        let cases = [
            (
                NotFound {
                    method: method.clone(),
                    path: path.clone(),
                },
                404,
                "not_found",
            ),
            (MethodNotAllowed { method, path }, 405, "method_not_allowed"),
            (InvalidPath, 400, "invalid_path"),
            (MissingToken, 401, "missing_token"),
            (Token(TokenError::Expired), 401, "token_expired"),
            (Token(TokenError::Signature), 401, "invalid_token"),
            (Token(TokenError::KeysUnavailable), 503, "auth_unavailable"),
            (Forbidden, 403, "forbidden"),
            (PayloadTooLarge { limit: 1 }, 413, "payload_too_large"),
            (BadGateway("auth-svc"), 502, "upstream_unavailable"),
            (GatewayTimeout("auth-svc"), 504, "upstream_timeout"),
            (BodyTimeout(Duration::from_secs(1)), 408, "request_timeout"),
            (RateLimitUnavailable, 503, "rate_limit_unavailable"),
        ];
        common::testing::assert_answers(cases);
    }

    #[test]
    fn a_refusal_by_rate_limit_carries_its_headers() {
        let error = GatewayError::RateLimited {
            message: "Over 50 per hour.".into(),
            retry_after: Duration::from_millis(1500),
            headers: vec![("ratelimit", "\"default\";r=0;t=2".into())],
        };
        let response = error.error_response();
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(response.headers().get("retry-after").unwrap(), "2");
        assert_eq!(
            response.headers().get("ratelimit").unwrap(),
            "\"default\";r=0;t=2"
        );
    }
}
