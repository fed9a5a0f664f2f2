//! Sessions in cookies: the model, sealing, chunking, and the pending-login state cookie.
//! Nothing here knows about pingora; it works on `http::HeaderMap`s.

pub mod claims;
mod codec;
pub mod form;
pub mod jar;
mod model;
mod pending;
pub mod strength;

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub use codec::Sealer;
pub use jar::CookieAttributes;
pub use model::{BackendTokens, DpopKey, Identity, Session, Tokens};
pub use pending::{constant_time_eq, PendingLogin, PendingLogins, MAX_PENDING};

use crate::config::Config;

/// Why a request's session is not usable. Any of these means "not signed in".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    /// Tampered, truncated, sealed with an unknown key, or not a session.
    Invalid,
    Expired,
    Idle,
    /// Server-side sessions: the store cannot be reached to load it.
    Unavailable,
    /// Ended by a logout here, at the IdP (back-channel) or on another replica.
    Revoked,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Invalid => "invalid",
            Rejection::Expired => "expired",
            Rejection::Idle => "idle",
            Rejection::Unavailable => "store_unavailable",
            Rejection::Revoked => "revoked",
        }
    }
}

/// What the cookie holds with server-side sessions: where the session is, and the key it
/// is sealed with there (so the store alone cannot read sessions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReference {
    pub id: String,
    pub key: [u8; 32],
}

impl SessionReference {
    pub fn new(session_id: &str) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        SessionReference {
            id: session_id.to_owned(),
            key,
        }
    }

    pub fn seal(&self, session: &Session) -> String {
        Sealer::new(&[crate::config::SessionKey(self.key)]).seal(&self.id, &session.to_bytes())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }

    pub fn open(&self, sealed: &str) -> Option<Session> {
        let plain = Sealer::new(&[crate::config::SessionKey(self.key)]).open(&self.id, sealed)?;
        Session::from_bytes(&plain)
    }
}

/// The name of every cookie the sidecar sets, derived from the config in one place. None
/// of them, their chunks (`name.1`) or anything named after them (`name_…`) is ever
/// forwarded upstream.
#[derive(Debug, Clone)]
pub struct CookieNames {
    pub session: String,
    /// The pending logins (state, nonce, PKCE verifier).
    pub state: String,
    /// Remembers the last organization typed on the login page.
    pub org: String,
    /// A form kept across a sign-in (`session.preserve_post_max`).
    pub form: String,
}

impl CookieNames {
    pub fn new(config: &Config) -> Self {
        let session = config.session.cookie_name.clone();
        CookieNames {
            org: format!("{session}_org"),
            form: format!("{session}_form"),
            state: config.oidc.state_cookie_name.clone(),
            session,
        }
    }

    /// Whether the sidecar owns `cookie_name`: one of its names (`org` and `form` are
    /// named after `session`), a chunk of one, or a name derived from one.
    pub fn owns(&self, cookie_name: &str) -> bool {
        [&self.session, &self.state].iter().any(|base| {
            cookie_name
                .strip_prefix(base.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '_']))
        })
    }
}

/// Reads and writes the session cookie and the state cookie.
pub struct SessionCookies {
    sealer: Sealer,
    pub session_name: String,
    pub state_name: String,
    /// Remembers the last organization typed on the login page.
    pub org_name: String,
    /// A form kept across a sign-in (`session.preserve_post_max`).
    pub form_name: String,
    pub attributes: CookieAttributes,
    state_attributes: CookieAttributes,
    max_age: Duration,
    idle_timeout: Option<Duration>,
    /// Sessions recently opened, by their sealed cookie: the same sealed bytes always open
    /// to the same session under the same keys (a reload builds a new cache), so a
    /// browser's next requests skip decoding, decrypting and inflating it. Keyed by the
    /// whole cookie (compared, not only hashed), so no other cookie can ever match; a
    /// seeded fast hash, as cookies are long. Age limits and revocations are still
    /// checked on every request.
    opened: moka::sync::Cache<Arc<[u8]>, Arc<Session>, foldhash::fast::RandomState>,
}

/// A kept form's cookies, at most: they travel back on the callback request, whose head
/// must stay well inside `limits.max_header_bytes`.
const MAX_FORM_COOKIE_BYTES: usize = 16 * 1024;

/// Bytes of opened sessions kept (their approximate size), at most.
const OPENED_BYTES: u64 = 4 * 1024 * 1024;
/// An opened session is forgotten this long after its last use.
const OPENED_IDLE: Duration = Duration::from_secs(120);

