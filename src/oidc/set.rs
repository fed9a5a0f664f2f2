//! Security Event Tokens (RFC 8417) pushed by Shared Signals transmitters (OpenID SSF 1.0,
//! push delivery RFC 8935): verified against the transmitter's published keys, `iss`, `aud`
//! and `iat`, and read into what happened to whom (CAEP and RISC events).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::config::SsfTransmitter;
use crate::jwt::jwt_part;

/// An event older than this is refused: its `jti` may have left the replay memory.
pub const MAX_AGE_SECS: i64 = 3600;
/// At most one forced key refetch per transmitter in this time.
const REFETCH_EVERY_SECS: i64 = 10;

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";

/// What a verified event asks of the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The subject's sessions end (session revoked, credential changed, account disabled
    /// or purged, sessions revoked).
    EndSessions,
    /// The subject's claims changed (CAEP token-claims-change): each session renews its
    /// tokens at its next request and membership and the route's rules are checked again
    /// with the new claims; bearer tokens issued before are refused.
    RecheckClaims,
    /// An event type this receiver does not act on.
    Ignore,
}

/// Whom an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `iss_sub` (RFC 9493): `sub` at the IdP with that issuer.
    IssSub { iss: String, sub: String },
    /// `opaque`: an id the transmitter and receiver share; taken as a `sub` at the IdPs
    /// whose issuer is the transmitter's.
    Opaque { id: String },
}

#[derive(Debug, Clone)]
pub struct SecurityEvent {
    pub jti: String,
    /// The transmitter's issuer.
    pub issuer: String,
    pub events: Vec<(String, Action, Subject)>,
}

/// A refusal with its RFC 8935 §2.4 error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetError {
    pub code: &'static str,
    pub description: String,
}

fn refuse(code: &'static str, description: impl Into<String>) -> SetError {
    SetError {
        code,
        description: description.into(),
    }
}

pub struct SetVerifier {
    transmitters: Vec<SsfTransmitter>,
    http: reqwest::Client,
    keys: Mutex<HashMap<String, (Arc<JwkSet>, i64)>>,
    skew: i64,
}

impl SetVerifier {
    pub fn new(transmitters: Vec<SsfTransmitter>, http: reqwest::Client, skew: Duration) -> Self {
        SetVerifier {
            transmitters,
            http,
            keys: Mutex::default(),
            skew: crate::config::whole_secs(skew),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.transmitters.is_empty()
    }

    pub async fn verify(&self, token: &str, now: i64) -> Result<SecurityEvent, SetError> {
        let header = jwt_part(token, 0).ok_or_else(|| refuse("invalid_request", "not a JWT"))?;
        let unverified =
            jwt_part(token, 1).ok_or_else(|| refuse("invalid_request", "not a JWT"))?;
        // A SET says what it is: an ID or logout token posted here is not an event.
        if header.get("typ").and_then(Value::as_str) != Some("secevent+jwt") {
            return Err(refuse("invalid_request", "typ must be secevent+jwt"));
        }
        let iss = unverified.get("iss").and_then(Value::as_str).unwrap_or("");
        let transmitter = (self.transmitters.iter())
            .find(|t| t.issuer == iss)
            .ok_or_else(|| refuse("invalid_issuer", "not a configured transmitter"))?;
        let algorithm = match header.get("alg").and_then(Value::as_str) {
            Some("RS256") => Algorithm::RS256,
            Some("PS256") => Algorithm::PS256,
            Some("ES256") => Algorithm::ES256,
            _ => return Err(refuse("invalid_key", "alg must be RS256, PS256 or ES256")),
        };
        let kid = header.get("kid").and_then(Value::as_str);
        let key = self.key(transmitter, kid, now).await?;
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[transmitter.issuer.as_str()]);
        validation.set_audience(&[transmitter.audience.as_str()]);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                        refuse("invalid_audience", "aud does not name this receiver")
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                        refuse("invalid_issuer", "iss")
                    }
                    _ => refuse("invalid_key", format!("the signature does not verify: {e}")),
                })?
                .claims;
        if claims.get("aud").is_none() {
            return Err(refuse("invalid_audience", "no aud"));
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or_else(|| refuse("invalid_request", "no iat"))?;
        if iat > now + self.skew || iat < now - MAX_AGE_SECS {
            return Err(refuse("invalid_request", "iat is in the future or too old"));
        }
        let jti = (claims.get("jti").and_then(Value::as_str))
            .filter(|j| !j.is_empty())
            .ok_or_else(|| refuse("invalid_request", "no jti"))?
            .to_owned();
        let events = claims
            .get("events")
            .and_then(Value::as_object)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| refuse("invalid_request", "no events"))?;
        let mut read = Vec::new();
        for (kind, event) in events {
            // SSF 1.0 names the subject once (`sub_id`); CAEP's earlier drafts per event.
            let subject = (claims.get("sub_id"))
                .or_else(|| event.get("subject"))
                .ok_or_else(|| refuse("invalid_request", "no subject (sub_id)"))?;
            read.push((kind.clone(), action_of(kind), subject_of(subject)?));
        }
        Ok(SecurityEvent {
            jti,
            issuer: transmitter.issuer.clone(),
            events: read,
        })
    }

    /// The transmitter's key `kid` (or its only key), fetched again once when unknown.
    async fn key(
        &self,
        transmitter: &SsfTransmitter,
        kid: Option<&str>,
        now: i64,
    ) -> Result<DecodingKey, SetError> {
        let uri = transmitter.jwks_uri.as_str();
        let cached = self.keys.lock().ok().and_then(|k| k.get(uri).cloned());
        let pick = |set: &JwkSet| {
            let jwk = match kid {
                Some(kid) => set.find(kid),
                None if set.keys.len() == 1 => set.keys.first(),
                None => None,
            };
            jwk.and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
        };
        if let Some(key) = cached.as_ref().and_then(|(set, _)| pick(set)) {
            return Ok(key);
        }
        let recently = cached
            .as_ref()
            .is_some_and(|(_, at)| now - at < REFETCH_EVERY_SECS);
        if recently {
            return Err(refuse("invalid_key", "unknown key"));
        }
        let set: JwkSet = async {
            let response = self.http.get(uri).send().await.ok()?;
            response.error_for_status().ok()?.json().await.ok()
        }
        .await
        .ok_or_else(|| refuse("invalid_key", "the transmitter's keys cannot be fetched"))?;
        let set = Arc::new(set);
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(uri.to_owned(), (set.clone(), now));
        }
        pick(&set).ok_or_else(|| refuse("invalid_key", "unknown key"))
    }
}

