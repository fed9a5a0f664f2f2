//! The one host a request is judged by. nginx and Apache choose a virtual host after making
//! the name canonical (`Admin.Shop.Test.` serves `admin.shop.test`), and an absolute-form
//! target's authority replaces `Host` (RFC 9112 §3.2.2). A gate that matched the raw `Host`
//! could route a request for the admin site by a rule for another one; routing, the own
//! endpoints, the gate and the upstream request therefore all use the host this module
//! makes:
//!
//! - lowercase, one trailing dot removed;
//! - the port split off and checked (digits, 1–65535); the scheme's default port is the
//!   same as none, any other is kept for the upstream's `Host`;
//! - only a registered name (letters, digits, `-`, `_`, dots between non-empty labels) or
//!   an IP literal (`[v6]` or dotted IPv4) is accepted;
//! - where it comes from: the absolute-form target's authority, else `Host`, else HTTP/2's
//!   `:authority`; two `Host` fields, a `Host` that disagrees with the authority, or none
//!   at all are refused. (HTTP/1.0 may leave `Host` out, but the upstream would then serve
//!   its default site, which may be the protected one, to a request routed as host-less.)

use std::fmt;
use std::net::Ipv6Addr;

/// Why a request's host cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the request has no host")]
    Missing,
    #[error("the request has more than one Host header")]
    Duplicate,
    #[error("Host disagrees with the request's authority")]
    Disagrees,
    #[error("the host is not a registered name or IP literal")]
    BadName,
    #[error("the port is not a number from 1 to 65535")]
    BadPort,
}

impl HostError {
    /// The label of `requests_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            HostError::Missing => "host_missing",
            HostError::Duplicate => "host_duplicate",
            HostError::Disagrees => "host_disagrees",
            HostError::BadName => "host_bad_name",
            HostError::BadPort => "host_bad_port",
        }
    }
}

/// A host in canonical form: the name (lowercase, no trailing dot, IPv6 in brackets) and a
/// port other than the scheme's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalHost {
    /// Shared: a connection's requests name the same host, and the last one made
    /// canonical on each thread is reused ([`canonical_authority`]).
    name: std::sync::Arc<str>,
    port: Option<u16>,
}

impl CanonicalHost {
    /// The name routes match on, without the port.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// True when `raw` is this host written exactly as [`fmt::Display`] writes it.
    pub fn is_spelled(&self, raw: &[u8]) -> bool {
        let Some(rest) = raw.strip_prefix(self.name.as_bytes()) else {
            return false;
        };
        match (self.port, rest) {
            (None, []) => true,
            (Some(port), [b':', digits @ ..]) => {
                digits.first() != Some(&b'0')
                    && std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| d.parse().ok())
                        == Some(port)
            }
            _ => false,
        }
    }
}

/// `name[:port]`, as the upstream's `Host` gets it.
impl fmt::Display for CanonicalHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// The places a request names its host, as received.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostSources<'a> {
    /// Every `Host` field's value.
    pub host_fields: &'a [&'a [u8]],
    /// The absolute-form target's authority (HTTP/1), or `:authority` (HTTP/2).
    pub authority: Option<&'a [u8]>,
    /// `"http"` or `"https"`: whose default port is the same as none.
    pub scheme: &'a str,
}

/// The request's canonical host.
pub fn request_host(sources: HostSources<'_>) -> Result<CanonicalHost, HostError> {
    let field = match sources.host_fields {
        [] => None,
        [one] => Some(*one),
        _ => return Err(HostError::Duplicate),
    };
    let default_port = default_port(sources.scheme);
    let field = field
        .filter(|value| !value.is_empty())
        .map(|value| canonical_authority(value, default_port))
        .transpose()?;
    let authority = sources
        .authority
        .filter(|value| !value.is_empty())
        .map(|value| canonical_authority(value, default_port))
        .transpose()?;
    match (authority, field) {
        (Some(authority), Some(field)) if authority != field => Err(HostError::Disagrees),
        (Some(host), _) | (None, Some(host)) => Ok(host),
        (None, None) => Err(HostError::Missing),
    }
}

/// A configured host name (`routes[].host`) in the form [`CanonicalHost::name`] has; a
/// port is not allowed, as routes match on the name alone.
pub fn canonical_name(text: &str) -> Result<String, HostError> {
    let host = canonical_authority(text.as_bytes(), None)?;
    match host.port {
        Some(_) => Err(HostError::BadPort),
        None => Ok(host.name.to_string()),
    }
}

