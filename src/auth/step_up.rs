//! Step-up (RFC 9470): a route, or the backend, asks for a stronger or more recent sign-in
//! than the session has. A [`Challenge`] is what is asked: `acr` values of which the
//! sign-in must have one, and a `max_age` its `auth_time` must be within. It travels as a
//! `WWW-Authenticate` challenge (to programs, and from the backend), as the query of the
//! sign-in link (to browsers), and in the pending login, where the callback holds the new
//! sign-in to it.

use crate::config::StepUp;
pub use crate::session::strength::Challenge;
#[cfg(test)]
use crate::session::strength::Strength;

/// At most this many `acr` values are asked for at once.
const MAX_ACR_VALUES: usize = 10;
/// Longer than any IdP's `acr` value (URNs, URLs).
const MAX_ACR_LEN: usize = 256;
/// Ten years: a larger `max_age` means nothing.
const MAX_MAX_AGE: u64 = 10 * 365 * 24 * 3600;

impl Challenge {
    /// What a route asks for.
    pub fn of_route(rule: &StepUp) -> Self {
        Challenge {
            acr_values: rule.acr_values.clone(),
            max_age: rule.max_age.map(|age| age.as_secs()),
        }
    }

    /// RFC 9470 §3's challenge for programs.
    pub fn www_authenticate(&self) -> String {
        let mut value = String::from(
            "Bearer error=\"insufficient_user_authentication\", error_description=\"A stronger or more recent sign-in is needed\"",
        );
        if !self.acr_values.is_empty() {
            value.push_str(&format!(", acr_values=\"{}\"", self.acr_values.join(" ")));
        }
        if let Some(max_age) = self.max_age {
            value.push_str(&format!(", max_age={max_age}"));
        }
        value
    }

    /// The `acr_values` and `max_age` query parameters of a sign-in link.
    pub fn query(&self) -> String {
        let mut query = String::new();
        if !self.acr_values.is_empty() {
            query.push_str("&acr_values=");
            query.push_str(&super::urlencode(&self.acr_values.join(" ")));
        }
        if let Some(max_age) = self.max_age {
            query.push_str(&format!("&max_age={max_age}"));
        }
        query
    }

    /// From a sign-in link's parameters, which anyone can write: values that are not
    /// tokens, too many or too long, or a `max_age` that is not a number, give `None`
    /// (then the sign-in is an ordinary one). Asking is harmless: only what the IdP
    /// then says about the sign-in counts.
    pub fn from_params(acr_values: Option<&str>, max_age: Option<&str>) -> Option<Self> {
        let acr_values: Vec<String> = acr_values
            .unwrap_or_default()
            .split(' ')
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        let valid = acr_values.len() <= MAX_ACR_VALUES && acr_values.iter().all(|v| is_token(v));
        let max_age = match max_age {
            None => None,
            Some(text) => Some(text.parse::<u64>().ok().filter(|n| *n <= MAX_MAX_AGE)?),
        };
        let challenge = Challenge {
            acr_values,
            max_age,
        };
        (valid && !challenge.is_empty()).then_some(challenge)
    }

    /// The challenge in a backend's `WWW-Authenticate` values, if one of them is RFC 9470's
    /// `insufficient_user_authentication` (others, and malformed ones, give `None`).
    pub fn from_www_authenticate<'v>(values: impl IntoIterator<Item = &'v str>) -> Option<Self> {
        values.into_iter().find_map(|value| {
            let params = bearer_params(value)?;
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
            };
            if get("error") != Some("insufficient_user_authentication") {
                return None;
            }
            let (acr_values, max_age) = (get("acr_values"), get("max_age"));
            if acr_values.is_none() && max_age.is_none() {
                // A bare `insufficient_user_authentication`: sign in again, now.
                return Some(Challenge {
                    acr_values: Vec::new(),
                    max_age: Some(0),
                });
            }
            Challenge::from_params(acr_values, max_age)
        })
    }

    fn is_empty(&self) -> bool {
        self.acr_values.is_empty() && self.max_age.is_none()
    }
}

/// A value that can stand in a query, a quoted header parameter and a JSON string as it
/// is.
fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_ACR_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// The auth-params of the `Bearer` challenge in one `WWW-Authenticate` value (RFC 9110
/// §11.6.1: `Bearer name=token, name="quoted string", ...`), up to the next scheme; the
/// Bearer challenge may follow others (`Basic realm="x", Bearer error=...`).
fn bearer_params(value: &str) -> Option<Vec<(String, String)>> {
    let mut in_bearer = false;
    let mut params = Vec::new();
    for item in challenge_items(value)? {
        match item {
            Item::Scheme(_) if in_bearer => break,
            Item::Scheme(scheme) => in_bearer = scheme.eq_ignore_ascii_case("bearer"),
            Item::Param(name, value) if in_bearer => params.push((name, value)),
            Item::Param(..) => {}
        }
    }
    in_bearer.then_some(params)
}

enum Item {
    Scheme(String),
    Param(String, String),
}

