//! The validated configuration. Everything here has been checked once, in `validate`;
//! code downstream relies on it and does not check again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use url::Url;

use super::choice::choice;
pub use super::choice::Choice;
use super::secret::Secret;

impl Config {
    /// The `acr` values each step-up route asks of the IdPs that sign people in for it
    /// (those of its pinned organization, or of any organization).
    pub fn acr_values_wanted(&self) -> Vec<AcrWanted> {
        let idps_of = |org: &Organization| org.identity_providers.clone();
        self.routes
            .iter()
            .enumerate()
            .filter_map(|(route, r)| {
                let acr_values = r.step_up.as_ref()?.acr_values.clone();
                let mut idps: Vec<String> = match &r.organization {
                    Some(key) => self.organizations.get(key).map(idps_of).unwrap_or_default(),
                    None => self.organizations.values().flat_map(idps_of).collect(),
                };
                idps.sort();
                idps.dedup();
                (!acr_values.is_empty()).then_some(AcrWanted {
                    route,
                    idps,
                    acr_values,
                })
            })
            .collect()
    }
}

/// A route's `acr_values` and the IdPs asked for them ([`Config::acr_values_wanted`]).
#[derive(Debug, Clone)]
pub struct AcrWanted {
    pub route: usize,
    pub idps: Vec<String>,
    pub acr_values: Vec<String>,
}

impl AcrWanted {
    /// A warning when `idp` is asked for values it does not list in `supported`
    /// (its discovery's `acr_values_supported`): that step-up can never pass.
    pub fn unsupported_by(&self, idp: &str, supported: &[String]) -> Option<String> {
        if !self.idps.iter().any(|k| k == idp) {
            return None;
        }
        let missing: Vec<&str> = (self.acr_values.iter())
            .filter(|v| !supported.contains(v))
            .map(String::as_str)
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "routes[{}].acr_values: identity provider {idp} does not list {} in acr_values_supported",
                self.route,
                missing.join(", ")
            )
        })
    }
}

/// `[limits]`, validated.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per client IP and minute to `/oauth2/start` and `/oauth2/callback`;
    /// 0 turns the limit off.
    pub login_requests_per_minute: u32,
    /// Request heads over this many bytes or header lines get `431`.
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Client connections at once, and from one address (trusted proxies count only
    /// towards the total); more are closed at accept.
    pub max_connections: usize,
    pub max_connections_per_client: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file the config was read from, for messages.
    pub source: PathBuf,
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub oidc: OidcConfig,
    pub session: SessionConfig,
    pub headers: HeaderConfig,
    pub log: LogConfig,
    pub backend: BackendConfig,
    pub limits: Limits,
    /// Where state shared between replicas lives.
    pub store: StoreConfig,
    /// `[pages]`: the look and language of the sidecar's own pages.
    pub pages: PagesConfig,
    /// `[[ssf.transmitters]]`: who may push Shared Signals events.
    pub ssf_transmitters: Vec<SsfTransmitter>,
    /// `/oauth2/introspect` for commercetools external OAuth; `None` disables it.
    pub commercetools: Option<CommercetoolsConfig>,
    pub identity_providers: BTreeMap<String, IdentityProvider>,
    pub organizations: BTreeMap<String, Organization>,
    pub routes: Vec<Route>,
    /// Things that are allowed but probably not meant; printed by `check` and logged at start.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub upstream: Upstream,
    pub public_url: Option<Url>,
    pub trusted_proxies: Vec<IpNet>,
    pub threads: usize,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    /// A client must send a complete request head within this (`408` otherwise).
    pub header_timeout: Duration,
    /// Idle keep-alive client connections are closed after this.
    pub client_idle_timeout: Duration,
    /// `server.tls`: TLS termination with this certificate (HTTP/2 offered by ALPN).
    pub tls: Option<crate::tls::ServerCertificate>,
    /// `server.upstream_ca`: DER certificates an `https://` upstream's chain may end at,
    /// instead of the system's roots (a private CA).
    pub upstream_ca: Option<Vec<Vec<u8>>>,
    /// `server.preserve_header_case`: header names go on as the client and the upstream
    /// spelled them (a second map per head); otherwise standard names titled, others in
    /// lower case.
    pub preserve_header_case: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub url: Url,
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Upstream {
    /// `host:port` as pingora expects it for a peer address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// `admin.token`: the bearer token of the admin API (`/admin/*`); without it the API
    /// answers `404`.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// `intershop.identityProvider.remote`: when false only `local` IdPs are offered.
    pub remote: bool,
    pub jwk_cache_lifetime: Duration,
    pub max_clock_skew: Duration,
    pub min_access_token_lifetime_left: Duration,
    pub state_cookie_name: String,
    pub accept_unsigned_tokens: bool,
    /// Where the sidecar's own endpoints live (`/oauth2`).
    pub path_prefix: String,
    /// Timeout for each call to an identity provider.
    pub http_timeout: Duration,
    /// Warn this long before a `client_secret_expire_at`.
    pub secret_expiry_warning: Duration,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub cookie_name: String,
    /// AES-256 keys; the first encrypts, all decrypt.
    pub keys: Vec<SessionKey>,
    pub max_age: Duration,
    pub idle_timeout: Option<Duration>,
    pub secure: bool,
    pub same_site: SameSite,
    pub domain: Option<String>,
    /// Form `POST`s up to this size on `required` routes survive a sign-in (0: off).
    pub preserve_post_max: usize,
}

/// `[store]`: `memory` keeps everything in this process; `redis` shares refresh results,
/// revocations and (optionally) whole sessions between replicas.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    pub redis: Option<RedisConfig>,
    /// `store.path`: without Redis, the file that keeps revocations across restarts.
    pub path: Option<std::path::PathBuf>,
}

