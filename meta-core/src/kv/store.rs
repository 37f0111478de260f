//! What a key-value store provides to hold a volume.

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;

use crate::backend::BackendInfo;
use crate::error::Result;

/// A write set: key → new value, or `None` for a delete. Applied atomically by
/// [`KvStore::commit`].
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Which keys a [`KvRead::scan_where`] keeps.
pub type KeyFilter = dyn for<'k> Fn(&'k [u8]) -> bool + Sync;

/// Async read access to an ordered KV store (a snapshot or a transaction).
#[async_trait]
pub trait KvRead: Send + Sync {
    /// The value of `key`, or `None`.
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Pairs with `start <= key < end`, in key order, at most `limit`.
    async fn scan(&self, start: &[u8], end: &[u8], limit: usize)
    -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// The pairs with `start <= key < end` whose key `keep` accepts, in key order (no limit).
    ///
    /// For a store that checks a transaction's reads at commit ([`crate::kv::ReadSet`]):
    /// the range is one check (no key in it created or changed since), and only the kept
    /// keys are checked one by one (not deleted since), so a scan of a large range for a
    /// few keys (a session's open files among the whole volume's) costs a few checks, not
    /// one per key in the range. The caller must not depend on a rejected key being
    /// deleted concurrently. The default scans and filters (every key checked).
    async fn scan_where(
        &self,
        start: &[u8],
        end: &[u8],
        keep: &KeyFilter,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let all = self.scan(start, end, usize::MAX).await?;
        Ok(all.into_iter().filter(|(k, _)| keep(k)).collect())
    }

    /// The first `limit` pairs of [`KvRead::scan_where`]. A store that checks a
    /// transaction's reads at commit should check only the range up to the last pair
    /// returned (when there are more) and those pairs' keys, so that reading a few of many
    /// kept keys costs a few checks; the default scans it all and records what
    /// `scan_where` records.
    async fn scan_where_at_most(
        &self,
        start: &[u8],
        end: &[u8],
        keep: &KeyFilter,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut all = self.scan_where(start, end, keep).await?;
        all.truncate(limit);
        Ok(all)
    }
}

/// A synchronous ordered KV store with atomic multi-key commits: what [`crate::kv::KvBackend`] needs.
///
/// Implementations must make `commit` all-or-nothing and durable as configured, and report
/// failures with a classified [`crate::ErrorKind`]: `Unavailable` when nothing was written,
/// `Indeterminate` when the write may have reached the disk (e.g. a WAL I/O error).
pub trait KvStore: Send + Sync + Debug + 'static {
    /// The value of `key`, or `None`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Pairs with `start <= key < end`, in key order, at most `limit`.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Applies every write of `writes` atomically.
    fn commit(&self, writes: WriteSet) -> Result<()>;
    /// True when calls block on I/O, so [`crate::kv::KvBackend`] runs them on tokio's blocking pool
    /// instead of an async worker thread. Default true.
    fn is_blocking(&self) -> bool {
        true
    }
    /// Static facts: scheme, batch limit, durability.
    fn info(&self) -> BackendInfo;
    /// A consistent read-only view for reads that touch several keys (readdir with attributes,
    /// lookup). The default reads the live store, which is consistent only for stores whose
    /// calls do not block ([`KvStore::is_blocking`] false): [`crate::kv::KvBackend`] holds its writer lock
    /// around their reads. Stores with snapshots (RocksDB) should return one.
    fn snapshot(&self) -> Result<Box<dyn KvSnapshot + '_>> {
        Ok(Box::new(LiveView(self)))
    }
    /// A view that stays at one point in time however long it is held and whatever is
    /// committed meanwhile, for a walk of the whole volume (a dump through
    /// [`crate::Backend::snapshot`]); `None` when the store cannot give one (the default).
    /// RocksDB returns a snapshot; the in-memory store a copy of its map.
    fn point_in_time(&self) -> Result<Option<Box<dyn KvSnapshot + '_>>> {
        Ok(None)
    }
}

/// A read-only, point-in-time view of a [`KvStore`].
pub trait KvSnapshot: Send + Sync {
    /// The value of `key`, or `None`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Pairs with `start <= key < end`, in key order, at most `limit`.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// The live store seen as a [`KvSnapshot`] (the default of [`KvStore::snapshot`]).
#[derive(Debug)]
pub struct LiveView<'a, S: ?Sized>(pub &'a S);

impl<S: KvStore + ?Sized> KvSnapshot for LiveView<'_, S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(key)
    }
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0.scan(start, end, limit)
    }
}

/// Adapts a [`KvSnapshot`] to [`KvRead`].
pub struct SnapRead<'a>(pub &'a dyn KvSnapshot);

#[async_trait]
impl KvRead for SnapRead<'_> {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(key)
    }
    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0.scan(start, end, limit)
    }
}

/// Adapts a [`KvStore`] to [`KvRead`].
#[derive(Debug)]
pub struct SyncRead<'a, S: ?Sized>(pub &'a S);

#[async_trait]
impl<S: KvStore + ?Sized> KvRead for SyncRead<'_, S> {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(key)
    }
    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0.scan(start, end, limit)
    }
}
