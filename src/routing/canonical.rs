//! The one path a request is judged by. nginx, Tomcat and Rack normalise a path before they
//! serve it (`/static/../admin` is `/admin` to them), so a gate that matched the raw path
//! could send a protected page out as public. Routing, the own-endpoint check and the
//! upstream request therefore all use the path this module makes:
//!
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, so `%2e`
//!   is a dot; other encodings stay encoded (hex upper-cased);
//! - repeated slashes are merged;
//! - dot segments are resolved (RFC 3986 §5.2.4), including Tomcat's `..;param` form;
//! - an encoded `/` or `\`, a raw `\`, NUL or any control character, or a `..` that would
//!   climb above `/`, is refused: no backend agrees on what those mean.
//!
//! The query is not part of this; it is forwarded as sent.

use std::borrow::Cow;

/// Why a request path cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with '/'")]
    NotAbsolute,
    #[error("the path contains an encoded '/' or '\\'")]
    EncodedSeparator,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains a control character")]
    ControlCharacter,
    #[error("the path contains a malformed percent-encoding")]
    BadEncoding,
    #[error("the path climbs above the root")]
    AboveRoot,
}

/// The canonical form of a request path (without the query).
///
/// Paths that are already canonical, which is nearly all of them, are returned borrowed.
pub fn canonical_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        // `OPTIONS *` and authority-form targets have no path to route.
        return Err(PathError::NotAbsolute);
    }
    if is_plain(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out: Vec<String> = Vec::new();
    let segments: Vec<&str> = raw[1..].split('/').collect();
    let last = segments.len() - 1;
    // A path ending in a dot segment or a slash ends in a slash after resolution.
    let mut trailing_slash = false;
    for (i, segment) in segments.iter().enumerate() {
        let decoded = decode_segment(segment)?;
        if decoded.is_empty() {
            // `//` merged; the final empty segment is the trailing slash.
            trailing_slash = i == last;
            continue;
        }
        match dot_segment(&decoded) {
            Some(Dot::Current) => trailing_slash = i == last,
            Some(Dot::Parent) => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = i == last;
            }
            None => {
                out.push(decoded);
                trailing_slash = false;
            }
        }
    }
    let mut path = String::with_capacity(raw.len());
    for segment in &out {
        path.push('/');
        path.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(Cow::Owned(path))
}

/// The path routes are matched against: the canonical path with each segment's
/// `;parameters` removed, as Tomcat ignores them (`/WFS;x/SLDSystem` is `/WFS/SLDSystem`).
pub fn routing_path(canonical: &str) -> Cow<'_, str> {
    if !canonical.contains(';') {
        return Cow::Borrowed(canonical);
    }
    // A segment that is only parameters (`/;x/admin/`) is empty to Tomcat, which then
    // merges the slashes around it: it goes here too, or `/admin/` would not match.
    let mut path = String::with_capacity(canonical.len());
    let mut ends_with_slash = false;
    for segment in canonical.split('/').skip(1) {
        let name = segment.split_once(';').map_or(segment, |(name, _)| name);
        ends_with_slash = name.is_empty();
        if !name.is_empty() {
            path.push('/');
            path.push_str(name);
        }
    }
    if ends_with_slash || path.is_empty() {
        path.push('/');
    }
    Cow::Owned(path)
}

/// True when nothing in the path can change under canonicalisation.
fn is_plain(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut previous = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' | b'\\' | b';' => return false,
            b'/' if previous == b'/' => return false,
            // `/.` starts a possible dot segment (`/.`, `/..`, `/.x` is fine but rare).
            b'.' if previous == b'/' => {
                let rest = &bytes[i + 1..];
                if rest.is_empty() || rest[0] == b'/' || rest[0] == b'.' {
                    return false;
                }
            }
            b if b < 0x20 || b == 0x7f => return false,
            _ => {}
        }
        previous = b;
    }
    true
}

enum Dot {
    Current,
    Parent,
}

/// `.` and `..`, also with Tomcat path parameters (`..;jsessionid=x`).
fn dot_segment(decoded: &str) -> Option<Dot> {
    let name = decoded.split_once(';').map_or(decoded, |(name, _)| name);
    match name {
        "." => Some(Dot::Current),
        ".." => Some(Dot::Parent),
        _ => None,
    }
}

