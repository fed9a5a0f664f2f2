//! TLS termination (issue 19): a CA and certificates made with rcgen, HTTPS with HTTP/2
//! (curl `--http2`), a sign-in over HTTPS, a certificate replaced by SIGHUP while requests
//! flow (none fails), `check` on broken files, and an `https://` upstream with a private CA
//! (`server.upstream_ca`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::*;
use serde_json::json;

const CONFIG: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"
public_url = "https://127.0.0.1:{port}"
tls = { cert = "file:{cert}", key = "file:{key}" }

[admin]
listen = "{admin}"

[oidc]
remote = "supported"

[session]
keys = ["{session_key}"]

[identity_providers.kc]
type = "oidc"
name = "Keycloak"
issuer = "{issuer}"
client_id = "shop"
client_secret = "shop-secret"

[organizations.Operations]
external_name = "Operations"
identity_providers = ["kc"]

[[routes]]
path_prefix = "/account/"
auth = "required"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

/// curl over HTTPS with HTTP/2 and the test CA: (HTTP version, status).
fn curl(ca: &str, url: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--http2", "--cacert", ca])
        .args(["-w", "%{http_version} %{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!("curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (version, code) = text.split_once(' ').unwrap_or(("", ""));
    (version.to_owned(), code.to_owned())
}

#[test]
fn https_with_http2_sign_in_and_certificate_reload_under_load() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("first", &["127.0.0.1", "localhost"]);
    let ca = pki.ca_path();
    let ports = Ports::new();
    let origin = format!("https://127.0.0.1:{}", ports.proxy);
    let idp = Idp::start(json!({"clients": [{
        "client_id": "shop", "client_secret": "shop-secret",
        "redirect_uris": [format!("{origin}/oauth2/callback")],
    }]}));
    let upstream = Upstream::start();
    let config = CONFIG
        .replace("{port}", &ports.proxy.to_string())
        .replace("{cert}", &cert)
        .replace("{key}", &key)
        .replace("{issuer}", &idp.issuer);
    let sidecar = Sidecar::start_on(ports, &config, &upstream.url(), &[]);
    sidecar.wait_idps_ready();

    assert_eq!(
        curl(&ca, &format!("{origin}/"), &[]),
        ("2".into(), "200".into())
    );
    let seen = upstream.last();
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));

    // Sign in over HTTPS, then the protected page over HTTP/2 with the session cookie.
    let browser = Browser::trusting(&pki.ca_pem);
    let to_idp = browser.get(&format!(
        "{origin}/oauth2/start?org=Operations&rd=%2Faccount%2F"
    ));
    assert_eq!(to_idp.status, 302, "{to_idp:?}");
    let callback = browser.sign_in_at_idp(to_idp, "tls-user", &format!("{origin}/"));
    let back = browser.get(&callback);
    assert_eq!(back.status, 302, "{back:?}");
    let cookie = browser
        .cookie(&format!("{origin}/"), "_sso_session")
        .unwrap();
    let session = format!("_sso_session={cookie}");
    assert_eq!(
        curl(
            &ca,
            &format!("{origin}/account/"),
            &["-H", &format!("Cookie: {session}")]
        ),
        ("2".into(), "200".into())
    );
    assert_eq!(upstream.last().header("x-sso-subject"), Some("tls-user"));
    let expires = sidecar.metric("sso_sidecar_tls_certificate_expires_at_seconds");
    assert!(expires > 0.0);

    // A new certificate (with one more name) replaces the old one on SIGHUP while a client
    // keeps requesting: nothing fails, and new handshakes get the new certificate.
    let (next_cert, next_key) = pki.issue("next", &["127.0.0.1", "localhost", "reloaded.test"]);
    let load = {
        let (ca, url) = (ca.clone(), format!("{origin}/"));
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(3);
            let (mut ok, mut failed) = (0, Vec::new());
            while Instant::now() < until {
                match curl(&ca, &url, &[]) {
                    (_, code) if code == "200" => ok += 1,
                    other => failed.push(other),
                }
            }
            (ok, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    std::fs::copy(&next_cert, &cert).unwrap();
    std::fs::copy(&next_key, &key).unwrap();
    sidecar.signal("HUP");
    let (ok, failed) = load.join().unwrap();
    assert!(ok > 10 && failed.is_empty(), "{ok} ok, failed: {failed:?}");
    let resolve = format!("reloaded.test:{}:127.0.0.1", sidecar.port);
    let url = format!("https://reloaded.test:{}/", sidecar.port);
    assert_eq!(
        curl(&ca, &url, &["--resolve", &resolve]),
        ("2".into(), "200".into()),
        "the new certificate names reloaded.test: {}",
        sidecar.log()
    );
    assert_eq!(
        sidecar.metric("sso_sidecar_config_reloads_total{outcome=\"ok\"}"),
        1.0
    );
}

/// `sso-sidecar check` on a minimal config with `server.tls` naming `cert` and `key`.
fn check_with_tls(dir: &std::path::Path, cert: &str, key: &str) -> (i32, String, String) {
    let path = dir.join("sidecar.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nupstream = \"http://127.0.0.1:9000\"\ntls = {{ cert = \"file:{cert}\", key = \"file:{key}\" }}\n[session]\nkeys = [\"{SESSION_KEY}\"]\n[[routes]]\npath_prefix = \"/\"\nauth = \"public\"\n"
        ),
    )
    .unwrap();
    run_cli(&["check", "-c", path.to_str().unwrap()], &[], dir)
}

