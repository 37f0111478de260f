//! The shared conformance suite on a real TiKV cluster whose PD endpoints `META_TEST_TIKV_PD`
//! names (`host:port[,host:port…]`); every test gets its own key prefix, erased after.
//! Skipped, loudly, when the variable is unset (no TiKV/PD can be installed on the machine
//! this repository is tested on; see the README).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use meta_conformance::{Factory, Fresh, RawTarget, TestVolume, async_trait, kv_key};
use meta_core::Backend;
use meta_core::kv::{TxnStore, WriteSet};
use meta_tikv::{TikvBackend, TikvOptions};

const ENV: &str = "META_TEST_TIKV_PD";

struct TikvFactory;

struct TikvVolume {
    opts: TikvOptions,
}

impl TikvVolume {
    async fn open(&self) -> anyhow::Result<TikvBackend> {
        Ok(meta_tikv::connect(&self.opts).await?)
    }
}

#[async_trait]
impl Factory for TikvFactory {
    fn name(&self) -> &str {
        "tikv"
    }

    async fn create(&self) -> anyhow::Result<Fresh> {
        static N: AtomicU64 = AtomicU64::new(0);
        match std::env::var(ENV) {
            Ok(pd) if !pd.is_empty() => {
                let prefix = format!(
                    "t{}-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.subsec_nanos())
                        .unwrap_or(0)
                );
                let pd = pd.split(',').map(String::from).collect();
                Ok(Fresh::Volume(Box::new(TikvVolume {
                    opts: TikvOptions::new(pd, prefix.into_bytes()),
                })))
            }
            _ => Ok(Fresh::Skip(format!(
                "{ENV} is not set: no TiKV cluster to run against"
            ))),
        }
    }
}

#[async_trait]
impl TestVolume for TikvVolume {
    async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
        Ok(Arc::new(TikvVolume::open(self).await?))
    }

    async fn plant_garbage(&self, target: &RawTarget, garbage: &[u8]) -> anyhow::Result<bool> {
        let mut w = WriteSet::new();
        w.insert(kv_key(target), Some(garbage.to_vec()));
        TikvVolume::open(self)
            .await?
            .store()
            .begin()
            .await?
            .commit(w)
            .await?;
        Ok(true)
    }

    async fn cleanup(&self) -> anyhow::Result<()> {
        TikvVolume::open(self).await?.store().erase().await?;
        Ok(())
    }
}

meta_conformance::conformance_tests!(TikvFactory);
