//! The proxy over real sockets: a real `sso-sidecar` process in front of a real upstream.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use sha2::{Digest, Sha256};

const CONFIG: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"
connect_timeout = "1s"
read_timeout = "1s"

[admin]
listen = "{admin}"

[session]
keys = ["{session_key}"]

[[routes]]
path_prefix = "/account/"
auth = "required"

[[routes]]
path_prefix = "/api/"
auth = "api"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

fn start() -> (Upstream, Sidecar) {
    let upstream = Upstream::start();
    let sidecar = Sidecar::start(CONFIG, &upstream.url());
    (upstream, sidecar)
}

#[test]
fn method_path_query_body_and_headers_pass_unchanged() {
    let (upstream, sidecar) = start();
    let body = b"{\"order\": 4711, \"note\": \"\xc3\xa4\"}".to_vec();
    let response = client()
        .request(
            reqwest::Method::PATCH,
            sidecar.url("/shop/cart/items?sku=A%20B&qty=2&empty="),
        )
        .header("X-Custom", "value 1")
        .header("Accept-Language", "de-DE")
        .header("Content-Type", "application/json")
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-upstream"],
        "yes",
        "upstream response headers pass back"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let seen = upstream.last();
    assert_eq!(seen.method, "PATCH");
    assert_eq!(seen.uri, "/shop/cart/items?sku=A%20B&qty=2&empty=");
    assert_eq!(seen.header("x-custom"), Some("value 1"));
    assert_eq!(seen.header("accept-language"), Some("de-DE"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.body_len, body.len());
    assert_eq!(seen.body_sha256, hex::encode(Sha256::digest(&body)));
    assert_eq!(
        seen.header("host"),
        Some(format!("127.0.0.1:{}", sidecar.port).as_str()),
        "Host is preserved"
    );
}

#[test]
fn large_streamed_request_body_passes_unchanged() {
    let (upstream, sidecar) = start();
    const SIZE: usize = 24 * 1024 * 1024;
    let mut hasher = Sha256::new();
    hasher.update(bytes_of(0, SIZE));
    let expected = hex::encode(hasher.finalize());
    // A body of unknown length goes out chunked, so the proxy has to stream it.
    let chunks = (0..SIZE)
        .step_by(1 << 20)
        .map(|start| Ok::<_, std::io::Error>(bytes_of(start, (1 << 20).min(SIZE - start))));
    let stream = futures_util::stream::iter(chunks.collect::<Vec<_>>());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = sidecar.url("/upload");
    let status = runtime.block_on(async move {
        reqwest::Client::new()
            .post(url)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen.body_len, SIZE);
    assert_eq!(seen.body_sha256, expected);
}

#[test]
fn large_streamed_response_body_passes_unchanged() {
    let (_upstream, sidecar) = start();
    const SIZE: usize = 16 * 1024 * 1024 + 17;
    let mut response = client()
        .get(sidecar.url(&format!("/big/{SIZE}")))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = Vec::new();
    response.read_to_end(&mut body).unwrap();
    assert_eq!(body.len(), SIZE);
    assert!(
        body == bytes_of(0, SIZE),
        "response body changed on the way"
    );
}

#[test]
fn spoofed_identity_headers_and_sidecar_cookies_never_reach_the_upstream() {
    let (upstream, sidecar) = start();
    let spoof = |path: &str, accept: &str| {
        client()
            .get(sidecar.url(path))
            .header("X-SSO-Subject", "admin")
            .header("x-sso-organization", "Operations")
            .header("X-Sso-Self-Administration", "CREATE,UPDATE")
            .header("Accept", accept)
            .header("Cookie", "_sso_session=forged; _sso_session.1=more; oidc_state=s; oidc_state_x=t; shop=1; basket=abc")
            .send()
            .unwrap()
    };
    let response = spoof("/public/page", "text/html");
    assert_eq!(response.status(), 200);
    let seen = upstream.last();
    assert!(
        seen.headers_starting_with("x-sso-").is_empty(),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.header("cookie"), Some("shop=1; basket=abc"));

    // Only sidecar cookies: the Cookie header goes away entirely.
    client()
        .get(sidecar.url("/x"))
        .header("Cookie", "_sso_session=forged")
        .send()
        .unwrap();
    assert_eq!(upstream.last().header("cookie"), None);

    // Protected routes: nothing reaches the upstream at all without a session.
    let before = upstream.seen().len();
    for (path, accept) in [
        ("/account/orders", "text/html"),
        ("/account/orders", "application/json"),
        ("/api/orders", "application/json"),
    ] {
        let status = spoof(path, accept).status();
        assert!(status == 401 || status == 302, "{path} {accept}: {status}");
    }
    assert_eq!(upstream.seen().len(), before);
}

#[test]
fn forwarded_headers_from_untrusted_clients_are_replaced() {
    let (upstream, sidecar) = start();
    client()
        .get(sidecar.url("/page"))
        .header("X-Forwarded-For", "203.0.113.66")
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "for=203.0.113.66;host=evil.example")
        .send()
        .unwrap();
    let seen = upstream.last();
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(format!("127.0.0.1:{}", sidecar.port).as_str())
    );
    assert_eq!(seen.header("forwarded"), None);
}

