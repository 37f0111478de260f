#![doc = include_str!("../README.md")]

mod apply;
mod conn;
mod error;
pub mod layout;
mod scripts;
mod sessions;

/// The `redis` crate this backend is built on (for [`RedisBackend::query`]).
pub use redis;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use meta_core::backend::BackendInfo;
use meta_core::kv::{decode_attr, decode_bytes, decode_chunk, decode_entry, decode_setting};
use meta_core::options::{parse_bool, parse_duration, parse_int};
use meta_core::types::{validate_name, validate_xattr};
use meta_core::{
    Attr, Backend, Counter, DirEntry, Entry, Error, ErrorKind, FileType, IdKind, Ino, Op, OpOutput,
    Pending, Result, Setting, Slice, Statfs, Timespec, VolumeUrl, logic,
};
use redis::{Value, cmd, pipe};

use crate::conn::Conn;
use crate::error::{Stage, classify, refuses_undeclared_key};
use crate::layout::{Layout, valid_prefix};
use crate::scripts::{Lua, Scripts};

/// The URL scheme of a standalone server: `redis://`.
pub const SCHEME: &str = "redis";
/// The URL scheme of a standalone server over TLS: `rediss://` (needs the `tls` feature).
pub const SCHEME_TLS: &str = "rediss";
/// The URL scheme of a standalone server on a Unix socket: `unix:///path/to/redis.sock`.
pub const SCHEME_UNIX: &str = "unix";
/// The URL scheme of a Redis Cluster: `redis+cluster://host:port[,host:port...]`.
pub const SCHEME_CLUSTER: &str = "redis+cluster";
/// The URL scheme of a Redis Cluster over TLS (needs the `tls` feature).
pub const SCHEME_CLUSTER_TLS: &str = "rediss+cluster";

/// Most ops one `apply` call accepts (the batcher never sends more): one pipeline of at most
/// this many `EVALSHA` calls.
pub const MAX_BATCH_OPS: usize = 1024;

/// Key prefix (and Cluster hash tag) used when the URL has no `prefix=`.
pub const DEFAULT_PREFIX: &str = "meta";

/// Response timeout used when the URL has no `timeout=`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect timeout used when the URL has no `connect_timeout=`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a plain readdir-plus reads a page again when entries vanish between its two
/// round trips (declared keys only) before it fails with `Conflict`.
const PLAIN_READDIR_TRIES: usize = 8;

/// Entries one `readdir_plus.lua` call returns at most (bounds the time one script blocks
/// the server).
const READDIR_PLUS_PAGE: usize = 1024;

/// Keys one `MGET`, `UNLINK` or `SCAN` page handles.
const PAGE: usize = 1000;

/// Options of a Redis volume, from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Key prefix and Cluster hash tag of the volume (URL `prefix`, default `meta`): every
    /// key is `{prefix}...`, so many volumes share a database and a volume lives in one
    /// Cluster slot. 1–64 characters of `A-Z a-z 0-9 _ . : -`.
    pub prefix: String,
    /// How long a reply may take before the call fails (URL `timeout`, default 10 s). A
    /// timed-out batch is `Indeterminate`.
    pub timeout: Duration,
    /// How long connecting may take (URL `connect_timeout`, default 5 s).
    pub connect_timeout: Duration,
    /// Declared keys only (URL `strict_keys`, default false). The read-only scripts
    /// (`lookup.lua`, `readdir_plus.lua`, `ancestors.lua`) build the keys of the inodes they
    /// find from the values they read, in the volume's slot but not in `KEYS`. Servers that
    /// forbid undeclared keys (some Redis-compatible servers do by default) refuse that;
    /// with `strict_keys=true` those reads are made of plain commands instead: a lookup and
    /// a readdir-plus page take two round trips, a rename across directories one round trip
    /// per ancestor level before its script (which re-checks the chain, as always). Without
    /// the option the backend switches to this mode by itself the first time a server
    /// answers a read script with an "undeclared key" error.
    pub strict_keys: bool,
    /// PEM certificates of the authorities a TLS server's certificate must chain to (URL
    /// `tls_ca=/path/ca.pem`, `rediss://` only), instead of the public web roots: for servers
    /// whose certificates come from a private CA.
    pub tls_ca: Option<Vec<u8>>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: DEFAULT_PREFIX.to_string(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            strict_keys: false,
            tls_ca: None,
        }
    }
}

/// The Redis backend: one volume (a key prefix) on a standalone server or a Cluster.
///
/// Cheap to clone: clones share the connection. See the crate documentation for the data
/// layout, the scripts and the round protocol.
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) conn: Conn,
    pub(crate) layout: Layout,
    pub(crate) scripts: Scripts,
    /// The URL with its password redacted, for messages.
    pub(crate) target: String,
    /// Reads touch declared keys only (see [`RedisOptions::strict_keys`]).
    pub(crate) strict: AtomicBool,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.inner.target)
            .field("prefix", &self.inner.layout.tag())
            .field("cluster", &self.inner.conn.is_cluster())
            .finish()
    }
}

fn config(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::ConfigInvalid, msg)
}

/// Where to connect, as redis-rs connection URLs (they may hold the password: never shown).
enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// Splits a multi-host authority (`redis+cluster://h1:p1,h2:p2/0`) into a URL that
/// [`meta_core::parse_url`] accepts: the first host stays, the others move to the `nodes`
/// parameter. Other URLs are returned unchanged.
pub fn normalize_url(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_string();
    };
    let rest = &s[scheme_end + 3..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let Some((first, others)) = hosts.split_once(',') else {
        return s.to_string();
    };
    let tail = &rest[auth_end..];
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let nodes = format!("nodes={others}");
    let query = match query {
        Some(q) if !q.is_empty() => format!("{q}&{nodes}"),
        _ => nodes,
    };
    format!("{}://{userinfo}{first}{path}?{query}", &s[..scheme_end])
}

