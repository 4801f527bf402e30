//! The JSON error form every service answers with: `{"error": CODE, "msg": SENTENCE}`.
//!
//! The code is the stable, machine-readable contract (one table of them: [`crate::codes`]); the
//! sentence is for people. A 500 says little to the client and logs the whole cause chain.

use crate::codes::ErrorCode;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// The JSON form of an error, as a client reads it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
    pub msg: String,
}

/// The JSON form of an error, as the server writes it.
#[derive(Serialize)]
struct Body<'a> {
    error: ErrorCode,
    msg: &'a str,
}

/// An error answer: a code of the [table](crate::codes) (which gives the status), a sentence,
/// and the headers some answers carry (`Retry-After`, `RateLimit`, `Allow`).
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    msg: Cow<'static, str>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// `code` with a sentence of its own (the code's default sentence: `ApiError::from(code)`).
    pub fn new(code: ErrorCode, msg: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            code,
            msg: msg.into(),
            headers: Vec::new(),
        }
    }

    /// The answer with one more header (replacing one of the same name).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value));
        self
    }

    /// The answer with `Retry-After`: `wait` in whole seconds, rounded up, at least 1.
    pub fn with_retry_after(self, wait: Duration) -> Self {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        self.with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    /// An unexpected failure: the cause and its whole `source()` chain go to the log, the
    /// client gets the generic sentence of `internal_error`.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %Chain(cause), "internal error");
        ApiError::from(ErrorCode::InternalError)
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
    pub fn code(&self) -> ErrorCode {
        self.code
    }
    pub fn msg(&self) -> &str {
        &self.msg
    }
    /// The value of a header this answer carries besides its body's.
    pub fn header(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl From<ErrorCode> for ApiError {
    /// The code with its default sentence.
    fn from(code: ErrorCode) -> Self {
        ApiError::new(code, code.default_message())
    }
}

/// An error and its causes for a log line: `a: b: c`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status().as_u16(), self.code, self.msg)
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        response.json(Body {
            error: self.code,
            msg: &self.msg,
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
                tracing::warn!(error = %Chain(e), "database unavailable");
                ApiError::from(ErrorCode::DatabaseUnavailable)
            }
            e if e.is_unstorable_text() => ApiError::from(ErrorCode::InvalidText),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A log sink for one test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[actix_web::test]
    async fn an_internal_error_logs_its_cause_chain_and_tells_the_client_nothing_of_it() {
        let cause = anyhow::anyhow!("connection reset")
            .context("cannot read the key file")
            .context("cannot sign the token");
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let error =
            tracing::subscriber::with_default(subscriber, || ApiError::internal(cause.as_ref()));
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(
            log.contains("error=cannot sign the token: cannot read the key file: connection reset"),
            "{log}"
        );
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error, "internal_error");
        assert_eq!(body.msg, ErrorCode::InternalError.default_message());
    }

    #[actix_web::test]
    async fn an_answer_carries_its_code_status_sentence_and_headers() {
        let error = ApiError::new(ErrorCode::Overloaded, "Busy.")
            .with_retry_after(Duration::from_millis(2100))
            .with_header(header::ALLOW, HeaderValue::from_static("GET"));
        assert_eq!(error.header(&header::RETRY_AFTER).unwrap(), "3");
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "3");
        assert_eq!(response.headers().get(header::ALLOW).unwrap(), "GET");
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (body.error.as_str(), body.msg.as_str()),
            ("overloaded", "Busy.")
        );

        let default = ApiError::from(ErrorCode::UriTooLong);
        assert_eq!(default.status(), StatusCode::URI_TOO_LONG);
        assert_eq!(default.msg(), "The request target is too long.");
        // Retry-After is at least a second.
        let soon = ApiError::from(ErrorCode::RateLimited).with_retry_after(Duration::ZERO);
        assert_eq!(soon.header(&header::RETRY_AFTER).unwrap(), "1");
    }
}
