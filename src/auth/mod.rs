//! Browser sign-in: the sidecar's own endpoints (`/oauth2/start`, `/callback`, `/userinfo`)
//! and the gate in front of protected routes. Works on `http` types and returns [`Reply`]s,
//! so it knows nothing of pingora.

mod backend;
mod bearer;
mod introspect;
mod limits;
mod login_page;
mod logout;
mod principal;
pub mod return_path;
mod revocations;
mod rules;
mod sessions;
mod shared;
mod single_flight;
mod tokens;

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, Method};
use serde_json::json;

use crate::assertion::AssertionSigner;
use crate::config::{Config, IdentityProviderKind, Organization};
use crate::forwarding::is_navigation;
use crate::metrics::Metrics;
use crate::oidc::access::AccessTokens;
use crate::oidc::flow::jwt_part;
use crate::oidc::{self, LoginError, LoginTarget, Registry, TokenChecks};
use crate::pages;
use crate::reply::Reply;
use crate::routing::{Endpoint, Matched, RouteKind};
use crate::session::{claims, Rejection, Session, SessionCookies};
use crate::store::Store;
pub use revocations::{LoadState, Revocation, Revocations};
pub(crate) use shared::digest;
pub use shared::follow as follow_shared_revocations;
pub use single_flight::{Lasting, RefreshResults};
use tokens::{Freshness, TokenKeeper};

pub use principal::{Credential, Principal};
pub use return_path::safe_return_path;

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
}

/// What happens to a request on a protected route.
pub enum Gate {
    /// A form posted without a valid session: the proxy reads its body and hands it to
    /// [`AuthService::keep_form`], which sends the browser to sign in and keeps the form.
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
    config: Config,
    pub registry: Arc<Registry>,
    pub cookies: SessionCookies,
    metrics: Arc<Metrics>,
    /// Lower-cased organization key and external name → organization key.
    org_names: HashMap<String, String>,
    start_path: String,
    tokens: TokenKeeper,
    revocations: Arc<Revocations>,
    store: Arc<Store>,
    access: AccessTokens,
    backend: backend::Backend,
    login_limit: limits::LoginRateLimit,
    /// Publishes the keys of `X-SSO-Assertion` at `/oauth2/jwks`.
    assertion: Option<Arc<AssertionSigner>>,
    /// Claim paths that `members` and `allow` rules name: a session keeps these.
    rule_claims: Vec<String>,
}

impl AuthService {
    pub fn new(
        config: &Config,
        registry: Arc<Registry>,
        lasting: &Lasting,
        assertion: Option<Arc<AssertionSigner>>,
    ) -> Self {
        let metrics = lasting.metrics.clone();
        let mut org_names = HashMap::new();
        for (key, org) in &config.organizations {
            org_names.insert(org.external_name.to_lowercase(), key.clone());
            org_names.insert(key.to_lowercase(), key.clone());
        }
        AuthService {
            cookies: SessionCookies::new(config),
            start_path: format!("{}/start", config.oidc.path_prefix),
            tokens: TokenKeeper::new(registry.clone(), lasting, config),
            revocations: lasting.revocations.clone(),
            store: lasting.store.clone(),
            backend: backend::Backend::new(config, registry.http.clone(), lasting),
            login_limit: limits::LoginRateLimit::new(config.login_requests_per_minute),
            access: AccessTokens::new(
                registry.clone(),
                config.oidc.max_clock_skew,
                config.oidc.accept_unsigned_tokens,
            ),
            config: config.clone(),
            registry,
            metrics,
            org_names,
            assertion,
            rule_claims: rule_claims(config),
        }
    }

    /// Where this replica stands with the revocations kept in the shared store.
    pub fn revocations_state(&self) -> LoadState {
        self.revocations.load_state()
    }

    fn organization(&self, name: &str) -> Option<&Organization> {
        let key = self.org_names.get(&name.trim().to_lowercase())?;
        self.config.organizations.get(key)
    }

