//! The one place that maps a URL scheme to a backend: each backend crate exports a
//! [`BackendFactory`] (its schemes and how to open a URL), and a program registers the ones
//! it was built with, one line each:
//!
//! ```
//! use meta_core::registry::BackendRegistry;
//! # async fn demo() -> meta_core::Result<()> {
//! let mut reg = BackendRegistry::new(); // knows memory://
//! // reg.register(meta_rocks::factory())?; reg.register(meta_etcd::factory())?; …
//! let (backend, opts) = reg.open("memory://?batch_size=64").await?;
//! assert_eq!(backend.info().scheme, "memory");
//! assert_eq!(opts.batch_size, 64);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::backend::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::options::{MetaOptions, VolumeUrl, parse_url};

/// What [`BackendFactory::open`] returns.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<Arc<dyn Backend>>> + Send>>;

/// How one backend crate opens its URLs.
#[derive(Clone)]
#[non_exhaustive]
pub struct BackendFactory {
    /// The URL schemes it opens, e.g. `["redis", "rediss", "redis+cluster"]`.
    pub schemes: Vec<&'static str>,
    /// Opens the volume a parsed URL names (engine options already taken out).
    pub open: fn(VolumeUrl) -> OpenFuture,
    /// Rewrites a raw URL before parsing (for authorities that list several hosts, see
    /// [`crate::options::split_hosts`]); the identity by default.
    pub normalize: fn(&str) -> String,
    /// For stores that live in a local file or directory: the path a URL names (so a tool can
    /// refuse to create one when it only reads). `None` for servers.
    pub local_path: fn(&VolumeUrl) -> Option<String>,
}

fn identity(s: &str) -> String {
    s.to_string()
}

fn no_path(_: &VolumeUrl) -> Option<String> {
    None
}

impl BackendFactory {
    /// A factory for `schemes` that opens URLs with `open`; no URL rewriting, no local path.
    pub fn new(schemes: Vec<&'static str>, open: fn(VolumeUrl) -> OpenFuture) -> Self {
        BackendFactory {
            schemes,
            open,
            normalize: identity,
            local_path: no_path,
        }
    }

    /// The same, rewriting raw URLs with `normalize` first.
    pub fn with_normalize(mut self, normalize: fn(&str) -> String) -> Self {
        self.normalize = normalize;
        self
    }

    /// The same, reporting the local path a URL names with `local_path`.
    pub fn with_local_path(mut self, local_path: fn(&VolumeUrl) -> Option<String>) -> Self {
        self.local_path = local_path;
        self
    }
}

impl fmt::Debug for BackendFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendFactory")
            .field("schemes", &self.schemes)
            .finish()
    }
}

/// The backends a program can open, by URL scheme.
#[derive(Debug, Clone)]
pub struct BackendRegistry {
    factories: Vec<BackendFactory>,
}

impl Default for BackendRegistry {
    fn default() -> Self {
        Self::new()
    }
}

fn open_memory(url: VolumeUrl) -> OpenFuture {
    Box::pin(async move {
        url.finish()?;
        Ok(Arc::new(crate::memory::memory_backend()) as Arc<dyn Backend>)
    })
}

/// The scheme of a raw URL (the text before `://` or `:`), if any.
fn raw_scheme(url: &str) -> Option<&str> {
    let end = url.find(':')?;
    let s = &url[..end];
    (!s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(s)
}

impl BackendRegistry {
    /// A registry that knows only the in-memory reference backend (`memory://`).
    pub fn new() -> Self {
        BackendRegistry {
            factories: vec![BackendFactory::new(vec!["memory"], open_memory)],
        }
    }

    /// Adds a backend. Errors: `ConfigInvalid` when one of its schemes is already taken (the
    /// registry is unchanged).
    pub fn register(&mut self, factory: BackendFactory) -> Result<&mut Self> {
        if let Some(s) = factory.schemes.iter().find(|s| self.factory(s).is_some()) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("URL scheme {s:?} is registered twice"),
            ));
        }
        self.factories.push(factory);
        Ok(self)
    }

    /// Every scheme it can open, in registration order.
    pub fn schemes(&self) -> Vec<&'static str> {
        self.factories
            .iter()
            .flat_map(|f| f.schemes.iter().copied())
            .collect()
    }

    /// The factory of `scheme`.
    pub fn factory(&self, scheme: &str) -> Option<&BackendFactory> {
        self.factories.iter().find(|f| f.schemes.contains(&scheme))
    }

    /// Parses a raw URL (rewritten by its backend's `normalize` first) into the backend part,
    /// the engine options and its factory. Errors: `ConfigInvalid` for an unparsable URL or an
    /// unknown scheme (the message lists the schemes it knows).
    pub fn parse(&self, url: &str) -> Result<(VolumeUrl, MetaOptions, &BackendFactory)> {
        let normalized = match raw_scheme(url).and_then(|s| self.factory(s)) {
            Some(f) => (f.normalize)(url),
            None => url.to_string(),
        };
        let (vurl, opts) = parse_url(&normalized)?;
        let factory = self.factory(vurl.scheme()).ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "no backend for URL scheme {:?}; schemes known: {}",
                    vurl.scheme(),
                    self.schemes().join(", ")
                ),
            )
        })?;
        Ok((vurl, opts, factory))
    }

    /// Opens the volume a raw URL names, with the engine options it carries. Errors: those of
    /// [`Self::parse`] and of the backend's `open`.
    pub async fn open(&self, url: &str) -> Result<(Arc<dyn Backend>, MetaOptions)> {
        let (vurl, opts, factory) = self.parse(url)?;
        let backend = (factory.open)(vurl).await?;
        Ok((backend, opts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn schemes_map_to_factories() {
        let mut reg = BackendRegistry::new();
        assert_eq!(reg.schemes(), ["memory"]);
        let dup = reg
            .register(BackendFactory::new(vec!["x", "memory"], open_memory))
            .unwrap_err();
        assert!(dup.to_string().contains("\"memory\""), "{dup}");
        assert_eq!(reg.schemes(), ["memory"], "a refused factory adds nothing");
        let e = reg.parse("nope://h/x").unwrap_err();
        assert!(e.to_string().contains("schemes known: memory"), "{e}");
        fn two_hosts(s: &str) -> String {
            crate::options::split_hosts(s, "more")
        }
        reg.register(BackendFactory::new(vec!["multi"], open_memory).with_normalize(two_hosts))
            .unwrap();
        let (u, _, f) = reg.parse("multi://a:1,b:2/v").unwrap();
        assert_eq!(f.schemes, ["multi"]);
        assert_eq!(u.url().host_str(), Some("a"));
        let (b, o) = reg.open("memory://?batch_size=7").await.unwrap();
        assert_eq!((b.info().scheme, o.batch_size), ("memory", 7));
        assert_eq!(raw_scheme("rediss+cluster://x"), Some("rediss+cluster"));
        assert_eq!(raw_scheme("/abs/path"), None);
    }
}
