//! The gate in front of `required`, `optional` and `api` routes: who is asking (a session
//! or a bearer token), whether their tokens are still good (refreshed when about to run
//! out), and whether the route admits them.

use std::sync::Arc;

use http::{HeaderMap, Method};
use serde_json::json;

use super::backend::Backend;
use super::bearer::{bearer_token, BearerTokens};
use super::links::SignInLinks;
use super::membership::{kept, Membership};
use super::session_store::SessionStore;
use super::site::OwnSite;
use super::tokens::{Freshness, Refresh, TokenKeeper};
use super::{rules, Gate, Request};
use crate::caller::is_navigation;
use crate::config::Config;
use crate::jwt::jwt_part;
use crate::metrics::Metrics;
use crate::pages;
use crate::principal::Principal;
use crate::reply::Reply;
use crate::routing::{Matched, RouteKind};
use crate::session::{Rejection, Session};

pub struct Gatekeeper<R = TokenKeeper> {
    pub config: Arc<Config>,
    pub sessions: Arc<SessionStore>,
    pub bearer: Arc<BearerTokens>,
    pub tokens: R,
    pub backend: Arc<Backend>,
    pub membership: Arc<Membership>,
    pub links: SignInLinks,
    pub metrics: Arc<Metrics>,
}

/// Where a request came in: the route's mode and the organization it pins.
#[derive(Clone, Copy)]
struct Place<'a> {
    kind: RouteKind,
    pinned_org: Option<&'a str>,
}

impl<R: Refresh> Gatekeeper<R> {
    /// Decides whether a request on a protected route may go upstream, refreshing the
    /// tokens first when they are about to run out.
    pub async fn gate(&self, route: &Matched<'_>, req: &Request<'_>, now: i64) -> Gate {
        let at = Place {
            kind: route.kind,
            pinned_org: route.organization,
        };
        if at.kind == RouteKind::Api {
            if let Some(token) = bearer_token(req) {
                // Boxed: the session path does not carry a bearer check's state.
                return Box::pin(self.bearer.gate(token, route, now)).await;
            }
        }
        let mut session = match self.sessions.load(req.headers, now).await {
            Ok(session) if self.sessions.is_revoked(&session) => {
                self.metrics.session_rejected("revoked");
                return self.session_ended(at, &session, req);
            }
            Ok(session) => session,
            Err(rejection) => return self.without_session(at, rejection, req),
        };
        if let Err(refused) = self.admits(at, &session, req) {
            return refused;
        }
        // Most requests need no refresh; those that do carry its (large) state in a box.
        let refresh =
            self.tokens.may_refresh(&session, now) || self.backend.may_refresh(&session, now);
        let refreshed = match refresh {
            true => match Box::pin(self.keep_fresh(at, &mut session, req, now)).await {
                Ok(refreshed) => refreshed,
                Err(ended) => return ended,
            },
            false => false,
        };
        if !rules::satisfied(route.allow, |path| kept(&session, path)) {
            return Gate::Deny(self.forbidden(route, req, &session));
        }
        let set_cookies = if refreshed {
            Arc::make_mut(&mut session).last_seen = now;
            Box::pin(self.sessions.save(req.headers, &session, now))
                .await
                .0
        } else {
            self.sessions.touch(req.headers, &session, now).await
        };
        self.forward(session, set_cookies)
    }

    /// No usable session: a visitor on `optional` routes, a kept form, or sign in again.
    fn without_session(&self, at: Place<'_>, rejection: Rejection, req: &Request<'_>) -> Gate {
        if rejection != Rejection::Missing {
            self.metrics.session_rejected(rejection.as_str());
        }
        if at.kind == RouteKind::Optional {
            // A stale cookie goes; a store outage is no reason to forget one.
            let cleared = match rejection {
                Rejection::Missing | Rejection::Unavailable => Vec::new(),
                _ => self.sessions.clear(req.headers),
            };
            return Gate::Anonymous {
                set_cookies: cleared,
            };
        }
        if at.kind == RouteKind::Required && self.may_keep_form(req) {
            let login = self.links.sign_in(req.path_and_query, at.pinned_org);
            let own = OwnSite {
                public_url: self.config.server.public_url.as_ref(),
                host: req.host,
            };
            if own.sent_form(req.headers) {
                let posted_to = req.path_and_query.to_owned();
                return Gate::KeepForm { login, posted_to };
            }
            // Another site's form is never replayed with the user's identity: the sign-in
            // goes on, and the browser lands on the page by `GET`.
            self.metrics.form_dropped("cross_site");
            return Gate::Deny(Reply::see_other(&login));
        }
        let error = (rejection != Rejection::Missing).then_some("invalid_token");
        Gate::Deny(self.sign_in_again(at, req, error, Vec::new()))
    }

