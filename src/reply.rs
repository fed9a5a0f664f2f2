//! A complete response of the sidecar's own, independent of pingora, so the endpoints
//! that build them are tested without a server.

use bytes::Bytes;

use crate::pages::{Page, Pages};

/// Headers on every page the sidecar renders itself (the `Content-Security-Policy` comes
/// with the page's look: [`crate::pages::Rendered::policy`]).
const PAGE_SECURITY_HEADERS: [(&str, &str); 4] = [
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
];

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// A page still to render in the request's language and its host's look; `body` is
    /// empty until then.
    pub page: Option<Box<Page>>,
}

impl Reply {
    /// One of the sidecar's pages, rendered when it is sent ([`Reply::render`]).
    pub fn page(status: u16, page: Page) -> Self {
        let mut headers = vec![("content-type", "text/html; charset=utf-8".to_owned())];
        headers.extend(
            PAGE_SECURITY_HEADERS
                .iter()
                .map(|(k, v)| (*k, (*v).to_owned())),
        );
        Reply {
            status,
            headers,
            body: Bytes::new(),
            page: Some(Box::new(page)),
        }
    }

    /// Renders the page this reply carries, if any, for `host` and `accept_language`;
    /// a `Content-Security-Policy` the reply set itself stays.
    pub fn render(
        mut self,
        pages: &Pages,
        host: Option<&str>,
        accept_language: Option<&str>,
    ) -> Self {
        if let Some(page) = self.page.take() {
            let rendered = pages.render(&page, host, accept_language);
            self.body = Bytes::from(rendered.body);
            if !self
                .headers
                .iter()
                .any(|(k, _)| *k == "content-security-policy")
            {
                self.headers
                    .push(("content-security-policy", rendered.policy));
            }
            self.headers.push(("content-language", rendered.language));
        }
        self
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Reply {
            status,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("cache-control", "no-store".to_owned()),
            ],
            body: Bytes::from(format!("{value}\n")),
            page: None,
        }
    }

    /// A public JWKS document: cacheable, as keys change only with the config.
    pub fn jwks(body: Bytes) -> Self {
        Reply {
            status: 200,
            headers: vec![
                ("content-type", "application/jwk-set+json".to_owned()),
                ("cache-control", "public, max-age=300".to_owned()),
            ],
            body,
            page: None,
        }
    }

    /// The pages' stylesheet: its address changes with its content, so it may be cached.
    pub fn stylesheet(css: std::sync::Arc<str>) -> Self {
        Reply {
            status: 200,
            headers: vec![
                ("content-type", "text/css; charset=utf-8".to_owned()),
                ("cache-control", "public, max-age=86400".to_owned()),
                ("x-content-type-options", "nosniff".to_owned()),
            ],
            body: Bytes::from(css.as_bytes().to_vec()),
            page: None,
        }
    }

    pub fn redirect(location: &str) -> Self {
        Reply::redirect_with(302, location)
    }

    /// `303 See Other`: the browser follows with a `GET`, whatever the request's method.
    pub fn see_other(location: &str) -> Self {
        Reply::redirect_with(303, location)
    }

    fn redirect_with(status: u16, location: &str) -> Self {
        Reply {
            status,
            headers: vec![
                ("location", location.to_owned()),
                ("cache-control", "no-store".to_owned()),
            ],
            body: Bytes::new(),
            page: None,
        }
    }

    /// `401` for programs: a `WWW-Authenticate` challenge and no cookie.
    pub fn unauthorized(error: Option<&str>) -> Self {
        Self::unauthorized_with(error, None)
    }

    /// `401` with an RFC 6750 error code and a description of what was wrong.
    pub fn unauthorized_with(error: Option<&str>, description: Option<&str>) -> Self {
        let mut challenge = "Bearer realm=\"sso-sidecar\"".to_owned();
        if let Some(code) = error {
            challenge.push_str(&format!(", error=\"{code}\""));
        }
        if let Some(text) = description {
            // Quoted-string: no quotes or backslashes inside, ASCII only.
            let clean: String = text
                .chars()
                .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '"' && *c != '\\')
                .collect();
            challenge.push_str(&format!(", error_description=\"{clean}\""));
        }
        Reply::challenge(challenge, b"{\"error\":\"unauthorized\"}\n")
    }

    /// `401` with `challenge` as `WWW-Authenticate` and a JSON body.
    fn challenge(challenge: String, body: &'static [u8]) -> Self {
        Reply {
            status: 401,
            headers: vec![
                ("www-authenticate", challenge),
                ("content-type", "application/json".to_owned()),
                ("cache-control", "no-store".to_owned()),
            ],
            body: Bytes::from_static(body),
            page: None,
        }
    }

    /// `401` with RFC 9470's `insufficient_user_authentication` challenge: `challenge`
    /// is the whole `WWW-Authenticate` value.
    pub fn insufficient_user_authentication(challenge: String) -> Self {
        Reply::challenge(
            challenge,
            b"{\"error\":\"insufficient_user_authentication\"}\n",
        )
    }

    /// `503` with `Retry-After`: the answer depends on something that is down for now.
    pub fn temporarily_unavailable(retry_after_secs: u32) -> Self {
        Reply {
            status: 503,
            headers: vec![
                ("retry-after", retry_after_secs.to_string()),
                ("content-type", "application/json".to_owned()),
                ("cache-control", "no-store".to_owned()),
            ],
            body: Bytes::from_static(b"{\"error\":\"temporarily_unavailable\"}\n"),
            page: None,
        }
    }

    pub fn with_cookies(mut self, set_cookies: impl IntoIterator<Item = String>) -> Self {
        self.headers
            .extend(set_cookies.into_iter().map(|c| ("set-cookie", c)));
        self
    }

    /// `name: value`, replacing the header if the reply has it already.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        match self.headers.iter_mut().find(|(k, _)| *k == name) {
            Some((_, existing)) => *existing = value,
            None => self.headers.push((name, value)),
        }
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_cookies(&self) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(|(k, _)| *k == "set-cookie")
            .map(|(_, v)| v.as_str())
    }
}
