use common::db::DbError;
use common::{ApiError, ErrorCode};

/// Everything auth-svc can answer with besides success; each maps to one JSON error.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The seed's message for a missing field.
    #[error("Username and password required")]
    MissingCredentials,
    #[error("refresh_token required")]
    MissingRefreshToken,
    #[error("{0}")]
    Invalid(String),
    #[error("That user name is taken.")]
    UsernameTaken,
    #[error("Invalid username or password.")]
    InvalidCredentials,
    #[error("The refresh token is invalid or expired.")]
    InvalidRefreshToken,
    #[error("The refresh token was already used; every session of that login has been revoked.")]
    RefreshTokenReused,
    #[error("Usuario no encontrado")]
    UserNotFound,
    #[error(transparent)]
    Db(#[from] DbError),
    /// An unexpected failure (signing, randomness, the bcrypt task): logged with its causes.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<&AuthError> for ApiError {
    fn from(e: &AuthError) -> Self {
        let code = match e {
            AuthError::MissingCredentials | AuthError::MissingRefreshToken => {
                ErrorCode::MissingField
            }
            AuthError::Invalid(_) => ErrorCode::ValidationFailed,
            AuthError::UsernameTaken => ErrorCode::UsernameTaken,
            AuthError::InvalidCredentials => ErrorCode::InvalidCredentials,
            AuthError::InvalidRefreshToken => ErrorCode::InvalidRefreshToken,
            AuthError::RefreshTokenReused => ErrorCode::RefreshTokenReused,
            AuthError::UserNotFound => ErrorCode::NotFound,
            AuthError::Db(e) => return e.into(),
            AuthError::Internal(e) => return ApiError::internal(e.as_ref()),
        };
        ApiError::new(code, e.to_string())
    }
}

common::respond_as_api_error!(AuthError);
common::from_query_error!(AuthError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_keeps_its_code_status_and_sentence() {
        use AuthError::*;
        let cases = [
            (MissingCredentials, 400, "missing_field"),
            (MissingRefreshToken, 400, "missing_field"),
            (Invalid("Too short.".into()), 422, "validation_failed"),
            (UsernameTaken, 409, "username_taken"),
            (InvalidCredentials, 401, "invalid_credentials"),
            (InvalidRefreshToken, 401, "invalid_refresh_token"),
            (RefreshTokenReused, 401, "refresh_token_reused"),
            (UserNotFound, 404, "not_found"),
        ];
        common::testing::assert_answers(cases);
    }

    #[test]
    fn an_internal_error_tells_the_client_nothing_of_its_cause() {
        let error = AuthError::Internal(anyhow::anyhow!("the key file is gone").context("signing"));
        let api = ApiError::from(&error);
        assert_eq!(
            (api.status().as_u16(), api.code()),
            (500, ErrorCode::InternalError)
        );
        assert!(!api.msg().contains("key file"), "{}", api.msg());
    }
}
