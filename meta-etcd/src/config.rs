//! `etcd://` URLs and the options they carry.

use std::time::Duration;

use meta_core::options::{parse_host_port, parse_int, parse_timeout};
use meta_core::{Error, ErrorKind, Result, VolumeUrl};

/// The URL scheme of this backend.
pub const SCHEME: &str = "etcd";
/// etcd's default `--max-request-bytes` (1.5 MiB), assumed unless the URL says otherwise.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// The transaction sizes tried, largest first, to find the server's `--max-txn-ops` (etcd's
/// default is 128) when the URL does not give `max_txn_ops`.
pub const PROBE_TXN_OPS: [usize; 6] = [1024, 512, 256, 128, 64, 32];

/// Options of an etcd volume, from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdOptions {
    /// Client URLs of the members (`http://host:port`), at least one.
    pub endpoints: Vec<String>,
    /// The volume's key prefix (the URL path without its leading `/`); every key of the volume
    /// is `prefix` + NUL + the key, so volumes whose names share a beginning stay apart.
    pub prefix: Vec<u8>,
    /// User and password (URL user info), for clusters with authentication on.
    pub user: Option<(String, String)>,
    /// How long one request may take before it counts as failed (URL `timeout`, default 10 s):
    /// `Unavailable` for a read, `Indeterminate` for a commit.
    pub timeout: Duration,
    /// The server's `--max-txn-ops` (URL `max_txn_ops`); `None` probes it when connecting.
    pub max_txn_ops: Option<usize>,
    /// The server's `--max-request-bytes` (URL `max_request_bytes`, default 1.5 MiB).
    pub max_request_bytes: usize,
}

impl EtcdOptions {
    /// Options for `endpoints` and `prefix`, everything else at its default.
    pub fn new(endpoints: Vec<String>, prefix: impl Into<Vec<u8>>) -> Self {
        EtcdOptions {
            endpoints,
            prefix: prefix.into(),
            user: None,
            timeout: Duration::from_secs(10),
            max_txn_ops: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }

    /// Checks the options. Errors: `ConfigInvalid` for no endpoint, an empty prefix or one
    /// holding a NUL byte.
    pub fn validate(&self) -> Result<()> {
        if self.endpoints.is_empty() {
            return Err(config("an etcd URL names at least one host:port"));
        }
        if self.prefix.is_empty() {
            return Err(config(
                "the etcd URL names no key prefix: give the volume one, as in \
                 etcd://127.0.0.1:2379/myvolume (so `format --force` cannot erase the cluster)",
            ));
        }
        if self.prefix.contains(&0) {
            return Err(config("the etcd key prefix must not hold a NUL byte"));
        }
        Ok(())
    }
}

pub(crate) fn config(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::ConfigInvalid, msg)
}

/// Reads an `etcd://` URL (after [`crate::normalize_url`]): hosts, prefix, user info and the
/// backend parameters `endpoints`, `timeout`, `max_txn_ops`, `max_request_bytes`.
/// Errors: `ConfigInvalid` naming what is wrong.
pub fn options_from_url(mut url: VolumeUrl) -> Result<EtcdOptions> {
    if url.scheme() != SCHEME {
        return Err(config(format!(
            "meta-etcd opens {SCHEME}:// URLs, not {}://",
            url.scheme()
        )));
    }
    let u = url.url().clone();
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| config("the etcd URL names no host (etcd://host:2379/prefix)"))?;
    let mut endpoints = vec![format!("http://{host}:{}", u.port().unwrap_or(2379))];
    if let Some(more) = url.take_param("endpoints") {
        for hp in more.split(',').filter(|s| !s.is_empty()) {
            let (h, p) = parse_host_port(hp, "URL parameter endpoints", 2379)?;
            endpoints.push(format!("http://{h}:{p}"));
        }
    }
    let prefix = url.file_path();
    let prefix = prefix
        .strip_prefix(host)
        .unwrap_or(&prefix)
        .trim_start_matches('/')
        .to_string();
    let mut opts = EtcdOptions::new(endpoints, prefix.into_bytes());
    if !u.username().is_empty() {
        opts.user = Some((
            u.username().to_string(),
            u.password().unwrap_or("").to_string(),
        ));
    }
    if let Some(v) = url.take_param("timeout") {
        opts.timeout = parse_timeout("timeout", &v)?;
    }
    if let Some(v) = url.take_param("max_txn_ops") {
        opts.max_txn_ops = Some(parse_int("max_txn_ops", &v, 8, 1 << 20)? as usize);
    }
    if let Some(v) = url.take_param("max_request_bytes") {
        opts.max_request_bytes = parse_int("max_request_bytes", &v, 64 * 1024, 1 << 31)? as usize;
    }
    url.finish()?;
    opts.validate()?;
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<EtcdOptions> {
        let (u, _) = meta_core::parse_url(&crate::normalize_url(s))?;
        options_from_url(u)
    }

    #[test]
    fn urls() {
        let o = parse("etcd://127.0.0.1:2379,127.0.0.1:2381,h3/vol1?timeout=2s").unwrap();
        assert_eq!(
            o.endpoints,
            [
                "http://127.0.0.1:2379",
                "http://127.0.0.1:2381",
                "http://h3:2379"
            ]
        );
        assert_eq!(o.prefix, b"vol1");
        assert_eq!(o.timeout, Duration::from_secs(2));
        let o = parse("etcd://u:pw@h/a/b?max_txn_ops=256").unwrap();
        assert_eq!(o.user, Some(("u".into(), "pw".into())));
        assert_eq!(o.prefix, b"a/b");
        assert_eq!(o.max_txn_ops, Some(256));
        for (bad, want) in [
            ("etcd://h:2379", "no key prefix"),
            ("etcd://h:2379/", "no key prefix"),
            ("etcd://h/v?bogus=1", "bogus"),
            ("etcd://h/v?max_txn_ops=1", "max_txn_ops"),
            ("etcd://h/v?timeout=forever", "timeout"),
            ("rocksdb://x", "etcd://"),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{bad}");
            assert!(e.to_string().contains(want), "{bad}: {e}");
        }
    }
}
