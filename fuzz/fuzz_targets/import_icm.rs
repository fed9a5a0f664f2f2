//! `import-icm` on arbitrary properties text: TOML or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sso_sidecar::import_icm::import(text, "fuzz.properties", false);
    }
});
