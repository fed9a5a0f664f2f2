//! CORS preflights on protected routes. Browsers send them without credentials, so a
//! `required` route lets a real preflight through to the backend unauthenticated (or
//! refuses it, `routes[].preflight = "deny"`). Only the answer's CORS headers and status
//! reach the client: a backend that serves its page body to any `OPTIONS` would otherwise
//! hand a protected page to anyone who adds two headers.

use http::{header, HeaderMap, HeaderName, Method};

/// RFC 9110 `OPTIONS` with the two headers that make it a CORS preflight (Fetch standard).
/// Every other `OPTIONS` goes through the gate like any request.
pub fn is_cors_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The headers of the backend's preflight answer the client does not get: all but
/// `Access-Control-*` and `Vary`. (The body goes too; `Content-Length` is set to 0.)
pub fn headers_to_drop(headers: &HeaderMap) -> Vec<HeaderName> {
    // `keys` yields each name once, however many values it has.
    headers.keys().filter(|name| !kept(name)).cloned().collect()
}

fn kept(name: &HeaderName) -> bool {
    name == header::VARY || name.as_str().starts_with("access-control-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cors_headers_survive() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("access-control-allow-origin", "https://shop.test"),
            ("access-control-allow-methods", "GET, POST"),
            ("vary", "Origin"),
            ("content-type", "text/html"),
            ("content-length", "42"),
            ("set-cookie", "a=b"),
            ("x-secret", "1"),
            ("x-secret", "2"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        let dropped = headers_to_drop(&headers);
        assert_eq!(
            dropped,
            ["content-type", "content-length", "set-cookie", "x-secret"]
        );
    }

    #[test]
    fn a_preflight_has_origin_and_method() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, "https://a.test".parse().unwrap());
        assert!(!is_cors_preflight(&Method::OPTIONS, &headers));
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            "PUT".parse().unwrap(),
        );
        assert!(is_cors_preflight(&Method::OPTIONS, &headers));
        assert!(!is_cors_preflight(&Method::GET, &headers));
    }
}
