//! Labelled feedback into the rollout controller: each `feedback.created` with a label on a
//! prediction served during a rollout becomes an outcome scored against each version's digit;
//! `labels.excluded` takes a user's outcomes out. Pub/sub can lose an event while no replica
//! listens: a lost label shrinks the sample, and as losing it does not depend on whether the
//! answer was right, it biases nothing (`docs/rollouts.md`).

use crate::controller::{Controller, ControllerError, Labelled};
use crate::store::PredictionStore;
use common::bus::{Envelope, EventBus, events};
use contracts::events::{Event, FeedbackCreated};
use futures_util::StreamExt;
use rollout::{Outcome, Recorded};
use std::sync::Arc;
use std::time::Duration;

/// The outcome of a labelled feedback, when it names a prediction served during a rollout.
pub async fn outcome_of(
    store: &PredictionStore,
    created: &FeedbackCreated,
) -> Option<(String, Labelled)> {
    let feedback = &created.feedback;
    let label = match (feedback.label, feedback.correct) {
        (Some(label), _) => label,
        (None, true) => feedback.prediction,
        (None, false) => return None,
    };
    let prediction_id = feedback.prediction_id.as_deref()?;
    let prediction = match store.get(prediction_id).await {
        Ok(found) => found?,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the prediction of a feedback");
            return None;
        }
    };
    let rollout = prediction.rollout?;
    let right = |digit: Option<u8>| digit.map(|d| i32::from(d) == label);
    let labelled = Labelled {
        rollout_id: rollout.rollout_id,
        feedback_id: feedback.id,
        outcome: Outcome {
            user: prediction.user_id,
            requested: prediction.feedback_requested,
            active_correct: right(rollout.active_prediction),
            candidate_correct: right(rollout.candidate_prediction),
        },
    };
    Some((prediction.model, labelled))
}

/// Takes one bus event in (tests call it directly).
pub async fn take(
    controller: &Controller,
    store: &PredictionStore,
    envelope: &Envelope,
) -> Result<Option<Recorded>, ControllerError> {
    match envelope.event() {
        Ok(Event::FeedbackCreated(created)) => match outcome_of(store, &created).await {
            Some((model, labelled)) => controller.observe(&model, labelled).await,
            None => Ok(None),
        },
        Ok(Event::LabelsExcluded(excluded)) => {
            controller.exclude_user(&excluded.user_id).await?;
            Ok(None)
        }
        Ok(_) => Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "dropping an unreadable feedback event");
            Ok(None)
        }
    }
}

/// Follows labelled feedback and label exclusions on the bus.
pub fn spawn_feed(
    controller: Arc<Controller>,
    store: PredictionStore,
    bus: Arc<dyn EventBus>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match bus
                .subscribe(&[events::FEEDBACK_CREATED, events::LABELS_EXCLUDED])
                .await
            {
                Ok(mut stream) => {
                    while let Some(envelope) = stream.next().await {
                        if let Err(e) = take(&controller, &store, &envelope).await {
                            tracing::warn!(error = %e, "cannot take a labelled outcome");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to feedback events"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    })
}

/// Ends overdue rollouts every `every`.
pub fn spawn_expiry(controller: Arc<Controller>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = controller.expire_overdue().await {
                tracing::warn!(error = %e, "cannot end overdue rollouts");
            }
        }
    })
}
