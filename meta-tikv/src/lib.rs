#![doc = include_str!("../README.md")]

mod config;
mod error;
mod store;

use meta_core::kv::TxnKvBackend;
use meta_core::{Result, VolumeUrl};

pub use config::{SCHEME, TikvOptions, options_from_url};
pub use store::{MAX_TXN_BYTES, MAX_TXN_KEYS, TikvStore};

/// The TiKV backend: meta-core's transactional KV backend over a [`TikvStore`].
pub type TikvBackend = TxnKvBackend<TikvStore>;

/// Rewrites a `tikv://` URL that lists several PD endpoints (`tikv://pd1:2379,pd2:2379/vol`)
/// into one [`meta_core::parse_url`] accepts (the others move to the `pd` parameter).
pub fn normalize_url(s: &str) -> String {
    meta_core::options::split_hosts(s, "pd")
}

/// Opens the volume a `tikv://pd:port[,pd:port…]/prefix[?timeout=…]` URL names. Nothing is
/// written: format it with `Meta::format`.
///
/// Errors: `ConfigInvalid` for a bad URL or option; `Unavailable` when no PD answers.
pub async fn open(url: VolumeUrl) -> Result<TikvBackend> {
    connect(&options_from_url(url)?).await
}

/// Opens a volume from options. Errors: as [`open`].
pub async fn connect(opts: &TikvOptions) -> Result<TikvBackend> {
    Ok(TxnKvBackend::new(TikvStore::connect(opts).await?))
}

/// This backend for a [`meta_core::registry::BackendRegistry`]: scheme `tikv`, opened with
/// [`open`] after [`normalize_url`].
pub fn factory() -> meta_core::registry::BackendFactory {
    meta_core::registry::BackendFactory::new(vec![SCHEME], |url| {
        Box::pin(async move {
            Ok(std::sync::Arc::new(open(url).await?) as std::sync::Arc<dyn meta_core::Backend>)
        })
    })
    .with_normalize(normalize_url)
}
