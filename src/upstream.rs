//! Where requests go: the upstream's socket address, resolved off the request path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::config::Upstream;

/// How long a DNS answer for the upstream is reused. Kubernetes services keep their
/// address, but a short TTL still follows a change without a restart.
const DNS_TTL: Duration = Duration::from_secs(30);

pub struct UpstreamTarget {
    pub upstream: Upstream,
    fixed: Option<SocketAddr>,
    resolved: ArcSwapOption<(SocketAddr, Instant)>,
}

impl UpstreamTarget {
    pub fn new(upstream: Upstream) -> Self {
        let fixed = upstream
            .host
            .parse()
            .ok()
            .map(|ip| SocketAddr::new(ip, upstream.port));
        UpstreamTarget {
            upstream,
            fixed,
            resolved: ArcSwapOption::empty(),
        }
    }

    /// The address to connect to. IP literals need no lookup; names are looked up
    /// asynchronously and cached for [`DNS_TTL`].
    pub async fn address(&self) -> std::io::Result<SocketAddr> {
        if let Some(addr) = self.fixed {
            return Ok(addr);
        }
        if let Some(cached) = self.resolved.load().as_deref() {
            if cached.1.elapsed() < DNS_TTL {
                return Ok(cached.0);
            }
        }
        let addr = tokio::net::lookup_host((self.upstream.host.as_str(), self.upstream.port))
            .await?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "upstream host has no address")
            })?;
        self.resolved.store(Some(Arc::new((addr, Instant::now()))));
        Ok(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(host: &str) -> Upstream {
        Upstream {
            url: url::Url::parse(&format!("http://{host}:9000/")).unwrap(),
            tls: false,
            host: host.to_owned(),
            port: 9000,
        }
    }

    #[tokio::test]
    async fn ip_literals_and_names() {
        assert_eq!(
            UpstreamTarget::new(upstream("127.0.0.1"))
                .address()
                .await
                .unwrap()
                .to_string(),
            "127.0.0.1:9000"
        );
        let target = UpstreamTarget::new(upstream("localhost"));
        let addr = target.address().await.unwrap();
        assert!(addr.ip().is_loopback());
        assert_eq!(
            target.address().await.unwrap(),
            addr,
            "cached answer is reused"
        );
    }
}
