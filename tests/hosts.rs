//! The host the upstream serves (issue 26), against real nginx with two virtual hosts: the
//! admin site (`required` in the sidecar) and the shop (`public`, after it). nginx serves a
//! host's every spelling (case, trailing dot, default port, absolute-form target) as that
//! host; the sidecar must route each of them the same way, or refuse it.

mod common;

use common::nginx::{raw_head, Nginx};
use common::*;

const CONFIG: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"

[admin]
listen = "{admin}"

[session]
keys = ["{session_key}"]

[[routes]]
host = "admin.shop.test"
path_prefix = "/"
auth = "required"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

/// The shop is nginx's default server, so a request the sidecar sends without a clear host
/// lands there; `$http_host` shows which `Host` the upstream got.
const VIRTUAL_HOSTS: &str = r#"
  server {
    listen 127.0.0.1:{port} default_server;
    server_name shop.test;
    location / { return 200 "public shop, Host $http_host\n"; }
  }
  server {
    listen 127.0.0.1:{port};
    server_name admin.shop.test;
    location / { return 200 "PROTECTED admin\n"; }
  }
"#;

/// Each trick as a request head, whether nginx itself serves it as the admin site (checked
/// first, so the test shows the trick is real), and the sidecar's answer: `401` where it is
/// the admin site (sign in first), `400` where no one host is named.
fn tricks(port: u16) -> Vec<(String, bool, u16)> {
    let with_host = |host: &str| format!("GET /x HTTP/1.1\r\nHost: {host}\r\n");
    vec![
        (with_host("admin.shop.test."), true, 401),
        (with_host("ADMIN.Shop.Test"), true, 401),
        (with_host("Admin.Shop.Test.:80"), true, 401),
        (with_host(&format!("admin.shop.test:{port}")), true, 401),
        (with_host("admin.shop.test:0080"), true, 401),
        // nginx wants `Host` beside an absolute-form target; the old sidecar forwarded one
        // made from the authority, after routing the request host-less.
        (
            "GET http://admin.shop.test/x HTTP/1.1\r\n".into(),
            false,
            401,
        ),
        (
            "GET http://admin.shop.test./x HTTP/1.1\r\n".into(),
            false,
            401,
        ),
        (
            "GET HTTP://ADMIN.SHOP.TEST:80/x HTTP/1.1\r\n".into(),
            false,
            401,
        ),
        (
            "GET http://admin.shop.test/x HTTP/1.1\r\nHost: admin.shop.test\r\n".into(),
            true,
            401,
        ),
        (
            "GET http://admin.shop.test/x HTTP/1.1\r\nHost: shop.test\r\n".into(),
            true,
            400,
        ),
        (
            "GET http://admin.shop.test/x HTTP/1.1\r\nHost: \r\n".into(),
            false,
            400,
        ),
        (
            "GET /x HTTP/1.1\r\nHost: shop.test\r\nHost: admin.shop.test\r\n".into(),
            false,
            400,
        ),
        (with_host("admin.shop.test.."), false, 400),
        (with_host("admin%2eshop.test"), false, 400),
        (with_host("admin.shop.test:80:80"), false, 400),
        (with_host("user@admin.shop.test"), false, 400),
        (with_host("admin.shop.test/x"), false, 400),
        ("GET /x HTTP/1.1\r\n".into(), false, 400),
        ("GET /x HTTP/1.0\r\n".into(), false, 400),
        (
            "GET /x HTTP/1.1\r\nHost: shop.test\r\nX-Forwarded-Host: admin.shop.test\r\n".into(),
            false,
            200,
        ),
    ]
}

/// Issue 26: `Host: admin.shop.test.` fell through to the public catch-all, and an
/// absolute-form target with no `Host` was routed host-less and then forwarded with the
/// admin host. Every spelling is now the admin site (sign-in) or refused.
#[test]
fn the_admin_site_is_unreachable_through_any_spelling() {
    let nginx = Nginx::start_servers(VIRTUAL_HOSTS);
    let sidecar = Sidecar::start(CONFIG, &nginx.url());
    let mut real = 0;
    for (head, works_on_nginx, want) in tricks(sidecar.port) {
        if works_on_nginx {
            let (direct_status, direct_body) = raw_head(nginx.port, &head);
            assert!(
                direct_status == 200 && direct_body.starts_with("PROTECTED"),
                "{head:?} is no trick on nginx: {direct_status} {direct_body}"
            );
            real += 1;
        }
        let (status, body) = raw_head(sidecar.port, &head);
        assert!(
            !body.contains("PROTECTED"),
            "{head:?} reached the admin site through the sidecar ({status})"
        );
        assert_eq!(status, want, "{head:?}: {body}");
        if status == 200 {
            assert_eq!(body, "public shop, Host shop.test\n", "{head:?}");
        }
    }
    assert!(real >= 7, "only {real} tricks work against nginx directly");
    let refused = |reason: &str| {
        sidecar.metric(&format!(
            "sso_sidecar_requests_refused_total{{reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(refused("host_missing"), 2.0);
    assert_eq!(refused("host_bad_name"), 4.0);
}

/// The shop's own spellings still reach it, and the upstream gets the canonical host and
/// an origin-form target (an absolute-form target's authority becomes `Host`).
#[test]
fn the_upstream_gets_the_canonical_host() {
    let nginx = Nginx::start_servers(VIRTUAL_HOSTS);
    let sidecar = Sidecar::start(CONFIG, &nginx.url());
    for head in [
        "GET /x HTTP/1.1\r\nHost: shop.test\r\n",
        "GET /x HTTP/1.1\r\nHost: Shop.Test.\r\n",
        "GET /x HTTP/1.1\r\nHost: shop.test:80\r\n",
        "GET http://shop.test/x HTTP/1.1\r\n",
        "GET http://SHOP.TEST./x HTTP/1.1\r\nHost: SHOP.TEST.\r\n",
    ] {
        let (status, body) = raw_head(sidecar.port, head);
        assert_eq!(
            (status, body.as_str()),
            (200, "public shop, Host shop.test\n"),
            "{head:?}"
        );
    }
    // A port other than the scheme's default stays.
    let (status, body) = raw_head(sidecar.port, "GET /x HTTP/1.1\r\nHost: SHOP.test:8080\r\n");
    assert_eq!(
        (status, body.as_str()),
        (200, "public shop, Host shop.test:8080\n")
    );
}
