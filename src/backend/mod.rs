//! The commerce backend's own handshake after sign-in: ICM provisioning, Spree's token
//! exchange. Knows nothing of pingora.

pub mod icm;
pub mod spree;
