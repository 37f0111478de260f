#![doc = include_str!("../README.md")]

mod config;
mod error;
mod store;

use meta_core::kv::TxnKvBackend;
use meta_core::{Result, VolumeUrl};

pub use config::{DEFAULT_MAX_REQUEST_BYTES, EtcdOptions, PROBE_TXN_OPS, SCHEME, options_from_url};
pub use store::EtcdStore;

/// The etcd backend: meta-core's transactional KV backend over an [`EtcdStore`].
pub type EtcdBackend = TxnKvBackend<EtcdStore>;

/// Rewrites an `etcd://` URL that lists several members (`etcd://h1:2379,h2:2379/vol`) into
/// one [`meta_core::parse_url`] accepts (the others move to the `endpoints` parameter).
pub fn normalize_url(s: &str) -> String {
    meta_core::options::split_hosts(s, "endpoints")
}

/// Opens the volume an `etcd://host:port[,host:port…]/prefix[?options]` URL names (see
/// [`options_from_url`] for the options). Nothing is written: format it with
/// `Meta::format`.
///
/// Errors: `ConfigInvalid` for a bad URL or option; `Unavailable` when no member answers.
pub async fn open(url: VolumeUrl) -> Result<EtcdBackend> {
    connect(&options_from_url(url)?).await
}

/// Opens a volume from options.
///
/// Errors: as [`open`].
pub async fn connect(opts: &EtcdOptions) -> Result<EtcdBackend> {
    Ok(TxnKvBackend::new(EtcdStore::connect(opts).await?))
}

/// This backend for a [`meta_core::registry::BackendRegistry`]: scheme `etcd`, opened with
/// [`open`] after [`normalize_url`].
pub fn factory() -> meta_core::registry::BackendFactory {
    meta_core::registry::BackendFactory::new(vec![SCHEME], |url| {
        Box::pin(async move {
            Ok(std::sync::Arc::new(open(url).await?) as std::sync::Arc<dyn meta_core::Backend>)
        })
    })
    .with_normalize(normalize_url)
}