/// Parses a volume URL like [`meta_core::parse_url`], also accepting a Cluster URL with
/// several hosts (`redis+cluster://h1:p1,h2:p2/0`, see [`normalize_url`]).
///
/// Errors: as `parse_url` (`ConfigInvalid`, never showing the password).
pub fn parse_url(s: &str) -> Result<(VolumeUrl, meta_core::MetaOptions)> {
    meta_core::parse_url(&normalize_url(s))
}

fn tcp_url(scheme: &str, url: &url::Url, host: &str, port: u16, db: i64) -> String {
    let mut out = format!("{scheme}://");
    if !url.username().is_empty() || url.password().is_some() {
        out.push_str(url.username());
        if let Some(p) = url.password() {
            out.push(':');
            out.push_str(p);
        }
        out.push('@');
    }
    out.push_str(&format!("{host}:{port}/{db}"));
    out
}

/// Decodes `%XX` escapes (a URL's user name or password).
fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

fn parse_host_port(s: &str, what: &str) -> Result<(String, u16)> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| config(format!("{what}: bad port in {s:?}")))?;
            (h.to_string(), port)
        }
        _ => (s.to_string(), 6379),
    };
    if host.is_empty() {
        return Err(config(format!("{what}: empty host in {s:?}")));
    }
    Ok((host, port))
}

/// Opens the volume a Redis URL names and loads the scripts.
///
/// URLs (see the README for details):
/// - `redis://[user[:password]@]host[:port][/db]` — a standalone server (a server with
///   `cluster_enabled:1` is detected and used as a Cluster seed);
/// - `rediss://...` — the same over TLS (crate feature `tls`);
/// - `unix:///path/to/redis.sock[?db=N]` (password: `unix://:password@/path`);
/// - `redis+cluster://[user[:password]@]host:port[/0][?nodes=host:port,...]` — a Cluster,
///   seeded by every listed node (a multi-host authority works through [`parse_url`]).
///
/// Parameters: `prefix` (default `meta`), `timeout`, `connect_timeout` (e.g. `500ms`, `10s`),
/// `strict_keys` (`true`/`false`, see [`RedisOptions::strict_keys`]); TLS: `tls_ca` (a PEM
/// file); Cluster: `nodes`; `unix://`: `db`.
///
/// Errors: `ConfigInvalid` for another scheme, a malformed or unknown parameter (named in the
/// message), a bad prefix, a database other than 0 on a Cluster, wrong credentials, or a
/// `tls_ca` file that cannot be read or is used without TLS;
/// `Unsupported` for TLS without the `tls` feature; `Unavailable` when the server cannot be
/// reached.
pub async fn open(mut url: VolumeUrl) -> Result<RedisBackend> {
    let scheme = url.scheme().to_string();
    let mut opts = RedisOptions::default();
    if let Some(p) = url.take_param("prefix") {
        if !valid_prefix(&p) {
            return Err(config(format!(
                "URL parameter prefix={p:?}: expected 1 to {} characters of A-Z a-z 0-9 _ . : -",
                layout::MAX_PREFIX_LEN
            )));
        }
        opts.prefix = p;
    }
    if let Some(t) = url.take_param("timeout") {
        opts.timeout = parse_duration("timeout", &t)?;
    }
    if let Some(t) = url.take_param("connect_timeout") {
        opts.connect_timeout = parse_duration("connect_timeout", &t)?;
    }
    if let Some(v) = url.take_param("strict_keys") {
        opts.strict_keys = parse_bool("strict_keys", &v)?;
    }
    let shown = url.redacted();
    let u = url.url().clone();
    let tls = scheme == SCHEME_TLS || scheme == SCHEME_CLUSTER_TLS;
    if let Some(path) = url.take_param("tls_ca") {
        if !tls {
            return Err(config(format!(
                "{shown}: URL parameter tls_ca needs rediss:// or rediss+cluster://"
            )));
        }
        let pem = std::fs::read(&path).map_err(|e| {
            config(format!(
                "URL parameter tls_ca={path:?}: cannot read the file"
            ))
            .with_source(e)
        })?;
        opts.tls_ca = Some(pem);
    }
    if tls && !cfg!(feature = "tls") {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("{shown}: TLS needs meta-redis built with the `tls` feature"),
        ));
    }
    let db_of_path = |u: &url::Url| -> Result<i64> {
        let p = u.path().trim_start_matches('/');
        if p.is_empty() {
            Ok(0)
        } else {
            Ok(parse_int("database number (URL path)", p, 0, 1 << 20)? as i64)
        }
    };
    let target = match scheme.as_str() {
        SCHEME | SCHEME_TLS => {
            let host = u
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| config(format!("{shown}: no host")))?;
            let db = db_of_path(&u)?;
            Target::Single(tcp_url(&scheme, &u, host, u.port().unwrap_or(6379), db))
        }
        SCHEME_UNIX => {
            let db = match url.take_param("db") {
                Some(d) => parse_int("db", &d, 0, 1 << 20)? as i64,
                None => 0,
            };
            let path = url.file_path();
            if path.is_empty() {
                return Err(config(format!("{shown}: no socket path")));
            }
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("db", &db.to_string());
            if !u.username().is_empty() {
                q.append_pair("user", &percent_decode(u.username()));
            }
            if let Some(p) = u.password() {
                q.append_pair("pass", &percent_decode(p));
            }
            Target::Single(format!("redis+unix://{path}?{}", q.finish()))
        }
        SCHEME_CLUSTER | SCHEME_CLUSTER_TLS => {
            let node_scheme = if tls { "rediss" } else { "redis" };
            if db_of_path(&u)? != 0 {
                return Err(config(format!(
                    "{shown}: Redis Cluster has only database 0"
                )));
            }
            let host = u
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| config(format!("{shown}: no host")))?;
            let mut nodes = vec![tcp_url(node_scheme, &u, host, u.port().unwrap_or(6379), 0)];
            if let Some(list) = url.take_param("nodes") {
                for n in list.split(',').filter(|n| !n.is_empty()) {
                    let (h, p) = parse_host_port(n, "URL parameter nodes")?;
                    nodes.push(tcp_url(node_scheme, &u, &h, p, 0));
                }
            }
            Target::Cluster(nodes)
        }
        other => {
            return Err(config(format!(
                "meta-redis opens redis://, rediss://, unix://, redis+cluster:// and \
                 rediss+cluster:// URLs, not {other}://"
            )));
        }
    };
    url.finish()?;
    RedisBackend::connect(target, opts, shown).await
}

