//! `/oauth2/logout` by the organization's `logout_policy`, and `/oauth2/backchannel-logout`
//! for IdPs that end sessions themselves.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::json;

use super::backend::Backend;
use super::lasting::{LOGOUT_TOKEN_PREFIX, REVOCATION_PREFIX};
use super::links::SignInLinks;
use super::revocations::{Revocation, Revocations};
use super::session_store::SessionStore;
use super::shared::share;
use super::{Params, Request};
use crate::audit;
use crate::config::Choice as _;
use crate::config::{Config, LogoutPolicy, Organization};
use crate::digest::digest;
use crate::metrics::Metrics;
use crate::oidc::logout::{end_session_url, revoke_refresh_token, verify_logout_token};
use crate::oidc::Registry;
use crate::pages;
use crate::reply::Reply;
use crate::session::Session;
use crate::store::Store;

/// Ending sessions: the user's own logout and the IdP's back-channel one.
pub struct Logout {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub sessions: Arc<SessionStore>,
    pub revocations: Arc<Revocations>,
    pub store: Arc<Store>,
    pub backend: Arc<Backend>,
    pub links: SignInLinks,
    pub metrics: Arc<Metrics>,
    /// Revokes the ended session's tokens at the IdP.
    pub idp_revocation: Arc<super::idp_revocation::IdpRevocation>,
    /// Sessions ended here from elsewhere end at the shop and the IdP at once.
    pub remote_end: Arc<super::remote_end::RemoteEnd>,
    /// Without Redis, keeps revocations across restarts (`store.path`).
    pub file: Option<Arc<crate::store::file::FileStore>>,
    /// Which sessions each person has: an ended one leaves it.
    pub index: Arc<super::session_index::SessionIndex>,
    /// Verifies Shared Signals events (`/oauth2/ssf/events`).
    pub ssf: Arc<crate::oidc::set::SetVerifier>,
}

/// Logout tokens are remembered at least this long against replays.
const LOGOUT_TOKEN_MEMORY: Duration = Duration::from_secs(3600);
const LOGOUT_TOKENS: &str = "logout-token:";

impl Logout {
    pub async fn logout(&self, req: &Request<'_>, now: i64) -> Reply {
        if !self.same_origin(req) {
            // A link from elsewhere must not sign people out; ask them instead, saying who
            // is signed in, and let them stay.
            let session = self.sessions.load_live(req.headers, now).await.ok();
            let who = session.as_deref().map(|s| self.signed_in(s));
            let page = pages::confirm_logout(self.links.logout(), who.as_ref(), "/");
            return Reply::page(200, page);
        }
        let cleared = self.sessions.clear(req.headers);
        let Ok(session) = self.sessions.load_live(req.headers, now).await else {
            let page = pages::signed_out(Some(self.links.start()), None, "/");
            return Reply::page(200, page).with_cookies(cleared);
        };
        self.revoke(
            Revocation::Session {
                id: session.id.clone(),
            },
            revoked_by(audit::By::User).session(&session),
            now,
        )
        .await;
        self.sessions.forget(&session).await;
        self.remote_end.forget(&session.id).await;
        let ended = [session.id.clone()];
        (self.index)
            .forget(
                &session.identity_provider,
                &session.identity.subject,
                &ended,
            )
            .await;
        self.backend.logout(&session, req.client_ip).await;
        // FEDERATED revokes the refresh token itself, before the IdP's logout.
        let org = self.config.organizations.get(&session.organization);
        if org.is_none_or(|o| o.logout_policy != LogoutPolicy::Federated) {
            self.idp_revocation.revoke(&session);
        }
        self.metrics
            .sessions
            .session_ended(crate::metrics::Ended::Logout);
        let org = self.config.organizations.get(&session.organization);
        let policy = org.map_or(LogoutPolicy::Local, |o| o.logout_policy);
        self.metrics.sessions.count_logout(policy.as_str());
        tracing::info!(
            session = session.id.as_str(),
            organization = session.organization.as_str(),
            policy = policy.as_str(),
            "logout"
        );
        let mut event = (req.audit(audit::Kind::SignOut).session(&session))
            .reason("logout")
            .by(audit::By::User);
        event.policy = Some(policy.as_str());
        event.record();
        let reply = match policy {
            LogoutPolicy::Local => self.local_logout_reply(org, &session),
            LogoutPolicy::External | LogoutPolicy::Federated => {
                self.idp_logout_reply(&session, org, policy).await
            }
        };
        reply.with_cookies(cleared)
    }

