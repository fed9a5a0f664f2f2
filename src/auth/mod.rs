//! Authentication: the gate in front of protected routes and the sidecar's own endpoints
//! (`/oauth2/...`). Works on `http` types and returns [`Reply`]s, so it knows nothing of
//! pingora. Each part holds only what it uses:
//!
//! - [`gate::Gatekeeper`]: who is asking on a protected route, and may they pass;
//! - [`login::Login`]: `/start`, `/callback`, `/userinfo`;
//! - [`logout::Logout`]: `/logout` and `/backchannel-logout`;
//! - [`introspect::Introspection`]: `/introspect` for commercetools;
//! - shared by them: [`session_store::SessionStore`], [`bearer::BearerTokens`],
//!   [`membership::Membership`], [`backend::Backend`], [`links::SignInLinks`].

mod backend;
mod bearer;
pub mod gate;
mod idp_revocation;
mod introspect;
mod lasting;
mod limits;
mod links;
mod login;
mod logout;
mod membership;
mod refusal;
mod remote_end;
pub mod return_path;
mod revocations;
mod rules;
pub mod session_index;
mod session_store;
mod sessions_page;
mod shared;
mod single_flight;
mod site;
mod ssf;
pub mod step_up;
mod tokens;

use std::sync::Arc;

use http::{HeaderMap, Method};

use crate::assertion::AssertionSigner;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::oidc::Registry;
use crate::pages;
use crate::principal::Principal;
use crate::reply::Reply;
use crate::routing::Endpoint;
pub use lasting::Lasting;
pub use revocations::{LoadState, Revocation, Revocations};
pub use shared::follow as follow_shared_revocations;
pub use single_flight::RefreshResults;
use tokens::TokenKeeper;

pub use return_path::{safe_return_path, safe_return_target};
pub use tokens::{Freshness, Refresh};

/// Whose sessions the admin API looks at.
pub struct SubjectFilter<'a> {
    pub subject: &'a str,
    pub organization: Option<&'a str>,
    pub identity_provider: Option<&'a str>,
}

/// The parts of a request the sign-in logic looks at.
pub struct Request<'a> {
    pub method: &'a Method,
    /// Path and query as received, e.g. `/account/orders?page=2`.
    pub path_and_query: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub request_id: &'a str,
    /// The body of `POST`s to the sidecar's own endpoints (bounded by the proxy).
    pub body: &'a [u8],
    /// The client's address (behind trusted proxies: the address they report).
    pub client_ip: Option<std::net::IpAddr>,
    /// The request's canonical host (`None` only where no request came in, as in tests).
    pub host: Option<&'a crate::host::CanonicalHost>,
    /// Set when an ingress asks about this request (`/oauth2/auth`): how it wants
    /// sign-ins answered, and the whole URL to come back to.
    pub forward_auth: Option<ForwardAuth<'a>>,
}

impl<'a> Request<'a> {
    /// An audit line of `kind` on this request (its id, client, method and path).
    pub fn audit(&self, kind: crate::audit::Kind) -> crate::audit::Event<'a> {
        crate::audit::Event::new(kind).request(
            self.request_id,
            self.client_ip,
            self.method.as_str(),
            self.path_and_query,
        )
    }
}

/// A forward-auth question ([`crate::forward_auth`]).
#[derive(Debug, Clone, Copy)]
pub struct ForwardAuth<'a> {
    /// Browsers get the redirect to sign in (Traefik, Caddy pass it on); otherwise `401`
    /// (nginx shows its own sign-in page then).
    pub redirect: bool,
    /// The original request's whole URL.
    pub url: &'a str,
}

/// What happens to a request on a protected route.
pub enum Gate {
    /// A form posted without a valid session: the proxy reads its body and hands it to
    /// [`gate::Gatekeeper::keep_form`], which sends the browser to sign in and keeps the form.
    KeepForm { login: String, posted_to: String },
    /// Signed in: forward with this identity and, where set, this `Authorization` value
    /// instead of the client's; `set_cookies` go on the response.
    Forward {
        principal: Box<Principal>,
        authorization: Option<String>,
        set_cookies: Vec<String>,
    },
    /// Not signed in (or not for this organization): answer with this.
    Deny(Reply),
    /// An `optional` route without a usable session: forward without identity, with these
    /// `Set-Cookie`s (a stale session cookie cleared) on the response.
    Anonymous { set_cookies: Vec<String> },
}