/// `name[:port]` or `[v6][:port]` made canonical. The last answer on this thread is kept
/// with the exact bytes and default port it was made from: a connection's requests all
/// name one host, and the same bytes always give the same answer.
fn canonical_authority(raw: &[u8], default_port: Option<u16>) -> Result<CanonicalHost, HostError> {
    type Last = Option<(Vec<u8>, Option<u16>, Result<CanonicalHost, HostError>)>;
    thread_local! {
        static LAST: std::cell::RefCell<Last> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((_, _, answer)) = last
            .as_ref()
            .filter(|(bytes, port, _)| bytes.as_slice() == raw && *port == default_port)
        {
            return answer.clone();
        }
        let answer = make_canonical(raw, default_port);
        *last = Some((raw.to_vec(), default_port, answer.clone()));
        answer
    })
}

fn make_canonical(raw: &[u8], default_port: Option<u16>) -> Result<CanonicalHost, HostError> {
    let text = std::str::from_utf8(raw).map_err(|_| HostError::BadName)?;
    let (name, port) = split_port(text)?;
    let port = port.filter(|p| Some(*p) != default_port);
    let name = match name.strip_prefix('[') {
        Some(literal) => ipv6_literal(literal)?,
        None => registered_name(name)?,
    };
    Ok(CanonicalHost {
        name: name.into(),
        port,
    })
}

/// Splits `host:port`; a colon is only a port separator outside an IPv6 literal.
fn split_port(text: &str) -> Result<(&str, Option<u16>), HostError> {
    let port_at = match text.strip_prefix('[') {
        Some(_) => {
            let close = text.find(']').ok_or(HostError::BadName)?;
            match &text[close + 1..] {
                "" => None,
                rest if rest.starts_with(':') => Some(close + 1),
                _ => return Err(HostError::BadName),
            }
        }
        None => text.rfind(':'),
    };
    let Some(at) = port_at else {
        return Ok((text, None));
    };
    let digits = &text[at + 1..];
    let valid =
        !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit());
    let port = valid
        .then(|| digits.parse::<u16>().ok())
        .flatten()
        .filter(|p| *p != 0)
        .ok_or(HostError::BadPort)?;
    Ok((&text[..at], Some(port)))
}

/// `[…]` with the opening bracket already removed: an IPv6 address, written back in its
/// canonical text so `[0:0::1]` and `[::1]` are one host.
fn ipv6_literal(literal: &str) -> Result<String, HostError> {
    let inner = literal.strip_suffix(']').ok_or(HostError::BadName)?;
    let address: Ipv6Addr = inner.parse().map_err(|_| HostError::BadName)?;
    Ok(format!("[{address}]"))
}