    /// A session that is good in itself may still not belong here: remote sign-ins turned
    /// off by a reload, or signed in for another organization than the route's.
    fn admits(&self, at: Place<'_>, session: &Session, req: &Request<'_>) -> Result<(), Gate> {
        let remote_session = (self.config.identity_providers)
            .get(&session.identity_provider)
            .is_some_and(|idp| idp.oidc().is_some());
        if !self.config.oidc.remote && remote_session {
            // Reloaded with `oidc.remote = "unsupported"`: remote sign-ins are over.
            self.metrics.session_ended("remote_unsupported");
            return Err(self.session_over(at, req));
        }
        if at.pinned_org.is_none_or(|org| org == session.organization) {
            return Ok(());
        }
        self.metrics.session_rejected("other_organization");
        if at.kind == RouteKind::Optional {
            // Signed in, but for another organization: this part of the site sees a
            // visitor, and the session stays for where it belongs.
            return Err(Gate::Anonymous {
                set_cookies: Vec::new(),
            });
        }
        let error = Some("invalid_token");
        Err(Gate::Deny(self.sign_in_again(at, req, error, Vec::new())))
    }

    /// Refreshes the IdP's and the backend's tokens where they are about to run out;
    /// `Ok(true)` when the session changed and must be saved.
    async fn keep_fresh(
        &self,
        at: Place<'_>,
        shared: &mut Arc<Session>,
        req: &Request<'_>,
        now: i64,
    ) -> Result<bool, Gate> {
        let mut changed = false;
        match self.tokens.ensure_fresh(shared, now).await {
            Freshness::Current => {}
            Freshness::Refreshed(tokens) => {
                // Changed here only: the opened session others share stays as it was.
                let session = Arc::make_mut(shared);
                let new_id_token =
                    tokens.id_token.is_some() && tokens.id_token != session.tokens.id_token;
                session.tokens = (*tokens).clone();
                changed = true;
                // New claims: membership is checked again (a user who left ends here).
                if new_id_token && !self.still_member(session) {
                    self.metrics.session_ended("not_a_member");
                    return Err(self.session_ended(at, session, req));
                }
            }
            Freshness::Ended(reason) => {
                self.metrics.session_ended(reason);
                return Err(self.session_ended(at, shared, req));
            }
            Freshness::Unreachable => return Err(self.idp_unreachable(at, shared, req)),
        }
        match self.backend.keep_fresh(shared, now, req.client_ip).await {
            Freshness::Current => {}
            Freshness::Refreshed(tokens) => {
                Arc::make_mut(shared).backend = Some((*tokens).clone());
                changed = true;
            }
            // The backend refused: its session is already over. (A backend that cannot be
            // reached is not asked again while its token lasts, and ends it after.)
            Freshness::Ended(reason) => {
                self.metrics.session_ended(reason);
                return Err(self.session_over(at, req));
            }
            Freshness::Unreachable => {
                self.metrics.session_ended("backend_refused");
                return Err(self.session_over(at, req));
            }
        }
        Ok(changed)
    }

    /// Takes the claims of a refreshed ID token and checks membership with them.
    fn still_member(&self, session: &mut Session) -> bool {
        let id_token = session.tokens.id_token.as_deref();
        if let Some(claims) = id_token.and_then(|t| jwt_part(t, 1)) {
            self.membership.keep_claims(session, &claims);
        }
        self.membership.is_member(session)
    }

    /// The access token ran out and the IdP cannot renew it: the session is over, and a
    /// browser is told why.
    fn idp_unreachable(&self, at: Place<'_>, session: &Session, req: &Request<'_>) -> Gate {
        self.metrics.session_ended("idp_unreachable");
        let cleared = self.sessions.clear(req.headers);
        if at.kind == RouteKind::Optional {
            return Gate::Anonymous {
                set_cookies: cleared,
            };
        }
        if at.kind == RouteKind::Required && is_navigation(req.method, req.headers) {
            let retry = (self.links).sign_in(req.path_and_query, Some(&session.organization));
            let html = pages::idp_unreachable(&retry, req.request_id);
            return Gate::Deny(Reply::html(503, html).with_cookies(cleared));
        }
        Gate::Deny(Reply::unauthorized(Some("invalid_token")).with_cookies(cleared))
    }

