//! How a user signed in, as the IdP said in the ID token (or an access token): `acr` (the
//! class of authentication, e.g. with a second factor), `amr` (the methods used) and
//! `auth_time` (when). Step-up rules compare them; the upstream is told them.
//!
//! A [`Challenge`] is what a step-up asks of them (see `crate::auth::step_up`).
//!
//! A session keeps them among its kept claims ([`super::claims::KeptClaims`]), under these
//! names, so sessions sealed before step-up existed still open.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::claims::{values_at, KeptClaims};

/// The claims a session always keeps for step-up rules.
pub const STRENGTH_CLAIMS: [&str; 3] = ["acr", "amr", "auth_time"];

/// A borrowed view of how someone signed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Strength<'a> {
    pub acr: Option<&'a str>,
    pub amr: &'a [String],
    /// Unix seconds.
    pub auth_time: Option<i64>,
}

impl<'a> Strength<'a> {
    /// From a session's kept claims.
    pub fn kept(claims: &'a KeptClaims) -> Self {
        let first = |name: &str| claims.get(name).and_then(|v| v.first());
        Strength {
            acr: first("acr").map(String::as_str),
            amr: claims.get("amr").map_or(&[], Vec::as_slice),
            auth_time: first("auth_time").and_then(|t| t.parse().ok()),
        }
    }
}

/// The same, owned, read from a token's claims (a bearer token's on `api` routes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedStrength {
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub auth_time: Option<i64>,
}

impl OwnedStrength {
    pub fn from_claims(claims: &Map<String, Value>) -> Self {
        OwnedStrength {
            acr: claims.get("acr").and_then(Value::as_str).map(str::to_owned),
            amr: values_at(claims, "amr"),
            auth_time: claims.get("auth_time").and_then(Value::as_i64),
        }
    }

    pub fn view(&self) -> Strength<'_> {
        Strength {
            acr: self.acr.as_deref(),
            amr: &self.amr,
            auth_time: self.auth_time,
        }
    }
}

/// What a sign-in must be to pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The sign-in's `acr` must be one of these; empty: any.
    pub acr_values: Vec<String>,
    /// Its `auth_time` must be at most this many seconds ago.
    pub max_age: Option<u64>,
}

impl Challenge {
    /// Whether a sign-in of this strength passes, `now` and allowing `skew` for the IdP's
    /// clock. A sign-in without `auth_time` does not pass a `max_age`: nobody knows when
    /// it happened.
    pub fn met_by(&self, strength: Strength<'_>, now: i64, skew: Duration) -> bool {
        let acr_ok = self.acr_values.is_empty()
            || strength
                .acr
                .is_some_and(|acr| self.acr_values.iter().any(|v| v == acr));
        let age_ok = self.max_age.is_none_or(|max_age| {
            let limit = max_age.saturating_add(skew.as_secs());
            strength.auth_time.is_some_and(|at| {
                now.saturating_sub(at) <= i64::try_from(limit).unwrap_or(i64::MAX)
            })
        });
        acr_ok && age_ok
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kept_and_token_claims_read_alike() {
        let claims = json!({"acr": "urn:mfa", "amr": ["pwd", "otp"], "auth_time": 1_700_000_000});
        let claims = claims.as_object().unwrap();
        let owned = OwnedStrength::from_claims(claims);
        let kept = super::super::claims::keep(claims, STRENGTH_CLAIMS, 10);
        assert_eq!(Strength::kept(&kept), owned.view());
        assert_eq!(owned.view().acr, Some("urn:mfa"));
        assert_eq!(owned.view().amr, ["pwd", "otp"]);
        assert_eq!(owned.view().auth_time, Some(1_700_000_000));
        assert_eq!(Strength::kept(&KeptClaims::new()), Strength::default());
    }
}
