//! Turns the raw file into a [`Config`], collecting every problem on the way.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;
use url::Url;

use super::error::Problem;
use super::model::*;
use super::raw::{self, RawConfig, RawIdentityProvider, RawOrganization, RawRoute};
use super::{duration, secret};

/// The IdP key ICM uses for "the backend's own login" when an organization lists none.
const IMPLICIT_LOCAL_IDP: &str = "local";

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

/// Parses TOML into the raw structs. Syntax and type errors stop here (serde cannot go on
/// past them); unknown keys are collected and reported together with the later problems.
fn parse(text: &str) -> Result<(RawConfig, Vec<Problem>), Vec<Problem>> {
    let deserializer =
        toml::Deserializer::parse(text).map_err(|e| vec![toml_problem(text, "", &e)])?;
    let mut unknown = Vec::new();
    let mut record_unknown = |path: serde_ignored::Path| unknown.push(segments(&path));
    let tracking = serde_ignored::Deserializer::new(deserializer, &mut record_unknown);
    let raw: RawConfig = serde_path_to_error::deserialize(tracking).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        vec![toml_problem(text, &key, e.inner())]
    })?;
    let problems = unknown
        .iter()
        .map(|path| unknown_key_problem(path))
        .collect();
    Ok((raw, problems))
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
        if admin.listen == server.listen {
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
        let limits = raw.limits.unwrap_or_default();
        let max_header_bytes = self.bounded(
            "limits.max_header_bytes",
            limits.max_header_bytes,
            32 * 1024,
            (4 * 1024, 1024 * 1024),
        );
        let max_headers = self.bounded("limits.max_headers", limits.max_headers, 100, (16, 256));
        let max_connections = self.bounded(
            "limits.max_connections",
            limits.max_connections,
            10_000,
            (1, 10_000_000),
        );
        let max_connections_per_client = self.bounded(
            "limits.max_connections_per_client",
            limits.max_connections_per_client,
            256,
            (1, 10_000_000),
        );
        let login_requests_per_minute = match limits.login_requests_per_minute {
            None => 60,
            Some(n) if (0..=1_000_000).contains(&n) => n as u32,
            Some(_) => {
                self.problem(
                    "limits.login_requests_per_minute",
                    "must be between 0 (off) and 1000000",
                );
                60
            }
        };
        let store = self.store(raw.store.unwrap_or_default());
        let raw_idps = raw.identity_providers.unwrap_or_default();
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
            login_requests_per_minute,
            max_header_bytes,
            max_headers,
            max_connections,
            max_connections_per_client,
            store,
            identity_providers,
            organizations,
            routes,
            warnings: std::mem::take(&mut self.warnings),
        }
    }

    fn server(&mut self, raw: raw::RawServer) -> ServerConfig {
        let listen = self.socket_addr("server.listen", raw.listen.as_deref(), "0.0.0.0:8080");
        let upstream = match raw.upstream.as_deref() {
            None => {
                self.problem(
                    "server.upstream",
                    "missing (the URL of the commerce backend)",
                );
                placeholder_upstream()
            }
            Some(text) => self.upstream(text).unwrap_or_else(placeholder_upstream),
        };
        let public_url = raw
            .public_url
            .as_deref()
            .and_then(|text| self.public_url(text));
        let trusted_proxies = raw
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(i, text)| self.ip_net(&format!("server.trusted_proxies[{i}]"), text))
            .collect();
        let threads = match raw.threads {
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(n) if (1..=1024).contains(&n) => n as usize,
            Some(_) => {
                self.problem("server.threads", "must be between 1 and 1024");
                1
            }
        };
        ServerConfig {
            listen,
            upstream,
            public_url,
            trusted_proxies,
            threads,
            connect_timeout: self.duration("server.connect_timeout", raw.connect_timeout, secs(5)),
            read_timeout: self.duration("server.read_timeout", raw.read_timeout, secs(60)),
            write_timeout: self.duration("server.write_timeout", raw.write_timeout, secs(60)),
            idle_timeout: self.duration("server.idle_timeout", raw.idle_timeout, secs(60)),
            header_timeout: self.duration("server.header_timeout", raw.header_timeout, secs(15)),
            client_idle_timeout: self.duration(
                "server.client_idle_timeout",
                raw.client_idle_timeout,
                secs(60),
            ),
            tls: raw.tls.and_then(|tls| self.server_tls(tls)),
            upstream_ca: raw
                .upstream_ca
                .and_then(|reference| self.upstream_ca(&reference)),
        }
    }

    /// `server.upstream_ca`: PEM certificates, each a valid X.509 certificate.
    fn upstream_ca(&mut self, reference: &str) -> Option<Vec<Vec<u8>>> {
        use rustls::pki_types::pem::PemObject;
        let pem = self.secret("server.upstream_ca", reference)?;
        let certs: Result<Vec<Vec<u8>>, _> =
            rustls::pki_types::CertificateDer::pem_slice_iter(pem.expose().as_bytes())
                .map(|c| c.map(|c| c.to_vec()))
                .collect();
        match certs {
            Ok(certs)
                if !certs.is_empty()
                    && certs
                        .iter()
                        .all(|c| x509_parser::parse_x509_certificate(c).is_ok()) =>
            {
                Some(certs)
            }
            _ => {
                self.problem("server.upstream_ca", "not a PEM file of X.509 certificates");
                None
            }
        }
    }

    /// `server.tls = { cert = "file:…", key = "file:…" }`: both parse, the key belongs to
    /// the certificate, and an expiry within 30 days is warned about.
    fn server_tls(&mut self, raw: raw::RawTls) -> Option<crate::tls::ServerCertificate> {
        let read = |this: &mut Self, field: &str, value: Option<String>| match value {
            Some(reference) => this.secret(&format!("server.tls.{field}"), &reference),
            None => {
                this.problem(
                    format!("server.tls.{field}"),
                    format!("missing (e.g. \"file:/etc/sso-sidecar/tls/{field}.pem\")"),
                );
                None
            }
        };
        let chain = read(self, "cert", raw.cert);
        let key = read(self, "key", raw.key);
        let (chain, key) = (chain?, key?);
        match crate::tls::ServerCertificate::from_pem(chain.expose(), key.expose()) {
            Ok(certificate) => {
                let left = certificate.expires_at - chrono::Utc::now().timestamp();
                if left < 30 * 86_400 {
                    self.warnings.push(if left <= 0 {
                        "server.tls.cert: the certificate has expired".to_owned()
                    } else {
                        format!(
                            "server.tls.cert: the certificate expires in {} days",
                            left / 86_400
                        )
                    });
                }
                Some(certificate)
            }
            Err(problem) => {
                let (field, text) = problem.split_once(": ").unwrap_or(("cert", problem));
                self.problem(format!("server.tls.{field}"), text);
                None
            }
        }
    }

    fn upstream(&mut self, text: &str) -> Option<Upstream> {
        let key = "server.upstream";
        let url = match Url::parse(text) {
            Ok(url) => url,
            Err(e) => {
                self.problem(key, format!("not a URL ({e})"));
                return None;
            }
        };
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                self.problem(key, format!("scheme must be http or https, not {other}"));
                return None;
            }
        };
        if url.path() != "/" || url.query().is_some() {
            self.problem(
                key,
                "must be an origin without path or query (requests keep their own path)",
            );
        }
        let Some(host) = url.host_str() else {
            self.problem(key, "has no host");
            return None;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        Some(Upstream {
            tls,
            host,
            port,
            url,
        })
    }

    fn public_url(&mut self, text: &str) -> Option<Url> {
        let key = "server.public_url";
        match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                if url.path() != "/" {
                    self.problem(
                        key,
                        "must be an origin such as https://shop.example.com, without a path",
                    );
                }
                Some(url)
            }
            Ok(_) => {
                self.problem(key, "must be an http or https URL with a host");
                None
            }
            Err(e) => {
                self.problem(key, format!("not a URL ({e})"));
                None
            }
        }
    }

    fn admin(&mut self, raw: raw::RawAdmin) -> AdminConfig {
        AdminConfig {
            listen: self.socket_addr("admin.listen", raw.listen.as_deref(), "127.0.0.1:9090"),
        }
    }

    fn oidc(&mut self, raw: raw::RawOidc) -> OidcConfig {
        let remote = match raw.remote.as_deref() {
            None => false,
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "supported" => true,
                "unsupported" => false,
                _ => {
                    self.bad_enum("oidc.remote", text, &["supported", "unsupported"]);
                    false
                }
            },
        };
        let state_cookie_name = self.cookie_name(
            "oidc.state_cookie_name",
            raw.state_cookie_name,
            "oidc_state",
        );
        let path_prefix = match raw.path_prefix {
            None => "/oauth2".to_owned(),
            Some(p) if p.starts_with('/') && p.len() > 1 && !p.ends_with('/') => p,
            Some(_) => {
                self.problem(
                    "oidc.path_prefix",
                    "must start with / and not end with / (e.g. \"/oauth2\")",
                );
                "/oauth2".to_owned()
            }
        };
        OidcConfig {
            remote,
            jwk_cache_lifetime: self.duration(
                "oidc.jwk_cache_lifetime",
                raw.jwk_cache_lifetime,
                secs(3600),
            ),
            max_clock_skew: self.duration("oidc.max_clock_skew", raw.max_clock_skew, secs(60)),
            min_access_token_lifetime_left: self.duration(
                "oidc.min_access_token_lifetime_left",
                raw.min_access_token_lifetime_left,
                secs(180),
            ),
            state_cookie_name,
            accept_unsigned_tokens: raw.accept_unsigned_tokens.unwrap_or(false),
            path_prefix,
            http_timeout: self.duration("oidc.http_timeout", raw.http_timeout, secs(10)),
            secret_expiry_warning: {
                let warning = self.duration(
                    "oidc.secret_expiry_warning",
                    raw.secret_expiry_warning,
                    secs(30 * 24 * 3600),
                );
                self.secret_expiry_warning =
                    chrono::Duration::from_std(warning).unwrap_or(chrono::Duration::MAX);
                warning
            },
        }
    }

    fn session(&mut self, raw: raw::RawSession) -> SessionConfig {
        let cookie_name = self.cookie_name("session.cookie_name", raw.cookie_name, "_sso_session");
        let keys = match raw.keys {
            None => {
                self.problem(
                    "session.keys",
                    "missing (generate one with `sso-sidecar keygen`)",
                );
                Vec::new()
            }
            Some(list) if list.is_empty() => {
                self.problem(
                    "session.keys",
                    "needs at least one key (generate one with `sso-sidecar keygen`)",
                );
                Vec::new()
            }
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, reference)| {
                    self.session_key(&format!("session.keys[{i}]"), reference)
                })
                .collect(),
        };
        let same_site = match raw
            .same_site
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("lax") => SameSite::Lax,
            Some("strict") => SameSite::Strict,
            Some("none") => SameSite::None,
            Some(_) => {
                self.bad_enum(
                    "session.same_site",
                    raw.same_site.as_deref().unwrap_or(""),
                    &["Lax", "Strict", "None"],
                );
                SameSite::Lax
            }
        };
        let secure = raw.secure.unwrap_or(true);
        if same_site == SameSite::None && !secure {
            self.problem(
                "session.same_site",
                "\"None\" requires session.secure = true (browsers drop such cookies)",
            );
        }
        if !secure {
            self.warnings
                .push("session.secure = false: cookies are sent over plain HTTP".to_owned());
        }
        let max_age = self.duration("session.max_age", raw.max_age, secs(12 * 3600));
        if max_age.is_zero() {
            self.problem("session.max_age", "must be longer than zero");
        }
        let idle_timeout = raw
            .idle_timeout
            .map(|v| self.duration("session.idle_timeout", Some(v), Duration::ZERO));
        SessionConfig {
            cookie_name,
            keys,
            max_age,
            idle_timeout: idle_timeout.filter(|d| !d.is_zero()),
            secure,
            same_site,
            domain: raw.domain,
            preserve_post_max: match raw.preserve_post_max {
                None => 64 * 1024,
                Some(n) if (0..=1024 * 1024).contains(&n) => n as usize,
                Some(_) => {
                    self.problem(
                        "session.preserve_post_max",
                        "must be between 0 (off) and 1048576 bytes",
                    );
                    0
                }
            },
        }
    }

    fn session_key(&mut self, key: &str, reference: &str) -> Option<SessionKey> {
        let value = self.secret(key, reference)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.expose().trim())
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value.expose().trim())
            });
        match decoded.map(<[u8; 32]>::try_from) {
            Ok(Ok(bytes)) => Some(SessionKey(bytes)),
            Ok(Err(bytes)) => {
                self.problem(key, format!("must be 32 bytes of base64, got {} bytes (generate one with `sso-sidecar keygen`)", bytes.len()));
                None
            }
            Err(_) => {
                self.problem(
                    key,
                    "is not base64 (generate one with `sso-sidecar keygen`)",
                );
                None
            }
        }
    }

    fn headers(&mut self, raw: raw::RawHeaders) -> HeaderConfig {
        let prefix = raw.prefix.unwrap_or_else(|| "X-SSO-".to_owned());
        if prefix.len() < 2 || !prefix.bytes().all(is_header_name_byte) {
            self.problem(
                "headers.prefix",
                "must be a header name prefix such as \"X-SSO-\"",
            );
        }
        let claims = match raw.claims {
            None => IdentityHeader::ALL.to_vec(),
            Some(names) => names
                .iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    let found = IdentityHeader::ALL
                        .into_iter()
                        .find(|h| h.key() == name.as_str());
                    if found.is_none() {
                        let allowed: Vec<_> = IdentityHeader::ALL.iter().map(|h| h.key()).collect();
                        self.bad_enum(&format!("headers.claims[{i}]"), name, &allowed);
                    }
                    found
                })
                .collect(),
        };
        let strip_untrusted = match raw.strip_untrusted {
            None => DEFAULT_STRIP_UNTRUSTED.map(str::to_owned).to_vec(),
            Some(names) => {
                for (i, name) in names.iter().enumerate() {
                    if name.is_empty() || !name.bytes().all(is_header_name_byte) {
                        self.problem(
                            format!("headers.strip_untrusted[{i}]"),
                            format!("\"{name}\" is not a header name"),
                        );
                    }
                }
                names
            }
        };
        let assertion = raw.assertion.unwrap_or(true).then(|| {
            let keys: Vec<secret::Secret> = raw
                .assertion_keys
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter_map(|(i, reference)| {
                    let key = format!("headers.assertion_keys[{i}]");
                    let secret = self.secret(&key, reference)?;
                    if let Err(e) = crate::config::signing_key::check(secret.expose()) {
                        self.problem(&key, e);
                        return None;
                    }
                    Some(secret)
                })
                .collect();
            AssertionConfig {
                audience: raw.assertion_audience.filter(|a| !a.trim().is_empty()),
                keys,
            }
        });
        let max_groups = self.bounded("headers.max_groups", raw.max_groups, 100, (0, 10_000));
        HeaderConfig {
            prefix,
            claims,
            forward_access_token: raw.forward_access_token.unwrap_or(false),
            strip_untrusted,
            assertion,
            max_groups,
        }
    }

    fn log(&mut self, raw: raw::RawLog) -> LogConfig {
        let format = match raw.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.bad_enum("log.format", other, &["text", "json"]);
                LogFormat::Text
            }
        };
        let level = raw.level.unwrap_or_else(|| "info".to_owned());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            self.problem("log.level", format!("\"{level}\" is not a log level or filter (e.g. \"info\", \"sso_sidecar=debug\")"));
        }
        LogConfig { format, level }
    }

    fn identity_providers(
        &mut self,
        raw: BTreeMap<String, RawIdentityProvider>,
    ) -> BTreeMap<String, IdentityProvider> {
        raw.into_iter()
            .filter_map(|(key, idp)| self.identity_provider(&key, idp).map(|idp| (key, idp)))
            .collect()
    }

    fn identity_provider(
        &mut self,
        key: &str,
        raw: RawIdentityProvider,
    ) -> Option<IdentityProvider> {
        let path = format!("identity_providers.{key}");
        if !is_simple_key(key) {
            self.problem(&path, "key may only hold letters, digits, '_', '-' and '.'");
        }
        let name = match raw.name.clone() {
            Some(name) if !name.trim().is_empty() => name,
            _ => {
                self.problem(
                    format!("{path}.name"),
                    "missing (the name shown on the login page)",
                );
                key.to_owned()
            }
        };
        let kind = match raw.kind.as_deref() {
            Some("local") => {
                for (field, present) in [
                    ("issuer", raw.issuer.is_some()),
                    ("client_id", raw.client_id.is_some()),
                    ("client_secret", raw.client_secret.is_some()),
                ] {
                    if present {
                        self.warnings.push(format!(
                            "{path}.{field} is ignored for a local identity provider"
                        ));
                    }
                }
                IdentityProviderKind::Local
            }
            Some("oidc") => IdentityProviderKind::Oidc(Box::new(self.oidc_provider(&path, raw)?)),
            Some(other) => {
                self.bad_enum(&format!("{path}.type"), other, &["oidc", "local"]);
                return None;
            }
            None => {
                self.problem(format!("{path}.type"), "missing (\"oidc\" or \"local\")");
                return None;
            }
        };
        Some(IdentityProvider {
            key: key.to_owned(),
            name,
            kind,
        })
    }

    fn oidc_provider(&mut self, path: &str, raw: RawIdentityProvider) -> Option<OidcProvider> {
        let issuer = match raw.issuer.as_deref() {
            None => {
                self.problem(
                    format!("{path}.issuer"),
                    "missing (required for type \"oidc\")",
                );
                None
            }
            Some(text) => match Url::parse(text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    Some(text.to_owned())
                }
                _ => {
                    self.problem(format!("{path}.issuer"), "not a URL");
                    None
                }
            },
        };
        let client_id = match raw.client_id {
            Some(id) if !id.is_empty() => Some(id),
            _ => {
                self.problem(
                    format!("{path}.client_id"),
                    "missing (required for type \"oidc\")",
                );
                None
            }
        };
        let client_secret = match raw.client_secret.as_deref() {
            None => {
                self.problem(
                    format!("{path}.client_secret"),
                    "missing (required for type \"oidc\")",
                );
                None
            }
            Some(reference) => self.secret(&format!("{path}.client_secret"), reference),
        };
        let client_secret_expire_at = raw.client_secret_expire_at.as_deref().and_then(|text| {
            match chrono::DateTime::parse_from_rfc3339(text) {
                Ok(at) => Some(at.with_timezone(&chrono::Utc)),
                Err(_) => {
                    self.problem(
                        format!("{path}.client_secret_expire_at"),
                        format!("\"{text}\" is not an RFC 3339 timestamp (e.g. \"2027-12-31T12:30:45Z\")"),
                    );
                    None
                }
            }
        });
        if let Some(at) = client_secret_expire_at {
            let now = chrono::Utc::now();
            if at < now {
                self.warnings.push(format!(
                    "{path}.client_secret_expire_at: the client secret expired on {at}"
                ));
            } else if at - now < self.secret_expiry_warning {
                self.warnings.push(format!(
                    "{path}.client_secret_expire_at: the client secret expires on {at}, in {} days",
                    (at - now).num_days()
                ));
            }
        }
        let logout_params = raw.logout_params.clone().unwrap_or_default();
        let audiences = raw.audiences.clone().unwrap_or_default();
        let algorithms = self.algorithms(path, raw.algorithms.clone());
        let claims = self.claim_mapping(path, raw.claims.clone());
        let additional_scopes = raw.additional_scopes.unwrap_or_default();
        for (i, scope) in additional_scopes.iter().enumerate() {
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                self.problem(
                    format!("{path}.additional_scopes[{i}]"),
                    "a scope is one word without spaces",
                );
            }
        }
        for audience in audiences.iter().filter(|a| a.starts_with("api://")) {
            let asked = additional_scopes
                .iter()
                .any(|scope| scope.starts_with(&format!("{audience}/")));
            if !asked {
                self.warnings.push(format!(
                    "{path}.audiences names {audience}, but no additional_scopes entry asks for it: Azure issues access tokens for your API only when a scope of it is requested (e.g. \"{audience}/access_as_user\"); otherwise they are for Microsoft Graph and this audience never matches"
                ));
            }
        }
        if let Some(issuer) = &issuer {
            if issuer.starts_with("https://sts.windows.net/") {
                self.problem(
                    format!("{path}.issuer"),
                    "is an Azure AD v1.0 issuer, which ICM does not support either; use the v2.0 endpoint https://login.microsoftonline.com/<tenant>/v2.0 (and accessTokenAcceptedVersion = 2 in the app manifest)",
                );
            }
        }
        let access_token_type = match raw.access_token_type.as_deref() {
            None => None,
            Some(t) if t.eq_ignore_ascii_case("at+jwt") => Some("at+jwt".to_owned()),
            Some(other) => {
                self.bad_enum(&format!("{path}.access_token_type"), other, &["at+jwt"]);
                None
            }
        };
        let groups_claim = match raw.groups_claim.as_deref() {
            None => "groups".to_owned(),
            Some(claim) => self
                .claim_path(&format!("{path}.groups_claim"), claim)
                .unwrap_or_else(|| "groups".to_owned()),
        };
        let client_id = client_id?;
        Some(OidcProvider {
            access_token_type,
            groups_claim,
            introspection: raw.introspection.unwrap_or(false),
            issuer: issuer?,
            audiences: if audiences.is_empty() {
                vec![client_id.clone()]
            } else {
                audiences
            },
            client_id,
            client_secret: client_secret?,
            client_secret_expire_at,
            additional_scopes,
            logout_params,
            algorithms,
            claims,
        })
    }

    /// An IdP serving several organizations lets its users pick any of them; one without
    /// `members` then takes everyone, which is rarely meant.
    fn note_open_organizations(
        &mut self,
        orgs: &BTreeMap<String, Organization>,
        idps: &BTreeMap<String, IdentityProvider>,
    ) {
        let mut serving: BTreeMap<&str, Vec<&Organization>> = BTreeMap::new();
        for org in orgs.values() {
            // `local` is the backend's own login: the backend decides who is whose.
            let remote = org
                .identity_providers
                .iter()
                .filter(|idp| idps.get(*idp).is_some_and(|i| i.oidc().is_some()));
            for idp in remote {
                serving.entry(idp.as_str()).or_default().push(org);
            }
        }
        for (idp, orgs) in serving.into_iter().filter(|(_, orgs)| orgs.len() > 1) {
            for org in orgs.iter().filter(|org| org.members.is_empty()) {
                self.warnings.push(format!(
                    "organizations.{}.members is not set but {idp} also serves {}: every user of {idp} can sign in as a member of {}",
                    org.key,
                    orgs.iter()
                        .filter(|o| o.key != org.key)
                        .map(|o| o.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    org.key
                ));
            }
        }
    }

    /// Entries that share an issuer (two clients of one realm) are fine, but an operator
    /// should know: tokens of that issuer count for each of them.
    fn note_shared_issuers(&mut self, idps: &BTreeMap<String, IdentityProvider>) {
        let mut by_issuer: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (key, idp) in idps {
            if let Some(oidc) = idp.oidc() {
                by_issuer.entry(oidc.issuer.as_str()).or_default().push(key);
            }
        }
        for (issuer, keys) in by_issuer.into_iter().filter(|(_, keys)| keys.len() > 1) {
            self.warnings.push(format!(
                "identity_providers {} share the issuer {issuer}: logout and bearer tokens of that issuer count for each entry whose client they name",
                keys.join(", ")
            ));
        }
    }

    fn organizations(
        &mut self,
        raw: BTreeMap<String, RawOrganization>,
        idps: &BTreeMap<String, IdentityProvider>,
        declared_idps: &[String],
        remote: bool,
    ) -> BTreeMap<String, Organization> {
        let mut external_names: BTreeMap<String, String> = BTreeMap::new();
        let mut orgs = BTreeMap::new();
        for (key, org) in raw {
            let path = format!("organizations.{key}");
            if !is_simple_key(&key) {
                self.problem(&path, "key may only hold letters, digits, '_', '-' and '.'");
            }
            let external_name = match org.external_name {
                Some(name) if !name.trim().is_empty() => name,
                _ => {
                    self.problem(
                        format!("{path}.external_name"),
                        "missing (the name users type on the login page)",
                    );
                    key.clone()
                }
            };
            // The login page matches organizations case-insensitively on key and external name.
            for name in [key.to_lowercase(), external_name.to_lowercase()] {
                if let Some(other) = external_names.get(&name).filter(|other| **other != key) {
                    self.problem(
                        format!("{path}.external_name"),
                        format!("\"{name}\" is also the name of organization {other} (names must be unique, ignoring case)"),
                    );
                }
                external_names.insert(name, key.clone());
            }
            let listed = org
                .identity_providers
                .map(|l| l.items())
                .unwrap_or_else(|| vec![IMPLICIT_LOCAL_IDP.to_owned()]);
            let mut offered = Vec::new();
            for (i, idp_key) in listed.iter().enumerate() {
                match idps.get(idp_key) {
                    Some(idp) if idp.is_local() || remote => offered.push(idp_key.clone()),
                    Some(_) => {}
                    None if idp_key == IMPLICIT_LOCAL_IDP => offered.push(idp_key.clone()),
                    None if declared_idps.contains(idp_key) => {}
                    None => {
                        let defined: Vec<_> = declared_idps.iter().map(String::as_str).collect();
                        self.problem(
                            format!("{path}.identity_providers[{i}]"),
                            format!(
                                "\"{idp_key}\" is not defined in [identity_providers]{}",
                                suggest(idp_key, &defined)
                            ),
                        );
                    }
                }
            }
            let only_remote = listed
                .iter()
                .any(|k| idps.get(k).is_some_and(|idp| !idp.is_local()));
            if offered.is_empty() && !remote && only_remote {
                // As ICM does: with remote sign-in off, the organization's users sign in
                // locally at the backend.
                offered.push(IMPLICIT_LOCAL_IDP.to_owned());
                self.warnings.push(format!(
                    "{path}: oidc.remote is \"unsupported\" and none of its identity providers is local: its users sign in locally (local_login_url)"
                ));
            } else if offered.is_empty() && !listed.is_empty() {
                self.warnings.push(format!(
                    "{path}: no identity provider is offered (oidc.remote is \"unsupported\" and none is local)"
                ));
            }
            let self_administration =
                self.self_administration(&path, org.self_administration_policy);
            let logout_policy = match org
                .logout_policy
                .as_deref()
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                None | Some("EXTERNAL") => LogoutPolicy::External,
                Some("LOCAL") => LogoutPolicy::Local,
                Some("FEDERATED") => LogoutPolicy::Federated,
                Some(_) => {
                    self.bad_enum(
                        &format!("{path}.logout_policy"),
                        org.logout_policy.as_deref().unwrap_or(""),
                        &["LOCAL", "EXTERNAL", "FEDERATED"],
                    );
                    LogoutPolicy::External
                }
            };
            let local_login_url = self
                .path_or_url(&format!("{path}.local_login_url"), org.local_login_url)
                .unwrap_or_else(|| "/".to_owned());
            let post_logout_url =
                self.path_or_url(&format!("{path}.post_logout_url"), org.post_logout_url);
            let members = self.rules(&format!("{path}.members"), org.members);
            orgs.insert(
                key.clone(),
                Organization {
                    key,
                    external_name,
                    identity_providers: offered,
                    self_administration,
                    logout_policy,
                    local_login_url,
                    post_logout_url,
                    members,
                },
            );
        }
        orgs
    }

    /// A claim name or a dotted path into nested claims (`realm_access.roles`).
    fn claim_path(&mut self, key: &str, text: &str) -> Option<String> {
        let text = text.trim();
        if !text.is_empty() && text.split('.').all(|part| !part.is_empty()) {
            return Some(text.to_owned());
        }
        self.problem(
            key,
            "must be a claim name or a dotted path such as \"realm_access.roles\"",
        );
        None
    }

    /// `members` and `allow` lists: each rule names a claim and exactly one test.
    fn rules(&mut self, path: &str, raw: Option<Vec<raw::RawRule>>) -> Vec<ClaimRule> {
        let mut rules = Vec::new();
        for (i, rule) in raw.unwrap_or_default().into_iter().enumerate() {
            let at = format!("{path}[{i}]");
            let claim = match rule.claim.as_deref() {
                Some(claim) => match self.claim_path(&format!("{at}.claim"), claim) {
                    Some(claim) => claim,
                    None => continue,
                },
                None => {
                    self.problem(format!("{at}.claim"), "missing (e.g. claim = \"groups\")");
                    continue;
                }
            };
            let test = match (rule.any_of, rule.ends_with) {
                (Some(values), None) => ("any_of", ClaimTest::AnyOf(values)),
                (None, Some(suffixes)) => ("ends_with", ClaimTest::EndsWith(suffixes)),
                (Some(_), Some(_)) => {
                    self.problem(&at, "has both any_of and ends_with; use two rules");
                    continue;
                }
                (None, None) => {
                    self.problem(
                        &at,
                        "needs any_of = [...] (exact values) or ends_with = [...] (suffixes)",
                    );
                    continue;
                }
            };
            let (name, values) = match &test.1 {
                ClaimTest::AnyOf(v) => (test.0, v),
                ClaimTest::EndsWith(v) => (test.0, v),
            };
            if values.is_empty() || values.iter().any(|v| v.is_empty()) {
                self.problem(
                    format!("{at}.{name}"),
                    "must list at least one value, none of them empty",
                );
                continue;
            }
            rules.push(ClaimRule {
                claim,
                test: test.1,
            });
        }
        rules
    }

    fn self_administration(
        &mut self,
        path: &str,
        raw: Option<raw::StringList>,
    ) -> SelfAdministration {
        let items = raw.map(|l| l.items()).unwrap_or_default();
        // ICM: an empty or missing list means the default; NONE overrules everything else.
        if items.is_empty() {
            return SelfAdministration {
                create: true,
                update: true,
            };
        }
        let mut policy = SelfAdministration {
            create: false,
            update: false,
        };
        let mut none = false;
        for (i, item) in items.iter().enumerate() {
            match item.to_ascii_uppercase().as_str() {
                "CREATE" => policy.create = true,
                "UPDATE" => policy.update = true,
                "NONE" => none = true,
                _ => self.bad_enum(
                    &format!("{path}.self_administration_policy[{i}]"),
                    item,
                    &["CREATE", "UPDATE", "NONE"],
                ),
            }
        }
        if none {
            SelfAdministration {
                create: false,
                update: false,
            }
        } else {
            policy
        }
    }

    fn routes(
        &mut self,
        raw: Vec<RawRoute>,
        orgs: &BTreeMap<String, Organization>,
        own_prefix: &str,
    ) -> Vec<Route> {
        let mut routes: Vec<(usize, Route)> = Vec::new();
        for (i, route) in raw.into_iter().enumerate() {
            let path = format!("routes[{i}]");
            let path_prefix = match route.path_prefix {
                Some(p) if p.starts_with('/') => p,
                Some(_) => {
                    self.problem(format!("{path}.path_prefix"), "must start with /");
                    continue;
                }
                None => {
                    self.problem(
                        format!("{path}.path_prefix"),
                        "missing (use \"/\" for everything)",
                    );
                    continue;
                }
            };
            let auth = match route.auth.as_deref() {
                None | Some("required") => AuthMode::Required,
                Some("optional") => AuthMode::Optional,
                Some("public") => AuthMode::Public,
                Some("api") => AuthMode::Api,
                Some(other) => {
                    self.bad_enum(&format!("{path}.auth"), other, &AuthMode::NAMES);
                    continue;
                }
            };
            if let Some(org) = &route.organization {
                if !orgs.contains_key(org) {
                    let defined: Vec<_> = orgs.keys().map(String::as_str).collect();
                    self.problem(
                        format!("{path}.organization"),
                        format!(
                            "\"{org}\" is not defined in [organizations]{}",
                            suggest(org, &defined)
                        ),
                    );
                }
            }
            if path_prefix.starts_with(own_prefix) {
                self.warnings.push(format!(
                    "{path}.path_prefix: {path_prefix} lies under the sidecar's own {own_prefix}/ endpoints, which answer first"
                ));
            }
            let allow = self.rules(&format!("{path}.allow"), route.allow);
            if !allow.is_empty() && !auth.needs_sign_in() {
                self.problem(
                    format!("{path}.allow"),
                    format!(
                        "needs auth = \"required\" or \"api\": a{} {} route lets everyone in",
                        if auth == AuthMode::Optional { "n" } else { "" },
                        auth.as_str()
                    ),
                );
            }
            let preflight = match route.preflight.as_deref() {
                None | Some("forward") => Preflight::Forward,
                Some("deny") => Preflight::Deny,
                Some(other) => {
                    self.bad_enum(&format!("{path}.preflight"), other, &["forward", "deny"]);
                    Preflight::Forward
                }
            };
            let host = route.host.map(|h| h.to_ascii_lowercase());
            let new = Route {
                host,
                path_prefix,
                auth,
                organization: route.organization,
                allow,
                preflight,
            };
            if let Some((j, earlier)) = routes.iter().find(|(_, earlier)| shadows(earlier, &new)) {
                let what = if earlier.host == new.host && earlier.path_prefix == new.path_prefix {
                    "duplicate of"
                } else {
                    "unreachable: every request it matches is taken by"
                };
                self.problem(
                    format!("{path}.path_prefix"),
                    format!(
                        "{what} routes[{j}] (host {}, path_prefix {})",
                        earlier.host.as_deref().unwrap_or("any"),
                        earlier.path_prefix
                    ),
                );
                continue;
            }
            routes.push((i, new));
        }
        routes.into_iter().map(|(_, r)| r).collect()
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

    fn algorithms(&mut self, path: &str, raw: Option<Vec<String>>) -> Vec<jsonwebtoken::Algorithm> {
        use jsonwebtoken::Algorithm::*;
        const ASYMMETRIC: [(&str, jsonwebtoken::Algorithm); 9] = [
            ("RS256", RS256),
            ("RS384", RS384),
            ("RS512", RS512),
            ("PS256", PS256),
            ("PS384", PS384),
            ("PS512", PS512),
            ("ES256", ES256),
            ("ES384", ES384),
            ("EdDSA", EdDSA),
        ];
        let Some(names) = raw else {
            return vec![RS256];
        };
        let allowed: Vec<&str> = ASYMMETRIC.iter().map(|(n, _)| *n).collect();
        names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let found = ASYMMETRIC.iter().find(|(n, _)| n == name).map(|(_, a)| *a);
                if found.is_none() {
                    // HS* would let anyone holding the (public) client id forge tokens.
                    self.bad_enum(&format!("{path}.algorithms[{i}]"), name, &allowed);
                }
                found
            })
            .collect()
    }

    fn claim_mapping(&mut self, path: &str, raw: Option<BTreeMap<String, String>>) -> ClaimMapping {
        let mut mapping = ClaimMapping::default();
        for (field, claim) in raw.unwrap_or_default() {
            let slot = match field.as_str() {
                "external_id" => &mut mapping.external_id,
                "email" => &mut mapping.email,
                "name" => &mut mapping.name,
                "login_name" => &mut mapping.login_name,
                "first_name" => &mut mapping.first_name,
                "last_name" => &mut mapping.last_name,
                _ => {
                    let allowed = [
                        "external_id",
                        "email",
                        "name",
                        "login_name",
                        "first_name",
                        "last_name",
                    ];
                    self.bad_enum(&format!("{path}.claims.{field}"), &field, &allowed);
                    continue;
                }
            };
            *slot = claim;
        }
        mapping
    }

    fn backend(&mut self, raw: raw::RawBackend) -> BackendConfig {
        let profile = match raw.profile.as_deref() {
            None | Some("generic") => BackendProfile::Generic,
            Some("icm") => BackendProfile::Icm,
            Some("spree") => BackendProfile::Spree,
            Some(other) => {
                self.bad_enum("backend.profile", other, &["generic", "icm", "spree"]);
                BackendProfile::Generic
            }
        };
        let spree_raw = raw.spree.unwrap_or_default();
        let spree = (profile == BackendProfile::Spree).then(|| self.spree(spree_raw));
        let icm_raw = raw.icm.unwrap_or_default();
        let provisioning_url =
            icm_raw
                .provisioning_url
                .as_deref()
                .and_then(|text| match Url::parse(text) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                    _ => {
                        self.problem("backend.icm.provisioning_url", "not an http(s) URL");
                        None
                    }
                });
        let provisioning_secret = icm_raw
            .provisioning_secret
            .as_deref()
            .and_then(|r| self.secret("backend.icm.provisioning_secret", r));
        BackendConfig {
            profile,
            spree,
            icm: IcmConfig {
                provisioning_url,
                provisioning_secret,
            },
        }
    }

    fn spree(&mut self, raw: raw::RawSpree) -> SpreeConfig {
        let provider = raw.provider.unwrap_or_default();
        if provider.is_empty() {
            self.problem(
                "backend.spree.provider",
                "missing (the strategy key registered in Spree)",
            );
        }
        let path = |v: &mut Self, key: &str, value: Option<String>, default: &str| match value {
            None => default.to_owned(),
            Some(p) if p.starts_with('/') => p,
            Some(_) => {
                v.problem(
                    format!("backend.spree.{key}"),
                    "must be a path starting with /",
                );
                default.to_owned()
            }
        };
        let exchange_access_token = match raw.exchange_token.as_deref() {
            None | Some("id_token") => false,
            Some("access_token") => true,
            Some(other) => {
                self.bad_enum(
                    "backend.spree.exchange_token",
                    other,
                    &["id_token", "access_token"],
                );
                false
            }
        };
        SpreeConfig {
            provider,
            publishable_key: raw
                .publishable_key
                .as_deref()
                .and_then(|r| self.secret("backend.spree.publishable_key", r)),
            login_path: path(
                self,
                "login_path",
                raw.login_path,
                "/api/v3/store/auth/login",
            ),
            refresh_path: path(
                self,
                "refresh_path",
                raw.refresh_path,
                "/api/v3/store/auth/refresh",
            ),
            logout_path: path(
                self,
                "logout_path",
                raw.logout_path,
                "/api/v3/store/auth/logout",
            ),
            exchange_access_token,
        }
    }

    fn store(&mut self, raw: raw::RawStore) -> StoreConfig {
        let kind = raw.kind.as_deref().unwrap_or("memory");
        let timeout = self.duration("store.timeout", raw.timeout, Duration::from_millis(250));
        let load_timeout = self.duration(
            "store.load_timeout",
            raw.load_timeout,
            Duration::from_secs(10),
        );
        match kind {
            "memory" => {
                for (set, key) in [
                    (raw.url.is_some(), "store.url"),
                    (raw.cluster.is_some(), "store.cluster"),
                    (
                        raw.server_side_sessions == Some(true),
                        "store.server_side_sessions",
                    ),
                ] {
                    if set {
                        self.problem(key, "needs store.kind = \"redis\"");
                    }
                }
                StoreConfig::default()
            }
            "redis" => {
                let url = match raw.url.as_deref() {
                    Some(reference) => self.secret("store.url", reference),
                    None => {
                        self.problem(
                            "store.url",
                            "missing (e.g. \"env:SSO_REDIS_URL\" holding redis://host:6379/0)",
                        );
                        None
                    }
                };
                let cluster = raw.cluster.unwrap_or(false);
                let url =
                    url.filter(
                        |url| match crate::store::Topology::parse(url.expose(), cluster) {
                            Ok(_) => true,
                            Err(problem) => {
                                self.problem("store.url", problem);
                                false
                            }
                        },
                    );
                StoreConfig {
                    redis: url.map(|url| RedisConfig {
                        url,
                        cluster,
                        key_prefix: raw.key_prefix.unwrap_or_else(|| "sso-sidecar:".to_owned()),
                        timeout,
                        load_timeout,
                        server_side_sessions: raw.server_side_sessions.unwrap_or(false),
                    }),
                }
            }
            other => {
                self.problem(
                    "store.kind",
                    format!("\"{other}\" is not one of \"memory\", \"redis\""),
                );
                StoreConfig::default()
            }
        }
    }

    fn commercetools(&mut self, raw: raw::RawCommercetools) -> Option<CommercetoolsConfig> {
        let key = |field: &str| format!("commercetools.{field}");
        let client_id = raw.client_id.filter(|c| !c.is_empty());
        if client_id.is_none() {
            self.problem(
                key("client_id"),
                "missing (the user name commercetools sends with HTTP Basic)",
            );
        }
        let client_secret = match raw.client_secret.as_deref() {
            Some(reference) => self.secret(&key("client_secret"), reference),
            None => {
                self.problem(
                    key("client_secret"),
                    "missing (the password commercetools sends with HTTP Basic)",
                );
                None
            }
        };
        let project_key = raw.project_key.filter(|p| !p.is_empty());
        if project_key.is_none() {
            self.problem(
                key("project_key"),
                "missing (the commercetools project key used in scopes)",
            );
        }
        let default_scopes = raw.default_scopes.unwrap_or_else(|| {
            vec![
                "view_products:{projectKey}".to_owned(),
                "manage_my_orders:{projectKey}".to_owned(),
            ]
        });
        let project_key = project_key?;
        let api = raw
            .api
            .and_then(|api| self.commercetools_api(api, &project_key));
        let sync_customers = raw.sync_customers.unwrap_or(false);
        let group_scopes = raw.group_scopes.unwrap_or_default();
        if api.is_none() {
            for (set, field, why) in [
                (
                    sync_customers,
                    "sync_customers",
                    "creates and updates customers through it",
                ),
                (
                    !group_scopes.is_empty(),
                    "group_scopes",
                    "reads the customer's group through it",
                ),
            ] {
                if set {
                    self.problem(
                        key(field),
                        format!("needs [commercetools.api]: the sidecar {why}"),
                    );
                }
            }
        }
        let introspection_deadline = self.duration(
            &key("introspection_deadline"),
            raw.introspection_deadline,
            Duration::from_millis(400),
        );
        if introspection_deadline >= Duration::from_millis(500) {
            self.warnings.push(format!(
                "commercetools.introspection_deadline is {} ms: commercetools gives up on introspection after 500 ms",
                introspection_deadline.as_millis()
            ));
        }
        Some(CommercetoolsConfig {
            client_id: client_id?,
            client_secret: client_secret?,
            project_key,
            customer_id_claim: raw.customer_id_claim.unwrap_or_else(|| "oid".to_owned()),
            include_customer_id: raw.include_customer_id.unwrap_or(true),
            default_scopes,
            scope_claim: raw.scope_claim.unwrap_or_else(|| "groups".to_owned()),
            scope_mapping: raw.scope_mapping.unwrap_or_default(),
            api,
            sync_customers,
            customer_group_claim: raw
                .customer_group_claim
                .unwrap_or_else(|| "groups".to_owned()),
            customer_groups: raw.customer_groups.unwrap_or_default(),
            group_scopes,
            introspection_deadline,
        })
    }

    fn commercetools_api(
        &mut self,
        raw: raw::RawCommercetoolsApi,
        project_key: &str,
    ) -> Option<CommercetoolsApiConfig> {
        let key = |field: &str| format!("commercetools.api.{field}");
        let url_of = |this: &mut Self, field: &str, value: Option<String>, default: &str| {
            let text = value.unwrap_or_else(|| default.to_owned());
            match Url::parse(&text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                _ => {
                    this.problem(key(field), "must be an http(s) URL");
                    None
                }
            }
        };
        let url = url_of(
            self,
            "url",
            raw.url,
            "https://api.europe-west1.gcp.commercetools.com",
        );
        let auth_url = url_of(
            self,
            "auth_url",
            raw.auth_url,
            "https://auth.europe-west1.gcp.commercetools.com",
        );
        let client_id = raw.client_id.filter(|c| !c.is_empty());
        if client_id.is_none() {
            self.problem(key("client_id"), "missing (the API client's id)");
        }
        let client_secret = match raw.client_secret.as_deref() {
            Some(reference) => self.secret(&key("client_secret"), reference),
            None => {
                self.problem(
                    key("client_secret"),
                    "missing (the API client's secret, e.g. \"env:CT_API_SECRET\")",
                );
                None
            }
        };
        let scopes: Vec<String> = match raw.scopes {
            Some(list) => list
                .items()
                .iter()
                .flat_map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .collect(),
            None => vec![
                "manage_customers:{projectKey}".to_owned(),
                "view_customer_groups:{projectKey}".to_owned(),
            ],
        };
        let scopes = scopes
            .iter()
            .map(|s| s.replace("{projectKey}", project_key))
            .collect::<Vec<_>>()
            .join(" ");
        let timeout = self.duration(&key("timeout"), raw.timeout, Duration::from_secs(2));
        Some(CommercetoolsApiConfig {
            url: url?,
            auth_url: auth_url?,
            client_id: client_id?,
            client_secret: client_secret?,
            scopes,
            timeout,
        })
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

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
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
