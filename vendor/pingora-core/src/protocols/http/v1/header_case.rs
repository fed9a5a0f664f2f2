// sso-sidecar: whether HTTP/1 heads keep their header names' original case.
//
// Released pingora keeps a second map per request and response with each header name as
// it was spelled, so that a proxy writes names the way it got them. Header names are
// case-insensitive (RFC 9110 §5.1), and keeping the second map costs a hashed insert, a
// name copy and an allocation for every header read or added. A server that does not
// need the spelling turns it off; heads are then written with the standard names titled
// (`Content-Type`) and all others in lower case, as HTTP/2 and Envoy write them.

use std::sync::atomic::{AtomicBool, Ordering};

static KEEP: AtomicBool = AtomicBool::new(true);

/// Whether heads read from now on keep their header names' spelling (the default).
pub fn keep_header_case(keep: bool) {
    KEEP.store(keep, Ordering::Relaxed);
}

pub(crate) fn keeps_header_case() -> bool {
    KEEP.load(Ordering::Relaxed)
}