    /// Answers one of the sidecar's own endpoints.
    pub async fn endpoint(&self, endpoint: Endpoint, req: &Request<'_>, now: i64) -> Reply {
        if endpoint.signs_in() {
            if let Err(wait) = self.login_limit.check(req.client_ip, now) {
                self.metrics.session_rejected("rate_limited");
                let html = pages::message(
                    "Too many sign-in attempts",
                    "There were too many sign-in attempts from your network. Please wait a minute and try again.",
                    None,
                    req.request_id,
                );
                return Reply::html(429, html).with_header("retry-after", wait.to_string());
            }
        }
        match (endpoint, req.method) {
            (Endpoint::Start, &Method::GET | &Method::HEAD) => self.start(req, now),
            (Endpoint::Callback, &Method::GET) => self.callback(req, now).await,
            (Endpoint::Userinfo, &Method::GET) => self.userinfo(req, now).await,
            (Endpoint::Logout, &Method::GET | &Method::POST) => self.logout(req, now).await,
            (Endpoint::BackchannelLogout, &Method::POST) => self.backchannel_logout(req).await,
            (Endpoint::Introspect, &Method::POST) => self.introspect(req, now).await,
            (Endpoint::Jwks, &Method::GET | &Method::HEAD) => match &self.assertion {
                Some(signer) => Reply::jwks(signer.jwks()),
                None => self.not_found(req),
            },
            _ => self.not_found(req),
        }
    }

    fn not_found(&self, req: &Request<'_>) -> Reply {
        Reply::html(
            404,
            pages::message(
                "Not found",
                "This address belongs to the sign-in service and does not exist.",
                Some(("/", "Go to the shop")),
                req.request_id,
            ),
        )
    }

    /// Decides whether a request on a `required` or `api` route may go upstream, refreshing
    /// the tokens first when they are about to run out.
    pub async fn gate(&self, route: &Matched<'_>, req: &Request<'_>, now: i64) -> Gate {
        let (kind, pinned_org) = (route.kind, route.organization);
        if kind == RouteKind::Api {
            if let Some(token) = bearer::bearer_token(req) {
                return self.bearer_gate(token, route).await;
            }
        }
        let mut session = match self.load_session(req.headers, now).await {
            Ok(session) if self.revocations.is_revoked(&session) => {
                self.metrics.session_rejected("revoked");
                self.end_backend_session(&session, req);
                return self.session_over(kind, pinned_org, req);
            }
            Ok(session) => session,
            Err(rejection) => {
                if rejection != Rejection::Missing {
                    self.metrics.session_rejected(rejection.as_str());
                }
                if kind == RouteKind::Optional {
                    // A stale cookie goes; a store outage is no reason to forget one.
                    let cleared = match rejection {
                        Rejection::Missing | Rejection::Unavailable => Vec::new(),
                        _ => self.cookies.clear(req.headers),
                    };
                    return Gate::Anonymous {
                        set_cookies: cleared,
                    };
                }
                if kind == RouteKind::Required && self.may_keep_form(req) {
                    return Gate::KeepForm {
                        login: self.login_url(req.path_and_query, pinned_org),
                        posted_to: req.path_and_query.to_owned(),
                    };
                }
                let error = (rejection != Rejection::Missing).then_some("invalid_token");
                return Gate::Deny(self.sign_in_again(kind, pinned_org, req, error, Vec::new()));
            }
        };
        let remote_session = self
            .config
            .identity_providers
            .get(&session.identity_provider)
            .is_some_and(|idp| idp.oidc().is_some());
        if !self.config.oidc.remote && remote_session {
            // Reloaded with `oidc.remote = "unsupported"`: remote sign-ins are over.
            self.metrics.session_ended("remote_unsupported");
            return self.session_over(kind, pinned_org, req);
        }
        if pinned_org.is_some_and(|org| org != session.organization) {
            self.metrics.session_rejected("other_organization");
            if kind == RouteKind::Optional {
                // Signed in, but for another organization: this part of the site sees a
                // visitor, and the session stays for where it belongs.
                return Gate::Anonymous {
                    set_cookies: Vec::new(),
                };
            }
            return Gate::Deny(self.sign_in_again(
                kind,
                pinned_org,
                req,
                Some("invalid_token"),
                Vec::new(),
            ));
        }
        let mut changed = false;
        match self.tokens.ensure_fresh(&session, now).await {
            Freshness::Current => {}
            Freshness::Refreshed(tokens) => {
                let new_id_token =
                    tokens.id_token.is_some() && tokens.id_token != session.tokens.id_token;
                session.tokens = (*tokens).clone();
                changed = true;
                // New claims: membership is checked again (a user who left ends here).
                if new_id_token {
                    let claims = session
                        .tokens
                        .id_token
                        .as_deref()
                        .and_then(|t| jwt_part(t, 1));
                    if let Some(claims) = claims {
                        self.keep_claims(&mut session, &claims);
                    }
                    if !self.is_member(&session) {
                        self.metrics.session_ended("not_a_member");
                        self.end_backend_session(&session, req);
                        return self.session_over(kind, pinned_org, req);
                    }
                }
            }
            Freshness::Ended(reason) => {
                self.metrics.session_ended(reason);
                self.end_backend_session(&session, req);
                return self.session_over(kind, pinned_org, req);
            }
            Freshness::Unreachable => {
                self.metrics.session_ended("idp_unreachable");
                let cleared = self.cookies.clear(req.headers);
                if kind == RouteKind::Optional {
                    return Gate::Anonymous {
                        set_cookies: cleared,
                    };
                }
                if kind == RouteKind::Required && is_navigation(req.method, req.headers) {
                    let retry = self.login_url(req.path_and_query, Some(&session.organization));
                    let html = pages::message(
                        "The identity provider is not reachable",
                        "Your sign-in has run out and your organization's identity provider cannot be reached to renew it. Please sign in again in a moment.",
                        Some((&retry, "Sign in again")),
                        req.request_id,
                    );
                    return Gate::Deny(Reply::html(503, html).with_cookies(cleared));
                }
                return Gate::Deny(
                    Reply::unauthorized(Some("invalid_token")).with_cookies(cleared),
                );
            }
        }
        match self
            .backend
            .keep_fresh(&session, now, || req.client_ip)
            .await
        {
            backend::Freshness::Current => {}
            backend::Freshness::Refreshed(tokens) => {
                session.backend = Some((*tokens).clone());
                changed = true;
            }
            backend::Freshness::Ended => {
                self.metrics.session_ended("backend_refused");
                return self.session_over(kind, pinned_org, req);
            }
        }
        if !rules::satisfied(route.allow, |path| kept(&session, path)) {
            return Gate::Deny(self.forbidden(route, req, &session));
        }
        let set_cookies = if changed {
            session.last_seen = now;
            self.save_session(req.headers, &session, now).await.0
        } else {
            self.touch(req.headers, &session, now).await
        };
        self.forward(session, set_cookies)
    }

