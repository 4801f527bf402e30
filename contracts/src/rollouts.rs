//! Model rollouts (predict-svc's registry): what a retrain starts, what admins read and do, and
//! what a served prediction keeps of a rollout so that labelled feedback can score both
//! versions. The statistics themselves are the `rollout` crate's.
//!
//! | route | who | request | answer |
//! |---|---|---|---|
//! | `POST /internal/models/{name}/rollouts` | retrain-worker, scope `models:promote` | [`StartRollout`] | 201 [`RolloutRecord`] |
//! | `GET /admin/models/{name}/rollouts` | admin | — | [`RolloutList`] |
//! | `POST /admin/models/{name}/rollouts/{id}/{action}` | admin | [`RolloutAction`] in the path | [`RolloutRecord`] |

use serde::{Deserialize, Serialize};

pub use rollout::{Arm, Policy, Reason, Stage, Stats, Verdict};

/// The body of `POST /internal/models/{name}/rollouts`: the registered candidate that passed
/// the offline gate against `active_version` begins its rollout in shadow. A rollout of the
/// same model still open is superseded (it ends, the active version stays): the newer candidate
/// was trained on more feedback, and the older one's evidence says nothing about it. A candidate
/// that failed the gate (`gate_passed: false`) is recorded `rejected`, supersedes nothing, and
/// never serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRollout {
    pub candidate_version: i32,
    #[serde(default = "passed")]
    pub gate_passed: bool,
    /// The active version the gate compared with; 409 `active_version_changed` when another one
    /// is active now.
    pub active_version: i32,
    /// The retrain job that trained the candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

fn passed() -> bool {
    true
}

/// One rollout: the candidate against the version active when it began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub id: String,
    pub model: String,
    pub candidate_version: i32,
    pub active_version: i32,
    /// The candidate's stage: `shadow` or `canary` while open; `active`, `rolled_back` once
    /// decided.
    pub stage: Stage,
    /// The share of users served the candidate (0 in shadow).
    pub share: f64,
    /// While paused, labelled outcomes are kept but nothing is decided.
    pub paused: bool,
    /// Set once decided.
    pub verdict: Option<Verdict>,
    pub policy: Policy,
    pub stats: Stats,
    /// RFC 3339.
    pub started_at: String,
    pub decided_at: Option<String>,
    pub job_id: Option<String>,
    /// Every stage change, oldest first.
    pub transitions: Vec<TransitionRecord>,
}

/// One row of the audit table: a stage change, why, who, and the statistics behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// RFC 3339.
    pub at: String,
    pub from: Stage,
    pub to: Stage,
    /// The share of users served the candidate after the change.
    pub share: f64,
    pub reason: Reason,
    /// The admin who did it; `None` for the controller.
    pub actor: Option<String>,
    pub stats: Stats,
}

/// `GET /admin/models/{name}/rollouts`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutList {
    pub model: String,
    pub rollouts: Vec<RolloutRecord>,
}

/// What an admin may do to an open rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutAction {
    /// Keep labelled outcomes, decide nothing, hold the share.
    Pause,
    Resume,
    /// Roll the candidate back now.
    Abort,
    /// Promote the candidate now.
    Promote,
}

impl RolloutAction {
    pub const ALL: [RolloutAction; 4] = [
        RolloutAction::Pause,
        RolloutAction::Resume,
        RolloutAction::Abort,
        RolloutAction::Promote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RolloutAction::Pause => "pause",
            RolloutAction::Resume => "resume",
            RolloutAction::Abort => "abort",
            RolloutAction::Promote => "promote",
        }
    }

    pub fn parse(s: &str) -> Option<RolloutAction> {
        RolloutAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// What a served prediction keeps of the rollout open when it was served: which version
/// answered, and each version's digit once it is known (the other version runs in shadow after
/// the answer; its digit is `None` until then, or for good when the shadow queue was full).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedRollout {
    pub rollout_id: String,
    /// The version that answered the user.
    pub served: Arm,
    pub active_version: i32,
    pub candidate_version: i32,
    pub active_prediction: Option<u8>,
    pub candidate_prediction: Option<u8>,
}
