//! Reading the `Cookie` header and writing `Set-Cookie` values, including values split over
//! numbered chunk cookies when they exceed what browsers keep in one cookie.

use std::borrow::Cow;
use std::time::Duration;

use http::HeaderMap;

use crate::config::SameSite;

/// Browsers keep at least 4096 bytes per cookie including name and attributes.
pub const MAX_CHUNK: usize = 3800;
/// Marks a base cookie whose value lives in chunks: `~3` means `<name>.1` … `<name>.3`.
const CHUNKED_MARK: char = '~';
/// Upper bound on chunks read, so a crafted header cannot make us join thousands.
const MAX_CHUNKS: usize = 16;

/// All `name=value` pairs of the request's `Cookie` headers, in order, as bytes, trimmed
/// and unquoted; nothing else is checked yet. Reading bytes, a request's long session
/// cookie is not checked character by character on every request, only where it is used.
pub fn raw_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| split_pairs(v.as_bytes()))
        .filter_map(|pair| {
            let at = memchr::memchr(b'=', pair)?;
            let (name, value) = (pair[..at].trim_ascii(), pair[at + 1..].trim_ascii());
            let value = match value {
                [b'"', inner @ .., b'"'] => inner,
                _ => value,
            };
            Some((name, value))
        })
}

/// A `Cookie` header's `name=value` pairs, trimmed, empty ones left out (found with
/// `memchr`: session cookies are kilobytes long).
pub fn split_pairs(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let text = rest?;
        let (pair, next) = match memchr::memchr(b';', text) {
            Some(at) => (&text[..at], Some(&text[at + 1..])),
            None => (text, None),
        };
        rest = next;
        Some(pair.trim_ascii())
    })
    .filter(|pair| !pair.is_empty())
}

/// `bytes` as text when they are visible ASCII (or tabs), as a header value's text is.
pub fn visible(bytes: &[u8]) -> Option<&str> {
    let ok = bytes
        .iter()
        .all(|b| *b == b'\t' || (b' '..=b'~').contains(b));
    ok.then(|| std::str::from_utf8(bytes).ok()).flatten()
}

/// All `name=value` pairs of the request's `Cookie` headers whose name and value are
/// visible ASCII, in order.
pub fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    raw_pairs(headers).filter_map(|(name, value)| Some((visible(name)?, visible(value)?)))
}

pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    visible(cookie_bytes(headers, name)?)
}

/// The first cookie named `name`, unchecked.
fn cookie_bytes<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    raw_pairs(headers)
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, v)| v)
}

fn chunk_name(name: &str, index: usize) -> String {
    format!("{name}.{index}")
}

/// The value stored under `name`, joined from its chunks when it was split.
pub fn read_chunked<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, str>> {
    match read_chunked_bytes(headers, name)? {
        Cow::Borrowed(bytes) => visible(bytes).map(Cow::Borrowed),
        Cow::Owned(bytes) => visible(&bytes).map(|text| Cow::Owned(text.to_owned())),
    }
}

/// [`read_chunked`] unchecked: what a cache of values already checked is looked up by.
pub fn read_chunked_bytes<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, [u8]>> {
    let base = cookie_bytes(headers, name)?;
    let Some(count) = base.strip_prefix(&[CHUNKED_MARK as u8]) else {
        // One cookie, the usual case: no copy.
        return Some(Cow::Borrowed(base));
    };
    let count: usize = std::str::from_utf8(count)
        .ok()?
        .parse()
        .ok()
        .filter(|n| (1..=MAX_CHUNKS).contains(n))?;
    let mut value = Vec::new();
    for i in 1..=count {
        value.extend_from_slice(cookie_bytes(headers, &chunk_name(name, i))?);
    }
    Some(Cow::Owned(value))
}

/// How many chunk cookies (`<name>.N`) the browser currently holds.
fn chunks_present(headers: &HeaderMap, name: &str) -> usize {
    let prefix = format!("{name}.");
    cookie_pairs(headers)
        .filter_map(|(n, _)| n.strip_prefix(&prefix)?.parse::<usize>().ok())
        .max()
        .unwrap_or(0)
}

/// Cookie attributes shared by everything the sidecar sets.
#[derive(Debug, Clone)]
pub struct CookieAttributes {
    pub secure: bool,
    pub same_site: SameSite,
    pub domain: Option<String>,
    pub path: String,
}

impl CookieAttributes {
    /// A `Set-Cookie` value; `max_age` of `None` makes a browser-session cookie.
    pub fn set(&self, name: &str, value: &str, max_age: Option<Duration>) -> String {
        self.builder(name, value, max_age).build().to_string()
    }

    pub fn clear(&self, name: &str) -> String {
        self.builder(name, "", None).removal().build().to_string()
    }

