//! Shared test harness: the real `sso-sidecar` binary started as a subprocess on free
//! loopback ports, and a real upstream HTTP server (axum) that records what it received.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod commercetools;
pub mod nginx;
pub mod redis_servers;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
#[allow(unused_imports)]
pub use redis_servers::{RedisCluster, RedisSentinels, RedisServer};
use sha2::{Digest, Sha256};

pub const SESSION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_sso-sidecar")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A loopback port nobody listens on right now, for the sidecar, which cannot report the
/// port it bound. It comes from below the kernel's ephemeral range (32768 and up), so a
/// server binding port 0 meanwhile (an IdP, an upstream) cannot take it; the process id
/// spreads parallel test binaries over the range.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(7919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20000 + (base.wrapping_add(n.wrapping_mul(13)) % 12000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    pub body_sha256: String,
    /// The body itself when it is small (up to 64 KiB).
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_starting_with(&self, prefix: &str) -> Vec<&(String, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| {
                k.to_ascii_lowercase()
                    .starts_with(&prefix.to_ascii_lowercase())
            })
            .collect()
    }
}

/// A real HTTP server on a free loopback port. Paths:
/// `/slow/<ms>` answers after a delay, `/big/<bytes>` streams a large body, everything
/// else answers `200` with a small JSON echo. Every request is recorded.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Upstream {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let record = record.clone();
            async move { handle(req, record).await }
        });
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Upstream {
            addr,
            seen,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("the upstream saw no request")
    }
}

async fn handle(req: Request, record: Arc<Mutex<Vec<Seen>>>) -> Response {
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut hasher = Sha256::new();
    let mut body_len = 0;
    let mut body = Vec::new();
    let mut stream = req.into_body().into_data_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body_len += chunk.len();
        hasher.update(&chunk);
        if body.len() + chunk.len() <= 65536 {
            body.extend_from_slice(&chunk);
        }
    }
    let seen = Seen {
        method,
        uri: uri.clone(),
        headers,
        body_len,
        body_sha256: hex::encode(hasher.finalize()),
        body,
    };
    record.lock().unwrap().push(seen.clone());

    let path = uri.split('?').next().unwrap_or("");
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
    {
        return Response::builder()
            .status(code)
            .body(Body::from("status page"))
            .unwrap();
    }
    if let Some(ms) = path.strip_prefix("/slow/").and_then(|ms| ms.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(size) = path
        .strip_prefix("/big/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let chunks = futures_util::stream::iter((0..size).step_by(65536).map(move |start| {
            let len = 65536.min(size - start);
            Ok::<_, std::io::Error>(bytes_of(start, len))
        }));
        return Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Body::from_stream(chunks))
            .unwrap();
    }
    let identity: serde_json::Map<String, serde_json::Value> = seen
        .headers_starting_with("x-sso-")
        .into_iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let echo = serde_json::json!({"method": seen.method, "uri": seen.uri, "body_len": seen.body_len, "body_sha256": seen.body_sha256, "identity": identity});
    (
        [("content-type", "application/json"), ("x-upstream", "yes")],
        echo.to_string(),
    )
        .into_response()
}

/// Deterministic content for large bodies: byte i is `i % 251`.
pub fn bytes_of(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(|i| (i % 251) as u8).collect()
}

/// The ports a sidecar will listen on, chosen before it starts so that an IdP can be told
/// the redirect URI first.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub proxy: u16,
    pub admin: u16,
}

impl Ports {
    pub fn new() -> Self {
        Ports {
            proxy: free_port(),
            admin: free_port(),
        }
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy)
    }

    pub fn callback(&self) -> String {
        format!("{}/oauth2/callback", self.origin())
    }
}

/// A running `sso-sidecar run`, killed when dropped.
pub struct Sidecar {
    pub port: u16,
    pub admin_port: u16,
    child: Child,
    pub log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    /// Starts the sidecar with `config`, in which `{listen}`, `{admin}` and `{upstream}` are
    /// replaced by free loopback addresses and the given upstream URL.
    pub fn start(config: &str, upstream: &str) -> Self {
        Self::start_with_env(config, upstream, &[])
    }

    pub fn start_with_env(config: &str, upstream: &str, env: &[(&str, &str)]) -> Self {
        Self::start_on(Ports::new(), config, upstream, env)
    }

