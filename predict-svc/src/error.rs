use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use common::ApiError;
use common::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The seed's messages for a missing file and an empty file name.
    #[error("No se encontró el archivo")]
    MissingFile,
    #[error("No se seleccionó ningún archivo")]
    NoFileSelected,
    #[error("The upload is larger than the {limit} bytes allowed.")]
    TooLarge { limit: usize },
    #[error("{}", image_message(.0))]
    Image(#[from] digits::PreprocessError),
    #[error("The request body is not valid multipart/form-data: {0}.")]
    Multipart(String),
    #[error("No model named `{0}`.")]
    UnknownModel(String),
    #[error("No version {1} of model `{0}`.")]
    UnknownVersion(String, i32),
    #[error("No prediction with id `{0}` (it may have expired).")]
    UnknownPrediction(String),
    #[error("{0}")]
    InvalidTensor(String),
    #[error("{0}")]
    BodyTooLarge(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("The body must be JSON, sent with `Content-Type: application/json`.")]
    NotJson,
    #[error(
        "Too many images are being processed; try again in {} s.",
        retry_after.as_secs().max(1)
    )]
    Overloaded { retry_after: std::time::Duration },
    #[error("{0}")]
    InvalidArtifact(String),
    #[error("The model `{0}` is not loaded yet.")]
    ModelUnavailable(String),
    #[error("The prediction store is unavailable; try again shortly.")]
    StoreUnavailable,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Internal(String),
}

/// The preprocessing error as a sentence for the client.
fn image_message(e: &digits::PreprocessError) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => {
            let stop = if text.ends_with('.') { "" } else { "." };
            format!("{}{}{stop}", first.to_uppercase(), chars.as_str())
        }
        None => text,
    }
}

impl From<&PredictError> for ApiError {
    fn from(e: &PredictError) -> Self {
        let msg = e.to_string();
        use PredictError::*;
        match e {
            MissingFile => ApiError::bad_request("missing_file", msg),
            NoFileSelected => ApiError::bad_request("no_file_selected", msg),
            TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", msg)
            }
            Image(e) => {
                let status = match e {
                    digits::PreprocessError::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, e.code(), msg)
            }
            Multipart(_) => ApiError::bad_request("invalid_multipart", msg),
            UnknownModel(_) | UnknownVersion(..) | UnknownPrediction(_) => ApiError::not_found(msg),
            InvalidTensor(_) => ApiError::bad_request("invalid_tensor", msg),
            InvalidJson(_) => ApiError::bad_request("invalid_json", msg),
            BodyTooLarge(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", msg)
            }
            NotJson => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                msg,
            ),
            Overloaded { .. } => ApiError::unavailable("overloaded", msg),
            InvalidArtifact(_) => ApiError::unprocessable("invalid_artifact", msg),
            ModelUnavailable(_) => ApiError::unavailable("model_unavailable", msg),
            StoreUnavailable => ApiError::unavailable("store_unavailable", msg),
            Db(e) => ApiError::from(e),
            Internal(e) => ApiError::internal(e),
        }
    }
}

impl ResponseError for PredictError {
    fn status_code(&self) -> StatusCode {
        ApiError::from(self).status()
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = ApiError::from(self).error_response();
        if let PredictError::Overloaded { retry_after } = self {
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(retry_after.as_secs().max(1)),
            );
        }
        response
    }
}

impl From<crate::registry::RegistryError> for PredictError {
    fn from(e: crate::registry::RegistryError) -> Self {
        match e {
            crate::registry::RegistryError::Db(e) => PredictError::Db(e),
            other => PredictError::Internal(other.to_string()),
        }
    }
}
