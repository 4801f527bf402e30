//! The retrain job: the entry of the `jobs:retrain` queue (retrain-worker's job API → its
//! workers), a job's state and progress, and the metrics a finished job reports (stored with
//! the job and with the version it registered).

use serde::{Deserialize, Serialize};

/// An entry of the `jobs:retrain` stream: the job's record holds what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainJobEntry {
    pub job_id: String,
    /// The W3C trace context of the request that queued it: the job continues that trace.
    #[serde(default)]
    pub traceparent: Option<String>,
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    /// Registered, passed the offline gate, and its rollout started.
    Succeeded,
    /// Registered, no rollout (the gate, or another version became active meanwhile).
    Rejected,
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Rejected,
        JobState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Rejected => "rejected",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Whether a job in this state is over (its outcome is stored).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Rejected | JobState::Failed
        )
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    #[serde(rename = "queued")]
    Queued,
    #[serde(rename = "starting")]
    Starting,
    #[serde(rename = "loading data")]
    LoadingData,
    #[serde(rename = "training")]
    Training,
    #[serde(rename = "registering")]
    Registering,
    #[serde(rename = "finished")]
    Finished,
}

/// A job's latest progress; the members besides `stage` depend on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    pub stage: Stage,
    /// `queued` after a worker handed the job back: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `starting`: which run of the job this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// `training`: the epoch just finished and how it went.
    #[serde(flatten)]
    pub epoch: Option<EpochReport>,
}

impl JobProgress {
    pub fn at(stage: Stage) -> JobProgress {
        JobProgress {
            stage,
            note: None,
            attempt: None,
            epoch: None,
        }
    }
}

/// `training`: one finished epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    /// The epoch's mean training loss.
    pub loss: f32,
    /// Accuracy in [0, 1] on 1,000 MNIST test digits plus the feedback holdout.
    pub val_accuracy: f64,
    /// Estimated seconds left.
    pub eta_seconds: f64,
}

/// A finished job's scores, also stored with the version it registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainMetrics {
    /// The candidate's MNIST holdout accuracy, in [0, 1].
    pub test_accuracy: f64,
    pub candidate: Scores,
    /// The active version the candidate was compared with.
    pub active: ComparedVersion,
    pub gate: GateReport,
    pub training: TrainingReport,
}

/// A model's scores on the job's holdout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub mnist: Evaluation,
    /// `None` when no feedback is held out.
    pub feedback: Option<Evaluation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Share of digits classified right, in [0, 1].
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Digits scored.
    pub count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ComparedVersion {
    pub version: i32,
    pub scores: Scores,
}

/// The gate's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub tolerance_points: f64,
    pub promote: bool,
    /// Why not, in a sentence with both scores.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    pub from_scratch: bool,
    pub epochs: usize,
    pub mnist_digits: usize,
    pub feedback_digits: usize,
    pub feedback_weight: usize,
    pub feedback_holdout_digits: usize,
    /// Labelled feedback left out of training because its author had already given the most
    /// examples one user may give to one job (`RETRAIN_MAX_LABELS_PER_USER`).
    #[serde(default)]
    pub feedback_capped: usize,
    pub examples: usize,
    pub train_loss: f32,
    pub seconds: f64,
    pub seed: u64,
}
