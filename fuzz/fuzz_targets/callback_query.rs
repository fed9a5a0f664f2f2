//! Callback query parsing: the parameters the callback reads from any query string.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        let _ = sso_sidecar::auth::callback_params(query);
    }
});
