//! Logs go to stdout through `tracing`, as text or JSON. `SSO_SIDECAR_LOG_FORMAT` and
//! `SSO_SIDECAR_LOG` (a filter such as `info` or `sso_sidecar=debug`) override the config.
//!
//! Lines are handed to a background thread that writes them through a buffer, flushed
//! whenever it has nothing more to write: under load many access lines share one
//! `write(2)` instead of one each, and an idle sidecar's lines still appear at once. A
//! full queue makes the request wait rather than lose its line.

use std::sync::OnceLock;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// The writer of stdout's lines, shared with the audit log so that their lines never
/// interleave.
static STDOUT: OnceLock<NonBlocking> = OnceLock::new();

pub fn stdout_writer() -> Option<NonBlocking> {
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
    // The writer thread lives as long as the process; its guard is kept for that.
    static WRITER: OnceLock<WorkerGuard> = OnceLock::new();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("sso-sidecar-log")
        .finish(std::io::BufWriter::new(std::io::stdout()));
    if WRITER.set(guard).is_err() {
        // Already set up (tests, reload): the first subscriber stays.
        return;
    }
    let _ = STDOUT.set(writer.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // A second init (tests, reload) keeps the first subscriber; that is fine.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
