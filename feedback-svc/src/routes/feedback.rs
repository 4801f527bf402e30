//! `POST /feedback`: stores the feedback and its `feedback.created` event in one transaction.

use crate::db::feedback::{self as queries, Feedback, IdempotentRecord, NewFeedback};
use crate::db::outbox;
use crate::error::FeedbackError;
use crate::predictions::ServedPrediction;
use crate::state::AppState;
use crate::submission::{self, Submission};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::bus::Envelope;
use common::db::DbError;
use common::jwt::{Authenticated, Claims};
use contracts::events::{Event, FeedbackCreated};
use diesel::Connection;
use serde_json::{Value, json};

pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Set on an answer repeated for a retried request.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";
const SUBMITTED: &str = "Feedback submitted successfully";

pub async fn submit(
    state: web::Data<AppState>,
    Authenticated(claims): Authenticated,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, FeedbackError> {
    let key = req
        .headers()
        .get(IDEMPOTENCY_HEADER)
        .map(|v| submission::idempotency_key(v.as_bytes()))
        .transpose()?;
    let submission = Submission::parse(&body)?;
    let fingerprint = submission.fingerprint();
    if let Some(key) = &key
        && let Some(first) = find_by_key(&state, &claims.sub, key).await?
    {
        return replay(&first, &fingerprint);
    }
    let served = match &submission.prediction_id {
        Some(id) => Some(served_prediction(&state, &claims, &submission, id).await?),
        None => None,
    };
    let input = served
        .as_ref()
        .map(crate::predictions::input_bytes)
        .transpose()?;
    let new = NewFeedback {
        user_id: claims.sub.clone(),
        username: claims.name.clone(),
        prediction: submission.prediction,
        correct: submission.correct,
        label: submission.true_label(),
        comment: submission.comment.clone(),
        prediction_id: submission.prediction_id.clone(),
        model: served.as_ref().map(|s| s.model.clone()),
        model_version: served.as_ref().map(|s| s.model_version),
        input,
        idempotency_key: key.clone(),
        request_hash: fingerprint.clone(),
        created_at: crate::db::now(),
        trusted: claims.is_admin(),
    };
    let stored = state
        .db
        .run(move |c| {
            c.transaction::<_, DbError, _>(|c| {
                let id = queries::insert(c, &new)?;
                let feedback = Feedback::stored(id, &new);
                outbox::insert(c, &created_event(&feedback, new.input.as_deref()))?;
                Ok(feedback)
            })
        })
        .await;
    match stored {
        Ok(feedback) => {
            state.relay_wakeup.notify_one();
            tracing::info!(
                feedback_id = feedback.id,
                username = %feedback.username,
                prediction = feedback.prediction,
                correct = feedback.correct,
                prediction_id = ?feedback.prediction_id,
                "feedback stored"
            );
            Ok(HttpResponse::Created().json(json!({"msg": SUBMITTED, "id": feedback.id})))
        }
        Err(e) => match &key {
            // A concurrent retry with the same key stored first: answer as it did.
            Some(key) if e.is_unique_violation() => {
                let first = find_by_key(&state, &claims.sub, key)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("idempotent row vanished"))?;
                replay(&first, &fingerprint)
            }
            _ => Err(e.into()),
        },
    }
}

/// `feedback.created`: the seed's `to_dict()` of the stored feedback, plus the input the model saw
/// (base64 of the 28×28 grey grid, null when the feedback names no prediction) for the admins' feed.
fn created_event(feedback: &Feedback, input: Option<&[u8]>) -> Envelope {
    Envelope::of(&Event::FeedbackCreated(FeedbackCreated {
        feedback: feedback.record(),
        input: input.map(|bytes| STANDARD.encode(bytes)),
    }))
}

async fn find_by_key(
    state: &AppState,
    user_id: &str,
    key: &str,
) -> Result<Option<IdempotentRecord>, FeedbackError> {
    let (user_id, key) = (user_id.to_owned(), key.to_owned());
    Ok(state
        .db
        .run(move |c| queries::find_by_idempotency_key(c, &user_id, &key))
        .await?)
}

/// The first answer again, when the retry asks the same thing.
fn replay(first: &IdempotentRecord, fingerprint: &str) -> Result<HttpResponse, FeedbackError> {
    if first.request_hash != fingerprint {
        return Err(FeedbackError::IdempotencyKeyReused);
    }
    Ok(HttpResponse::Created()
        .insert_header((REPLAYED_HEADER, "true"))
        .json(json!({"msg": SUBMITTED, "id": first.id})))
}

/// The caller's own prediction with that id, which must be the one the feedback names.
async fn served_prediction(
    state: &AppState,
    claims: &Claims,
    submission: &Submission,
    id: &str,
) -> Result<ServedPrediction, FeedbackError> {
    let served = state
        .predictions
        .get(id)
        .await?
        .filter(|p| p.user_id == claims.sub)
        .ok_or_else(|| FeedbackError::UnknownPrediction(id.to_owned()))?;
    if i32::from(served.prediction) != submission.prediction {
        return Err(FeedbackError::PredictionMismatch {
            sent: submission.prediction,
            served: i32::from(served.prediction),
        });
    }
    Ok(served)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn new_feedback(input: Option<Vec<u8>>) -> NewFeedback {
        NewFeedback {
            user_id: "u1".into(),
            username: "ana".into(),
            prediction: 7,
            correct: false,
            label: Some(1),
            comment: "no es".into(),
            prediction_id: input.as_ref().map(|_| "p1".to_owned()),
            model: Some("mnist-cnn".into()),
            model_version: Some(2),
            input,
            idempotency_key: None,
            request_hash: "h".into(),
            created_at: crate::db::now(),
            trusted: false,
        }
    }

    #[test]
    fn the_created_event_carries_the_input_beside_the_seeds_fields() {
        let grid: Vec<u8> = (0..784).map(|i| (i % 256) as u8).collect();
        let new = new_feedback(Some(grid.clone()));
        let event = created_event(&Feedback::stored(42, &new), new.input.as_deref());
        assert_eq!(event.kind, common::bus::events::FEEDBACK_CREATED);
        assert!(matches!(event.event(), Ok(Event::FeedbackCreated(_))));
        let data = &event.data;
        assert_eq!(data["id"], 42);
        assert_eq!(data["username"], "ana");
        assert_eq!(data["prediction"], 7);
        assert_eq!(data["label"], 1);
        assert_eq!(data["comment"], "no es");
        assert!(data["timestamp"].is_string());
        let decoded = STANDARD.decode(data["input"].as_str().unwrap()).unwrap();
        assert_eq!(decoded, grid);

        let unlinked = new_feedback(None);
        let event = created_event(&Feedback::stored(43, &unlinked), None);
        assert!(event.data["input"].is_null());
        assert_eq!(event.data["id"], 43);
    }
}
