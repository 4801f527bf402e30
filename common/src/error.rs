//! The JSON error form every service answers with: `{"error": CODE, "msg": SENTENCE}`.
//!
//! The code is the stable, machine-readable contract; the sentence is for people. A 5xx says
//! little to the client and logs the whole cause chain.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
    pub msg: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    msg: Cow<'static, str>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        msg: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError {
            status,
            code: code.into(),
            msg: msg.into(),
        }
    }

    pub fn bad_request(code: &'static str, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, msg)
    }
    pub fn unauthorized(code: &'static str, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, msg)
    }
    pub fn forbidden(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", msg)
    }
    pub fn not_found(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", msg)
    }
    pub fn conflict(code: &'static str, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, msg)
    }
    pub fn unprocessable(code: &'static str, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, msg)
    }
    pub fn unavailable(code: &'static str, msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, msg)
    }

    /// An unexpected failure: the cause goes to the log, the client gets a generic sentence.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "The server failed to handle the request; it has been logged.",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub fn code(&self) -> &str {
        &self.code
    }
    pub fn msg(&self) -> &str {
        &self.msg
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.msg)
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody {
            error: self.code.to_string(),
            msg: self.msg.to_string(),
        })
    }
}

#[cfg(feature = "db")]
impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::from(&e)
    }
}

#[cfg(feature = "db")]
impl From<&crate::db::DbError> for ApiError {
    fn from(e: &crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::PoolTimeout(_) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::unavailable(
                    "database_unavailable",
                    "The database is unavailable; try again shortly.",
                )
            }
            e if e.is_unstorable_text() => ApiError::bad_request(
                "invalid_text",
                "Text in the request may not contain NUL characters.",
            ),
            other => ApiError::internal(other),
        }
    }
}

/// Answers a service's error type as the [`ApiError`] it converts into (by reference): the one
/// `ResponseError` every service's error shares, so that a route can return its own error type.
#[macro_export]
macro_rules! respond_as_api_error {
    ($ty:ty) => {
        impl actix_web::ResponseError for $ty {
            fn status_code(&self) -> actix_web::http::StatusCode {
                $crate::ApiError::from(self).status()
            }
            fn error_response(&self) -> actix_web::HttpResponse {
                actix_web::ResponseError::error_response(&$crate::ApiError::from(self))
            }
        }
    };
}
