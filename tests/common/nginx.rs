//! nginx as the upstream where path normalisation matters: it resolves dot segments,
//! decodes percent-encodings and merges slashes before choosing a location, as Tomcat and
//! Rack do. Runs as one process in the foreground, on a loopback port, from a scratch dir.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Nginx {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// `locations` is the inside of nginx's `server { }` block after `listen`.
    pub fn start(locations: &str) -> Self {
        Self::start_servers(&format!(
            "server {{\n    listen 127.0.0.1:{{port}};\n    {locations}\n  }}"
        ))
    }

    /// `servers` is the `server { }` blocks (virtual hosts), with `{port}` for the port.
    pub fn start_servers(servers: &str) -> Self {
        Self::start_servers_on(free_port(), servers)
    }

    /// [`Nginx::start_servers`] on a port chosen beforehand (when others need it first).
    pub fn start_servers_on(port: u16, servers: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let servers = servers.replace("{port}", &port.to_string());
        let root = dir.path().display();
        let conf = format!(
            "worker_processes 1; daemon off; master_process off; pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
  default_type text/plain;
  {servers}
}}
"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("nginx")
            .args([
                "-c",
                path.to_str().unwrap(),
                "-p",
                dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed by scripts/install-deps.sh");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw HTTP/1.1 request with the target exactly as given (HTTP clients would
/// normalise it); returns the status and the body.
pub fn raw_request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: shop.example\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    raw_head(port, &head)
}

/// One raw request head exactly as given (request line and fields, each ending in CRLF;
/// `Connection: close` and the blank line are added); returns the status and the body.
pub fn raw_head(port: u16, head: &str) -> (u16, String) {
    let text = raw_exchange(port, head);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// One raw request head (see [`raw_head`]); returns the whole response as text.
pub fn raw_exchange(port: u16, head: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("{head}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}