#[test]
fn check_refuses_broken_or_mismatched_tls_files() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("a", &["localhost"]);
    let (_, other_key) = pki.issue("b", &["localhost"]);
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let garbage = garbage.to_str().unwrap();
    let cases = [
        (
            cert.as_str(),
            other_key.as_str(),
            "server.tls.key: does not belong to the certificate",
        ),
        (
            garbage,
            key.as_str(),
            "server.tls.cert: no certificate in the PEM",
        ),
        (
            cert.as_str(),
            garbage,
            "server.tls.key: not a PEM private key",
        ),
    ];
    for (cert, key, expected) in cases {
        let (code, out, err) = check_with_tls(dir.path(), cert, key);
        assert_eq!(code, 2, "{out}{err}");
        assert!(
            format!("{out}{err}").contains(expected),
            "{expected}: {out}{err}"
        );
    }
    // Valid, but expiring in ten days: accepted with a warning.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    let (cert, key) = pki.issue_until("soon", &["localhost"], Some(soon));
    let (code, out, err) = check_with_tls(dir.path(), &cert, &key);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("server.tls.cert: the certificate expires in 9 days")
            || format!("{out}{err}")
                .contains("server.tls.cert: the certificate expires in 10 days"),
        "{out}{err}"
    );
}

#[test]
fn https_upstream_with_a_private_ca() {
    let pki = Pki::new();
    // The upstream: a second sidecar terminating TLS in front of the echo server.
    let (cert, key) = pki.issue("upstream", &["127.0.0.1"]);
    let echo = Upstream::start();
    let tls_front = format!(
        "[server]\nlisten = \"{{listen}}\"\nupstream = \"{{upstream}}\"\ntls = {{ cert = \"file:{cert}\", key = \"file:{key}\" }}\n[admin]\nlisten = \"{{admin}}\"\n[session]\nkeys = [\"{{session_key}}\"]\n[[routes]]\npath_prefix = \"/\"\nauth = \"public\"\n"
    );
    let front = Sidecar::start(&tls_front, &echo.url());
    let upstream = format!("https://127.0.0.1:{}", front.port);
    let with_ca = |ca: Option<&str>| {
        let ca_line = ca
            .map(|path| format!("upstream_ca = \"file:{path}\"\n"))
            .unwrap_or_default();
        format!(
            "[server]\nlisten = \"{{listen}}\"\nupstream = \"{{upstream}}\"\n{ca_line}[admin]\nlisten = \"{{admin}}\"\n[session]\nkeys = [\"{{session_key}}\"]\n[[routes]]\npath_prefix = \"/\"\nauth = \"public\"\n"
        )
    };
    let trusting = Sidecar::start(&with_ca(Some(&pki.ca_path())), &upstream);
    let answer = client().get(trusting.url("/through")).send().unwrap();
    assert_eq!(answer.status(), 200, "{}", trusting.log());
    assert_eq!(echo.last().uri, "/through");
    // Without the private CA the upstream's certificate is not trusted: 502, not a request.
    let strict = Sidecar::start(&with_ca(None), &upstream);
    let refused = client().get(strict.url("/refused")).send().unwrap();
    assert_eq!(refused.status(), 502);
    assert!(echo.seen().iter().all(|s| s.uri != "/refused"));
}
