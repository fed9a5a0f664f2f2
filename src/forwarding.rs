//! What the upstream may see of a request: identity headers and sidecar cookies removed,
//! `X-Forwarded-*` rebuilt unless a trusted proxy set them. Pure functions over
//! `http` types, so they are tested without a server.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::config::IdentityHeader;
use crate::principal::Principal;
use crate::session::jar::split_pairs;
use crate::session::CookieNames;

/// The request's `Cookie` header(s) without the sidecar's cookies: `None` when nothing
/// changes, `Some("")` when no cookie is left. Read as bytes: the sidecar's own (long)
/// cookies are dropped without being checked character by character.
pub fn cookies_without_sidecar(headers: &HeaderMap, own: &CookieNames) -> Option<String> {
    let values = headers.get_all(http::header::COOKIE);
    let mut iter = values.iter();
    let first = iter.next()?;
    // HTTP/2 clients may split cookies; upstream gets them joined into one header.
    let mut changed = iter.next().is_some();
    if !changed && !names_any(first.as_bytes(), own) && first.to_str().is_ok() {
        // Most requests: one header, none of ours; nothing to build.
        return None;
    }
    let mut kept: Vec<&str> = Vec::new();
    for value in values {
        let before = kept.len();
        for pair in split_pairs(value.as_bytes()) {
            if own_pair(pair, own) {
                changed = true;
            } else if let Some(text) = crate::session::jar::visible(pair) {
                kept.push(text);
            } else {
                // Not visible ASCII: cannot be inspected, so none of this header's
                // cookies is passed on.
                kept.truncate(before);
                changed = true;
                break;
            }
        }
    }
    changed.then(|| kept.join("; "))
}

/// Whether a cookie pair is one of the sidecar's.
fn own_pair(pair: &[u8], own: &CookieNames) -> bool {
    let name = match memchr::memchr(b'=', pair) {
        Some(at) => &pair[..at],
        None => pair,
    };
    std::str::from_utf8(name.trim_ascii()).is_ok_and(|name| own.owns(name))
}

/// Whether a `Cookie` header names any of the sidecar's cookies.
fn names_any(value: &[u8], own: &CookieNames) -> bool {
    split_pairs(value).any(|pair| own_pair(pair, own))
}

/// Every header whose name starts with the identity prefix, read case-insensitively and
/// with `_` as `-`: Rack, CGI and WSGI servers turn both `X-SSO-Email` and `X_SSO_Email`
/// into `HTTP_X_SSO_EMAIL`, so either spelling would pose as the sidecar's header.
/// `prefix_lower` is the prefix lower-cased.
pub fn identity_headers(headers: &HeaderMap, prefix_lower: &str) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| has_identity_prefix(name.as_str(), prefix_lower))
        .cloned()
        .collect();
    names.dedup();
    names
}

fn has_identity_prefix(name: &str, prefix_lower: &str) -> bool {
    let dash = |b: u8| if b == b'_' { b'-' } else { b };
    name.len() >= prefix_lower.len()
        && name
            .bytes()
            .zip(prefix_lower.bytes())
            .all(|(n, p)| dash(n) == dash(p))
}

/// The values the `X-Forwarded-*` headers get upstream, ready to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub for_chain: HeaderValue,
    pub proto: HeaderValue,
    pub host: Option<HeaderValue>,
    /// The address of the person at the other end: the peer, or for a trusted proxy the
    /// last untrusted address in its `X-Forwarded-For`.
    pub client_ip: IpAddr,
    /// The peer is a trusted proxy, whose forwarding claims are kept.
    pub peer_trusted: bool,
}

pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|net| net.contains(&ip))
}

/// Builds `X-Forwarded-For/-Proto/-Host`. A client's own values are kept only when it is a
/// trusted proxy; anyone else could use them to pose as another address or host. `host` is
/// the request's canonical host ([`crate::host`]).
pub fn forwarded(
    headers: &HeaderMap,
    peer: IpAddr,
    own_scheme: &'static str,
    trusted: &[IpNet],
    host: Option<HeaderValue>,
) -> Forwarded {
    let peer = canonical(peer);
    let header = |name: &str| {
        let text = headers.get(name)?.to_str().ok()?.trim();
        (!text.is_empty()).then(|| HeaderValue::from_str(text).ok())?
    };
    let host = host.filter(|v| v.to_str().is_ok());
    if !is_trusted(peer, trusted) {
        return Forwarded {
            for_chain: ip_value(peer),
            proto: HeaderValue::from_static(own_scheme),
            host,
            client_ip: peer,
            peer_trusted: false,
        };
    }
    let existing: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let client_ip = existing
        .iter()
        .rev()
        .map_while(|text| text.parse::<IpAddr>().ok().map(canonical))
        .find(|ip| !is_trusted(*ip, trusted))
        .unwrap_or(peer);
    let mut chain = existing.join(", ");
    if !chain.is_empty() {
        chain.push_str(", ");
    }
    chain.push_str(&peer.to_string());
    Forwarded {
        for_chain: HeaderValue::try_from(chain).unwrap_or_else(|_| ip_value(peer)),
        proto: header("x-forwarded-proto").unwrap_or(HeaderValue::from_static(own_scheme)),
        host: header("x-forwarded-host").or(host),
        client_ip,
        peer_trusted: true,
    }
}