impl RedisBackend {
    async fn connect(target: Target, opts: RedisOptions, shown: String) -> Result<RedisBackend> {
        let conn = match target {
            Target::Single(u) => {
                let single = connect_single(&u, &opts, &shown).await?;
                if let Some(seed) = cluster_seed(&single, &u, &shown).await? {
                    connect_cluster(vec![seed], &opts, &shown).await?
                } else {
                    single
                }
            }
            Target::Cluster(nodes) => connect_cluster(nodes, &opts, &shown).await?,
        };
        let b = RedisBackend {
            inner: Arc::new(Inner {
                conn,
                layout: Layout::new(&opts.prefix),
                scripts: Scripts::new(),
                target: shown,
                strict: AtomicBool::new(opts.strict_keys),
            }),
        };
        b.inner.load_scripts().await?;
        Ok(b)
    }

    /// What `lookup.lua` answers (`[dir attr, entry member, child attr]`, nil where absent)
    /// with plain commands, for servers that forbid undeclared keys: the directory's
    /// attributes and the entry in one round trip, then the attributes of the inode found.
    async fn lookup_plain(&self, parent: Ino, name: &[u8], mode: &[u8]) -> Result<Vec<Value>> {
        let inner = &self.inner;
        let l = &inner.layout;
        let by_name = mode == b"name";
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("GET").arg(l.attr(parent));
        if by_name {
            apply::entry_read(&mut p, l.entries(parent), name);
        }
        let mut v = inner.read_pipe(&p).await?;
        let pa = take(&mut v);
        let member = if by_name {
            list(take(&mut v), "lookup")?
                .into_iter()
                .next()
                .unwrap_or(Value::Nil)
        } else {
            Value::Nil
        };
        let child = match mode {
            b"dot" => return Ok(vec![pa.clone(), Value::Nil, pa]),
            b"dotdot" => bytes(pa.clone(), "lookup")?
                .and_then(|b| decode_attr(&b).ok())
                .map(|a| {
                    if a.parent == Ino::ZERO {
                        Ino::ROOT
                    } else {
                        a.parent
                    }
                }),
            _ => bytes(member.clone(), "lookup")?
                .and_then(|m| split_member(&m).ok())
                .map(|(_, e)| e.ino),
        };
        let attr = match child {
            Some(c) => inner
                .conn
                .cmd(cmd("GET").arg(l.attr(c)))
                .await
                .map_err(|e| classify(e, Stage::Read, &inner.target))?,
            None => Value::Nil,
        };
        Ok(vec![pa, member, attr])
    }

    /// Fills in the attributes of `entries` (listed from directory `dir`; `members` are their
    /// ZSET members) with MGETs in one round trip, for servers that forbid undeclared keys.
    /// Returns false when an inode had no attributes and its entry is gone by now (unlinked
    /// meanwhile: the caller reads the page again). Errors: `Corrupted` when the entry is
    /// still there.
    async fn attach_attrs(
        &self,
        dir: Ino,
        entries: &mut [DirEntry],
        members: &[Vec<u8>],
    ) -> Result<bool> {
        if entries.is_empty() {
            return Ok(true);
        }
        let inner = &self.inner;
        let l = &inner.layout;
        let mut p = pipe();
        p.ignore_errors();
        for part in entries.chunks(READDIR_PLUS_PAGE) {
            let mut c = cmd("MGET");
            for e in part {
                c.arg(l.attr(e.ino));
            }
            p.add_command(c);
        }
        let mut attrs = Vec::with_capacity(entries.len());
        for r in inner.read_pipe(&p).await? {
            attrs.extend(list(r, "readdir")?);
        }
        if attrs.len() != entries.len() {
            return Err(internal(format!(
                "redis: MGET gave {} attributes for {} entries",
                attrs.len(),
                entries.len()
            )));
        }
        let mut missing = Vec::new();
        for (i, (e, a)) in entries.iter_mut().zip(attrs).enumerate() {
            match attr_of(a, e.ino)? {
                Some(a) => e.attr = Some(a),
                None => missing.push(i),
            }
        }
        if missing.is_empty() {
            return Ok(true);
        }
        let mut p = pipe();
        p.ignore_errors();
        for &i in &missing {
            p.cmd("ZSCORE").arg(l.entries(dir)).arg(&members[i]);
        }
        let still = inner.read_pipe(&p).await?;
        for (&i, v) in missing.iter().zip(still) {
            if !matches!(v, Value::Nil) {
                let e = &entries[i];
                return Err(Error::new(
                    ErrorKind::Corrupted,
                    format!(
                        "entry {dir}/{} points to missing inode {}",
                        meta_core::types::show_name(&e.name),
                        e.ino
                    ),
                ));
            }
        }
        Ok(false)
    }

    /// The key layout of this volume.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// Sends one raw command on the backend's connection; on a Cluster, to the primary
    /// serving the volume's slot (so `SCAN`, `INFO` and commands on the volume's keys reach
    /// the right node). For tools and tests that inspect or repair the stored records; see
    /// [`RedisBackend::layout`] for the key names.
    ///
    /// Errors: `Unavailable` when the server cannot be reached or answers with an error
    /// (WRONGTYPE, ...), `ConfigInvalid` when the ACL user may not run the command.
    pub async fn query(&self, cmd: &redis::Cmd) -> Result<Value> {
        self.inner
            .conn
            .cmd_at(cmd, &self.inner.layout.setting())
            .await
            .map_err(|e| classify(e, Stage::Read, &self.inner.target))
    }

