//! Signing in: `/oauth2/start` (organization and IdP chosen, off to the IdP or the
//! backend's own login), `/oauth2/callback` (the IdP's answer checked, the backend's
//! handshake, the session made) and `/oauth2/userinfo`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::backend::Backend;
use super::links::SignInLinks;
use super::membership::Membership;
use super::session_store::SessionStore;
use super::{callback_params, safe_return_target, urlencode, Params, Request};
use crate::audit;
use crate::config::{Config, IdentityProviderKind, Organization};
use crate::metrics::{Metrics, Rejected, StepUpOutcome};
use crate::oidc::{self, LoginError, LoginTarget, Registry, TokenChecks};
use crate::pages;
use crate::reply::Reply;
use crate::session::strength::{Challenge, Strength};
use crate::session::{Rejection, Session};

/// What a browser is told to wait before trying an IdP that is down again.
const IDP_DOWN_RETRY_SECS: u32 = 30;

pub struct Login {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub sessions: Arc<SessionStore>,
    pub membership: Arc<Membership>,
    pub backend: Arc<Backend>,
    pub links: SignInLinks,
    pub metrics: Arc<Metrics>,
    /// Which sessions each person has: a new one is recorded.
    pub index: Arc<super::session_index::SessionIndex>,
    /// Lower-cased organization key and external name → organization key.
    org_names: HashMap<String, String>,
    /// Some route has a step-up rule: sign-ins ask how the user signed in.
    ask_strength: bool,
    /// The hosts a sign-in may return to by URL (forward-auth under one cookie domain):
    /// those routes name, and `server.public_url`'s.
    return_hosts: Vec<String>,
    remote_end: Arc<super::remote_end::RemoteEnd>,
}

