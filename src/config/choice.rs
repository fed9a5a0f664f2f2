//! Config values that are one word out of a fixed set (`auth = "required"`): the words,
//! their spelling in messages and the case rule live here, once for every such key.

/// A config value chosen from a fixed set of words.
pub trait Choice: Copy + 'static {
    /// Every value, in the order messages list them.
    const ALL: &'static [Self];

    /// The word as documented (and as `check` prints it).
    fn as_str(self) -> &'static str;

    /// The value `text` names. Case is ignored: ICM's properties are case-insensitive and
    /// operators copy words from both worlds (`lax`, `Lax`, `LOCAL`, `local`).
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|value| value.as_str().eq_ignore_ascii_case(text))
    }

    /// `"a", "b", "c"`: the allowed words for a message.
    fn listed() -> String {
        Self::ALL
            .iter()
            .map(|value| format!("\"{}\"", value.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Implements [`Choice`] for an enum: each variant with its word.
macro_rules! choice {
    ($name:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $crate::config::Choice for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }
    };
}
pub(crate) use choice;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMode, LogoutPolicy, SameSite};

    #[test]
    fn words_match_in_any_case_and_list_in_order() {
        assert_eq!(SameSite::parse("lax"), Some(SameSite::Lax));
        assert_eq!(SameSite::parse(" STRICT "), Some(SameSite::Strict));
        assert_eq!(
            LogoutPolicy::parse("federated"),
            Some(LogoutPolicy::Federated)
        );
        assert_eq!(AuthMode::parse("sometimes"), None);
        assert_eq!(
            AuthMode::listed(),
            "\"required\", \"optional\", \"public\", \"api\""
        );
    }
}
