//! Turns the raw file into a [`Config`], collecting every problem on the way.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;
use serde_path_to_error::Segment;
use toml::de::{DeArray, DeTable, DeValue};
use url::Url;

use super::error::Problem;
use super::model::*;
use super::raw::{self, RawConfig, RawIdentityProvider, RawOrganization, RawRoute};
use super::{defaults, duration, secret};

/// The IdP key ICM uses for "the backend's own login" when an organization lists none.
const IMPLICIT_LOCAL_IDP: &str = "local";

// The checks of each section; this file holds the entry point and the shared helpers.
mod backends;
mod identity_providers;
mod limits;
mod organizations;
mod pages;
mod routes;
mod server;
mod session;
mod store;

pub fn validate(text: &str, file: &Path) -> Result<Config, Vec<Problem>> {
    let (raw, unknown_keys) = parse(text)?;
    let mut v = Validator {
        problems: unknown_keys,
        warnings: Vec::new(),
        secret_expiry_warning: chrono::Duration::days(30),
    };
    let config = v.config(raw, file);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        Err(v.problems)
    }
}

/// At most this many keys of the wrong type are reported; past them the file is hardly a
/// config any more.
const MAX_TYPE_ERRORS: usize = 50;

/// Parses TOML into the raw structs. A syntax error stops here; a value of the wrong type
/// is a problem of its key: the key is dropped (every raw field is optional) and reading
/// starts again, so the rest of the file is still checked. Unknown keys are collected and
/// reported together with the later problems.
fn parse(text: &str) -> Result<(RawConfig, Vec<Problem>), Vec<Problem>> {
    let mut table = DeTable::parse(text).map_err(|e| vec![toml_problem(text, "", &e)])?;
    let mut problems = Vec::new();
    for _ in 0..MAX_TYPE_ERRORS {
        let mut unknown = Vec::new();
        let mut record_unknown = |path: serde_ignored::Path| unknown.push(segments(&path));
        let deserializer = toml::de::Deserializer::from(table.clone());
        let tracking = serde_ignored::Deserializer::new(deserializer, &mut record_unknown);
        match serde_path_to_error::deserialize::<_, RawConfig>(tracking) {
            Ok(raw) => {
                problems.extend(unknown.iter().map(|path| unknown_key_problem(path)));
                return Ok((raw, problems));
            }
            Err(e) => {
                let key = e.path().to_string();
                let key = if key == "." { String::new() } else { key };
                problems.push(toml_problem(text, &key, e.inner()));
                let path: Vec<_> = e.path().iter().cloned().collect();
                if !drop_value(table.get_mut(), &path) {
                    return Err(problems);
                }
            }
        }
    }
    Err(problems)
}

/// Removes the value at `path` (as serde reported it); false when there is none to remove.
fn drop_value(table: &mut DeTable<'_>, path: &[Segment]) -> bool {
    let Some((Segment::Map { key }, rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(key.as_str()).is_some();
    }
    match table.get_mut(key.as_str()).map(|v| v.get_mut()) {
        Some(DeValue::Table(inner)) => drop_value(inner, rest),
        Some(DeValue::Array(items)) => drop_from_array(items, rest),
        _ => false,
    }
}

fn drop_from_array(items: &mut DeArray<'_>, path: &[Segment]) -> bool {
    let Some((Segment::Seq { index }, rest)) = path.split_first() else {
        return false;
    };
    let index = *index;
    if index >= items.len() {
        return false;
    }
    if rest.is_empty() {
        let all = std::mem::replace(items, std::iter::empty().collect());
        *items = all
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| (i != index).then_some(item))
            .collect();
        return true;
    }
    match items.get_mut(index).map(|v| v.get_mut()) {
        Some(DeValue::Table(inner)) => drop_value(inner, rest),
        Some(DeValue::Array(inner)) => drop_from_array(inner, rest),
        _ => false,
    }
}

fn toml_problem(text: &str, key: &str, error: &toml::de::Error) -> Problem {
    let location = error.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!(" (line {line}, column {column})")
    });
    Problem::new(
        key,
        format!("{}{}", error.message().trim(), location.unwrap_or_default()),
    )
}

fn segments(path: &serde_ignored::Path) -> Vec<String> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => {
            let mut v = segments(parent);
            v.push(index.to_string());
            v
        }
        Path::Map { parent, key } => {
            let mut v = segments(parent);
            v.push(key.clone());
            v
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    }
}

