//! The `rd` return path: a path on this site, or (forward-auth, several hosts under one
//! cookie domain) a URL on a host a route names; never another origin.

use url::Url;

/// A base that no real request uses; anything resolving elsewhere is off-site.
const BASE: &str = "http://sidecar.invalid/";

/// Returns `rd` when it is a same-origin path, else `/`. Rejects protocol-relative URLs
/// (`//evil`), absolute URLs, backslash tricks (`/\evil`), control characters, and the same
/// after percent-decoding, and paths under the sidecar's own prefix (which would loop).
pub fn safe_return_path(rd: Option<&str>, own_prefix: &str) -> String {
    rd.and_then(|rd| check(rd, own_prefix))
        .unwrap_or_else(|| "/".to_owned())
}

/// Like [`safe_return_path`], and also an absolute `http(s)` URL whose host is one of
/// `hosts` (canonical: lower-case, no trailing dot), without user info.
pub fn safe_return_target(rd: Option<&str>, own_prefix: &str, hosts: &[String]) -> String {
    match rd.and_then(|rd| on_named_host(rd, own_prefix, hosts)) {
        Some(url) => url,
        None => safe_return_path(rd, own_prefix),
    }
}

fn on_named_host(rd: &str, own_prefix: &str, hosts: &[String]) -> Option<String> {
    if hosts.is_empty()
        || rd
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    let url = Url::parse(rd).ok()?;
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let allowed = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && hosts.contains(&host);
    if !allowed {
        return None;
    }
    // The path is held to the same rules as a bare return path.
    let mut path_and_query = url.path().to_owned();
    if let Some(query) = url.query() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    check(&path_and_query, own_prefix)?;
    Some(url.to_string())
}

fn check(rd: &str, own_prefix: &str) -> Option<String> {
    let base = Url::parse(BASE).ok()?;
    let url = on_site(rd, &base)?;
    // Decoded forms must be safe too: some servers and browsers decode before resolving.
    let mut decoded = rd.to_owned();
    for _ in 0..3 {
        let next = percent_decode(&decoded)?;
        // Only the path decides where a URL leads; a decoded query may hold spaces.
        let path_part = next.split(['?', '#']).next().unwrap_or_default();
        on_site(path_part, &base)?;
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let mut out = url.path().to_owned();
    if out.starts_with(own_prefix)
        && out[own_prefix.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == '/')
    {
        return None;
    }
    if let Some(query) = url.query() {
        out.push('?');
        out.push_str(query);
    }
    if let Some(fragment) = url.fragment() {
        out.push('#');
        out.push_str(fragment);
    }
    Some(out)
}

/// `path` resolved against `base`, if it is a plain path before and after resolving: dot
/// segments can turn `/.//evil.example` into `//evil.example`, which a browser would take
/// for another host.
fn on_site(path: &str, base: &Url) -> Option<Url> {
    if !is_plain_path(path) {
        return None;
    }
    let url = base.join(path).ok()?;
    (url.origin() == base.origin() && is_plain_path(url.path())).then_some(url)
}

fn is_plain_path(s: &str) -> bool {
    s.starts_with('/')
        && !s.starts_with("//")
        && !s.contains('\\')
        && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(rd: &str) -> String {
        safe_return_path(Some(rd), "/oauth2")
    }

    #[test]
    fn same_origin_paths_are_kept() {
        assert_eq!(
            safe("/account/orders?page=2#top"),
            "/account/orders?page=2#top"
        );
        assert_eq!(
            safe("/INTERSHOP/web/WFS/SLDSystem/en_US/-/-/ViewApplication-Login"),
            "/INTERSHOP/web/WFS/SLDSystem/en_US/-/-/ViewApplication-Login"
        );
        assert_eq!(safe("/a/../b"), "/b");
        assert_eq!(safe("/search?q=red%20shoes"), "/search?q=red%20shoes");
        assert_eq!(safe_return_path(None, "/oauth2"), "/");
    }

    #[test]
    fn off_site_targets_fall_back_to_root() {
        for rd in [
            "//evil.example",
            "//evil.example/path",
            "https://evil.example",
            "http:evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%255C%255Cevil.example",
            "/\tevil",
            "/ /evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/%0d%0aSet-Cookie:x=y",
            "/oauth2/start",
            "/oauth2",
            // Found by the return_path fuzz target: dot segments that resolve to `//host`.
            "/.//a{*cou.%2>Eeor",
            "/.//evil.example",
            "/..//evil.example/x",
            "/a/..//evil.example",
            "/%2e//evil.example",
            "/.%2F%2Fevil.example",
        ] {
            assert_eq!(safe(rd), "/", "{rd:?}");
        }
    }

    #[test]
    fn urls_only_on_hosts_a_route_names() {
        let hosts = [
            "shop.example".to_owned(),
            "backoffice.shop.example".to_owned(),
        ];
        let target = |rd: &str| safe_return_target(Some(rd), "/oauth2", &hosts);
        assert_eq!(
            target("https://backoffice.shop.example/orders?x=1"),
            "https://backoffice.shop.example/orders?x=1"
        );
        assert_eq!(target("https://SHOP.example./a"), "https://shop.example./a");
        assert_eq!(target("/local"), "/local");
        for rd in [
            "https://evil.example/",
            "https://shop.example.evil.example/",
            "https://user@shop.example/",
            "javascript://shop.example/%0aalert(1)",
            "ftp://shop.example/",
            "https://shop.example/oauth2/start",
            "https://shop.example\\@evil.example/",
            "https://shop.example/\tx",
        ] {
            assert_eq!(target(rd), "/", "{rd:?}");
        }
        assert_eq!(
            safe_return_target(Some("https://shop.example/"), "/oauth2", &[]),
            "/"
        );
    }

    #[test]
    fn own_prefix_lookalikes_are_fine() {
        assert_eq!(safe("/oauth2x/page"), "/oauth2x/page");
    }
}
