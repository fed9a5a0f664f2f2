//! Real Redis processes (Debian `redis-server`, also in Sentinel and cluster mode) on free
//! loopback ports, without persistence; killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// One `redis-server`; killed when dropped or by [`RedisServer::kill`].
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        RedisServer::start_with(&[])
    }

    /// A server with extra command-line settings (`--replicaof …`, `--cluster-enabled …`).
    pub fn start_with(extra: &[&str]) -> Self {
        RedisServer::start_on_free_port(|port| {
            let mut command = Command::new("redis-server");
            command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(extra);
            command
        })
    }

    /// Starts `command(port)` on a free port, again on another one if a parallel test took
    /// the port in between (Redis cannot bind port 0 and report it).
    pub(super) fn start_on_free_port(command: impl Fn(u16) -> Command) -> Self {
        for _ in 0..5 {
            let port = free_port();
            if let Some(server) = RedisServer::spawn(port, &mut command(port)) {
                return server;
            }
        }
        panic!("redis-server did not start on five free ports");
    }

    /// `None` when the process exits before it listens.
    fn spawn(port: u16, command: &mut Command) -> Option<Self> {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (make test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if child.try_wait().ok().flatten().is_some() {
                return None;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(RedisServer {
            port,
            child: Some(child),
        })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGKILL, as a crash would; the process is reaped when dropped.
    pub fn crash(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status();
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 50 ms for at most `limit`.
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A master, one replica and three sentinels (quorum 2) watching them as `mymaster`,
/// with a failover one second after the master stops answering.
pub struct RedisSentinels {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

impl RedisSentinels {
    pub const MASTER: &'static str = "mymaster";

    pub fn start() -> Self {
        let master = RedisServer::start();
        let master_port = master.port.to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master_port]);
        let dir = tempfile::tempdir().unwrap();
        let sentinels: Vec<RedisServer> = (0..3)
            .map(|i| {
                // Sentinel rewrites its configuration file, so each has its own.
                let file = dir.path().join(format!("sentinel-{i}.conf"));
                RedisServer::start_on_free_port(|port| {
                    std::fs::write(
                        &file,
                        format!(
                            "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                         sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
                         sentinel down-after-milliseconds {name} 1000\n\
                         sentinel failover-timeout {name} 5000\n",
                            dir = dir.path().display(),
                            name = Self::MASTER,
                        ),
                    )
                    .unwrap();
                    let mut command = Command::new("redis-server");
                    command.arg(&file).arg("--sentinel");
                    command
                })
            })
            .collect();
        let set = RedisSentinels {
            master,
            replica,
            sentinels,
            _dir: dir,
        };
        // A failover needs the sentinels to know each other and the replica.
        wait_for(
            "sentinels see each other and the replica",
            Duration::from_secs(20),
            || {
                set.sentinels.iter().all(|s| {
                    let info = s.cli(&["SENTINEL", "MASTER", Self::MASTER]);
                    field(&info, "num-other-sentinels") == Some("2")
                        && field(&info, "num-slaves") == Some("1")
                })
            },
        );
        wait_for("the replica is in sync", Duration::from_secs(10), || {
            set.replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
        });
        set
    }

    /// `redis+sentinel://` naming all three sentinels.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{}", hosts.join(","), Self::MASTER)
    }

    /// The port the sentinels name as master now.
    pub fn master_port(&self) -> Option<u16> {
        let out = self.sentinels[0].cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER]);
        out.lines().nth(1)?.trim().parse().ok()
    }
}

/// `name` → value in `redis-cli`'s answer to `SENTINEL MASTER` (alternating lines).
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    let lines: Vec<&str> = info.lines().collect();
    lines
        .chunks(2)
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair.get(1).copied())
}

/// A three-node Redis Cluster (masters only) made with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<RedisServer> = (0..3)
            .map(|i| {
                let config_file = dir.path().join(format!("nodes-{i}.conf"));
                // The bus port defaults to port + 10000, which may be taken: choose it too.
                let bus = free_port().to_string();
                RedisServer::start_with(&[
                    "--cluster-port",
                    &bus,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    config_file.to_str().unwrap(),
                    "--cluster-node-timeout",
                    "2000",
                    "--dir",
                    dir.path().to_str().unwrap(),
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = RedisCluster { nodes, _dir: dir };
        wait_for("the cluster is ok", Duration::from_secs(20), || {
            cluster
                .nodes
                .iter()
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        });
        cluster
    }

    /// Every node, comma-separated (`store.cluster = true`).
    pub fn url(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(RedisServer::url).collect();
        urls.join(",")
    }
}