    /// Forwards a signed-in user: the shop's own token goes upstream where the backend
    /// exchanged the IdP's (Spree), else the access token where configured.
    fn forward(&self, session: Arc<Session>, set_cookies: Vec<String>) -> Gate {
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
        let identity = &session.identity;
        let who = (identity.email.as_deref())
            .or(identity.preferred_username.as_deref())
            .unwrap_or(&identity.subject);
        let page = pages::forbidden(who, self.links.logout(), req.request_id);
        Reply::html(403, page)
    }

    /// The session ended without a logout here (revoked, refused by the IdP, no longer a
    /// member): the backend's own session ends with it.
    fn session_ended(&self, at: Place<'_>, session: &Session, req: &Request<'_>) -> Gate {
        self.backend.end_session(session, req.client_ip);
        self.session_over(at, req)
    }

    /// The session is over (see [`Self::session_ended`]; or refused by the backend, or
    /// remote sign-ins turned off): its cookies go, and the client is asked to sign in
    /// again.
    fn session_over(&self, at: Place<'_>, req: &Request<'_>) -> Gate {
        let cleared = self.sessions.clear(req.headers);
        if at.kind == RouteKind::Optional {
            return Gate::Anonymous {
                set_cookies: cleared,
            };
        }
        Gate::Deny(self.sign_in_again(at, req, Some("invalid_token"), cleared))
    }

    /// Not (or no longer) signed in: browsers go to the login page, programs get `401`.
    fn sign_in_again(
        &self,
        at: Place<'_>,
        req: &Request<'_>,
        error: Option<&str>,
        set_cookies: Vec<String>,
    ) -> Reply {
        if at.kind == RouteKind::Required && is_navigation(req.method, req.headers) {
            let login = self.links.sign_in(req.path_and_query, at.pinned_org);
            return Reply::redirect(&login).with_cookies(set_cookies);
        }
        Reply::unauthorized(error).with_cookies(set_cookies)
    }

