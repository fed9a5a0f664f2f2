//! The real `sso-sidecar` binary: started as a subprocess on free loopback ports, and
//! run as a command.

use super::*;

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

    /// Where nothing must know its ports beforehand (no `{public_url}`, no IdP), the sidecar
    /// takes free ports itself (port 0) and the test reads them from its start-up line.
    pub fn start_with_env(config: &str, upstream: &str, env: &[(&str, &str)]) -> Self {
        if config.contains("{public_url}") {
            return Self::start_on(Ports::new(), config, upstream, env);
        }
        Self::start_on(Ports { proxy: 0, admin: 0 }, config, upstream, env)
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
        let (port, admin_port) = match (port, admin_port) {
            (0, 0) => bound_ports(&log_path),
            chosen => chosen,
        };
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
        self.wait_idps_ready_except(&[]);
    }

    /// Like [`Sidecar::wait_idps_ready`], for every IdP but `unreachable` ones.
    pub fn wait_idps_ready_except(&self, unreachable: &[&str]) {
        for _ in 0..200 {
            let ready: serde_json::Value = reqwest::blocking::get(self.admin_url("/readyz"))
                .unwrap()
                .json()
                .unwrap();
            let idps = ready["identity_providers"].as_object().unwrap();
            // `ready` also waits for shared revocations to load (with Redis).
            let all_ready = (idps.iter())
                .filter(|(key, _)| !unreachable.contains(&key.as_str()))
                .all(|(_, s)| s["state"] == "ready");
            if ready["ready"] == true && all_ready {
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

/// The ports a sidecar started on port 0 bound, from its `listening` line.
fn bound_ports(log_path: &Path) -> (u16, u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        let line = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["message"] == "listening");
        if let Some(line) = line {
            let port = |field: &str| -> u16 {
                let addr = line[field].as_str().unwrap();
                addr.rsplit(':').next().unwrap().parse().unwrap()
            };
            return (port("proxy"), port("admin"));
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar never said where it listens:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
