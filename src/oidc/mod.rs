//! OpenID Connect: the IdP registry (discovery, keys) and the authorization-code flow.
//! Knows nothing of pingora or of the proxy.

mod error;
pub mod flow;
pub mod registry;

pub use error::LoginError;
pub use flow::{begin, finish, LoginResult, LoginStart, LoginTarget, TokenChecks};
pub use registry::{Discovered, Provider, Registry};
