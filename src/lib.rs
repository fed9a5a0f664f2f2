//! sso-sidecar: a single sign-on reverse proxy for commerce backends.
//!
//! [`server::build`] assembles exactly what `sso-sidecar run` serves, so integration
//! tests start the same thing as production.

pub mod admin;
pub mod assertion;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod caller;
pub mod cli;
pub mod config;
pub mod digest;
pub mod error_chain;
pub mod forward_auth;
pub mod forwarding;
pub mod health;
pub mod host;
pub mod import_icm;
pub mod jwt;
pub mod log_batch;
pub mod logging;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod preflight;
pub mod principal;
pub mod proxy;
pub mod redis_topology;
pub mod reply;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
pub mod upstream;
pub mod upstream_headers;
