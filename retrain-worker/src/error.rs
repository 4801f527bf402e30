//! What can go wrong in the job API and job submission, and how a route answers it.

use common::db::DbError;
use common::error::Chain;
use common::kv::StoreError;
use common::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    #[error("A body must be JSON, sent with `Content-Type: application/json`.")]
    NotJson,
    #[error("{0}")]
    InvalidBody(String),
    #[error("There is no model `{0}`; retrain `mnist-cnn` (v2) or `mnist-mlp` (v1).")]
    UnknownModel(String),
    #[error("{0}")]
    InvalidField(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("There is no retrain job `{0}`.")]
    UnknownJob(String),
    #[error("The job queue is unavailable; try again shortly.")]
    QueueUnavailable(#[source] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<RetrainError> for ApiError {
    fn from(e: RetrainError) -> Self {
        ApiError::from(&e)
    }
}

impl From<&RetrainError> for ApiError {
    fn from(e: &RetrainError) -> Self {
        use RetrainError::*;
        let code = match e {
            NotJson => ErrorCode::UnsupportedMediaType,
            InvalidBody(_) => ErrorCode::InvalidBody,
            UnknownModel(_) => ErrorCode::UnknownModel,
            InvalidField(_) => ErrorCode::InvalidField,
            InvalidQuery(_) => ErrorCode::InvalidQuery,
            UnknownJob(_) => ErrorCode::NotFound,
            QueueUnavailable(cause) => {
                tracing::warn!(error = %Chain(cause), "cannot enqueue a retrain job");
                ErrorCode::QueueUnavailable
            }
            Db(e) => return e.into(),
        };
        ApiError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_keeps_its_code_status_and_sentence() {
        use RetrainError::*;
        let cases = [
            (NotJson, 415, "unsupported_media_type"),
            (InvalidBody("x".into()), 400, "invalid_body"),
            (UnknownModel("m".into()), 400, "unknown_model"),
            (InvalidField("x".into()), 422, "invalid_field"),
            (InvalidQuery("x".into()), 400, "invalid_query"),
            (UnknownJob("j".into()), 404, "not_found"),
            (
                QueueUnavailable(StoreError::Decode("down".into())),
                503,
                "queue_unavailable",
            ),
        ];
        common::testing::assert_answers(cases);
    }
}
