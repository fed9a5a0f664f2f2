//! Host canonicalisation: never panics, and what it accepts is a fixed point (the
//! canonical host, sent again as `Host`, is the same host) with nothing in it a virtual-host
//! match could read differently.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sso_sidecar::host::{request_host, HostSources};

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the host comes from; the rest is split at the first NUL
    // into a `Host` field and an authority.
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (field, authority) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let fields = [field];
    let scheme = if selector & 1 == 0 { "http" } else { "https" };
    let sources = HostSources {
        host_fields: if selector & 2 == 0 { &fields } else { &[] },
        authority: authority.filter(|_| selector & 4 == 0),
        scheme,
    };
    let Ok(host) = request_host(sources) else {
        return;
    };
    let text = host.to_string();
    assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b)), "{text}");
    assert!(!host.name().ends_with('.') && !host.name().is_empty(), "{text}");
    assert_eq!(host.name(), host.name().to_ascii_lowercase());
    assert!(host.is_spelled(text.as_bytes()), "{text}");
    let again = [text.as_bytes()];
    let sources = HostSources {
        host_fields: &again,
        authority: None,
        scheme,
    };
    assert_eq!(request_host(sources), Ok(host));
});