impl SessionCookies {
    pub fn new(config: &Config) -> Self {
        let session = &config.session;
        let attributes = CookieAttributes {
            secure: session.secure,
            same_site: session.same_site,
            domain: session.domain.clone(),
            path: "/".to_owned(),
        };
        // The state cookie must come back on the IdP's redirect, a cross-site top-level
        // navigation: Lax allows exactly that, and it is only sent to our own endpoints.
        let state_attributes = CookieAttributes {
            same_site: crate::config::SameSite::Lax,
            path: config.oidc.path_prefix.clone(),
            ..attributes.clone()
        };
        let names = CookieNames::new(config);
        SessionCookies {
            sealer: Sealer::new(&session.keys),
            session_name: names.session,
            state_name: names.state,
            org_name: names.org,
            form_name: names.form,
            attributes,
            state_attributes,
            max_age: session.max_age,
            idle_timeout: session.idle_timeout,
            opened: moka::sync::Cache::builder()
                .max_capacity(OPENED_BYTES)
                .weigher(|sealed: &Arc<[u8]>, session: &Arc<Session>| {
                    session
                        .approximate_size()
                        .saturating_add(sealed.len() as u32)
                })
                .time_to_idle(OPENED_IDLE)
                .build_with_hasher(foldhash::fast::RandomState::default()),
        }
    }

    /// The request's session, if it has a valid one at `now` (Unix seconds).
    /// Shared with the cache of opened sessions: whoever changes it makes a copy.
    pub fn load(&self, headers: &HeaderMap, now: i64) -> Result<Arc<Session>, Rejection> {
        // Looked up by the cookie's bytes: only a cookie opened before (so checked) can
        // match, and a new one is checked as text before it is opened.
        let sealed =
            jar::read_chunked_bytes(headers, &self.session_name).ok_or(Rejection::Missing)?;
        let session = match self.opened.get(&*sealed) {
            Some(session) => session,
            None => {
                let text = jar::visible(&sealed).ok_or(Rejection::Missing)?;
                let bytes = self
                    .sealer
                    .open(&self.session_name, text)
                    .ok_or(Rejection::Invalid)?;
                let session = Arc::new(Session::from_bytes(&bytes).ok_or(Rejection::Invalid)?);
                self.opened.insert(Arc::from(&*sealed), session.clone());
                session
            }
        };
        self.check_age(session, now)
    }

    /// `session` if neither `max_age` nor `idle_timeout` has run out at `now`.
    pub fn check_age<S: std::ops::Deref<Target = Session>>(
        &self,
        session: S,
        now: i64,
    ) -> Result<S, Rejection> {
        if now
            >= session
                .issued_at
                .saturating_add(self.max_age.as_secs() as i64)
        {
            return Err(Rejection::Expired);
        }
        if let Some(idle) = self.idle_timeout {
            if now >= session.last_seen.saturating_add(idle.as_secs() as i64) {
                return Err(Rejection::Idle);
            }
        }
        Ok(session)
    }

    /// `Set-Cookie` values storing `session`, and the total size of the sealed value.
    pub fn store(&self, headers: &HeaderMap, session: &Session, now: i64) -> (Vec<String>, usize) {
        let sealed = self.sealer.seal(&self.session_name, &session.to_bytes());
        let max_age = self.remaining(session, now);
        let size = sealed.len();
        (
            self.attributes
                .set_chunked(headers, &self.session_name, &sealed, Some(max_age)),
            size,
        )
    }

    /// Associated data of a cookie holding a [`SessionReference`]: such a value can never
    /// be read as a whole session, nor the other way round.
    fn reference_name(&self) -> String {
        format!("{}#reference", self.session_name)
    }

    /// The request's session reference (server-side sessions), if its cookie holds one.
    pub fn load_reference(&self, headers: &HeaderMap) -> Option<SessionReference> {
        let sealed = jar::read_chunked(headers, &self.session_name)?;
        let bytes = self.sealer.open(&self.reference_name(), &sealed)?;
        SessionReference::from_bytes(&bytes)
    }

    /// `Set-Cookie` values pointing at a server-side `session`.
    pub fn store_reference(
        &self,
        headers: &HeaderMap,
        reference: &SessionReference,
        session: &Session,
        now: i64,
    ) -> Vec<String> {
        let sealed = self
            .sealer
            .seal(&self.reference_name(), &reference.to_bytes());
        self.attributes.set_chunked(
            headers,
            &self.session_name,
            &sealed,
            Some(self.remaining(session, now)),
        )
    }

    /// How long `session` may still live.
    pub fn remaining(&self, session: &Session, now: i64) -> Duration {
        let remaining = session
            .issued_at
            .saturating_add(self.max_age.as_secs() as i64)
            - now;
        Duration::from_secs(remaining.max(0) as u64)
    }

