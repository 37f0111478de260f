//! The conformance factory of meta-etcd: a fresh key prefix per volume on the cluster named by
//! `META_TEST_ETCD_URL`.

#![allow(dead_code)]

pub mod cluster;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use meta_conformance::{Factory, Fresh, RawTarget, TestVolume, async_trait, kv_key};
use meta_core::Backend;
use meta_core::kv::{TxnStore, WriteSet};
use meta_etcd::EtcdBackend;

/// Environment variable naming the cluster (an `etcd://` URL; its path is ignored).
pub const ENV: &str = "META_TEST_ETCD_URL";

/// A prefix no other test (of this or another process) uses.
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t{tag}-{}-{}-{nanos:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The cluster URL with `prefix` as its path (query kept).
pub fn volume_url(cluster: &str, prefix: &str) -> String {
    let (base, query) = match cluster.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (cluster, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let hosts_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{prefix}{query}", &base[..hosts_end])
}

/// Opens volume `prefix` on the cluster of `url`.
pub async fn open(url: &str, prefix: &str) -> anyhow::Result<EtcdBackend> {
    let (u, _) = meta_core::parse_url(&meta_etcd::normalize_url(&volume_url(url, prefix)))?;
    Ok(meta_etcd::open(u).await?)
}

/// Makes volumes on the cluster of [`ENV`].
pub struct EtcdFactory;

#[async_trait]
impl Factory for EtcdFactory {
    fn name(&self) -> &str {
        "etcd"
    }

    async fn create(&self) -> anyhow::Result<Fresh> {
        match std::env::var(ENV) {
            Ok(url) if !url.is_empty() => Ok(Fresh::Volume(Box::new(EtcdVolume {
                url,
                prefix: unique_prefix("c"),
            }))),
            _ => Ok(Fresh::Skip(format!("{ENV} is not set"))),
        }
    }
}

/// One volume: a key prefix on the cluster.
pub struct EtcdVolume {
    url: String,
    prefix: String,
}

#[async_trait]
impl TestVolume for EtcdVolume {
    async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
        Ok(Arc::new(open(&self.url, &self.prefix).await?))
    }

    async fn plant_garbage(&self, target: &RawTarget, garbage: &[u8]) -> anyhow::Result<bool> {
        let b = open(&self.url, &self.prefix).await?;
        let mut w = WriteSet::new();
        w.insert(kv_key(target), Some(garbage.to_vec()));
        b.store().begin().await?.commit(w).await?;
        Ok(true)
    }

    async fn cleanup(&self) -> anyhow::Result<()> {
        open(&self.url, &self.prefix).await?.store().erase().await?;
        Ok(())
    }
}