    /// For benchmarks (the server's limit): sends `ops` as one pipeline of script calls
    /// without the reads, checks, retries and result decoding of [`Backend::apply`], and
    /// returns how many succeeded. Only for ops that need no reads beforehand (mknod, write,
    /// setattr without SIZE, xattr ops); not an API.
    #[doc(hidden)]
    pub async fn bench_raw_pipeline(&self, ops: &[Op]) -> Result<usize> {
        apply::raw_pipeline(&self.inner, ops).await
    }

    /// True when connected to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.conn.is_cluster()
    }

    /// Deletes every key of the volume (`SCAN MATCH {prefix}*` + `UNLINK`, on the node that
    /// serves the volume's slot). Returns the number of keys deleted. Not atomic: do not run
    /// it while clients use the volume.
    ///
    /// Errors: `Unavailable` when the server cannot be reached.
    pub async fn erase(&self) -> Result<u64> {
        let inner = &self.inner;
        let pattern = inner.layout.pattern();
        let route_key = inner.layout.setting();
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let mut c = cmd("SCAN");
            c.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(PAGE);
            let v = inner
                .conn
                .cmd_at(&c, &route_key)
                .await
                .map_err(|e| classify(e, Stage::Read, &inner.target))?;
            let (next, keys) = parse_scan(v)?;
            if !keys.is_empty() {
                let mut u = cmd("UNLINK");
                for k in &keys {
                    u.arg(k);
                }
                let n = inner
                    .conn
                    .cmd(&u)
                    .await
                    .map_err(|e| classify(e, Stage::Write, &inner.target))?;
                deleted += match n {
                    Value::Int(n) => n.max(0) as u64,
                    _ => 0,
                };
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
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

async fn connect_single(u: &str, opts: &RedisOptions, shown: &str) -> Result<Conn> {
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
async fn cluster_seed(conn: &Conn, u: &str, shown: &str) -> Result<Option<String>> {
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

async fn connect_cluster(nodes: Vec<String>, opts: &RedisOptions, shown: &str) -> Result<Conn> {
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

fn parse_scan(v: Value) -> Result<(u64, Vec<Vec<u8>>)> {
    let bad = || Error::new(ErrorKind::Internal, "redis: unexpected SCAN reply");
    let Value::Array(mut parts) = v else {
        return Err(bad());
    };
    if parts.len() != 2 {
        return Err(bad());
    }
    let keys = parts.pop().ok_or_else(bad)?;
    let cursor = parts.pop().ok_or_else(bad)?;
    let cursor = match cursor {
        Value::BulkString(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(bad)?,
        Value::Int(n) => n as u64,
        _ => return Err(bad()),
    };
    let Value::Array(keys) = keys else {
        return Err(bad());
    };
    let keys = keys
        .into_iter()
        .filter_map(|k| match k {
            Value::BulkString(b) => Some(b),
            _ => None,
        })
        .collect();
    Ok((cursor, keys))
}

// ---------------------------------------------------------------------------------------------
// Value helpers shared with `apply`.

pub(crate) fn ino8(ino: Ino) -> Vec<u8> {
    ino.0.to_be_bytes().to_vec()
}

pub(crate) fn time12(t: Timespec) -> Vec<u8> {
    let mut v = Vec::with_capacity(12);
    v.extend_from_slice(&(t.sec as u64).to_be_bytes());
    v.extend_from_slice(&t.nsec.to_be_bytes());
    v
}

pub(crate) fn internal(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Internal, what)
}

/// A reply value as bytes: `None` for nil; a server error in a read reply is classified.
pub(crate) fn bytes(v: Value, what: &str) -> Result<Option<Vec<u8>>> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b)),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        Value::Okay => Ok(Some(b"OK".to_vec())),
        Value::Int(n) => Ok(Some(n.to_string().into_bytes())),
        Value::ServerError(e) if e.code() == "WRONGTYPE" => Err(Error::new(
            ErrorKind::Corrupted,
            format!("{what}: a key holds the wrong Redis type"),
        )),
        Value::ServerError(e) => Err(Error::new(
            ErrorKind::Unavailable,
            format!("{what}: redis: {} {}", e.code(), e.details().unwrap_or("")),
        )),
        other => Err(internal(format!("{what}: unexpected reply {other:?}"))),
    }
}

/// A reply value as a list (array, set or flattened map).
pub(crate) fn list(v: Value, what: &str) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Map(m) => Ok(m.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        Value::Nil => Ok(Vec::new()),
        other => {
            bytes(other, what)?;
            Err(internal(format!("{what}: expected a list")))
        }
    }
}

fn attr_of(v: Value, ino: Ino) -> Result<Option<Attr>> {
    bytes(v, "attributes")?
        .map(|b| decode_attr(&b).map_err(|e| e.context_prefix(format!("inode {ino}"))))
        .transpose()
}

fn counter_of(v: Value, c: Counter) -> Result<i64> {
    match bytes(v, c.name())? {
        None => Ok(0),
        Some(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Corrupted,
                    format!("counter {} is not an integer", c.name()),
                )
            }),
    }
}

/// Splits an entry member `name \0 entry` and decodes the entry.
pub(crate) fn split_member(m: &[u8]) -> Result<(Vec<u8>, Entry)> {
    let z = m
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| Error::new(ErrorKind::Corrupted, "entry without a name separator"))?;
    let name = m[..z].to_vec();
    let e = decode_entry(&m[z + 1..])
        .map_err(|e| e.context_prefix(format!("entry {}", meta_core::types::show_name(&name))))?;
    Ok((name, e))
}

fn zero_inode() -> Error {
    Error::new(ErrorKind::InvalidArgument, "inode 0 is never valid")
}

fn not_found(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotFound, what)
}

fn take(v: &mut Vec<Value>) -> Value {
    if v.is_empty() {
        Value::Nil
    } else {
        v.remove(0)
    }
}