#[test]
fn forwarded_headers_from_trusted_proxies_are_kept_and_extended() {
    let upstream = Upstream::start();
    let config = CONFIG.replace(
        "read_timeout = \"1s\"",
        "read_timeout = \"1s\"\ntrusted_proxies = [\"127.0.0.0/8\"]",
    );
    let sidecar = Sidecar::start(&config, &upstream.url());
    client()
        .get(sidecar.url("/page"))
        .header("X-Forwarded-For", "203.0.113.66")
        .header("X-Forwarded-Host", "shop.example.com")
        .header("X-Forwarded-Proto", "https")
        .send()
        .unwrap();
    let seen = upstream.last();
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.66, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some("shop.example.com"));
}

#[test]
fn protected_routes_without_a_session() {
    let (upstream, sidecar) = start();
    let xhr = client()
        .get(sidecar.url("/account/orders"))
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(xhr.status(), 401);
    assert!(xhr.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert!(
        xhr.headers().get("set-cookie").is_none(),
        "no state cookie for non-navigation"
    );

    let api = client()
        .get(sidecar.url("/api/orders"))
        .header("Accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(
        api.status(),
        401,
        "api routes never redirect to a login page"
    );

    let page = client()
        .get(sidecar.url("/account/orders"))
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .unwrap();
    assert_eq!(page.status(), 302);
    assert_eq!(
        page.headers()["location"],
        "/oauth2/start?rd=%2Faccount%2Forders"
    );
    assert!(upstream.seen().is_empty());
}

#[test]
fn upstream_down_gives_502_and_is_counted() {
    let port = free_port();
    let sidecar = Sidecar::start(CONFIG, &format!("http://127.0.0.1:{port}"));
    let response = client()
        .get(sidecar.url("/page"))
        .header("Accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.text().unwrap().contains("not reachable"));
    assert_eq!(
        sidecar.metric("sso_sidecar_upstream_failures_total{reason=\"connect_refused\"}"),
        1.0
    );
    assert_eq!(
        sidecar.metric_reaching(
            "sso_sidecar_http_requests_total{route=\"public\",status=\"5xx\"}",
            1.0
        ),
        1.0
    );
}

#[test]
fn slow_upstream_gives_504_without_hanging() {
    let (_upstream, sidecar) = start();
    let started = std::time::Instant::now();
    let response = client().get(sidecar.url("/slow/5000")).send().unwrap();
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "read_timeout of 1s was not applied"
    );
    assert_eq!(
        sidecar.metric("sso_sidecar_upstream_failures_total{reason=\"read_timeout\"}"),
        1.0
    );
}

#[test]
fn silent_upstream_connection_gives_504() {
    // Accepts connections but never answers: the read timeout must end the wait.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(4) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    let sidecar = Sidecar::start(CONFIG, &format!("http://{addr}"));
    let response = client().get(sidecar.url("/page")).send().unwrap();
    assert_eq!(response.status(), 504);
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    let (_upstream, sidecar) = start();
    for _ in 0..3 {
        client().get(sidecar.url("/page")).send().unwrap();
    }
    client().get(sidecar.url("/api/x")).send().unwrap();
    sidecar.metric_reaching(
        "sso_sidecar_http_requests_total{route=\"api\",status=\"4xx\"}",
        1.0,
    );
    sidecar.metric_reaching(
        "sso_sidecar_http_requests_total{route=\"public\",status=\"2xx\"}",
        3.0,
    );
    let metrics = sidecar.metrics();
    assert_eq!(
        metrics["sso_sidecar_http_requests_total{route=\"public\",status=\"2xx\"}"],
        3.0
    );
    assert_eq!(
        metrics["sso_sidecar_http_requests_total{route=\"api\",status=\"4xx\"}"],
        1.0
    );
    assert_eq!(
        metrics["sso_sidecar_upstream_duration_seconds_count{route=\"public\"}"],
        3.0
    );
    assert_eq!(metrics["sso_sidecar_build_info{version=\"0.1.0\"}"], 1.0);
}

#[test]
fn request_ids_are_generated_or_kept_and_forwarded() {
    let (upstream, sidecar) = start();
    let response = client().get(sidecar.url("/page")).send().unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        upstream.last().header("x-request-id"),
        Some(generated.as_str())
    );
    client()
        .get(sidecar.url("/page"))
        .header("X-Request-Id", "trace-4711")
        .send()
        .unwrap();
    assert_eq!(upstream.last().header("x-request-id"), Some("trace-4711"));
    sidecar.log_containing("\"request_id\":\"trace-4711\"");
}

