use common::db::DbError;
use common::{ApiError, ErrorCode};

/// Everything feedback-svc can answer with besides success; each maps to one JSON error.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// The seed's message for a missing field.
    #[error("Prediction and correct flag required")]
    MissingFields,
    #[error("{0}")]
    InvalidBody(String),
    #[error("{0}")]
    InvalidField(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    InvalidPath(String),
    #[error("{0}")]
    InvalidIdempotencyKey(String),
    #[error("This Idempotency-Key was already used for a different request.")]
    IdempotencyKeyReused,
    /// Also for a prediction of another user: whether it exists is not theirs to learn.
    #[error("No prediction `{0}` of yours is known; it may have expired.")]
    UnknownPrediction(String),
    #[error("`prediction` is {sent}, but the prediction served was {served}.")]
    PredictionMismatch { sent: i32, served: i32 },
    #[error("{0}")]
    NotFound(String),
    #[error("The prediction service is unavailable; try again shortly.")]
    PredictUnavailable,
    #[error("The prediction service answered something unexpected.")]
    PredictInvalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
    /// An unexpected failure: logged with its causes.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<&FeedbackError> for ApiError {
    fn from(e: &FeedbackError) -> Self {
        use FeedbackError::*;
        let code = match e {
            MissingFields => ErrorCode::MissingField,
            InvalidBody(_) => ErrorCode::InvalidBody,
            InvalidField(_) => ErrorCode::InvalidField,
            InvalidQuery(_) => ErrorCode::InvalidQuery,
            InvalidPath(_) => ErrorCode::InvalidPath,
            InvalidIdempotencyKey(_) => ErrorCode::InvalidIdempotencyKey,
            IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            UnknownPrediction(_) => ErrorCode::UnknownPrediction,
            PredictionMismatch { .. } => ErrorCode::PredictionMismatch,
            NotFound(_) => ErrorCode::NotFound,
            PredictUnavailable => ErrorCode::PredictionServiceUnavailable,
            PredictInvalid(cause) => {
                tracing::error!(cause = %cause, "invalid answer from predict-svc");
                ErrorCode::BadUpstream
            }
            Db(e) => return e.into(),
            Internal(e) => return ApiError::internal(e.as_ref()),
        };
        ApiError::new(code, e.to_string())
    }
}

common::respond_as_api_error!(FeedbackError);
common::from_query_error!(FeedbackError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_keeps_its_code_status_and_sentence() {
        use FeedbackError::*;
        let cases = [
            (MissingFields, 400, "missing_field"),
            (InvalidBody("x".into()), 400, "invalid_body"),
            (InvalidField("x".into()), 422, "invalid_field"),
            (InvalidQuery("x".into()), 400, "invalid_query"),
            (InvalidPath("x".into()), 400, "invalid_path"),
            (
                InvalidIdempotencyKey("x".into()),
                400,
                "invalid_idempotency_key",
            ),
            (IdempotencyKeyReused, 422, "idempotency_key_reused"),
            (UnknownPrediction("p".into()), 422, "unknown_prediction"),
            (
                PredictionMismatch { sent: 1, served: 2 },
                422,
                "prediction_mismatch",
            ),
            (NotFound("x".into()), 404, "not_found"),
            (PredictUnavailable, 503, "prediction_service_unavailable"),
            (PredictInvalid("x".into()), 502, "bad_upstream"),
        ];
        common::testing::assert_answers(cases);
    }
}
