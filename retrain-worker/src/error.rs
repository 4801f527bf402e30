//! What can go wrong in the job API and job submission, and how a route answers it.

use actix_web::error::JsonPayloadError;
use common::ApiError;
use common::db::DbError;
use common::kv::StoreError;

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
        use RetrainError::*;
        let msg = e.to_string();
        match e {
            NotJson => {
                let not_json = common::http::json_error(&JsonPayloadError::ContentType);
                ApiError::new(not_json.status(), not_json.code().to_owned(), msg)
            }
            InvalidBody(_) => ApiError::bad_request("invalid_body", msg),
            UnknownModel(_) => ApiError::bad_request("unknown_model", msg),
            InvalidField(_) => ApiError::unprocessable("invalid_field", msg),
            InvalidQuery(_) => ApiError::bad_request("invalid_query", msg),
            UnknownJob(_) => ApiError::not_found(msg),
            QueueUnavailable(cause) => {
                tracing::warn!(error = %cause, "cannot enqueue a retrain job");
                ApiError::unavailable("queue_unavailable", msg)
            }
            Db(e) => ApiError::from(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_keeps_its_code_and_status() {
        let cases = [
            (RetrainError::NotJson, 415, "unsupported_media_type"),
            (RetrainError::InvalidBody("x".into()), 400, "invalid_body"),
            (RetrainError::UnknownModel("m".into()), 400, "unknown_model"),
            (RetrainError::InvalidField("x".into()), 422, "invalid_field"),
            (RetrainError::InvalidQuery("x".into()), 400, "invalid_query"),
            (RetrainError::UnknownJob("j".into()), 404, "not_found"),
            (
                RetrainError::QueueUnavailable(StoreError::Decode("down".into())),
                503,
                "queue_unavailable",
            ),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status().as_u16(), api.code()), (status, code));
        }
    }
}
