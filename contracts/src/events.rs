//! Bus events. On the wire an event is the `type` and `data` of the envelope
//! `{"id", "type", "version", "occurred_at", "traceparent", "data"}` (`common::bus::Envelope`);
//! [`Event`] is the pair, tagged by `type`.

use serde::{Deserialize, Serialize};

use crate::feedback::FeedbackRecord;
use crate::jobs::{JobProgress, JobState, RetrainMetrics};
use crate::rollouts::{Policy, Reason, Stage, Stats, Verdict};

/// The version of the event contract, carried by every envelope (`version`). A consumer reads
/// the versions it knows; an envelope without one is version 1.
pub const EVENT_VERSION: u16 = 1;

/// The `type` of each event, also the name of its pub/sub channel (`events.<type>`).
pub mod kinds {
    pub const FEEDBACK_CREATED: &str = "feedback.created";
    pub const RETRAIN_PROGRESS: &str = "retrain.progress";
    pub const RETRAIN_FINISHED: &str = "retrain.finished";
    pub const MODEL_PROMOTED: &str = "model.promoted";
    pub const ROLLOUT_STARTED: &str = "model.rollout.started";
    pub const ROLLOUT_PROGRESS: &str = "model.rollout.progress";
    pub const ROLLOUT_DECIDED: &str = "model.rollout.decided";
    pub const LABELS_EXCLUDED: &str = "labels.excluded";
    /// The rollout events, which every predict-svc replica follows to serve the same stage.
    pub const ROLLOUT: [&str; 3] = [ROLLOUT_STARTED, ROLLOUT_PROGRESS, ROLLOUT_DECIDED];
    /// Every event type there is.
    pub const ALL: [&str; 8] = [
        FEEDBACK_CREATED,
        RETRAIN_PROGRESS,
        RETRAIN_FINISHED,
        MODEL_PROMOTED,
        ROLLOUT_STARTED,
        ROLLOUT_PROGRESS,
        ROLLOUT_DECIDED,
        LABELS_EXCLUDED,
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
    /// predict-svc: a candidate that passed the offline gate began its rollout (in shadow).
    #[serde(rename = "model.rollout.started")]
    RolloutStarted(RolloutStarted),
    /// predict-svc: a rollout's stage or share changed, or (at most once a second) its
    /// statistics moved.
    #[serde(rename = "model.rollout.progress")]
    RolloutProgress(RolloutProgress),
    /// predict-svc: a rollout ended (promoted, rolled back, or inconclusive).
    #[serde(rename = "model.rollout.decided")]
    RolloutDecided(RolloutDecided),
    /// feedback-svc: an admin excluded a user's labels from training and from open rollouts.
    #[serde(rename = "labels.excluded")]
    LabelsExcluded(LabelsExcluded),
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
            Event::RolloutStarted(_) => kinds::ROLLOUT_STARTED,
            Event::RolloutProgress(_) => kinds::ROLLOUT_PROGRESS,
            Event::RolloutDecided(_) => kinds::ROLLOUT_DECIDED,
            Event::LabelsExcluded(_) => kinds::LABELS_EXCLUDED,
        }
    }

    /// Its `data`.
    pub fn data(&self) -> serde_json::Value {
        let data = match self {
            Event::FeedbackCreated(d) => serde_json::to_value(d),
            Event::RetrainProgress(d) => serde_json::to_value(d),
            Event::RetrainFinished(d) => serde_json::to_value(d),
            Event::ModelPromoted(d) => serde_json::to_value(d),
            Event::RolloutStarted(d) => serde_json::to_value(d),
            Event::RolloutProgress(d) => serde_json::to_value(d),
            Event::RolloutDecided(d) => serde_json::to_value(d),
            Event::LabelsExcluded(d) => serde_json::to_value(d),
        };
        // These types have string keys only, so serialising them cannot fail (a statistic that
        // is not finite becomes null).
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
    /// Always false since rollouts: a passing candidate starts a rollout (`rollout_id`), which
    /// decides later. Kept for the clients that read it.
    pub promoted: bool,
    /// The rollout the candidate began, when it passed the offline gate.
    #[serde(default)]
    pub rollout_id: Option<String>,
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

/// `model.rollout.started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStarted {
    pub rollout_id: String,
    pub model: String,
    pub candidate_version: i32,
    pub active_version: i32,
    pub stage: Stage,
    pub share: f64,
    pub policy: Policy,
    /// The retrain job that trained the candidate.
    pub job_id: Option<String>,
}

/// `model.rollout.progress`: where the rollout stands, with each version's accuracy on the
/// decision sample and its interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutProgress {
    pub rollout_id: String,
    pub model: String,
    pub candidate_version: i32,
    pub active_version: i32,
    pub stage: Stage,
    pub share: f64,
    pub paused: bool,
    /// The promotion boundary: Δ (candidate − active accuracy) must stay above `−margin`.
    pub margin: f64,
    pub stats: Stats,
}

/// `model.rollout.decided`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutDecided {
    pub rollout_id: String,
    pub model: String,
    pub candidate_version: i32,
    pub active_version: i32,
    pub verdict: Verdict,
    /// The candidate's last stage: `active` when promoted, else `rolled_back`.
    pub stage: Stage,
    pub reason: Reason,
    /// The admin who decided; `None` when the controller did.
    pub actor: Option<String>,
    pub stats: Stats,
}

/// `labels.excluded`: the user's labels no longer train a model nor decide a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelsExcluded {
    /// The user's id (the token's `sub`).
    pub user_id: String,
    /// The admin's name.
    pub excluded_by: String,
    /// How many of the user's labelled feedback were excluded.
    pub labels: i64,
}
