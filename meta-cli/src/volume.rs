//! Opening a volume from its URL, through meta-core's backend registry (one line per
//! compiled-in backend crate).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use meta_core::registry::BackendRegistry;
use meta_core::{Backend, Error, ErrorKind, Meta, MetaOptions, Setting};
use prometheus::Registry;

/// The URL used when neither `--url` nor `META_URL` is given.
pub const DEFAULT_URL: &str = "rocksdb://./meta-data";

/// Every scheme some meta backend opens, with the cargo feature of this crate that builds it in.
const KNOWN: &[(&str, &str)] = &[
    ("rocksdb", "rocksdb"),
    ("sqlite", "sqlite"),
    ("postgres", "postgres"),
    ("postgresql", "postgres"),
    ("mysql", "mysql"),
    ("redis", "redis"),
    ("rediss", "redis"),
    ("redis+cluster", "redis"),
    ("rediss+cluster", "redis"),
    ("unix", "redis"),
    ("etcd", "etcd"),
    ("tikv", "tikv"),
];

/// The backends this build can open: the in-memory one plus one line per compiled-in backend
/// crate.
pub fn registry() -> &'static BackendRegistry {
    static REG: std::sync::OnceLock<BackendRegistry> = std::sync::OnceLock::new();
    REG.get_or_init(|| {
        #[allow(unused_mut)]
        let mut r = BackendRegistry::new();
        let mut add = |f| {
            // Each crate's schemes are distinct, so this cannot fail.
            let _ = r.register(f);
        };
        #[cfg(feature = "rocksdb")]
        add(meta_rocks::factory());
        #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
        add(meta_sql::factory());
        #[cfg(feature = "redis")]
        add(meta_redis::factory());
        #[cfg(feature = "etcd")]
        add(meta_etcd::factory());
        #[cfg(feature = "tikv")]
        add(meta_tikv::factory());
        let _ = &mut add;
        r
    })
}

/// The URL schemes this build can open.
pub fn available_schemes() -> Vec<&'static str> {
    registry().schemes()
}

/// Whether a command may create and format the volume, or only read an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Create the store if missing and format it (name "meta") when unformatted.
    Write,
    /// The volume must exist and be formatted; nothing is created.
    Read,
    /// Create the store if missing but leave formatting to the caller (`format`, `load`).
    Create,
}

/// A backend opened from a URL, with the engine options the URL carried.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// Engine options (batching, ID priming) from the URL's query.
    pub opts: MetaOptions,
    /// The URL for messages (password redacted).
    pub display: String,
}

fn config_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::ConfigInvalid, msg)
}

/// Parses `url` and opens its backend through [`registry`]. An unknown scheme, or one whose
/// backend is not compiled in, is a `ConfigInvalid` error that lists the schemes this build
/// supports. With `Access::Read` a file-based volume that does not exist is `NotFound`
/// (nothing is created).
pub async fn open_backend(url: &str, access: Access) -> Result<Opened> {
    let reg = registry();
    let list = available_schemes().join(", ");
    let (vurl, opts, factory) = match reg.parse(url) {
        Ok(v) => v,
        Err(e) => {
            let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
            // A known scheme missing from this build; any other error of a scheme this build
            // has (a bad option, port, path) is reported as it is.
            let missing = reg.factory(scheme).is_none();
            if let Some((_, feature)) = KNOWN.iter().find(|(s, _)| missing && *s == scheme) {
                return Err(config_err(format!(
                    "URL scheme {scheme:?} is not available: this build of meta lacks the \
                     cargo feature `{feature}` of meta-cli; schemes in this build: {list}"
                ))
                .into());
            }
            let hint = if url.starts_with('/') || url.starts_with('.') {
                format!(" (a path? try rocksdb://{url})")
            } else {
                String::new()
            };
            return Err(anyhow::Error::new(e).context(format!(
                "bad volume URL{hint}; schemes in this build: {list}"
            )));
        }
    };
    let display = vurl.redacted();
    if let Some(path) = (factory.local_path)(&vurl) {
        check_path(&path, access)?;
    }
    let backend = (factory.open)(vurl)
        .await
        .with_context(|| format!("open {display}"))?;
    Ok(Opened {
        backend,
        opts,
        display,
    })
}

/// For file-based volumes: refuses to create a missing store for read-only commands, and
/// creates the parent directories for writing ones.
fn check_path(path: &str, access: Access) -> Result<()> {
    let p = Path::new(path);
    if path.is_empty() {
        return Err(
            config_err("the volume URL names no path (e.g. rocksdb:///var/lib/meta/vol)").into(),
        );
    }
    match access {
        Access::Read => {
            if !p.exists() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("no volume at {path} (create one with `meta format` or `meta import`)"),
                )
                .into());
            }
        }
        Access::Write | Access::Create => {
            if let Some(parent) = p.parent().filter(|q| !q.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("create directory {}", parent.display()))?;
            }
        }
    }
    Ok(())
}

/// Formats the volume with the name "meta" if it is not formatted yet; returns its record.
pub async fn ensure_formatted(backend: &dyn Backend) -> Result<Setting> {
    match backend.load().await {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Meta::format(backend, &Setting::new("meta"), false).await?;
            Ok(backend.load().await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The volume's format record; a clear error when it was never formatted.
pub async fn require_formatted(o: &Opened) -> Result<Setting> {
    match o.backend.load().await {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let note = if o.backend.info().durable {
                ""
            } else {
                "; a memory:// volume lives only inside one meta process"
            };
            Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "volume {} is not formatted (run `meta format` or `meta import`){note}",
                    o.display
                ),
            )
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens `url` for a command: the backend, then (formatted as `access` says) the [`Meta`].
pub async fn open_meta(
    url: &str,
    access: Access,
    registry: Option<&Registry>,
) -> Result<(Meta, Opened)> {
    let o = open_backend(url, access).await?;
    open_meta_on(&o, access, registry).await.map(|m| (m, o))
}

/// Opens a [`Meta`] on an already opened backend. Commands that only read (`Access::Read`)
/// open it without a session (`session=0`): they hold no files open and take no locks.
pub async fn open_meta_on(o: &Opened, access: Access, registry: Option<&Registry>) -> Result<Meta> {
    let mut opts = o.opts.clone();
    match access {
        Access::Write => {
            ensure_formatted(&*o.backend).await?;
        }
        Access::Read | Access::Create => {
            require_formatted(o).await?;
        }
    }
    if access == Access::Read {
        opts.session = false;
    }
    Ok(Meta::open(o.backend.clone(), opts, registry).await?)
}