    /// Forwards a signed-in user: the shop's own token goes upstream where the backend
    /// exchanged the IdP's (Spree), else the access token where configured.
    fn forward(&self, session: Session, set_cookies: Vec<String>) -> Gate {
        let authorization = match &session.backend {
            Some(backend) => Some(format!("Bearer {}", backend.token)),
            None if self.config.headers.forward_access_token => {
                Some(format!("Bearer {}", session.tokens.access_token))
            }
            None => None,
        };
        Gate::Forward {
            principal: Box::new(Principal::from_session(session)),
            authorization,
            set_cookies,
        }
    }

    /// `403`: signed in, but the route's `allow` rules do not admit this user. Browsers get
    /// a page that offers signing in as someone else; nobody gets a redirect, which would
    /// only bring them back here.
    fn forbidden(&self, route: &Matched<'_>, req: &Request<'_>, session: &Session) -> Reply {
        self.metrics.request_denied(route.label);
        if !is_navigation(req.method, req.headers) {
            return Reply::json(403, &json!({"error": "forbidden"}));
        }
        let who = session
            .identity
            .email
            .as_deref()
            .or(session.identity.preferred_username.as_deref())
            .unwrap_or(&session.identity.subject);
        Reply::html(
            403,
            login_page::forbidden(
                who,
                &format!("{}/logout", self.config.oidc.path_prefix),
                req.request_id,
            ),
        )
    }

    /// The session ended (revoked, refused by the IdP or the backend): its cookies go, and
    /// the client is asked to sign in again.
    fn session_over(&self, kind: RouteKind, pinned_org: Option<&str>, req: &Request<'_>) -> Gate {
        let cleared = self.cookies.clear(req.headers);
        if kind == RouteKind::Optional {
            return Gate::Anonymous {
                set_cookies: cleared,
            };
        }
        Gate::Deny(self.sign_in_again(kind, pinned_org, req, Some("invalid_token"), cleared))
    }