pub struct AuthService {
    gatekeeper: gate::Gatekeeper<TokenKeeper>,
    login: login::Login,
    logout: logout::Logout,
    introspection: introspect::Introspection,
    login_limit: limits::LoginRateLimit,
    /// Publishes the keys of `X-SSO-Assertion` at `/oauth2/jwks`.
    assertion: Option<Arc<AssertionSigner>>,
    /// `/oauth2/client-jwks`: the public keys of `private_key_jwt` (`None`: no such keys).
    client_jwks: Option<bytes::Bytes>,
    revocations: Arc<Revocations>,
    metrics: Arc<Metrics>,
    pub registry: Arc<Registry>,
}

/// The parts the endpoints and the gate share, built once per config.
struct Parts {
    sessions: Arc<session_store::SessionStore>,
    membership: Arc<membership::Membership>,
    backend: Arc<backend::Backend>,
    bearer: Arc<bearer::BearerTokens>,
    links: links::SignInLinks,
    /// Tokens of sessions that end go at the IdP too.
    idp_revocation: Arc<idp_revocation::IdpRevocation>,
    metrics: Arc<Metrics>,
    /// Which sessions each person has.
    index: Arc<session_index::SessionIndex>,
    /// Sessions ended from elsewhere end at the shop and the IdP at once.
    remote_end: Arc<remote_end::RemoteEnd>,
}

impl Parts {
    fn new(config: &Arc<Config>, registry: &Arc<Registry>, lasting: &Lasting) -> Self {
        let revocations = lasting.revocations.clone();
        let backend = Arc::new(backend::Backend::new(
            config.clone(),
            registry.http.clone(),
            lasting,
        ));
        let idp_revocation = Arc::new(idp_revocation::IdpRevocation::new(
            registry.clone(),
            lasting.metrics.clone(),
        ));
        let remote_end = Arc::new(remote_end::RemoteEnd::new(
            config,
            lasting.sessions.clone(),
            backend.clone(),
            idp_revocation.clone(),
        ));
        Parts {
            sessions: Arc::new(session_store::SessionStore::new(
                config,
                &lasting.store,
                revocations.clone(),
            )),
            membership: Arc::new(membership::Membership::new(config, registry.clone())),
            backend,
            bearer: Arc::new(bearer::BearerTokens::new(
                config,
                registry.clone(),
                revocations,
                lasting.metrics.clone(),
            )),
            links: links::SignInLinks::new(&config.oidc.path_prefix),
            idp_revocation,
            metrics: lasting.metrics.clone(),
            index: lasting.sessions.clone(),
            remote_end,
        }
    }
}

impl AuthService {
    pub fn new(
        config: &Config,
        registry: Arc<Registry>,
        lasting: &Lasting,
        assertion: Option<Arc<AssertionSigner>>,
    ) -> Self {
        let config = Arc::new(config.clone());
        let parts = Parts::new(&config, &registry, lasting);
        let tokens = TokenKeeper::new(registry.clone(), lasting, &config);
        let metrics = lasting.metrics.clone();
        let revocations = lasting.revocations.clone();
        AuthService {
            gatekeeper: gate::Gatekeeper::new(&config, &parts, tokens),
            login: login::Login::new(config.clone(), registry.clone(), &parts),
            logout: logout::Logout {
                index: parts.index.clone(),
                ssf: Arc::new(crate::oidc::set::SetVerifier::new(
                    config.ssf_transmitters.clone(),
                    registry.http.clone(),
                    config.oidc.max_clock_skew,
                )),
                config: config.clone(),
                registry: registry.clone(),
                sessions: parts.sessions.clone(),
                revocations: revocations.clone(),
                store: lasting.store.clone(),
                file: lasting.file.clone(),
                backend: parts.backend.clone(),
                links: parts.links.clone(),
                idp_revocation: parts.idp_revocation.clone(),
                remote_end: parts.remote_end.clone(),
                metrics: metrics.clone(),
            },
            introspection: introspect::Introspection {
                commercetools: config.commercetools.clone(),
                bearer: parts.bearer.clone(),
                backend: parts.backend.clone(),
                metrics: metrics.clone(),
            },
            login_limit: limits::LoginRateLimit::new(config.limits.login_requests_per_minute),
            assertion,
            client_jwks: crate::oidc::client_auth::client_jwks(&config),
            revocations,
            metrics,
            registry,
        }
    }

