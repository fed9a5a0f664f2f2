//! Prints N distinct sealed session cookies for the memory benchmark (`make bench`):
//! `mint_sessions <base64 session key> <count> <organization> <idp>`. The sessions are
//! shaped like an Azure AD login (JWT-sized access and ID tokens, a refresh token).

use base64::Engine as _;
use sso_sidecar::config::SessionKey;
use sso_sidecar::session::{Identity, Sealer, Session, Tokens};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, key, count, organization, idp] = args.as_slice() else {
        eprintln!("usage: mint_sessions <base64 key> <count> <organization> <idp>");
        std::process::exit(2);
    };
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .expect("a 32-byte base64 key");
    let sealer = Sealer::new(&[SessionKey(key)]);
    let count: usize = count.parse().expect("a count");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let filler = |n: usize, seed: usize| -> String { format!("{seed:08x}").repeat(n / 8) };
    for i in 0..count {
        let session = Session {
            id: format!("{i:032x}"),
            organization: organization.clone(),
            identity_provider: idp.clone(),
            identity: Identity {
                subject: format!("user-{i}"),
                email: Some(format!("user-{i}@example.com")),
                name: Some(format!("User {i}")),
                preferred_username: Some(format!("user{i}")),
                external_id: format!("{i:08x}-0000-4000-a000-000000000000"),
                email_verified: true,
            },
            tokens: Tokens {
                access_token: filler(1400, i),
                access_expires_at: Some(now + 3600),
                refresh_token: Some(filler(240, i + 1)),
                id_token: Some(filler(800, i + 2)),
            },
            idp_session_id: Some(format!("sid-{i}")),
            issued_at: now,
            last_seen: now,
            backend: None,
            // Azure-shaped: 20 group object ids.
            groups: (0..20)
                .map(|g| format!("{g:08x}-{i:04x}-4000-a000-000000000000"))
                .collect(),
            claims: Default::default(),
            dpop: None,
        };
        println!(
            "_sso_session={}",
            sealer.seal("_sso_session", &session.to_bytes())
        );
    }
}
