//! The sidecar's sign-in links: `/oauth2/start` with where to return and, where known,
//! the organization. Every retry and "sign in again" link is built here.

use super::urlencode;

#[derive(Clone)]
pub struct SignInLinks {
    start_path: String,
    logout_path: String,
    sessions_path: String,
}

impl SignInLinks {
    pub fn new(path_prefix: &str) -> Self {
        SignInLinks {
            start_path: format!("{path_prefix}/start"),
            logout_path: format!("{path_prefix}/logout"),
            sessions_path: format!("{path_prefix}/sessions"),
        }
    }

    /// `/oauth2/start`, where a user chooses the organization.
    pub fn start(&self) -> &str {
        &self.start_path
    }

    pub fn logout(&self) -> &str {
        &self.logout_path
    }

    /// `/oauth2/sessions`, where people see and end their sessions.
    pub fn sessions(&self) -> &str {
        &self.sessions_path
    }

    /// Sign in again at the session's IdP, stronger or more recently (step-up), and come
    /// back to `return_to`.
    pub fn step_up(
        &self,
        return_to: &str,
        org: &str,
        idp: &str,
        challenge: &super::step_up::Challenge,
    ) -> String {
        let mut login = self.sign_in(return_to, Some(org));
        login.push_str("&idp=");
        login.push_str(&urlencode(idp));
        login.push_str(&challenge.query());
        login
    }

    /// Sign in and come back to `return_to`, for `org` when it is known.
    pub fn sign_in(&self, return_to: &str, org: Option<&str>) -> String {
        let mut login = format!("{}?rd={}", self.start_path, urlencode(return_to));
        if let Some(org) = org {
            login.push_str("&org=");
            login.push_str(&urlencode(org));
        }
        login
    }
}
