//! The WebSocket protocol: JSON text frames `{"event": NAME, "id": EVENT_ID, "data": …}`.
//!
//! Server → client: the bus events admins are told about (`new_feedback`, `retrain_progress`,
//! `retrain_finished`, `model_promoted`), `message` (the seed's answer to `join_admin`) and
//! `error`. Client → server: `join_admin` (as in the seed) and `resume` (replay what was missed).

use bytestring::ByteString;
use common::ErrorCode;
use common::bus::{Envelope, events};
use contracts::Event;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// The seed's answer to `join_admin`.
pub const JOINED_ADMINS: &str = "Te has unido a la sala de notificaciones de administradores.";

/// The name admins see for a bus event. Every event is checked against its contract
/// (`contracts::Event`) before it goes out; its `data` then goes to admins as published, so a
/// field a newer publisher adds reaches them without notify-svc being rebuilt.
pub fn event_name(event: &Event) -> &'static str {
    match event {
        Event::FeedbackCreated(_) => "new_feedback",
        Event::RetrainProgress(_) => "retrain_progress",
        Event::RetrainFinished(_) => "retrain_finished",
        Event::ModelPromoted(_) => "model_promoted",
        Event::RolloutStarted(_) => "rollout_started",
        Event::RolloutProgress(_) => "rollout_progress",
        Event::RolloutDecided(_) => "rollout_decided",
        Event::LabelsExcluded(_) => "labels_excluded",
    }
}

/// The bus event types notify-svc subscribes to: every one (`contracts::Event`).
pub const SUBSCRIBED: [&str; 8] = events::ALL;

#[derive(Serialize)]
struct Outgoing<'a> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Uuid>,
    data: &'a Value,
}

/// A bus event as sent to clients: serialised once, shared by every connection (cloning the
/// text is a reference count, not a copy).
#[derive(Debug, Clone)]
pub struct EventFrame {
    pub id: Uuid,
    pub text: ByteString,
}

impl EventFrame {
    pub fn from_envelope(envelope: &Envelope) -> Option<Self> {
        let event = match envelope.event() {
            Ok(event) => event_name(&event),
            Err(e) => {
                tracing::warn!(id = %envelope.id, error = %e, "dropping an event that breaks its contract");
                return None;
            }
        };
        let text = serde_json::to_string(&Outgoing {
            event,
            id: Some(envelope.id),
            data: &envelope.data,
        })
        .ok()?;
        Some(EventFrame {
            id: envelope.id,
            text: text.into(),
        })
    }
}

/// `{"event":"message","data":{"data":TEXT}}`, the shape of the seed's `emit("message", …)`.
pub fn message(text: &str) -> String {
    json!({"event": "message", "data": {"data": text}}).to_string()
}

/// `{"event":"error","data":{"error":CODE,"msg":SENTENCE}}`.
pub fn error(code: ErrorCode, msg: &str) -> String {
    json!({"event": "error", "data": {"error": code, "msg": msg}}).to_string()
}

/// What a client may ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRequest {
    JoinAdmin,
    Resume { last_event_id: Uuid },
}

/// Why a client frame was not understood; each becomes an `error` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    NotJson,
    UnknownEvent(String),
    InvalidEventId,
}

impl RequestError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::NotJson => ErrorCode::InvalidMessage,
            RequestError::UnknownEvent(_) => ErrorCode::UnknownEvent,
            RequestError::InvalidEventId => ErrorCode::InvalidLastEventId,
        }
    }

    pub fn msg(&self) -> String {
        match self {
            RequestError::NotJson => self.code().default_message().to_owned(),
            RequestError::UnknownEvent(name) => {
                format!("Unknown event `{name}`: the server understands `join_admin` and `resume`.")
            }
            RequestError::InvalidEventId => {
                "`resume` needs `last_event_id`, the id of the last event received.".to_owned()
            }
        }
    }
}

#[derive(Deserialize)]
struct Incoming {
    event: String,
    #[serde(default)]
    last_event_id: Option<Value>,
    #[serde(default)]
    data: Option<Value>,
}

