//! The commerce backend's own handshake after sign-in: ICM provisioning, Spree's token
//! exchange, commercetools customer sync. Knows nothing of pingora.

pub mod commercetools;
pub mod icm;
pub mod spree;
