//! Upstreams: a real HTTP server (axum) that records what it received, and serving any
//! test backend on loopback port 0.

use super::*;

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
    if path == "/static/logo.svg" {
        // A shop's logo, for the pages' look (`pages.logo_url`).
        return (
            [("content-type", "image/svg+xml")],
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"40\" height=\"40\"><rect width=\"40\" height=\"40\" rx=\"8\" fill=\"#7a1f5c\"/><text x=\"20\" y=\"27\" font-size=\"20\" text-anchor=\"middle\" fill=\"#fff\" font-family=\"sans-serif\">M</text></svg>",
        )
            .into_response();
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
