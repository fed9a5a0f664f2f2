//! Errors as one line for logs and `/readyz`: reqwest and rustls hide the cause that
//! matters (refused, timed out, unknown CA) a few `source()`s down.

/// An error with its whole chain of causes, for logs and `/readyz`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
