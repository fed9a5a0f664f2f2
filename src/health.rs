//! `sso-sidecar health`: one HTTP GET to the admin listener, for container health checks in
//! images that have no shell or curl (distroless).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Exit code 0 when `url` answers 2xx within `timeout`, 1 otherwise (with the reason on stderr).
pub fn probe(url: &str, timeout: Duration) -> i32 {
    match get_status(url, timeout) {
        Ok(status) if (200..300).contains(&status) => 0,
        Ok(status) => {
            eprintln!("health: {url} answered {status}");
            1
        }
        Err(reason) => {
            eprintln!("health: {url}: {reason}");
            1
        }
    }
}

fn get_status(url: &str, timeout: Duration) -> Result<u16, String> {
    let url = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err("only http:// is supported (the admin listener is plain HTTP)".into());
    }
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("host did not resolve")?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| e.to_string())?;
    parse_status_line(&head[..n]).ok_or_else(|| "not an HTTP answer".into())
}

fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head).ok()?.lines().next()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[test]
    fn refused_connection_is_unhealthy() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(
            probe(
                &format!("http://127.0.0.1:{port}/healthz"),
                Duration::from_secs(1)
            ),
            1
        );
        assert_eq!(
            probe("https://127.0.0.1/healthz", Duration::from_secs(1)),
            1
        );
    }
}
