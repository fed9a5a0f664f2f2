//! `/oauth2/ssf/events`: Shared Signals push delivery (RFC 8935). A verified event that
//! ends a person's sessions (CAEP session-revoked, credential-change; RISC
//! account-disabled, account-purged, sessions-revoked) ends them everywhere, as the admin
//! API does: every session of the subject at the IdPs it concerns, and their bearer tokens
//! issued until now. A CAEP token-claims-change has every session of the subject renew its
//! tokens and be checked again with the new claims (see the gate), and refuses bearer
//! tokens issued before it. `202` when taken, `400` with the RFC 8935 error code otherwise.

use super::logout::{revoked_by, Logout};
use super::revocations::Revocation;
use super::{Request, SubjectFilter};
use crate::oidc::set::{Action, Subject};
use crate::reply::Reply;

impl Logout {
    pub async fn security_event(&self, req: &Request<'_>, now: i64) -> Reply {
        if !self.ssf.is_enabled() {
            return refused("access_denied", "no transmitter is configured");
        }
        let content_type = (req.headers.get(http::header::CONTENT_TYPE))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/secevent+jwt") {
            return refused(
                "invalid_request",
                "the body must be application/secevent+jwt",
            );
        }
        let Ok(token) = std::str::from_utf8(req.body).map(str::trim) else {
            return refused("invalid_request", "not a JWT");
        };
        let event = match self.ssf.verify(token, now).await {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(
                    code = error.code,
                    description = error.description.as_str(),
                    "security event refused"
                );
                return refused(error.code, &error.description);
            }
        };
        // Replays are refused, here and at every replica.
        if !self
            .first_use(&format!("set:{}:{}", event.issuer, event.jti))
            .await
        {
            return refused("invalid_request", "this event was delivered before (jti)");
        }
        for (kind, action, subject) in &event.events {
            if *action == Action::Ignore {
                tracing::info!(
                    event = kind.as_str(),
                    "security event of a kind not acted on"
                );
                continue;
            }
            let (issuer, sub) = match subject {
                Subject::IssSub { iss, sub } => (iss.as_str(), sub.as_str()),
                Subject::Opaque { id } => (event.issuer.as_str(), id.as_str()),
            };
            let idps: Vec<String> = (self.config.identity_providers.iter())
                .filter(|(_, idp)| idp.oidc().is_some_and(|o| o.issuer == issuer))
                .map(|(key, _)| key.clone())
                .collect();
            for idp in &idps {
                if *action == Action::RecheckClaims {
                    let revocation = Revocation::ClaimsChanged {
                        idp: idp.clone(),
                        sub: sub.to_owned(),
                        at: now,
                    };
                    let by = revoked_by(crate::audit::By::SecurityEvent);
                    self.revoke(revocation, by, now).await;
                    tracing::info!(
                        event = kind.as_str(),
                        idp = idp.as_str(),
                        "security event: sessions check their claims again"
                    );
                    continue;
                }
                let who = SubjectFilter {
                    subject: sub,
                    organization: None,
                    identity_provider: Some(idp),
                };
                let by = crate::audit::By::SecurityEvent;
                let ended = self.end_sessions_of(&who, by, now).await;
                tracing::info!(
                    event = kind.as_str(),
                    idp = idp.as_str(),
                    ended,
                    "security event: sessions ended"
                );
            }
        }
        Reply {
            status: 202,
            headers: vec![("cache-control", "no-store".to_owned())],
            body: bytes::Bytes::new(),
            page: None,
        }
    }
}

/// RFC 8935 §2.4: `{"err": code, "description": text}`.
fn refused(code: &str, description: &str) -> Reply {
    Reply::json(
        400,
        &serde_json::json!({"err": code, "description": description}),
    )
}