    /// Starts on chosen ports; `{public_url}` in the config becomes the proxy's origin.
    pub fn start_on(ports: Ports, config: &str, upstream: &str, env: &[(&str, &str)]) -> Self {
        let Ports {
            proxy: port,
            admin: admin_port,
        } = ports;
        let text = config
            .replace("{public_url}", &ports.origin())
            .replace("{listen}", &format!("127.0.0.1:{port}"))
            .replace("{admin}", &format!("127.0.0.1:{admin_port}"))
            .replace("{upstream}", upstream)
            .replace("{session_key}", SESSION_KEY);
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("sidecar.toml");
        std::fs::write(&config_path, text).unwrap();
        let log_path = dir.path().join("sidecar.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(binary());
        command
            .args(["run", "-c"])
            .arg(&config_path)
            .env("SSO_SIDECAR_LOG_FORMAT", "json")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        let mut sidecar = Sidecar {
            port,
            admin_port,
            child,
            log_path,
            _dir: dir,
        };
        sidecar.wait_ready();
        sidecar
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::blocking::Client::new();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sidecar exited with {status}:\n{}", self.log());
            }
            let admin_up = client
                .get(self.admin_url("/healthz"))
                .send()
                .is_ok_and(|r| r.status() == 200);
            if admin_up && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sidecar did not become ready:\n{}", self.log());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The config file the sidecar runs with (rewrite it, then send SIGHUP).
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("sidecar.toml")
    }

