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

    /// Sets a session's identity headers, none of which the headers have (every spelling
    /// of the identity prefix was removed first). A head that can take them in wire form
    /// takes the lines, built once per session, instead of one map insert each.
    fn set_identity(&mut self, identity: &IdentityLines<'_>) {
        for (index, value) in identity.values {
            self.set(&identity.names[*index].1, value.clone());
        }
    }

    /// Sets headers none of which the headers have; a head that can take lines in wire
    /// form gets them as one block instead of one map insert each.
    fn set_new(&mut self, headers: &[(&UpstreamName, &HeaderValue)]) {
        for (name, value) in headers {
            self.set(name, (*value).clone());
        }
    }

    /// Removes every header whose name `matches`, looking through the names the headers
    /// have once: a removal is a hashed lookup each, and most requests carry none of them.
    fn remove_where(&mut self, matches: impl Fn(&HeaderName) -> bool)
    where
        Self: Sized,
    {
        let present: Vec<HeaderName> = (self.headers().keys())
            .filter(|name| matches(name))
            .cloned()
            .collect();
        for name in &present {
            self.remove(name);
        }
    }
}

/// `headers` as `Name: value\r\n` lines, the names spelled as given. Header values hold
/// no CR or LF, so every line is one header.
pub fn wire_lines<'a>(
    headers: impl IntoIterator<Item = (&'a UpstreamName, &'a HeaderValue)>,
) -> Bytes {
    let mut lines = Vec::with_capacity(192);
    for (name, value) in headers {
        lines.extend_from_slice(&name.wire);
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(value.as_bytes());
        lines.extend_from_slice(b"\r\n");
    }
    Bytes::from(lines)
}

/// A session's identity headers: the values by index into `names`, and the same as
/// `Name: value\r\n` lines.
pub struct IdentityLines<'a> {
    pub names: &'a [(IdentityHeader, UpstreamName)],
    pub values: &'a [(usize, HeaderValue)],
    pub wire: &'a Bytes,
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
    /// The identity header values of recently seen sessions, built once per session and
    /// token set instead of on every request.
    recent: moka::sync::Cache<u64, Arc<SessionIdentity>>,
}

/// One session's identity header values, by index into `identity`.
struct SessionIdentity {
    /// Compared on every hit: a hash that two sessions share never lends one session's
    /// identity to the other.
    session_id: String,
    token_tail: String,
    values: Vec<(usize, HeaderValue)>,
    /// `values` as header lines in wire form.
    wire: Bytes,
}

