//! The connection: a standalone server (redis-rs `ConnectionManager`: one multiplexed
//! connection, reconnected in the background) or a Redis Cluster (`ClusterConnection`, with
//! request retries disabled so that a pipeline of scripts is never re-sent behind our back).

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisResult, Value};

/// A connection to the server or cluster holding a volume. Cheap to clone (shared).
#[derive(Clone)]
pub(crate) enum Conn {
    /// A standalone server (or a replica-less primary).
    Single(ConnectionManager),
    /// A Redis Cluster; every key of a volume lives in the slot of its hash tag.
    Cluster(ClusterConnection),
}

impl Conn {
    /// Sends `pipe` and returns one value per command; a command's error comes back as
    /// `Value::ServerError` in its slot (the pipeline must be built with `ignore_errors`).
    pub(crate) async fn pipe(&self, pipe: &Pipeline) -> RedisResult<Vec<Value>> {
        match self.clone() {
            Conn::Single(mut c) => pipe.query_async(&mut c).await,
            Conn::Cluster(mut c) => pipe.query_async(&mut c).await,
        }
    }

    /// Sends one command (routed by its first key on a cluster).
    pub(crate) async fn cmd(&self, cmd: &Cmd) -> RedisResult<Value> {
        match self.clone() {
            Conn::Single(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    /// Sends a key-less command (e.g. `SCAN`) to the primary serving `key`'s slot.
    pub(crate) async fn cmd_at(&self, cmd: &Cmd, key: &str) -> RedisResult<Value> {
        match self.clone() {
            Conn::Single(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                c.route_command(
                    cmd.clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
            }
        }
    }

    /// True for a cluster connection.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}