fn unknown_key_problem(path: &[String]) -> Problem {
    let Some((name, table)) = path.split_last() else {
        return Problem::new("", "unknown key");
    };
    let known = raw::known_keys(table);
    let suggestion = known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    Problem::new(key_path(path), format!("unknown key{suggestion}"))
}

/// `routes.2.auth` → `routes[2].auth`.
fn key_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment.chars().all(|c| c.is_ascii_digit()) && !out.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

struct Validator {
    problems: Vec<Problem>,
    warnings: Vec<String>,
    /// `oidc.secret_expiry_warning`, read before the IdPs whose secrets it concerns.
    secret_expiry_warning: chrono::Duration,
}

impl Validator {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(key, message));
    }

    fn config(&mut self, raw: RawConfig, file: &Path) -> Config {
        let server = self.server(raw.server.unwrap_or_default());
        let admin = self.admin(raw.admin.unwrap_or_default());
        // Port 0 takes a free port each: two of them never clash.
        if admin.listen == server.listen && server.listen.port() != 0 {
            self.problem("admin.listen", "must differ from server.listen");
        }
        let oidc = self.oidc(raw.oidc.unwrap_or_default());
        let session = self.session(raw.session.unwrap_or_default());
        if session.cookie_name == oidc.state_cookie_name {
            self.problem(
                "session.cookie_name",
                "must differ from oidc.state_cookie_name",
            );
        }
        let headers = self.headers(raw.headers.unwrap_or_default());
        let log = self.log(raw.log.unwrap_or_default());
        let commercetools = raw.commercetools.and_then(|ct| self.commercetools(ct));
        let backend = self.backend(raw.backend.unwrap_or_default());
        let limits = self.limits(raw.limits.unwrap_or_default());
        let store = self.store(raw.store.unwrap_or_default());
        if store.redis.is_none() && store.path.is_none() && oidc.remote {
            // Sessions come from OpenID Connect sign-ins; their logouts live in memory.
            self.warnings.push(
                "store.path is not set: without Redis, revocations (logouts) live in memory, and a restart forgets them; set store.path to a file on a volume".to_owned(),
            );
        }
        let raw_idps = raw.identity_providers.unwrap_or_default();
        let pages = self.pages(raw.pages.unwrap_or_default());
        let ssf_transmitters = self.ssf_transmitters(raw.ssf.and_then(|s| s.transmitters));
        // IdPs with problems of their own are left out of the config but still count as
        // defined, so an organization naming one gets no second, misleading error.
        let declared_idps: Vec<String> = raw_idps.keys().cloned().collect();
        let identity_providers = self.identity_providers(raw_idps);
        self.note_shared_issuers(&identity_providers);
        let organizations = self.organizations(
            raw.organizations.unwrap_or_default(),
            &identity_providers,
            &declared_idps,
            oidc.remote,
        );
        self.note_open_organizations(&organizations, &identity_providers);
        let routes = self.routes(
            raw.routes.unwrap_or_default(),
            &organizations,
            &oidc.path_prefix,
        );

        self.note_page_hosts(&pages, &routes);
        self.check_no_login_loops(
            &organizations,
            &identity_providers,
            &routes,
            server.public_url.as_ref(),
        );
        let uses_oidc = oidc.remote && identity_providers.values().any(|idp| idp.oidc().is_some());
        if uses_oidc && server.public_url.is_none() {
            self.problem(
                "server.public_url",
                "required when OpenID Connect identity providers are configured (it is the origin of the redirect URI)",
            );
        }
        if store.redis.is_some()
            && headers
                .assertion
                .as_ref()
                .is_some_and(|a| a.keys.is_empty())
        {
            self.warnings.push(
                "headers.assertion_keys is not set: each replica signs X-SSO-Assertion with a key of its own, so a backend must fetch /oauth2/jwks from every replica; set the same keys on all".to_owned(),
            );
        }
        if headers.forward_access_token {
            for (key, _) in
                (identity_providers.iter()).filter(|(_, idp)| idp.oidc().is_some_and(|o| o.dpop))
            {
                self.warnings.push(format!(
                    "headers.forward_access_token: the access tokens of identity_providers.{key} are DPoP-bound (dpop = true) and are never forwarded: a bearer token bound to the sidecar's key is of no use to the upstream"
                ));
            }
        }
        if !oidc.remote && identity_providers.values().any(|idp| idp.oidc().is_some()) {
            self.warnings.push(
                "oidc.remote is \"unsupported\": only local identity providers are offered"
                    .to_owned(),
            );
        }
        Config {
            source: file.to_owned(),
            server,
            admin,
            oidc,
            session,
            headers,
            log,
            commercetools,
            backend,
            limits,
            store,
            pages,
            ssf_transmitters,
            identity_providers,
            organizations,
            routes,
            warnings: std::mem::take(&mut self.warnings),
        }
    }

    /// `[[ssf.transmitters]]`: each with an issuer, an `https://` (or loopback) JWKS URL
    /// and the audience its events name.
    fn ssf_transmitters(&mut self, raw: Option<Vec<raw::RawTransmitter>>) -> Vec<SsfTransmitter> {
        let mut transmitters = Vec::new();
        for (i, raw) in raw.unwrap_or_default().into_iter().enumerate() {
            let at = format!("ssf.transmitters[{i}]");
            let issuer = raw.issuer.filter(|s| !s.is_empty());
            if issuer.is_none() {
                self.problem(format!("{at}.issuer"), "missing (the `iss` of its events)");
            }
            let audience = raw.audience.filter(|s| !s.is_empty());
            if audience.is_none() {
                self.problem(
                    format!("{at}.audience"),
                    "missing (the `aud` its events name for this receiver)",
                );
            }
            let jwks_uri = match raw.jwks_uri.as_deref().map(Url::parse) {
                Some(Ok(url))
                    if url.scheme() == "https"
                        || (url.scheme() == "http"
                            && matches!(
                                url.host_str(),
                                Some("127.0.0.1" | "localhost" | "[::1]")
                            )) =>
                {
                    Some(url)
                }
                Some(_) => {
                    self.problem(
                        format!("{at}.jwks_uri"),
                        "must be an https:// URL (http only on loopback)",
                    );
                    None
                }
                None => {
                    self.problem(
                        format!("{at}.jwks_uri"),
                        "missing (where its signing keys are)",
                    );
                    None
                }
            };
            if let (Some(issuer), Some(jwks_uri), Some(audience)) = (issuer, jwks_uri, audience) {
                transmitters.push(SsfTransmitter {
                    issuer,
                    jwks_uri,
                    audience,
                });
            }
        }
        transmitters
    }

    fn duration(&mut self, key: &str, value: Option<toml::Value>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(value) => duration::parse(&value).unwrap_or_else(|e| {
                self.problem(key, e);
                default
            }),
        }
    }

    /// Several durations of one section at once: (key, value, default) each.
    fn durations<const N: usize>(
        &mut self,
        keys: [(&str, Option<toml::Value>, Duration); N],
    ) -> [Duration; N] {
        keys.map(|(key, value, default)| self.duration(key, value, default))
    }

    /// A whole number within `range` (inclusive), `default` when not set.
    fn bounded(
        &mut self,
        key: &str,
        value: Option<i64>,
        default: usize,
        range: (usize, usize),
    ) -> usize {
        match value {
            None => default,
            Some(n) if n >= range.0 as i64 && n <= range.1 as i64 => n as usize,
            Some(_) => {
                self.problem(key, format!("must be between {} and {}", range.0, range.1));
                default
            }
        }
    }

    fn secret(&mut self, key: &str, reference: &str) -> Option<secret::Secret> {
        secret::resolve(reference)
            .map_err(|e| self.problem(key, e))
            .ok()
    }

    /// A secret that must be set; when it is not, the problem is `missing (<hint>)`.
    fn required_secret(
        &mut self,
        key: &str,
        reference: Option<&str>,
        hint: &str,
    ) -> Option<secret::Secret> {
        match reference {
            Some(reference) => self.secret(key, reference),
            None => {
                self.problem(key, format!("missing ({hint})"));
                None
            }
        }
    }

    fn socket_addr(&mut self, key: &str, value: Option<&str>, default: &str) -> SocketAddr {
        let text = value.unwrap_or(default);
        text.parse().unwrap_or_else(|_| {
            self.problem(
                key,
                format!("\"{text}\" is not a listen address such as \"0.0.0.0:8080\""),
            );
            default.parse().expect("default listen addresses parse")
        })
    }

    fn ip_net(&mut self, key: &str, text: &str) -> Option<IpNet> {
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                self.problem(
                    key,
                    format!("\"{text}\" is not an IP address or CIDR range"),
                )
            })
            .ok()
    }

    fn cookie_name(&mut self, key: &str, value: Option<String>, default: &str) -> String {
        match value {
            None => default.to_owned(),
            Some(name) if !name.is_empty() && name.bytes().all(is_header_name_byte) => name,
            Some(_) => {
                self.problem(
                    key,
                    "not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)",
                );
                default.to_owned()
            }
        }
    }

    /// A site path (`/login`) or an absolute http(s) URL.
    fn path_or_url(&mut self, key: &str, value: Option<String>) -> Option<String> {
        let url = value?;
        if url.starts_with('/') && !url.starts_with("//") {
            return Some(url);
        }
        match Url::parse(&url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Some(url),
            _ => {
                self.problem(key, "must be a path such as \"/login\" or an http(s) URL");
                None
            }
        }
    }

    /// The value of a one-word key: `default` when not set; `None`, with the problem, when
    /// the word is not one of the allowed.
    fn choice<T: Choice>(&mut self, key: &str, text: Option<&str>, default: T) -> Option<T> {
        let Some(text) = text else {
            return Some(default);
        };
        let found = T::parse(text);
        if found.is_none() {
            self.problem(key, format!("\"{text}\" is not one of {}", T::listed()));
        }
        found
    }

    fn bad_enum(&mut self, key: &str, value: &str, allowed: &[&str]) {
        let list = allowed
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        self.problem(key, format!("\"{value}\" is not one of {list}"));
    }
}

