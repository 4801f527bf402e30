//! Bus events. On the wire an event is the `type` and `data` of the envelope
//! `{"id", "type", "version", "occurred_at", "traceparent", "data"}` (`common::bus::Envelope`);
//! [`Event`] is the pair, tagged by `type`.

use serde::{Deserialize, Serialize};

use crate::feedback::FeedbackRecord;
use crate::jobs::{JobProgress, JobState, RetrainMetrics};

/// The version of the event contract, carried by every envelope (`version`). A consumer reads
/// the versions it knows; an envelope without one is version 1.
pub const EVENT_VERSION: u16 = 1;

/// The `type` of each event, also the name of its pub/sub channel (`events.<type>`).
pub mod kinds {
    pub const FEEDBACK_CREATED: &str = "feedback.created";
    pub const RETRAIN_PROGRESS: &str = "retrain.progress";
    pub const RETRAIN_FINISHED: &str = "retrain.finished";
    pub const MODEL_PROMOTED: &str = "model.promoted";
    /// Every event type there is.
    pub const ALL: [&str; 4] = [
        FEEDBACK_CREATED,
        RETRAIN_PROGRESS,
        RETRAIN_FINISHED,
        MODEL_PROMOTED,
    ];
}

/// Every event on the bus and in the history stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// feedback-svc, through its outbox: a feedback was stored.
    #[serde(rename = "feedback.created")]
    FeedbackCreated(FeedbackCreated),
    /// retrain-worker: a job moved on (a stage, an epoch).
    #[serde(rename = "retrain.progress")]
    RetrainProgress(RetrainProgress),
    /// retrain-worker: a job has its outcome.
    #[serde(rename = "retrain.finished")]
    RetrainFinished(RetrainFinished),
    /// predict-svc: a version became a model's active one; every replica swaps to it.
    #[serde(rename = "model.promoted")]
    ModelPromoted(ModelPromoted),
}

/// An envelope's `type` and `data` that are not an event this build knows.
#[derive(Debug)]
pub struct UnknownEvent {
    pub kind: String,
    pub detail: String,
}

impl std::fmt::Display for UnknownEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a known `{}` event: {}", self.kind, self.detail)
    }
}

impl std::error::Error for UnknownEvent {}

impl Event {
    /// Its `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::FeedbackCreated(_) => kinds::FEEDBACK_CREATED,
            Event::RetrainProgress(_) => kinds::RETRAIN_PROGRESS,
            Event::RetrainFinished(_) => kinds::RETRAIN_FINISHED,
            Event::ModelPromoted(_) => kinds::MODEL_PROMOTED,
        }
    }

    /// Its `data`.
    pub fn data(&self) -> serde_json::Value {
        let data = match self {
            Event::FeedbackCreated(d) => serde_json::to_value(d),
            Event::RetrainProgress(d) => serde_json::to_value(d),
            Event::RetrainFinished(d) => serde_json::to_value(d),
            Event::ModelPromoted(d) => serde_json::to_value(d),
        };
        // These types have string keys only, so serialising them cannot fail.
        data.unwrap_or_default()
    }

    /// The event of an envelope's `type` and `data`.
    pub fn from_parts(kind: &str, data: &serde_json::Value) -> Result<Event, UnknownEvent> {
        let tagged = serde_json::json!({"type": kind, "data": data});
        serde_json::from_value(tagged).map_err(|e| UnknownEvent {
            kind: kind.to_owned(),
            detail: e.to_string(),
        })
    }
}

/// `feedback.created`: the stored feedback as the seed's `to_dict()`, plus the input the model
/// saw (base64 of the 28×28 grey grid, null when the feedback names no prediction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackCreated {
    #[serde(flatten)]
    pub feedback: FeedbackRecord,
    pub input: Option<String>,
}

/// `retrain.progress`: the job's progress (as stored with the job) and which job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainProgress {
    pub job_id: String,
    pub model: String,
    #[serde(flatten)]
    pub progress: JobProgress,
}

/// `retrain.finished`: the job's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainFinished {
    pub job_id: String,
    pub model: String,
    pub state: JobState,
    pub model_version: Option<i32>,
    pub promoted: bool,
    pub reason: Option<String>,
    pub metrics: Option<RetrainMetrics>,
}

/// `model.promoted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPromoted {
    pub model: String,
    pub version: i32,
    pub sha256: String,
}
