//! The headers the upstream gets, applied in one call: what a client must not claim is
//! removed (identity headers in every spelling, the sidecar's cookies, forwarding claims of
//! untrusted peers), then the forwarding facts, the request id and who is asking are set.
//! Built once from the config; works on any header container, so it is tested without a
//! server (the proxy implements [`HeaderEdits`] for pingora's request header).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{InvalidHeaderValue, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::assertion::AssertionSigner;
use crate::config::{Config, IdentityHeader};
use crate::forwarding::{self, Forwarded};
use crate::principal::Principal;
use crate::session::CookieNames;

/// Reading and editing the headers of the request that goes upstream.
pub trait HeaderEdits {
    fn headers(&self) -> &HeaderMap;
    fn set(&mut self, name: &UpstreamName, value: HeaderValue);
    fn remove(&mut self, name: &HeaderName);
}

/// A header the sidecar sets: its name, and its spelling on the wire (`X-SSO-Email`), made
/// once so that setting it copies neither.
#[derive(Debug, Clone)]
pub struct UpstreamName {
    pub name: HeaderName,
    pub wire: Bytes,
}

impl UpstreamName {
    fn new(spelled: &str) -> Option<Self> {
        Some(UpstreamName {
            name: HeaderName::from_bytes(spelled.to_ascii_lowercase().as_bytes()).ok()?,
            wire: Bytes::copy_from_slice(spelled.as_bytes()),
        })
    }

    fn fixed(spelled: &'static str) -> Self {
        UpstreamName {
            name: HeaderName::from_bytes(spelled.to_ascii_lowercase().as_bytes())
                .expect("a valid header name"),
            wire: Bytes::from_static(spelled.as_bytes()),
        }
    }
}

impl HeaderEdits for HeaderMap {
    fn headers(&self) -> &HeaderMap {
        self
    }

    fn set(&mut self, name: &UpstreamName, value: HeaderValue) {
        self.insert(name.name.clone(), value);
    }

    fn remove(&mut self, name: &HeaderName) {
        HeaderMap::remove(self, name);
    }
}

/// What one request contributes to its upstream headers.
pub struct Outgoing<'a> {
    /// `None` when the peer's address is unknown (a Unix socket): forwarding headers are
    /// then left as they came.
    pub forwarded: Option<&'a Forwarded>,
    pub request_id: &'a HeaderValue,
    /// Who is asking; `None` forwards anonymously.
    pub principal: Option<&'a Principal>,
    /// Replaces the client's `Authorization` where set.
    pub authorization: Option<&'a str>,
    /// The request's clock reading, the one the gate decided with.
    pub now: i64,
}

pub struct UpstreamHeaders {
    /// `headers.prefix` lower-cased, as header names are compared lower-case.
    identity_prefix_lower: String,
    /// The configured identity headers with their full names.
    identity: Vec<(IdentityHeader, UpstreamName)>,
    /// Organization key → `X-SSO-Self-Administration` value.
    self_administration: HashMap<String, &'static str>,
    /// `headers.strip_untrusted`, removed unless the peer is a trusted proxy.
    untrusted: Vec<HeaderName>,
    /// `X-SSO-Assertion` (with the configured prefix) and its signer.
    assertion: Option<(UpstreamName, Arc<AssertionSigner>)>,
    sidecar_cookies: CookieNames,
    names: FixedNames,
}

/// The other headers the sidecar sets.
struct FixedNames {
    forwarded_for: UpstreamName,
    forwarded_proto: UpstreamName,
    forwarded_host: UpstreamName,
    request_id: UpstreamName,
    authorization: UpstreamName,
    cookie: UpstreamName,
}

const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

impl UpstreamHeaders {
    pub fn new(config: &Config, assertion: Option<Arc<AssertionSigner>>) -> Self {
        let prefixed =
            |suffix: &str| UpstreamName::new(&format!("{}{suffix}", config.headers.prefix));
        UpstreamHeaders {
            identity_prefix_lower: config.headers.prefix.to_ascii_lowercase(),
            identity: config
                .headers
                .claims
                .iter()
                .filter_map(|h| Some((*h, prefixed(h.suffix())?)))
                .collect(),
            self_administration: config
                .organizations
                .iter()
                .map(|(k, o)| (k.clone(), o.self_administration.header_value()))
                .collect(),
            untrusted: config
                .headers
                .strip_untrusted
                .iter()
                .filter_map(|name| {
                    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()
                })
                .collect(),
            assertion: assertion.and_then(|signer| Some((prefixed("Assertion")?, signer))),
            sidecar_cookies: CookieNames::new(config),
            names: FixedNames {
                forwarded_for: UpstreamName::fixed("X-Forwarded-For"),
                forwarded_proto: UpstreamName::fixed("X-Forwarded-Proto"),
                forwarded_host: UpstreamName::fixed("X-Forwarded-Host"),
                request_id: UpstreamName::fixed("X-Request-Id"),
                authorization: UpstreamName::fixed("Authorization"),
                cookie: UpstreamName::fixed("Cookie"),
            },
        }
    }

    /// The signer of `X-SSO-Assertion`, whose keys `/oauth2/jwks` publishes.
    pub fn assertion_signer(&self) -> Option<&Arc<AssertionSigner>> {
        self.assertion.as_ref().map(|(_, signer)| signer)
    }

    pub fn apply(
        &self,
        req: &mut impl HeaderEdits,
        out: &Outgoing<'_>,
    ) -> Result<(), InvalidHeaderValue> {
        let names = &self.names;
        self.strip_client_claims(req, out.forwarded);
        if let Some(forwarded) = out.forwarded {
            req.set(&names.forwarded_for, forwarded.for_chain.clone());
            req.set(&names.forwarded_proto, forwarded.proto.clone());
            match &forwarded.host {
                Some(host) => req.set(&names.forwarded_host, host.clone()),
                None => req.remove(&names.forwarded_host.name),
            }
        }
        req.set(&names.request_id, out.request_id.clone());
        if let Some(principal) = out.principal {
            self.identify(req, principal, out.now);
        }
        if let Some(authorization) = out.authorization {
            req.set(&names.authorization, HeaderValue::try_from(authorization)?);
        }
        Ok(())
    }

