//! `make bench` reference: pingora with no logic of its own, the floor of what a pingora
//! proxy costs per request. One `ProxyHttp` that returns the upstream peer and nothing
//! else, with the same pingora-core (vendored), thread count, listener settings and
//! upstream options as sso-sidecar, so the difference measures our code alone.
//!
//! `pingora_floor <listen> <upstream host:port> <threads>`

use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Floor {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        // sso-sidecar's defaults (server.connect_timeout, read/write/idle_timeout).
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.read_timeout = Some(Duration::from_secs(60));
        peer.options.write_timeout = Some(Duration::from_secs(60));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, threads] = args.as_slice() else {
        eprintln!("usage: pingora_floor <listen> <upstream host:port> <threads>");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads: threads.parse().expect("threads is a number"),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    // The sidecar's default `server.preserve_header_case = false`.
    pingora::protocols::http::v1::header_case::keep_header_case(false);
    let mut proxy = http_proxy_service(
        &server.configuration,
        Floor {
            upstream: upstream.clone(),
        },
    );
    // The sidecar's listener settings (src/server.rs `client_listener`).
    proxy.add_listener(
        ListenerConfig::tcp(listen)
            .l4_buffer(L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE)),
    );
    server.add_service(proxy);
    server.run_forever();
}