    /// Not (or no longer) signed in: browsers go to the login page, programs get `401`.
    fn sign_in_again(
        &self,
        kind: RouteKind,
        pinned_org: Option<&str>,
        req: &Request<'_>,
        error: Option<&str>,
        set_cookies: Vec<String>,
    ) -> Reply {
        if kind == RouteKind::Required && is_navigation(req.method, req.headers) {
            return Reply::redirect(&self.login_url(req.path_and_query, pinned_org))
                .with_cookies(set_cookies);
        }
        Reply::unauthorized(error).with_cookies(set_cookies)
    }

    /// A form `POST` small enough to keep across a sign-in (`session.preserve_post_max`).
    fn may_keep_form(&self, req: &Request<'_>) -> bool {
        let max = self.config.session.preserve_post_max;
        let is_form = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                t.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        let length = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        max > 0 && *req.method == Method::POST && is_form && length.is_some_and(|n| n <= max)
    }

    /// Keeps a form posted without a valid session and sends the browser to sign in; the
    /// callback posts it again. A form too large for its cookie gets the usual answer.
    /// `form` is where it was posted and its body.
    pub fn keep_form(
        &self,
        headers: &HeaderMap,
        form: (String, Vec<u8>),
        login: &str,
        request_id: &str,
        now: i64,
    ) -> Reply {
        let (path_and_query, body) = form;
        let form = crate::session::form::KeptForm {
            path_and_query,
            body,
            created_at: now,
        };
        match self.cookies.keep_form(headers, &form) {
            Some(cookies) => Reply::see_other(login).with_cookies(cookies),
            None => Reply::html(
                401,
                pages::message(
                    "Your session has expired",
                    "Please sign in again and send the form once more; it was too large to keep.",
                    Some((login, "Sign in again")),
                    request_id,
                ),
            ),
        }
    }

    fn login_url(&self, return_to: &str, org: Option<&str>) -> String {
        let mut login = format!("{}?rd={}", self.start_path, urlencode(return_to));
        if let Some(org) = org {
            login.push_str("&org=");
            login.push_str(&urlencode(org));
        }
        login
    }

    /// Re-issues the cookie now and then when an idle timeout needs `last_seen` kept fresh.
    async fn touch(&self, headers: &HeaderMap, session: &Session, now: i64) -> Vec<String> {
        let Some(idle) = self.config.session.idle_timeout else {
            return Vec::new();
        };
        // Rewriting on every request would cost a Set-Cookie each time; a tenth of the
        // idle timeout (at most a minute) is precise enough.
        let every = (idle.as_secs() as i64 / 10).clamp(1, 60);
        if now - session.last_seen < every {
            return Vec::new();
        }
        let mut fresh = session.clone();
        fresh.last_seen = now;
        self.save_session(headers, &fresh, now).await.0
    }

    fn start(&self, req: &Request<'_>, now: i64) -> Reply {
        let params = Params::parse(req.query);
        let return_to = safe_return_path(params.get("rd"), &self.config.oidc.path_prefix);
        let org = match params.get("org").filter(|o| !o.trim().is_empty()) {
            Some(name) => match self.organization(name) {
                Some(org) => org,
                None => {
                    let html = login_page::organization_form(&self.start_path, &return_to, name, Some("We do not know this organization. Please check the name and try again."));
                    return Reply::html(200, html);
                }
            },
            None if self.config.organizations.len() == 1 => self
                .config
                .organizations
                .values()
                .next()
                .expect("one organization"),
            None => {
                let prefill = self
                    .cookies
                    .remembered_organization(req.headers)
                    .and_then(|key| self.config.organizations.get(key))
                    .map(|org| org.external_name.as_str())
                    .unwrap_or("");
                return Reply::html(
                    200,
                    login_page::organization_form(&self.start_path, &return_to, prefill, None),
                );
            }
        };
        let chosen = match params.get("idp") {
            Some(idp) if org.identity_providers.iter().any(|k| k == idp) => idp.to_owned(),
            Some(_) => {
                return self.idp_list(
                    org,
                    &return_to,
                    Some("Please choose one of these sign-in options."),
                )
            }
            None if org.identity_providers.len() == 1 => org.identity_providers[0].clone(),
            None if org.identity_providers.is_empty() => {
                let html = pages::message(
                    "Sign-in is not available",
                    &format!(
                        "No sign-in option is set up for {}. Please contact the shop.",
                        org.external_name
                    ),
                    Some((&self.start_path, "Choose another organization")),
                    req.request_id,
                );
                return Reply::html(503, html);
            }
            None => return self.idp_list(org, &return_to, None),
        };
        let remember = self.cookies.remember_organization(&org.key);
        match self
            .config
            .identity_providers
            .get(&chosen)
            .map(|idp| &idp.kind)
        {
            Some(IdentityProviderKind::Oidc(_)) => self
                .redirect_to_idp(req, org, &chosen, &return_to, now)
                .with_cookies([remember]),
            // `local` and the implicit ICM `local`: the backend's own login, session untouched.
            Some(IdentityProviderKind::Local) | None => {
                // `{rd}`: the backend's login can send the user on to where they were going.
                let login = org.local_login_url.replace("{rd}", &urlencode(&return_to));
                Reply::redirect(&login).with_cookies([remember])
            }
        }
    }

