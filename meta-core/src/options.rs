//! Volume URLs and engine options.
//!
//! A volume is opened from a URL such as `rocksdb:///var/lib/meta/vol1?sync=true&batch_size=256`.
//! [`parse_url`] takes out the engine options (names follow the JuiceFS/rueidis convention) and
//! leaves the rest for the backend, which must call [`VolumeUrl::finish`] so that an unknown
//! parameter is an error naming it. Passwords never appear in `Debug` or `Display` output.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::error::{Error, ErrorKind, Result};

/// Engine options: batching and ID priming. Defaults follow DESIGN.md.
///
/// More options may be added: start from `MetaOptions::default()` (or [`parse_url`]) and set
/// fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetaOptions {
    /// `metaprime` (default on): take IDs from locally primed pools; off = one increment per ID.
    pub metaprime: bool,
    /// `inode_batch` (default 1024): inode IDs reserved per refill.
    pub inode_batch: u64,
    /// `chunk_batch` (default 4096): chunk/slice IDs reserved per refill.
    pub chunk_batch: u64,
    /// `inode_low_watermark` (percent, default 25): prefetch when fewer remain; 0 disables.
    pub inode_low_watermark: u8,
    /// `chunk_low_watermark` (percent, default 25).
    pub chunk_low_watermark: u8,
    /// `batchwrite` (alias `batch`, default on): group concurrent ops into batches; off = every
    /// op is its own `apply` call (the benchmark baseline).
    pub batchwrite: bool,
    /// `batch_size` (default 512): most ops per batch.
    pub batch_size: usize,
    /// `batch_bytes` (default 262144): most approximate bytes per batch.
    pub batch_bytes: usize,
    /// `batch_interval` (default `0ms`, at most [`MAX_BATCH_INTERVAL`]): how long a batch may
    /// wait to fill once started; 0 = no artificial delay (group commit only).
    pub batch_interval: Duration,
    /// `max_inflight` (default 0 = the backend's preference, [`crate::Backend::preferred_inflight`]:
    /// 1 for single-writer backends such as RocksDB, 4 otherwise): batches applied concurrently
    /// (pipeline depth).
    pub max_inflight: usize,
    /// `max_queue` (default 100000): queued ops before callers wait (backpressure).
    pub max_queue: usize,
    /// `session` (default on): register a session (see [`crate::session`]) so this client
    /// can open files and take locks, refreshed by a heartbeat and ended by
    /// [`crate::Meta::close`]. Off for tools that only read or administer a volume (`meta ls`,
    /// `meta fsck`, ...): `open`, locks and the session cleanup are then refused with
    /// `Unsupported`.
    pub session: bool,
    /// `heartbeat` (default `12s`, at least 10 ms): how often the session's expiry is moved
    /// on. A session expires after five missed heartbeats (`5 × heartbeat` after the last
    /// one); any other client then cleans it up, checking at each of its own heartbeats.
    pub heartbeat: Duration,
    /// `session_label` (default empty): free text stored with the session (e.g. the mount
    /// point), shown by `meta status`.
    pub session_label: String,
    /// `permissions` (default on): check POSIX permissions in every op against the op's
    /// [`crate::Caller`] ([`crate::perm`]). Off for a FUSE mount whose kernel checks them
    /// (`default_permissions`): every op then runs as [`crate::Caller::ROOT`] would (new
    /// inodes keep the owner the op names; setuid/setgid are then not cleared by writes,
    /// which the kernel does itself).
    pub permissions: bool,
}

impl Default for MetaOptions {
    fn default() -> Self {
        MetaOptions {
            metaprime: true,
            inode_batch: 1024,
            chunk_batch: 4096,
            inode_low_watermark: 25,
            chunk_low_watermark: 25,
            batchwrite: true,
            batch_size: 512,
            batch_bytes: 256 * 1024,
            batch_interval: Duration::ZERO,
            max_inflight: 0,
            max_queue: 100_000,
            session: true,
            heartbeat: Duration::from_secs(12),
            session_label: String::new(),
            permissions: true,
        }
    }
}