impl Login {
    pub(super) fn new(config: Arc<Config>, registry: Arc<Registry>, parts: &super::Parts) -> Self {
        let mut org_names = HashMap::new();
        for (key, org) in &config.organizations {
            org_names.insert(org.external_name.to_lowercase(), key.clone());
            org_names.insert(key.to_lowercase(), key.clone());
        }
        let ask_strength = config.routes.iter().any(|r| r.step_up.is_some());
        let public_host = (config.server.public_url.as_ref())
            .and_then(|url| url.host_str())
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase());
        let mut return_hosts: Vec<String> = (config.routes.iter())
            .filter_map(|r| r.host.clone())
            .chain(public_host)
            .collect();
        return_hosts.sort();
        return_hosts.dedup();
        Login {
            config,
            registry,
            sessions: parts.sessions.clone(),
            membership: parts.membership.clone(),
            backend: parts.backend.clone(),
            links: parts.links.clone(),
            metrics: parts.metrics.clone(),
            index: parts.index.clone(),
            remote_end: parts.remote_end.clone(),
            org_names,
            ask_strength,
            return_hosts,
        }
    }

    /// The organization a user typed: by key or external name, in any case.
    fn organization(&self, name: &str) -> Option<&Organization> {
        let key = self.org_names.get(&name.trim().to_lowercase())?;
        self.config.organizations.get(key)
    }

    pub async fn start(&self, req: &Request<'_>, now: i64) -> Reply {
        let params = Params::parse(req.query);
        // A step-up: the same sign-in, asked to be stronger or more recent.
        let step_up = Challenge::from_params(params.get("acr_values"), params.get("max_age"));
        let own_prefix = &self.config.oidc.path_prefix;
        let return_to = safe_return_target(params.get("rd"), own_prefix, &self.return_hosts);
        let org = match params.get("org").filter(|o| !o.trim().is_empty()) {
            Some(name) => match self.organization(name) {
                Some(org) => org,
                None => {
                    let page = pages::organization_form(
                        self.links.start(),
                        &return_to,
                        name,
                        Some(pages::OrganizationError::Unknown),
                    );
                    return Reply::page(200, page);
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
                    .sessions
                    .remembered_organization(req.headers)
                    .and_then(|key| self.config.organizations.get(key))
                    .map(|org| org.external_name.as_str())
                    .unwrap_or("");
                return Reply::page(
                    200,
                    pages::organization_form(self.links.start(), &return_to, prefill, None),
                );
            }
        };
        let chosen = match params.get("idp") {
            Some(idp) if org.identity_providers.iter().any(|k| k == idp) => idp.to_owned(),
            Some(_) => return self.idp_list(org, &return_to, true),
            None if org.identity_providers.len() == 1 => org.identity_providers[0].clone(),
            None if org.identity_providers.is_empty() => {
                let start = self.links.start();
                let page = pages::no_sign_in_option(&org.external_name, start, req.request_id);
                return Reply::page(503, page);
            }
            None => return self.idp_list(org, &return_to, false),
        };
        let remember = self.sessions.remember_organization(&org.key);
        match self
            .config
            .identity_providers
            .get(&chosen)
            .map(|idp| &idp.kind)
        {
            Some(IdentityProviderKind::Oidc(_)) => {
                // Signed in for another organization: ask before that session is replaced.
                let switching = params.get("switch") == Some("yes");
                if let (false, Ok(current)) =
                    (switching, self.sessions.load_live(req.headers, now).await)
                {
                    if current.organization != org.key {
                        return self.ask_to_switch(&current, org, &chosen, &return_to);
                    }
                }
                self.redirect_to_idp(req, org, &chosen, (&return_to, step_up), now)
                    .await
                    .with_cookies([remember])
            }
            // `local` and the implicit ICM `local`: the backend's own login, session untouched.
            Some(IdentityProviderKind::Local) | None => {
                // `{rd}`: the backend's login can send the user on to where they were going.
                let login = org.local_login_url.replace("{rd}", &urlencode(&return_to));
                Reply::redirect(&login).with_cookies([remember])
            }
        }
    }

    fn idp_list(&self, org: &Organization, return_to: &str, unknown_choice: bool) -> Reply {
        let choices: Vec<pages::IdpChoice<'_>> = org
            .identity_providers
            .iter()
            .map(|key| pages::IdpChoice {
                key,
                name: self
                    .config
                    .identity_providers
                    .get(key)
                    .map_or(key.as_str(), |idp| idp.name.as_str()),
            })
            .collect();
        Reply::page(
            200,
            pages::idp_list(
                self.links.start(),
                return_to,
                &org.key,
                &org.external_name,
                &choices,
                unknown_choice,
            ),
        )
    }

    async fn redirect_to_idp(
        &self,
        req: &Request<'_>,
        org: &Organization,
        idp_key: &str,
        (return_to, step_up): (&str, Option<Challenge>),
        now: i64,
    ) -> Reply {
        let discovered = self
            .registry
            .get(idp_key)
            .and_then(|p| p.discovered().map(|d| (p, d)));
        let answers = match discovered {
            Some((provider, _)) => self.registry.answers(provider, now).await,
            None => false,
        };
        let Some((provider, discovered)) = discovered.filter(|_| answers) else {
            // Never send a browser to an IdP known to be down: say so, and offer the
            // organization's other ways in.
            self.metrics
                .sessions
                .login_failed(&org.key, idp_key, "idp_unavailable");
            sign_in_failed(req, &org.key, idp_key, "idp_unavailable");
            return self.idp_down(req, org, idp_key, return_to);
        };
        let target = LoginTarget {
            organization: &org.key,
            return_to,
            step_up,
            ask_strength: self.ask_strength,
        };
        let start = match oidc::begin(provider, &discovered, target, now).await {
            Ok(start) => start,
            Err(error) => {
                // A pushed request the IdP refused or could not take.
                if matches!(error, LoginError::Unreachable(_)) {
                    self.registry.idp_failed(provider);
                }
                self.metrics
                    .sessions
                    .login_failed(&org.key, idp_key, error.reason());
                tracing::warn!(organization = org.key.as_str(), idp = idp_key, reason = error.reason(), %error, "sign-in could not start");
                sign_in_failed(req, &org.key, idp_key, error.reason());
                let retry = self.links.sign_in(return_to, Some(&org.key));
                let (status, page) =
                    pages::login_failed(&error, (&retry, pages::SIGN_IN_AGAIN), req.request_id);
                return Reply::page(status, page);
            }
        };
        let mut login = start.pending;
        // A form kept for this page (by this browser, moments ago) is tied to this sign-in.
        login.kept_form = self
            .sessions
            .kept_form(req.headers, now)
            .filter(|form| form.path_and_query == return_to)
            .map(|form| form.id);
        let mut pending = self.sessions.pending(req.headers);
        pending.push(login, now);
        self.metrics.sessions.login_started(&org.key, idp_key);
        Reply::redirect(start.authorize_url.as_str())
            .with_cookies([self.sessions.store_pending(&pending)])
    }

    /// A sign-in for `org` while signed in for another organization: one session at a time
    /// (one cookie, one organization in the identity headers), so the person chooses.
    fn ask_to_switch(
        &self,
        current: &Session,
        org: &Organization,
        idp_key: &str,
        return_to: &str,
    ) -> Reply {
        let current_org = (self.config.organizations.get(&current.organization))
            .map_or(current.organization.as_str(), |o| o.external_name.as_str());
        let identity = &current.identity;
        let who = (identity.name.as_deref())
            .or(identity.email.as_deref())
            .unwrap_or(&identity.subject);
        let switch = format!(
            "{}&idp={}&switch=yes",
            self.links.sign_in(return_to, Some(&org.key)),
            urlencode(idp_key)
        );
        let page = pages::switch_organization(who, current_org, &org.external_name, &switch, "/");
        Reply::page(200, page)
    }

    /// `503` for a sign-in at an IdP that is down: its name, the organization's other
    /// sign-in options that answer (`local` included), `Retry-After`, the request id.
    fn idp_down(
        &self,
        req: &Request<'_>,
        org: &Organization,
        idp_key: &str,
        return_to: &str,
    ) -> Reply {
        let name = |key: &str| {
            (self.config.identity_providers.get(key))
                .map_or_else(|| key.to_owned(), |idp| idp.name.clone())
        };
        let others: Vec<(String, String)> = (org.identity_providers.iter())
            .filter(|key| *key != idp_key)
            .filter(|key| {
                self.registry
                    .get(key)
                    .is_none_or(|p| p.health.is_up() && p.discovered().is_some())
            })
            .map(|key| {
                let link = format!(
                    "{}&idp={}",
                    self.links.sign_in(return_to, Some(&org.key)),
                    urlencode(key)
                );
                (name(key), link)
            })
            .collect();
        let retry = format!(
            "{}&idp={}",
            self.links.sign_in(return_to, Some(&org.key)),
            urlencode(idp_key)
        );
        let html = pages::idp_down(&name(idp_key), &others, &retry, req.request_id);
        Reply::page(503, html).with_header("retry-after", IDP_DOWN_RETRY_SECS.to_string())
    }

    pub async fn callback(&self, req: &Request<'_>, now: i64) -> Reply {
        let params = callback_params(req.query.unwrap_or(""));
        let mut pending = self.sessions.pending(req.headers);
        let had_pending = !pending.entries.is_empty();
        let login = params
            .state
            .as_deref()
            .and_then(|state| pending.take(state, now));
        let state_cookie = self.sessions.store_pending(&pending);
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
                Ok(()) => self.finish(login, params.code.as_deref(), req, now).await,
                Err(error) => Err(error),
            },
        };
        match result {
            Ok(session) => {
                let (mut cookies, size) = self.sessions.save(req.headers, &session, now).await;
                let user_agent =
                    (req.headers.get(http::header::USER_AGENT)).and_then(|v| v.to_str().ok());
                (self.index)
                    .record(
                        &session,
                        user_agent,
                        req.client_ip,
                        self.config.session.max_age,
                    )
                    .await;
                self.remote_end.keep(&session).await;
                cookies.push(state_cookie);
                self.metrics.sessions.login_completed(org, idp, size);
                req.audit(audit::Kind::SignIn).session(&session).record();
                tracing::info!(
                    organization = org,
                    idp,
                    session = session.id.as_str(),
                    "login completed"
                );
                let return_to = login.as_ref().map_or("/", |l| l.return_to.as_str());
                // The form kept for this sign-in is posted again, to where it was posted.
                let kept_for_this = login.as_ref().and_then(|l| l.kept_form);
                if let Some(form) = self
                    .sessions
                    .kept_form(req.headers, now)
                    .filter(|f| Some(f.id) == kept_for_this && f.path_and_query == return_to)
                {
                    cookies.extend(self.sessions.clear_form(req.headers));
                    return Reply::page(200, pages::resubmit_form(&form)).with_cookies(cookies);
                }
                Reply::redirect(return_to).with_cookies(cookies)
            }
            Err(error) => {
                self.metrics.sessions.login_failed(org, idp, error.reason());
                tracing::warn!(organization = org, idp, reason = error.reason(), %error, "login failed");
                sign_in_failed(req, org, idp, error.reason());
                let retry = match (&login, &error) {
                    // The same organization would only refuse the same account again.
                    (Some(l), LoginError::NotAMember { .. }) => (
                        self.links.sign_in(&l.return_to, None),
                        pages::CHOOSE_ANOTHER_ORGANIZATION,
                    ),
                    (Some(l), _) => (
                        self.links.sign_in(&l.return_to, Some(&l.organization)),
                        pages::SIGN_IN_AGAIN,
                    ),
                    (None, _) => (self.links.start().to_owned(), pages::SIGN_IN_AGAIN),
                };
                let (status, page) =
                    pages::login_failed(&error, (&retry.0, retry.1), req.request_id);
                let reply = Reply::page(status, page).with_cookies([state_cookie]);
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
        req: &Request<'_>,
        now: i64,
    ) -> Result<Session, LoginError> {
        let client = req.client_ip;
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
        let wanted = self.membership.wanted_claims(&provider.config.groups_claim);
        let result = oidc::finish(
            &self.registry,
            provider,
            &discovered,
            login,
            code,
            checks,
            &wanted,
        )
        .await;
        // What this says about the IdP: down when it could not be reached.
        match &result {
            Err(LoginError::Unreachable(_)) => self.registry.idp_failed(provider),
            Err(_) => {}
            Ok(_) => self.registry.idp_answered(provider),
        }
        let result = result?;
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
            dpop: result.dpop,
        };
        self.membership.keep_claims(&mut session, &result.claims);
        if !self.membership.is_member(&session) {
            return Err(LoginError::NotAMember {
                organization: self
                    .config
                    .organizations
                    .get(&session.organization)
                    .map_or_else(|| session.organization.clone(), |o| o.external_name.clone()),
                email: session.identity.email.clone(),
            });
        }
        if let Some(asked) = &login.step_up {
            self.stepped_up(asked, &session, req.headers, now).await?;
        }
        self.backend
            .handshake(
                &mut session,
                &result.claims,
                &provider.config.claims,
                (client, req.headers),
            )
            .await?;
        Ok(session)
    }

    /// A step-up sign-in must be what was asked (`acr`, `auth_time`, checked on the ID
    /// token's claims as the IdP gave them, at the IdP's answer) and of the person signed
    /// in here, if anyone is: it replaces their weaker session.
    async fn stepped_up(
        &self,
        asked: &Challenge,
        session: &Session,
        headers: &http::HeaderMap,
        now: i64,
    ) -> Result<(), LoginError> {
        let answered = chrono::Utc::now().timestamp().max(now);
        let skew = self.config.oidc.max_clock_skew;
        if !asked.met_by(Strength::kept(&session.claims), answered, skew) {
            self.metrics
                .sessions
                .step_up_finished(StepUpOutcome::NotGiven);
            return Err(LoginError::StepUpNotGiven);
        }
        if let Ok(current) = self.sessions.load_live(headers, now).await {
            let same = current.identity.subject == session.identity.subject
                && current.identity_provider == session.identity_provider;
            if !same {
                self.metrics
                    .sessions
                    .step_up_finished(StepUpOutcome::OtherUser);
                return Err(LoginError::StepUpOtherUser);
            }
            // The weaker session's copy in the store goes; its cookie is replaced.
            self.sessions.forget(&current).await;
        }
        self.metrics.sessions.step_up_finished(StepUpOutcome::Given);
        Ok(())
    }

    pub async fn userinfo(&self, req: &Request<'_>, now: i64) -> Reply {
        let session = match self.sessions.load_live(req.headers, now).await {
            Ok(session) => session,
            Err(Rejection::Missing) => return Reply::unauthorized(None),
            Err(rejection) => {
                self.metrics
                    .sessions
                    .session_rejected(Rejected::Cookie(rejection));
                // A store outage is no reason to forget the session.
                let cleared = match rejection {
                    Rejection::Unavailable => Vec::new(),
                    _ => self.sessions.clear(req.headers),
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

/// The audit line of a sign-in that did not go through (`unknown` where the browser's
/// sign-in could not be matched).
fn sign_in_failed(req: &Request<'_>, organization: &str, idp: &str, reason: &str) {
    let mut event = req.audit(audit::Kind::SignInFailed).reason(reason);
    event.organization = Some(organization);
    event.identity_provider = Some(idp);
    event.record();
}