    /// `LOCAL`: the shop's session ends, the IdP's lives on, and the page says so (signing
    /// in again may not ask for a password).
    fn local_logout_reply(&self, org: Option<&Organization>, session: &Session) -> Reply {
        let idp = (self
            .config
            .identity_providers
            .get(&session.identity_provider))
        .filter(|idp| idp.oidc().is_some())
        .map(|idp| idp.name.as_str());
        match org.and_then(|o| o.post_logout_url.as_deref()) {
            Some(url) => Reply::redirect(url),
            None => Reply::page(200, pages::signed_out(Some(self.links.start()), idp, "/")),
        }
    }

    /// Who a session speaks for, as the sign-out page names them.
    pub(super) fn signed_in(&self, session: &Session) -> pages::SignedIn {
        let identity = &session.identity;
        let name = (identity.name.clone())
            .or_else(|| identity.preferred_username.clone())
            .unwrap_or_else(|| identity.subject.clone());
        let organization = (self.config.organizations.get(&session.organization))
            .map_or_else(|| session.organization.clone(), |o| o.external_name.clone());
        pages::SignedIn {
            name,
            email: identity.email.clone(),
            organization,
        }
    }

    /// EXTERNAL: RP-initiated logout at the IdP. FEDERATED: also revoke the refresh token
    /// and pass the IdP's parameters that sign the user out of upstream providers too.
    async fn idp_logout_reply(
        &self,
        session: &Session,
        org: Option<&Organization>,
        policy: LogoutPolicy,
    ) -> Reply {
        let Some(provider) = self.registry.get(&session.identity_provider) else {
            return self.local_logout_reply(org, session);
        };
        let Some(discovered) = provider.discovered() else {
            tracing::warn!(
                idp = provider.key.as_str(),
                "IdP unavailable: signed out here only"
            );
            return self.local_logout_reply(org, session);
        };
        let federated = policy == LogoutPolicy::Federated;
        if federated {
            if let Some(token) = &session.tokens.refresh_token {
                if let Err(error) =
                    revoke_refresh_token(&self.registry, provider, &discovered, token).await
                {
                    tracing::warn!(idp = provider.key.as_str(), %error, "refresh token revocation failed");
                }
            }
        }
        let empty = Default::default();
        let extra = if federated {
            &provider.config.logout_params
        } else {
            &empty
        };
        let return_to = self.post_logout_redirect_uri(org);
        let state = uuid::Uuid::new_v4().simple().to_string();
        match end_session_url(
            &discovered,
            session.tokens.id_token.as_deref(),
            &return_to,
            &state,
            extra,
        ) {
            Some(url) => Reply::redirect(url.as_str()),
            None => {
                tracing::warn!(
                    idp = provider.key.as_str(),
                    "IdP has no end_session_endpoint: signed out here only"
                );
                self.local_logout_reply(org, session)
            }
        }
    }

    /// Where the IdP sends the browser after its logout; must be registered at the IdP.
    fn post_logout_redirect_uri(&self, org: Option<&Organization>) -> String {
        let target = org
            .and_then(|o| o.post_logout_url.as_deref())
            .unwrap_or("/");
        match &self.config.server.public_url {
            Some(base) if target.starts_with('/') => base
                .join(target)
                .map_or_else(|_| base.to_string(), |u| u.to_string()),
            _ => target.to_owned(),
        }
    }

    pub(super) fn same_origin(&self, req: &Request<'_>) -> bool {
        let own = super::site::OwnSite {
            public_url: self.config.server.public_url.as_ref(),
            host: req.host,
        };
        own.sent_logout(req.headers, *req.method == Method::POST)
    }

