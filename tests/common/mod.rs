//! Shared test harness, one module per part: the sidecar, the OpenID provider, upstreams,
//! browsers, Redis, nginx and commercetools' API.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod browser;
pub mod commercetools;
pub mod nginx;
pub mod pki;
mod provider;
pub mod redis_servers;
mod sidecar;
mod upstream;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
#[allow(unused_imports)]
pub use redis_servers::{RedisCluster, RedisSentinels, RedisServer};
use sha2::{Digest, Sha256};
// Each test binary uses some of the parts.
#[allow(unused_imports)]
pub use {browser::*, provider::*, sidecar::*, upstream::*};

pub const SESSION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Seconds since the Unix epoch, for token claims.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Checks `check` until it holds or `limit` passes; whether it held.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