    /// Removes what only the sidecar (or a trusted proxy) may say.
    fn strip_client_claims(&self, req: &mut impl HeaderEdits, forwarded: Option<&Forwarded>) {
        for name in forwarding::identity_headers(req.headers(), &self.identity_prefix_lower) {
            req.remove(&name);
        }
        match forwarding::cookies_without_sidecar(req.headers(), &self.sidecar_cookies) {
            None => {}
            Some(kept) => match HeaderValue::try_from(kept) {
                Ok(kept) if !kept.is_empty() => req.set(&self.names.cookie, kept),
                _ => req.remove(&COOKIE),
            },
        }
        if forwarded.is_some_and(|f| !f.peer_trusted) {
            // RFC 7239 carries the same claims; only a trusted proxy may make them.
            req.remove(&FORWARDED);
            for name in &self.untrusted {
                req.remove(name);
            }
        }
    }

    /// The identity headers (and assertion) the upstream would get for `principal`, for a
    /// forward-auth answer that hands them to the ingress.
    pub fn identity_headers(&self, principal: &Principal, now: i64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        self.identify(&mut headers, principal, now);
        headers
    }

    /// The principal's identity headers and, where configured, its signed assertion.
    fn identify(&self, req: &mut impl HeaderEdits, principal: &Principal, now: i64) {
        let policy = principal
            .organization()
            .and_then(|org| self.self_administration.get(org))
            .copied()
            .unwrap_or("NONE");
        for (header, name) in &self.identity {
            if let Some(value) = forwarding::identity_value(*header, principal, policy) {
                req.set(name, value);
            }
        }
        if let Some((name, signer)) = &self.assertion {
            let signed = signer.assert(principal, now);
            if let Some(value) = signed.and_then(|s| HeaderValue::try_from(s).ok()) {
                req.set(name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Identity;

    fn config() -> Config {
        let text = r#"
[server]
upstream = "http://127.0.0.1:9000"
public_url = "https://shop.example"
trusted_proxies = ["10.0.0.0/8"]
[session]
keys = ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
[headers]
assertion = false
[organizations.Ops]
external_name = "Ops"
self_administration_policy = "UPDATE"
local_login_url = "/login"
[[routes]]
path_prefix = "/login"
auth = "public"
"#;
        crate::config::from_str(text, std::path::Path::new("t.toml")).unwrap()
    }

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn forwarded(headers: &HeaderMap, peer: &str, trusted: &[&str]) -> Forwarded {
        let trusted: Vec<_> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        let host = headers.get(http::header::HOST).cloned();
        forwarding::forwarded(headers, peer.parse().unwrap(), "https", &trusted, host)
    }

    #[test]
    fn an_untrusted_client_claims_nothing_and_a_user_is_named() {
        let upstream = UpstreamHeaders::new(&config(), None);
        let mut req = request(&[
            ("x-sso-subject", "admin"),
            ("x_sso_email", "boss@shop"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("x-forwarded-for", "1.2.3.4"),
            ("cookie", "_sso_session=abc; cart=7"),
            ("authorization", "Bearer client"),
        ]);
        let fwd = forwarded(&req, "203.0.113.5", &["10.0.0.0/8"]);
        let principal = Principal::from_bearer(crate::principal::BearerCaller {
            identity: Identity {
                subject: "u1".into(),
                ..Default::default()
            },
            organization: Some("Ops".into()),
            ..Default::default()
        });
        let out = Outgoing {
            forwarded: Some(&fwd),
            request_id: &HeaderValue::from_static("r1"),
            principal: Some(&principal),
            authorization: Some("Bearer shop-token"),
            now: 0,
        };
        upstream.apply(&mut req, &out).unwrap();
        assert_eq!(req["x-sso-subject"], "u1");
        assert_eq!(req["x-sso-self-administration"], "UPDATE");
        assert!(!req.contains_key("x_sso_email") && !req.contains_key("x-sso-email"));
        assert!(!req.contains_key("forwarded") && !req.contains_key("x-real-ip"));
        assert_eq!(req["x-forwarded-for"], "203.0.113.5");
        assert_eq!(req["x-forwarded-proto"], "https");
        assert_eq!(req["cookie"], "cart=7");
        assert_eq!(req["authorization"], "Bearer shop-token");
        assert_eq!(req["x-request-id"], "r1");
    }

    #[test]
    fn a_trusted_proxy_keeps_its_claims_and_anonymous_requests_keep_authorization() {
        let upstream = UpstreamHeaders::new(&config(), None);
        let mut req = request(&[
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "1.2.3.4"),
            ("cookie", "_sso_session=abc"),
            ("authorization", "Bearer client"),
        ]);
        let fwd = forwarded(&req, "10.1.1.1", &["10.0.0.0/8"]);
        let out = Outgoing {
            forwarded: Some(&fwd),
            request_id: &HeaderValue::from_static("r2"),
            principal: None,
            authorization: None,
            now: 0,
        };
        upstream.apply(&mut req, &out).unwrap();
        assert_eq!(req["forwarded"], "for=1.2.3.4");
        assert_eq!(req["x-forwarded-for"], "1.2.3.4, 10.1.1.1");
        assert!(!req.contains_key("cookie"));
        assert!(!req.contains_key("x-sso-subject"));
        assert_eq!(req["authorization"], "Bearer client");
    }
}
