//! The gate in front of `required`, `optional` and `api` routes: who is asking (a session
//! or a bearer token), whether their tokens are still good (refreshed when about to run
//! out), and whether the route admits them. Whatever it refuses is answered by
//! [`refusal::answer`].

use std::collections::HashSet;
use std::sync::Arc;

use http::{HeaderMap, Method};
use url::Url;

use super::backend::Backend;
use super::bearer::{bearer_token, BearerTokens};
use super::links::SignInLinks;
use super::membership::{kept, Membership};
use super::refusal::{self, Refusal, Refused};
use super::session_store::SessionStore;
use super::site::OwnSite;
use super::step_up::Challenge;
use super::tokens::{Freshness, Refresh};
use super::{rules, Gate, Parts, Request};
use crate::audit;
use crate::caller::Caller;
use crate::config::Config;
use crate::jwt::jwt_part;
use crate::metrics::{Ended, Metrics, Rejected, StepUpBy};
use crate::pages;
use crate::principal::Principal;
use crate::reply::Reply;
use crate::routing::{Matched, RouteKind};
use crate::session::strength::Strength;
use crate::session::{Rejection, Session};

/// The settings the gate uses, taken from the config once.
struct GateSettings {
    /// `oidc.remote`: false once a reload turned remote sign-ins off.
    remote_sign_ins: bool,
    /// The IdPs that sign in remotely (OpenID Connect), as opposed to `local` ones.
    remote_idps: HashSet<String>,
    /// `server.public_url`: the origin a kept form must come from.
    public_url: Option<Url>,
    /// `headers.forward_access_token`.
    forward_access_token: bool,
    /// `session.preserve_post_max`: the largest form kept across a sign-in (0: none).
    preserve_post_max: usize,
    /// `oidc.max_clock_skew`, allowed on `auth_time` against a route's `max_age`.
    max_clock_skew: std::time::Duration,
}

impl GateSettings {
    fn new(config: &Config) -> Self {
        let remote_idps = config.identity_providers.iter();
        GateSettings {
            remote_sign_ins: config.oidc.remote,
            remote_idps: remote_idps
                .filter(|(_, idp)| idp.oidc().is_some())
                .map(|(key, _)| key.clone())
                .collect(),
            public_url: config.server.public_url.clone(),
            forward_access_token: config.headers.forward_access_token,
            preserve_post_max: config.session.preserve_post_max,
            max_clock_skew: config.oidc.max_clock_skew,
        }
    }
}

/// A forwarded request whose backend may ask for a step-up ([`Gatekeeper::backend_may_ask`]).
#[derive(Debug)]
pub enum BackendAsk {
    /// A browser's page: it is loaded again after the sign-in.
    Page,
    /// A form from this site: its body as it went upstream, kept across the sign-in while
    /// it stays within `max` bytes (`complete`).
    Form {
        body: Vec<u8>,
        max: usize,
        complete: bool,
    },
}

impl BackendAsk {
    /// Copies a piece of a form's body on its way upstream.
    pub fn copy(&mut self, chunk: &[u8]) {
        if let BackendAsk::Form {
            body,
            max,
            complete,
        } = self
        {
            if *complete && body.len() + chunk.len() <= *max {
                body.extend_from_slice(chunk);
            } else {
                *complete = false;
                *body = Vec::new();
            }
        }
    }
}

pub struct Gatekeeper<R> {
    settings: GateSettings,
    sessions: Arc<SessionStore>,
    bearer: Arc<BearerTokens>,
    tokens: R,
    backend: Arc<Backend>,
    membership: Arc<Membership>,
    links: SignInLinks,
    idp_revocation: Arc<super::idp_revocation::IdpRevocation>,
    remote_end: Arc<super::remote_end::RemoteEnd>,
    metrics: Arc<Metrics>,
    index: Arc<super::session_index::SessionIndex>,
}

/// Where a request came in: the route's mode and the organization it pins.
#[derive(Clone, Copy)]
struct Place<'a> {
    kind: RouteKind,
    pinned_org: Option<&'a str>,
}