    /// Where this replica stands with the revocations kept in the shared store.
    pub fn revocations_state(&self) -> LoadState {
        self.revocations.load_state()
    }

    /// Answers one of the sidecar's own endpoints.
    pub async fn endpoint(&self, endpoint: Endpoint, req: &Request<'_>, now: i64) -> Reply {
        if endpoint.signs_in() {
            if let Err(wait) = self.login_limit.check(req.client_ip, now) {
                self.metrics
                    .sessions
                    .session_rejected(crate::metrics::Rejected::RateLimited);
                let html = pages::too_many_sign_ins(req.request_id);
                return Reply::page(429, html).with_header("retry-after", wait.to_string());
            }
        }
        match (endpoint, req.method) {
            (Endpoint::Start, &Method::GET | &Method::HEAD) => self.login.start(req, now).await,
            (Endpoint::Callback, &Method::GET) => self.login.callback(req, now).await,
            (Endpoint::Userinfo, &Method::GET) => self.login.userinfo(req, now).await,
            (Endpoint::Logout, &Method::GET | &Method::POST) => self.logout.logout(req, now).await,
            (Endpoint::Sessions, &Method::GET | &Method::POST) => {
                self.logout.sessions(req, now).await
            }
            (Endpoint::FrontchannelLogout, &Method::GET) => {
                self.logout.frontchannel_logout(req, now).await
            }
            (Endpoint::BackchannelLogout, &Method::POST) => {
                self.logout.backchannel_logout(req, now).await
            }
            (Endpoint::SsfEvents, &Method::POST) => self.logout.security_event(req, now).await,
            (Endpoint::Introspect, &Method::POST) => self.introspection.introspect(req, now).await,
            (Endpoint::ClientJwks, &Method::GET | &Method::HEAD) => match &self.client_jwks {
                Some(jwks) => Reply::jwks(jwks.clone()),
                None => Reply::page(404, pages::not_ours(req.request_id)),
            },
            (Endpoint::Jwks, &Method::GET | &Method::HEAD) => match &self.assertion {
                Some(signer) => Reply::jwks(signer.jwks()),
                None => Reply::page(404, pages::not_ours(req.request_id)),
            },
            _ => Reply::page(404, pages::not_ours(req.request_id)),
        }
    }

    /// The admin API: the live sessions of `subject`, at one IdP or all, for one
    /// organization or all.
    pub async fn sessions_of(
        &self,
        who: &SubjectFilter<'_>,
        now: i64,
    ) -> Vec<session_index::SessionEntry> {
        self.logout.sessions_of(who, now).await
    }

    /// The admin API: ends every session of `subject` (as [`AuthService::sessions_of`]
    /// finds them) and refuses its bearer tokens issued until now; how many sessions ended.
    pub async fn end_sessions_of(&self, who: &SubjectFilter<'_>, now: i64) -> usize {
        let by = crate::audit::By::Admin;
        self.logout.end_sessions_of(who, by, now).await
    }

    /// The gate in front of protected routes.
    pub fn gatekeeper(&self) -> &gate::Gatekeeper<TokenKeeper> {
        &self.gatekeeper
    }
}

pub(crate) fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// What the IdP's redirect to `/oauth2/callback` carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// RFC 9207's `iss`.
    pub iss: Option<String>,
}

/// Parses the callback's query string; the first occurrence of each parameter wins.
pub fn callback_params(query: &str) -> CallbackParams {
    let params = Params::parse(Some(query));
    let take = |name: &str| params.get(name).map(str::to_owned);
    CallbackParams {
        state: take("state"),
        code: take("code"),
        error: take("error"),
        error_description: take("error_description"),
        iss: take("iss"),
    }
}

/// Query parameters; the first occurrence of a name wins.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<&str>) -> Self {
        Self::parse_bytes(query.unwrap_or("").as_bytes())
    }

    fn parse_bytes(form: &[u8]) -> Self {
        Params(form_urlencoded::parse(form).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
