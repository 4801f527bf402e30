//! Request-parsing configuration that turns every extractor failure into a JSON 4xx, and the
//! JSON answer to a request no route takes.

use crate::codes::ErrorCode;
use crate::error::ApiError;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, web};

/// Largest JSON body the services accept by default.
pub const DEFAULT_JSON_LIMIT: usize = 64 * 1024;

pub fn json_error(err: &JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::ContentType => ApiError::from(ErrorCode::UnsupportedMediaType),
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => too_large(*limit),
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::new(
            ErrorCode::InvalidField,
            format!("The JSON body has a field of the wrong type or value: {e}."),
        ),
        JsonPayloadError::Deserialize(e) => ApiError::new(
            ErrorCode::InvalidJson,
            format!("The body is not valid JSON: {e}."),
        ),
        _ => ApiError::from(ErrorCode::InvalidBody),
    }
}

/// The refusal of a body over `limit` bytes.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("The body is larger than the {limit} bytes this route accepts."),
    )
}

/// The refusal of a request for a path no route has.
pub fn no_such_route(req: &HttpRequest) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("No route for {} {}.", req.method(), req.path()),
    )
}

/// The refusal of a method none of the path's routes takes.
pub fn method_not_allowed(req: &HttpRequest) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}.", req.method(), req.path()),
    )
}

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| json_error(&err).into())
}

/// The refusal of a query string that does not parse.
pub fn invalid_query(err: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidQuery,
        format!("Invalid query string: {err}."),
    )
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err: QueryPayloadError, _req| invalid_query(&err).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        ApiError::new(ErrorCode::NotFound, format!("No such resource: {err}.")).into()
    })
}

/// Whether the request's media type is `essence` (e.g. `application/json`), parameters aside.
pub fn has_media_type(req: &HttpRequest, essence: &str) -> bool {
    use actix_web::HttpMessage;
    req.mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.essence_str().eq_ignore_ascii_case(essence))
}

/// The body, refused with a JSON 413 past `limit` bytes (declared or sent), for a route that
/// reads it itself rather than through `web::Json`.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n.min(limit as u64) as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidBody,
                format!("The body could not be read: {e}."),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Registers the JSON, query and path extractor configurations with JSON errors.
pub fn configure_extractors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config(DEFAULT_JSON_LIMIT))
        .app_data(query_config())
        .app_data(path_config());
}

/// The default service. The method guards sit on the resources, so a request reaches it both
/// for a path no route has (404) and for a known path asked with a method none of its routes
/// takes (405); both as JSON.
pub async fn no_route(req: HttpRequest) -> HttpResponse {
    let error = if req.resource_map().has_resource(req.path()) {
        method_not_allowed(&req)
    } else {
        no_such_route(&req)
    };
    actix_web::ResponseError::error_response(&error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, test};

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        n: u8,
    }

    async fn echo(_b: web::Json<Body>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    #[actix_web::test]
    async fn extractor_failures_are_json_4xx() {
        let app = test::init_service(
            App::new()
                .configure(configure_extractors)
                .route("/", web::post().to(echo))
                .default_service(web::to(no_route)),
        )
        .await;
        let cases: &[(&str, &str, u16, &str)] = &[
            ("application/json", "{not json", 400, "invalid_json"),
            ("application/json", r#"{"n": "x"}"#, 422, "invalid_field"),
            ("application/json", r#"{"n": 9999}"#, 422, "invalid_field"),
            ("text/plain", r#"{"n": 1}"#, 415, "unsupported_media_type"),
        ];
        for (ct, body, status, code) in cases {
            let req = test::TestRequest::post()
                .uri("/")
                .insert_header(("content-type", *ct))
                .set_payload(*body)
                .to_request();
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status().as_u16(), *status, "{body}");
            let b: crate::error::ErrorBody = test::read_body_json(resp).await;
            assert_eq!(b.error, *code);
        }
        let resp =
            test::call_service(&app, test::TestRequest::get().uri("/nope").to_request()).await;
        assert_eq!(resp.status().as_u16(), 404);
        let b: crate::error::ErrorBody = test::read_body_json(resp).await;
        assert_eq!(b.error, "not_found");
        // The route exists, for POST only.
        let resp = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(resp.status().as_u16(), 405);
        let b: crate::error::ErrorBody = test::read_body_json(resp).await;
        assert_eq!(b.error, "method_not_allowed");
    }
}