    pub fn clear(&self, headers: &HeaderMap) -> Vec<String> {
        self.attributes.clear_chunked(headers, &self.session_name)
    }

    pub fn pending(&self, headers: &HeaderMap) -> PendingLogins {
        jar::cookie(headers, &self.state_name)
            .and_then(|sealed| self.sealer.open(&self.state_name, sealed))
            .and_then(|bytes| PendingLogins::from_bytes(&bytes))
            .unwrap_or_default()
    }

    /// The `Set-Cookie` value for the pending logins; clears the cookie when none is left.
    pub fn store_pending(&self, pending: &PendingLogins) -> String {
        if pending.entries.is_empty() {
            return self.state_attributes.clear(&self.state_name);
        }
        let sealed = self.sealer.seal(&self.state_name, &pending.to_bytes());
        let ttl = Duration::from_secs(pending::PENDING_TTL_SECS as u64);
        self.state_attributes
            .set(&self.state_name, &sealed, Some(ttl))
    }

    /// `Set-Cookie` values keeping `form` for the sign-in's callback (only the sidecar's
    /// endpoints receive them); `None` when it does not fit in [`MAX_FORM_COOKIE_BYTES`].
    pub fn keep_form(&self, headers: &HeaderMap, form: &form::KeptForm) -> Option<Vec<String>> {
        let sealed = self.sealer.seal(&self.form_name, &form.to_bytes()?);
        if sealed.len() > MAX_FORM_COOKIE_BYTES {
            return None;
        }
        let ttl = Duration::from_secs(form::KEPT_FORM_TTL_SECS as u64);
        Some(
            self.state_attributes
                .set_chunked(headers, &self.form_name, &sealed, Some(ttl)),
        )
    }

    /// The kept form, if the browser has one that has not expired.
    pub fn kept_form(&self, headers: &HeaderMap, now: i64) -> Option<form::KeptForm> {
        let sealed = jar::read_chunked(headers, &self.form_name)?;
        let bytes = self.sealer.open(&self.form_name, &sealed)?;
        form::KeptForm::from_bytes(&bytes).filter(|f| now - f.created_at < form::KEPT_FORM_TTL_SECS)
    }

    pub fn clear_form(&self, headers: &HeaderMap) -> Vec<String> {
        self.state_attributes
            .clear_chunked(headers, &self.form_name)
    }

