//! Every error code any predictloop service answers with, in one table: its wire string, its
//! HTTP status, a default sentence, and whether a client of the public API can meet it.
//!
//! A code is the stable, machine-readable part of an error (`{"error": CODE, "msg": SENTENCE}`)
//! and has exactly one status. Codes that only the `/internal/` routes or the management ports
//! answer are marked `Internal`: they are not part of the public API (gateway/openapi.json and
//! docs/api.md list the public ones, docs/internal-plane.md the others, and tests hold the
//! documents to this table). The WebSocket `error` events carry codes of this table too; those
//! that only such an event carries (`Event`) have the status an HTTP answer for the same fault
//! would have.

use actix_web::http::StatusCode;

/// Where a code can be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// On a public route (through the gateway); maybe in a WebSocket `error` event too.
    Public,
    /// Only in a WebSocket `error` event (public: the admins' socket is).
    Event,
    /// Only on `/internal/` routes or a management port.
    Internal,
}

/// Declares [`ErrorCode`] from the table: one row per code, `Variant = "wire", STATUS, Reach,
/// "Default sentence.";` (`STATUS` a `StatusCode` constant).
macro_rules! error_codes {
    ($(
        $(#[$attr:meta])*
        $variant:ident = $wire:literal, $status:ident, $reach:ident, $message:literal;
    )*) => {
        /// A machine-readable error code: see the [module](self) and its table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$attr])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order (by status).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it goes on the wire (snake_case).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                }
            }

            /// The HTTP status every answer with this code has.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }

            /// The sentence an answer carries when its maker gives none of its own.
            pub const fn default_message(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $message,)*
                }
            }

            /// Whether a client of the public API can meet this code (else only callers of
            /// `/internal/` routes and management ports can).
            pub const fn is_public(self) -> bool {
                !matches!(self.reach(), Reach::Internal)
            }

            /// Whether only WebSocket `error` events carry this code (never an HTTP answer).
            pub const fn is_event_only(self) -> bool {
                matches!(self.reach(), Reach::Event)
            }

            const fn reach(self) -> Reach {
                match self {
                    $(ErrorCode::$variant => Reach::$reach,)*
                }
            }
        }
    };
}

