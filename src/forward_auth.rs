//! Forward-auth (`/oauth2/auth`): an ingress (nginx `auth_request`, ingress-nginx,
//! Traefik `forwardAuth`, Caddy `forward_auth`, Envoy) asks about each request before it
//! serves it, and the sidecar answers from the same routes, gate and rules as in proxy
//! mode. This module reads which request is asked about, and turns the gate's decision into
//! the answer the ingress understands; `src/proxy.rs` runs the steps in between.
//!
//! The original request is told in headers only a trusted proxy may set
//! (`server.trusted_proxies`), in one of two families:
//! - nginx: `X-Original-URI` and `X-Original-Method` (ingress-nginx: `X-Original-URL`, a
//!   whole URL, with `X-Original-Method`), the host in `Host`;
//! - Traefik, Caddy, Envoy: `X-Forwarded-Uri`, `X-Forwarded-Method`, `X-Forwarded-Host`,
//!   `X-Forwarded-Proto`.
//!
//! When both families are there and disagree, a client added one and the ingress set the
//! other: the request is refused, never decided on either.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::auth::Gate;
use crate::host::{request_host, CanonicalHost, HostSources};
use crate::reply::Reply;
use crate::upstream_headers::UpstreamHeaders;

/// The request the ingress asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub method: Method,
    /// Path and query as the client sent them (made canonical by the caller).
    pub target: String,
    pub host: CanonicalHost,
    /// `http` or `https`, as the client reached the ingress.
    pub scheme: &'static str,
}

impl Original {
    /// The whole URL, where the browser comes back to after signing in.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.target)
    }
}

/// Why no decision can be made about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotDecided {
    /// The two header families name different requests.
    Disagree,
    /// A header that cannot be read (not a path, not a method, not a host).
    Malformed,
}

const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// What one family of headers says.
#[derive(Debug, Default, PartialEq, Eq)]
struct Claim {
    target: Option<String>,
    method: Option<String>,
    host: Option<String>,
    scheme: Option<String>,
}

/// The request the ingress asks about. `trusted`: the peer is a trusted proxy; from anyone
/// else the headers are ignored, and the answer is about the asking request's own host
/// and an unknown path (`/`, which a route may still protect), so a client that calls
/// `/oauth2/auth` itself learns nothing it chose. `own_host` and `own_scheme` are the
/// asking request's.
pub fn original_request(
    headers: &HeaderMap,
    trusted: bool,
    own_host: &CanonicalHost,
    own_scheme: &'static str,
) -> Result<Original, NotDecided> {
    let unknown = || Original {
        method: Method::GET,
        target: "/".to_owned(),
        host: own_host.clone(),
        scheme: own_scheme,
    };
    if !trusted {
        return Ok(unknown());
    }
    let text = |name: &HeaderName| -> Result<Option<String>, NotDecided> {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(value), None) => (value.to_str().map(|v| Some(v.trim().to_owned())))
                .map_err(|_| NotDecided::Malformed),
            // Two of one header: someone added one.
            (Some(_), Some(_)) => Err(NotDecided::Disagree),
        }
    };
    let nginx = nginx_claim(
        text(&X_ORIGINAL_URI)?,
        text(&X_ORIGINAL_URL)?,
        text(&X_ORIGINAL_METHOD)?,
    )?;
    let traefik = Claim {
        target: text(&X_FORWARDED_URI)?,
        method: text(&X_FORWARDED_METHOD)?,
        host: text(&X_FORWARDED_HOST)?,
        scheme: text(&X_FORWARDED_PROTO)?,
    };
    let agreed = agree(nginx, traefik)?;
    let Some(target) = agreed.target else {
        return Ok(unknown());
    };
    if !target.starts_with('/') {
        return Err(NotDecided::Malformed);
    }
    let method = match agreed.method {
        Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| NotDecided::Malformed)?,
        None => Method::GET,
    };
    let scheme = match agreed
        .scheme
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => own_scheme,
        Some("https") => "https",
        Some("http") => "http",
        Some(_) => return Err(NotDecided::Malformed),
    };
    let host = match agreed.host {
        Some(host) => {
            let fields = [host.as_bytes()];
            request_host(HostSources {
                host_fields: &fields,
                authority: None,
                scheme,
            })
            .map_err(|_| NotDecided::Malformed)?
        }
        None => own_host.clone(),
    };
    Ok(Original {
        method,
        target,
        host,
        scheme,
    })
}

