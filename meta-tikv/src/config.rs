//! `tikv://` URLs and the options they carry.

use std::time::Duration;

use meta_core::options::parse_timeout;
use meta_core::{Error, ErrorKind, Result, VolumeUrl};

/// The URL scheme of this backend.
pub const SCHEME: &str = "tikv";

/// Options of a TiKV volume, from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TikvOptions {
    /// PD endpoints (`host:port`), at least one.
    pub pd: Vec<String>,
    /// The volume's key prefix (the URL path without its leading `/`); keys are `prefix` +
    /// NUL + the key.
    pub prefix: Vec<u8>,
    /// How long one request may take (URL `timeout`, default 10 s): `Unavailable` for a
    /// read, `Indeterminate` for a commit.
    pub timeout: Duration,
}

impl TikvOptions {
    /// Options for `pd` and `prefix`, the timeout at its default.
    pub fn new(pd: Vec<String>, prefix: impl Into<Vec<u8>>) -> Self {
        TikvOptions {
            pd,
            prefix: prefix.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Checks the options. Errors: `ConfigInvalid` for no PD endpoint, an empty prefix or
    /// one holding a NUL byte.
    pub fn validate(&self) -> Result<()> {
        if self.pd.is_empty() {
            return Err(config("a tikv URL names at least one PD host:port"));
        }
        if self.prefix.is_empty() {
            return Err(config(
                "the tikv URL names no key prefix: give the volume one, as in \
                 tikv://127.0.0.1:2379/myvolume",
            ));
        }
        if self.prefix.contains(&0) {
            return Err(config("the tikv key prefix must not hold a NUL byte"));
        }
        Ok(())
    }
}

fn config(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::ConfigInvalid, msg)
}

/// Reads a `tikv://pd1:2379[,pd2:2379…]/prefix` URL (after [`crate::normalize_url`]) and its
/// parameters `pd` (more endpoints) and `timeout`. Errors: `ConfigInvalid` naming what is
/// wrong.
pub fn options_from_url(mut url: VolumeUrl) -> Result<TikvOptions> {
    if url.scheme() != SCHEME {
        return Err(config(format!(
            "meta-tikv opens {SCHEME}:// URLs, not {}://",
            url.scheme()
        )));
    }
    let u = url.url().clone();
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| config("the tikv URL names no PD host (tikv://pd:2379/prefix)"))?;
    let mut pd = vec![format!("{host}:{}", u.port().unwrap_or(2379))];
    if let Some(more) = url.take_param("pd") {
        for hp in more.split(',').filter(|s| !s.is_empty()) {
            if hp.contains('/') || hp.contains('@') {
                return Err(config(format!(
                    "bad PD endpoint {hp:?}: expected host:port"
                )));
            }
            pd.push(if hp.contains(':') {
                hp.to_string()
            } else {
                format!("{hp}:2379")
            });
        }
    }
    let path = u.path().trim_start_matches('/').to_string();
    let mut opts = TikvOptions::new(pd, path.into_bytes());
    if let Some(v) = url.take_param("timeout") {
        opts.timeout = parse_timeout("timeout", &v)?;
    }
    url.finish()?;
    opts.validate()?;
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TikvOptions> {
        let (u, _) = meta_core::parse_url(&crate::normalize_url(s))?;
        options_from_url(u)
    }

    #[test]
    fn urls() {
        let o = parse("tikv://pd1:2379,pd2,pd3:2381/vol?timeout=3s").unwrap();
        assert_eq!(o.pd, ["pd1:2379", "pd2:2379", "pd3:2381"]);
        assert_eq!(o.prefix, b"vol");
        assert_eq!(o.timeout, Duration::from_secs(3));
        for (bad, want) in [
            ("tikv://pd:2379", "no key prefix"),
            ("tikv://pd/v?x=1", "\"x\""),
            ("tikv://pd/v?timeout=soon", "timeout"),
            ("etcd://pd/v", "tikv://"),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{bad}");
            assert!(e.to_string().contains(want), "{bad}: {e}");
        }
    }
}
