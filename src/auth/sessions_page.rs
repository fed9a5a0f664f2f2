//! `/oauth2/sessions`: the signed-in person's sessions (HTML, or JSON for programs), and
//! ending one of them, all others, or all (`POST` with `end` = a session id, `others` or
//! `all`, from this site only, as logout). Ending is a revocation by id: every replica
//! refuses that cookie from the next request on.

use http::Method;

use super::logout::{revoked_by, Logout};
use super::revocations::Revocation;
use super::session_index::SessionEntry;
use super::{Params, Request};
use crate::audit;
use crate::pages;
use crate::reply::Reply;
use crate::session::Session;

impl Logout {
    pub async fn sessions(&self, req: &Request<'_>, now: i64) -> Reply {
        let wants_json = wants_json(req);
        let Ok(current) = self.sessions.load_live(req.headers, now).await else {
            return match wants_json {
                true => Reply::unauthorized(None),
                false => Reply::redirect(&self.links.sign_in(req.path_and_query, None)),
            };
        };
        let listed = self.live_sessions_of(&current, now).await;
        if *req.method == Method::POST {
            return self.end_sessions(req, &current, &listed, now).await;
        }
        if wants_json {
            return Reply::json(
                200,
                &serde_json::json!({"current": current.id, "sessions": listed}),
            );
        }
        let who = self.signed_in(&current);
        let rows: Vec<pages::SessionRow> = (listed.iter())
            .map(|entry| pages::SessionRow {
                id: entry.id.clone(),
                current: entry.id == current.id,
                browser: entry.browser.clone(),
                network: entry.network.clone(),
                organization: (self.config.organizations.get(&entry.organization))
                    .map_or_else(|| entry.organization.clone(), |o| o.external_name.clone()),
                identity_provider: (self.config.identity_providers.get(&entry.identity_provider))
                    .map_or_else(|| entry.identity_provider.clone(), |i| i.name.clone()),
                created: entry.created,
                last_used: entry.last_used,
                expires: entry.expires,
            })
            .collect();
        Reply::page(200, pages::sessions(&who, &rows, self.links.sessions()))
    }

    /// This person's sessions that are still live (not ended by any revocation).
    async fn live_sessions_of(&self, current: &Session, now: i64) -> Vec<SessionEntry> {
        let idp = &current.identity_provider;
        let subject = &current.identity.subject;
        let mut listed: Vec<SessionEntry> = (self.index.of(idp, subject, now).await)
            .into_iter()
            .filter(|entry| !self.revocations.is_revoked(&described(entry)))
            .collect();
        // A session signed in before the index existed (or while it could not be written)
        // is still this browser's own.
        if !listed.iter().any(|e| e.id == current.id) {
            listed.insert(0, entry_of(current));
        }
        listed
    }

    async fn end_sessions(
        &self,
        req: &Request<'_>,
        current: &Session,
        listed: &[SessionEntry],
        now: i64,
    ) -> Reply {
        // The same defence as logout: a form from another site ends nothing.
        if !self.same_origin(req) {
            return Reply::page(
                403,
                pages::not_from_here(self.links.sessions(), req.request_id),
            );
        }
        let params = Params::parse(std::str::from_utf8(req.body).ok());
        let ending: Vec<String> = match params.get("end") {
            Some("all") => listed.iter().map(|e| e.id.clone()).collect(),
            Some("others") => (listed.iter())
                .filter(|e| e.id != current.id)
                .map(|e| e.id.clone())
                .collect(),
            // Only one of this person's own: an id from elsewhere ends nothing.
            Some(id) if listed.iter().any(|e| e.id == id) => vec![id.to_owned()],
            _ => return Reply::see_other(self.links.sessions()),
        };
        for id in &ending {
            let revocation = Revocation::Session { id: id.clone() };
            let by = (req.audit(audit::Kind::Revocation))
                .by(audit::By::SessionsPage)
                .session(current);
            self.revoke(revocation, by, now).await;
            match *id == current.id {
                // This browser's own: ended below, with the tokens at hand.
                true => self.remote_end.forget(id).await,
                false => {
                    self.remote_end.end(id).await;
                }
            }
        }
        let (idp, subject) = (&current.identity_provider, &current.identity.subject);
        self.index.forget(idp, subject, &ending).await;
        self.metrics
            .sessions
            .session_ended(crate::metrics::Ended::Logout);
        tracing::info!(
            session = current.id.as_str(),
            ended = ending.len(),
            "sessions ended from the sessions page"
        );
        if !ending.contains(&current.id) {
            return Reply::see_other(self.links.sessions());
        }
        // This browser too: its cookie goes, and its tokens are revoked at the IdP.
        self.sessions.forget(current).await;
        self.idp_revocation.revoke(current);
        let cleared = self.sessions.clear(req.headers);
        Reply::page(200, pages::signed_out(Some(self.links.start()), None, "/"))
            .with_cookies(cleared)
    }
}

