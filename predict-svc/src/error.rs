use common::db::DbError;
use common::{ApiError, ErrorCode};

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
    #[error("No such rollout: {0}.")]
    UnknownRollout(String),
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
    #[error("{0}")]
    RolloutClosed(String),
    #[error("{0}.")]
    InvalidRollout(String),
    #[error(transparent)]
    Db(#[from] DbError),
    /// An unexpected failure: logged with its causes.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
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

/// The code of a preprocessing failure (a new kind of failure must be given one here).
fn image_code(e: &digits::PreprocessError) -> ErrorCode {
    use digits::PreprocessError::*;
    match e {
        NotAnImage => ErrorCode::NotAnImage,
        Corrupt { .. } => ErrorCode::CorruptImage,
        TooLarge(_) => ErrorCode::ImageTooLarge,
        Empty => ErrorCode::EmptyImage,
    }
}

impl From<&PredictError> for ApiError {
    fn from(e: &PredictError) -> Self {
        use PredictError::*;
        let code = match e {
            MissingFile => ErrorCode::MissingFile,
            NoFileSelected => ErrorCode::NoFileSelected,
            TooLarge { .. } | BodyTooLarge(_) => ErrorCode::PayloadTooLarge,
            Image(e) => image_code(e),
            Multipart(_) => ErrorCode::InvalidMultipart,
            UnknownModel(_) | UnknownVersion(..) | UnknownPrediction(_) | UnknownRollout(_) => {
                ErrorCode::NotFound
            }
            InvalidTensor(_) => ErrorCode::InvalidTensor,
            InvalidJson(_) => ErrorCode::InvalidJson,
            NotJson => ErrorCode::UnsupportedMediaType,
            Overloaded { retry_after } => {
                return ApiError::new(ErrorCode::Overloaded, e.to_string())
                    .with_retry_after(*retry_after);
            }
            InvalidArtifact(_) => ErrorCode::InvalidArtifact,
            ModelUnavailable(_) => ErrorCode::ModelUnavailable,
            StoreUnavailable => ErrorCode::StoreUnavailable,
            RolloutClosed(_) => ErrorCode::RolloutClosed,
            InvalidRollout(_) => ErrorCode::ValidationFailed,
            Db(e) => return e.into(),
            Internal(e) => return ApiError::internal(e.as_ref()),
        };
        ApiError::new(code, e.to_string())
    }
}

common::respond_as_api_error!(PredictError);

impl From<crate::controller::ControllerError> for PredictError {
    fn from(e: crate::controller::ControllerError) -> Self {
        use crate::controller::ControllerError as C;
        match e {
            C::Db(e) => PredictError::Db(e),
            C::UnknownVersion(name, version) => PredictError::UnknownVersion(name, version),
            C::UnknownRollout(..) => PredictError::UnknownRollout(e.to_string()),
            C::Invalid(why) => PredictError::InvalidRollout(why),
            C::Closed(how) => PredictError::RolloutClosed(format!(
                "The rollout has ended ({how}); nothing more can be done to it."
            )),
            other => PredictError::Internal(other.into()),
        }
    }
}

impl From<crate::registry::RegistryError> for PredictError {
    fn from(e: crate::registry::RegistryError) -> Self {
        match e {
            crate::registry::RegistryError::Db(e) => PredictError::Db(e),
            other => PredictError::Internal(other.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use digits::PreprocessError;
    use std::time::Duration;

    #[test]
    fn each_error_keeps_its_code_status_and_sentence() {
        use PredictError::*;
        let cases = [
            (MissingFile, 400, "missing_file"),
            (NoFileSelected, 400, "no_file_selected"),
            (TooLarge { limit: 1 }, 413, "payload_too_large"),
            (BodyTooLarge("x".into()), 413, "payload_too_large"),
            (Image(PreprocessError::NotAnImage), 415, "not_an_image"),
            (Image(PreprocessError::Empty), 400, "empty_image"),
            (
                Image(PreprocessError::TooLarge("Big.".into())),
                400,
                "image_too_large",
            ),
            (Multipart("x".into()), 400, "invalid_multipart"),
            (UnknownModel("m".into()), 404, "not_found"),
            (InvalidTensor("x".into()), 400, "invalid_tensor"),
            (InvalidJson("x".into()), 400, "invalid_json"),
            (NotJson, 415, "unsupported_media_type"),
            (InvalidArtifact("x".into()), 422, "invalid_artifact"),
            (ModelUnavailable("m".into()), 503, "model_unavailable"),
            (StoreUnavailable, 503, "store_unavailable"),
            (RolloutClosed("x".into()), 409, "rollout_closed"),
            (UnknownRollout("r".into()), 404, "not_found"),
            (InvalidRollout("r".into()), 422, "validation_failed"),
        ];
        common::testing::assert_answers(cases);
    }

    #[test]
    fn overloaded_says_when_to_come_back() {
        let error = PredictError::Overloaded {
            retry_after: Duration::from_secs(1),
        };
        let response = actix_web::ResponseError::error_response(&error);
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(response.headers().get("retry-after").unwrap(), "1");
    }
}