/// Decodes the unreserved characters of one segment and checks the rest.
fn decode_segment(segment: &str) -> Result<String, PathError> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
                let value = hex_value(hex[0])
                    .zip(hex_value(hex[1]))
                    .map(|(hi, lo)| hi << 4 | lo)
                    .ok_or(PathError::BadEncoding)?;
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    v if v < 0x20 || v == 0x7f => return Err(PathError::ControlCharacter),
                    v if is_unreserved(v) => out.push(char::from(v)),
                    v => {
                        out.push('%');
                        out.push(char::from(HEX[usize::from(v >> 4)]));
                        out.push(char::from(HEX[usize::from(v & 0xf)]));
                    }
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Backslash),
            b if b < 0x20 || b == 0x7f => return Err(PathError::ControlCharacter),
            _ => {}
        }
        // Copy the run of ordinary characters up to the next one that needs a look; a
        // run never splits a UTF-8 sequence as all the stops are ASCII.
        let start = i;
        while i < bytes.len() && !matches!(bytes[i], b'%' | b'\\' | 0..=0x1f | 0x7f) {
            i += 1;
        }
        out.push_str(&segment[start..i]);
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricky_paths() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/", Ok("/")),
            ("/shop/cart", Ok("/shop/cart")),
            ("/shop/.well-known/x", Ok("/shop/.well-known/x")),
            ("/a/.hidden", Ok("/a/.hidden")),
            (
                "/INTERSHOP/static/../web/WFS/SLDSystem/x",
                Ok("/INTERSHOP/web/WFS/SLDSystem/x"),
            ),
            (
                "/INTERSHOP/static/%2e%2e/web/WFS/SLDSystem",
                Ok("/INTERSHOP/web/WFS/SLDSystem"),
            ),
            (
                "/INTERSHOP/static/.%2e/web/WFS/SLDSystem",
                Ok("/INTERSHOP/web/WFS/SLDSystem"),
            ),
            (
                "/INTERSHOP/static/%2E./web/WFS/SLDSystem",
                Ok("/INTERSHOP/web/WFS/SLDSystem"),
            ),
            (
                "/INTERSHOP/static/..;x=1/web/WFS/SLDSystem",
                Ok("/INTERSHOP/web/WFS/SLDSystem"),
            ),
            (
                "/INTERSHOP/static//../web/WFS/SLDSystem",
                Ok("/INTERSHOP/web/WFS/SLDSystem"),
            ),
            ("/static/./admin", Ok("/static/admin")),
            ("//admin", Ok("/admin")),
            ("/a//b///c", Ok("/a/b/c")),
            ("/a/b/..", Ok("/a/")),
            ("/a/b/.", Ok("/a/b/")),
            ("/a/b/", Ok("/a/b/")),
            ("/a/..", Ok("/")),
            ("/%7Euser/%41", Ok("/~user/A")),
            ("/caf%c3%a9", Ok("/caf%C3%A9")),
            ("/a%20b", Ok("/a%20b")),
            ("/a%3Bb", Ok("/a%3Bb")),
            ("/a;jsessionid=1/b", Ok("/a;jsessionid=1/b")),
            ("/static/..%2fadmin", Err(PathError::EncodedSeparator)),
            ("/static/..%2Fadmin", Err(PathError::EncodedSeparator)),
            ("/static/..%5cadmin", Err(PathError::EncodedSeparator)),
            ("/static/..\\admin", Err(PathError::Backslash)),
            ("/a%00b", Err(PathError::ControlCharacter)),
            ("/a%0d%0ab", Err(PathError::ControlCharacter)),
            ("/a%7fb", Err(PathError::ControlCharacter)),
            ("/a\tb", Err(PathError::ControlCharacter)),
            ("/..", Err(PathError::AboveRoot)),
            ("/a/../..", Err(PathError::AboveRoot)),
            ("/%2e%2e/etc/passwd", Err(PathError::AboveRoot)),
            ("/a%2", Err(PathError::BadEncoding)),
            ("/a%zz", Err(PathError::BadEncoding)),
            ("*", Err(PathError::NotAbsolute)),
            ("", Err(PathError::NotAbsolute)),
        ];
        for (raw, want) in cases {
            let got = canonical_path(raw);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "for {raw:?}");
        }
    }

    #[test]
    fn plain_paths_are_borrowed() {
        for path in ["/", "/shop/cart", "/a/.hidden", "/a/b.c/d", "/x-y_z~"] {
            assert!(
                matches!(canonical_path(path), Ok(Cow::Borrowed(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn routing_ignores_path_parameters() {
        assert_eq!(
            routing_path("/INTERSHOP/web/WFS;pgid=1/SLDSystem/x;a=b"),
            "/INTERSHOP/web/WFS/SLDSystem/x"
        );
        assert_eq!(routing_path("/plain"), "/plain");
        assert_eq!(routing_path("/;x/admin/"), "/admin/");
        assert_eq!(routing_path("/admin/;x"), "/admin/");
        assert_eq!(routing_path("/;jsessionid=1"), "/");
        assert_eq!(routing_path("/a;x/b;y"), "/a/b");
    }
}
