//! The state cookie decoder (pending logins): sealed or raw, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sso_sidecar::config::SessionKey;
use sso_sidecar::session::{PendingLogins, Sealer};

fuzz_target!(|data: &[u8]| {
    let _ = PendingLogins::from_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let sealer = Sealer::new(&[SessionKey([9; 32])]);
        if let Some(plain) = sealer.open("oidc_state", text) {
            if let Some(mut pending) = PendingLogins::from_bytes(&plain) {
                let _ = pending.take("state", 0);
            }
        }
    }
});