/// Parses a client's text frame. `resume` takes `last_event_id` at the top level or, as a
/// Socket.IO client would send it, inside `data`.
pub fn parse_request(text: &str) -> Result<ClientRequest, RequestError> {
    let incoming: Incoming = serde_json::from_str(text).map_err(|_| RequestError::NotJson)?;
    match incoming.event.as_str() {
        "join_admin" => Ok(ClientRequest::JoinAdmin),
        "resume" => {
            let id = incoming
                .last_event_id
                .or_else(|| incoming.data.and_then(|d| d.get("last_event_id").cloned()))
                .and_then(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
                .ok_or(RequestError::InvalidEventId)?;
            Ok(ClientRequest::Resume { last_event_id: id })
        }
        other => Err(RequestError::UnknownEvent(other.chars().take(64).collect())),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stored feedback as feedback-svc publishes it.
    pub(crate) fn feedback_event(id: i64) -> Envelope {
        let data = json!({
            "id": id, "username": "alice", "prediction": 7, "correct": true, "comment": "",
            "timestamp": "2026-11-28T10:00:00.123456", "prediction_id": null, "label": 7,
            "model": null, "model_version": null, "input": null,
        });
        Envelope::new(events::FEEDBACK_CREATED, data)
    }

    #[test]
    fn bus_events_become_named_frames_with_their_data_as_published() {
        let env = feedback_event(7);
        let frame = EventFrame::from_envelope(&env).unwrap();
        let v: Value = serde_json::from_str(&frame.text).unwrap();
        assert_eq!(
            v,
            json!({"event": "new_feedback", "id": env.id.to_string(), "data": env.data})
        );
        for (kind, data, name) in [
            (
                events::RETRAIN_PROGRESS,
                json!({"job_id": "j1", "model": "mnist-mlp", "stage": "training"}),
                "retrain_progress",
            ),
            (
                events::RETRAIN_FINISHED,
                json!({"job_id": "j1", "model": "mnist-mlp", "state": "rejected",
                       "model_version": 4, "promoted": false, "reason": "gate", "metrics": null}),
                "retrain_finished",
            ),
            (
                events::MODEL_PROMOTED,
                json!({"model": "mnist-mlp", "version": 4, "sha256": "ab12", "added_later": 1}),
                "model_promoted",
            ),
        ] {
            let f = EventFrame::from_envelope(&Envelope::new(kind, data.clone())).unwrap();
            let v: Value = serde_json::from_str(&f.text).unwrap();
            assert_eq!((v["event"].as_str(), &v["data"]), (Some(name), &data));
        }
    }

    #[test]
    fn events_of_unknown_types_or_that_break_their_contract_are_not_sent() {
        assert!(EventFrame::from_envelope(&Envelope::new("user.created", json!({}))).is_none());
        let no_version = json!({"model": "mnist-mlp", "sha256": "ab12"});
        let broken = Envelope::new(events::MODEL_PROMOTED, no_version);
        assert!(EventFrame::from_envelope(&broken).is_none());
    }

    #[test]
    fn the_seed_answer_and_errors_have_the_documented_shape() {
        let v: Value = serde_json::from_str(&message(JOINED_ADMINS)).unwrap();
        assert_eq!(
            v,
            json!({"event": "message", "data": {"data": JOINED_ADMINS}})
        );
        let v: Value = serde_json::from_str(&error(ErrorCode::Forbidden, "no")).unwrap();
        assert_eq!(
            v,
            json!({"event": "error", "data": {"error": "forbidden", "msg": "no"}})
        );
    }

    #[test]
    fn client_requests_are_parsed() {
        assert_eq!(
            parse_request(r#"{"event":"join_admin"}"#),
            Ok(ClientRequest::JoinAdmin)
        );
        assert_eq!(
            parse_request(r#"{"event":"join_admin","data":{}}"#),
            Ok(ClientRequest::JoinAdmin)
        );
        let id = Uuid::now_v7();
        assert_eq!(
            parse_request(&format!(r#"{{"event":"resume","last_event_id":"{id}"}}"#)),
            Ok(ClientRequest::Resume { last_event_id: id })
        );
        assert_eq!(
            parse_request(&format!(
                r#"{{"event":"resume","data":{{"last_event_id":"{id}"}}}}"#
            )),
            Ok(ClientRequest::Resume { last_event_id: id })
        );
        assert_eq!(
            parse_request(r#"{"event":"resume","last_event_id":"nope"}"#),
            Err(RequestError::InvalidEventId)
        );
        assert_eq!(parse_request("join_admin"), Err(RequestError::NotJson));
        assert_eq!(
            parse_request(r#"{"event":"leave"}"#),
            Err(RequestError::UnknownEvent("leave".into()))
        );
    }
}