    /// Sends a signal (`HUP`, `TERM`, …) to the sidecar process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The process's resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// The log once it contains `needle` (the access line is written after the response
    /// went out, so a test may read the log a moment too early).
    pub fn log_containing(&self, needle: &str) -> String {
        for _ in 0..100 {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{needle:?} never appeared in the log:\n{}", self.log());
    }

    /// The metrics page as `name{labels} → value`.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let text = reqwest::blocking::get(self.admin_url("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                l.rsplit_once(' ')
                    .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(f64::NAN)))
            })
            .collect()
    }

    /// Waits until metric `key` reaches `expected` (request counters are updated after the
    /// response went out) and returns its last value.
    pub fn metric_reaching(&self, key: &str, expected: f64) -> f64 {
        let mut value = self.metric(key);
        for _ in 0..100 {
            if value == expected {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            value = self.metric(key);
        }
        value
    }

    /// Waits until every configured IdP is discovered (`/readyz` says `ready`).
    pub fn wait_idps_ready(&self) {
        for _ in 0..200 {
            let ready: serde_json::Value = reqwest::blocking::get(self.admin_url("/readyz"))
                .unwrap()
                .json()
                .unwrap();
            let idps = ready["identity_providers"].as_object().unwrap();
            // `ready` also waits for shared revocations to load (with Redis).
            if ready["ready"] == true && idps.values().all(|s| s["state"] == "ready") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("IdPs not discovered or not ready:\n{}", self.log());
    }

    pub fn metric(&self, key: &str) -> f64 {
        self.metrics().get(key).copied().unwrap_or(0.0)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that does not follow redirects, so tests see every answer.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Runs `sso-sidecar` with arguments and returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> (i32, String, String) {
    let mut command = Command::new(binary());
    command.args(args).current_dir(cwd);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A real OpenID provider (`idp/provider.mjs`, npm `oidc-provider`), killed when dropped.
pub struct Idp {
    pub issuer: String,
    pub port: u16,
    settings: serde_json::Value,
    child: Child,
}

impl Idp {
    /// Starts the provider with `settings` (see the header of `idp/provider.mjs`).
    pub fn start(settings: serde_json::Value) -> Self {
        use std::io::BufRead;
        let script = repo_root().join("idp/provider.mjs");
        assert!(
            repo_root().join("idp/node_modules/oidc-provider").exists(),
            "idp/node_modules is missing: run `make test` (it runs npm ci)"
        );
        // The provider's own log, kept for looking into a failed test.
        let logs = repo_root().join("target/test-artifacts/idp-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log =
            std::fs::File::create(logs.join(format!("{}-{}.log", std::process::id(), free_port())))
                .unwrap();
        let mut child = Command::new("node")
            .arg(script)
            .env("IDP_CONFIG", settings.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("node is installed");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("IdP did not start ({e}): {line:?}"));
        Idp {
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
            port: ready["port"].as_u64().unwrap() as u16,
            settings,
            child,
        }
    }

    /// Starts the provider again on the same port after [`Idp::stop`]. Its memory (sessions,
    /// grants, refresh tokens, keys) is gone, as after a real outage with an in-memory store.
    pub fn restart(&mut self) {
        self.stop();
        let mut settings = self.settings.clone();
        settings["port"] = serde_json::json!(self.port);
        let fresh = Self::start(settings);
        assert_eq!(fresh.issuer, self.issuer);
        *self = fresh;
    }

    /// A provider with one confidential client `shop` / `shop-secret` for `ports`.
    pub fn for_sidecar(ports: Ports, extra: serde_json::Value) -> Self {
        let mut settings = serde_json::json!({
            "clients": [{
                "client_id": "shop",
                "client_secret": "shop-secret",
                "redirect_uris": [ports.callback()],
                "post_logout_redirect_uris": [format!("{}/", ports.origin())],
                "backchannel_logout_uri": format!("{}/oauth2/backchannel-logout", ports.origin()),
                "backchannel_logout_session_required": true,
            }],
        });
        if let (Some(base), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        Self::start(settings)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn stats(&self) -> serde_json::Value {
        reqwest::blocking::get(self.url("/_test/stats"))
            .unwrap()
            .json()
            .unwrap()
    }

    /// Replaces the claims the provider gives `login` from now on (tokens and refreshes).
    pub fn set_user(&self, login: &str, claims: serde_json::Value) {
        let status = reqwest::blocking::Client::new()
            .post(self.url("/_test/user"))
            .body(serde_json::json!({"login": login, "claims": claims}).to_string())
            .send()
            .unwrap()
            .status();
        assert!(status.is_success());
    }

    /// A back-channel logout token signed by this provider, shaped by `spec`.
    pub fn logout_token(&self, spec: serde_json::Value) -> String {
        let answer: serde_json::Value = reqwest::blocking::Client::new()
            .post(self.url("/_test/logout-token"))
            .body(spec.to_string())
            .send()
            .unwrap()
            .json()
            .unwrap();
        answer["logout_token"].as_str().unwrap().to_owned()
    }

    /// `claims` signed as `mode` says (see `/_test/sign` in `idp/provider.mjs`).
    pub fn sign(&self, claims: serde_json::Value, mode: &str) -> String {
        self.sign_typed(claims, mode, None)
    }

    /// Like [`Idp::sign`], with a `typ` in the JWT header (`at+jwt`, `logout+jwt`).
    pub fn sign_typed(&self, claims: serde_json::Value, mode: &str, typ: Option<&str>) -> String {
        let answer: serde_json::Value = reqwest::blocking::Client::new()
            .post(self.url("/_test/sign"))
            .body(serde_json::json!({"claims": claims, "mode": mode, "typ": typ}).to_string())
            .send()
            .unwrap()
            .json()
            .unwrap();
        answer["token"].as_str().unwrap().to_owned()
    }

    /// Makes an endpoint misbehave: `target` discovery|token|jwks|userinfo, `mode`
    /// html|json|slow|off.
    pub fn garble(&self, target: &str, mode: &str) {
        reqwest::blocking::Client::new()
            .post(self.url(&format!("/_test/garble?target={target}&mode={mode}")))
            .send()
            .unwrap();
    }

    pub fn rotate_keys(&self) {
        reqwest::blocking::Client::new()
            .post(self.url("/_test/rotate-keys"))
            .send()
            .unwrap();
    }

    pub fn forge(&self, mode: &str) {
        reqwest::blocking::Client::new()
            .post(self.url(&format!("/_test/forge?mode={mode}")))
            .send()
            .unwrap();
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP client that behaves like a browser for sign-in: keeps cookies, sends
/// `Accept: text/html`, and follows redirects one by one so tests can watch them.
pub struct Browser {
    pub client: reqwest::blocking::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

/// One answer the browser got.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    /// Whether the answer sets a session cookie (a sign-in that went through).
    pub fn sets_session(&self) -> bool {
        self.set_cookies
            .iter()
            .any(|c| c.starts_with("_sso_session="))
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser::with(|builder| builder)
    }

    /// A browser that also trusts the CA in `ca_pem` (for HTTPS tests).
    pub fn trusting(ca_pem: &str) -> Self {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
        Browser::with(|builder| builder.add_root_certificate(ca))
    }

    fn with(
        configure: impl FnOnce(reqwest::blocking::ClientBuilder) -> reqwest::blocking::ClientBuilder,
    ) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let builder = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(30));
        let client = configure(builder).build().unwrap();
        Browser { client, jar }
    }

    fn page(url: &str, response: reqwest::blocking::Response) -> Page {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = response.text().unwrap_or_default();
        Page {
            url: url.to_owned(),
            status,
            location,
            set_cookies,
            body,
        }
    }

    pub fn get(&self, url: &str) -> Page {
        let response = self
            .client
            .get(url)
            .header("Accept", "text/html,application/xhtml+xml")
            .send()
            .unwrap();
        Self::page(url, response)
    }

    pub fn post_form(&self, url: &str, form: &[(String, String)]) -> Page {
        let response = self
            .client
            .post(url)
            .header("Accept", "text/html")
            .form(form)
            .send()
            .unwrap();
        Self::page(url, response)
    }

    /// Follows redirects from `page` until an answer that is not a redirect.
    pub fn follow(&self, mut page: Page) -> Page {
        for _ in 0..20 {
            let Some(location) = page
                .location
                .clone()
                .filter(|_| (300..400).contains(&page.status))
            else {
                return page;
            };
            let next = absolute(&page.url, &location);
            page = self.get(&next);
        }
        panic!("too many redirects, last: {page:?}");
    }

    /// At the IdP: fills and submits its forms (login with `user`, then any consent) until
    /// the IdP sends the browser back to `until_origin`. Returns that redirect's target.
    pub fn sign_in_at_idp(&self, mut page: Page, user: &str, until_origin: &str) -> String {
        for _ in 0..20 {
            if let Some(location) = page
                .location
                .clone()
                .filter(|_| (300..400).contains(&page.status))
            {
                let next = absolute(&page.url, &location);
                if next.starts_with(until_origin) {
                    return next;
                }
                page = self.get(&next);
                continue;
            }
            assert_eq!(page.status, 200, "unexpected page at the IdP: {page:?}");
            let (action, mut fields) = parse_form(&page.body)
                .unwrap_or_else(|| panic!("no form on IdP page: {}", page.body));
            if page.body.contains("name=\"login\"") {
                fields.push(("login".into(), user.into()));
                fields.push(("password".into(), "any-password".into()));
            }
            if page.body.contains("name=\"logout\"") {
                fields.push(("logout".into(), "yes".into()));
            }
            page = self.post_form(&absolute(&page.url, &action), &fields);
        }
        panic!("sign-in at the IdP did not finish");
    }

    /// The value of cookie `name` the browser would send to `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let header = self.jar.cookies(&url.parse().unwrap())?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    pub fn set_cookie(&self, url: &str, cookie: &str) {
        self.jar.add_cookie_str(cookie, &url.parse().unwrap());
    }
}

pub fn absolute(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

/// The first form of an HTML page: its action and its hidden inputs.
pub fn parse_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let form_start = html.find("<form")?;
    let form = &html[form_start..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    let action = attribute(form, "action").unwrap_or_default();
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(i) = rest.find("<input") {
        let tag_end = rest[i..].find('>').map_or(rest.len(), |e| i + e);
        let tag = &rest[i..tag_end];
        if tag.contains("type=\"hidden\"") {
            if let (Some(name), value) = (attribute(tag, "name"), attribute(tag, "value")) {
                fields.push((name, value.unwrap_or_default()));
            }
        }
        rest = &rest[tag_end..];
    }
    Some((
        html_unescape(&action),
        fields
            .into_iter()
            .map(|(k, v)| (html_unescape(&k), html_unescape(&v)))
            .collect(),
    ))
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// Runs one of the Chromium drivers in `idp/` (`browser-login.mjs`, `browser-page.mjs`,
/// `browser-form.mjs`) with `job` and returns the JSON line it prints last. On failure the
/// driver's output and `context` (e.g. the sidecar's log) are shown.
pub fn run_chromium(driver: &str, job: &serde_json::Value, context: &str) -> serde_json::Value {
    let output = Command::new("node")
        .arg(repo_root().join("idp").join(driver))
        .arg(job.to_string())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{driver} failed:\n{stdout}\n{}\n{context}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{driver} printed no JSON ({e}): {stdout}"))
}

/// Seconds since the Unix epoch, for token claims.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Serves `app` on a free loopback port from a runtime of its own (kept alive by the
/// caller); for test backends with behaviour of their own.
pub fn serve(app: axum::Router) -> (SocketAddr, tokio::runtime::Runtime) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, serve_on(listener, app))
}

/// Serves `app` on a listener bound earlier (when its address is needed first).
pub fn serve_on(listener: TcpListener, app: axum::Router) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener).unwrap()
    };
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    runtime
}
