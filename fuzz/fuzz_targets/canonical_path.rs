//! Path canonicalisation: never panics, and whatever it accepts leaves nothing for a
//! backend to normalise (no dot or empty segment, no encoded dot or separator), and
//! canonicalising again changes nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sso_sidecar::routing::canonical::{canonical_path, routing_path};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = canonical_path(raw) else {
        return;
    };
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
    for bad in ["/../", "/./", "//"] {
        assert!(!path.contains(bad), "{raw:?} -> {path:?}");
    }
    assert!(!path.ends_with("/..") && !path.ends_with("/."), "{raw:?} -> {path:?}");
    let lower = path.to_ascii_lowercase();
    for encoded in ["%2e", "%2f", "%5c", "%00"] {
        assert!(!lower.contains(encoded), "{raw:?} -> {path:?}");
    }
    assert_eq!(canonical_path(&path).as_deref(), Ok(&*path), "{raw:?}");
    let routed = routing_path(&path);
    assert!(routed.starts_with('/') && !routed.contains("//") && !routed.contains(';'));
});
