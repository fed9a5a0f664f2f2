//! One way to reach Redis whatever its topology: a [`Connector`] made once from the
//! [`Topology`] hands out cheap [`Connection`] clones for commands and fresh pub/sub
//! connections for following a channel.
//!
//! - one server: a `ConnectionManager`, which reconnects by itself;
//! - Sentinel: the master the sentinels name, asked again after any failed call, so a
//!   failover costs the calls in flight and nothing after;
//! - cluster: the cluster client, which follows slots and failovers by itself. Pub/sub
//!   uses any one node, as a cluster delivers every `PUBLISH` to every node.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection, PubSub,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::redis_topology::Topology;

pub(super) enum Connector {
    Single {
        client: Client,
        /// Created on first use, inside a runtime (its driver is a tokio task).
        connection: OnceLock<ConnectionManager>,
        timeout: Duration,
    },
    Sentinel {
        sentinel: tokio::sync::Mutex<Sentinel>,
        master: String,
        node: SentinelNodeConnectionInfo,
        /// The master's client and connection while calls to it succeed.
        current: Mutex<Option<(Client, MultiplexedConnection)>>,
        timeout: Duration,
    },
    Cluster {
        client: ClusterClient,
        nodes: Vec<redis::ConnectionInfo>,
        connection: tokio::sync::OnceCell<ClusterConnection>,
    },
}

/// A connection for commands, cheap to clone.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Master(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Connector {
    pub fn new(topology: Topology, timeout: Duration) -> RedisResult<Connector> {
        Ok(match topology {
            Topology::Single(info) => Connector::Single {
                client: Client::open(info)?,
                connection: OnceLock::new(),
                timeout,
            },
            Topology::Sentinel {
                sentinels,
                master,
                node,
            } => Connector::Sentinel {
                sentinel: tokio::sync::Mutex::new(Sentinel::build(sentinels)?),
                master,
                node: SentinelNodeConnectionInfo::default().set_redis_connection_info(node),
                current: Mutex::new(None),
                timeout,
            },
            Topology::Cluster(nodes) => Connector::Cluster {
                client: ClusterClient::builder(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()?,
                nodes,
                connection: tokio::sync::OnceCell::new(),
            },
        })
    }

    pub async fn connection(&self) -> RedisResult<Connection> {
        match self {
            Connector::Single {
                client,
                connection,
                timeout,
            } => {
                if let Some(c) = connection.get() {
                    return Ok(Connection::Single(c.clone()));
                }
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(*timeout))
                    .set_response_timeout(Some(*timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                let created = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
                Ok(Connection::Single(
                    connection.get_or_init(|| created).clone(),
                ))
            }
            Connector::Sentinel {
                current, timeout, ..
            } => {
                let known = current.lock().unwrap().as_ref().map(|(_, c)| c.clone());
                if let Some(c) = known {
                    return Ok(Connection::Master(c));
                }
                let client = self.master().await?;
                let c = client
                    .get_multiplexed_async_connection_with_config(
                        &AsyncConnectionConfig::new()
                            .set_connection_timeout(Some(*timeout))
                            .set_response_timeout(Some(*timeout)),
                    )
                    .await?;
                *current.lock().unwrap() = Some((client, c.clone()));
                Ok(Connection::Master(c))
            }
            Connector::Cluster {
                client, connection, ..
            } => connection
                .get_or_try_init(|| client.get_async_connection())
                .await
                .cloned()
                .map(Connection::Cluster),
        }
    }

    /// A call failed: with Sentinel, the master may have changed; ask again next time.
    pub fn call_failed(&self) {
        if let Connector::Sentinel { current, .. } = self {
            current.lock().unwrap().take();
        }
    }

    /// A new pub/sub connection: to the server, the current master, or the first cluster
    /// node that answers.
    pub async fn pubsub(&self) -> RedisResult<PubSub> {
        match self {
            Connector::Single { client, .. } => client.get_async_pubsub().await,
            Connector::Sentinel { .. } => self.master().await?.get_async_pubsub().await,
            Connector::Cluster { nodes, .. } => {
                let mut last = None;
                for node in nodes {
                    match Client::open(node.clone()) {
                        Ok(client) => match client.get_async_pubsub().await {
                            Ok(pubsub) => return Ok(pubsub),
                            Err(error) => last = Some(error),
                        },
                        Err(error) => last = Some(error),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Io, "no cluster node listed"))
                }))
            }
        }
    }

    async fn master(&self) -> RedisResult<Client> {
        let Connector::Sentinel {
            sentinel,
            master,
            node,
            ..
        } = self
        else {
            unreachable!("master() is only called for Sentinel");
        };
        sentinel
            .lock()
            .await
            .async_master_for(master, Some(node))
            .await
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Master(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Master(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Master(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}