    /// OpenID Connect Front-Channel Logout 1.0: the IdP's logout page frames
    /// `/oauth2/frontchannel-logout?iss=…&sid=…` in the browser. The sessions of that IdP
    /// session end here and at every replica (as a back-channel logout by `sid` would); the
    /// answer is a page only the IdP's origin may frame. Without `sid` nothing is ended:
    /// the frame carries no cookie a `SameSite` session would send, so only `sid` says
    /// whose session it is.
    pub async fn frontchannel_logout(&self, req: &Request<'_>, now: i64) -> Reply {
        let params = Params::parse(req.query);
        let (Some(iss), Some(sid)) = (params.get("iss"), params.get("sid")) else {
            self.metrics.sessions.count_frontchannel("rejected");
            return frontchannel_page(400, None);
        };
        let idps: Vec<String> = (self.registry.all_by_issuer(iss))
            .map(|p| p.key.clone())
            .collect();
        if idps.is_empty() || sid.is_empty() || sid.len() > 256 {
            self.metrics.sessions.count_frontchannel("rejected");
            return frontchannel_page(400, None);
        }
        for idp in &idps {
            let revocation = Revocation::IdpSession {
                idp: idp.clone(),
                sid: sid.to_owned(),
                at: now,
            };
            self.revoke(revocation, revoked_by(audit::By::IdpFrontChannel), now)
                .await;
        }
        self.metrics.sessions.count_frontchannel("accepted");
        tracing::info!(idps = ?idps, "front-channel logout");
        frontchannel_page(
            200,
            url::Url::parse(iss)
                .ok()
                .map(|u| u.origin().ascii_serialization()),
        )
    }

    pub async fn backchannel_logout(&self, req: &Request<'_>, now: i64) -> Reply {
        let params = Params::parse_bytes(req.body);
        let Some(token) = params.get("logout_token") else {
            self.metrics
                .sessions
                .count_backchannel("rejected", "missing_token");
            return backchannel_error("missing logout_token");
        };
        let order =
            match verify_logout_token(&self.registry, token, self.config.oidc.max_clock_skew, now)
                .await
            {
                Ok(order) => order,
                Err(error) => {
                    self.metrics
                        .sessions
                        .count_backchannel("rejected", error.reason);
                    tracing::warn!(%error, "back-channel logout token refused");
                    return backchannel_error(&error.to_string());
                }
            };
        let first_idp = order.idps.first().map_or("", String::as_str);
        if !self
            .first_use(&format!("{first_idp}\u{0}{}", order.jti))
            .await
        {
            self.metrics
                .sessions
                .count_backchannel("rejected", "replay");
            return backchannel_error("logout token already used");
        }
        // Entries sharing the issuer and client each have sessions of their own.
        for idp in &order.idps {
            let revocation = match (&order.sid, &order.sub) {
                (Some(sid), _) => Some(Revocation::IdpSession {
                    idp: idp.clone(),
                    sid: sid.clone(),
                    at: now,
                }),
                (None, Some(sub)) => Some(Revocation::Subject {
                    idp: idp.clone(),
                    sub: sub.clone(),
                    at: now,
                }),
                (None, None) => None,
            };
            if let Some(revocation) = revocation {
                self.revoke(revocation, revoked_by(audit::By::IdpBackChannel), now)
                    .await;
            }
            // A logout of the person (no `sid`): each of their sessions known here ends
            // at the shop and the IdP now. (By `sid`, at each session's next request.)
            if let (None, Some(sub)) = (&order.sid, &order.sub) {
                for entry in self.index.of(idp, sub, now).await {
                    self.remote_end.end(&entry.id).await;
                }
            }
        }
        self.metrics.sessions.count_backchannel("accepted", "ok");
        tracing::info!(
            idps = ?order.idps,
            sid = order.sid.as_deref(),
            sub = order.sub.as_deref(),
            "back-channel logout"
        );
        Reply::json(200, &json!({}))
    }