impl<R: Refresh> Gatekeeper<R> {
    /// The gate of the auth service, and of the tests, which bring their own refresh.
    pub(super) fn new(config: &Config, parts: &Parts, tokens: R) -> Self {
        Gatekeeper {
            settings: GateSettings::new(config),
            sessions: parts.sessions.clone(),
            bearer: parts.bearer.clone(),
            tokens,
            backend: parts.backend.clone(),
            membership: parts.membership.clone(),
            links: parts.links.clone(),
            idp_revocation: parts.idp_revocation.clone(),
            remote_end: parts.remote_end.clone(),
            metrics: parts.metrics.clone(),
            index: parts.index.clone(),
        }
    }

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
                return match Box::pin(self.bearer.gate(token, route, now)).await {
                    Ok(gate) => gate,
                    Err(refusal) => self.refuse(refusal, at, req),
                };
            }
        }
        let mut session = match self.sessions.load(req.headers, now).await {
            Ok(session) if self.sessions.is_revoked(&session) => {
                self.metrics.sessions.session_rejected(Rejected::Revoked);
                return self.session_ended(at, &session, "revoked", req);
            }
            Ok(session) => session,
            Err(rejection) => return self.without_session(at, rejection, req),
        };
        if let Err(refusal) = self.admits(at, &session, req) {
            return self.refuse(refusal, at, req);
        }
        // The IdP said this person's claims changed after these tokens were issued.
        let rechecked = match self.claims_changed(&session) {
            Some(changed_at) => {
                match Box::pin(self.recheck_claims(&mut session, changed_at, req, now)).await {
                    Ok(()) => true,
                    Err(refusal) => return self.refuse(refusal, at, req),
                }
            }
            None => false,
        };
        // Most requests need no refresh; those that do carry its (large) state in a box.
        let refresh =
            self.tokens.may_refresh(&session, now) || self.backend.may_refresh(&session, now);
        let refreshed = rechecked
            || match refresh {
                true => match Box::pin(self.keep_fresh(&mut session, req, now)).await {
                    Ok(refreshed) => refreshed,
                    Err(refusal) => return self.refuse(refusal, at, req),
                },
                false => false,
            };
        if !rules::satisfied(route.allow, |path| kept(&session, path)) {
            self.metrics.traffic.request_denied(route.label);
            let identity = &session.identity;
            let who = (identity.email.as_deref())
                .or(identity.preferred_username.as_deref())
                .unwrap_or(&identity.subject);
            return self.refuse(
                Refusal::Forbidden {
                    who: who.to_owned(),
                },
                at,
                req,
            );
        }
        if let Some(rule) = route.step_up {
            let challenge = Challenge::of_route(rule);
            let strength = Strength::kept(&session.claims);
            if !challenge.met_by(strength, now, self.settings.max_clock_skew) {
                return self.step_up(challenge, &session, at, req);
            }
        }
        let set_cookies = if refreshed {
            Arc::make_mut(&mut session).last_seen = now;
            // New tokens: what ending this session from elsewhere revokes.
            self.remote_end.keep_later(session.clone());
            Box::pin(self.sessions.save(req.headers, &session, now))
                .await
                .0
        } else {
            self.sessions.touch(req.headers, &session, now).await
        };
        self.forward(session, set_cookies)
    }

    /// The one way out for whatever the gate refuses.
    fn refuse(&self, refusal: Refusal, at: Place<'_>, req: &Request<'_>) -> Gate {
        if let Some(reason) = refusal.denial() {
            let mut event = req.audit(audit::Kind::Denied).reason(reason);
            if let Refusal::Forbidden { who } = &refusal {
                event.user = Some(who);
            }
            event.record();
        }
        let refused = Refused {
            kind: at.kind,
            pinned_org: at.pinned_org,
            caller: Caller::of(req.method, req.headers),
            path_and_query: req.path_and_query,
            request_id: req.request_id,
            forward_auth: req.forward_auth,
        };
        refusal::answer(refusal, &refused, &self.links, || {
            self.sessions.clear(req.headers)
        })
    }

    /// Signed in, but not as strongly or as recently as the route asks: a browser signs in
    /// again at the session's IdP (a form posted from this site is kept for after it);
    /// programs learn what is missing.
    fn step_up(
        &self,
        challenge: Challenge,
        session: &Session,
        at: Place<'_>,
        req: &Request<'_>,
    ) -> Gate {
        self.metrics.sessions.step_up_asked(StepUpBy::Route);
        let form = at.kind == RouteKind::Required && self.may_keep_form(req);
        if form && self.own_site(req).sent_form(req.headers) {
            let login = self.links.step_up(
                req.path_and_query,
                &session.organization,
                &session.identity_provider,
                &challenge,
            );
            let posted_to = req.path_and_query.to_owned();
            return Gate::KeepForm { login, posted_to };
        }
        let refusal = Refusal::StepUp {
            challenge,
            organization: session.organization.clone(),
            identity_provider: session.identity_provider.clone(),
        };
        self.refuse(refusal, at, req)
    }

    /// Whether a backend's step-up challenge (RFC 9470) to this forwarded request will be
    /// answered by signing in again: for a signed-in browser's page, or a form from this
    /// site small enough to keep (its body is then copied on its way upstream). Programs
    /// get the backend's challenge as it is.
    pub fn backend_may_ask(
        &self,
        route: &Matched<'_>,
        principal: &Principal,
        req: &Request<'_>,
    ) -> Option<BackendAsk> {
        if route.kind != RouteKind::Required || !principal.is_session() {
            return None;
        }
        if Caller::of(req.method, req.headers) == Caller::Navigation {
            return Some(BackendAsk::Page);
        }
        let form = self.may_keep_form(req) && self.own_site(req).sent_form(req.headers);
        form.then(|| BackendAsk::Form {
            body: Vec::new(),
            max: self.settings.preserve_post_max,
            complete: true,
        })
    }

    /// The backend asked for `challenge`: the browser signs in again at the session's IdP
    /// and comes back to the page (a kept form is posted again).
    pub fn backend_step_up(
        &self,
        principal: &Principal,
        challenge: Challenge,
        ask: BackendAsk,
        req: &Request<'_>,
        now: i64,
    ) -> Reply {
        self.metrics.sessions.step_up_asked(StepUpBy::Backend);
        let login = self.links.step_up(
            req.path_and_query,
            principal.organization().unwrap_or_default(),
            principal.identity_provider(),
            &challenge,
        );
        match ask {
            BackendAsk::Page => Reply::redirect(&login),
            BackendAsk::Form {
                body,
                complete: true,
                ..
            } => {
                let form = (req.path_and_query.to_owned(), body);
                let reply = self.keep_form(req.headers, form, &login, req.request_id, now);
                match reply.status {
                    303 => reply,
                    // Too large for its cookie: the user lands on the page by `GET`.
                    _ => Reply::see_other(&login),
                }
            }
            BackendAsk::Form { .. } => Reply::see_other(&login),
        }
    }

    /// Where a form must come from to be kept.
    fn own_site<'r>(&'r self, req: &Request<'r>) -> OwnSite<'r> {
        OwnSite {
            public_url: self.settings.public_url.as_ref(),
            host: req.host,
        }
    }

    /// No usable session: a form worth keeping across the sign-in, or a refusal.
    fn without_session(&self, at: Place<'_>, rejection: Rejection, req: &Request<'_>) -> Gate {
        if rejection != Rejection::Missing {
            self.metrics
                .sessions
                .session_rejected(Rejected::Cookie(rejection));
        }
        if at.kind == RouteKind::Required && self.may_keep_form(req) {
            if !self.own_site(req).sent_form(req.headers) {
                self.metrics
                    .sessions
                    .form_dropped(crate::metrics::FormDropped::CrossSite);
                return self.refuse(Refusal::CrossSiteForm, at, req);
            }
            let login = self.links.sign_in(req.path_and_query, at.pinned_org);
            let posted_to = req.path_and_query.to_owned();
            return Gate::KeepForm { login, posted_to };
        }
        self.refuse(Refusal::NotSignedIn(rejection), at, req)
    }

    /// A session that is good in itself may still not belong here: remote sign-ins turned
    /// off by a reload, or signed in for another organization than the route's.
    fn admits(&self, at: Place<'_>, session: &Session, req: &Request<'_>) -> Result<(), Refusal> {
        let remote_session = self
            .settings
            .remote_idps
            .contains(&session.identity_provider);
        if !self.settings.remote_sign_ins && remote_session {
            // Reloaded with `oidc.remote = "unsupported"`: remote sign-ins are over.
            self.metrics
                .sessions
                .session_ended(Ended::RemoteUnsupported);
            let reason = Ended::RemoteUnsupported.as_str();
            audit_line(audit::Kind::SignOut, session, reason, req)
                .by(audit::By::Sidecar)
                .record();
            return Err(Refusal::SessionOver);
        }
        if at.pinned_org.is_none_or(|org| org == session.organization) {
            return Ok(());
        }
        self.metrics
            .sessions
            .session_rejected(Rejected::OtherOrganization);
        Err(Refusal::OtherOrganization)
    }

    /// Refreshes the IdP's and the backend's tokens where they are about to run out;
    /// `Ok(true)` when the session changed and must be saved.
    async fn keep_fresh(
        &self,
        shared: &mut Arc<Session>,
        req: &Request<'_>,
        now: i64,
    ) -> Result<bool, Refusal> {
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
                    self.metrics.sessions.session_ended(Ended::NotAMember);
                    return Err(self.ended(session, Ended::NotAMember.as_str(), req));
                }
            }
            Freshness::Ended(reason) => {
                self.metrics.sessions.session_ended(reason);
                audit_line(audit::Kind::RefreshFailed, shared, reason.as_str(), req).record();
                return Err(self.ended(shared, reason.as_str(), req));
            }
            Freshness::Unreachable => return Err(self.idp_unreachable(shared, req)),
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
                self.metrics.sessions.session_ended(reason);
                refresh_ended(shared, reason, req);
                return Err(Refusal::SessionOver);
            }
            Freshness::Unreachable => {
                self.metrics.sessions.session_ended(Ended::BackendRefused);
                refresh_ended(shared, Ended::BackendRefused, req);
                return Err(Refusal::SessionOver);
            }
        }
        Ok(changed)
    }

    /// When the person's claims changed (a CAEP token-claims-change), if the session's
    /// ID token was issued no later than that.
    fn claims_changed(&self, session: &Session) -> Option<i64> {
        let revocations = &self.sessions.revocations;
        let changed_at =
            revocations.claims_changed_at(&session.identity_provider, &session.identity.subject)?;
        let id_token = session.tokens.id_token.as_deref();
        let issued_at = (id_token.and_then(|t| jwt_part(t, 1)))
            .and_then(|claims| claims.get("iat").and_then(serde_json::Value::as_i64))
            .unwrap_or(0);
        (issued_at <= changed_at).then_some(changed_at)
    }

    /// Renews the session's tokens now to learn the changed claims, and checks
    /// membership with them (the route's rules follow on the new claims). A session that
    /// cannot get a new ID token ends: its old claims are no longer the person's.
    async fn recheck_claims(
        &self,
        shared: &mut Arc<Session>,
        changed_at: i64,
        req: &Request<'_>,
        now: i64,
    ) -> Result<(), Refusal> {
        // As if its access token ran out: the refresh happens now, whatever it has left.
        let mut due = (**shared).clone();
        due.tokens.access_expires_at = Some(0);
        let renewed = match self.tokens.ensure_fresh(&due, now).await {
            Freshness::Refreshed(tokens) => Some(tokens),
            Freshness::Unreachable => return Err(self.idp_unreachable(shared, req)),
            Freshness::Current | Freshness::Ended(_) => None,
        };
        let new_claims = renewed.filter(|tokens| {
            tokens.id_token.is_some() && tokens.id_token != shared.tokens.id_token
        });
        let Some(tokens) = new_claims else {
            tracing::info!(
                changed_at,
                "claims changed and no new ID token: the session ends"
            );
            return Err(self.ended(shared, "claims_changed", req));
        };
        let session = Arc::make_mut(shared);
        session.tokens = (*tokens).clone();
        if !self.still_member(session) {
            self.metrics.sessions.session_ended(Ended::NotAMember);
            return Err(self.ended(session, Ended::NotAMember.as_str(), req));
        }
        Ok(())
    }

    /// The tokens need renewing and the session's IdP cannot be reached: the session ends,
    /// and a browser is told the IdP is down.
    fn idp_unreachable(&self, session: &Session, req: &Request<'_>) -> Refusal {
        self.metrics.sessions.session_ended(Ended::IdpUnreachable);
        refresh_ended(session, Ended::IdpUnreachable, req);
        let organization = session.organization.clone();
        Refusal::IdpUnreachable { organization }
    }

    /// Takes the claims of a refreshed ID token and checks membership with them.
    fn still_member(&self, session: &mut Session) -> bool {
        let id_token = session.tokens.id_token.as_deref();
        if let Some(claims) = id_token.and_then(|t| jwt_part(t, 1)) {
            self.membership.keep_claims(session, &claims);
        }
        self.membership.is_member(session)
    }

    /// Forwards a signed-in user: the shop's own token goes upstream where the backend
    /// exchanged the IdP's (Spree), else the access token where configured.
    fn forward(&self, session: Arc<Session>, set_cookies: Vec<String>) -> Gate {
        // "Last used" for the sessions page, written now and then, never on the way: a
        // task only when a write is due (a task per request cost a wake-up each).
        let now = chrono::Utc::now().timestamp();
        if self.index.touch_due(&session, now) {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let (index, used) = (self.index.clone(), session.clone());
                handle.spawn(async move { index.touch(&used, now).await });
            }
        }
        let authorization = match &session.backend {
            Some(backend) => Some(format!("Bearer {}", backend.token)),
            // A DPoP-bound token is of no use without the session's key: never forwarded.
            None if self.settings.forward_access_token && session.dpop.is_none() => {
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

    /// The session ended without a logout here (revoked, refused by the IdP, no longer a
    /// member): the backend's own session ends with it, and its tokens at the IdP.
    fn ended(&self, session: &Session, reason: &str, req: &Request<'_>) -> Refusal {
        audit_line(audit::Kind::SignOut, session, reason, req)
            .by(audit::By::Sidecar)
            .record();
        self.backend.end_session(session, req.client_ip);
        self.idp_revocation.revoke(session);
        Refusal::SessionOver
    }

    fn session_ended(
        &self,
        at: Place<'_>,
        session: &Session,
        reason: &str,
        req: &Request<'_>,
    ) -> Gate {
        let refusal = self.ended(session, reason, req);
        self.refuse(refusal, at, req)
    }

    /// A form `POST` small enough to keep across a sign-in (`session.preserve_post_max`);
    /// never for a forward-auth question, whose body stays at the ingress.
    fn may_keep_form(&self, req: &Request<'_>) -> bool {
        if req.forward_auth.is_some() {
            return false;
        }
        let max = self.settings.preserve_post_max;
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
        match self.sessions.keep_form(headers, &form) {
            Some(cookies) => Reply::see_other(login).with_cookies(cookies),
            None => Reply::page(401, pages::form_too_large(login, request_id)),
        }
    }
}

/// An audit line about a session, on the request that found it so.
fn audit_line<'a>(
    kind: audit::Kind,
    session: &'a Session,
    reason: &'a str,
    req: &Request<'a>,
) -> audit::Event<'a> {
    req.audit(kind).session(session).reason(reason)
}