/// `[pages]`, read and checked as far as a config can be: the files are read here; their
/// templates and messages are compiled and checked by `crate::pages`.
#[derive(Debug, Clone, Default)]
pub struct PagesConfig {
    /// The look where no host has its own.
    pub look: PageLook,
    /// By canonical host name: that host's look (unset keys taken from `look`).
    pub hosts: BTreeMap<String, PageLook>,
    /// `pages.templates`: (file name, source) of each template that replaces a shipped one.
    pub templates: Vec<(String, String)>,
    /// `pages.messages`: (language tag, file name, source) of each message catalog.
    pub messages: Vec<(String, String, String)>,
    pub default_language: String,
    /// The languages pages are offered in, in the order of preference for ties.
    pub languages: Vec<String>,
}

/// How the pages look on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageLook {
    pub shop_name: Option<String>,
    /// An `https://` URL or a path on the shop (`/static/logo.svg`).
    pub logo_url: Option<String>,
    /// `#rrggbb`, dark enough for white text on it (4.5:1).
    pub accent_color: Option<String>,
    /// An e-mail address, an `https://` URL or a line of text (a phone number).
    pub support_contact: Option<String>,
    /// The CSS of `pages.stylesheet`, served by the sidecar.
    pub stylesheet: Option<std::sync::Arc<str>>,
}