impl SessionIdentity {
    /// About what it holds in memory, for the cache's byte budget.
    fn weight(&self) -> u32 {
        // Each value is its own allocation; the entry, its `Arc` and the cache's node
        // come on top.
        let values: usize = self.values.iter().map(|(_, v)| v.len() + 64).sum();
        let total = 320 + self.session_id.len() + self.token_tail.len() + values + self.wire.len();
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

/// Bytes of identity values kept (groups and the signed assertion make a session's a few
/// KiB): the sessions in use stay, and a miss only costs building them again. Counted by
/// entry, so 100,000 distinct sessions cannot grow the process by hundreds of MiB.
const RECENT_BYTES: u64 = 2 << 20;

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
            recent: moka::sync::Cache::builder()
                .weigher(|_, kept: &Arc<SessionIdentity>| kept.weight())
                .max_capacity(RECENT_BYTES)
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
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
        // What the client sent under these names is replaced (a trusted proxy's values
        // are in ours already).
        let forwarding = [
            &names.forwarded_for,
            &names.forwarded_proto,
            &names.forwarded_host,
        ];
        req.remove_where(|name| {
            *name == names.request_id.name
                || (out.forwarded.is_some() && forwarding.iter().any(|n| n.name == *name))
        });
        let mut set: [(&UpstreamName, &HeaderValue); 4] = [(&names.request_id, out.request_id); 4];
        let mut count = 1;
        if let Some(forwarded) = out.forwarded {
            set[1] = (&names.forwarded_for, &forwarded.for_chain);
            set[2] = (&names.forwarded_proto, &forwarded.proto);
            count = 3;
            if let Some(host) = &forwarded.host {
                set[3] = (&names.forwarded_host, host);
                count = 4;
            }
        }
        req.set_new(&set[..count]);
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
            req.remove_where(|name| *name == FORWARDED || self.untrusted.contains(name));
        }
    }

    /// The identity headers (and assertion) the upstream would get for `principal`, for a
    /// forward-auth answer that hands them to the ingress.
    pub fn identity_headers(&self, principal: &Principal, now: i64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        self.identify(&mut headers, principal, now);
        headers
    }

    /// A session's identity values: kept from an earlier request with the same tokens, or
    /// built now and kept.
    fn session_identity(
        &self,
        principal: &Principal,
        id: &str,
        token_tail: &str,
    ) -> Arc<SessionIdentity> {
        let key = {
            use std::hash::BuildHasher;
            foldhash::fast::FixedState::with_seed(0x5550_4944).hash_one((id, token_tail))
        };
        if let Some(kept) = self.recent.get(&key) {
            if kept.session_id == id && kept.token_tail == token_tail {
                return kept;
            }
        }
        let values = self.identity_values(principal);
        let built = Arc::new(SessionIdentity {
            session_id: id.to_owned(),
            token_tail: token_tail.to_owned(),
            // The names spelled as configured.
            wire: wire_lines(
                (values.iter()).map(|(index, value)| (&self.identity[*index].1, value)),
            ),
            values,
        });
        self.recent.insert(key, built.clone());
        built
    }

    /// The principal's identity header values, built now.
    fn identity_values(&self, principal: &Principal) -> Vec<(usize, HeaderValue)> {
        let policy = principal
            .organization()
            .and_then(|org| self.self_administration.get(org))
            .copied()
            .unwrap_or("NONE");
        (self.identity.iter().enumerate())
            .filter_map(|(index, (header, _))| {
                forwarding::identity_value(*header, principal, policy).map(|v| (index, v))
            })
            .collect()
    }

    /// The principal's identity headers and, where configured, its signed assertion.
    fn identify(&self, req: &mut impl HeaderEdits, principal: &Principal, now: i64) {
        match principal.session_key() {
            Some((id, token_tail)) => {
                let kept = self.session_identity(principal, id, token_tail);
                req.set_identity(&IdentityLines {
                    names: &self.identity,
                    values: &kept.values,
                    wire: &kept.wire,
                });
            }
            None => {
                for (index, value) in self.identity_values(principal) {
                    req.set(&self.identity[index].1, value);
                }
            }
        }
        if let Some((name, signer)) = &self.assertion {
            if let Some(value) = signer.assert(principal, now) {
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

    #[test]
    fn a_sessions_identity_is_built_once_per_token_set_and_never_lent() {
        use crate::session::{Session, Tokens};
        let headers = UpstreamHeaders::new(&config(), None);
        let session = |id: &str, email: &str, token: &str| {
            Principal::from_session(Arc::new(Session {
                id: id.into(),
                organization: "Ops".into(),
                identity: Identity {
                    subject: email.into(),
                    email: Some(email.into()),
                    external_id: email.into(),
                    ..Default::default()
                },
                tokens: Tokens {
                    access_token: token.into(),
                    ..Default::default()
                },
                ..Default::default()
            }))
        };
        let email = |principal: &Principal| {
            let mut out = HeaderMap::new();
            headers.identify(&mut out, principal, 0);
            out["x-sso-email"].to_str().unwrap().to_owned()
        };
        let ann = session("s1", "ann@ops.example", "token-of-ann-1");
        assert_eq!(email(&ann), "ann@ops.example");
        assert_eq!(email(&ann), "ann@ops.example", "kept");
        // A refresh (new access token) of the same session is built again.
        let refreshed = session("s1", "ann.new@ops.example", "token-of-ann-2");
        assert_eq!(email(&refreshed), "ann.new@ops.example");
        // Another session never gets ann's, whatever its key hashes to.
        let bob = session("s2", "bob@ops.example", "token-of-bob-1");
        assert_eq!(email(&bob), "bob@ops.example");
    }

    /// A head that takes lines in wire form, as pingora's request header does here
    /// (vendor change 9): the map's headers, then the lines.
    #[derive(Default)]
    struct WireHead {
        map: HeaderMap,
        lines: Vec<u8>,
    }

    impl HeaderEdits for WireHead {
        fn headers(&self) -> &HeaderMap {
            &self.map
        }
        fn set(&mut self, name: &UpstreamName, value: HeaderValue) {
            self.map.insert(name.name.clone(), value);
        }
        fn remove(&mut self, name: &HeaderName) {
            self.map.remove(name);
        }
        fn set_new(&mut self, headers: &[(&UpstreamName, &HeaderValue)]) {
            self.lines
                .extend_from_slice(&wire_lines(headers.iter().copied()));
        }
        fn set_identity(&mut self, identity: &IdentityLines<'_>) {
            self.lines.extend_from_slice(identity.wire);
        }
    }

    /// Regression (issue 34's wire lines): a header the client sent under a name the
    /// sidecar sets in wire form must be gone from the map, or the upstream would see
    /// two, the client's first.
    #[test]
    fn in_wire_form_every_header_the_sidecar_sets_goes_out_once() {
        use crate::session::{Session, Tokens};
        let upstream = UpstreamHeaders::new(&config(), None);
        let mut head = WireHead {
            map: request(&[
                ("x-request-id", "client-chosen"),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-proto", "http"),
                ("x_sso_subject", "admin"),
                ("x-sso-email", "boss@shop"),
                ("host", "shop.example"),
            ]),
            ..Default::default()
        };
        let fwd = forwarded(&head.map, "203.0.113.5", &["10.0.0.0/8"]);
        let principal = Principal::from_session(Arc::new(Session {
            id: "s1".into(),
            organization: "Ops".into(),
            identity: Identity {
                subject: "u1".into(),
                email: Some("u1@ops.example".into()),
                ..Default::default()
            },
            tokens: Tokens {
                access_token: "token-1".into(),
                ..Default::default()
            },
            ..Default::default()
        }));
        let out = Outgoing {
            forwarded: Some(&fwd),
            request_id: &HeaderValue::from_static("r1"),
            principal: Some(&principal),
            authorization: None,
            now: 0,
        };
        upstream.apply(&mut head, &out).unwrap();
        let mut sent: Vec<(String, String)> = (head.map.iter())
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        for line in String::from_utf8(head.lines).unwrap().lines() {
            let (name, value) = line.split_once(": ").unwrap();
            sent.push((
                name.to_ascii_lowercase().replace('_', "-"),
                value.to_owned(),
            ));
        }
        let values = |name: &str| -> Vec<&str> {
            (sent.iter())
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(values("x-request-id"), ["r1"]);
        assert_eq!(values("x-forwarded-for"), ["203.0.113.5"]);
        assert_eq!(values("x-forwarded-host"), ["shop.example"]);
        assert_eq!(values("x-forwarded-proto"), ["https"]);
        assert_eq!(values("x-sso-subject"), ["u1"]);
        assert_eq!(values("x-sso-email"), ["u1@ops.example"]);
    }
}
