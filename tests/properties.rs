//! Property tests over arbitrary input: sealing round-trips and rejects every single-bit
//! change, chunked cookies join back to what was stored, and the return-path check never
//! yields anything but a same-origin path, and canonical request paths leave nothing for a
//! backend to normalise.

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use sso_sidecar::auth::safe_return_path;
use sso_sidecar::config::{SameSite, SessionKey};
use sso_sidecar::routing::canonical::canonical_path;
use sso_sidecar::session::jar::{read_chunked, CookieAttributes};
use sso_sidecar::session::{Identity, Sealer, Session, Tokens};

fn session_strategy() -> impl Strategy<Value = Session> {
    (
        "[a-f0-9]{0,32}",
        "\\PC{0,40}",
        "\\PC{0,40}",
        proptest::option::of("\\PC{0,60}"),
        "[A-Za-z0-9._-]{0,3000}",
        proptest::option::of("[A-Za-z0-9._-]{0,500}"),
        any::<i64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 32)),
    )
        .prop_map(
            |(id, org, subject, email, access, refresh, issued_at, dpop)| Session {
                id,
                organization: org,
                identity_provider: "kc".into(),
                identity: Identity {
                    external_id: subject.clone(),
                    subject,
                    email,
                    ..Default::default()
                },
                tokens: Tokens {
                    access_token: access,
                    access_expires_at: Some(issued_at / 2),
                    refresh_token: refresh,
                    id_token: None,
                },
                idp_session_id: None,
                issued_at,
                last_seen: issued_at,
                backend: None,
                groups: vec!["buyers".into()],
                claims: [("email".to_owned(), vec![format!("{}@x", "a")])].into(),
                dpop: dpop.map(sso_sidecar::session::DpopKey),
            },
        )
}

fn browser_sends(set_cookies: &[String]) -> HeaderMap {
    let pairs: Vec<&str> = set_cookies
        .iter()
        .filter(|c| !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap())
        .collect();
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::COOKIE,
        HeaderValue::from_str(&pairs.join("; ")).unwrap(),
    );
    headers
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sealed_sessions_round_trip_through_chunked_cookies(session in session_strategy(), key in any::<[u8; 32]>()) {
        let sealer = Sealer::new(&[SessionKey(key)]);
        let sealed = sealer.seal("_sso_session", &session.to_bytes());
        let attributes = CookieAttributes { secure: true, same_site: SameSite::Lax, domain: None, path: "/".into() };
        let set = attributes.set_chunked(&HeaderMap::new(), "_sso_session", &sealed, None);
        prop_assert!(set.iter().all(|c| c.len() < 4096));
        let sent = browser_sends(&set);
        let joined = read_chunked(&sent, "_sso_session").unwrap();
        prop_assert_eq!(&joined, &sealed);
        let opened = sealer.open("_sso_session", &joined).unwrap();
        prop_assert_eq!(Session::from_bytes(&opened).unwrap(), session);
    }

    #[test]
    fn any_single_bit_change_is_rejected(payload in proptest::collection::vec(any::<u8>(), 0..512), key in any::<[u8; 32]>(), bit in any::<usize>()) {
        use base64::Engine as _;
        let sealer = Sealer::new(&[SessionKey(key)]);
        let sealed = sealer.seal("s", &payload);
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let bit = bit % (raw.len() * 8);
        raw[bit / 8] ^= 1 << (bit % 8);
        let tampered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
        prop_assert!(sealer.open("s", &tampered).is_none());
    }

    #[test]
    fn return_paths_never_leave_the_site(
        // Arbitrary text, URL-ish characters, and (after the fuzzer found `/.//host`)
        // sequences of slashes, dot segments and their encodings.
        rd in "\\PC{0,80}|[/\\\\%a-zA-Z0-9:.@?#&=]{0,40}|(/|\\./|\\.\\./|\\.|%2[eEfF]|%5[cC]|[a-z{}*]){1,12}"
    ) {
        let out = safe_return_path(Some(&rd), "/oauth2");
        let base = url::Url::parse("https://shop.example/").unwrap();
        let resolved = base.join(&out).unwrap();
        prop_assert_eq!(resolved.origin(), base.origin(), "{:?} -> {:?}", rd, out);
        prop_assert!(out.starts_with('/') && !out.starts_with("//") && !out.contains('\\'), "{:?} -> {:?}", rd, out);
    }

    /// Whatever the request target, the path routing and the upstream see has no dot
    /// segment, no empty segment and no encoded separator left, and canonicalising it again
    /// changes nothing.
    #[test]
    fn canonical_paths_have_no_dot_or_empty_segments(
        raw in "/(\\PC{0,60})|(/|\\./|\\.\\./|\\.|;|%2[eEfF]|%5[cC]|%00|%25|%[0-9a-fA-F]{2}|[a-z]){1,16}"
    ) {
        if let Ok(path) = canonical_path(&raw) {
            let path = path.into_owned();
            prop_assert!(path.starts_with('/'), "{:?} -> {:?}", raw, path);
            for bad in ["/../", "/./", "//"] {
                prop_assert!(!path.contains(bad), "{:?} -> {:?}", raw, path);
            }
            prop_assert!(!path.ends_with("/..") && !path.ends_with("/."), "{:?} -> {:?}", raw, path);
            let lower = path.to_ascii_lowercase();
            prop_assert!(!lower.contains("%2e") && !lower.contains("%2f") && !lower.contains("%5c"), "{:?} -> {:?}", raw, path);
            let again = canonical_path(&path).map(|p| p.into_owned());
            prop_assert_eq!(again, Ok(path.clone()), "not idempotent for {:?}", raw);
        }
    }
}