/// A Shared Signals transmitter (OpenID SSF 1.0) whose Security Event Tokens are taken
/// at `/oauth2/ssf/events` (push delivery, RFC 8935).
#[derive(Debug, Clone)]
pub struct SsfTransmitter {
    /// The SETs' `iss`, exactly.
    pub issuer: String,
    /// Where its signing keys are published.
    pub jwks_uri: Url,
    /// What the SETs' `aud` must hold: this receiver.
    pub audience: String,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db`, `redis+sentinel://host:port,…/master[/db]`,
    /// or with `cluster` several `redis://` nodes, comma-separated; a secret as it may
    /// carry a password.
    pub url: Secret,
    /// `url` lists the nodes of a Redis Cluster.
    pub cluster: bool,
    pub key_prefix: String,
    /// Per Redis call; past it the call counts as failed and local behaviour takes over.
    pub timeout: Duration,
    /// For loading all kept revocations at start or reconnection, in batches.
    pub load_timeout: Duration,
    /// The cookie holds only a session id and key; the session itself lives in Redis.
    pub server_side_sessions: bool,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(pub [u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

choice!(SameSite { Lax => "Lax", Strict => "Strict", None => "None" });

#[derive(Debug, Clone)]
pub struct HeaderConfig {
    /// Prefix of identity headers, e.g. `X-SSO-`; incoming headers with it are always removed.
    pub prefix: String,
    pub claims: Vec<IdentityHeader>,
    pub forward_access_token: bool,
    /// Headers only a trusted proxy may send (`X-Original-URL`, `X-Real-IP`, ...); removed
    /// from everyone else's requests.
    pub strip_untrusted: Vec<String>,
    /// `X-SSO-Assertion`, the signed identity; `None` when `headers.assertion = false`.
    pub assertion: Option<AssertionConfig>,
    /// At most this many groups go into `X-SSO-Groups` and the session.
    pub max_groups: usize,
}

#[derive(Debug, Clone)]
pub struct AssertionConfig {
    /// `aud` of the assertion; `None` means the upstream's origin.
    pub audience: Option<String>,
    /// PKCS#8 PEM P-256 private keys: the first signs, all are published. Empty: a key is
    /// generated at start.
    pub keys: Vec<Secret>,
}

/// `headers.strip_untrusted` when not set: headers that let a client choose the path, the
/// port or the address after routing on stacks that honour them.
pub const DEFAULT_STRIP_UNTRUSTED: [&str; 6] = [
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Forwarded-Prefix",
    "X-Forwarded-Port",
    "X-Real-IP",
    "X-Forwarded-Server",
];

/// The identity facts the sidecar can forward, each as `<prefix><suffix>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityHeader {
    Subject,
    Email,
    Name,
    PreferredUsername,
    Organization,
    IdentityProvider,
    ExternalId,
    SelfAdministration,
    Groups,
    EmailVerified,
    /// How the user signed in: `acr`, `auth_time`, `amr` (step-up).
    Acr,
    AuthTime,
    Amr,
}

// The names used in `headers.claims`.
choice!(IdentityHeader {
    Subject => "subject",
    Email => "email",
    Name => "name",
    PreferredUsername => "preferred_username",
    Organization => "organization",
    IdentityProvider => "identity_provider",
    ExternalId => "external_id",
    SelfAdministration => "self_administration",
    Groups => "groups",
    EmailVerified => "email_verified",
    Acr => "acr",
    AuthTime => "auth_time",
    Amr => "amr",
});

impl IdentityHeader {
    /// The header name after the prefix.
    pub fn suffix(self) -> &'static str {
        match self {
            IdentityHeader::Subject => "Subject",
            IdentityHeader::Email => "Email",
            IdentityHeader::Name => "Name",
            IdentityHeader::PreferredUsername => "Preferred-Username",
            IdentityHeader::Organization => "Organization",
            IdentityHeader::IdentityProvider => "Identity-Provider",
            IdentityHeader::ExternalId => "External-Id",
            IdentityHeader::SelfAdministration => "Self-Administration",
            IdentityHeader::Groups => "Groups",
            IdentityHeader::EmailVerified => "Email-Verified",
            IdentityHeader::Acr => "Acr",
            IdentityHeader::AuthTime => "Auth-Time",
            IdentityHeader::Amr => "Amr",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

choice!(LogFormat { Text => "text", Json => "json" });

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
    pub audit: AuditLog,
}

/// Where the audit log goes (`log.audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditLog {
    Off,
    Stdout,
    File(std::path::PathBuf),
}

#[derive(Debug, Clone)]
pub struct IdentityProvider {
    pub key: String,
    pub name: String,
    pub kind: IdentityProviderKind,
}

#[derive(Debug, Clone)]
pub enum IdentityProviderKind {
    /// The backend's own login (ICM `local`).
    Local,
    Oidc(Box<OidcProvider>),
}

#[derive(Debug, Clone)]
pub struct OidcProvider {
    /// Exactly as configured: discovery requires the IdP's `issuer` to match it byte for byte.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub client_secret_expire_at: Option<DateTime<Utc>>,
    pub additional_scopes: Vec<String>,
    /// Extra parameters for the IdP's logout URL under `FEDERATED` (e.g. Auth0's `federated`).
    pub logout_params: BTreeMap<String, String>,
    /// Accepted `aud` values of bearer access tokens (default: the client id).
    pub audiences: Vec<String>,
    /// Signature algorithms accepted for every JWT from this IdP (ID, access, logout).
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// `Some("at+jwt")`: the IdP issues RFC 9068 access tokens, whose `typ` must say so.
    pub access_token_type: Option<String>,
    /// Opaque bearer tokens may be introspected at this IdP (RFC 7662).
    pub introspection: bool,
    /// The claim (or dotted path) holding the user's groups, for `X-SSO-Groups`.
    pub groups_claim: String,
    /// Which claim fills which profile field (ICM's OIDCProfileMapper / OIDCLoginNameProvider).
    pub claims: ClaimMapping,
    /// How refresh tokens are asked for (`offline_access`, with `auto` already resolved).
    pub offline_access: OfflineAccess,
    /// `ca_file`: extra roots (PEM, DER-encoded here) trusted for this IdP's HTTPS calls,
    /// besides the system's.
    pub ca_certificates: Vec<Vec<u8>>,
    /// `token_endpoint_auth`: how the sidecar authenticates as the client at the token,
    /// PAR, introspection and revocation endpoints; `None`: the first secret method the
    /// IdP offers (basic, else post).
    pub token_endpoint_auth: Option<TokenEndpointAuth>,
    /// `client_signing_key`: PKCS#8 PEM private keys for `private_key_jwt`; the first
    /// signs, all are published at `/oauth2/client-jwks`.
    pub client_signing_keys: Vec<super::client_key::ClientKey>,
    /// `client_certificate` and `client_certificate_key` (PEM, concatenated) for
    /// `tls_client_auth` (RFC 8705).
    pub client_certificate: Option<Secret>,
    /// `pushed_authorization` (RFC 9126).
    pub pushed_authorization: PushedAuthorization,
    /// `dpop` (RFC 9449): tokens bound to a key of the session's.
    pub dpop: bool,
    /// `resource` (RFC 8707): sent at authorization and token requests.
    pub resource: Vec<String>,
}

/// `identity_providers.<key>.token_endpoint_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEndpointAuth {
    ClientSecretBasic,
    ClientSecretPost,
    ClientSecretJwt,
    PrivateKeyJwt,
    TlsClientAuth,
}

choice!(TokenEndpointAuth {
    ClientSecretBasic => "client_secret_basic",
    ClientSecretPost => "client_secret_post",
    ClientSecretJwt => "client_secret_jwt",
    PrivateKeyJwt => "private_key_jwt",
    TlsClientAuth => "tls_client_auth",
});

impl TokenEndpointAuth {
    /// Whether the method proves the client with its `client_secret`.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            Self::ClientSecretBasic | Self::ClientSecretPost | Self::ClientSecretJwt
        )
    }
}

