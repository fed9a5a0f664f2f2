//! Who sent a request, as far as the answer to a refusal depends on it: a browser
//! navigating to a page can be sent to sign in; a script, a program or a WebSocket
//! cannot follow that and gets a status code.

use http::{HeaderMap, Method};

/// The two kinds of caller a refusal is answered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A browser loading a page (`GET`/`HEAD` asking for HTML).
    Navigation,
    /// XHR, fetch, API clients, form posts and upgrades.
    Program,
}

impl Caller {
    pub fn of(method: &Method, headers: &HeaderMap) -> Self {
        if is_navigation(method, headers) {
            Caller::Navigation
        } else {
            Caller::Program
        }
    }
}

/// True when the request comes from a browser navigating to a page, which gets a login
/// page; everything else (XHR, API clients) gets a `401`.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    // A WebSocket (or other) upgrade cannot follow a redirect to a login page.
    if headers.contains_key("x-requested-with")
        || headers.contains_key(http::header::AUTHORIZATION)
        || headers.contains_key(http::header::UPGRADE)
    {
        return false;
    }
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.to_ascii_lowercase().contains("text/html"))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn navigation_detection() {
        let nav = headers(&[("accept", "text/html,application/xhtml+xml")]);
        assert!(is_navigation(&Method::GET, &nav));
        assert!(!is_navigation(&Method::POST, &nav));
        assert!(!is_navigation(
            &Method::GET,
            &headers(&[("accept", "application/json")])
        ));
        assert!(!is_navigation(&Method::GET, &headers(&[])));
        let xhr = headers(&[
            ("accept", "text/html"),
            ("x-requested-with", "XMLHttpRequest"),
        ]);
        assert!(!is_navigation(&Method::GET, &xhr));
        let bearer = headers(&[("accept", "text/html"), ("authorization", "Bearer x")]);
        assert!(!is_navigation(&Method::GET, &bearer));
        // Issue 19: a WebSocket upgrade asking for HTML was redirected to the login page,
        // which a socket cannot follow; it gets 401.
        let upgrade = headers(&[("accept", "text/html"), ("upgrade", "websocket")]);
        assert!(!is_navigation(&Method::GET, &upgrade));
    }
}