#[test]
fn admin_endpoints() {
    let (_upstream, sidecar) = start();
    assert_eq!(
        reqwest::blocking::get(sidecar.admin_url("/healthz"))
            .unwrap()
            .status(),
        200
    );
    let ready = reqwest::blocking::get(sidecar.admin_url("/readyz")).unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().unwrap()["ready"], true);
    assert_eq!(
        reqwest::blocking::get(sidecar.admin_url("/nope"))
            .unwrap()
            .status(),
        404
    );
}

#[test]
fn unknown_own_endpoint_is_404_and_not_forwarded() {
    let (upstream, sidecar) = start();
    let response = client().get(sidecar.url("/oauth2/nothing")).send().unwrap();
    assert_eq!(response.status(), 404);
    assert!(upstream.seen().is_empty());
}

#[test]
fn malformed_requests_do_not_crash_the_sidecar() {
    let (_upstream, sidecar) = start();
    for raw in [
        b"GET / HTTP/1.1\r\nHost: a\r\nX-SSO-Subject: \xff\xfe\r\n\r\n".as_slice(),
        b"GARBAGE\r\n\r\n".as_slice(),
        b"GET /%zz%00 HTTP/1.1\r\nHost: a\r\nCookie: ;;=;_sso_session\r\n\r\n".as_slice(),
    ] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", sidecar.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(raw).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
    let response = client().get(sidecar.url("/still-alive")).send().unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn health_command_probes_the_admin_listener() {
    let (_upstream, sidecar) = start();
    let url = sidecar.admin_url("/healthz");
    let (code, _, err) = run_cli(&["health", "--url", &url], &[], &repo_root());
    assert_eq!(code, 0, "{err}");
    // The proxy port answers too, but /healthz is not its path: only 2xx is healthy.
    let (code, _, err) = run_cli(
        &["health", "--url", &sidecar.admin_url("/nope")],
        &[],
        &repo_root(),
    );
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    let closed = format!("http://127.0.0.1:{}/healthz", free_port());
    let (code, _, err) = run_cli(&["health", "--url", &closed], &[], &repo_root());
    assert_eq!(code, 1, "{err}");
}

/// An upstream that answers every request with `X-Shop-Answer` and records each request
/// head as it came over the wire.
fn wire_upstream() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (heads, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
            let answer = "HTTP/1.1 200 OK\r\nX-Shop-Answer: yes\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, received)
}

/// Issue 34: header names are case-insensitive, so by default the sidecar does not keep a
/// second map of how each was spelled: standard names go on titled, others in lower case.
/// `server.preserve_header_case` keeps the spelling for a backend that depends on it.
#[test]
fn header_names_are_spelled_as_http2_does_unless_asked_to_keep_them() {
    for (keep, custom, answer) in [
        (false, "x-custom-thing: a", "x-shop-answer: yes"),
        (true, "X-Custom-Thing: a", "X-Shop-Answer: yes"),
    ] {
        let (upstream, heads) = wire_upstream();
        let config = CONFIG.replace(
            "read_timeout = \"1s\"\n",
            &format!("read_timeout = \"1s\"\npreserve_header_case = {keep}\n"),
        );
        let sidecar = Sidecar::start(&config, &upstream);
        let head = "GET /page HTTP/1.1\r\nHost: shop.example\r\nX-Custom-Thing: a\r\n";
        let answered = nginx::raw_exchange(sidecar.port, head);
        let head = heads.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(head.contains(custom), "keep = {keep}: {head}");
        assert!(head.contains("Host: shop.example") || head.contains("host: shop.example"));
        assert!(answered.contains(answer), "keep = {keep}: {answered}");
        assert!(answered.contains("Content-Length: 2"), "{answered}");
    }
}