/// `identity_providers.<key>.pushed_authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushedAuthorization {
    /// When the IdP offers it (its discovery names a PAR endpoint).
    #[default]
    Auto,
    Always,
    Never,
}

choice!(PushedAuthorization {
    Auto => "auto",
    Always => "always",
    Never => "never",
});

/// How a sign-in asks for a refresh token (`identity_providers.<key>.offline_access`).
/// OpenID Connect Core §11 says an OP ignores the `offline_access` scope unless `prompt`
/// has `consent`, and a strict one refuses the request; IdPs differ in what they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineAccess {
    /// `auto` (the default): decided from the issuer, see [`OfflineAccess::for_issuer`].
    Auto,
    /// The `offline_access` scope without `prompt` (Azure AD, Auth0 and Okta issue refresh
    /// tokens only for it and ignore `prompt`).
    Scope,
    /// `offline_access` with `prompt=consent`, as Core §11 requires (a consent screen at
    /// every sign-in: only for IdPs that demand it).
    Consent,
    /// Not asked for: the IdP issues refresh tokens to web clients anyway (Keycloak, where
    /// the scope would make *offline* sessions; a strict OP; oidc-provider configured so).
    Never,
}

choice!(OfflineAccess {
    Auto => "auto",
    Scope => "scope",
    Consent => "consent",
    Never => "never",
});

