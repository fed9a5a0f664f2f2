//! Logs go to stdout through `tracing`, as text or JSON. `SSO_SIDECAR_LOG_FORMAT` and
//! `SSO_SIDECAR_LOG` (a filter such as `info` or `sso_sidecar=debug`) override the config.
//!
//! Lines are handed to a background thread that writes them in batches
//! ([`crate::log_batch`]): many access lines share one `write(2)` and one wake-up of the
//! writer instead of one each, and a line appears within a few milliseconds. A full
//! buffer makes the request wait rather than lose its line.

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};
use crate::log_batch::BatchWriter;

/// The writer of stdout's lines, shared with the audit log so that their lines never
/// interleave.
static STDOUT: OnceLock<BatchWriter> = OnceLock::new();

pub fn stdout_writer() -> Option<BatchWriter> {
    STDOUT.get().cloned()
}

pub fn init(config: &LogConfig) {
    let format = match std::env::var("SSO_SIDECAR_LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        Ok("text") => LogFormat::Text,
        _ => config.format,
    };
    let filter = std::env::var("SSO_SIDECAR_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(&config.level));
    if STDOUT.get().is_some() {
        // Already set up (tests, reload): the first subscriber stays.
        return;
    }
    let Ok(writer) = BatchWriter::spawn(Box::new(std::io::stdout()), "sso-sidecar-log") else {
        return;
    };
    let writer = STDOUT.get_or_init(|| writer).clone();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // A second init (tests, reload) keeps the first subscriber; that is fine.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
