//! Secrets from config: a literal, `env:NAME` or `file:/path`, resolved once at load time.

use std::fmt;

/// A resolved secret value. `Debug` and `Display` never show it, so a secret cannot end
/// up in a log line or in `check` output by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where the value is sent to its rightful receiver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Resolves a secret reference. The error text names the source, never the value.
pub fn resolve(reference: &str) -> Result<Secret, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(Secret(value)),
            Ok(_) => Err(format!("environment variable {name} is empty")),
            Err(_) => Err(format!("environment variable {name} is not set")),
        }
    } else if let Some(path) = reference.strip_prefix("file:") {
        match std::fs::read_to_string(path) {
            // Files written by editors or `echo` end in a newline that is not part of the secret.
            Ok(value) => {
                let value = value.trim_end_matches(['\r', '\n']);
                if value.is_empty() {
                    Err(format!("file {path} is empty"))
                } else {
                    Ok(Secret(value.to_owned()))
                }
            }
            Err(e) => Err(format!("cannot read file {path}: {e}")),
        }
    } else if reference.is_empty() {
        Err("is empty".to_owned())
    } else {
        Ok(Secret(reference.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn literal_env_and_file() {
        assert_eq!(resolve("plain").unwrap().expose(), "plain");
        std::env::set_var("SSO_SIDECAR_TEST_SECRET_A", "from-env");
        assert_eq!(
            resolve("env:SSO_SIDECAR_TEST_SECRET_A").unwrap().expose(),
            "from-env"
        );
        let err = resolve("env:SSO_SIDECAR_TEST_SECRET_MISSING").unwrap_err();
        assert!(
            err.contains("SSO_SIDECAR_TEST_SECRET_MISSING is not set"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-file\n").unwrap();
        let reference = format!("file:{}", path.display());
        assert_eq!(resolve(&reference).unwrap().expose(), "from-file");
        let err = resolve("file:/nonexistent/secret").unwrap_err();
        assert!(
            err.contains("cannot read file /nonexistent/secret"),
            "{err}"
        );
    }
}