impl Logout {
    /// The IdPs a filter concerns: the one it names, else its organization's, else all.
    fn idps_of(&self, who: &super::SubjectFilter<'_>) -> Vec<String> {
        match (who.identity_provider, who.organization) {
            (Some(idp), _) => vec![idp.to_owned()],
            (None, Some(org)) => (self.config.organizations.get(org))
                .map(|o| o.identity_providers.clone())
                .unwrap_or_default(),
            (None, None) => self.config.identity_providers.keys().cloned().collect(),
        }
    }

    pub async fn sessions_of(&self, who: &super::SubjectFilter<'_>, now: i64) -> Vec<SessionEntry> {
        let mut found = Vec::new();
        for idp in self.idps_of(who) {
            found.extend(
                (self.index.of(&idp, who.subject, now).await)
                    .into_iter()
                    .filter(|e| who.organization.is_none_or(|org| e.organization == org))
                    .filter(|e| !self.revocations.is_revoked(&described(e))),
            );
        }
        found
    }

    /// Ends every session of a person (the admin API, a security event): each by its id,
    /// and the subject's tokens issued until now.
    pub async fn end_sessions_of(
        &self,
        who: &super::SubjectFilter<'_>,
        by: audit::By,
        now: i64,
    ) -> usize {
        let revoked = || {
            let mut event = revoked_by(by);
            event.subject = Some(who.subject);
            event
        };
        let found = self.sessions_of(who, now).await;
        for entry in &found {
            let revocation = Revocation::Session {
                id: entry.id.clone(),
            };
            self.revoke(revocation, revoked(), now).await;
            self.remote_end.end(&entry.id).await;
            let ended = [entry.id.clone()];
            (self.index)
                .forget(&entry.identity_provider, &entry.subject, &ended)
                .await;
        }
        // Bearer tokens (and sessions the index never saw) of the subject, issued until
        // now, at every IdP concerned.
        for idp in self.idps_of(who) {
            let revocation = Revocation::Subject {
                idp,
                sub: who.subject.to_owned(),
                at: now,
            };
            self.revoke(revocation, revoked(), now).await;
        }
        tracing::info!(
            ended = found.len(),
            organization = who.organization,
            identity_provider = who.identity_provider,
            by = ?by,
            "a person's sessions ended"
        );
        let mut summary = revoked().reason("all_sessions");
        summary.ended = Some(found.len());
        summary.organization = who.organization;
        summary.identity_provider = who.identity_provider;
        summary.record();
        found.len()
    }
}

/// JSON for programs: `Accept` names JSON and not HTML, or `?format=json`.
fn wants_json(req: &Request<'_>) -> bool {
    if Params::parse(req.query).get("format") == Some("json") {
        return true;
    }
    let accept = (req.headers.get(http::header::ACCEPT))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

/// An entry as a session, as far as revocations look at one.
fn described(entry: &SessionEntry) -> Session {
    let mut session = Session {
        id: entry.id.clone(),
        identity_provider: entry.identity_provider.clone(),
        issued_at: entry.created,
        ..Default::default()
    };
    session.identity.subject = entry.subject.clone();
    session
}

fn entry_of(session: &Session) -> SessionEntry {
    SessionEntry {
        id: session.id.clone(),
        subject: session.identity.subject.clone(),
        organization: session.organization.clone(),
        identity_provider: session.identity_provider.clone(),
        created: session.issued_at,
        last_used: session.last_seen,
        expires: 0,
        browser: String::new(),
        network: String::new(),
    }
}
