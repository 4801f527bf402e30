//! `GET /ws`: the token is checked before the upgrade, so a missing or invalid one is a 401
//! JSON answer and never a WebSocket. Any valid token may connect; only admins join the room.

use crate::socket::{Connection, Shared};
use actix_web::{HttpRequest, HttpResponse, web};
use common::ApiError;
use common::jwt::{JwtVerifier, bearer_token};
use serde::Deserialize;
use uuid::Uuid;

/// The largest frame (and message) a client may send; its messages are a few bytes of JSON.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

#[derive(Debug, Deserialize)]
struct WsQuery {
    #[serde(default)]
    last_event_id: Option<String>,
}

pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    verifier: web::Data<JwtVerifier>,
) -> Result<HttpResponse, ApiError> {
    let token = bearer_token(&req, true).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_token",
            "Token de acceso requerido: send `Authorization: Bearer <token>` or `?access_token=<token>`.",
        )
    })?;
    let claims = verifier.verify(&token).await?;
    let query = web::Query::<WsQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", format!("Invalid query string: {e}.")))?
        .into_inner();
    let resume_from = match query.last_event_id.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(Uuid::parse_str(raw).map_err(|_| {
            ApiError::bad_request(
                "invalid_last_event_id",
                "`last_event_id` must be the id (a UUID) of the last event received.",
            )
        })?),
    };
    let slot = shared.hub.open_socket().ok_or_else(|| {
        ApiError::unavailable(
            "too_many_connections",
            "This server has as many WebSockets open as it accepts; try again later.",
        )
    })?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|_| {
        ApiError::bad_request(
            "websocket_required",
            "GET /ws is a WebSocket: send an upgrade request (`Connection: Upgrade`, `Upgrade: websocket`).",
        )
    })?;
    let stream = stream
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .aggregate_continuations()
        .max_continuation_size(MAX_CLIENT_MESSAGE);
    tracing::info!(user = %claims.name, admin = claims.is_admin(), resume = resume_from.is_some(), "websocket opened");
    let connection = Connection::new(shared.into_inner(), claims, session, slot);
    actix_web::rt::spawn(connection.run(stream, resume_from));
    Ok(response)
}
