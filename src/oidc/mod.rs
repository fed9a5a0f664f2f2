//! OpenID Connect: the IdP registry (discovery, keys) and the authorization-code flow.
//! Knows nothing of pingora or of the proxy.

pub mod access;
mod error;
pub mod flow;
pub mod logout;
pub mod metadata;
pub mod refresh;
pub mod registry;
pub mod verify;

pub use error::LoginError;
pub use flow::{begin, finish, LoginResult, LoginStart, LoginTarget, TokenChecks};
pub use refresh::{refresh, RefreshError};
pub use registry::{Discovered, Provider, Registry};

/// An error with its whole chain of causes, for logs and `/readyz`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