    /// A form `POST` small enough to keep across a sign-in (`session.preserve_post_max`).
    fn may_keep_form(&self, req: &Request<'_>) -> bool {
        let max = self.config.session.preserve_post_max;
        let header = |name| req.headers.get(name).and_then(|v| v.to_str().ok());
        let is_form = header(http::header::CONTENT_TYPE).is_some_and(|t| {
            let media_type = t.split(';').next().unwrap_or_default().trim();
            media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
        let length = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
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
            id: rand::random(),
            path_and_query,
            body,
            created_at: now,
        };
        match self.sessions.cookies.keep_form(headers, &form) {
            Some(cookies) => Reply::see_other(login).with_cookies(cookies),
            None => Reply::html(401, pages::form_too_large(login, request_id)),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The gate on its own: sessions sealed into real cookies (the cookie store needs no
    //! server), the IdP's refresh replaced by what each test says it brings.

    use std::sync::Mutex;

    use base64::Engine as _;
    use http::{HeaderValue, Method};

    use super::*;
    use crate::auth::revocations::Revocations;
    use crate::auth::Lasting;
    use crate::config::Preflight;
    use crate::oidc::Registry;
    use crate::session::{Identity, Tokens};
    use crate::store::Store;

    const NOW: i64 = 1_800_000_000;

    /// A refresh that brings what the test put in, once; `Current` otherwise.
    #[derive(Default)]
    struct ScriptedRefresh(Mutex<Option<Freshness>>);

    impl Refresh for ScriptedRefresh {
        fn may_refresh(&self, _session: &Session, _now: i64) -> bool {
            self.0.lock().unwrap().is_some()
        }

        async fn ensure_fresh(&self, _session: &Session, _now: i64) -> Freshness {
            self.0.lock().unwrap().take().unwrap_or(Freshness::Current)
        }
    }

    fn gatekeeper(refresh: Option<Freshness>) -> Gatekeeper<ScriptedRefresh> {
        let text = r#"
[server]
upstream = "http://127.0.0.1:9000"
public_url = "https://shop.example"
[session]
keys = ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
[organizations.Ops]
external_name = "Operations"
members = [{ claim = "email", ends_with = ["@ops.example"] }]
local_login_url = "/login"
[organizations.Sales]
external_name = "Sales"
local_login_url = "/login"
[[routes]]
path_prefix = "/login"
auth = "public"
"#;
        let config = Arc::new(crate::config::from_str(text, "t.toml".as_ref()).unwrap());
        let metrics = Arc::new(Metrics::new());
        let lasting = Lasting {
            revocations: Arc::new(Revocations::new(config.session.max_age)),
            store: Arc::new(Store::new(None, metrics.clone())),
            refreshes: Arc::default(),
            metrics: metrics.clone(),
        };
        let registry = Arc::new(Registry::new(&config, metrics.clone()));
        Gatekeeper {
            sessions: Arc::new(SessionStore::new(
                &config,
                &lasting.store,
                lasting.revocations.clone(),
            )),
            bearer: Arc::new(BearerTokens::new(
                config.clone(),
                registry.clone(),
                lasting.revocations.clone(),
                metrics.clone(),
            )),
            tokens: ScriptedRefresh(Mutex::new(refresh)),
            backend: Arc::new(Backend::new(
                config.clone(),
                reqwest::Client::new(),
                &lasting,
            )),
            membership: Arc::new(Membership::new(config.clone(), registry)),
            links: SignInLinks::new(&config.oidc.path_prefix),
            metrics,
            config,
        }
    }

    fn session(organization: &str) -> Session {
        Session {
            id: "s1".into(),
            organization: organization.into(),
            identity_provider: "kc".into(),
            identity: Identity {
                subject: "u1".into(),
                email: Some("ann@ops.example".into()),
                external_id: "u1".into(),
                ..Default::default()
            },
            tokens: Tokens {
                access_token: "at-1".into(),
                access_expires_at: Some(NOW + 3600),
                ..Default::default()
            },
            issued_at: NOW - 60,
            last_seen: NOW - 60,
            claims: [("email".to_owned(), vec!["ann@ops.example".to_owned()])].into(),
            ..Default::default()
        }
    }

    /// A browser's navigation carrying `session`'s cookie, as the gate's store sealed it.
    fn navigation(gate: &Gatekeeper<ScriptedRefresh>, session: Option<&Session>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("text/html"));
        if let Some(session) = session {
            let (set_cookies, _) = gate.sessions.cookies.store(&HeaderMap::new(), session, NOW);
            let pairs: Vec<&str> = set_cookies
                .iter()
                .map(|c| c.split(';').next().unwrap())
                .collect();
            headers.insert("cookie", HeaderValue::from_str(&pairs.join("; ")).unwrap());
        }
        headers
    }

    fn route(kind: RouteKind, organization: Option<&str>) -> Matched<'_> {
        Matched {
            kind,
            organization,
            allow: &[],
            label: "/",
            preflight: Preflight::Forward,
        }
    }

    async fn pass(
        gate: &Gatekeeper<ScriptedRefresh>,
        route: &Matched<'_>,
        headers: &HeaderMap,
    ) -> Gate {
        let req = Request {
            method: &Method::GET,
            path_and_query: "/account?tab=orders",
            query: Some("tab=orders"),
            headers,
            request_id: "r1",
            body: &[],
            client_ip: None,
            host: None,
        };
        gate.gate(route, &req, NOW).await
    }

    fn header<'r>(reply: &'r Reply, name: &str) -> Vec<&'r str> {
        let values = reply.headers.iter().filter(|(n, _)| *n == name);
        values.map(|(_, v)| v.as_str()).collect()
    }

    fn denied(gate: Gate) -> Reply {
        match gate {
            Gate::Deny(reply) => reply,
            _ => panic!("expected a denial"),
        }
    }

    #[tokio::test]
    async fn a_signed_in_user_is_forwarded_as_a_principal() {
        let gate = gatekeeper(None);
        let headers = navigation(&gate, Some(&session("Ops")));
        let Gate::Forward {
            principal,
            authorization,
            set_cookies,
        } = pass(&gate, &route(RouteKind::Required, Some("Ops")), &headers).await
        else {
            panic!("expected the user to pass");
        };
        assert_eq!(principal.identity().subject, "u1");
        assert_eq!(principal.organization(), Some("Ops"));
        assert_eq!(authorization, None);
        assert!(set_cookies.is_empty());
    }

    #[tokio::test]
    async fn without_a_session_browsers_sign_in_and_come_back() {
        let gate = gatekeeper(None);
        let headers = navigation(&gate, None);
        let reply = denied(pass(&gate, &route(RouteKind::Required, Some("Ops")), &headers).await);
        assert_eq!(reply.status, 302);
        assert_eq!(
            header(&reply, "location"),
            ["/oauth2/start?rd=%2Faccount%3Ftab%3Dorders&org=Ops"]
        );
        let optional = pass(&gate, &route(RouteKind::Optional, None), &headers).await;
        assert!(matches!(optional, Gate::Anonymous { set_cookies } if set_cookies.is_empty()));
    }