impl OfflineAccess {
    /// What `auto` means for an issuer: the scope for the IdPs that need it to return a
    /// refresh token at all, nothing for everyone else (a standard OP must not be asked
    /// for it without a consent screen).
    pub fn for_issuer(issuer: &str) -> OfflineAccess {
        let host = url::Url::parse(issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        let needs_scope = [
            "login.microsoftonline.com",
            "login.microsoftonline.us",
            "login.partner.microsoftonline.cn",
            ".ciamlogin.com",
            ".b2clogin.com",
            ".auth0.com",
            ".okta.com",
            ".oktapreview.com",
            ".okta-emea.com",
        ];
        let matches = |suffix: &str| match suffix.strip_prefix('.') {
            Some(domain) => host.ends_with(suffix) || host == domain,
            None => host == suffix,
        };
        match needs_scope.iter().any(|suffix| matches(suffix)) {
            true => OfflineAccess::Scope,
            false => OfflineAccess::Never,
        }
    }
}

/// Profile field → claim. `external_id` falls back to `sub` when its claim is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    pub external_id: String,
    pub email: String,
    pub name: String,
    pub login_name: String,
    pub first_name: String,
    pub last_name: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            external_id: "oid".into(),
            email: "email".into(),
            name: "name".into(),
            login_name: "preferred_username".into(),
            first_name: "given_name".into(),
            last_name: "family_name".into(),
        }
    }
}

/// What kind of shop is behind the sidecar, and its handshake.
#[derive(Debug, Clone, Default)]
pub struct BackendConfig {
    pub profile: BackendProfile,
    pub spree: Option<SpreeConfig>,
    pub icm: IcmConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackendProfile {
    #[default]
    Generic,
    Icm,
    Spree,
}

choice!(BackendProfile {
    Generic => "generic",
    Icm => "icm",
    Spree => "spree",
});

#[derive(Debug, Clone)]
pub struct SpreeConfig {
    /// The strategy key registered in `Spree.store_authentication_strategies`.
    pub provider: String,
    pub publishable_key: Option<Secret>,
    pub login_path: String,
    pub refresh_path: String,
    pub logout_path: String,
    /// Which IdP token proves the identity at the exchange: `id_token` or `access_token`.
    pub exchange_access_token: bool,
    /// The storefront's cookie with the guest cart's order token: at a sign-in, that cart
    /// is associated with the signed-in customer.
    pub guest_cart_cookie: Option<String>,
    /// The Store API's cart association (`PATCH`).
    pub associate_path: String,
}

#[derive(Debug, Clone, Default)]
pub struct IcmConfig {
    /// Receives the mapped profile on each login; none means no provisioning call.
    pub provisioning_url: Option<Url>,
    /// Sent as `Authorization: Bearer` so the backend knows the call is the sidecar's.
    pub provisioning_secret: Option<Secret>,
    /// ICM's own session cookie: its value (the anonymous session, with its basket) goes
    /// to provisioning, so ICM merges the basket as its own login would.
    pub session_cookie: String,
}

#[derive(Debug, Clone)]
pub struct CommercetoolsConfig {
    /// HTTP Basic credentials commercetools sends to `/oauth2/introspect`.
    pub client_id: String,
    pub client_secret: Secret,
    pub project_key: String,
    /// Claim holding the customer key; `sub` when the token lacks it.
    pub customer_id_claim: String,
    pub include_customer_id: bool,
    /// Scope templates every active token gets; `{projectKey}` is replaced.
    pub default_scopes: Vec<String>,
    /// Claim whose values (a string or a list, e.g. groups) select extra scopes.
    pub scope_claim: String,
    pub scope_mapping: BTreeMap<String, Vec<String>>,
    /// `[commercetools.api]`: the API client the sidecar finds and syncs customers with.
    pub api: Option<CommercetoolsApiConfig>,
    /// Find, create and update the customer at sign-in (needs `api`).
    pub sync_customers: bool,
    /// Claim whose values choose the customer group through `customer_groups`.
    pub customer_group_claim: String,
    /// Claim value → customer group key; the first of the user's values that has one wins.
    pub customer_groups: BTreeMap<String, String>,
    /// Customer group key → scope templates introspection adds for its customers.
    pub group_scopes: BTreeMap<String, Vec<String>>,
    /// `/oauth2/introspect` answers within this (commercetools waits 500 ms).
    pub introspection_deadline: Duration,
    /// The storefront's cookie with commercetools' `anonymousId`: at a sign-in the guest's
    /// cart is merged into the customer's (Merge Cart).
    pub anonymous_id_cookie: Option<String>,
    /// How: `MergeWithExistingCustomerCart` or `UseAsNewActiveCustomerCart`.
    pub anonymous_cart_sign_in_mode: String,
}

#[derive(Debug, Clone)]
pub struct CommercetoolsApiConfig {
    pub url: Url,
    pub auth_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
    /// Space-separated, `{projectKey}` filled in.
    pub scopes: String,
    pub timeout: Duration,
}

impl IdentityProvider {
    pub fn is_local(&self) -> bool {
        matches!(self.kind, IdentityProviderKind::Local)
    }