    fn idp_list(&self, org: &Organization, return_to: &str, error: Option<&str>) -> Reply {
        let choices: Vec<login_page::IdpChoice<'_>> = org
            .identity_providers
            .iter()
            .map(|key| login_page::IdpChoice {
                key,
                name: self
                    .config
                    .identity_providers
                    .get(key)
                    .map_or(key.as_str(), |idp| idp.name.as_str()),
            })
            .collect();
        Reply::html(
            200,
            login_page::idp_list(
                &self.start_path,
                return_to,
                &org.key,
                &org.external_name,
                &choices,
                error,
            ),
        )
    }

    fn redirect_to_idp(
        &self,
        req: &Request<'_>,
        org: &Organization,
        idp_key: &str,
        return_to: &str,
        now: i64,
    ) -> Reply {
        let discovered = self
            .registry
            .get(idp_key)
            .and_then(|p| p.discovered().map(|d| (p, d)));
        let Some((provider, discovered)) = discovered else {
            self.metrics
                .login_failed(&org.key, idp_key, "idp_unavailable");
            let retry = format!(
                "{}?rd={}&org={}",
                self.start_path,
                urlencode(return_to),
                urlencode(&org.key)
            );
            let html = pages::message(
                "The identity provider is not available",
                "Your organization's identity provider cannot be reached at the moment. Please try again in a minute.",
                Some((&retry, "Try again")),
                req.request_id,
            );
            return Reply::html(503, html);
        };
        let start = oidc::begin(
            provider,
            &discovered,
            LoginTarget {
                organization: &org.key,
                return_to,
            },
            now,
        );
        let mut pending = self.cookies.pending(req.headers);
        pending.push(start.pending, now);
        self.metrics.login_started(&org.key, idp_key);
        Reply::redirect(start.authorize_url.as_str())
            .with_cookies([self.cookies.store_pending(&pending)])
    }

