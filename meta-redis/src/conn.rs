//! The connection: a standalone server (redis-rs `ConnectionManager`: one multiplexed
//! connection, reconnected in the background) or a Redis Cluster (`ClusterConnection`, with
//! request retries disabled so that a pipeline of scripts is never re-sent behind our back).

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use std::time::Duration;

use meta_core::Result;
use redis::{Cmd, Pipeline, RedisResult, Value, cmd};

use crate::config::{RedisOptions, config};
use crate::error::{Stage, classify};

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

/// The TLS trust settings of `opts` (`None`: the driver's defaults, the public web roots).
#[cfg(feature = "tls")]
fn tls_certs(opts: &RedisOptions) -> Option<redis::TlsCertificates> {
    opts.tls_ca.as_ref().map(|pem| redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.clone()),
    })
}

pub(crate) async fn connect_single(u: &str, opts: &RedisOptions, shown: &str) -> Result<Conn> {
    #[cfg(feature = "tls")]
    let client = match tls_certs(opts) {
        Some(certs) => redis::Client::build_with_tls(u, certs),
        None => redis::Client::open(u),
    };
    #[cfg(not(feature = "tls"))]
    let client = redis::Client::open(u);
    let client = client.map_err(|e| classify(e, Stage::Connect, shown))?;
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
        .set_response_timeout(Some(opts.timeout))
        .set_connection_timeout(Some(opts.connect_timeout));
    let cm = client
        .get_connection_manager_with_config(cfg)
        .await
        .map_err(|e| classify(e, Stage::Connect, shown))?;
    Ok(Conn::Single(cm))
}

/// When the standalone server at `u` runs in cluster mode, the URL to seed a cluster
/// connection with (`INFO cluster` says `cluster_enabled:1`).
pub(crate) async fn cluster_seed(conn: &Conn, u: &str, shown: &str) -> Result<Option<String>> {
    let v = conn
        .cmd(cmd("INFO").arg("cluster"))
        .await
        .map_err(|e| classify(e, Stage::Connect, shown))?;
    let text = match v {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::VerbatimString { text, .. } => text,
        Value::SimpleString(s) => s,
        _ => String::new(),
    };
    if !text.contains("cluster_enabled:1") {
        return Ok(None);
    }
    if !u.ends_with("/0") {
        return Err(config(format!(
            "{shown}: the server runs in cluster mode, which has only database 0"
        )));
    }
    Ok(Some(u.to_string()))
}

pub(crate) async fn connect_cluster(
    nodes: Vec<String>,
    opts: &RedisOptions,
    shown: &str,
) -> Result<Conn> {
    // No request retries: the cluster client would re-send a whole pipeline of scripts after
    // a broken connection or a redirect, applying ops twice. We report Indeterminate instead.
    let builder = redis::cluster::ClusterClientBuilder::new(nodes)
        .retries(0)
        .connection_timeout(opts.connect_timeout)
        .response_timeout(opts.timeout);
    #[cfg(feature = "tls")]
    let builder = match tls_certs(opts) {
        Some(certs) => builder.certs(certs),
        None => builder,
    };
    let client = builder
        .build()
        .map_err(|e| classify(e, Stage::Connect, shown))?;
    let c = client
        .get_async_connection()
        .await
        .map_err(|e| classify(e, Stage::Connect, shown))?;
    Ok(Conn::Cluster(c))
}