/// An address as a header value. A connection's requests all come from one address, so
/// the last one formatted on this thread is kept (compared whole, so never another's).
fn ip_value(ip: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((_, value)) = last.as_ref().filter(|(known, _)| *known == ip) {
            return value.clone();
        }
        let value = format_ip(ip);
        *last = Some((ip, value.clone()));
        value
    })
}

/// An address as a header value, formatted without a heap string in between.
fn format_ip(ip: IpAddr) -> HeaderValue {
    use std::io::Write as _;
    let mut buffer = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let _ = write!(cursor, "{ip}");
    let len = cursor.position() as usize;
    HeaderValue::from_bytes(&buffer[..len]).expect("an address is a header value")
}

/// IPv4 peers on a dual-stack socket show up as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The value of each identity header for a principal. Values are sent as UTF-8 (names such
/// as "Jürgen" stay intact); control characters are dropped so no value can split a header.
pub fn identity_value(
    header: IdentityHeader,
    principal: &Principal,
    self_administration: &str,
) -> Option<HeaderValue> {
    let identity = principal.identity();
    let joined;
    let number;
    let text: &str = match header {
        IdentityHeader::EmailVerified => match identity.email {
            Some(_) if identity.email_verified => "true",
            Some(_) => "false",
            None => return None,
        },
        IdentityHeader::Groups => {
            // Values with commas were dropped when the session was made.
            let groups = principal.groups();
            let mut all = String::with_capacity(groups.iter().map(|g| g.len() + 1).sum());
            for group in groups {
                if !all.is_empty() {
                    all.push(',');
                }
                all.push_str(group);
            }
            joined = all;
            &joined
        }
        IdentityHeader::Acr => principal.strength().acr?,
        IdentityHeader::AuthTime => {
            number = principal.strength().auth_time?.to_string();
            &number
        }
        IdentityHeader::Amr => {
            // Method names are short tokens (RFC 8176); a comma would split them.
            let methods = principal.strength().amr;
            joined = methods
                .iter()
                .filter(|m| !m.contains(','))
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(",");
            &joined
        }
        IdentityHeader::Subject => &identity.subject,
        IdentityHeader::Email => identity.email.as_deref()?,
        IdentityHeader::Name => identity.name.as_deref()?,
        IdentityHeader::PreferredUsername => identity.preferred_username.as_deref()?,
        IdentityHeader::Organization => principal.organization()?,
        IdentityHeader::IdentityProvider => principal.identity_provider(),
        IdentityHeader::ExternalId => &identity.external_id,
        IdentityHeader::SelfAdministration => self_administration,
    };
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if !has_control(text) {
        return HeaderValue::from_bytes(text.as_bytes()).ok();
    }
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    HeaderValue::from_bytes(clean.trim().as_bytes())
        .ok()
        .filter(|v| !v.is_empty())
}

/// Whether `text` holds a control character (`char::is_control`: C0, DEL, C1), found by
/// bytes: C0 and DEL are single bytes, C1 is `0xC2` followed by `0x80..=0x9F` in UTF-8.
fn has_control(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        // Printable ASCII, nearly every value: one quick pass.
        return false;
    }
    bytes.iter().enumerate().any(|(i, &b)| {
        b < 0x20
            || b == 0x7f
            || (b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    })
}