/// Shortest heartbeat interval accepted (`heartbeat` option).
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// Longest heartbeat interval accepted (`heartbeat` option).
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);
/// Longest `batch_interval` accepted: every op of a batch that does not fill may wait this
/// long, so more would only stall the engine.
pub const MAX_BATCH_INTERVAL: Duration = Duration::from_secs(1);
/// A session expires after this many heartbeat intervals without a heartbeat.
pub const MISSED_HEARTBEATS: u32 = 5;

/// Names of the engine options [`parse_url`] recognizes.
pub const ENGINE_PARAMS: &[&str] = &[
    "metaprime",
    "inode_batch",
    "chunk_batch",
    "inode_low_watermark",
    "chunk_low_watermark",
    "batchwrite",
    "batch",
    "batch_size",
    "batch_bytes",
    "batch_interval",
    "max_inflight",
    "max_queue",
    "session",
    "heartbeat",
    "session_label",
    "permissions",
];

fn bad(name: &str, value: &str, want: &str) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        format!("URL parameter {name}={value:?}: expected {want}"),
    )
}

/// Parses a boolean option value: `1/0`, `true/false`, `yes/no`, `on/off`.
pub fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(bad(name, value, "a boolean (1/0, true/false)")),
    }
}

/// Parses an integer option value within `min..=max`.
pub fn parse_int(name: &str, value: &str, min: u64, max: u64) -> Result<u64> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| bad(name, value, &format!("an integer in {min}..={max}")))
}

/// Parses a duration option value such as `0ms`, `5ms`, `1s` (humantime syntax).
pub fn parse_duration(name: &str, value: &str) -> Result<Duration> {
    humantime::parse_duration(value).map_err(|_| bad(name, value, "a duration like 5ms or 1s"))
}

/// Parses one `host:port` of a list of servers (`[v6addr]:port` too); a missing port is
/// `default_port`. Errors: `ConfigInvalid` naming `what` and the entry for an empty host,
/// a host with `/`, `@` or whitespace, or a port that is not 1..=65535.
pub fn parse_host_port(s: &str, what: &str, default_port: u16) -> Result<(String, u16)> {
    let err = |why: &str| Error::new(ErrorKind::ConfigInvalid, format!("{what}: {why} in {s:?}"));
    // `[v6]` or `[v6]:port`; otherwise at most one ':' (a bare IPv6 address is ambiguous).
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (addr, after) = rest
                .split_once(']')
                .ok_or_else(|| err("unclosed '[' (expected [addr]:port)"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| err("bad port"))?),
            };
            (format!("[{addr}]"), port)
        }
        None => match s.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err(err("an IPv6 address goes in brackets ([addr]:port)"));
            }
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        },
    };
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| err("bad port (expected 1..=65535)"))?,
    };
    if host.is_empty() || host == "[]" {
        return Err(err("empty host"));
    }
    if host.contains(['/', '@']) || host.chars().any(char::is_whitespace) {
        return Err(err("bad host (expected host:port)"));
    }
    Ok((host, port))
}

/// Longest value a backend's timeout option takes ([`parse_timeout`]): one day.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Parses a backend's timeout option value (`timeout`, `connect_timeout`, `acquire_timeout`,
/// `busy_timeout`): a duration from 1 ms to [`MAX_TIMEOUT`]. Zero would fail every call;
/// far longer ones overflow drivers (SQLite's busy timeout is an i32 of milliseconds, 24.8
/// days). Errors: `ConfigInvalid` naming the option and its value.
pub fn parse_timeout(name: &str, value: &str) -> Result<Duration> {
    let d = parse_duration(name, value)?;
    if !timeout_in_range(d) {
        return Err(bad(name, value, TIMEOUT_RANGE));
    }
    Ok(d)
}

const TIMEOUT_RANGE: &str = "a duration from 1ms to 1day";

fn timeout_in_range(d: Duration) -> bool {
    (Duration::from_millis(1)..=MAX_TIMEOUT).contains(&d)
}

/// Checks a backend timeout given in code (an options struct, not a URL) against
/// [`parse_timeout`]'s range, 1 ms to [`MAX_TIMEOUT`]. Errors: `ConfigInvalid` naming the
/// option and its value.
pub fn check_timeout(name: &str, d: Duration) -> Result<()> {
    if timeout_in_range(d) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("option {name} = {d:?}: expected {TIMEOUT_RANGE}"),
        ))
    }
}

