//! Configuration: TOML in, one validated [`Config`] out, or every problem found.

mod choice;
pub mod defaults;
mod duration;
mod error;
mod model;
mod raw;
pub use raw::every_key;
pub mod client_key;
mod secret;
pub mod signing_key;
mod validate;

use std::path::Path;

pub use duration::{parse_text as parse_duration, whole_secs};
pub use error::{ConfigError, Problem};
pub use model::*;
pub use secret::Secret;

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        problems: vec![Problem::new("", format!("cannot read config file: {e}"))],
    })?;
    from_str(&text, path)
}

/// Validates config text; `file` only names the source in messages.
pub fn from_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
    validate::validate(text, file).map_err(|problems| ConfigError {
        file: file.to_owned(),
        problems,
    })
}