    #[tokio::test]
    async fn another_organizations_session_does_not_pass_a_pinned_route() {
        let gate = gatekeeper(None);
        let headers = navigation(&gate, Some(&session("Sales")));
        let reply = denied(pass(&gate, &route(RouteKind::Required, Some("Ops")), &headers).await);
        assert_eq!(reply.status, 302);
        // On an optional route the user is a visitor there, and keeps the session.
        let optional = pass(&gate, &route(RouteKind::Optional, Some("Ops")), &headers).await;
        assert!(matches!(optional, Gate::Anonymous { set_cookies } if set_cookies.is_empty()));
    }

    #[tokio::test]
    async fn a_revoked_session_is_over_and_its_cookie_cleared() {
        let gate = gatekeeper(None);
        let headers = navigation(&gate, Some(&session("Ops")));
        gate.sessions.revocations.revoke_session("s1");
        let reply = denied(pass(&gate, &route(RouteKind::Required, None), &headers).await);
        assert_eq!(reply.status, 302);
        let cleared = header(&reply, "set-cookie");
        assert!(
            cleared.iter().any(|c| c.contains("Max-Age=0")),
            "{cleared:?}"
        );
    }

    #[tokio::test]
    async fn a_refresh_is_saved_and_forwarded() {
        let tokens = Tokens {
            access_token: "at-2".into(),
            access_expires_at: Some(NOW + 7200),
            ..Default::default()
        };
        let gate = gatekeeper(Some(Freshness::Refreshed(Arc::new(tokens))));
        let headers = navigation(&gate, Some(&session("Ops")));
        let Gate::Forward {
            principal,
            set_cookies,
            ..
        } = pass(&gate, &route(RouteKind::Required, None), &headers).await
        else {
            panic!("expected the refreshed user to pass");
        };
        assert_eq!(principal.organization(), Some("Ops"));
        assert!(!set_cookies.is_empty(), "the new tokens must be stored");
    }

    #[tokio::test]
    async fn a_refreshed_id_token_that_leaves_the_organization_ends_the_session() {
        let claims = serde_json::json!({"sub": "u1", "email": "ann@elsewhere.example"});
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
        let tokens = Tokens {
            access_token: "at-2".into(),
            access_expires_at: Some(NOW + 7200),
            id_token: Some(format!("e30.{payload}.sig")),
            ..Default::default()
        };
        let gate = gatekeeper(Some(Freshness::Refreshed(Arc::new(tokens))));
        let headers = navigation(&gate, Some(&session("Ops")));
        let reply = denied(pass(&gate, &route(RouteKind::Required, None), &headers).await);
        assert_eq!(reply.status, 302);
        assert!(!header(&reply, "set-cookie").is_empty());
    }

    #[tokio::test]
    async fn an_ended_refresh_asks_to_sign_in_and_an_unreachable_idp_says_so() {
        let gate = gatekeeper(Some(Freshness::Ended("invalid_grant")));
        let headers = navigation(&gate, Some(&session("Ops")));
        let reply = denied(pass(&gate, &route(RouteKind::Required, None), &headers).await);
        assert_eq!(reply.status, 302);

        let gate = gatekeeper(Some(Freshness::Unreachable));
        let headers = navigation(&gate, Some(&session("Ops")));
        let reply = denied(pass(&gate, &route(RouteKind::Required, None), &headers).await);
        assert_eq!(reply.status, 503);
        let page = String::from_utf8_lossy(&reply.body);
        assert!(
            page.contains("identity provider is not reachable"),
            "{page}"
        );

        let gate = gatekeeper(Some(Freshness::Unreachable));
        let mut api_call = navigation(&gate, Some(&session("Ops")));
        api_call.remove("accept");
        let reply = denied(pass(&gate, &route(RouteKind::Api, None), &api_call).await);
        assert_eq!(reply.status, 401);
    }

    #[tokio::test]
    async fn allow_rules_refuse_with_403_not_a_redirect() {
        let gate = gatekeeper(None);
        let headers = navigation(&gate, Some(&session("Ops")));
        let admins = [crate::config::ClaimRule {
            claim: "groups".into(),
            test: crate::config::ClaimTest::AnyOf(vec!["admins".into()]),
        }];
        let mut admin_route = route(RouteKind::Required, None);
        admin_route.allow = &admins;
        let reply = denied(pass(&gate, &admin_route, &headers).await);
        assert_eq!(reply.status, 403);
    }
}