    async fn callback(&self, req: &Request<'_>, now: i64) -> Reply {
        let params = callback_params(req.query.unwrap_or(""));
        let mut pending = self.cookies.pending(req.headers);
        let had_pending = !pending.entries.is_empty();
        let login = params
            .state
            .as_deref()
            .and_then(|state| pending.take(state, now));
        let state_cookie = self.cookies.store_pending(&pending);
        let (org, idp) = login.as_ref().map_or(("unknown", "unknown"), |l| {
            (l.organization.as_str(), l.identity_provider.as_str())
        });
        // Without a sign-in of this browser to match, nothing the request carries is shown:
        // an attacker could otherwise print any text on the shop's origin.
        let result = match (&login, params.error) {
            (None, _) if had_pending && params.state.is_some() => Err(LoginError::StateMismatch),
            (None, _) => Err(LoginError::MissingState),
            (Some(_), Some(error)) => Err(LoginError::from_idp(
                &error,
                params.error_description.as_deref(),
            )),
            (Some(login), None) => match self.check_response_issuer(login, params.iss.as_deref()) {
                Ok(()) => {
                    self.finish(login, params.code.as_deref(), req.client_ip, now)
                        .await
                }
                Err(error) => Err(error),
            },
        };
        match result {
            Ok(session) => {
                let (mut cookies, size) = self.save_session(req.headers, &session, now).await;
                cookies.push(state_cookie);
                self.metrics.login_completed(org, idp, size);
                tracing::info!(
                    organization = org,
                    idp,
                    session = session.id.as_str(),
                    "login completed"
                );
                let return_to = login.as_ref().map_or("/", |l| l.return_to.as_str());
                // A form kept for this sign-in is posted again, to where it was posted.
                if let Some(form) = self
                    .cookies
                    .kept_form(req.headers, now)
                    .filter(|f| f.path_and_query == return_to)
                {
                    cookies.extend(self.cookies.clear_form(req.headers));
                    return Reply::html(200, form.resubmit_page())
                        .with_header(
                            "content-security-policy",
                            crate::session::form::resubmit_policy(),
                        )
                        .with_cookies(cookies);
                }
                Reply::redirect(return_to).with_cookies(cookies)
            }
            Err(error) => {
                self.metrics.login_failed(org, idp, error.reason());
                tracing::warn!(organization = org, idp, reason = error.reason(), %error, "login failed");
                let retry = match (&login, &error) {
                    // The same organization would only refuse the same account again.
                    (Some(l), LoginError::NotAMember { .. }) => (
                        self.login_url(&l.return_to, None),
                        "Choose another organization",
                    ),
                    (Some(l), _) => (
                        self.login_url(&l.return_to, Some(&l.organization)),
                        "Sign in again",
                    ),
                    (None, _) => (self.start_path.clone(), "Sign in again"),
                };
                let (status, title) = login_error_page(&error);
                let html = pages::message(
                    title,
                    &pages::sentence(&error.to_string()),
                    Some((&retry.0, retry.1)),
                    req.request_id,
                );
                let reply = Reply::html(status, html).with_cookies([state_cookie]);
                match error {
                    LoginError::BackendBusy(seconds) => {
                        reply.with_header("retry-after", seconds.to_string())
                    }
                    _ => reply,
                }
            }
        }
    }

    /// RFC 9207: where the IdP names itself in the response, it must be the IdP the sign-in
    /// was sent to; this stops a response from another IdP being mixed up with ours.
    fn check_response_issuer(
        &self,
        login: &crate::session::PendingLogin,
        iss: Option<&str>,
    ) -> Result<(), LoginError> {
        let Some(discovered) = self
            .registry
            .get(&login.identity_provider)
            .and_then(|p| p.discovered())
        else {
            // Not discovered (yet): `finish` reports that.
            return Ok(());
        };
        let expected = discovered.metadata.issuer().as_str();
        let advertised = discovered
            .metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            == Some(true);
        match iss {
            Some(iss) if iss != expected => Err(LoginError::IssuerMismatch),
            None if advertised => Err(LoginError::IssuerMismatch),
            _ => Ok(()),
        }
    }

    async fn finish(
        &self,
        login: &crate::session::PendingLogin,
        code: Option<&str>,
        client: Option<std::net::IpAddr>,
        now: i64,
    ) -> Result<Session, LoginError> {
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or(LoginError::MissingCode)?;
        let provider = self.registry.get(&login.identity_provider).ok_or_else(|| {
            LoginError::Misconfigured(format!(
                "{} is no longer configured",
                login.identity_provider
            ))
        })?;
        let discovered = provider
            .discovered()
            .ok_or_else(|| LoginError::Unreachable("discovery has not succeeded".into()))?;
        let checks = TokenChecks {
            max_clock_skew: self.config.oidc.max_clock_skew,
            accept_unsigned_tokens: self.config.oidc.accept_unsigned_tokens,
        };
        let mut wanted = self.rule_claims.clone();
        wanted.push(provider.config.groups_claim.clone());
        let result = oidc::finish(
            &self.registry,
            provider,
            &discovered,
            login,
            code,
            checks,
            &wanted,
        )
        .await?;
        let mut session = Session {
            id: uuid::Uuid::new_v4().simple().to_string(),
            organization: login.organization.clone(),
            identity_provider: login.identity_provider.clone(),
            identity: result.identity,
            tokens: result.tokens,
            idp_session_id: result.idp_session_id,
            issued_at: now,
            last_seen: now,
            backend: None,
            groups: Vec::new(),
            claims: Default::default(),
        };
        self.keep_claims(&mut session, &result.claims);
        if !self.is_member(&session) {
            return Err(LoginError::NotAMember {
                organization: self
                    .config
                    .organizations
                    .get(&session.organization)
                    .map_or_else(|| session.organization.clone(), |o| o.external_name.clone()),
                email: session.identity.email.clone(),
            });
        }
        self.backend_handshake(
            &mut session,
            &result.claims,
            &provider.config.claims,
            client,
        )
        .await?;
        Ok(session)
    }

