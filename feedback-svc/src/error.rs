use actix_web::http::StatusCode;
use common::ApiError;
use common::db::DbError;

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
    #[error("{0}")]
    Internal(String),
}

impl From<&FeedbackError> for ApiError {
    fn from(e: &FeedbackError) -> Self {
        use FeedbackError::*;
        let msg = e.to_string();
        match e {
            MissingFields => ApiError::bad_request("missing_field", msg),
            InvalidBody(_) => ApiError::bad_request("invalid_body", msg),
            InvalidField(_) => ApiError::unprocessable("invalid_field", msg),
            InvalidQuery(_) => ApiError::bad_request("invalid_query", msg),
            InvalidIdempotencyKey(_) => ApiError::bad_request("invalid_idempotency_key", msg),
            IdempotencyKeyReused => ApiError::unprocessable("idempotency_key_reused", msg),
            UnknownPrediction(_) => ApiError::unprocessable("unknown_prediction", msg),
            PredictionMismatch { .. } => ApiError::unprocessable("prediction_mismatch", msg),
            NotFound(_) => ApiError::not_found(msg),
            PredictUnavailable => ApiError::unavailable("prediction_service_unavailable", msg),
            PredictInvalid(cause) => {
                tracing::error!(cause = %cause, "invalid answer from predict-svc");
                ApiError::new(StatusCode::BAD_GATEWAY, "bad_upstream", msg)
            }
            Db(e) => ApiError::from(e),
            Internal(e) => ApiError::internal(e),
        }
    }
}

common::respond_as_api_error!(FeedbackError);

impl From<diesel::result::Error> for FeedbackError {
    fn from(e: diesel::result::Error) -> Self {
        FeedbackError::Db(DbError::Query(e))
    }
}
