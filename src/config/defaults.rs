//! Every default of the config file, by section: what a key is when the file leaves it out.
//! Validation reads them from here, so a default is written once and documented once.

use std::time::Duration;

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub mod server {
    use super::*;
    pub const CONNECT_TIMEOUT: Duration = secs(5);
    pub const READ_TIMEOUT: Duration = secs(60);
    pub const WRITE_TIMEOUT: Duration = secs(60);
    pub const IDLE_TIMEOUT: Duration = secs(60);
    pub const HEADER_TIMEOUT: Duration = secs(15);
    pub const CLIENT_IDLE_TIMEOUT: Duration = secs(60);
}

pub mod oidc {
    use super::*;
    pub const PATH_PREFIX: &str = "/oauth2";
    pub const STATE_COOKIE_NAME: &str = "oidc_state";
    pub const JWK_CACHE_LIFETIME: Duration = secs(3600);
    pub const MAX_CLOCK_SKEW: Duration = secs(60);
    pub const MIN_ACCESS_TOKEN_LIFETIME_LEFT: Duration = secs(180);
    pub const HTTP_TIMEOUT: Duration = secs(10);
    pub const SECRET_EXPIRY_WARNING: Duration = secs(30 * 24 * 3600);
    pub const ACCEPT_UNSIGNED_TOKENS: bool = false;
    /// `identity_providers.*.groups_claim`.
    pub const GROUPS_CLAIM: &str = "groups";
}

pub mod session {
    use super::*;
    pub const COOKIE_NAME: &str = "_sso_session";
    pub const SECURE: bool = true;
    pub const MAX_AGE: Duration = secs(12 * 3600);
}

pub mod headers {
    pub const PREFIX: &str = "X-SSO-";
    pub const FORWARD_ACCESS_TOKEN: bool = false;
    pub const ASSERTION: bool = true;
    pub const MAX_GROUPS: usize = 100;
}

pub mod log {
    pub const LEVEL: &str = "info";
}

pub mod limits {
    pub const MAX_HEADER_BYTES: usize = 32 * 1024;
    pub const MAX_HEADERS: usize = 100;
    pub const MAX_CONNECTIONS: usize = 10_000;
    pub const MAX_CONNECTIONS_PER_CLIENT: usize = 256;
    pub const LOGIN_REQUESTS_PER_MINUTE: u32 = 60;
}

pub mod store {
    use super::*;
    pub const TIMEOUT: Duration = Duration::from_millis(250);
    pub const LOAD_TIMEOUT: Duration = secs(10);
    pub const KEY_PREFIX: &str = "sso-sidecar:";
}

pub mod commercetools {
    use super::*;
    pub const CUSTOMER_ID_CLAIM: &str = "oid";
    pub const INCLUDE_CUSTOMER_ID: bool = true;
    pub const SCOPE_CLAIM: &str = "groups";
    pub const CUSTOMER_GROUP_CLAIM: &str = "groups";
    pub const INTROSPECTION_DEADLINE: Duration = Duration::from_millis(400);
    /// `[commercetools.api].timeout`.
    pub const API_TIMEOUT: Duration = secs(2);
}

pub mod organizations {
    /// `local_login_url`: the backend's own login.
    pub const LOCAL_LOGIN_URL: &str = "/";
}
