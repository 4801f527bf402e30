//! Request-parsing configuration that turns every extractor failure into a JSON 4xx, and the
//! JSON answer to a request no route takes.

use crate::error::ApiError;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

/// Largest JSON body the services accept by default.
pub const DEFAULT_JSON_LIMIT: usize = 64 * 1024;

pub fn json_error(err: &JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "The body must be JSON, sent with `Content-Type: application/json`.",
        ),
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The body is larger than the {limit} bytes this route accepts."),
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("The JSON body has a field of the wrong type or value: {e}."),
        ),
        JsonPayloadError::Deserialize(e) => {
            ApiError::bad_request("invalid_json", format!("The body is not valid JSON: {e}."))
        }
        _ => ApiError::bad_request("invalid_body", "The request body could not be read."),
    }
}

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| json_error(&err).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        ApiError::bad_request("invalid_query", format!("Invalid query string: {err}.")).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        ApiError::not_found(format!("No such resource: {err}.")).into()
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
    let too_large = || json_error(&JsonPayloadError::Overflow { limit });
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n.min(limit as u64) as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("invalid_body", format!("The body could not be read: {e}."))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
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
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} is not allowed on {}.", req.method(), req.path()),
        )
    } else {
        ApiError::not_found(format!("No route for {} {}.", req.method(), req.path()))
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
