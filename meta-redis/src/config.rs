//! Options and URLs: what [`open`] accepts and how it turns a URL into connection targets.

use std::time::Duration;

use meta_core::options::{parse_bool, parse_host_port, parse_int, parse_timeout};
use meta_core::{Error, ErrorKind, Result, VolumeUrl};

use crate::RedisBackend;
use crate::layout::{self, valid_prefix};
use crate::scripts::Scripting;

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

/// Key prefix (and Cluster hash tag) used when the URL has no `prefix=`.
pub const DEFAULT_PREFIX: &str = "meta";

/// Response timeout used when the URL has no `timeout=`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect timeout used when the URL has no `connect_timeout=`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of a Redis volume, from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// How the Lua library reaches the server (URL `scripting`: `auto`, the default, uses
    /// Redis Functions when the server has them (Redis ≥ 7.0) and scripts otherwise;
    /// `function` or `eval` force one way). See the crate README, "The Lua library".
    pub scripting: Option<Scripting>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: DEFAULT_PREFIX.to_string(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            strict_keys: false,
            tls_ca: None,
            scripting: None,
        }
    }
}

pub(crate) fn config(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::ConfigInvalid, msg)
}

/// Where to connect, as redis-rs connection URLs (they may hold the password: never shown).
pub(crate) enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// Splits a multi-host authority (`redis+cluster://h1:p1,h2:p2/0`) into a URL that
/// [`meta_core::parse_url`] accepts: the first host stays, the others move to the `nodes`
/// parameter. Other URLs are returned unchanged.
pub fn normalize_url(s: &str) -> String {
    meta_core::options::split_hosts(s, "nodes")
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

/// The driver's URL of the Unix socket at `path` with query `query`, or `None` when `path` is
/// not absolute. The driver reads the path back from the URL, so it is escaped here: a '?'
/// or '#' in it stays in the path.
fn unix_url(path: &str, query: &str) -> Option<String> {
    let p = url::Url::from_file_path(path).ok()?;
    Some(format!("redis+unix://{}?{query}", p.path()))
}

/// Opens the volume a Redis URL names and loads the Lua library.
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
/// `strict_keys` (`true`/`false`, see [`RedisOptions::strict_keys`]), `scripting`
/// (`auto`/`function`/`eval`, see [`RedisOptions::scripting`]); TLS: `tls_ca` (a PEM
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
        opts.timeout = parse_timeout("timeout", &t)?;
    }
    if let Some(t) = url.take_param("connect_timeout") {
        opts.connect_timeout = parse_timeout("connect_timeout", &t)?;
    }
    if let Some(v) = url.take_param("strict_keys") {
        opts.strict_keys = parse_bool("strict_keys", &v)?;
    }
    if let Some(v) = url.take_param("scripting") {
        opts.scripting = match v.as_str() {
            "auto" => None,
            "function" => Some(Scripting::Function),
            "eval" => Some(Scripting::Eval),
            other => {
                return Err(config(format!(
                    "URL parameter scripting={other:?}: expected auto, function or eval"
                )));
            }
        };
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
            let target = unix_url(&path, &q.finish())
                .ok_or_else(|| config(format!("{shown}: the socket path must be absolute")))?;
            Target::Single(target)
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
                    let (h, p) = parse_host_port(n, "URL parameter nodes", 6379)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_socket_paths_are_escaped() {
        for path in ["/tmp/a?b.sock", "/tmp/c#d.sock", "/tmp/e f%g.sock"] {
            let u = unix_url(path, "db=3").expect("an absolute path");
            let parsed = url::Url::parse(&u).expect("a URL");
            assert_eq!(
                parsed.to_file_path().expect("a path"),
                std::path::PathBuf::from(path)
            );
            assert_eq!(parsed.query(), Some("db=3"), "{u}");
        }
        assert!(unix_url("relative.sock", "").is_none());
    }
}