    fn builder<'c>(
        &self,
        name: &'c str,
        value: &'c str,
        max_age: Option<Duration>,
    ) -> cookie::CookieBuilder<'c> {
        let same_site = match self.same_site {
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::None => cookie::SameSite::None,
        };
        let mut builder = cookie::Cookie::build((name, value))
            .path(self.path.clone())
            .http_only(true)
            .secure(self.secure)
            .same_site(same_site);
        if let Some(domain) = &self.domain {
            builder = builder.domain(domain.clone());
        }
        if let Some(age) = max_age {
            builder = builder.max_age(cookie::time::Duration::seconds(age.as_secs() as i64));
        }
        builder
    }

    /// `Set-Cookie` values storing `value` under `name`, split into chunks when large, and
    /// clearing chunks of an earlier, longer value that would otherwise linger.
    pub fn set_chunked(
        &self,
        headers: &HeaderMap,
        name: &str,
        value: &str,
        max_age: Option<Duration>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let used = if value.len() <= MAX_CHUNK {
            out.push(self.set(name, value, max_age));
            0
        } else {
            // Sealed values are base64url, so splitting at any byte keeps chunks ASCII.
            let pieces: Vec<&str> = value
                .as_bytes()
                .chunks(MAX_CHUNK)
                .map(|c| std::str::from_utf8(c).unwrap_or(""))
                .collect();
            out.push(self.set(name, &format!("{CHUNKED_MARK}{}", pieces.len()), max_age));
            for (i, piece) in pieces.iter().enumerate() {
                out.push(self.set(&chunk_name(name, i + 1), piece, max_age));
            }
            pieces.len()
        };
        for stale in used + 1..=chunks_present(headers, name).min(MAX_CHUNKS * 4) {
            out.push(self.clear(&chunk_name(name, stale)));
        }
        out
    }

    /// `Set-Cookie` values removing `name` and all its chunks.
    pub fn clear_chunked(&self, headers: &HeaderMap, name: &str) -> Vec<String> {
        let mut out = vec![self.clear(name)];
        for i in 1..=chunks_present(headers, name).min(MAX_CHUNKS * 4) {
            out.push(self.clear(&chunk_name(name, i)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn attrs() -> CookieAttributes {
        CookieAttributes {
            secure: true,
            same_site: SameSite::Lax,
            domain: None,
            path: "/".into(),
        }
    }

    /// What a browser would send back after receiving `set_cookies`.
    fn browser_sends(set_cookies: &[String]) -> HeaderMap {
        let pairs: Vec<String> = set_cookies
            .iter()
            .filter(|c| !c.contains("Max-Age=0"))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_str(&pairs.join("; ")).unwrap(),
        );
        headers
    }

    #[test]
    fn attributes() {
        let c = attrs().set("s", "v", Some(Duration::from_secs(60)));
        for part in [
            "s=v",
            "Path=/",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Max-Age=60",
        ] {
            assert!(c.split("; ").any(|p| p == part), "{part} missing in {c}");
        }
        let cleared = attrs().clear("s");
        assert!(
            cleared.starts_with("s=;") && cleared.contains("Max-Age=0"),
            "{cleared}"
        );
    }

    #[test]
    fn small_values_use_one_cookie() {
        let set = attrs().set_chunked(&HeaderMap::new(), "s", "abc", None);
        assert_eq!(set.len(), 1);
        assert_eq!(
            read_chunked(&browser_sends(&set), "s").as_deref(),
            Some("abc")
        );
    }

    #[test]
    fn large_values_are_chunked_and_joined() {
        let value = "x".repeat(MAX_CHUNK * 2 + 5);
        let set = attrs().set_chunked(&HeaderMap::new(), "s", &value, None);
        assert_eq!(set.len(), 4);
        assert!(set.iter().all(|c| c.len() < 4096));
        assert_eq!(
            read_chunked(&browser_sends(&set), "s").as_deref(),
            Some(value.as_str())
        );
    }

    #[test]
    fn stale_chunks_are_cleared() {
        let big = attrs().set_chunked(&HeaderMap::new(), "s", &"x".repeat(MAX_CHUNK * 3), None);
        let had = browser_sends(&big);
        let small = attrs().set_chunked(&had, "s", "tiny", None);
        assert_eq!(small.len(), 4, "base + 3 cleared chunks: {small:?}");
        assert!(small[1..].iter().all(|c| c.contains("Max-Age=0")));
    }

    #[test]
    fn a_value_that_is_not_visible_ascii_reads_as_nothing_and_hides_no_other() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_bytes(b"a=caf\xc3\xa9; s=\"abc\"; b=x\x80y").unwrap(),
        );
        assert_eq!(cookie(&headers, "a"), None);
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(cookie(&headers, "s"), Some("abc"));
        let pairs: Vec<_> = cookie_pairs(&headers).collect();
        assert_eq!(pairs, [("s", "abc")]);
    }

    #[test]
    fn missing_or_bogus_chunks_read_as_nothing() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_static("s=~2; s.1=abc"),
        );
        assert_eq!(read_chunked(&headers, "s"), None);
        headers.insert(http::header::COOKIE, HeaderValue::from_static("s=~99999"));
        assert_eq!(read_chunked(&headers, "s"), None);
    }
}