    pub fn remembered_organization<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        jar::cookie(headers, &self.org_name)
    }

    pub fn remember_organization(&self, org_key: &str) -> String {
        // Only a configured organization key gets here, so the value is cookie-safe.
        self.attributes.set(
            &self.org_name,
            org_key,
            Some(Duration::from_secs(365 * 24 * 3600)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15: groups and rule claims live in the cookie too. An Azure-shaped session
    /// (the token sizes `make bench` mints, 20 group object ids, an email rule's claim)
    /// must still seal to at most 4 KB, the size one cookie may have.
    #[test]
    fn an_azure_session_with_20_groups_fits_in_4_kb() {
        // Random base64url, as token signatures and ids are: no easy compression.
        let filler = |n: usize| -> String {
            use base64::Engine as _;
            let bytes: Vec<u8> = (0..n * 3 / 4 + 1).map(|_| rand::random::<u8>()).collect();
            let mut text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            text.truncate(n);
            text
        };
        let session = Session {
            id: "0".repeat(32),
            organization: "inSPIRED-inTRONICS-Anonymous".into(),
            identity_provider: "oidc_ad_1".into(),
            identity: Identity {
                subject: filler(43),
                email: Some("firstname.lastname@intronics.example".into()),
                name: Some("Firstname Lastname".into()),
                preferred_username: Some("firstname.lastname@intronics.example".into()),
                external_id: "0b3c1f2e-9d1a-4c7e-8f00-6a2b1c3d4e5f".into(),
                email_verified: true,
            },
            tokens: Tokens {
                // A JWT: two base64url JSON parts (compressible) and a signature.
                access_token: format!("{}.{}.{}", base64_json(220), base64_json(900), filler(342)),
                access_expires_at: Some(1_800_000_000),
                refresh_token: Some(filler(240)),
                id_token: Some(format!(
                    "{}.{}.{}",
                    base64_json(120),
                    base64_json(450),
                    filler(342)
                )),
            },
            idp_session_id: Some(filler(36)),
            issued_at: 1_800_000_000,
            last_seen: 1_800_000_000,
            backend: None,
            groups: (0..20)
                .map(|g| format!("{g:08x}-9d1a-4c7e-8f00-6a2b1c3d4e5f"))
                .collect(),
            claims: [(
                "email".to_owned(),
                vec!["firstname.lastname@intronics.example".to_owned()],
            )]
            .into(),
            dpop: None,
        };
        let (set, size) = cookies().store(&HeaderMap::new(), &session, 1_800_000_000);
        let mut bare = session.clone();
        bare.groups.clear();
        bare.claims.clear();
        let (_, bare_size) = cookies().store(&HeaderMap::new(), &bare, 1_800_000_000);
        eprintln!("sealed: {size} bytes, without groups and claims {bare_size}");
        assert!(size <= 4096, "sealed session is {size} bytes");
        assert!(set.iter().all(|c| c.len() < 4096));
    }

    /// The base64url of a JSON object of about `len` bytes, as JWT headers and payloads are.
    fn base64_json(len: usize) -> String {
        use base64::Engine as _;
        let mut json = String::from("{");
        let mut i = 0;
        while json.len() < len {
            json.push_str(&format!(
                "\"claim_{i}\":\"value-{:08x}\",",
                rand::random::<u32>()
            ));
            i += 1;
        }
        json.push_str("\"end\":1}");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn cookies() -> SessionCookies {
        let text = "[server]\nupstream = \"http://127.0.0.1:9000\"\n[session]\nkeys = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\n[[routes]]\npath_prefix = \"/\"\nauth = \"public\"\n";
        let config = crate::config::from_str(text, std::path::Path::new("t.toml")).unwrap();
        SessionCookies::new(&config)
    }

    fn request_with(set_cookies: &[String]) -> HeaderMap {
        let pairs: Vec<&str> = set_cookies
            .iter()
            .map(|c| c.split(';').next().unwrap())
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, pairs.join("; ").parse().unwrap());
        headers
    }

    fn session() -> Session {
        Session {
            id: "s-1".into(),
            issued_at: 100,
            last_seen: 100,
            ..Default::default()
        }
    }

    #[test]
    fn opened_sessions_are_reused_only_for_the_same_sealed_bytes() {
        let jar = cookies();
        let (set, _) = jar.store(&HeaderMap::new(), &session(), 100);
        let headers = request_with(&set);
        assert_eq!(*jar.load(&headers, 101).unwrap(), session());
        jar.opened.run_pending_tasks();
        assert_eq!(jar.opened.entry_count(), 1, "kept after the first open");
        // From the cache: age limits still apply.
        assert_eq!(*jar.load(&headers, 101).unwrap(), session());
        let too_late = 100 + jar.max_age.as_secs() as i64 + 1;
        assert_eq!(jar.load(&headers, too_late), Err(Rejection::Expired));
        // One character changed: not the cached session, and not a session at all.
        let value = set[0].split(';').next().unwrap();
        let (name, sealed) = value.split_once('=').unwrap();
        let mut tampered = sealed.to_owned().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let mut headers = HeaderMap::new();
        let cookie = format!("{name}={}", String::from_utf8(tampered).unwrap());
        headers.insert(http::header::COOKIE, cookie.parse().unwrap());
        assert_eq!(jar.load(&headers, 101), Err(Rejection::Invalid));
        // Another jar (a reload, other keys) has its own cache.
        assert_eq!(cookies().opened.entry_count(), 0);
    }

    #[test]
    fn a_reference_and_a_whole_session_are_never_mistaken_for_each_other() {
        let jar = cookies();
        let reference = SessionReference::new("s-1");
        let with_reference =
            request_with(&jar.store_reference(&HeaderMap::new(), &reference, &session(), 100));
        assert_eq!(jar.load_reference(&with_reference), Some(reference.clone()));
        assert_eq!(jar.load(&with_reference, 100), Err(Rejection::Invalid));

        let (whole, _) = jar.store(&HeaderMap::new(), &session(), 100);
        let with_session = request_with(&whole);
        assert_eq!(jar.load_reference(&with_session), None);
        assert_eq!(jar.load(&with_session, 100), Ok(Arc::new(session())));
    }

    #[test]
    fn server_side_sessions_open_only_with_their_own_key_and_id() {
        let reference = SessionReference::new("s-1");
        let sealed = reference.seal(&session());
        assert_eq!(reference.open(&sealed), Some(session()));
        assert_eq!(
            SessionReference::new("s-1").open(&sealed),
            None,
            "another key"
        );
        let moved = SessionReference {
            id: "s-2".into(),
            key: reference.key,
        };
        assert_eq!(moved.open(&sealed), None, "stored under another id");
    }
}
