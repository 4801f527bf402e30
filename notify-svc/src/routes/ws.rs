//! `GET /ws`: everything is checked before the upgrade, so a refusal is a JSON answer and
//! never a WebSocket: a missing or invalid token is 401, a token that is not an admin's 403,
//! a user who already holds `WS_MAX_CONNECTIONS_PER_USER` sockets in this process 429, a
//! process with `WS_MAX_CONNECTIONS` open 503.

use crate::hub::SlotRefused;
use crate::socket::{Connection, Shared};
use actix_web::{HttpRequest, HttpResponse, web};
use common::jwt::{JwtVerifier, bearer_token};
use common::{ApiError, ErrorCode};
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
        ApiError::new(
            ErrorCode::MissingToken,
            "Token de acceso requerido: send `Authorization: Bearer <token>` or `?access_token=<token>`.",
        )
    })?;
    let claims = verifier.verify(&token).await?;
    if !claims.is_admin() {
        tracing::info!(user = %claims.name, "a non-admin asked for the admins' WebSocket");
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "Acceso no autorizado: the WebSocket is for admins.",
        ));
    }
    let query = web::Query::<WsQuery>::from_query(req.query_string())
        .map_err(|e| common::http::invalid_query(&e))?
        .into_inner();
    let resume_from = match query.last_event_id.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(Uuid::parse_str(raw).map_err(|_| ErrorCode::InvalidLastEventId)?),
    };
    let slot = shared
        .hub
        .open_socket(&claims.sub)
        .map_err(|refused| match refused {
            SlotRefused::UserLimit(held) => ApiError::new(
                ErrorCode::TooManySockets,
                format!(
                    "You already have {held} WebSockets open, as many as one user may; \
                     close one before opening another."
                ),
            ),
            SlotRefused::ProcessLimit => ErrorCode::TooManyConnections.into(),
        })?;
    let (response, session, stream) =
        actix_ws::handle(&req, body).map_err(|_| ErrorCode::WebsocketRequired)?;
    let stream = stream
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .aggregate_continuations()
        .max_continuation_size(MAX_CLIENT_MESSAGE);
    tracing::info!(user = %claims.name, resume = resume_from.is_some(), "websocket opened");
    let connection = Connection::new(shared.into_inner(), claims, session, slot);
    actix_web::rt::spawn(connection.run(stream, resume_from));
    Ok(response)
}
