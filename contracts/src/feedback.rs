//! feedback-svc's stored feedback as others see it, and `GET /internal/feedback/labelled`
//! (scope `feedback:read`, caller retrain-worker).

use serde::{Deserialize, Serialize};

/// A stored feedback: the seed's `to_dict()` fields plus its link to a prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub id: i64,
    pub username: String,
    pub prediction: i32,
    pub correct: bool,
    pub comment: String,
    /// Creation time, UTC, microseconds (`2026-11-29T10:15:30.123456Z`).
    pub timestamp: String,
    pub prediction_id: Option<String>,
    /// The true digit (`prediction` when correct); null when unknown.
    pub label: Option<i32>,
    pub model: Option<String>,
    pub model_version: Option<i32>,
}

/// The query of `GET /internal/feedback/labelled`: the feedback after id `after` (0: from the
/// start), at most `limit` (1 to 1,000; 100 by default), committed before the snapshot `as_of`.
///
/// A reader leaves `as_of` out on its first page: feedback-svc then takes a snapshot of what is
/// committed now and answers it in the page; passing it back on every later page makes all the
/// pages one consistent set (every row committed before the first page, exactly once, and
/// nothing committed later, whatever the order of ids and commits).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelledQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// A snapshot a page answered (opaque to the reader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
}

/// One page of labelled feedback, oldest first. Pass `next_cursor` as the next `after` and
/// `as_of` as the next `as_of`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledPage {
    pub items: Vec<LabelledItem>,
    pub next_cursor: i64,
    pub has_more: bool,
    /// The snapshot the page was read in.
    #[serde(default)]
    pub as_of: String,
}

/// A labelled feedback with the input the model saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledItem {
    pub id: i64,
    /// Who labelled it (the token's `sub`): a training job caps what one user contributes.
    #[serde(default)]
    pub user_id: String,
    /// Labelled by an admin: a confirmed label, used to judge candidates and never trained on.
    #[serde(default)]
    pub trusted: bool,
    pub label: Option<i32>,
    pub model: Option<String>,
    pub model_version: Option<i32>,
    /// Base64 of the 28×28 grey grid; null when the feedback names no prediction.
    pub input: Option<String>,
    pub created_at: String,
}