/// A `WWW-Authenticate` value as schemes and their params; `None` when it is malformed.
fn challenge_items(value: &str) -> Option<Vec<Item>> {
    let mut rest = value;
    let mut items = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() || items.len() > 32 {
            return Some(items);
        }
        let (name, after) = split_token(rest);
        if name.is_empty() {
            return None;
        }
        match after.trim_start().strip_prefix('=') {
            Some(value) => {
                let (value, after_value) = param_value(value.trim_start())?;
                items.push(Item::Param(name.to_owned(), value));
                rest = after_value;
            }
            None => {
                items.push(Item::Scheme(name.to_owned()));
                rest = after;
            }
        }
    }
}

fn split_token(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)))
        .unwrap_or(text.len());
    text.split_at(end)
}

/// A token or a quoted string (with `\` escapes) at the start of `text`.
fn param_value(text: &str) -> Option<(String, &str)> {
    let Some(quoted) = text.strip_prefix('"') else {
        let (token, rest) = split_token(text);
        return (!token.is_empty()).then(|| (token.to_owned(), rest));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &quoted[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const SKEW: Duration = Duration::from_secs(60);

    fn strength(acr: Option<&'static str>, auth_time: Option<i64>) -> Strength<'static> {
        Strength {
            acr,
            amr: &[],
            auth_time,
        }
    }

    #[test]
    fn acr_and_age_are_both_held_to() {
        let mfa = Challenge {
            acr_values: vec!["urn:mfa".into(), "urn:hw".into()],
            max_age: Some(600),
        };
        assert!(mfa.met_by(strength(Some("urn:hw"), Some(NOW - 600)), NOW, SKEW));
        assert!(mfa.met_by(strength(Some("urn:mfa"), Some(NOW - 650)), NOW, SKEW));
        assert!(!mfa.met_by(strength(Some("urn:mfa"), Some(NOW - 700)), NOW, SKEW));
        assert!(!mfa.met_by(strength(Some("urn:pwd"), Some(NOW)), NOW, SKEW));
        assert!(!mfa.met_by(strength(None, Some(NOW)), NOW, SKEW));
        // Without auth_time nobody knows how old the sign-in is.
        assert!(!mfa.met_by(strength(Some("urn:mfa"), None), NOW, SKEW));
        let any_recent = Challenge {
            acr_values: Vec::new(),
            max_age: Some(0),
        };
        assert!(any_recent.met_by(strength(None, Some(NOW - 30)), NOW, SKEW));
        assert!(!any_recent.met_by(strength(None, Some(NOW - 90)), NOW, SKEW));
    }

    #[test]
    fn challenges_round_trip_through_header_and_query() {
        let asked = Challenge {
            acr_values: vec!["urn:mfa".into(), "gold".into()],
            max_age: Some(300),
        };
        let header = asked.www_authenticate();
        assert!(header.starts_with("Bearer error=\"insufficient_user_authentication\""));
        assert!(
            header.contains("acr_values=\"urn:mfa gold\", max_age=300"),
            "{header}"
        );
        assert_eq!(
            Challenge::from_www_authenticate([header.as_str()]),
            Some(asked.clone())
        );
        let query = asked.query();
        assert_eq!(query, "&acr_values=urn%3Amfa+gold&max_age=300");
        let params = crate::auth::Params::parse(Some(&query[1..]));
        let back = Challenge::from_params(params.get("acr_values"), params.get("max_age"));
        assert_eq!(back, Some(asked));
    }

    #[test]
    fn backend_challenges_are_read_strictly() {
        let read = |v: &str| Challenge::from_www_authenticate([v]);
        assert_eq!(
            read("Basic realm=\"shop\", Bearer error=\"insufficient_user_authentication\", max_age=60"),
            Some(Challenge { acr_values: vec![], max_age: Some(60) })
        );
        assert_eq!(
            read("bearer error=insufficient_user_authentication, acr_values=\"a\\\"b c\""),
            None,
            "a quote is no part of an acr value"
        );
        assert_eq!(
            read("Bearer error=\"insufficient_user_authentication\""),
            Some(Challenge {
                acr_values: vec![],
                max_age: Some(0)
            })
        );
        assert_eq!(read("Bearer error=\"invalid_token\""), None);
        assert_eq!(read("Bearer realm=\"x\""), None);
        assert_eq!(read("Basic realm=\"x\""), None);
        assert_eq!(
            read("Bearer error=\"insufficient_user_authentication"),
            None
        );
        assert_eq!(read(""), None);
        assert_eq!(
            read("Bearer error=\"insufficient_user_authentication\", max_age=-5"),
            None
        );
    }

    #[test]
    fn sign_in_links_cannot_ask_for_anything() {
        assert_eq!(Challenge::from_params(None, None), None);
        assert_eq!(Challenge::from_params(Some("a\"b"), None), None);
        assert_eq!(Challenge::from_params(Some(&"x ".repeat(11)), None), None);
        assert_eq!(Challenge::from_params(None, Some("1e9")), None);
        assert_eq!(Challenge::from_params(None, Some("999999999999")), None);
        assert!(Challenge::from_params(Some("urn:mfa"), Some("0")).is_some());
    }
}