impl Validator {
    /// The backend's own login page (and where a logout lands) must be reachable without a
    /// session, or the sidecar sends the browser back to its login, which sends it there
    /// again: a loop.
    fn check_no_login_loops(
        &mut self,
        orgs: &BTreeMap<String, Organization>,
        idps: &BTreeMap<String, IdentityProvider>,
        routes: &[Route],
        public_url: Option<&Url>,
    ) {
        for org in orgs.values() {
            // Only an organization that offers `local` (or nothing else) sends users there.
            let offers_local = org.identity_providers.iter().any(|k| {
                idps.get(k)
                    .map_or(k == IMPLICIT_LOCAL_IDP, |idp| idp.is_local())
            });
            let targets = [
                (
                    "local_login_url",
                    Some(&org.local_login_url).filter(|_| offers_local),
                ),
                ("post_logout_url", org.post_logout_url.as_ref()),
            ];
            for (name, target) in targets {
                let Some((host, path)) = target.and_then(|t| own_target(t, public_url)) else {
                    continue;
                };
                let auth = routes
                    .iter()
                    .find(|r| {
                        path.starts_with(&r.path_prefix)
                            && r.host.as_deref().is_none_or(|h| host.as_deref() == Some(h))
                    })
                    .map_or(AuthMode::Required, |r| r.auth);
                if auth.needs_sign_in() {
                    self.problem(
                        format!("organizations.{}.{name}", org.key),
                        format!(
                            "{path} is answered by a{} {} route, which sends users without a session back to the sign-in: a loop; add an \"optional\" (or \"public\") route for it before that one",
                            if auth == AuthMode::Api { "n" } else { "" },
                            auth.as_str()
                        ),
                    );
                }
            }
        }
    }
}

