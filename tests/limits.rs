//! Resource limits at the edge (issue 21), on the real binary over loopback sockets: request
//! heads over `limits.max_header_bytes` or `limits.max_headers` get `431` before they are
//! buffered further, heads not complete within `server.header_timeout` get `408`, idle
//! keep-alive connections close after `server.client_idle_timeout`, and an attack from one
//! machine neither grows the process's memory nor slows legitimate requests.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const CONFIG: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"
header_timeout = "1s"
client_idle_timeout = "1s"

[admin]
listen = "{admin}"

[session]
keys = ["{session_key}"]

[[routes]]
path_prefix = "/"
auth = "public"
"#;

fn connect(sidecar: &Sidecar) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", sidecar.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Everything the server sends until it closes (or 5 s pass).
fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn oversized_or_slow_heads_are_refused_at_once() {
    let upstream = Upstream::start();
    let sidecar = Sidecar::start(CONFIG, &upstream.url());

    // A complete head over 32 KiB.
    let mut stream = connect(&sidecar);
    let cookie = "a".repeat(40 * 1024);
    let _ = write!(
        stream,
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"
    );
    assert!(read_all(&mut stream).starts_with("HTTP/1.1 431 "));

    // An unfinished one: refused once 32 KiB arrived, without waiting for the rest (the
    // memory side is measured by the attack test below).
    let mut stream = connect(&sidecar);
    let _ = write!(stream, "GET / HTTP/1.1\r\nHost: x\r\nCookie: ");
    let chunk = vec![b'b'; 8 * 1024];
    for _ in 0..8 {
        let _ = stream.write_all(&chunk);
    }
    assert!(read_all(&mut stream).starts_with("HTTP/1.1 431 "));

    // Too many header lines.
    let mut stream = connect(&sidecar);
    let mut head = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        head.push_str(&format!("X-H{i}: v\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    assert!(read_all(&mut stream).starts_with("HTTP/1.1 431 "));

    // A head trickling in, line by line: 408 when header_timeout (1 s) is up.
    let mut stream = connect(&sidecar);
    let started = Instant::now();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut line = 0;
    while stream
        .write_all(format!("X-Slow-{line}: 1\r\n").as_bytes())
        .is_ok()
        && started.elapsed() < Duration::from_secs(3)
    {
        line += 1;
        std::thread::sleep(Duration::from_millis(200));
        if line == 8 {
            break;
        }
    }
    let answer = read_all(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Idle keep-alive connections close after client_idle_timeout (1 s).
    let mut stream = connect(&sidecar);
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let idle_from = Instant::now();
    let _ = read_all(&mut stream);
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(3),
        "{idle:?}"
    );

    // Ordinary requests, with a real session cookie's size (~3.6 KB), pass.
    let ok = client()
        .get(sidecar.url("/page"))
        .header("Cookie", format!("_other={}", "c".repeat(3700)))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    let metric = |reason: &str| {
        sidecar.metric(&format!(
            "sso_sidecar_requests_refused_total{{reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(metric("header_too_large"), 2.0);
    assert_eq!(metric("too_many_headers"), 1.0);
    assert_eq!(metric("header_timeout"), 1.0);
}

/// One laptop's attack, bounded: 300 connections each starting an endless `Cookie` header
/// and 300 trickling one header line at a time, while a legitimate client keeps making
/// requests. Memory stays low, slow connections are gone after `header_timeout`, and the
/// legitimate requests stay fast. (Old code: ~1 MiB buffered per endless head, slow
/// connections open for good.)
#[test]
#[ignore = "load test: `make attack` runs it on the release build"]
fn an_attack_from_one_machine_does_not_exhaust_the_sidecar() {
    let upstream = Upstream::start();
    // The per-client limit would stop this attack at 256 connections; it is lifted so the
    // head limits face all 600 (as from many machines).
    let config = CONFIG.replace(
        "[session]",
        "[limits]\nmax_connections_per_client = 10000\n\n[session]",
    );
    let sidecar = Sidecar::start(&config, &upstream.url());
    let rss_before = sidecar.rss_kib();
    let attack_until = Instant::now() + Duration::from_secs(4);
    let port = sidecar.port;
    let attackers: Vec<_> = (0..2)
        .map(|kind| {
            std::thread::spawn(move || {
                let mut streams: Vec<TcpStream> = (0..300)
                    .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
                    .collect();
                for s in &mut streams {
                    let _ = s.set_nonblocking(true);
                    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nCookie: ");
                }
                let chunk = vec![b'z'; 4096];
                let mut round = 0;
                while Instant::now() < attack_until {
                    for s in &mut streams {
                        // Huge heads: as fast as the socket takes it; slow ones: a byte a round.
                        let _ = if kind == 0 {
                            s.write(&chunk)
                        } else {
                            s.write(&chunk[..1])
                        };
                    }
                    round += 1;
                    std::thread::sleep(Duration::from_millis(if kind == 0 { 5 } else { 250 }));
                }
                round
            })
        })
        .collect();

    let mut latencies = Vec::new();
    let mut peak = 0;
    let legit = client();
    while Instant::now() < attack_until {
        let started = Instant::now();
        let response = legit.get(sidecar.url("/legit")).send().unwrap();
        assert_eq!(response.status(), 200);
        latencies.push(started.elapsed());
        peak = peak.max(sidecar.rss_kib());
        std::thread::sleep(Duration::from_millis(20));
    }
    for attacker in attackers {
        attacker.join().unwrap();
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "attack: RSS {rss_before} KiB before, peak {peak} KiB; {} legitimate requests, p99 {p99:?}",
        latencies.len()
    );
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB");
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    assert!(
        sidecar.metric("sso_sidecar_requests_refused_total{reason=\"header_timeout\"}") >= 250.0,
        "slow connections were cut off by header_timeout"
    );
    assert!(
        sidecar.metric("sso_sidecar_requests_refused_total{reason=\"header_too_large\"}") >= 250.0
    );
}

/// `limits.max_connections_per_client`: a client over it is closed at accept while its
/// open connections keep working; a trusted proxy counts only towards the total.
#[test]
fn connections_per_client_are_limited() {
    let upstream = Upstream::start();
    let config = CONFIG.replace(
        "[session]",
        "[limits]\nmax_connections_per_client = 5\n\n[session]",
    );
    let sidecar = Sidecar::start(&config, &upstream.url());
    // The harness's readiness probe is a connection too: wait until it is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sidecar.metric("sso_sidecar_client_connections_open") > 0.0 {
        assert!(Instant::now() < deadline, "the probe connection stays open");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut open: Vec<TcpStream> = (0..5).map(|_| connect(&sidecar)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut sixth = connect(&sidecar);
    let _ = sixth.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_all(&mut sixth), "", "closed without an answer");
    // The five still work (each gets one answer before the idle timeout).
    for stream in &mut open {
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert!(read_all(stream).starts_with("HTTP/1.1 200"));
    }
    drop(open);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = connect(&sidecar);
    again
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(
        read_all(&mut again).starts_with("HTTP/1.1 200"),
        "slots are given back"
    );
    assert!(
        sidecar.metric("sso_sidecar_requests_refused_total{reason=\"max_connections_per_client\"}")
            >= 1.0
    );

    // Behind a trusted proxy every client shares its address: no per-client limit there.
    let trusting = Sidecar::start(
        &config.replace(
            "client_idle_timeout = \"1s\"",
            "client_idle_timeout = \"1s\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
        ),
        &upstream.url(),
    );
    let many: Vec<TcpStream> = (0..8).map(|_| connect(&trusting)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut last = connect(&trusting);
    last.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(read_all(&mut last).starts_with("HTTP/1.1 200"));
    drop(many);
}

/// An idle keep-alive connection (after one request) costs at most 16 KiB of RSS: the
/// patched pingora-core reads plain TCP without its 64 KiB L4 buffer and holds no session
/// between requests. Release build only, as debug futures are larger.
#[test]
#[ignore = "memory figure: `make attack` runs it on the release build"]
fn idle_keep_alive_connections_cost_at_most_16_kib() {
    const CONNECTIONS: usize = 3_000;
    let upstream = Upstream::start();
    let config = CONFIG
        .replace(
            "client_idle_timeout = \"1s\"",
            "client_idle_timeout = \"60s\"",
        )
        .replace(
            "[session]",
            "[limits]\nmax_connections_per_client = 10000\n\n[session]",
        );
    let sidecar = Sidecar::start(&config, &upstream.url());
    let ask = |stream: &mut TcpStream| {
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
            .unwrap();
        let mut answer = [0u8; 2048];
        let n = stream.read(&mut answer).unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    };
    // Warm up: the upstream pool and the allocator's arenas exist before counting.
    for _ in 0..200 {
        ask(&mut connect(&sidecar));
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = sidecar.rss_kib();
    // Each connects and asks once, as browsers do. (Connections that have sent nothing yet
    // cost more, ~38 KiB, until their first request or `server.header_timeout`.)
    let idle: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut stream = connect(&sidecar);
            ask(&mut stream);
            stream
        })
        .collect();
    let mut idle = idle;
    std::thread::sleep(Duration::from_millis(500));
    let after = sidecar.rss_kib();
    let each = (after - before) as f64 / CONNECTIONS as f64;
    eprintln!(
        "idle keep-alive: RSS {before} → {after} KiB for {CONNECTIONS} connections: {each:.1} KiB each, {:.1} MiB per 1,000",
        each * 1000.0 / 1024.0
    );
    assert!(each <= 16.0, "{each:.1} KiB per idle connection");
    // They are still usable.
    for stream in idle.iter_mut().take(10) {
        ask(stream);
    }
}

/// Probes and scrapes on the admin listener used to count towards
/// `limits.max_connections_per_client`: a kubelet or Prometheus holding connections from
/// one address took client slots, and clients from that address were refused.
#[test]
fn admin_connections_do_not_count_towards_client_limits() {
    let upstream = Upstream::start();
    let config = CONFIG.replace(
        "[session]",
        "[limits]\nmax_connections_per_client = 2\n\n[session]",
    );
    let sidecar = Sidecar::start(&config, &upstream.url());
    std::thread::sleep(Duration::from_millis(300));
    // Two open admin connections from this address (after one request each).
    let admin: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", sidecar.admin_port)).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut answer = [0u8; 256];
            let n = stream.read(&mut answer).unwrap();
            assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut client = connect(&sidecar);
    client
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(
        read_all(&mut client).starts_with("HTTP/1.1 200"),
        "a client is served while admin connections are open"
    );
    drop(admin);
}
