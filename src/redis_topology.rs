//! Where Redis is: one server, a Sentinel-watched master, or a cluster. Parsed from
//! `store.url` (and `store.cluster`) once, both by `check` and by the store; problems are
//! fixed texts, never the URL itself (it may hold a password).

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

/// Sentinel's own port when a `redis+sentinel://` host names none.
const SENTINEL_PORT: u16 = 26379;

#[derive(Debug, Clone)]
pub enum Topology {
    /// `redis://`, `rediss://` or `unix://`: one server.
    Single(ConnectionInfo),
    /// `redis+sentinel://[user:password@]host:port,host:port/master[/db]`: the sentinels
    /// name the current master; credentials and db are the master's.
    Sentinel {
        sentinels: Vec<ConnectionInfo>,
        master: String,
        /// Database and credentials for the master.
        node: RedisConnectionInfo,
    },
    /// `store.cluster = true`: `redis://a:7000,redis://b:7001,…`, the nodes to start from.
    Cluster(Vec<ConnectionInfo>),
}

impl Topology {
    pub fn parse(url: &str, cluster: bool) -> Result<Topology, &'static str> {
        if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            if cluster {
                return Err("is a Sentinel URL, which store.cluster = true cannot use");
            }
            return sentinel(rest);
        }
        if cluster {
            let nodes = url
                .split(',')
                .map(|node| single(node.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Topology::Cluster(nodes));
        }
        if url.contains(',') {
            return Err("lists several servers: set store.cluster = true for a cluster, or use redis+sentinel://");
        }
        single(url).map(Topology::Single)
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Topology::Single(_) => "single",
            Topology::Sentinel { .. } => "sentinel",
            Topology::Cluster(_) => "cluster",
        }
    }
}

fn single(url: &str) -> Result<ConnectionInfo, &'static str> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "redis" | "rediss" | "unix" | "redis+unix") => url
            .into_connection_info()
            .map_err(|_| "is not a usable Redis URL (expected redis://host:6379/0)"),
        Ok(_) => Err("must be a redis:// (or rediss://, redis+sentinel://) URL"),
        Err(_) => Err("is not a URL (expected redis://host:6379/0)"),
    }
}

fn sentinel(rest: &str) -> Result<Topology, &'static str> {
    const SHAPE: &str =
        "is not a Sentinel URL (expected redis+sentinel://host:26379,host:26380/mymaster)";
    let (authority, path) = rest.split_once('/').ok_or(SHAPE)?;
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (Some(credentials), hosts),
        None => (None, authority),
    };
    let (username, password) = match credentials {
        None => (None, None),
        Some(credentials) => {
            let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .map(|s| s.into_owned())
                    .map_err(|_| SHAPE)
            };
            let user = (!user.is_empty()).then(|| decode(user)).transpose()?;
            let password = (!password.is_empty())
                .then(|| decode(password))
                .transpose()?;
            (user, password)
        }
    };
    let sentinels = hosts
        .split(',')
        .map(|host| {
            let (name, port) = match host.rsplit_once(':') {
                Some((name, port)) => (name, port.parse::<u16>().map_err(|_| SHAPE)?),
                None => (host, SENTINEL_PORT),
            };
            if name.is_empty() {
                return Err(SHAPE);
            }
            ConnectionAddr::Tcp(name.to_owned(), port)
                .into_connection_info()
                .map_err(|_| SHAPE)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let master = segments.next().ok_or(SHAPE)?.to_owned();
    let db = match segments.next() {
        Some(db) => db.parse::<i64>().map_err(|_| SHAPE)?,
        None => 0,
    };
    if segments.next().is_some() {
        return Err(SHAPE);
    }
    let mut node = RedisConnectionInfo::default().set_db(db);
    if let Some(username) = username {
        node = node.set_username(username);
    }
    if let Some(password) = password {
        node = node.set_password(password);
    }
    Ok(Topology::Sentinel {
        sentinels,
        master,
        node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_server_urls() {
        assert!(matches!(
            Topology::parse("redis://127.0.0.1:6379/0", false),
            Ok(Topology::Single(_))
        ));
        assert!(Topology::parse("http://x", false).is_err());
        assert!(Topology::parse("redis://a:1,redis://b:2", false).is_err());
    }

    #[test]
    fn sentinel_urls_name_hosts_master_db_and_credentials() {
        let Ok(Topology::Sentinel {
            sentinels,
            master,
            node,
        }) = Topology::parse(
            "redis+sentinel://u:p%40ss@10.0.0.1,10.0.0.2:26380/shop/3",
            false,
        )
        else {
            panic!("not parsed as sentinel");
        };
        let addrs: Vec<String> = sentinels.iter().map(|s| s.addr().to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:26379", "10.0.0.2:26380"]);
        assert_eq!(master, "shop");
        assert_eq!(node.db(), 3);
        assert_eq!(node.username(), Some("u"));
        assert_eq!(node.password(), Some("p@ss"));
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h:x/m",
            "redis+sentinel://h:1/m/notadb",
        ] {
            assert!(Topology::parse(bad, false).is_err(), "{bad}");
        }
        assert!(Topology::parse("redis+sentinel://h:1/m", true).is_err());
    }

    #[test]
    fn cluster_urls_list_nodes() {
        let Ok(Topology::Cluster(nodes)) =
            Topology::parse("redis://127.0.0.1:7000, redis://127.0.0.1:7001", true)
        else {
            panic!("not parsed as cluster");
        };
        assert_eq!(nodes.len(), 2);
        assert!(Topology::parse("redis://a:1,nonsense", true).is_err());
    }
}
