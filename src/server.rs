//! Assembles the pingora server: the proxy on `server.listen`, the admin app on
//! `admin.listen`. `sso-sidecar run` and the integration tests both start this.

use std::sync::Arc;

use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::SidecarProxy;
use crate::runtime::Runtime;

/// Seconds in-flight requests get to finish after SIGTERM before the process exits.
const GRACEFUL_SHUTDOWN_SECONDS: u64 = 10;

pub fn build(config: Config) -> Server {
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(GRACEFUL_SHUTDOWN_SECONDS),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let metrics = Arc::new(Metrics::new());
    let proxy_listen = config.server.listen.to_string();
    let admin_listen = config.admin.listen.to_string();
    let rt = Arc::new(Runtime::new(config, metrics));

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        SidecarProxy::new(rt.clone()),
        "sso-sidecar proxy",
    );
    proxy.add_tcp(&proxy_listen);

    let discovery = background_service("sso-sidecar idp discovery", Discovery(rt.clone()));
    let mut admin = Service::new("sso-sidecar admin".to_owned(), AdminApp::new(rt));
    admin.threads = Some(1);
    admin.add_tcp(&admin_listen);

    server.add_service(discovery);
    server.add_service(proxy);
    server.add_service(admin);
    server
}

/// Runs IdP discovery on pingora's runtime, so start-up never waits for an IdP.
struct Discovery(Arc<Runtime>);

#[async_trait::async_trait]
impl BackgroundService for Discovery {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.0.auth.registry.spawn_discovery();
        let _ = shutdown.changed().await;
    }
}
