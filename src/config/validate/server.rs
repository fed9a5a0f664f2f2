//! `[server]` and `[admin]`: listeners, the upstream (and its CA), TLS, timeouts.

use super::*;

impl Validator {
    pub(super) fn server(&mut self, raw: raw::RawServer) -> ServerConfig {
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
        use defaults::server as default;
        let [connect, read, write, idle, header, client_idle] = self.durations([
            (
                "server.connect_timeout",
                raw.connect_timeout,
                default::CONNECT_TIMEOUT,
            ),
            (
                "server.read_timeout",
                raw.read_timeout,
                default::READ_TIMEOUT,
            ),
            (
                "server.write_timeout",
                raw.write_timeout,
                default::WRITE_TIMEOUT,
            ),
            (
                "server.idle_timeout",
                raw.idle_timeout,
                default::IDLE_TIMEOUT,
            ),
            (
                "server.header_timeout",
                raw.header_timeout,
                default::HEADER_TIMEOUT,
            ),
            (
                "server.client_idle_timeout",
                raw.client_idle_timeout,
                default::CLIENT_IDLE_TIMEOUT,
            ),
        ]);
        ServerConfig {
            listen,
            upstream,
            public_url,
            trusted_proxies,
            threads,
            connect_timeout: connect,
            read_timeout: read,
            write_timeout: write,
            idle_timeout: idle,
            header_timeout: header,
            client_idle_timeout: client_idle,
            tls: raw.tls.and_then(|tls| self.server_tls(tls)),
            upstream_ca: raw
                .upstream_ca
                .and_then(|reference| self.upstream_ca(&reference)),
            preserve_header_case: raw.preserve_header_case.unwrap_or(false),
        }
    }

    /// `server.upstream_ca`: PEM certificates, each a valid X.509 certificate.
    pub(super) fn upstream_ca(&mut self, reference: &str) -> Option<Vec<Vec<u8>>> {
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
    pub(super) fn server_tls(&mut self, raw: raw::RawTls) -> Option<crate::tls::ServerCertificate> {
        let chain = self.required_secret(
            "server.tls.cert",
            raw.cert.as_deref(),
            "e.g. \"file:/etc/sso-sidecar/tls/cert.pem\"",
        );
        let key = self.required_secret(
            "server.tls.key",
            raw.key.as_deref(),
            "e.g. \"file:/etc/sso-sidecar/tls/key.pem\"",
        );
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

    pub(super) fn upstream(&mut self, text: &str) -> Option<Upstream> {
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

    pub(super) fn public_url(&mut self, text: &str) -> Option<Url> {
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

    pub(super) fn admin(&mut self, raw: raw::RawAdmin) -> AdminConfig {
        let token = raw.token.as_deref().and_then(|reference| {
            let secret = self.secret("admin.token", reference)?;
            if secret.expose().len() < 16 {
                self.problem("admin.token", "must be at least 16 characters");
                return None;
            }
            Some(secret)
        });
        AdminConfig {
            listen: self.socket_addr("admin.listen", raw.listen.as_deref(), "127.0.0.1:9090"),
            token,
        }
    }
}
