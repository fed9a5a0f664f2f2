//! The `rd` check: whatever comes in, what comes out is a path on this site.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rd) = std::str::from_utf8(data) {
        let out = sso_sidecar::auth::safe_return_path(Some(rd), "/oauth2");
        assert!(out.starts_with('/') && !out.starts_with("//") && !out.contains('\\'), "{rd:?} -> {out:?}");
        let base = url::Url::parse("https://shop.example/").unwrap();
        assert_eq!(base.join(&out).unwrap().origin(), base.origin(), "{rd:?} -> {out:?}");
    }
});