fn action_of(kind: &str) -> Action {
    let caep = kind.strip_prefix(CAEP);
    let risc = kind.strip_prefix(RISC);
    match (caep, risc) {
        (Some("session-revoked" | "credential-change"), _) => Action::EndSessions,
        (Some("token-claims-change"), _) => Action::RecheckClaims,
        (_, Some("account-disabled" | "account-purged" | "sessions-revoked")) => {
            Action::EndSessions
        }
        _ => Action::Ignore,
    }
}

fn subject_of(subject: &Value) -> Result<Subject, SetError> {
    let text = |name: &str| {
        subject
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match text("format") {
        Some("iss_sub") => match (text("iss"), text("sub")) {
            (Some(iss), Some(sub)) => Ok(Subject::IssSub {
                iss: iss.to_owned(),
                sub: sub.to_owned(),
            }),
            _ => Err(refuse("invalid_request", "iss_sub needs iss and sub")),
        },
        Some("opaque") => match text("id") {
            Some(id) => Ok(Subject::Opaque { id: id.to_owned() }),
            None => Err(refuse("invalid_request", "opaque needs id")),
        },
        Some(other) => Err(refuse(
            "invalid_request",
            format!("subject format {other} is not supported (iss_sub, opaque)"),
        )),
        None => Err(refuse("invalid_request", "the subject has no format")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caep_and_risc_events_that_end_sessions() {
        assert_eq!(
            action_of(&format!("{CAEP}session-revoked")),
            Action::EndSessions
        );
        assert_eq!(
            action_of(&format!("{RISC}account-disabled")),
            Action::EndSessions
        );
        assert_eq!(
            action_of(&format!("{CAEP}assurance-level-change")),
            Action::Ignore
        );
        assert_eq!(
            action_of("https://evil.example/session-revoked"),
            Action::Ignore
        );
        assert!(subject_of(&serde_json::json!({"format": "email", "email": "a@b"})).is_err());
        assert_eq!(
            subject_of(&serde_json::json!({"format": "iss_sub", "iss": "i", "sub": "s"})).unwrap(),
            Subject::IssSub {
                iss: "i".into(),
                sub: "s".into()
            }
        );
    }
}