/// nginx's family: `X-Original-URI` (a path), or ingress-nginx's `X-Original-URL` (a whole
/// URL, which then names host and scheme too); both must agree where both are set.
fn nginx_claim(
    uri: Option<String>,
    url: Option<String>,
    method: Option<String>,
) -> Result<Claim, NotDecided> {
    let from_url = match url {
        None => None,
        Some(url) => {
            let parsed = url::Url::parse(&url).map_err(|_| NotDecided::Malformed)?;
            let mut target = parsed.path().to_owned();
            if let Some(query) = parsed.query() {
                target.push('?');
                target.push_str(query);
            }
            let host = parsed.host_str().ok_or(NotDecided::Malformed)?;
            let host = match parsed.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            Some((target, host, parsed.scheme().to_owned()))
        }
    };
    if let (Some(uri), Some((target, ..))) = (&uri, &from_url) {
        if uri != target {
            return Err(NotDecided::Disagree);
        }
    }
    let (url_target, host, scheme) = match from_url {
        Some((target, host, scheme)) => (Some(target), Some(host), Some(scheme)),
        None => (None, None, None),
    };
    Ok(Claim {
        target: uri.or(url_target),
        method,
        host,
        scheme,
    })
}

/// One claim from the two families: what both say must be the same.
fn agree(a: Claim, b: Claim) -> Result<Claim, NotDecided> {
    fn one(
        a: Option<String>,
        b: Option<String>,
        same: fn(&str, &str) -> bool,
    ) -> Result<Option<String>, NotDecided> {
        match (a, b) {
            (Some(a), Some(b)) if !same(&a, &b) => Err(NotDecided::Disagree),
            (a, b) => Ok(a.or(b)),
        }
    }
    let exact = |a: &str, b: &str| a == b;
    let no_case = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    Ok(Claim {
        target: one(a.target, b.target, exact)?,
        method: one(a.method, b.method, no_case)?,
        host: one(a.host, b.host, no_case)?,
        scheme: one(a.scheme, b.scheme, no_case)?,
    })
}

/// How the ingress wants sign-ins answered: `401` (nginx shows its `error_page`), or a
/// redirect the ingress passes to the browser (`?redirect=true`: Traefik, Caddy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub redirect: bool,
}

impl Mode {
    pub fn from_query(query: Option<&str>) -> Self {
        let redirect = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .any(|(k, v)| k == "redirect" && (v == "true" || v == "1"));
        Mode { redirect }
    }
}

/// nginx 1.22 hands an `auth_request` answer's first `Set-Cookie` only to
/// `auth_request_set`; each one is also sent under its own numbered name
/// (`X-SSO-Set-Cookie-1`, …) so the nginx example can pass every one of them on.
pub const NUMBERED_COOKIES: usize = 8;

/// The ingress's answer for the gate's decision: the reply, and the headers it carries
/// beyond it (identity, as the upstream would get them; numbered cookies).
pub fn answer(
    gate: Gate,
    upstream: &UpstreamHeaders,
    prefix: &str,
    now: i64,
) -> (Reply, HeaderMap) {
    let (reply, set_cookies, mut extra) = match gate {
        Gate::Forward {
            principal,
            authorization,
            set_cookies,
        } => {
            let mut extra = upstream.identity_headers(&principal, now);
            if let Some(value) = authorization.and_then(|a| HeaderValue::try_from(a).ok()) {
                extra.insert(http::header::AUTHORIZATION, value);
            }
            (allowed(), set_cookies, extra)
        }
        Gate::Anonymous { set_cookies } => (allowed(), set_cookies, HeaderMap::new()),
        Gate::Deny(reply) => (reply, Vec::new(), HeaderMap::new()),
        // A form's body does not come with the question: sign in without keeping it.
        Gate::KeepForm { login, .. } => (Reply::see_other(&login), Vec::new(), HeaderMap::new()),
    };
    let reply = reply.with_cookies(set_cookies);
    let cookies = reply
        .headers
        .iter()
        .filter(|(name, _)| *name == "set-cookie");
    for (i, (_, cookie)) in cookies.take(NUMBERED_COOKIES).enumerate() {
        let name = format!("{}set-cookie-{}", prefix.to_ascii_lowercase(), i + 1);
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name),
            HeaderValue::try_from(cookie.as_str()),
        ) {
            extra.insert(name, value);
        }
    }
    (reply, extra)
}