    /// Applies a revocation here and shares it with the other replicas.
    /// `audit` says by whom (and on which request); what was revoked is added to it.
    pub(super) async fn revoke(&self, revocation: Revocation, audit: audit::Event<'_>, now: i64) {
        audit_revocation(&revocation, audit);
        self.revocations.apply(&revocation);
        let expires = now.saturating_add(crate::config::whole_secs(self.config.session.max_age));
        if let Some(file) = &self.file {
            // Kept before the answer goes: a restart must not forget it.
            let json = serde_json::to_string(&revocation).unwrap_or_default();
            let (file, key) = (file.clone(), format!("{REVOCATION_PREFIX}{json}"));
            let kept =
                tokio::task::spawn_blocking(move || file.put(&key, json.as_bytes(), expires)).await;
            if let Ok(Err(error)) | Err(error) = kept.map_err(|e| e.to_string()) {
                tracing::error!(%error, "store.path: a revocation could not be kept");
            }
        }
        if !self.store.is_shared() {
            return;
        }
        if share(&self.store, &revocation, expires).await.is_err() {
            // It holds here already; the follower writes it again until Redis takes it.
            self.revocations.share_later(revocation, expires);
        }
    }

    /// False when this logout token (or security event) was used before, here or at
    /// another replica.
    pub(super) async fn first_use(&self, id: &str) -> bool {
        let here = self.revocations.first_use_of(id);
        if let (Some(file), true) = (&self.file, here) {
            let ttl = self.config.session.max_age.max(LOGOUT_TOKEN_MEMORY);
            let expires = chrono::Utc::now().timestamp() + crate::config::whole_secs(ttl);
            let (file, key) = (file.clone(), format!("{LOGOUT_TOKEN_PREFIX}{id}"));
            let kept = tokio::task::spawn_blocking(move || file.put(&key, b"1", expires)).await;
            if !matches!(kept, Ok(Ok(()))) {
                tracing::error!("store.path: a used logout token could not be kept");
            }
        }
        let key = self.store.key(&format!("{LOGOUT_TOKENS}{}", digest(id)));
        let ttl = self.config.session.max_age.max(LOGOUT_TOKEN_MEMORY);
        match self.store.set_new(&key, b"1", ttl).await {
            Ok(first_anywhere) => here && first_anywhere,
            Err(_) => here,
        }
    }
}

fn backchannel_error(description: &str) -> Reply {
    Reply::json(
        400,
        &json!({"error": "invalid_request", "error_description": description}),
    )
}

/// The front-channel logout's answer: never cached, framed by the IdP's origin only.
fn frontchannel_page(status: u16, idp_origin: Option<String>) -> Reply {
    let ancestors = idp_origin.unwrap_or_else(|| "'none'".to_owned());
    let mut reply = Reply::page(status, pages::signed_out(None, None, "/")).with_header(
        "content-security-policy",
        format!("default-src 'none'; frame-ancestors {ancestors}"),
    );
    // The IdP must be able to frame it: CSP frame-ancestors says who may.
    reply.headers.retain(|(name, _)| *name != "x-frame-options");
    reply
}

/// The start of a revocation's audit line.
pub(super) fn revoked_by(by: audit::By) -> audit::Event<'static> {
    audit::Event::new(audit::Kind::Revocation).by(by)
}

/// The audit line of a revocation: what was revoked, and by whom.
fn audit_revocation<'a>(revocation: &'a Revocation, mut event: audit::Event<'a>) {
    match revocation {
        Revocation::Session { id } => {
            event.reason = Some("session");
            event.session = Some(id);
        }
        Revocation::IdpSession { idp, sid, .. } => {
            event.reason = Some("idp_session");
            event.identity_provider = Some(idp);
            event.idp_session = Some(sid);
        }
        Revocation::Subject { idp, sub, .. } => {
            event.reason = Some("subject");
            event.identity_provider = Some(idp);
            event.subject = Some(sub);
        }
        Revocation::ClaimsChanged { idp, sub, .. } => {
            event.reason = Some("claims_changed");
            event.identity_provider = Some(idp);
            event.subject = Some(sub);
        }
    }
    event.record();
}
