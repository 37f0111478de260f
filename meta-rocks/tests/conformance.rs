//! The shared conformance suite on RocksDB: every test gets its own temp-dir volume, opened
//! with the default `sync=true`.

use std::sync::Arc;

use meta_conformance::{Factory, Fresh, HandleCache, RawTarget, TestVolume, async_trait, kv_key};
use meta_core::Backend;
use meta_core::kv::{KvStore, WriteSet};
use meta_rocks::{RocksBackend, RocksOptions};

struct RocksFactory;

struct RocksVolume {
    dir: tempfile::TempDir,
    handles: HandleCache<RocksBackend>,
}

impl RocksVolume {
    fn backend(&self) -> anyhow::Result<Arc<RocksBackend>> {
        self.handles.get_or_open_typed(|| {
            Ok(meta_rocks::open_path(
                self.dir.path(),
                RocksOptions::default(),
            )?)
        })
    }
}

#[async_trait]
impl Factory for RocksFactory {
    fn name(&self) -> &str {
        "rocks"
    }

    async fn create(&self) -> anyhow::Result<Fresh> {
        Ok(Fresh::Volume(Box::new(RocksVolume {
            dir: tempfile::tempdir()?,
            handles: HandleCache::new(),
        })))
    }
}

#[async_trait]
impl TestVolume for RocksVolume {
    async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
        Ok(self.backend()?)
    }

    async fn plant_garbage(&self, target: &RawTarget, garbage: &[u8]) -> anyhow::Result<bool> {
        let mut w = WriteSet::new();
        w.insert(kv_key(target), Some(garbage.to_vec()));
        self.backend()?.store().commit(w)?;
        Ok(true)
    }
}

meta_conformance::conformance_tests!(RocksFactory);