/// `200` with no body: go ahead.
fn allowed() -> Reply {
    Reply {
        status: 200,
        headers: vec![("cache-control", "no-store".to_owned())],
        body: bytes::Bytes::new(),
        page: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> CanonicalHost {
        request_host(HostSources {
            host_fields: &[b"auth.internal"],
            authority: None,
            scheme: "http",
        })
        .unwrap()
    }

    fn ask(pairs: &[(&'static str, &'static str)], trusted: bool) -> Result<Original, NotDecided> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        original_request(&headers, trusted, &own(), "http")
    }

    #[test]
    fn each_ingress_family_names_the_request() {
        let nginx = ask(
            &[
                ("x-original-uri", "/orders?page=2"),
                ("x-original-method", "post"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(
            (nginx.method.as_str(), nginx.target.as_str()),
            ("POST", "/orders?page=2")
        );
        assert_eq!(nginx.url(), "http://auth.internal/orders?page=2");
        let traefik = ask(
            &[
                ("x-forwarded-uri", "/backoffice/"),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-host", "BackOffice.Shop.Example."),
                ("x-forwarded-proto", "https"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(traefik.url(), "https://backoffice.shop.example/backoffice/");
        let ingress_nginx = ask(
            &[
                ("x-original-url", "https://shop.example:8443/a?b=c"),
                ("x-original-method", "GET"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(ingress_nginx.url(), "https://shop.example:8443/a?b=c");
    }

    #[test]
    fn families_that_disagree_decide_nothing() {
        // The ingress set one family, the client added the other.
        let both = |uri, forwarded| {
            ask(
                &[("x-original-uri", uri), ("x-forwarded-uri", forwarded)],
                true,
            )
        };
        assert_eq!(both("/admin", "/public"), Err(NotDecided::Disagree));
        assert!(both("/same", "/same").is_ok());
        let methods = ask(
            &[
                ("x-original-uri", "/a"),
                ("x-original-method", "GET"),
                ("x-forwarded-method", "DELETE"),
            ],
            true,
        );
        assert_eq!(methods, Err(NotDecided::Disagree));
        let hosts = ask(
            &[
                ("x-original-url", "https://shop.example/a"),
                ("x-forwarded-host", "evil.example"),
            ],
            true,
        );
        assert_eq!(hosts, Err(NotDecided::Disagree));
        let url_and_uri = ask(
            &[
                ("x-original-url", "https://shop.example/a"),
                ("x-original-uri", "/b"),
            ],
            true,
        );
        assert_eq!(url_and_uri, Err(NotDecided::Disagree));
        let twice = ask(
            &[("x-forwarded-uri", "/a"), ("x-forwarded-uri", "/b")],
            true,
        );
        assert_eq!(twice, Err(NotDecided::Disagree));
        assert_eq!(
            ask(&[("x-forwarded-uri", "no-slash")], true),
            Err(NotDecided::Malformed)
        );
        assert_eq!(
            ask(
                &[("x-forwarded-uri", "/a"), ("x-forwarded-proto", "gopher")],
                true
            ),
            Err(NotDecided::Malformed)
        );
        assert_eq!(
            ask(
                &[("x-forwarded-uri", "/a"), ("x-forwarded-host", "a b")],
                true
            ),
            Err(NotDecided::Malformed)
        );
    }

    #[test]
    fn an_untrusted_peer_chooses_nothing() {
        let spoofed = ask(
            &[
                ("x-original-uri", "/public/"),
                ("x-forwarded-host", "other.example"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(spoofed.url(), "http://auth.internal/");
        let unknown = ask(&[], true).unwrap();
        assert_eq!(unknown.target, "/");
    }

    #[test]
    fn answers_hand_every_cookie_to_nginx_by_number() {
        let config = crate::config::from_str(
            "[server]\nupstream = \"http://127.0.0.1:9\"\n[session]\nkeys = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\n",
            "t.toml".as_ref(),
        )
        .unwrap();
        let upstream = UpstreamHeaders::new(&config, None);
        let cookies = vec!["a.1=x; Path=/".to_owned(), "a.2=y; Path=/".to_owned()];
        let gate = Gate::Anonymous {
            set_cookies: cookies,
        };
        let (reply, extra) = answer(gate, &upstream, "X-SSO-", 0);
        assert_eq!(reply.status, 200);
        assert_eq!(extra["x-sso-set-cookie-1"], "a.1=x; Path=/");
        assert_eq!(extra["x-sso-set-cookie-2"], "a.2=y; Path=/");
        let set: Vec<_> = reply
            .headers
            .iter()
            .filter(|(n, _)| *n == "set-cookie")
            .collect();
        assert_eq!(set.len(), 2);
    }
}