impl Inner {
    /// Loads every script (`SCRIPT LOAD`; on a Cluster, on every primary).
    pub(crate) async fn load_scripts(&self) -> Result<()> {
        if self.conn.is_cluster() {
            for s in self.scripts.all() {
                self.conn
                    .cmd(cmd("SCRIPT").arg("LOAD").arg(&s.code))
                    .await
                    .map_err(|e| classify(e, Stage::Connect, &self.target))?;
            }
            return Ok(());
        }
        let mut p = pipe();
        for s in self.scripts.all() {
            p.cmd("SCRIPT").arg("LOAD").arg(&s.code);
        }
        let replies = self
            .conn
            .pipe(&p)
            .await
            .map_err(|e| classify(e, Stage::Connect, &self.target))?;
        for (s, r) in self.scripts.all().iter().zip(replies) {
            match bytes(r, s.name)? {
                Some(sha) if sha == s.sha.as_bytes() => {}
                other => {
                    return Err(internal(format!(
                        "SCRIPT LOAD {}: the server answered {other:?}, expected SHA {}",
                        s.name, s.sha
                    )));
                }
            }
        }
        Ok(())
    }

    /// Runs a read-only script, reloading the scripts once on `NOSCRIPT`.
    /// Whether reads must touch declared keys only ([`RedisOptions::strict_keys`]).
    pub(crate) fn strict(&self) -> bool {
        self.strict.load(Ordering::Relaxed)
    }

    /// Switches reads to declared keys only, after `script` was refused for an undeclared key.
    pub(crate) fn go_strict(&self, script: &str, message: &str) {
        if !self.strict.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "meta_redis",
                "{}: {script} was refused ({message}); reads switch to plain commands \
                 (as with strict_keys=true)",
                self.target
            );
        }
    }

    /// Runs a read-only script. `Ok(None)` when reads must use declared keys only: already
    /// so, or the server just refused the script for an undeclared key.
    async fn eval_read(&self, lua: &Lua, keys: &[String], args: &[&[u8]]) -> Result<Option<Value>> {
        if self.strict() {
            return Ok(None);
        }
        let mut c = cmd("EVALSHA");
        c.arg(&lua.sha).arg(keys.len());
        for k in keys {
            c.arg(k);
        }
        for a in args {
            c.arg(*a);
        }
        for attempt in 0..2 {
            match self.conn.cmd(&c).await {
                Ok(v) => return Ok(Some(v)),
                Err(e) if attempt == 0 && e.code() == Some("NOSCRIPT") => {
                    self.load_scripts().await?;
                }
                Err(e) if refuses_undeclared_key(&e.to_string()) => {
                    self.go_strict(lua.name, &e.to_string());
                    return Ok(None);
                }
                Err(e) => return Err(classify(e, Stage::Read, &self.target)),
            }
        }
        Err(internal(format!("{}: NOSCRIPT after loading", lua.name)))
    }

    /// The attributes of `ino` and the reply to `c`, in one pipeline (one round trip).
    /// Errors: `InvalidArgument` for inode 0, `NotFound` when the inode does not exist,
    /// `Corrupted` for undecodable attributes.
    async fn attr_and(&self, ino: Ino, c: redis::Cmd) -> Result<(Attr, Value)> {
        if ino == Ino::ZERO {
            return Err(zero_inode());
        }
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("GET").arg(self.layout.attr(ino));
        p.add_command(c);
        let mut v = self.read_pipe(&p).await?;
        let a = attr_of(take(&mut v), ino)?.ok_or_else(|| not_found(format!("inode {ino}")))?;
        Ok((a, take(&mut v)))
    }

    /// Sends a read-only pipeline.
    pub(crate) async fn read_pipe(&self, p: &redis::Pipeline) -> Result<Vec<Value>> {
        let v = self
            .conn
            .pipe(p)
            .await
            .map_err(|e| classify(e, Stage::Read, &self.target))?;
        if v.len() != p.len() {
            return Err(internal(format!(
                "redis: {} replies for a pipeline of {}",
                v.len(),
                p.len()
            )));
        }
        Ok(v)
    }

    async fn get_setting(&self) -> Result<Option<Setting>> {
        let v = self
            .conn
            .cmd(cmd("GET").arg(self.layout.setting()))
            .await
            .map_err(|e| classify(e, Stage::Read, &self.target))?;
        bytes(v, "format record")?
            .map(|b| decode_setting(&b))
            .transpose()
    }

    async fn mget_attrs(&self, inos: &[Ino]) -> Result<Vec<Option<Attr>>> {
        let mut out = Vec::with_capacity(inos.len());
        for part in inos.chunks(PAGE) {
            let mut c = cmd("MGET");
            for &i in part {
                c.arg(self.layout.attr(i));
            }
            let v = self
                .conn
                .cmd(&c)
                .await
                .map_err(|e| classify(e, Stage::Read, &self.target))?;
            let vals = list(v, "MGET")?;
            if vals.len() != part.len() {
                return Err(internal("redis: MGET returned a wrong number of values"));
            }
            for (&i, v) in part.iter().zip(vals) {
                out.push(attr_of(v, i)?);
            }
        }
        Ok(out)
    }
}

fn format_failed(e: redis::RedisError, target: &str) -> Error {
    classify(e, Stage::Write, target)
}

