//! `[session]`, `[headers]` and `[log]`.

use super::*;

impl Validator {
    pub(super) fn session(&mut self, raw: raw::RawSession) -> SessionConfig {
        let cookie_name = self.cookie_name(
            "session.cookie_name",
            raw.cookie_name,
            defaults::session::COOKIE_NAME,
        );
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
        let same_site = self
            .choice("session.same_site", raw.same_site.as_deref(), SameSite::Lax)
            .unwrap_or(SameSite::Lax);
        let secure = raw.secure.unwrap_or(defaults::session::SECURE);
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
        let max_age = self.duration("session.max_age", raw.max_age, defaults::session::MAX_AGE);
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

    pub(super) fn session_key(&mut self, key: &str, reference: &str) -> Option<SessionKey> {
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

    pub(super) fn headers(&mut self, raw: raw::RawHeaders) -> HeaderConfig {
        let prefix = raw
            .prefix
            .unwrap_or_else(|| defaults::headers::PREFIX.to_owned());
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
                    let key = format!("headers.claims[{i}]");
                    let default = IdentityHeader::Subject;
                    self.choice(&key, Some(name), default)
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
        let assertion = raw
            .assertion
            .unwrap_or(defaults::headers::ASSERTION)
            .then(|| {
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
        let max_groups = self.bounded(
            "headers.max_groups",
            raw.max_groups,
            defaults::headers::MAX_GROUPS,
            (0, 10_000),
        );
        HeaderConfig {
            prefix,
            claims,
            forward_access_token: (raw.forward_access_token)
                .unwrap_or(defaults::headers::FORWARD_ACCESS_TOKEN),
            strip_untrusted,
            assertion,
            max_groups,
        }
    }

    pub(super) fn log(&mut self, raw: raw::RawLog) -> LogConfig {
        let format = self
            .choice("log.format", raw.format.as_deref(), LogFormat::Text)
            .unwrap_or(LogFormat::Text);
        let level = raw.level.unwrap_or_else(|| defaults::log::LEVEL.to_owned());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            self.problem("log.level", format!("\"{level}\" is not a log level or filter (e.g. \"info\", \"sso_sidecar=debug\")"));
        }
        let audit = match raw.audit.as_deref().map(str::trim) {
            None | Some("off") => AuditLog::Off,
            Some("stdout") => AuditLog::Stdout,
            Some("") => {
                self.problem(
                    "log.audit",
                    "is empty: \"stdout\", \"off\" or a file to append to",
                );
                AuditLog::Off
            }
            Some(path) => {
                let path = std::path::PathBuf::from(path);
                let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
                if folder.is_some_and(|f| !f.is_dir()) {
                    self.problem(
                        "log.audit",
                        format!("{}: its folder does not exist", path.display()),
                    );
                }
                AuditLog::File(path)
            }
        };
        LogConfig {
            format,
            level,
            audit,
        }
    }
}