/// The host (if named) and path of a configured target on this site; `None` for another
/// site. `{rd}` placeholders are left out.
fn own_target(target: &str, public_url: Option<&Url>) -> Option<(Option<String>, String)> {
    let target = target.replace("{rd}", "");
    if target.starts_with('/') {
        let path = target.split(['?', '#']).next().unwrap_or("/").to_owned();
        return Some((None, path));
    }
    let url = Url::parse(&target).ok()?;
    let ours = public_url.is_some_and(|p| p.origin() == url.origin());
    ours.then(|| {
        (
            url.host_str().map(str::to_ascii_lowercase),
            url.path().to_owned(),
        )
    })
}

fn shadows(earlier: &Route, later: &Route) -> bool {
    let host_covers = earlier.host.is_none() || earlier.host == later.host;
    host_covers && later.path_prefix.starts_with(&earlier.path_prefix)
}

fn suggest(name: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&name.to_lowercase(), &c.to_lowercase()),
                *c,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!(" (did you mean \"{c}\"?)"))
        .unwrap_or_default()
}

fn placeholder_upstream() -> Upstream {
    Upstream {
        url: Url::parse("http://127.0.0.1:9000/").expect("static URL"),
        tls: false,
        host: "127.0.0.1".to_owned(),
        port: 9000,
    }
}

fn is_simple_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// RFC 7230 `tchar`: what header names and cookie names may hold.
fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests;