#[async_trait]
impl Backend for RedisBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            scheme: if self.inner.conn.is_cluster() {
                SCHEME_CLUSTER
            } else {
                SCHEME
            },
            max_batch_ops: MAX_BATCH_OPS,
            durable: true,
        }
    }

    async fn format(&self, setting: &Setting, force: bool) -> Result<()> {
        setting.validate()?;
        let inner = &self.inner;
        let same_or_exists = |old: &Setting| -> Result<()> {
            if old.name == setting.name {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "prefix {} already holds volume {:?}; format with force to erase it",
                        inner.layout.tag(),
                        old.name
                    ),
                ))
            }
        };
        let raw = inner
            .conn
            .cmd(cmd("GET").arg(inner.layout.setting()))
            .await
            .map_err(|e| classify(e, Stage::Read, &inner.target))?;
        if let Some(v) = bytes(raw, "format record")? {
            if !force {
                return same_or_exists(&decode_setting(&v)?);
            }
            self.erase().await?;
        }
        let l = &inner.layout;
        let root = logic::root_attr(Timespec::now());
        let mut c = cmd("EVALSHA");
        c.arg(&inner.scripts.format.sha)
            .arg(10)
            .arg(l.setting())
            .arg(l.limits())
            .arg(l.attr(Ino::ROOT))
            .arg(l.inodes())
            .arg(l.counter(Counter::NextInode))
            .arg(l.counter(Counter::NextChunk))
            .arg(l.counter(Counter::UsedSpace))
            .arg(l.counter(Counter::TotalInodes))
            .arg(l.counter(Counter::NextSession))
            .arg(l.counter(Counter::CleanupLease))
            .arg(meta_core::kv::encode_setting(setting))
            .arg(format!("{} {}", setting.capacity, setting.inodes))
            .arg(meta_core::kv::encode_attr(&root))
            .arg(ino8(Ino::ROOT));
        let reply = match inner.conn.cmd(&c).await {
            Ok(v) => v,
            Err(e) if e.code() == Some("NOSCRIPT") => {
                inner.load_scripts().await?;
                inner
                    .conn
                    .cmd(&c)
                    .await
                    .map_err(|e| format_failed(e, &inner.target))?
            }
            Err(e) => return Err(format_failed(e, &inner.target)),
        };
        let mut items = list(reply, "format")?;
        let status = bytes(take(&mut items), "format")?;
        match status.as_deref() {
            Some(b"ok") => Ok(()),
            Some(b"exists") => match bytes(take(&mut items), "format")? {
                Some(v) if !force => same_or_exists(&decode_setting(&v)?),
                _ => Err(Error::new(
                    ErrorKind::Conflict,
                    "another client formatted the volume while it was being erased",
                )),
            },
            _ => Err(internal("format: unexpected reply")),
        }
    }

    async fn load(&self) -> Result<Setting> {
        self.inner.get_setting().await?.ok_or_else(|| {
            not_found(format!(
                "volume {} is not formatted (no format record)",
                self.inner.layout.tag()
            ))
        })
    }

    async fn apply(&self, ops: &[Op]) -> Result<Vec<Result<OpOutput>>> {
        apply::apply(&self.inner, ops).await
    }

    async fn reserve_ids(&self, kind: IdKind, n: u64) -> Result<Range<u64>> {
        if n == 0 || n > i64::MAX as u64 / 2 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("cannot reserve {n} IDs"),
            ));
        }
        let inner = &self.inner;
        let c = kind.counter();
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("EXISTS").arg(inner.layout.setting());
        p.cmd("INCRBY").arg(inner.layout.counter(c)).arg(n);
        let mut v = inner
            .conn
            .pipe(&p)
            .await
            .map_err(|e| classify(e, Stage::Write, &inner.target))?;
        let formatted = matches!(take(&mut v), Value::Int(1));
        let end = match take(&mut v) {
            Value::Int(end) => end,
            Value::ServerError(e) if e.details().is_some_and(|d| d.contains("overflow")) => {
                return Err(Error::new(
                    ErrorKind::NoSpace,
                    format!("{} IDs exhausted", c.name()),
                ));
            }
            Value::ServerError(e) if e.code() == "ERR" || e.code() == "WRONGTYPE" => {
                return Err(Error::new(
                    ErrorKind::Corrupted,
                    format!("counter {} is not an integer", c.name()),
                ));
            }
            other => {
                bytes(other, c.name())?;
                return Err(internal("INCRBY: unexpected reply"));
            }
        };
        let start = end - n as i64;
        if !formatted {
            return Err(not_found(format!(
                "volume {} is not formatted (no format record)",
                inner.layout.tag()
            )));
        }
        if start <= 0 {
            return Err(Error::new(
                ErrorKind::Corrupted,
                format!("counter {} was {start}", c.name()),
            ));
        }
        Ok(start as u64..end as u64)
    }

    async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Attr)> {
        if parent == Ino::ZERO {
            return Err(zero_inode());
        }
        let inner = &self.inner;
        let mode: &[u8] = match name {
            b"." => b"dot",
            b".." if parent == Ino::ROOT => b"dot",
            b".." => b"dotdot",
            _ => b"name",
        };
        let prefix = inner.layout.attr_prefix();
        let scripted = inner
            .eval_read(
                &inner.scripts.lookup,
                &[inner.layout.attr(parent), inner.layout.entries(parent)],
                &[name, prefix.as_bytes(), mode],
            )
            .await?;
        let mut items = match scripted {
            Some(v) => list(v, "lookup")?,
            None => self.lookup_plain(parent, name, mode).await?,
        };
        let pattr = attr_of(take(&mut items), parent)?
            .ok_or_else(|| not_found(format!("inode {parent}")))?;
        if pattr.typ != FileType::Directory {
            return Err(Error::new(
                ErrorKind::NotADirectory,
                format!("inode {parent}"),
            ));
        }
        let member = bytes(take(&mut items), "lookup")?;
        let child = take(&mut items);
        let shown = || format!("{parent}/{}", meta_core::types::show_name(name));
        let ino = match name {
            b"." => return Ok((parent, pattr)),
            b".." => {
                if parent == Ino::ROOT || pattr.parent == Ino::ZERO {
                    Ino::ROOT
                } else {
                    pattr.parent
                }
            }
            _ => {
                validate_name(name)?;
                let m = member.ok_or_else(|| not_found(shown()))?;
                split_member(&m)?.1.ino
            }
        };
        let attr = attr_of(child, ino)?
            .ok_or_else(|| not_found(format!("inode {ino} named by {}", shown())))?;
        Ok((ino, attr))
    }

    async fn get_attr(&self, ino: Ino) -> Result<Attr> {
        if ino == Ino::ZERO {
            return Err(zero_inode());
        }
        let inner = &self.inner;
        let v = inner
            .conn
            .cmd(cmd("GET").arg(inner.layout.attr(ino)))
            .await
            .map_err(|e| classify(e, Stage::Read, &inner.target))?;
        attr_of(v, ino)?.ok_or_else(|| not_found(format!("inode {ino}")))
    }

    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        if ino == Ino::ZERO {
            return Err(zero_inode());
        }
        let inner = &self.inner;
        let l = &inner.layout;
        let check_dir = |v: Value| -> Result<()> {
            let a = attr_of(v, ino)?.ok_or_else(|| not_found(format!("inode {ino}")))?;
            if a.typ != FileType::Directory {
                return Err(Error::new(ErrorKind::NotADirectory, format!("inode {ino}")));
            }
            Ok(())
        };
        let min_after = |a: &[u8]| -> Vec<u8> {
            let mut m = Vec::with_capacity(a.len() + 2);
            m.push(b'[');
            m.extend_from_slice(a);
            m.push(1);
            m
        };
        let mut min = after.map(min_after).unwrap_or_else(|| b"-".to_vec());
        if !plus || inner.strict() {
            // Plain commands; with `plus` (declared keys only) the attributes follow in a
            // second round trip, and the page is read again if an inode vanished in between.
            for _ in 0..PLAIN_READDIR_TRIES {
                let mut p = pipe();
                p.ignore_errors();
                p.cmd("GET").arg(l.attr(ino));
                if limit > 0 {
                    p.cmd("ZRANGEBYLEX")
                        .arg(l.entries(ino))
                        .arg(&min)
                        .arg("+")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(i64::try_from(limit).unwrap_or(i64::MAX));
                }
                let mut v = inner.read_pipe(&p).await?;
                check_dir(take(&mut v))?;
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let mut out = Vec::new();
                let mut members = Vec::new();
                for m in list(take(&mut v), "readdir")? {
                    let m = bytes(m, "readdir")?.unwrap_or_default();
                    let (name, e) = split_member(&m)?;
                    out.push(DirEntry {
                        name,
                        ino: e.ino,
                        typ: e.typ,
                        attr: None,
                    });
                    members.push(m);
                }
                if !plus || self.attach_attrs(ino, &mut out, &members).await? {
                    return Ok(out);
                }
            }
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "directory {ino}: entries kept disappearing while their attributes were \
                     read ({PLAIN_READDIR_TRIES} tries)"
                ),
            ));
        }
        let prefix = l.attr_prefix();
        let mut out: Vec<DirEntry> = Vec::new();
        loop {
            let want = (limit - out.len()).min(READDIR_PLUS_PAGE);
            let want_s = want.to_string();
            let scripted = inner
                .eval_read(
                    &inner.scripts.readdir_plus,
                    &[l.attr(ino), l.entries(ino)],
                    &[&min, want_s.as_bytes(), prefix.as_bytes()],
                )
                .await?;
            let Some(v) = scripted else {
                // Refused for undeclared keys: the rest with plain commands.
                let after = out
                    .last()
                    .map(|e| e.name.clone())
                    .or_else(|| after.map(<[u8]>::to_vec));
                let rest = self
                    .read_dir(ino, after.as_deref(), limit - out.len(), true)
                    .await?;
                out.extend(rest);
                return Ok(out);
            };
            let mut items = list(v, "readdir")?.into_iter();
            check_dir(items.next().unwrap_or(Value::Nil))?;
            if want == 0 {
                return Ok(out);
            }
            let mut got = 0;
            while let Some(m) = items.next() {
                let a = items.next().unwrap_or(Value::Nil);
                let m = bytes(m, "readdir")?.unwrap_or_default();
                let (name, e) = split_member(&m)?;
                let attr = attr_of(a, e.ino)?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Corrupted,
                        format!(
                            "entry {ino}/{} points to missing inode {}",
                            meta_core::types::show_name(&name),
                            e.ino
                        ),
                    )
                })?;
                min = min_after(&name);
                out.push(DirEntry {
                    name,
                    ino: e.ino,
                    typ: e.typ,
                    attr: Some(attr),
                });
                got += 1;
            }
            if got < want || out.len() >= limit {
                return Ok(out);
            }
        }
    }

    async fn read_chunk(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        let inner = &self.inner;
        let v = inner
            .conn
            .cmd(cmd("GET").arg(inner.layout.chunk(ino, indx)))
            .await
            .map_err(|e| classify(e, Stage::Read, &inner.target))?;
        match bytes(v, "chunk")? {
            None => Ok(Vec::new()),
            Some(b) => decode_chunk(&b)
                .map_err(|e| e.context_prefix(format!("chunk {indx} of inode {ino}"))),
        }
    }

    async fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        let inner = &self.inner;
        let mut c = cmd("GET");
        c.arg(inner.layout.symlink(ino));
        let (a, t) = inner.attr_and(ino, c).await?;
        if a.typ != FileType::Symlink {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("inode {ino} is not a symlink"),
            ));
        }
        let t = bytes(t, "symlink")?.ok_or_else(|| {
            Error::new(ErrorKind::Corrupted, format!("symlink {ino} has no target"))
        })?;
        decode_bytes(&t, "symlink").map_err(|e| e.context_prefix(format!("inode {ino}")))
    }

    async fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        validate_xattr(name, None)?;
        let inner = &self.inner;
        let mut c = cmd("HGET");
        c.arg(inner.layout.xattrs(ino)).arg(name);
        let (_, x) = inner.attr_and(ino, c).await?;
        let x = bytes(x, "xattr")?.ok_or_else(|| {
            Error::new(
                ErrorKind::NoData,
                format!("xattr {} of {ino}", meta_core::types::show_name(name)),
            )
        })?;
        decode_bytes(&x, "xattr")
    }

    async fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let inner = &self.inner;
        let mut c = cmd("HKEYS");
        c.arg(inner.layout.xattrs(ino));
        let (_, v) = inner.attr_and(ino, c).await?;
        let mut names = Vec::new();
        for n in list(v, "listxattr")? {
            names.push(bytes(n, "listxattr")?.unwrap_or_default());
        }
        names.sort();
        Ok(names)
    }

    async fn statfs(&self) -> Result<Statfs> {
        let inner = &self.inner;
        let l = &inner.layout;
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("GET").arg(l.setting());
        p.cmd("GET").arg(l.counter(Counter::UsedSpace));
        p.cmd("GET").arg(l.counter(Counter::TotalInodes));
        let mut v = inner.read_pipe(&p).await?;
        let setting = bytes(take(&mut v), "format record")?
            .ok_or_else(|| not_found(format!("volume {} is not formatted", l.tag())))?;
        let setting = decode_setting(&setting)?;
        let used = counter_of(take(&mut v), Counter::UsedSpace)?;
        let total = counter_of(take(&mut v), Counter::TotalInodes)?;
        Ok(logic::statfs_from(
            used,
            total,
            &logic::Limits::from(&setting),
        ))
    }

    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        let inner = &self.inner;
        let v = inner
            .conn
            .cmd(cmd("GET").arg(inner.layout.counter(counter)))
            .await
            .map_err(|e| classify(e, Stage::Read, &inner.target))?;
        counter_of(v, counter)
    }

    async fn scan_inodes(&self, after: Ino, limit: usize) -> Result<Vec<(Ino, Attr)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < limit {
            let want = (limit - out.len()).min(PAGE);
            let mut min = vec![b'('];
            min.extend_from_slice(&cursor.0.to_be_bytes());
            let v = inner
                .conn
                .cmd(
                    cmd("ZRANGEBYLEX")
                        .arg(inner.layout.inodes())
                        .arg(min)
                        .arg("+")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(want),
                )
                .await
                .map_err(|e| classify(e, Stage::Read, &inner.target))?;
            let mut inos = Vec::new();
            for m in list(v, "scan_inodes")? {
                let m = bytes(m, "scan_inodes")?.unwrap_or_default();
                let b: [u8; 8] = m.as_slice().try_into().map_err(|_| {
                    Error::new(ErrorKind::Corrupted, "live-inode index: bad member")
                })?;
                inos.push(Ino(u64::from_be_bytes(b)));
            }
            let n = inos.len();
            let Some(&last) = inos.last() else { break };
            cursor = last;
            for (i, a) in inos.iter().zip(inner.mget_attrs(&inos).await?) {
                // An inode deleted between the two reads is simply not listed.
                if let Some(a) = a {
                    out.push((*i, a));
                }
            }
            if n < want {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        let inner = &self.inner;
        let v = inner
            .conn
            .cmd(
                cmd("ZRANGE")
                    .arg(inner.layout.chunk_index(ino))
                    .arg(0)
                    .arg(-1),
            )
            .await
            .map_err(|e| classify(e, Stage::Read, &inner.target))?;
        let mut idxs = Vec::new();
        for m in list(v, "chunk index")? {
            let m = bytes(m, "chunk index")?.unwrap_or_default();
            let i = std::str::from_utf8(&m)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Corrupted,
                        format!("chunk index of inode {ino}: bad member"),
                    )
                })?;
            idxs.push(i);
        }
        let mut out = Vec::new();
        for part in idxs.chunks(PAGE) {
            let mut c = cmd("MGET");
            for &i in part {
                c.arg(inner.layout.chunk(ino, i));
            }
            let v = inner
                .conn
                .cmd(&c)
                .await
                .map_err(|e| classify(e, Stage::Read, &inner.target))?;
            for (&i, v) in part.iter().zip(list(v, "MGET")?) {
                if let Some(b) = bytes(v, "chunk")? {
                    let s = decode_chunk(&b)
                        .map_err(|e| e.context_prefix(format!("chunk {i} of inode {ino}")))?;
                    out.push((i, s));
                }
            }
        }
        Ok(out)
    }

    async fn list_sessions(&self) -> Result<Vec<meta_core::Session>> {
        self.inner.list_sessions().await
    }

    async fn session_holdings(&self, sid: meta_core::Sid) -> Result<meta_core::SessionHoldings> {
        self.inner.session_holdings(sid).await
    }

    async fn list_locks(&self, ino: Ino) -> Result<meta_core::InodeLocks> {
        self.inner.list_locks(ino).await
    }

    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        let inner = &self.inner;
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("HGETALL").arg(inner.layout.pending_files());
        p.cmd("HGETALL").arg(inner.layout.pending_slices());
        let mut v = inner.read_pipe(&p).await?;
        let bad = || Error::new(ErrorKind::Corrupted, "undecodable pending-deletion record");
        let pairs = |v: Value| -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            let mut it = list(v, "pending")?.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((
                    bytes(k, "pending")?.unwrap_or_default(),
                    bytes(v, "pending")?.unwrap_or_default(),
                ));
            }
            Ok(out)
        };
        let mut files = Vec::new();
        for (k, v) in pairs(take(&mut v))? {
            let ino = u64::from_be_bytes(k.as_slice().try_into().map_err(|_| bad())?);
            let length = u64::from_be_bytes(v.as_slice().try_into().map_err(|_| bad())?);
            files.push((ino, length));
        }
        let mut slices = Vec::new();
        for (k, v) in pairs(take(&mut v))? {
            let id = u64::from_be_bytes(k.as_slice().try_into().map_err(|_| bad())?);
            let size = u32::from_be_bytes(v.as_slice().try_into().map_err(|_| bad())?);
            slices.push((id, size));
        }
        files.sort_unstable();
        slices.sort_unstable();
        Ok(files
            .into_iter()
            .map(|(ino, length)| Pending::File {
                ino: Ino(ino),
                length,
            })
            .chain(
                slices
                    .into_iter()
                    .map(|(id, size)| Pending::Slice { id, size }),
            )
            .take(limit)
            .collect())
    }
}
