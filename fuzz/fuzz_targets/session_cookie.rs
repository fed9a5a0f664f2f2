//! The session cookie decoder: any Cookie header must load as a session (or a reference to
//! a server-side one) or be refused, never panic.
#![no_main]
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sso_sidecar::config::SessionKey;
use sso_sidecar::session::{jar, Sealer, Session, SessionReference};

fuzz_target!(|data: &[u8]| {
    let sealer = Sealer::new(&[SessionKey([7; 32])]);
    // Raw payloads straight into the deserializer, as if they had been decrypted.
    let _ = Session::from_bytes(data);
    // The same for what the cookie holds with server-side sessions, and a reference's
    // view of arbitrary stored data.
    if let Some(reference) = SessionReference::from_bytes(data) {
        let _ = reference.open(&String::from_utf8_lossy(data));
    }
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::COOKIE, value);
    if let Some(sealed) = jar::read_chunked(&headers, "_sso_session") {
        if let Some(plain) = sealer.open("_sso_session", &sealed) {
            let _ = Session::from_bytes(&plain);
        }
    }
});
