// Added by sso-sidecar (not upstream pingora): limits on reading an HTTP/1 request head.
//
// Upstream pingora buffers a request head up to 1 MiB and times out only single reads, so
// a client trickling one header line a second, or sending an endless `Cookie` header, keeps
// a connection and its buffer for as long as it likes. These limits stop reading at once:
// a head over `max_bytes` or `max_headers` gets `431`, one not complete within `timeout`
// (counted from the connection's first request, or from the first byte of a later one on a
// kept-alive connection) gets `408`, and the connection is closed. They are process-wide,
// set by the application at start and on reload.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::common::{MAX_HEADERS, MAX_HEADER_SIZE};

/// The limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    pub max_bytes: usize,
    /// At most 256, the parser's own limit.
    pub max_headers: usize,
    pub timeout: Option<Duration>,
}

static MAX_BYTES: AtomicUsize = AtomicUsize::new(MAX_HEADER_SIZE);
static MAX_COUNT: AtomicUsize = AtomicUsize::new(MAX_HEADERS);
/// Milliseconds; 0 means none.
static TIMEOUT_MS: AtomicU64 = AtomicU64::new(0);

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooLarge = 0,
    TooManyHeaders = 1,
    Timeout = 2,
}

impl Refusal {
    pub const ALL: [Refusal; 3] = [Refusal::TooLarge, Refusal::TooManyHeaders, Refusal::Timeout];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooLarge => "header_too_large",
            Refusal::TooManyHeaders => "too_many_headers",
            Refusal::Timeout => "header_timeout",
        }
    }

    /// The complete response sent before closing the connection.
    pub(crate) fn response(self) -> &'static [u8] {
        match self {
            Refusal::TooLarge | Refusal::TooManyHeaders => {
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Refusal::Timeout => {
                b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
        }
    }
}

static REFUSED: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Sets the limits for request heads read from now on.
pub fn set(limits: HeadLimits) {
    MAX_BYTES.store(limits.max_bytes, Ordering::Relaxed);
    MAX_COUNT.store(limits.max_headers.min(MAX_HEADERS), Ordering::Relaxed);
    let ms = limits.timeout.map_or(0, |t| t.as_millis().clamp(1, u64::MAX as u128) as u64);
    TIMEOUT_MS.store(ms, Ordering::Relaxed);
}

pub fn current() -> HeadLimits {
    let ms = TIMEOUT_MS.load(Ordering::Relaxed);
    HeadLimits {
        max_bytes: MAX_BYTES.load(Ordering::Relaxed),
        max_headers: MAX_COUNT.load(Ordering::Relaxed),
        timeout: (ms > 0).then(|| Duration::from_millis(ms)),
    }
}

/// How many request heads were refused for `reason` since the process started.
pub fn refused(reason: Refusal) -> u64 {
    REFUSED[reason as usize].load(Ordering::Relaxed)
}

pub(crate) fn count(reason: Refusal) {
    REFUSED[reason as usize].fetch_add(1, Ordering::Relaxed);
}
