//! Whether the browser says a request came from this site. Two features act on a request
//! only when it did: a logout (a link from elsewhere must not sign people out) and a form
//! kept across a sign-in (replayed with the user's identity afterwards, it would otherwise
//! be a cross-site request forgery that `SameSite=Lax` cookies exist to stop).
//!
//! Fetch Metadata (`Sec-Fetch-Site`) is the browser's own word and wins; without it, the
//! `Origin` (else `Referer`) header names the page the request came from.

use http::HeaderMap;
use url::Url;

use crate::host::CanonicalHost;

/// The sidecar's own origin: `server.public_url` where set, else the request's own host.
#[derive(Clone, Copy)]
pub struct OwnSite<'a> {
    pub public_url: Option<&'a Url>,
    pub host: Option<&'a CanonicalHost>,
}

impl OwnSite<'_> {
    /// A form may be kept only when the browser says it came from this site:
    /// `Sec-Fetch-Site: same-origin` (or `none`, typed or bookmarked), or without Fetch
    /// Metadata an `Origin` (else `Referer`) on our origin. Saying nothing is not enough.
    pub fn sent_form(&self, headers: &HeaderMap) -> bool {
        if let Some(same) = fetch_site_is_own(headers) {
            return same;
        }
        let origin = header(headers, "origin").filter(|o| *o != "null");
        origin
            .or_else(|| header(headers, "referer"))
            .is_some_and(|url| self.is_own_origin(url, self.public_url.is_none()))
    }

    /// A logout: Fetch Metadata where sent; else a `POST` whose `Origin`, when sent, is
    /// ours (a cross-site form cannot carry our `SameSite=Lax` cookie anyway), or a `GET`
    /// from one of our own pages.
    pub fn sent_logout(&self, headers: &HeaderMap, is_post: bool) -> bool {
        if let Some(same) = fetch_site_is_own(headers) {
            return same;
        }
        let ours = |url: &str| self.is_own_origin(url, true);
        if is_post {
            return header(headers, "origin").is_none_or(|o| o == "null" || ours(o));
        }
        header(headers, "origin")
            .or_else(|| header(headers, "referer"))
            .is_some_and(ours)
    }

    /// `url`'s origin is `server.public_url`'s, or (where `by_host`) names the request's
    /// own canonical host and port.
    fn is_own_origin(&self, url: &str, by_host: bool) -> bool {
        let Ok(url) = Url::parse(url) else {
            return false;
        };
        if self
            .public_url
            .is_some_and(|public| url.origin() == public.origin())
        {
            return true;
        }
        let Some(host) = self.host.filter(|_| by_host) else {
            return false;
        };
        // `Url` lowercases the name and drops the scheme's default port, as the canonical
        // host does; the canonical host knows no trailing dot, and neither may the origin.
        url.host_str() == Some(host.name())
            && url.port() == host.port()
            && matches!(url.scheme(), "http" | "https")
    }
}

/// `Some(true)` for `same-origin` or `none`, `Some(false)` for any other value, `None`
/// when the browser sent no Fetch Metadata.
fn fetch_site_is_own(headers: &HeaderMap) -> Option<bool> {
    header(headers, "sec-fetch-site").map(|site| site == "same-origin" || site == "none")
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{request_host, HostSources};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn host(text: &str) -> CanonicalHost {
        let fields = [text.as_bytes()];
        let sources = HostSources {
            host_fields: &fields,
            authority: None,
            scheme: "https",
        };
        request_host(sources).unwrap()
    }

    /// Issue 26: a cross-site form was kept and replayed after the sign-in.
    #[test]
    fn forms_are_kept_only_from_this_site() {
        let public = Url::parse("https://shop.test/").unwrap();
        let shop = host("shop.test");
        let own = OwnSite {
            public_url: Some(&public),
            host: Some(&shop),
        };
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("sec-fetch-site", "same-origin")], true),
            (&[("sec-fetch-site", "none")], true),
            (
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "https://shop.test"),
                ],
                false,
            ),
            (&[("sec-fetch-site", "same-site")], false),
            (&[("origin", "https://shop.test")], true),
            (&[("origin", "https://evil.example")], false),
            (&[("origin", "http://shop.test")], false),
            (&[("origin", "https://shop.test.evil.example")], false),
            (
                &[("origin", "null"), ("referer", "https://shop.test/cart")],
                true,
            ),
            (&[("origin", "null")], false),
            (&[("referer", "https://shop.test/cart")], true),
            (
                &[("referer", "https://evil.example/?https://shop.test/")],
                false,
            ),
            (&[], false),
        ];
        for (pairs, want) in cases {
            assert_eq!(own.sent_form(&headers(pairs)), *want, "{pairs:?}");
        }
    }

    #[test]
    fn without_a_public_url_the_request_host_is_the_origin() {
        let shop = host("shop.test:8443");
        let own = OwnSite {
            public_url: None,
            host: Some(&shop),
        };
        assert!(own.sent_form(&headers(&[("origin", "https://SHOP.test:8443")])));
        assert!(!own.sent_form(&headers(&[("origin", "https://shop.test")])));
        assert!(!own.sent_form(&headers(&[("origin", "https://evil.example:8443")])));
    }

    #[test]
    fn logouts_from_elsewhere_are_not_ours() {
        let shop = host("shop.test");
        let own = OwnSite {
            public_url: None,
            host: Some(&shop),
        };
        assert!(own.sent_logout(&headers(&[]), true));
        assert!(!own.sent_logout(&headers(&[]), false));
        assert!(!own.sent_logout(&headers(&[("origin", "https://evil.example")]), true));
        assert!(own.sent_logout(&headers(&[("referer", "https://shop.test/account")]), false));
        assert!(!own.sent_logout(&headers(&[("sec-fetch-site", "cross-site")]), true));
    }
}