/// The accepted range of each integer engine option (name → least, most), for the URL
/// parser and [`MetaOptions::validate`] alike.
fn int_range(name: &str) -> (u64, u64) {
    match name {
        "inode_batch" | "chunk_batch" => (1, 1 << 32),
        "inode_low_watermark" | "chunk_low_watermark" => (0, 100),
        "batch_size" => (1, 1 << 20),
        "batch_bytes" => (1, 1 << 30),
        "max_inflight" => (0, 1024),
        "max_queue" => (1, 1 << 30),
        _ => (0, u64::MAX),
    }
}

impl MetaOptions {
    /// Checks options built in code against the ranges the URL parser enforces (see each
    /// field); [`crate::Meta::open`] calls it. Errors: `ConfigInvalid` naming the first
    /// option out of range.
    pub fn validate(&self) -> Result<()> {
        let ints = [
            ("inode_batch", self.inode_batch),
            ("chunk_batch", self.chunk_batch),
            ("inode_low_watermark", u64::from(self.inode_low_watermark)),
            ("chunk_low_watermark", u64::from(self.chunk_low_watermark)),
            ("batch_size", self.batch_size as u64),
            ("batch_bytes", self.batch_bytes as u64),
            ("max_inflight", self.max_inflight as u64),
            ("max_queue", self.max_queue as u64),
        ];
        for (name, v) in ints {
            let (min, max) = int_range(name);
            if !(min..=max).contains(&v) {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("engine option {name}={v}: expected an integer in {min}..={max}"),
                ));
            }
        }
        if self.batch_interval > MAX_BATCH_INTERVAL {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "engine option batch_interval={:?}: expected a duration of at most 1s",
                    self.batch_interval
                ),
            ));
        }
        if self.heartbeat < MIN_HEARTBEAT || self.heartbeat > MAX_HEARTBEAT {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "engine option heartbeat={:?}: expected a duration from 10ms to 1h",
                    self.heartbeat
                ),
            ));
        }
        Ok(())
    }

    /// Applies one engine option; `Ok(false)` when `name` is not an engine option.
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool> {
        let int = |name: &str| {
            let (min, max) = int_range(name);
            parse_int(name, value, min, max)
        };
        match name {
            "metaprime" => self.metaprime = parse_bool(name, value)?,
            "inode_batch" => self.inode_batch = int(name)?,
            "chunk_batch" => self.chunk_batch = int(name)?,
            "inode_low_watermark" => self.inode_low_watermark = int(name)? as u8,
            "chunk_low_watermark" => self.chunk_low_watermark = int(name)? as u8,
            "batchwrite" | "batch" => self.batchwrite = parse_bool(name, value)?,
            "batch_size" => self.batch_size = int(name)? as usize,
            "batch_bytes" => self.batch_bytes = int(name)? as usize,
            "batch_interval" => {
                let d = parse_duration(name, value)?;
                if d > MAX_BATCH_INTERVAL {
                    return Err(bad(name, value, "a duration of at most 1s"));
                }
                self.batch_interval = d;
            }
            "max_inflight" => self.max_inflight = int(name)? as usize,
            "max_queue" => self.max_queue = int(name)? as usize,
            "session" => self.session = parse_bool(name, value)?,
            "heartbeat" => {
                let d = parse_duration(name, value)?;
                if d < MIN_HEARTBEAT || d > MAX_HEARTBEAT {
                    return Err(bad(name, value, "a duration from 10ms to 1h"));
                }
                self.heartbeat = d;
            }
            "session_label" => self.session_label = value.to_string(),
            "permissions" => self.permissions = parse_bool(name, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A parsed volume URL minus the engine options; the backend takes its own parameters from it.
#[derive(Clone)]
pub struct VolumeUrl {
    url: Url,
    params: Vec<(String, String)>,
}

impl VolumeUrl {
    /// The scheme, e.g. `rocksdb`.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    /// The URL without its query string (password included: never log it, use `Display`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// For file-based schemes: the path the URL names. `rocksdb:///abs/dir` → `/abs/dir`,
    /// `rocksdb://./dir` and `rocksdb://dir` → relative paths `./dir`, `dir`.
    pub fn file_path(&self) -> String {
        let host = self.url.host_str().unwrap_or("");
        let path = percent_decode(self.url.path());
        if host.is_empty() {
            path
        } else {
            format!("{host}{path}")
        }
    }

    /// Removes and returns the backend parameter `name`.
    pub fn take_param(&mut self, name: &str) -> Option<String> {
        let i = self.params.iter().position(|(k, _)| k == name)?;
        Some(self.params.remove(i).1)
    }

    /// Fails with `ConfigInvalid` naming the first parameter nobody took.
    pub fn finish(self) -> Result<()> {
        match self.params.first() {
            None => Ok(()),
            Some((k, _)) => Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "unknown URL parameter {k:?} for scheme {}; engine parameters are: {}",
                    self.url.scheme(),
                    ENGINE_PARAMS.join(", ")
                ),
            )),
        }
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

fn redact(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

impl fmt::Debug for VolumeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VolumeUrl")
            .field("url", &self.redacted())
            .field("params", &self.params)
            .finish()
    }
}

impl fmt::Display for VolumeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Removes any password from a URL-like string for messages (best effort on malformed input).
pub fn redact_url(s: &str) -> String {
    match Url::parse(s) {
        Ok(u) => redact(&u),
        Err(_) => match (s.find("://"), s.rfind('@')) {
            (Some(a), Some(b)) if b > a => format!("{}***{}", &s[..a + 3], &s[b..]),
            _ => s.to_string(),
        },
    }
}

/// Rewrites a URL whose authority names several hosts (`etcd://h1:p1,h2:p2/x`, which no URL
/// parser accepts) into one that [`parse_url`] takes: the first host stays, the others move to
/// the backend parameter `param` (`etcd://h1:p1/x?endpoints=h2:p2`). Other URLs come back
/// unchanged. Used by the backends whose URLs list a cluster's members (Redis Cluster, etcd).
pub fn split_hosts(s: &str, param: &str) -> String {
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
    let extra = format!("{param}={others}");
    let query = match query {
        Some(q) if !q.is_empty() => format!("{q}&{extra}"),
        _ => extra,
    };
    format!("{}://{userinfo}{first}{path}?{query}", &s[..scheme_end])
}

/// Parses a volume URL into the backend part and the engine options.
/// Errors (`ConfigInvalid`): an unparsable URL, a malformed engine option value, an option
/// given twice.
pub fn parse_url(s: &str) -> Result<(VolumeUrl, MetaOptions)> {
    let mut url = Url::parse(s).map_err(|e| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("cannot parse volume URL {}", redact_url(s)),
        )
        .with_source(e)
    })?;
    // A '#' would silently cut the path and drop the options after it (`vol#2` opening
    // `vol`): a literal '#' in a path or value is written %23.
    if url.fragment().is_some() {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "volume URL {} has a '#': write a '#' in a path or option value as %23",
                redact_url(s.split('#').next().unwrap_or(""))
            ),
        ));
    }
    // %-escapes are decoded as UTF-8: an escape that is not (`%FF`) would become U+FFFD, so
    // that two different URLs name one path or prefix.
    for (part, raw) in [("path", url.path()), ("query", url.query().unwrap_or(""))] {
        if percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .is_err()
        {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "volume URL {}: its {part} has %-escapes that are not UTF-8",
                    redact_url(s)
                ),
            ));
        }
    }
    let mut opts = MetaOptions::default();
    let mut params = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in url.query_pairs() {
        let canonical = if k == "batch" { "batchwrite" } else { &*k };
        if !seen.insert(canonical.to_string()) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("URL parameter {k:?} given twice"),
            ));
        }
        if !opts.set(&k, &v)? {
            params.push((k.into_owned(), v.into_owned()));
        }
    }
    url.set_query(None);
    Ok((VolumeUrl { url, params }, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_engine_params() {
        let (u, o) =
            parse_url("rocksdb:///tmp/x?sync=false&batch=0&inode_batch=7&batch_interval=5ms")
                .unwrap();
        assert!(!o.batchwrite);
        assert_eq!(o.inode_batch, 7);
        assert_eq!(o.batch_interval, Duration::from_millis(5));
        assert_eq!(o.batch_size, 512);
        assert!(o.session);
        assert_eq!(o.heartbeat, Duration::from_secs(12));
        assert_eq!(u.file_path(), "/tmp/x");
        let (_, o) = parse_url("memory://?session=0&heartbeat=100ms").unwrap();
        assert!(!o.session);
        assert_eq!(o.heartbeat, Duration::from_millis(100));
        assert!(parse_url("memory://?heartbeat=1ms").is_err());
        let mut u = u;
        assert_eq!(u.take_param("sync").as_deref(), Some("false"));
        u.finish().unwrap();
    }

    #[test]
    fn errors_name_the_parameter() {
        let e = parse_url("memory://?batch_size=zero").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.to_string().contains("batch_size"), "{e}");
        let (u, _) = parse_url("memory://?bogus=1").unwrap();
        let e = u.finish().unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        assert!(parse_url("memory://?batch=1&batchwrite=0").is_err());
        assert!(parse_url("memory://?inode_low_watermark=101").is_err());
        assert!(parse_url("not a url").is_err());
        // A batch interval past 1 s is refused, in a URL and in code (a huge one overflowed
        // the batcher's deadline).
        let e = parse_url("memory://?batch_interval=18446744073709551615s").unwrap_err();
        assert!(e.to_string().contains("batch_interval"), "{e}");
        assert!(parse_url("memory://?batch_interval=1s").is_ok());
        let o = MetaOptions {
            batch_interval: Duration::from_secs(2),
            ..MetaOptions::default()
        };
        assert!(
            o.validate()
                .unwrap_err()
                .to_string()
                .contains("batch_interval")
        );
        // A '#' would cut the path and drop the options after it.
        for url in [
            "rocksdb:///tmp/vol#2",
            "sqlite:///tmp/s.db#?table_prefix=v1_",
        ] {
            let e = parse_url(url).unwrap_err();
            assert!(e.to_string().contains("%23"), "{url}: {e}");
        }
        let e = parse_url("redis://bob:6379#s3cret@host/0").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let (u, _) = parse_url("rocksdb:///tmp/vol%232").unwrap();
        assert_eq!(u.file_path(), "/tmp/vol#2");
        // Escapes that are not UTF-8 would all decode to U+FFFD: refused.
        for url in [
            "rocksdb:///tmp/a%FF",
            "etcd://h:1/p%FE",
            "sqlite:///x.db?table_prefix=%FF",
        ] {
            let e = parse_url(url).unwrap_err();
            assert!(e.to_string().contains("not UTF-8"), "{url}: {e}");
        }
        let (u, _) = parse_url("rocksdb:///tmp/caf%C3%A9").unwrap();
        assert_eq!(u.file_path(), "/tmp/café");
    }

    #[test]
    fn host_ports_and_timeouts() {
        assert_eq!(parse_host_port("h:1", "n", 9).unwrap(), ("h".into(), 1));
        assert_eq!(parse_host_port("h", "n", 9).unwrap(), ("h".into(), 9));
        assert_eq!(
            parse_host_port("[::1]:7", "n", 9).unwrap(),
            ("[::1]".into(), 7)
        );
        assert_eq!(
            parse_host_port("[::1]", "n", 9).unwrap(),
            ("[::1]".into(), 9)
        );
        for bad in [
            "h:99999", "h:0", "h:abc", ":5", "a/b:1", "u@h:1", "h x:1", "fe80::1", "h:1:2", "[::1",
            "[::1]x", "[]:5",
        ] {
            let e = parse_host_port(bad, "URL parameter endpoints", 9).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("endpoints") && text.contains(bad), "{text}");
        }
        assert_eq!(parse_timeout("t", "5s").unwrap(), Duration::from_secs(5));
        for bad in ["0s", "1ns", "30days", "soon"] {
            let e = parse_timeout("busy_timeout", bad).unwrap_err();
            assert!(e.to_string().contains("busy_timeout"), "{e}");
        }
    }

    #[test]
    fn relative_paths_and_passwords() {
        let (u, _) = parse_url("rocksdb://./meta-data").unwrap();
        assert_eq!(u.file_path(), "./meta-data");
        let (u, _) = parse_url("postgres://bob:s3cret@h:5432/db?table_prefix=v_").unwrap();
        assert!(!format!("{u:?}").contains("s3cret"));
        assert!(!u.to_string().contains("s3cret"));
        let e = parse_url("postgres://bob:s3cret@h:99999999/db").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
