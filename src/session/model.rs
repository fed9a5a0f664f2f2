//! What a session holds. Serialized compactly with postcard before sealing.

use serde::{Deserialize, Serialize};

/// The signed-in person, as the identity headers describe them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    /// Azure AD's `oid` where present, else `sub`: stable across a tenant's IdPs.
    pub external_id: String,
    /// The IdP said the email is verified (`email_verified: true`); absent means no.
    pub email_verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Tokens {
    pub access_token: String,
    /// Unix seconds; `None` when the IdP did not say.
    pub access_expires_at: Option<i64>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Session {
    /// Random id, for logs and back-channel logout bookkeeping.
    pub id: String,
    pub organization: String,
    pub identity_provider: String,
    pub identity: Identity,
    pub tokens: Tokens,
    /// The IdP's session id (`sid` claim), for back-channel logout.
    pub idp_session_id: Option<String>,
    /// Unix seconds when the user signed in; `session.max_age` counts from here.
    pub issued_at: i64,
    /// Unix seconds of the last request, for `session.idle_timeout`.
    pub last_seen: i64,
    /// The shop's own tokens where the backend exchanges the IdP's (Spree).
    pub backend: Option<BackendTokens>,
    /// The user's groups (the IdP's `groups_claim`), for `X-SSO-Groups`.
    pub groups: Vec<String>,
    /// Claims that membership and route rules look at, by claim path.
    pub claims: super::claims::KeptClaims,
}

/// A backend session obtained by token exchange: the shop's JWT and refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BackendTokens {
    pub token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds, read from the token's `exp`.
    pub expires_at: Option<i64>,
}

/// The first byte of a serialized session: how the rest is stored.
const PLAIN: u8 = 0;
const DEFLATED: u8 = 1;
/// Sessions larger than this are deflated: an Azure session with its tokens and 20 group
/// ids would not fit in one 4 KB cookie otherwise.
const DEFLATE_OVER: usize = 1024;
/// No session inflates past this (the data was sealed by us, so this is only a backstop).
const MAX_PLAIN: u64 = 64 * 1024;

impl Session {
    pub fn to_bytes(&self) -> Vec<u8> {
        use std::io::Write as _;
        let plain = postcard::to_stdvec(self).unwrap_or_default();
        if plain.len() > DEFLATE_OVER {
            let mut encoder =
                flate2::write::DeflateEncoder::new(vec![DEFLATED], flate2::Compression::fast());
            if encoder.write_all(&plain).is_ok() {
                if let Ok(deflated) = encoder.finish() {
                    if deflated.len() < plain.len() {
                        return deflated;
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(plain.len() + 1);
        out.push(PLAIN);
        out.extend_from_slice(&plain);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Session> {
        use std::io::Read as _;
        let (&form, rest) = bytes.split_first()?;
        match form {
            PLAIN => postcard::from_bytes(rest).ok(),
            DEFLATED => {
                let mut plain = Vec::new();
                flate2::read::DeflateDecoder::new(rest)
                    .take(MAX_PLAIN)
                    .read_to_end(&mut plain)
                    .ok()?;
                postcard::from_bytes(&plain).ok()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let session = Session {
            id: "abc".into(),
            organization: "Operations".into(),
            identity_provider: "oidc_kc_1".into(),
            identity: Identity {
                subject: "u1".into(),
                email: Some("a@b".into()),
                external_id: "u1".into(),
                ..Default::default()
            },
            tokens: Tokens {
                access_token: "at".into(),
                access_expires_at: Some(1),
                refresh_token: None,
                id_token: Some("it".into()),
            },
            idp_session_id: None,
            issued_at: 10,
            last_seen: 11,
            backend: Some(BackendTokens {
                token: "spree".into(),
                refresh_token: Some("rt".into()),
                expires_at: Some(5),
            }),
            groups: vec!["buyers".into()],
            claims: [("groups".to_owned(), vec!["a".to_owned(), "b".to_owned()])].into(),
        };
        assert_eq!(Session::from_bytes(&session.to_bytes()).unwrap(), session);
        assert!(Session::from_bytes(b"\xff\xff\xff").is_none());
    }
}
