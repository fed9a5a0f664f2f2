//! Assembles the pingora server: the proxy on `server.listen`, the admin app on
//! `admin.listen`, and a background service for IdP discovery and config reloads.
//! `sso-sidecar run` and the integration tests both start this.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::auth::session_index::SessionIndex;
use crate::auth::{Lasting, Revocations};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::{Served, SidecarProxy};
use crate::runtime::Runtime;
use crate::store::file::FileStore;
use crate::store::Store;
use crate::tls::CertificateResolver;

/// After SIGTERM the listeners close at once and requests in flight get this long to
/// finish before the runtimes stop (pingora waits the whole period).
const GRACE_PERIOD_SECONDS: u64 = 5;
/// Then the runtimes get this long to wind down.
const SHUTDOWN_TIMEOUT_SECONDS: u64 = 2;

pub fn build(config: Config, pages: crate::pages::Pages) -> Server {
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(GRACE_PERIOD_SECONDS),
        graceful_shutdown_timeout_seconds: Some(SHUTDOWN_TIMEOUT_SECONDS),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    // Header names are case-insensitive: the second map of their spellings is kept only
    // when asked for (vendor/README.md, change 6).
    pingora::protocols::http::v1::header_case::keep_header_case(config.server.preserve_header_case);

    let metrics = Arc::new(Metrics::new());
    let tls = config.server.tls.as_ref().map(|certificate| {
        metrics
            .process
            .set_tls_certificate_expiry(certificate.expires_at);
        Arc::new(CertificateResolver::new(certificate))
    });
    let file = config
        .store
        .path
        .as_deref()
        .map(|path| match FileStore::open(path) {
            Ok(file) => Arc::new(file),
            Err(error) => {
                // As for any config problem: name the key, exit 2. Straight to stderr:
                // the log is written by a background thread that exiting would cut short.
                eprintln!("error: store.path: {}: {error}", path.display());
                std::process::exit(2);
            }
        });
    let store = Arc::new(Store::new(config.store.redis.as_ref(), metrics.clone()));
    let lasting = Arc::new(Lasting {
        revocations: Arc::new(Revocations::new(config.session.max_age)),
        sessions: Arc::new(SessionIndex::new(store.clone(), file.clone())),
        store,
        refreshes: Arc::default(),
        file,
        metrics,
    });
    match lasting.load_kept_revocations(chrono::Utc::now().timestamp()) {
        Ok(0) => {}
        Ok(kept) => tracing::info!(kept, "revocations kept across the restart applied"),
        Err(error) => tracing::error!(%error, "store.path: the kept revocations cannot be read"),
    }
    // `:0` takes a free port, bound here so that it is known (and logged) before pingora
    // starts serving on it.
    let proxy_listen = prebind(&server, config.server.listen);
    let admin_listen = prebind(&server, config.admin.listen);
    tracing::info!(proxy = %proxy_listen, admin = %admin_listen, "listening");
    apply_head_limits(&config);
    let current = Arc::new(ArcSwap::from_pointee(Served::new(Runtime::new(
        config, pages, &lasting,
    ))));

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        SidecarProxy::new(current.clone()),
        "sso-sidecar proxy",
    );
    proxy.add_listener(client_listener(&proxy_listen, tls.clone()));
    // Only clients count towards limits.max_connections(_per_client); probes and scrapes
    // on the admin listener do not.
    proxy.connection_limits = true;

    let control = background_service(
        "sso-sidecar control",
        Control {
            current: current.clone(),
            lasting,
            tls: tls.clone(),
        },
    );
    let mut admin = Service::new("sso-sidecar admin".to_owned(), AdminApp::new(current));
    admin.threads = Some(1);
    admin.add_tcp(&admin_listen);

    server.add_service(control);
    server.add_service(proxy);
    server.add_service(admin);
    server
}

/// The address a listener serves on: `addr` itself, or for port 0 a socket bound now on a
/// free port, handed to pingora's listener table under its real address.
fn prebind(server: &Server, addr: std::net::SocketAddr) -> String {
    use std::os::unix::io::IntoRawFd;
    if addr.port() != 0 {
        return addr.to_string();
    }
    let bound = std::net::TcpListener::bind(addr).and_then(|listener| {
        listener.set_nonblocking(true)?;
        Ok((listener.local_addr()?, listener))
    });
    match bound {
        Ok((local, listener)) => {
            server.add_listen_fd(local.to_string(), listener.into_raw_fd());
            local.to_string()
        }
        // pingora reports the bind error as it would have.
        Err(_) => addr.to_string(),
    }
}

/// Runs on pingora's runtime, so start-up never waits for an IdP: IdP discovery, and
/// config reloads on SIGHUP.
struct Control {
    current: Arc<ArcSwap<Served>>,
    lasting: Arc<Lasting>,
    /// The TLS listener's certificate, swapped by a reload (`server.tls`).
    tls: Option<Arc<CertificateResolver>>,
}

#[async_trait::async_trait]
impl BackgroundService for Control {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.current.load().auth.registry.spawn_discovery();
        let lasting = self.lasting.clone();
        if lasting.store.is_shared() {
            lasting
                .revocations
                .set_load_state(crate::auth::LoadState::Loading);
        }
        let stop = shutdown.clone();
        tokio::spawn(async move {
            crate::auth::follow_shared_revocations(&lasting.store, &lasting.revocations, stop).await
        });
        tokio::spawn(watch_secret_expiry(self.current.clone(), shutdown.clone()));
        let mut hangups =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGHUP; config reloads are off");
                    None
                }
            };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async { match hangups.as_mut() { Some(s) => s.recv().await, None => None } } => self.reload(),
            }
        }
    }
}

