use common::ApiError;
use common::db::DbError;

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
    #[error("{0}")]
    Internal(String),
}

impl From<&AuthError> for ApiError {
    fn from(e: &AuthError) -> Self {
        let msg = e.to_string();
        match e {
            AuthError::MissingCredentials | AuthError::MissingRefreshToken => {
                ApiError::bad_request("missing_field", msg)
            }
            AuthError::Invalid(_) => ApiError::unprocessable("validation_failed", msg),
            AuthError::UsernameTaken => ApiError::conflict("username_taken", msg),
            AuthError::InvalidCredentials => ApiError::unauthorized("invalid_credentials", msg),
            AuthError::InvalidRefreshToken => ApiError::unauthorized("invalid_refresh_token", msg),
            AuthError::RefreshTokenReused => ApiError::unauthorized("refresh_token_reused", msg),
            AuthError::UserNotFound => ApiError::not_found(msg),
            AuthError::Db(e) => ApiError::from(e),
            AuthError::Internal(e) => ApiError::internal(e),
        }
    }
}

common::respond_as_api_error!(AuthError);

impl From<diesel::result::Error> for AuthError {
    fn from(e: diesel::result::Error) -> Self {
        AuthError::Db(DbError::Query(e))
    }
}
