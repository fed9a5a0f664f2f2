use openidconnect::core::CoreErrorResponseType;
use openidconnect::{RequestTokenError, StandardErrorResponse};

/// Why a login could not be completed. Each maps to a page a person can read and to a
/// `reason` label on `sso_sidecar_logins_failed_total`.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the identity provider reported {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Idp {
        error: String,
        description: Option<String>,
    },
    #[error("no sign-in was started in this browser, or it took too long")]
    MissingState,
    #[error("the sign-in response does not belong to a sign-in started in this browser")]
    StateMismatch,
    #[error("the callback carried no authorization code")]
    MissingCode,
    #[error("the identity provider refused the authorization code: {0}")]
    CodeRejected(String),
    #[error("the ID token was not accepted: {0}")]
    InvalidIdToken(String),
    #[error("the ID token is signed with a key the identity provider does not publish")]
    UnknownSigningKey,
    #[error("the identity provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the identity provider's answer could not be read: {0}")]
    BadResponse(String),
    #[error("{0}")]
    Backend(String),
    #[error("the identity provider is not configured for this: {0}")]
    Misconfigured(String),
}

impl LoginError {
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::Idp { .. } => "idp_error",
            LoginError::MissingState => "missing_state",
            LoginError::StateMismatch => "state_mismatch",
            LoginError::MissingCode => "missing_code",
            LoginError::CodeRejected(_) => "code_rejected",
            LoginError::InvalidIdToken(_) | LoginError::UnknownSigningKey => "invalid_id_token",
            LoginError::Unreachable(_) => "idp_unreachable",
            LoginError::BadResponse(_) => "bad_response",
            LoginError::Backend(_) => "backend_refused",
            LoginError::Misconfigured(_) => "misconfigured",
        }
    }

    pub fn from_token_error<RE: std::error::Error + 'static>(
        error: RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
    ) -> Self {
        match error {
            RequestTokenError::ServerResponse(response) => {
                LoginError::CodeRejected(response.error().to_string())
            }
            RequestTokenError::Request(e) => LoginError::Unreachable(e.to_string()),
            RequestTokenError::Parse(e, _) => LoginError::BadResponse(e.to_string()),
            RequestTokenError::Other(e) => LoginError::BadResponse(e),
        }
    }
}
