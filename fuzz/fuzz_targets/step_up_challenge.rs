//! RFC 9470 challenges as a backend sends them, and step-up sign-in links as anyone can
//! write them: never a panic, and whatever is accepted goes back out (header, query) and
//! is read again as the same challenge, with nothing in it that could break a quoted
//! header parameter or a query.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sso_sidecar::auth::step_up::Challenge;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (header, link) = text.split_once('\n').unwrap_or((text, ""));
    let mut found = Vec::new();
    if let Some(challenge) = Challenge::from_www_authenticate([header]) {
        found.push(challenge);
    }
    let (acr, age) = link.split_once('&').unwrap_or((link, ""));
    let age = (!age.is_empty()).then_some(age);
    if let Some(challenge) = Challenge::from_params(Some(acr), age) {
        found.push(challenge);
    }
    for challenge in found {
        for value in &challenge.acr_values {
            assert!(!value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'));
        }
        let header = challenge.www_authenticate();
        assert_eq!(Challenge::from_www_authenticate([header.as_str()]).as_ref(), Some(&challenge));
    }
});