/// The request id to use: the client's when it looks like one, else a new UUID. A header
/// value, as it goes into two headers (upstream and response) and a clone is cheap.
pub fn request_id(existing: Option<&HeaderValue>) -> HeaderValue {
    let looks_like_one = |v: &&HeaderValue| {
        !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic)
    };
    existing.filter(looks_like_one).cloned().unwrap_or_else(|| {
        let mut buffer = uuid::Uuid::encode_buffer();
        let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
        HeaderValue::from_str(id).expect("a UUID is a header value")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn sidecar_cookies_are_removed_others_kept() {
        let own = CookieNames {
            session: "_sso_session".into(),
            state: "oidc_state".into(),
            org: "_sso_session_org".into(),
            form: "_sso_session_form".into(),
        };
        let h = headers(&[(
            "cookie",
            "a=1; _sso_session=x; _sso_session.1=y; oidc_state_ab=z; b=2; _sso_sessionx=keep",
        )]);
        assert_eq!(
            cookies_without_sidecar(&h, &own).as_deref(),
            Some("a=1; b=2; _sso_sessionx=keep")
        );
        let h = headers(&[("cookie", "a=1; b=2")]);
        assert_eq!(cookies_without_sidecar(&h, &own), None);
        let h = headers(&[("cookie", "_sso_session=x")]);
        assert_eq!(cookies_without_sidecar(&h, &own).as_deref(), Some(""));
        let h = headers(&[("cookie", "a=1"), ("cookie", "oidc_state=s; c=3")]);
        assert_eq!(
            cookies_without_sidecar(&h, &own).as_deref(),
            Some("a=1; c=3")
        );
    }

    #[test]
    fn identity_headers_any_case() {
        let h = headers(&[
            ("X-SSO-Subject", "admin"),
            ("x-sso-email", "a@b"),
            ("x-ssologin", "keep"),
            ("accept", "*/*"),
        ]);
        let names = identity_headers(&h, "x-sso-");
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn identity_headers_with_underscores() {
        let h = headers(&[
            ("X_SSO_Email", "victim@x"),
            ("x-sso_subject", "admin"),
            ("x_sso-organization", "Operations"),
            ("x-ssoemail", "keep"),
            ("x_ssx_email", "keep"),
        ]);
        let names = identity_headers(&h, "x-sso-");
        let names: Vec<&str> = names.iter().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            ["x_sso_email", "x-sso_subject", "x_sso-organization"]
        );
        // A prefix configured with an underscore matches the dashed spelling too.
        assert_eq!(identity_headers(&h, "x_sso_").len(), 3);
    }

    #[test]
    fn untrusted_clients_cannot_spoof_forwarded_headers() {
        let h = headers(&[
            ("host", "shop.example"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "evil"),
            ("x-forwarded-proto", "https"),
        ]);
        let host = Some(HeaderValue::from_static("shop.example"));
        let f = forwarded(&h, "192.0.2.7".parse().unwrap(), "http", &[], host);
        assert_eq!(f.for_chain, "192.0.2.7");
        assert_eq!(f.proto, "http");
        assert_eq!(
            f.host.as_ref().map(|h| h.to_str().unwrap()),
            Some("shop.example")
        );
        assert_eq!(f.client_ip.to_string(), "192.0.2.7");
    }

    #[test]
    fn trusted_proxies_extend_the_chain() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[
            ("host", "internal"),
            ("x-forwarded-for", "203.0.113.9, 10.1.1.1"),
            ("x-forwarded-host", "shop.example"),
            ("x-forwarded-proto", "https"),
        ]);
        let host = Some(HeaderValue::from_static("internal"));
        let f = forwarded(&h, "10.2.2.2".parse().unwrap(), "http", &trusted, host);
        assert_eq!(f.for_chain, "203.0.113.9, 10.1.1.1, 10.2.2.2");
        assert_eq!(f.proto, "https");
        assert_eq!(
            f.host.as_ref().map(|h| h.to_str().unwrap()),
            Some("shop.example")
        );
        assert_eq!(f.client_ip.to_string(), "203.0.113.9");
    }

    #[test]
    fn mapped_ipv4_is_matched_as_ipv4() {
        let trusted = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(is_trusted("::ffff:127.0.0.1".parse().unwrap(), &trusted));
    }

    #[test]
    fn identity_values_keep_utf8_and_drop_control_characters() {
        let mut caller = crate::principal::BearerCaller::default();
        caller.identity.name = Some("Jürgen\r\nX-SSO-Subject: admin".into());
        caller.identity.subject = "u1".into();
        let principal = Principal::from_bearer(caller);
        let value = identity_value(IdentityHeader::Name, &principal, "NONE").unwrap();
        assert_eq!(value.as_bytes(), "JürgenX-SSO-Subject: admin".as_bytes());
        assert!(identity_value(IdentityHeader::Email, &principal, "NONE").is_none());
        assert_eq!(
            identity_value(IdentityHeader::SelfAdministration, &principal, "UPDATE").unwrap(),
            "UPDATE"
        );
    }

    #[test]
    fn control_characters_are_found_by_bytes_as_by_chars() {
        for text in [
            "plain",
            "Jürgen",
            "tab\there",
            "del\u{7f}",
            "c1\u{85}x",
            "\u{9f}",
            "¢£ÿ",
            "\u{a0}",
        ] {
            assert_eq!(
                has_control(text),
                text.chars().any(char::is_control),
                "{text:?}"
            );
        }
    }

    #[test]
    fn an_address_value_is_the_address_asked_for_not_the_last_one() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_value(a), "192.0.2.1");
        assert_eq!(ip_value(a), "192.0.2.1");
        assert_eq!(ip_value(b), "2001:db8::1");
        assert_eq!(ip_value(a), "192.0.2.1");
    }

    #[test]
    fn request_ids() {
        assert_eq!(
            request_id(Some(&HeaderValue::from_static("abc-123"))),
            "abc-123"
        );
        let generated = request_id(Some(&HeaderValue::from_static("has space")));
        assert_eq!(generated.len(), 36);
        assert_ne!(request_id(None), request_id(None));
    }
}