    pub fn oidc(&self) -> Option<&OidcProvider> {
        match &self.kind {
            IdentityProviderKind::Oidc(oidc) => Some(oidc),
            IdentityProviderKind::Local => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Organization {
    pub key: String,
    pub external_name: String,
    /// The IdPs offered to this organization's users, in configured order. With
    /// `oidc.remote = "unsupported"` only the `local` ones remain.
    pub identity_providers: Vec<String>,
    pub self_administration: SelfAdministration,
    pub logout_policy: LogoutPolicy,
    /// Where `local` sends the user: the backend's own login page.
    pub local_login_url: String,
    /// Where the browser goes after signing out; `None` shows the sidecar's signed-out page
    /// (`LOCAL`) or returns to the site root (`EXTERNAL`, `FEDERATED`).
    pub post_logout_url: Option<String>,
    /// Who may sign in for this organization: any rule matching. Empty: every user of its
    /// IdPs.
    pub members: Vec<ClaimRule>,
}

/// A condition on a claim of the signed-in user. `claim` is a name or a dotted path into
/// nested claims (`realm_access.roles`); on a list claim, any element may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    pub claim: String,
    pub test: ClaimTest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimTest {
    /// Exactly one of these values.
    AnyOf(Vec<String>),
    /// Ends with one of these (compared without regard to ASCII case, as for email
    /// domains).
    EndsWith(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfAdministration {
    pub create: bool,
    pub update: bool,
}

impl SelfAdministration {
    /// The header value: `CREATE,UPDATE`, `UPDATE`, `CREATE` or `NONE`.
    pub fn header_value(self) -> &'static str {
        match (self.create, self.update) {
            (true, true) => "CREATE,UPDATE",
            (true, false) => "CREATE",
            (false, true) => "UPDATE",
            (false, false) => "NONE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutPolicy {
    Local,
    External,
    Federated,
}

choice!(LogoutPolicy {
    Local => "LOCAL",
    External => "EXTERNAL",
    Federated => "FEDERATED",
});

#[derive(Debug, Clone)]
pub struct Route {
    /// Lower-case host without port; `None` matches every host.
    pub host: Option<String>,
    pub path_prefix: String,
    pub auth: AuthMode,
    pub organization: Option<String>,
    /// Signed-in users (and bearer tokens) must match one of these; empty: anyone signed in.
    pub allow: Vec<ClaimRule>,
    /// What a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
    /// gets on this route.
    pub preflight: Preflight,
    /// How strong and how recent the sign-in must be (`acr_values`, `max_age`).
    pub step_up: Option<StepUp>,
}

/// `routes[].acr_values` and `routes[].max_age`: a sign-in that is weaker or older is
/// stepped up at the session's IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUp {
    /// The session's `acr` must be one of these; empty: any.
    pub acr_values: Vec<String>,
    /// The session's `auth_time` must be no older than this.
    pub max_age: Option<Duration>,
}

/// `routes[].preflight`: browsers send CORS preflights without credentials, so a route
/// that demands them would answer `401` and the real request would never be made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Preflight {
    /// To the upstream, unauthenticated and without identity headers: the backend owns its
    /// CORS policy.
    #[default]
    Forward,
    /// `403` from the sidecar.
    Deny,
}

choice!(Preflight { Forward => "forward", Deny => "deny" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMode {
    Public,
    /// Signed-in users go upstream with their identity, everyone else anonymously: pages
    /// that serve SSO and the backend's own (local) users alike.
    Optional,
    Required,
    Api,
}

choice!(AuthMode {
    Required => "required",
    Optional => "optional",
    Public => "public",
    Api => "api",
});

impl AuthMode {
    /// Whether a request without a session is turned away (signed in first, or `401`).
    pub fn needs_sign_in(self) -> bool {
        matches!(self, AuthMode::Required | AuthMode::Api)
    }
}