/// `limits.max_connections(_per_client)` at accept, and `limits.max_header_bytes`,
/// `limits.max_headers` and `server.header_timeout` while request heads are read: enforced
/// by the patched pingora-core before any phase of ours.
fn apply_head_limits(config: &Config) {
    let trusted = config.server.trusted_proxies.clone();
    let exempt: pingora::connection_limits::Exempt =
        Arc::new(move |ip| crate::forwarding::is_trusted(ip, &trusted));
    pingora::connection_limits::set(
        config.limits.max_connections,
        config.limits.max_connections_per_client,
        Some(exempt),
    );
    pingora::protocols::http::v1::head_limits::set(
        pingora::protocols::http::v1::head_limits::HeadLimits {
            max_bytes: config.limits.max_header_bytes,
            max_headers: config.limits.max_headers,
            timeout: Some(config.server.header_timeout),
        },
    );
}

/// Keeps `sso_sidecar_client_secret_expires_in_seconds` current and, once a day, logs a
/// warning for each client secret within `oidc.secret_expiry_warning` of expiring (or past
/// it): rotating one is easy to forget until sign-ins fail.
async fn watch_secret_expiry(current: Arc<ArcSwap<Served>>, mut shutdown: ShutdownWatch) {
    const TICK: std::time::Duration = std::time::Duration::from_secs(60);
    const WARN_EVERY: i64 = 24 * 3600;
    let mut last_warned: Option<i64> = None;
    loop {
        let rt = current.load_full();
        let now = chrono::Utc::now();
        let warn = last_warned.is_none_or(|at| now.timestamp() - at >= WARN_EVERY);
        let window = chrono::Duration::from_std(rt.config.oidc.secret_expiry_warning)
            .unwrap_or(chrono::Duration::MAX);
        let mut warned = false;
        for (key, idp) in &rt.config.identity_providers {
            let Some(expire_at) = idp.oidc().and_then(|o| o.client_secret_expire_at) else {
                continue;
            };
            let left = expire_at - now;
            (rt.metrics.idps).set_client_secret_expires_in(key, left.num_seconds());
            if warn && left < window {
                warned = true;
                tracing::warn!(
                    idp = key.as_str(),
                    expires_at = %expire_at,
                    days_left = left.num_days(),
                    "the client secret expires soon or has expired: rotate it at the IdP and in the config"
                );
            }
        }
        if warned {
            last_warned = Some(now.timestamp());
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

impl Control {
    /// Reads the config file again. A valid one takes effect for new requests (those in
    /// flight finish with the one they started with); an invalid one is refused and logged.
    fn reload(&self) {
        let old = self.current.load_full();
        let source = old.config.source.clone();
        let (config, pages) = match crate::runtime::load(&source) {
            Ok(loaded) => loaded,
            Err(error) => {
                for line in error.lines() {
                    tracing::error!("config reload refused: {line}");
                }
                self.lasting.metrics.process.count_reload("error");
                return;
            }
        };
        if config.server.listen != old.config.server.listen
            || config.admin.listen != old.config.admin.listen
        {
            tracing::warn!("listen addresses changed: they take effect at the next restart");
        }
        let store_settings = |c: &Config| {
            c.store.redis.as_ref().map(|r| {
                (
                    r.url.expose().to_owned(),
                    r.key_prefix.clone(),
                    r.server_side_sessions,
                )
            })
        };
        if store_settings(&config) != store_settings(&old.config) {
            tracing::warn!("[store] changed: it takes effect at the next restart");
        }
        match (&self.tls, &config.server.tls) {
            (Some(resolver), Some(certificate)) => {
                // New handshakes get the new certificate; open connections keep theirs.
                resolver.replace(certificate);
                self.lasting
                    .metrics
                    .process
                    .set_tls_certificate_expiry(certificate.expires_at);
            }
            (None, None) => {}
            _ => tracing::warn!("server.tls turned on or off: it takes effect at the next restart"),
        }
        apply_head_limits(&config);
        let fresh = Arc::new(Served::new(Runtime::new(config, pages, &self.lasting)));
        fresh.auth.registry.spawn_discovery();
        let previous = self.current.swap(fresh);
        previous.auth.registry.retire();
        for warning in &self.current.load().config.warnings {
            tracing::warn!("{}: {warning}", source.display());
        }
        self.lasting.metrics.process.count_reload("ok");
        tracing::info!(config = %source.display(), "config reloaded");
    }
}

/// The client-facing listener. Plain TCP reads go straight into the HTTP layer's own
/// buffers: pingora's default 64 KiB L4 read buffer is allocated zeroed per connection
/// and kept for its whole life, which made an idle keep-alive connection cost ~100 KiB.
/// Under TLS it pays off (TLS reads whole 16 KiB records) and stays. With `server.tls`:
/// TLS 1.2 and 1.3, HTTP/2 offered by ALPN next to HTTP/1.1, the certificate from a
/// resolver a reload swaps.
fn client_listener(
    addr: &str,
    tls: Option<Arc<CertificateResolver>>,
) -> pingora::listeners::ListenerConfig {
    use pingora::listeners::tls::TlsSettings;
    use pingora::listeners::{L4BufferSettings, DEFAULT_L4_WRITE_BUFFER_SIZE};
    let listener = pingora::listeners::ListenerConfig::tcp(addr);
    let Some(resolver) = tls else {
        return listener.l4_buffer(L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE));
    };
    // The paths stay empty: the resolver provides the certificate.
    let mut settings = TlsSettings::intermediate("", "").expect("no files are read here");
    settings.set_cert_resolver(resolver);
    settings.enable_h2();
    listener.tls(settings)
}