/// A refresh (the IdP's or the backend's) that could not be done ended the session.
fn refresh_ended(session: &Session, reason: Ended, req: &Request<'_>) {
    audit_line(audit::Kind::RefreshFailed, session, reason.as_str(), req).record();
    audit_line(audit::Kind::SignOut, session, reason.as_str(), req)
        .by(audit::By::Sidecar)
        .record();
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
        let store = Arc::new(Store::new(None, metrics.clone()));
        let lasting = Lasting {
            revocations: Arc::new(Revocations::new(config.session.max_age)),
            sessions: Arc::new(crate::auth::session_index::SessionIndex::new(
                store.clone(),
                None,
            )),
            store,
            refreshes: Arc::default(),
            file: None,
            metrics: metrics.clone(),
        };
        let registry = Arc::new(Registry::new(&config, metrics));
        let parts = Parts::new(&config, &registry, &lasting);
        Gatekeeper::new(&config, &parts, ScriptedRefresh(Mutex::new(refresh)))
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
    async fn navigation(
        gate: &Gatekeeper<ScriptedRefresh>,
        session: Option<&Session>,
    ) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("text/html"));
        if let Some(session) = session {
            let (set_cookies, _) = gate.sessions.save(&HeaderMap::new(), session, NOW).await;
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
            step_up: None,
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
            forward_auth: None,
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
        let headers = navigation(&gate, Some(&session("Ops"))).await;
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
        let headers = navigation(&gate, None).await;
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
        let headers = navigation(&gate, Some(&session("Sales"))).await;
        let reply = denied(pass(&gate, &route(RouteKind::Required, Some("Ops")), &headers).await);
        assert_eq!(reply.status, 302);
        // On an optional route the user is a visitor there, and keeps the session.
        let optional = pass(&gate, &route(RouteKind::Optional, Some("Ops")), &headers).await;
        assert!(matches!(optional, Gate::Anonymous { set_cookies } if set_cookies.is_empty()));
    }

    #[tokio::test]
    async fn a_revoked_session_is_over_and_its_cookie_cleared() {
        let gate = gatekeeper(None);
        let headers = navigation(&gate, Some(&session("Ops"))).await;
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
        let headers = navigation(&gate, Some(&session("Ops"))).await;
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
        let headers = navigation(&gate, Some(&session("Ops"))).await;
        let reply = denied(pass(&gate, &route(RouteKind::Required, None), &headers).await);
        assert_eq!(reply.status, 302);
        assert!(!header(&reply, "set-cookie").is_empty());
    }

    #[tokio::test]
    async fn an_ended_refresh_asks_to_sign_in_and_an_unreachable_idp_says_so() {
        let gate = gatekeeper(Some(Freshness::Ended(Ended::InvalidGrant)));
        let headers = navigation(&gate, Some(&session("Ops"))).await;
        let reply = denied(pass(&gate, &route(RouteKind::Required, None), &headers).await);
        assert_eq!(reply.status, 302);

        let gate = gatekeeper(Some(Freshness::Unreachable));
        let headers = navigation(&gate, Some(&session("Ops"))).await;
        let reply = denied(pass(&gate, &route(RouteKind::Required, None), &headers).await);
        assert_eq!(reply.status, 503);
        let reply = reply.render(&crate::pages::Pages::shipped(), None, None);
        let page = String::from_utf8_lossy(&reply.body);
        assert!(
            page.contains("identity provider is not reachable"),
            "{page}"
        );

        let gate = gatekeeper(Some(Freshness::Unreachable));
        let mut api_call = navigation(&gate, Some(&session("Ops"))).await;
        api_call.remove("accept");
        let reply = denied(pass(&gate, &route(RouteKind::Api, None), &api_call).await);
        assert_eq!(reply.status, 401);
    }

    #[tokio::test]
    async fn allow_rules_refuse_with_403_not_a_redirect() {
        let gate = gatekeeper(None);
        let headers = navigation(&gate, Some(&session("Ops"))).await;
        let admins = [crate::config::ClaimRule {
            claim: "groups".into(),
            test: crate::config::ClaimTest::AnyOf(vec!["admins".into()]),
        }];
        let mut admin_route = route(RouteKind::Required, None);
        admin_route.allow = &admins;
        let reply = denied(pass(&gate, &admin_route, &headers).await);
        assert_eq!(reply.status, 403);
    }

    #[tokio::test]
    async fn a_route_that_asks_for_more_sends_browsers_to_step_up_and_programs_get_401() {
        let gate = gatekeeper(None);
        let rule = crate::config::StepUp {
            acr_values: vec!["urn:mfa".into()],
            max_age: None,
        };
        let mut checkout = route(RouteKind::Required, None);
        checkout.step_up = Some(&rule);
        let weak = session("Ops");
        let reply = denied(pass(&gate, &checkout, &navigation(&gate, Some(&weak)).await).await);
        assert_eq!(reply.status, 302);
        assert_eq!(
            header(&reply, "location"),
            ["/oauth2/start?rd=%2Faccount%3Ftab%3Dorders&org=Ops&idp=kc&acr_values=urn%3Amfa"]
        );
        let mut api_call = navigation(&gate, Some(&weak)).await;
        api_call.remove("accept");
        let reply = denied(pass(&gate, &checkout, &api_call).await);
        assert_eq!(reply.status, 401);
        let challenge = header(&reply, "www-authenticate");
        assert!(
            challenge[0].contains("acr_values=\"urn:mfa\""),
            "{challenge:?}"
        );

        let mut strong = session("Ops");
        strong.claims.insert("acr".into(), vec!["urn:mfa".into()]);
        let headers = navigation(&gate, Some(&strong)).await;
        assert!(matches!(
            pass(&gate, &checkout, &headers).await,
            Gate::Forward { .. }
        ));
    }
}