/// A DNS-style name: labels of letters, digits, `-` and `_`, one trailing dot dropped.
fn registered_name(name: &str) -> Result<String, HostError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    match valid {
        true => Ok(name.to_ascii_lowercase()),
        false => Err(HostError::BadName),
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(host: &str, scheme: &str) -> Result<String, HostError> {
        let fields = [host.as_bytes()];
        let sources = HostSources {
            host_fields: &fields,
            authority: None,
            scheme,
        };
        request_host(sources).map(|h| h.to_string())
    }

    #[test]
    fn host_spellings() {
        let cases: &[(&str, &str, Result<&str, HostError>)] = &[
            ("admin.shop.test", "http", Ok("admin.shop.test")),
            ("admin.shop.test.", "http", Ok("admin.shop.test")),
            ("ADMIN.Shop.TEST", "http", Ok("admin.shop.test")),
            ("Admin.Shop.Test.:80", "http", Ok("admin.shop.test")),
            ("admin.shop.test:443", "https", Ok("admin.shop.test")),
            ("admin.shop.test:443", "http", Ok("admin.shop.test:443")),
            ("admin.shop.test:8080", "http", Ok("admin.shop.test:8080")),
            ("admin.shop.test:08080", "http", Ok("admin.shop.test:8080")),
            ("my_host.internal", "http", Ok("my_host.internal")),
            ("127.0.0.1:8080", "http", Ok("127.0.0.1:8080")),
            ("[::1]:8080", "http", Ok("[::1]:8080")),
            ("[0:0::1]", "http", Ok("[::1]")),
            ("[::FFFF:10.0.0.1]", "http", Ok("[::ffff:10.0.0.1]")),
            ("admin.shop.test..", "http", Err(HostError::BadName)),
            (".admin.shop.test", "http", Err(HostError::BadName)),
            ("admin..shop.test", "http", Err(HostError::BadName)),
            (".", "http", Err(HostError::BadName)),
            ("admin.shop.test:", "http", Err(HostError::BadPort)),
            ("admin.shop.test:0", "http", Err(HostError::BadPort)),
            ("admin.shop.test:65536", "http", Err(HostError::BadPort)),
            ("admin.shop.test:80:80", "http", Err(HostError::BadName)),
            ("admin.shop.test: 80", "http", Err(HostError::BadPort)),
            ("admin.shop.test:+80", "http", Err(HostError::BadPort)),
            ("admin%2eshop.test", "http", Err(HostError::BadName)),
            ("admin.shop.test/x", "http", Err(HostError::BadName)),
            ("admin.shop.test\\x", "http", Err(HostError::BadName)),
            ("user@admin.shop.test", "http", Err(HostError::BadName)),
            ("admin shop.test", "http", Err(HostError::BadName)),
            ("admin.shop.test\t", "http", Err(HostError::BadName)),
            ("admİn.shop.test", "http", Err(HostError::BadName)),
            ("[::1", "http", Err(HostError::BadName)),
            ("[::1]x", "http", Err(HostError::BadName)),
            ("[admin.shop.test]", "http", Err(HostError::BadName)),
            ("::1", "http", Err(HostError::BadName)),
        ];
        for (raw, scheme, want) in cases {
            let got = one(raw, scheme);
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                *want,
                "for {raw:?} on {scheme}"
            );
        }
    }

    #[test]
    fn where_the_host_comes_from() {
        let sources =
            |fields: &'static [&'static [u8]], authority: Option<&'static [u8]>| HostSources {
                host_fields: fields,
                authority,
                scheme: "http",
            };
        let name = |r: Result<CanonicalHost, HostError>| r.map(|h| h.to_string());
        // The absolute-form authority wins over an empty Host, and over none.
        assert_eq!(
            name(request_host(sources(&[b""], Some(b"admin.shop.test")))),
            Ok("admin.shop.test".into())
        );
        assert_eq!(
            name(request_host(sources(&[], Some(b"Admin.Shop.Test.")))),
            Ok("admin.shop.test".into())
        );
        // The same host spelled two ways agrees; two hosts do not.
        assert_eq!(
            name(request_host(sources(
                &[b"shop.test"],
                Some(b"SHOP.test.:80")
            ))),
            Ok("shop.test".into())
        );
        assert_eq!(
            name(request_host(sources(
                &[b"shop.test"],
                Some(b"admin.shop.test")
            ))),
            Err(HostError::Disagrees)
        );
        assert_eq!(
            name(request_host(sources(&[b"a.test", b"b.test"], None))),
            Err(HostError::Duplicate)
        );
        assert_eq!(
            name(request_host(sources(&[], None))),
            Err(HostError::Missing)
        );
        assert_eq!(
            name(request_host(sources(&[b""], None))),
            Err(HostError::Missing)
        );
    }

    #[test]
    fn the_kept_answer_is_only_for_the_same_bytes_and_scheme() {
        let https = default_port("https");
        let http = default_port("http");
        let one =
            |raw: &str, port| canonical_authority(raw.as_bytes(), port).map(|h| h.to_string());
        assert_eq!(one("Shop.Test:443", https).as_deref(), Ok("shop.test"));
        assert_eq!(one("Shop.Test:443", http).as_deref(), Ok("shop.test:443"));
        assert_eq!(one("Shop.Test:443", https).as_deref(), Ok("shop.test"));
        assert_eq!(one("shop.test:443x", https), Err(HostError::BadPort));
        assert_eq!(one("Shop.Test:443", https).as_deref(), Ok("shop.test"));
        assert_eq!(
            one("admin.shop.test", https).as_deref(),
            Ok("admin.shop.test")
        );
    }

    #[test]
    fn configured_names() {
        assert_eq!(
            canonical_name("Admin.Shop.Test.").as_deref(),
            Ok("admin.shop.test")
        );
        assert_eq!(
            canonical_name("admin.shop.test:8443"),
            Err(HostError::BadPort)
        );
        assert_eq!(canonical_name("*.shop.test"), Err(HostError::BadName));
        assert_eq!(canonical_name(""), Err(HostError::BadName));
    }
}
