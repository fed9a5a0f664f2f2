//! sso-sidecar: a single sign-on reverse proxy for commerce backends.
//!
//! [`server::build`] assembles exactly what `sso-sidecar run` serves, so integration
//! tests start the same thing as production.

pub mod cli;
pub mod config;
