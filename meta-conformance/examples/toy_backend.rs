//! The complete example of `docs/plugin-authors.md`, compiled with the crate: a toy
//! `KvStore`, its factory, the one-line `conformance_tests!` (tests when built with
//! `--test`), and a `main` that runs every case of `meta_conformance::CASES` itself.
//!
//! ```sh
//! cargo run -p meta-conformance --example toy_backend
//! ```

/// What would be `src/lib.rs` of a crate `toy-backend`.
mod toy_backend {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use meta_core::kv::{KvBackend, KvStore, WriteSet};
    use meta_core::{BackendInfo, Result};

    /// An ordered map behind a mutex; a real backend would talk to its database here.
    #[derive(Debug, Clone, Default)]
    pub struct ToyStore(Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>);

    impl KvStore for ToyStore {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)
                .cloned())
        }
        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            if start >= end {
                return Ok(Vec::new());
            }
            let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
            Ok(m.range::<[u8], _>((
                std::ops::Bound::Included(start),
                std::ops::Bound::Excluded(end),
            ))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
        }
        fn commit(&self, writes: WriteSet) -> Result<()> {
            let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
            for (k, v) in writes {
                match v {
                    Some(v) => {
                        m.insert(k, v);
                    }
                    None => {
                        m.remove(&k);
                    }
                }
            }
            Ok(())
        }
        fn is_blocking(&self) -> bool {
            false
        }
        fn info(&self) -> BackendInfo {
            BackendInfo::new("toy", 4096, false)
        }
    }

    /// The backend: the shared KV logic over the toy store.
    pub type ToyBackend = KvBackend<ToyStore>;

    /// Test support.
    pub mod testing {
        use std::sync::Arc;

        use meta_conformance::{
            Factory, Fresh, HandleCache, RawTarget, TestVolume, async_trait, kv_key,
        };
        use meta_core::Backend;

        use super::{ToyBackend, ToyStore};

        /// Factory of fresh toy volumes.
        pub struct ToyFactory;

        /// One volume: the store outlives its handles, so "reopen" sees the same data.
        #[derive(Default)]
        pub struct ToyVolume {
            store: ToyStore,
            handles: HandleCache<ToyBackend>,
        }

        #[async_trait]
        impl Factory for ToyFactory {
            fn name(&self) -> &str {
                "toy"
            }
            async fn create(&self) -> anyhow::Result<Fresh> {
                Ok(Fresh::Volume(Box::new(ToyVolume::default())))
            }
        }

        #[async_trait]
        impl TestVolume for ToyVolume {
            async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
                self.handles
                    .get_or_open(|| Ok(ToyBackend::new(self.store.clone())))
            }
            async fn plant_garbage(
                &self,
                target: &RawTarget,
                garbage: &[u8],
            ) -> anyhow::Result<bool> {
                let mut writes = meta_core::kv::WriteSet::new();
                writes.insert(kv_key(target), Some(garbage.to_vec()));
                meta_core::kv::KvStore::commit(&self.store, writes)?;
                Ok(true)
            }
        }
    }
}

// What would be `tests/conformance.rs`: one `#[test]` per case.
meta_conformance::conformance_tests!(toy_backend::testing::ToyFactory);

/// Runs every case once on the toy backend and prints one line per case.
fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let mut failed = 0;
    for case in meta_conformance::CASES {
        let factory = std::sync::Arc::new(toy_backend::testing::ToyFactory);
        match rt.block_on(meta_conformance::run_case_async(factory, case)) {
            Ok(outcome) => println!("{case:?}: {outcome:?}"),
            Err(e) => {
                failed += 1;
                println!("{case:?}: FAILED: {e:#}");
            }
        }
    }
    println!("{} cases, {failed} failed", meta_conformance::CASES.len());
    Ok(())
}