    /// Stores in the session what rules and `X-SSO-Groups` need of `claims`.
    fn keep_claims(
        &self,
        session: &mut Session,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) {
        let max = self.config.headers.max_groups;
        if let Some(provider) = self.registry.get(&session.identity_provider) {
            session.groups = claims::groups(claims, &provider.config.groups_claim, max);
        }
        let fresh = claims::keep(claims, self.rule_claims.iter().map(String::as_str), max);
        // A refreshed ID token may lack what userinfo gave at login: keep those values.
        session.claims.extend(fresh);
    }

    /// Whether the session's user may be in its organization (`members`).
    fn is_member(&self, session: &Session) -> bool {
        self.config
            .organizations
            .get(&session.organization)
            .is_some_and(|org| rules::satisfied(&org.members, |path| kept(session, path)))
    }

    async fn userinfo(&self, req: &Request<'_>, now: i64) -> Reply {
        let session = match self.load_live_session(req.headers, now).await {
            Ok(session) => session,
            Err(Rejection::Missing) => return Reply::unauthorized(None),
            Err(rejection) => {
                self.metrics.session_rejected(rejection.as_str());
                // A store outage is no reason to forget the session.
                let cleared = match rejection {
                    Rejection::Unavailable => Vec::new(),
                    _ => self.cookies.clear(req.headers),
                };
                return Reply::unauthorized(Some("invalid_token")).with_cookies(cleared);
            }
        };
        let policy = self
            .config
            .organizations
            .get(&session.organization)
            .map(|o| o.self_administration.header_value());
        let identity = &session.identity;
        Reply::json(
            200,
            &json!({
                "subject": identity.subject,
                "email": identity.email,
                "name": identity.name,
                "preferred_username": identity.preferred_username,
                "external_id": identity.external_id,
                "organization": session.organization,
                "identity_provider": session.identity_provider,
                "self_administration": policy,
                "session_expires_at": session.issued_at.saturating_add(self.config.session.max_age.as_secs() as i64),
            }),
        )
    }
}

/// The values a session kept at a claim path.
fn kept(session: &Session, path: &str) -> Vec<String> {
    session.claims.get(path).cloned().unwrap_or_default()
}

/// Every claim path a `members` or `allow` rule names, once.
fn rule_claims(config: &Config) -> Vec<String> {
    let members = config.organizations.values().flat_map(|o| &o.members);
    let allows = config.routes.iter().flat_map(|r| &r.allow);
    let mut paths: Vec<String> = members.chain(allows).map(|r| r.claim.clone()).collect();
    paths.sort();
    paths.dedup();
    paths
}

fn login_error_page(error: &LoginError) -> (u16, &'static str) {
    match error {
        LoginError::Idp {
            code: Some("access_denied"),
            ..
        } => (403, "Sign-in was cancelled or denied"),
        // Anyone can send an error to the callback: a 4xx, never a 5xx.
        LoginError::Idp { .. } => (400, "The identity provider refused the sign-in"),
        LoginError::MissingState | LoginError::StateMismatch => {
            (400, "Sign-in expired or came from another browser")
        }
        LoginError::MissingCode | LoginError::IssuerMismatch => {
            (400, "This sign-in link is no longer valid")
        }
        LoginError::CodeRejected(_) => (400, "This sign-in link is no longer valid"),
        LoginError::InvalidIdToken(_) | LoginError::UnknownSigningKey => {
            (401, "Your identity could not be verified")
        }
        LoginError::Unreachable(_) => (503, "The identity provider is not available"),
        LoginError::BadResponse(_) => (502, "The identity provider sent an answer we cannot read"),
        LoginError::Backend(_) => (502, "The shop could not complete your sign-in"),
        LoginError::BackendBusy(_) => (429, "The shop is busy"),
        LoginError::NotAMember { .. } => (403, "You are not a member of this organization"),
        LoginError::UnknownToShop => (403, "Your account is not known to the shop"),
        LoginError::Misconfigured(_) => (500, "Sign-in is not set up correctly"),
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
