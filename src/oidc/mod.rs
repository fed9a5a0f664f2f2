//! OpenID Connect: the IdP registry (discovery, keys) and the authorization-code flow.
//! Knows nothing of pingora or of the proxy.

pub mod access;
pub mod client_auth;
pub mod dpop;
mod error;
pub mod flow;
pub mod health;
pub mod logout;
pub mod metadata;
mod par;
pub mod refresh;
pub mod registry;
pub mod set;
pub mod verify;

pub use error::LoginError;
pub use flow::{begin, finish, LoginResult, LoginStart, LoginTarget, TokenChecks};
pub use refresh::{refresh, RefreshError};
pub use registry::{Discovered, Provider, Registry};