error_codes! {
    // 400 Bad Request
    MissingField = "missing_field", BAD_REQUEST, Public,
        "A required field is missing.";
    InvalidJson = "invalid_json", BAD_REQUEST, Public,
        "The body is not valid JSON.";
    InvalidBody = "invalid_body", BAD_REQUEST, Public,
        "The request body could not be read.";
    InvalidQuery = "invalid_query", BAD_REQUEST, Public,
        "The query string is invalid.";
    InvalidPath = "invalid_path", BAD_REQUEST, Public,
        "The request path is not acceptable (dot segments, empty segments or encoded slashes).";
    /// A NUL character in text the database would store.
    InvalidText = "invalid_text", BAD_REQUEST, Public,
        "Text in the request may not contain NUL characters.";
    MissingFile = "missing_file", BAD_REQUEST, Public,
        "The multipart field `file` is missing.";
    NoFileSelected = "no_file_selected", BAD_REQUEST, Public,
        "The `file` field names no file.";
    InvalidMultipart = "invalid_multipart", BAD_REQUEST, Public,
        "The request body is not valid multipart/form-data.";
    CorruptImage = "corrupt_image", BAD_REQUEST, Public,
        "The image is corrupt.";
    EmptyImage = "empty_image", BAD_REQUEST, Public,
        "The image is blank: no digit found.";
    /// Over the decoding budget (decompression bombs): refused from the image's header.
    ImageTooLarge = "image_too_large", BAD_REQUEST, Public,
        "The image is larger than the decoding limits accept.";
    InvalidTensor = "invalid_tensor", BAD_REQUEST, Public,
        "The input tensor is invalid.";
    /// A retrain job for a model that does not exist.
    UnknownModel = "unknown_model", BAD_REQUEST, Public,
        "There is no model of that name to retrain.";
    InvalidIdempotencyKey = "invalid_idempotency_key", BAD_REQUEST, Public,
        "The Idempotency-Key header is invalid.";
    WebsocketRequired = "websocket_required", BAD_REQUEST, Public,
        "GET /ws is a WebSocket: send an upgrade request (`Connection: Upgrade`, `Upgrade: websocket`).";
    InvalidLastEventId = "invalid_last_event_id", BAD_REQUEST, Public,
        "`last_event_id` must be the id (a UUID) of the last event received.";
    /// A frame that is not a JSON text message.
    InvalidMessage = "invalid_message", BAD_REQUEST, Event,
        "Messages are JSON text frames such as {\"event\":\"join_admin\"}.";
    UnknownEvent = "unknown_event", BAD_REQUEST, Event,
        "Unknown event: the server understands `join_admin` and `resume`.";
    /// OAuth 2.0 (RFC 6749 §5.2), `POST /token`.
    InvalidRequest = "invalid_request", BAD_REQUEST, Internal,
        "The token request is malformed.";
    /// OAuth 2.0 (RFC 6749 §5.2), `POST /token`.
    UnsupportedGrantType = "unsupported_grant_type", BAD_REQUEST, Internal,
        "Only the client_credentials grant is supported here.";
    /// OAuth 2.0 (RFC 6749 §5.2), `POST /token`.
    InvalidScope = "invalid_scope", BAD_REQUEST, Internal,
        "A requested scope is unknown or not allowed to this client.";

    // 401 Unauthorized
    MissingToken = "missing_token", UNAUTHORIZED, Public,
        "Token de acceso requerido: send `Authorization: Bearer <token>`.";
    InvalidToken = "invalid_token", UNAUTHORIZED, Public,
        "The token is invalid.";
    TokenExpired = "token_expired", UNAUTHORIZED, Public,
        "The token has expired.";
    InvalidCredentials = "invalid_credentials", UNAUTHORIZED, Public,
        "Invalid username or password.";
    InvalidRefreshToken = "invalid_refresh_token", UNAUTHORIZED, Public,
        "The refresh token is invalid or expired.";
    RefreshTokenReused = "refresh_token_reused", UNAUTHORIZED, Public,
        "The refresh token was already used; every session of that login has been revoked.";
    /// OAuth 2.0 (RFC 6749 §5.2), `POST /token`.
    InvalidClient = "invalid_client", UNAUTHORIZED, Internal,
        "Unknown client or wrong client secret.";

    // 403 Forbidden
    Forbidden = "forbidden", FORBIDDEN, Public,
        "Acceso no autorizado: this route is for admins.";
    CorsOriginNotAllowed = "cors_origin_not_allowed", FORBIDDEN, Public,
        "This origin may not call the API from a browser.";

    // 404 Not Found
    NotFound = "not_found", NOT_FOUND, Public,
        "No such resource.";

    // 405 Method Not Allowed
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, Public,
        "This method is not allowed on this path.";

    // 408 Request Timeout
    RequestTimeout = "request_timeout", REQUEST_TIMEOUT, Public,
        "The request body stopped arriving; the request was cut off.";

    // 409 Conflict
    UsernameTaken = "username_taken", CONFLICT, Public,
        "That user name is taken.";
    /// A conditional promotion whose version is no longer the active one.
    ActiveVersionChanged = "active_version_changed", CONFLICT, Internal,
        "The active version changed meanwhile; not promoted.";
    /// An admin action on a rollout that has ended.
    RolloutClosed = "rollout_closed", CONFLICT, Public,
        "The rollout has ended; nothing more can be done to it.";

    // 413 Payload Too Large
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, Public,
        "The body is larger than this route accepts.";

    // 414 URI Too Long
    UriTooLong = "uri_too_long", URI_TOO_LONG, Public,
        "The request target is too long.";

    // 415 Unsupported Media Type
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, Public,
        "The body must be JSON, sent with `Content-Type: application/json`.";
    NotAnImage = "not_an_image", UNSUPPORTED_MEDIA_TYPE, Public,
        "Not an image: PNG, JPEG, BMP, GIF and WebP are accepted.";

    // 422 Unprocessable Content
    InvalidField = "invalid_field", UNPROCESSABLE_ENTITY, Public,
        "The JSON body has a field of the wrong type or value.";
    ValidationFailed = "validation_failed", UNPROCESSABLE_ENTITY, Public,
        "A field's value is not acceptable.";
    UnknownPrediction = "unknown_prediction", UNPROCESSABLE_ENTITY, Public,
        "No prediction of yours with that id is known; it may have expired.";
    PredictionMismatch = "prediction_mismatch", UNPROCESSABLE_ENTITY, Public,
        "`prediction` is not the prediction that was served.";
    IdempotencyKeyReused = "idempotency_key_reused", UNPROCESSABLE_ENTITY, Public,
        "This Idempotency-Key was already used for a different request.";
    /// A model file ONNX Runtime cannot load, or of the wrong shape (registration).
    InvalidArtifact = "invalid_artifact", UNPROCESSABLE_ENTITY, Internal,
        "The model file cannot be served: it does not load, or does not map 784 pixels to 10 classes.";

    // 429 Too Many Requests
    RateLimited = "rate_limited", TOO_MANY_REQUESTS, Public,
        "Too many requests; try again after `Retry-After` seconds.";
    TooManySockets = "too_many_sockets", TOO_MANY_REQUESTS, Public,
        "You hold as many WebSockets as a user may; close one first.";

    // 431 Request Header Fields Too Large
    HeadersTooLarge = "headers_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE, Public,
        "The request headers are too large.";

    // 500 Internal Server Error
    InternalError = "internal_error", INTERNAL_SERVER_ERROR, Public,
        "The server failed to handle the request; it has been logged.";

    // 502 Bad Gateway
    UpstreamUnavailable = "upstream_unavailable", BAD_GATEWAY, Public,
        "An upstream service is unavailable.";
    /// A service got an unexpected answer from another one.
    BadUpstream = "bad_upstream", BAD_GATEWAY, Public,
        "An upstream service answered something unexpected.";

    // 503 Service Unavailable
    /// The signing keys (JWKS) cannot be fetched.
    AuthUnavailable = "auth_unavailable", SERVICE_UNAVAILABLE, Public,
        "The signing keys cannot be fetched right now.";
    DatabaseUnavailable = "database_unavailable", SERVICE_UNAVAILABLE, Public,
        "The database is unavailable; try again shortly.";
    /// `/ready` (with `checks`) and the Open Inference Protocol's readiness.
    NotReady = "not_ready", SERVICE_UNAVAILABLE, Public,
        "A dependency of this service is unavailable.";
    ModelUnavailable = "model_unavailable", SERVICE_UNAVAILABLE, Public,
        "The model is not loaded yet.";
    StoreUnavailable = "store_unavailable", SERVICE_UNAVAILABLE, Public,
        "The prediction store is unavailable; try again shortly.";
    /// Every preprocessing place is taken (with `Retry-After`).
    Overloaded = "overloaded", SERVICE_UNAVAILABLE, Public,
        "Too many images are being processed; try again shortly.";
    TooManyConnections = "too_many_connections", SERVICE_UNAVAILABLE, Public,
        "This server has as many WebSockets open as it accepts; try again later.";
    QueueUnavailable = "queue_unavailable", SERVICE_UNAVAILABLE, Public,
        "The job queue is unavailable; try again shortly.";
    RateLimitUnavailable = "rate_limit_unavailable", SERVICE_UNAVAILABLE, Public,
        "Rate limits cannot be checked right now; try again shortly.";
    PredictionServiceUnavailable = "prediction_service_unavailable", SERVICE_UNAVAILABLE, Public,
        "The prediction service is unavailable; try again shortly.";
    WebUnavailable = "web_unavailable", SERVICE_UNAVAILABLE, Public,
        "This page is not available: the server was started without its web files.";
    /// Missed events are gone from the bounded history, or the history cannot be read.
    ReplayUnavailable = "replay_unavailable", SERVICE_UNAVAILABLE, Event,
        "The missed events cannot be replayed; reload the data instead.";

    // 504 Gateway Timeout
    UpstreamTimeout = "upstream_timeout", GATEWAY_TIMEOUT, Public,
        "An upstream service did not answer in time.";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// `InvalidJson` → `invalid_json`.
    fn snake_case(name: &str) -> String {
        let mut out = String::new();
        for c in name.chars() {
            if c.is_ascii_uppercase() && !out.is_empty() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }

    #[test]
    fn codes_are_unique_snake_case_and_named_as_their_variant() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let wire = code.as_str();
            assert!(seen.insert(wire), "{wire} twice");
            assert!(
                wire.split('_')
                    .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase())),
                "{wire} is not snake_case"
            );
            assert_eq!(snake_case(&format!("{code:?}")), wire);
        }
    }

    #[test]
    fn default_sentences_are_whole_sentences() {
        for code in ErrorCode::ALL {
            let msg = code.default_message();
            let first = msg.chars().next().unwrap_or(' ');
            assert!(
                first.is_uppercase() || first == '`',
                "{code}: {msg:?} does not start a sentence"
            );
            assert!(
                msg.ends_with('.'),
                "{code}: {msg:?} does not end with a full stop"
            );
            assert_eq!(msg.trim(), msg, "{code}");
        }
    }

    #[test]
    fn statuses_are_errors_and_the_table_is_ordered_by_them() {
        let statuses: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.status().as_u16()).collect();
        assert!(
            statuses.iter().all(|s| (400..600).contains(s)),
            "{statuses:?}"
        );
        assert!(statuses.is_sorted(), "{statuses:?}");
    }

    /// A document of the workspace (`docs/…`).
    fn doc(name: &str) -> String {
        let path = format!("{}/../docs/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The `backticked` words of a text that could be codes (lowercase and `_`).
    fn code_like(text: &str) -> Vec<&str> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect()
    }

    /// docs/api.md's "Errors" list: each status with the text of its item.
    fn documented_by_status() -> Vec<(u16, String)> {
        let text = doc("api.md");
        let section = text
            .split("\n## Errors\n")
            .nth(1)
            .expect("an Errors section");
        let section = section.split("\n## ").next().unwrap_or_default();
        let mut items: Vec<(u16, String)> = Vec::new();
        for line in section.lines() {
            if let Some(item) = line.strip_prefix("- ") {
                let (status, rest) = item.split_once(':').expect("`- STATUS: codes`");
                items.push((status.parse().expect("a status"), rest.to_owned()));
            } else if let (Some(more), Some(last)) = (line.strip_prefix("  "), items.last_mut()) {
                last.1.push(' ');
                last.1.push_str(more);
            }
        }
        items
    }

    #[test]
    fn the_api_documentation_lists_every_public_code_under_its_status() {
        let items = documented_by_status();
        let mut statuses: Vec<u16> = items.iter().map(|(s, _)| *s).collect();
        statuses.sort_unstable();
        statuses.dedup();
        assert_eq!(
            statuses.len(),
            items.len(),
            "a status listed twice: {statuses:?}"
        );
        for code in ErrorCode::ALL.iter().filter(|c| c.is_public()) {
            let status = code.status().as_u16();
            let item = items.iter().find(|(s, _)| *s == status);
            assert!(
                item.is_some_and(|(_, text)| code_like(text).contains(&code.as_str())),
                "docs/api.md does not list `{code}` under {status}"
            );
        }
        for (status, text) in &items {
            for word in code_like(text) {
                let code = ErrorCode::ALL.iter().find(|c| c.as_str() == word);
                assert!(
                    code.is_some_and(|c| c.is_public() && c.status().as_u16() == *status),
                    "docs/api.md lists `{word}` under {status}: not a public code of that status"
                );
            }
        }
    }

    #[test]
    fn the_internal_plane_documentation_names_every_internal_code() {
        let text = doc("internal-plane.md");
        for code in ErrorCode::ALL.iter().filter(|c| !c.is_public()) {
            assert!(
                text.contains(code.as_str()),
                "docs/internal-plane.md does not name `{code}`"
            );
        }
    }

    #[test]
    fn a_code_serialises_as_its_wire_string() {
        let json = serde_json::to_value(ErrorCode::PayloadTooLarge).unwrap_or_default();
        assert_eq!(json, "payload_too_large");
        assert_eq!(
            ErrorCode::PayloadTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert!(ErrorCode::PayloadTooLarge.is_public());
        assert!(!ErrorCode::InvalidClient.is_public());
    }
}
