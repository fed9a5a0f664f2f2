//! Config parsing and validation of arbitrary text: problems, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sso_sidecar::config::from_str(text, std::path::Path::new("fuzz.toml"));
    }
});
