use openidconnect::core::CoreErrorResponseType;
use openidconnect::{RequestTokenError, StandardErrorResponse};

/// How much of an IdP's `error_description` a page shows.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// Authorization error codes of RFC 6749 §4.1.2.1 and OpenID Connect Core §3.1.2.6.
const KNOWN_ERROR_CODES: [&str; 15] = [
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
];

/// Why a login could not be completed. Each maps to a page a person can read and to a
/// `reason` label on `sso_sidecar_logins_failed_total`.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The IdP's `error` answer. `code` is one of the codes OAuth 2.0 and OpenID Connect
    /// define, or `None` for anything else; the description is cut short. Both are shown
    /// on the shop's origin, so neither may carry arbitrary text.
    #[error("the identity provider refused the sign-in{}{}", code.map(|c| format!(" ({c})")).unwrap_or_default(), description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Idp {
        code: Option<&'static str>,
        description: Option<String>,
    },
    #[error("the sign-in response names another identity provider than the one the sign-in was started with")]
    IssuerMismatch,
    #[error("this sign-in has expired or was started in another browser")]
    MissingState,
    #[error("this sign-in has expired or was started in another browser")]
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
    /// The shop limits sign-ins and asked to wait this many seconds.
    #[error("the shop has too many sign-ins at the moment; please try again in {0} seconds")]
    BackendBusy(u64),
    /// The shop has no account for this user and the organization may not create one.
    #[error("your account is not known to the shop, and it cannot be created here; please ask the shop to set it up")]
    UnknownToShop,
    /// The organization's `members` rules do not admit this account.
    #[error("the account {} is not a member of {organization}", email.as_deref().unwrap_or("you signed in with"))]
    NotAMember {
        organization: String,
        email: Option<String>,
    },
    #[error("the identity provider is not configured for this: {0}")]
    Misconfigured(String),
    /// A step-up sign-in that came back weaker or older than asked.
    #[error("this page needs a stronger or more recent sign-in than the identity provider gave; sign in again, with the second factor if you are asked for one")]
    StepUpNotGiven,
    /// A step-up sign-in of another person than the one signed in.
    #[error("you signed in as someone else than the person signed in here; sign out first to change who is signed in")]
    StepUpOtherUser,
}

impl LoginError {
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::Idp { .. } => "idp_error",
            LoginError::IssuerMismatch => "issuer_mismatch",
            LoginError::MissingState => "missing_state",
            LoginError::StateMismatch => "state_mismatch",
            LoginError::MissingCode => "missing_code",
            LoginError::CodeRejected(_) => "code_rejected",
            LoginError::InvalidIdToken(_) | LoginError::UnknownSigningKey => "invalid_id_token",
            LoginError::Unreachable(_) => "idp_unreachable",
            LoginError::BadResponse(_) => "bad_response",
            LoginError::Backend(_) => "backend_refused",
            LoginError::BackendBusy(_) => "backend_busy",
            LoginError::NotAMember { .. } => "not_a_member",
            LoginError::UnknownToShop => "unknown_user",
            LoginError::StepUpNotGiven => "step_up_not_given",
            LoginError::StepUpOtherUser => "step_up_other_user",
            LoginError::Misconfigured(_) => "misconfigured",
        }
    }

    /// An IdP error answer as it may be shown: a known code and at most
    /// [`MAX_DESCRIPTION_CHARS`] characters of the description (the page escapes them).
    pub fn from_idp(error: &str, description: Option<&str>) -> Self {
        let code = KNOWN_ERROR_CODES
            .iter()
            .copied()
            .find(|known| *known == error);
        let description = description
            .map(|d| {
                d.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_DESCRIPTION_CHARS)
                    .collect::<String>()
            })
            .filter(|d| !d.trim().is_empty());
        LoginError::Idp { code, description }
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
