//! Reading a compact JWT's parts without verifying it: for claims of a token that was
//! verified before (a session's ID token), or to pick the key that will verify it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

/// The decoded JSON of part `index` (0 header, 1 payload) of a compact JWT.
pub fn jwt_part(jwt: &str, index: usize) -> Option<serde_json::Map<String, Value>> {
    let part = jwt.split('.').nth(index)?;
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}
