//! Short, fixed-size stand-ins for values that may be long or secret (tokens, session
//! ids) where they name keys or appear beyond the request.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A short, fixed-size key part for a value that may be long or secret.
pub fn digest(value: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_ref()))
}
