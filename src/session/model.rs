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
    /// The key the session's tokens are bound to (DPoP, RFC 9449), sealed with the rest:
    /// any replica can prove possession. Last, so that sessions sealed before it existed
    /// still open ([`Session::from_bytes`]).
    pub dpop: Option<DpopKey>,
}

/// A P-256 private key's scalar (32 bytes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpopKey(pub Vec<u8>);

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DpopKey(..)")
    }
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
    /// Roughly the heap bytes it holds, for weighing caches.
    pub fn approximate_size(&self) -> u32 {
        let tokens = &self.tokens;
        let strings = [
            self.id.len(),
            self.organization.len(),
            self.identity_provider.len(),
            tokens.access_token.len(),
            tokens.refresh_token.as_ref().map_or(0, String::len),
            tokens.id_token.as_ref().map_or(0, String::len),
            self.backend.as_ref().map_or(0, |b| b.token.len() + 64),
            self.groups.iter().map(|g| g.len() + 24).sum(),
            self.claims
                .iter()
                .map(|(k, v)| k.len() + v.iter().map(|v| v.len() + 24).sum::<usize>())
                .sum(),
        ];
        let total = strings.iter().sum::<usize>() + 512;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let plain = postcard::to_stdvec(self).unwrap_or_default();
        if plain.len() > DEFLATE_OVER {
            if let Some(deflated) = deflate_after(vec![DEFLATED], &plain) {
                if deflated.len() < plain.len() {
                    return deflated;
                }
            }
        }
        let mut out = Vec::with_capacity(plain.len() + 1);
        out.push(PLAIN);
        out.extend_from_slice(&plain);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Session> {
        let (&form, rest) = bytes.split_first()?;
        let plain = match form {
            PLAIN => std::borrow::Cow::Borrowed(rest),
            DEFLATED => std::borrow::Cow::Owned(inflate(rest)?),
            _ => return None,
        };
        postcard::from_bytes(&plain).ok().or_else(|| {
            // Sealed before `dpop` was added: the same bytes with "none" appended.
            let mut older = plain.into_owned();
            older.push(0);
            postcard::from_bytes(&older).ok()
        })
    }
}

thread_local! {
    /// One inflater per thread, reset for each session: a new one allocates its ~40 KB
    /// state and window on every request, which showed as a quarter of an authenticated
    /// request's CPU (inflating plus the allocator).
    static INFLATER: std::cell::RefCell<flate2::Decompress> =
        std::cell::RefCell::new(flate2::Decompress::new(false));
}

/// `data` raw-deflated (fast level), appended to `prefix`.
pub(crate) fn deflate_after(prefix: Vec<u8>, data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::write::DeflateEncoder::new(prefix, flate2::Compression::fast());
    encoder.write_all(data).ok()?;
    encoder.finish().ok()
}

/// Raw-deflated `data`, inflated to at most [`MAX_PLAIN`] bytes.
pub(crate) fn inflate(data: &[u8]) -> Option<Vec<u8>> {
    const LIMIT: usize = MAX_PLAIN as usize;
    INFLATER.with(|cell| {
        let mut inflater = cell.borrow_mut();
        inflater.reset(false);
        let mut plain = Vec::with_capacity((data.len() * 4).clamp(1024, LIMIT));
        loop {
            let read = usize::try_from(inflater.total_in()).ok()?;
            let status = inflater
                .decompress_vec(
                    data.get(read..)?,
                    &mut plain,
                    flate2::FlushDecompress::Finish,
                )
                .ok()?;
            match status {
                flate2::Status::StreamEnd => return Some(plain),
                _ if plain.len() < plain.capacity() => {
                    // Room left but no end: the input is truncated or stalled.
                    if usize::try_from(inflater.total_in()).ok()? == read {
                        return None;
                    }
                }
                _ if plain.len() >= LIMIT => return None,
                _ => plain.reserve(plain.len().min(LIMIT - plain.len())),
            }
        }
    })
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
            dpop: None,
        };
        assert_eq!(Session::from_bytes(&session.to_bytes()).unwrap(), session);
        assert!(Session::from_bytes(b"\xff\xff\xff").is_none());
        // Sealed before sessions had a DPoP key: the same bytes without the last field.
        let mut older = session.to_bytes();
        assert_eq!(older.pop(), Some(0), "an absent key is the last byte");
        assert_eq!(Session::from_bytes(&older).unwrap(), session);
        let bound = Session {
            dpop: Some(DpopKey(vec![7; 32])),
            ..session
        };
        assert_eq!(Session::from_bytes(&bound.to_bytes()).unwrap(), bound);
    }

    fn large(subject: &str) -> Session {
        Session {
            id: subject.into(),
            identity: Identity {
                subject: subject.into(),
                ..Default::default()
            },
            groups: (0..100)
                .map(|i| format!("group-{subject}-{i:03}"))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn deflated_sessions_round_trip_one_after_another_on_one_thread() {
        let (a, b) = (large("alice"), large("bob"));
        let (sealed_a, sealed_b) = (a.to_bytes(), b.to_bytes());
        assert_eq!(sealed_a[0], DEFLATED);
        for _ in 0..3 {
            assert_eq!(Session::from_bytes(&sealed_a).unwrap(), a);
            // A truncated one in between leaves the shared inflater usable.
            assert!(Session::from_bytes(&sealed_b[..sealed_b.len() / 2]).is_none());
            assert_eq!(Session::from_bytes(&sealed_b).unwrap(), b);
        }
    }

    #[test]
    fn inflating_stops_at_the_limit() {
        use std::io::Write as _;
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![0u8; 1 << 20]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(inflate(&bomb).is_none(), "1 MiB is past MAX_PLAIN");
        let mut small = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        small.write_all(&vec![7u8; 50_000]).unwrap();
        assert_eq!(
            inflate(&small.finish().unwrap()).unwrap(),
            vec![7u8; 50_000]
        );
    }
}
