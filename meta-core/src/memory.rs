//! The in-memory backend: a mutex over a `BTreeMap`, using the shared KV schema and the generic
//! op logic. It is the reference model for tests (the conformance suite's randomized test
//! compares every backend against it), never a production default: nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::backend::BackendInfo;
use crate::error::Result;
use crate::kv::{KvBackend, KvSnapshot, KvStore, WriteSet};

/// An ordered map in memory. Cloning shares the map, so a second `KvBackend` over a clone sees
/// the same volume (a "reopen"). Writers must share one `KvBackend`: each backend value has
/// its own writer lock, so two of them writing at once would interleave their
/// read-modify-writes, and its own memo of where the quotas are (kept from batch to batch,
/// see [`KvBackend`]), so one writing after another may charge the quotas of a directory's
/// old place. Reopen by dropping the first backend.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    map: Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of keys stored (for tests and memory estimates).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Overwrites one raw key (for tests that plant corrupted records).
    pub fn put_raw(&self, key: &[u8], value: &[u8]) {
        self.lock().insert(key.to_vec(), value.to_vec());
    }
}

impl KvStore for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(scan_map(&self.lock(), start, end, limit))
    }

    fn commit(&self, writes: WriteSet) -> Result<()> {
        let mut m = self.lock();
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

    /// A copy of the whole map: as much memory again as the volume.
    fn point_in_time(&self) -> Result<Option<Box<dyn KvSnapshot + '_>>> {
        Ok(Some(Box::new(MemSnapshot(self.lock().clone()))))
    }

    fn info(&self) -> BackendInfo {
        BackendInfo::new("memory", 4096, false)
    }
}

/// Up to `limit` pairs with `start <= key < end` of `map`, in key order (none when
/// `start >= end`): the scan of the live store and of its snapshots.
fn scan_map(
    map: &BTreeMap<Vec<u8>, Vec<u8>>,
    start: &[u8],
    end: &[u8],
    limit: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    if start >= end {
        return Vec::new();
    }
    map.range::<[u8], _>((
        std::ops::Bound::Included(start),
        std::ops::Bound::Excluded(end),
    ))
    .take(limit)
    .map(|(k, v)| (k.clone(), v.clone()))
    .collect()
}

/// A frozen copy of a [`MemStore`]'s map ([`KvStore::point_in_time`]).
struct MemSnapshot(BTreeMap<Vec<u8>, Vec<u8>>);

impl KvSnapshot for MemSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(scan_map(&self.0, start, end, limit))
    }
}

/// The in-memory backend.
pub type MemoryBackend = KvBackend<MemStore>;

/// A fresh, empty in-memory backend (format it before use).
pub fn memory_backend() -> MemoryBackend {
    KvBackend::new(MemStore::new())
}
